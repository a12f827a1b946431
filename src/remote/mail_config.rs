//! The mail keys of a job file: `[source] mailbox = ...` and `[[output]] email = ...`,
//! read with the job's TableReader so every problem has a file:line:col.

use std::path::{Path, PathBuf};
use std::time::Duration;

use globset::GlobSet;

use super::imap::MailboxUrl;
use super::smtp::{SmtpUrl, parse_mailto};
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
    let smtp_s = t.str(doc, "smtp");
    let smtp = match &smtp_s {
        Some(s) => match SmtpUrl::parse(&s.value) {
            Ok(u) => Some(u),
            Err(e) => {
                doc.error(s.span.clone(), &s.key, e);
                None
            }
        },
        None => {
            doc.error(
                t.span.clone(),
                &format!("{}.smtp", t.path),
                "missing `smtp`: the server to send through, e.g. `smtp = \"smtp://ferry@mail.example:587\"`",
            );
            None
        }
    };
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
    let subject = t
        .str(doc, "subject")
        .map(|s| s.value)
        .unwrap_or_else(|| "{{ names | join(', ') }}".into());
    let body = t.str(doc, "body").map(|s| s.value).unwrap_or_else(|| {
        "Attached: {{ names | join(', ') }} (job {{ job }}), sent by ferry.".into()
    });
    for (key, tpl) in [("subject", &subject), ("body", &body)] {
        let env = minijinja::Environment::new();
        if let Err(e) = env.template_from_str(tpl) {
            doc.error(
                t.span_of(key),
                &format!("{}.{key}", t.path),
                format!("bad template: {e}"),
            );
        } else if let Some((_, e)) = crate::transform::check::unknown_names(&env, tpl, true).first()
        {
            doc.error(
                t.span_of(key),
                &format!("{}.{key}", t.path),
                format!("bad template: {e}"),
            );
        }
    }
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

fn secret(doc: &mut Doc<'_>, s: &Str) -> Option<crate::secrets::Secret> {
    match crate::secrets::Secret::parse(&s.value) {
        Ok(v) => Some(v),
        Err(e) => {
            doc.error(s.span.clone(), &s.key, e);
            None
        }
    }
}
