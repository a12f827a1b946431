//! The mail keys of a job file: `[source] mailbox = ...` and `[[output]] email = ...`,
//! read with the job's TableReader so every problem has a file:line:col.

use std::path::{Path, PathBuf};
use std::time::Duration;

use globset::GlobSet;

use super::remote::percent_decode;
use crate::job::toml_reader::{Doc, Str, TableReader, one_of};

/// What happens to a message once every attachment taken from it is finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailSuccess {
    Seen,
    Move,
    Delete,
}

/// What happens to a message with no matching attachment (or filtered out by sender/subject).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoMatch {
    Leave,
    Move,
}

/// A `[source] mailbox = ...`.
#[derive(Debug, Clone)]
pub struct MailboxSource {
    pub url: MailboxUrl,
    pub password: crate::secrets::Secret,
    pub ca_file: Option<PathBuf>,
    pub from: Option<GlobSet>,
    pub subject: Option<GlobSet>,
    /// Take seen messages too (default: unseen only).
    pub all: bool,
    pub success: MailSuccess,
    pub move_to: String,
    pub error_folder: String,
    pub no_match: NoMatch,
    pub no_match_folder: String,
    pub max_message_size: u64,
    pub poll: Duration,
}

/// How many mails an email output sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Per {
    File,
    Batch,
}

/// An `[[output]] email = "mailto:..."`.
#[derive(Debug, Clone)]
pub struct EmailOutput {
    pub to: Vec<String>,
    pub smtp: SmtpUrl,
    pub password: Option<crate::secrets::Secret>,
    pub ca_file: Option<PathBuf>,
    pub from: String,
    pub subject: String,
    pub body: String,
    pub per: Per,
    /// The local outbox the engine writes into and the deliverer sends from.
    pub outbox: PathBuf,
}

fn globs(doc: &mut Doc<'_>, list: Option<Vec<Str>>) -> Option<Option<GlobSet>> {
    let Some(list) = list else {
        return Some(None);
    };
    crate::job::compile_globs(doc, &list, false, true).map(Some)
}

fn path_of(root: &Path, s: Option<Str>) -> Option<PathBuf> {
    s.map(|s| crate::job::absolute(&root.join(s.value)))
}

/// Reads the mailbox keys of `[source]` (the caller has seen `mailbox`).
pub fn read_mailbox(
    doc: &mut Doc<'_>,
    root: &Path,
    t: &mut TableReader<'_, '_>,
    poll: Duration,
) -> Option<MailboxSource> {
    let url_s = t.str(doc, "mailbox")?;
    let url = match MailboxUrl::parse(&url_s.value) {
        Ok(u) => Some(u),
        Err(e) => {
            doc.error(url_s.span.clone(), &url_s.key, e);
            None
        }
    };
    let password_s = t.str(doc, "password");
    if password_s.is_none() {
        doc.error(
            t.span.clone(),
            "source.password",
            "missing `password` for the mailbox: e.g. `password = \"${env:FERRY_IMAP_PASSWORD}\"`",
        );
    }
    let password = password_s.and_then(|p| secret(doc, &p));
    let ca_file = t.str(doc, "ca_file");
    let from_l = t.str_list(doc, "from");
    let from = globs(doc, from_l);
    let subject_l = t.str_list(doc, "subject");
    let subject = globs(doc, subject_l);
    let all = t.bool(doc, "all").unwrap_or(false);
    let success_raw = t.str(doc, "success");
    let success = one_of(
        doc,
        success_raw,
        &[
            ("seen", MailSuccess::Seen),
            ("move", MailSuccess::Move),
            ("delete", MailSuccess::Delete),
        ],
        MailSuccess::Seen,
    );
    let move_to = t.str(doc, "move_to").map(|s| s.value);
    let error_folder = t.str(doc, "error_folder").map(|s| s.value);
    let no_match_raw = t.str(doc, "no_match");
    let no_match = one_of(
        doc,
        no_match_raw,
        &[("leave", NoMatch::Leave), ("move", NoMatch::Move)],
        NoMatch::Leave,
    );
    let no_match_folder = t.str(doc, "no_match_folder").map(|s| s.value);
    let max = t.uint(doc, "max_message_size").unwrap_or(50 * 1024 * 1024);
    Some(MailboxSource {
        url: url?,
        password: password?,
        ca_file: path_of(root, ca_file),
        from: from?,
        subject: subject?,
        all,
        success: success?,
        move_to: move_to.unwrap_or_else(|| "ferry-done".into()),
        error_folder: error_folder.unwrap_or_else(|| "ferry-error".into()),
        no_match: no_match?,
        no_match_folder: no_match_folder.unwrap_or_else(|| "ferry-unmatched".into()),
        max_message_size: max,
        poll,
    })
}

/// Reads the email keys of an `[[output]]` (the caller has seen `email`).
pub fn read_email(
    doc: &mut Doc<'_>,
    root: &Path,
    t: &mut TableReader<'_, '_>,
    outbox: PathBuf,
) -> Option<EmailOutput> {
    let to_s = t.str(doc, "email")?;
    let to = match parse_mailto(&to_s.value) {
        Ok(v) => Some(v),
        Err(e) => {
            doc.error(to_s.span.clone(), &to_s.key, e);
            None
        }
    };
    let smtp = read_smtp(doc, t);
    let password = match t.str(doc, "password") {
        Some(p) => Some(secret(doc, &p)?),
        None => None,
    };
    let ca_file = t.str(doc, "ca_file");
    let from = t.str(doc, "from");
    if from.is_none() {
        doc.error(
            t.span.clone(),
            &format!("{}.from", t.path),
            "missing `from`: the sender address, e.g. `from = \"ferry@example.com\"`",
        );
    }
    let (subject, body) = read_message(doc, t);
    let per_raw = t.str(doc, "per");
    let per = one_of(
        doc,
        per_raw,
        &[("file", Per::File), ("batch", Per::Batch)],
        Per::File,
    );
    Some(EmailOutput {
        to: to?,
        smtp: smtp?,
        password,
        ca_file: path_of(root, ca_file),
        from: from?.value,
        subject,
        body,
        per: per?,
        outbox,
    })
}

/// `smtp` (required): the server to send through.
fn read_smtp(doc: &mut Doc<'_>, t: &mut TableReader<'_, '_>) -> Option<SmtpUrl> {
    let Some(s) = t.str(doc, "smtp") else {
        doc.error(
            t.span.clone(),
            &format!("{}.smtp", t.path),
            "missing `smtp`: the server to send through, e.g. `smtp = \"smtp://ferry@mail.example:587\"`",
        );
        return None;
    };
    match SmtpUrl::parse(&s.value) {
        Ok(u) => Some(u),
        Err(e) => {
            doc.error(s.span.clone(), &s.key, e);
            None
        }
    }
}

/// `subject` and `body`: templates over the files sent, by default naming them. Each
/// problem is reported at its key (the message is still sent as written).
fn read_message(doc: &mut Doc<'_>, t: &mut TableReader<'_, '_>) -> (String, String) {
    let subject = t
        .str(doc, "subject")
        .map(|s| s.value)
        .unwrap_or_else(|| "{{ names | join(', ') }}".into());
    let body = t.str(doc, "body").map(|s| s.value).unwrap_or_else(|| {
        "Attached: {{ names | join(', ') }} (job {{ job }}), sent by ferry.".into()
    });
    for (key, tpl) in [("subject", &subject), ("body", &body)] {
        if let Some(e) = template_problem(tpl) {
            doc.error(
                t.span_of(key),
                &format!("{}.{key}", t.path),
                format!("bad template: {e}"),
            );
        }
    }
    (subject, body)
}

/// What is wrong with a mail template: its syntax, else the first name it uses that no
/// template knows (an unknown filter, say).
fn template_problem(tpl: &str) -> Option<String> {
    let env = minijinja::Environment::new();
    if let Err(e) = env.template_from_str(tpl) {
        return Some(e.to_string());
    }
    crate::transform::check::unknown_names(&env, tpl, true)
        .first()
        .map(|(_, e)| e.clone())
}

fn secret(doc: &mut Doc<'_>, s: &Str) -> Option<crate::secrets::Secret> {
    match crate::secrets::Secret::parse(&s.value) {
        Ok(v) => Some(v),
        Err(e) => {
            doc.error(s.span.clone(), &s.key, e);
            None
        }
    }
}

/// Where and how to reach a mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxUrl {
    /// `imaps://` (TLS from the first byte) or `imap://` (STARTTLS, required).
    pub implicit_tls: bool,
    pub host: String,
    pub port: u16,
    pub user: String,
    pub folder: String,
}

impl MailboxUrl {
    /// Parses `imaps://user@host[:port]/FOLDER` or `imap://...`. A password in the URL is
    /// refused (use `password = "${env:..}"`). The folder defaults to INBOX.
    pub fn parse(s: &str) -> Result<MailboxUrl, String> {
        let (implicit_tls, rest) = if let Some(r) = s.strip_prefix("imaps://") {
            (true, r)
        } else if let Some(r) = s.strip_prefix("imap://") {
            (false, r)
        } else {
            return Err(format!(
                "expected a mailbox URL like \"imaps://user@host/INBOX\", found {:?}",
                crate::redact::url_for_message(s)
            ));
        };
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let Some((userinfo, hostport)) = authority.rsplit_once('@') else {
            return Err(format!(
                "the mailbox URL {s:?} names no user: write \"imaps://USER@host/INBOX\""
            ));
        };
        if userinfo.contains(':') {
            return Err(
                "the mailbox URL must not carry a password: use `password = \"${env:NAME}\"`"
                    .into(),
            );
        }
        let user = percent_decode(userinfo)?;
        let (host, port) = split_host_port(hostport, if implicit_tls { 993 } else { 143 })?;
        let folder = percent_decode(path.trim_end_matches('/'))?;
        Ok(MailboxUrl {
            implicit_tls,
            host,
            port,
            user,
            folder: if folder.is_empty() {
                "INBOX".into()
            } else {
                folder
            },
        })
    }

    /// The URL for logs: never a password (there is none in it).
    pub fn display(&self) -> String {
        format!(
            "{}://{}@{}:{}/{}",
            if self.implicit_tls { "imaps" } else { "imap" },
            self.user,
            self.host,
            self.port,
            self.folder
        )
    }
}

pub(crate) fn split_host_port(hostport: &str, default: u16) -> Result<(String, u16), String> {
    if hostport.is_empty() {
        return Err("the URL names no host".into());
    }
    if let Some(rest) = hostport.strip_prefix('[') {
        let (h, p) = rest
            .split_once(']')
            .ok_or_else(|| format!("bad host {hostport:?}"))?;
        let port = match p.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| format!("bad port in {hostport:?}"))?,
            None => default,
        };
        return Ok((h.to_string(), port));
    }
    match hostport.rsplit_once(':') {
        Some((h, p)) => Ok((
            h.to_string(),
            p.parse().map_err(|_| format!("bad port in {hostport:?}"))?,
        )),
        None => Ok((hostport.to_string(), default)),
    }
}

/// `smtp://[user@]host[:port]` (STARTTLS, required; port 587 by default) or
/// `smtps://[user@]host[:port]` (implicit TLS; 465).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpUrl {
    pub implicit_tls: bool,
    pub host: String,
    pub port: u16,
    pub user: Option<String>,
}

impl SmtpUrl {
    pub fn parse(s: &str) -> Result<SmtpUrl, String> {
        let (implicit_tls, rest) = if let Some(r) = s.strip_prefix("smtps://") {
            (true, r)
        } else if let Some(r) = s.strip_prefix("smtp://") {
            (false, r)
        } else {
            return Err(format!(
                "expected an SMTP server URL like \"smtp://user@mail.example:587\" (STARTTLS) or \"smtps://user@mail.example\" (implicit TLS), found {:?}",
                crate::redact::url_for_message(s)
            ));
        };
        let authority = rest.trim_end_matches('/');
        if authority.contains('/') {
            return Err(format!(
                "the SMTP URL {:?} must not have a path",
                crate::redact::url_for_message(s)
            ));
        }
        let (user, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => {
                if u.contains(':') {
                    return Err(
                        "the SMTP URL must not carry a password: use `password = \"${env:NAME}\"`"
                            .into(),
                    );
                }
                (Some(percent_decode(u)?), h)
            }
            None => (None, authority),
        };
        let (host, port) = split_host_port(hostport, if implicit_tls { 465 } else { 587 })?;
        Ok(SmtpUrl {
            implicit_tls,
            host,
            port,
            user,
        })
    }

    pub fn display(&self) -> String {
        format!(
            "{}://{}{}:{}",
            if self.implicit_tls { "smtps" } else { "smtp" },
            self.user
                .as_deref()
                .map(|u| format!("{u}@"))
                .unwrap_or_default(),
            self.host,
            self.port
        )
    }
}

/// Parses `mailto:a@x.example,b@y.example` into addresses.
pub fn parse_mailto(s: &str) -> Result<Vec<String>, String> {
    let rest = s.strip_prefix("mailto:").ok_or_else(|| {
        format!("expected an address like \"mailto:ap@partner.example\", found {s:?}")
    })?;
    let rest = rest.split('?').next().unwrap_or("");
    let mut out = Vec::new();
    for a in rest.split(',') {
        let a = percent_decode(a.trim())?;
        if a.is_empty() {
            continue;
        }
        a.parse::<lettre::Address>()
            .map_err(|e| format!("{a:?} is not an email address: {e}"))?;
        out.push(a);
    }
    if out.is_empty() {
        return Err(format!("{s:?} names no recipient"));
    }
    Ok(out)
}

/// Sender, subject, date and message-id of a message: metadata for names, templates and
/// history.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MailMeta {
    pub from: String,
    pub subject: String,
    /// RFC 3339, empty when the message has no (valid) Date.
    pub date: String,
    pub message_id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = MailboxUrl::parse("imaps://orders@mail.example.test/INBOX").unwrap();
        assert_eq!(
            (
                u.implicit_tls,
                u.host.as_str(),
                u.port,
                u.user.as_str(),
                u.folder.as_str()
            ),
            (true, "mail.example.test", 993, "orders", "INBOX")
        );
        let u = MailboxUrl::parse("imap://a%40b.example@127.0.0.1:10143/Orders/In").unwrap();
        assert_eq!(
            (u.implicit_tls, u.port, u.user.as_str(), u.folder.as_str()),
            (false, 10143, "a@b.example", "Orders/In")
        );
        assert_eq!(
            MailboxUrl::parse("imaps://u@h").unwrap().folder,
            "INBOX".to_string()
        );
        assert!(MailboxUrl::parse("imaps://u:pw@h/INBOX").is_err());
        assert!(MailboxUrl::parse("imaps://h/INBOX").is_err());
        assert!(MailboxUrl::parse("pop3://u@h/").is_err());
    }

    #[test]
    fn urls_and_addresses() {
        let u = SmtpUrl::parse("smtp://ferry@mail.example.test").unwrap();
        assert_eq!(
            (u.implicit_tls, u.port, u.user.as_deref()),
            (false, 587, Some("ferry"))
        );
        let u = SmtpUrl::parse("smtps://127.0.0.1:10465").unwrap();
        assert_eq!((u.implicit_tls, u.port, u.user), (true, 10465, None));
        assert!(SmtpUrl::parse("smtp://u:pw@h").is_err());
        assert_eq!(
            parse_mailto("mailto:ap@partner.example.test,b@x.example").unwrap(),
            vec!["ap@partner.example.test", "b@x.example"]
        );
        assert!(parse_mailto("mailto:").is_err());
        assert!(parse_mailto("mailto:not an address").is_err());
        assert!(parse_mailto("ap@x").is_err());
    }
}
