//! The WebDAV URL of a remote source or output (`webdav = "https://host/remote.php/dav/files/u/inbox"`,
//! issue 17) and the keys beside it (`user`, `password`, `ca_file`, `timeout`). The session is
//! `protocol::webdav`; the adapters are `sources::webdav` and `outputs::webdav`; the engine
//! around them (staging, outbox, journal, retries) is the one FTP uses. docs/webdav.md has
//! the decisions.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::job::toml_reader::{Doc, Str, TableReader, parse_duration};
use crate::secrets::Secret;

/// Where and how to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebdavEndpoint {
    /// `https://` (else `http://`).
    pub secure: bool,
    /// Lower case, without `[ ]` around an IPv6 address.
    pub host: String,
    pub port: u16,
    /// The remote folder's path from the server's root, decoded, without leading or
    /// trailing `/` (`remote.php/dav/files/u/inbox`).
    pub path: String,
    /// Basic authentication (from `user` or the URL).
    pub user: Option<String>,
    pub password: Option<Secret>,
    /// A PEM CA certificate trusted instead of the public roots (as for HTTP outputs).
    pub ca_file: Option<PathBuf>,
    /// The longest a connection or an answer may take; a body's transfer gets this plus
    /// a second per 64 KiB (a stalled transfer is given up, a slow line is not).
    pub timeout: Duration,
}

/// `timeout` when the job does not say.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

impl WebdavEndpoint {
    /// Parses `http(s)://[user[:password]@]host[:port]/path`. A password in the URL is
    /// returned separately (a literal, or a `${env:..}`/`${file:..}` reference).
    pub fn parse(url: &str) -> Result<(WebdavEndpoint, Option<String>), String> {
        let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
        let (secure, rest) = if lower.starts_with("https://") {
            (true, &url[8..])
        } else if lower.starts_with("http://") {
            (false, &url[7..])
        } else {
            return Err(format!(
                "expected a URL like \"https://cloud.example/remote.php/dav/files/USER/inbox\" (http:// or https://), found {:?}",
                crate::redact::url_for_message(url)
            ));
        };
        if rest.contains(['?', '#']) || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!(
                "a WebDAV folder URL has no query, fragment or blanks (write them %-escaped): {:?}",
                crate::redact::url_for_message(url)
            ));
        }
        let crate::url::Authority {
            user,
            password,
            host,
            port,
            path,
        } = crate::url::authority(rest)?;
        if host.is_empty() {
            return Err(format!(
                "the URL {:?} has no host",
                crate::redact::url_for_message(url)
            ));
        }
        let path = path.trim_matches('/').to_string();
        if path.split('/').any(|s| s == "." || s == "..") {
            return Err("the folder path has `.` or `..` in it".into());
        }
        Ok((
            WebdavEndpoint {
                secure,
                host: host.to_ascii_lowercase(),
                port: port.unwrap_or(if secure { 443 } else { 80 }),
                path,
                user: user.filter(|u| !u.is_empty()),
                password: None,
                ca_file: None,
                timeout: DEFAULT_TIMEOUT,
            },
            password,
        ))
    }

    /// `https://host:port` (an IPv6 host in `[ ]`).
    pub fn origin(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        format!(
            "{}://{host}:{}",
            if self.secure { "https" } else { "http" },
            self.port
        )
    }

    /// The URL without any password, for logs and status.
    pub fn display(&self) -> String {
        let user = self
            .user
            .as_ref()
            .map(|u| format!("{u}@"))
            .unwrap_or_default();
        let origin = self.origin();
        let (scheme, hostport) = origin.split_once("://").expect("a scheme");
        format!("{scheme}://{user}{hostport}/{}", self.path)
    }
}

/// The `webdav` URL of a source or output table, when `allowed` (not beside `mailbox`,
/// `email` or `database`, where it stays an unknown key); an error when one of `others`
/// (`ftp`, `http`) is there too.
pub fn url_key<const N: usize>(
    doc: &mut Doc<'_>,
    t: &mut TableReader<'_, '_>,
    allowed: bool,
    others: [Option<&Str>; N],
) -> Option<Str> {
    if !allowed || !t.has("webdav") {
        return None;
    }
    let url = t.str(doc, "webdav")?;
    if let Some(o) = others.into_iter().flatten().next() {
        doc.error(
            url.span.clone(),
            &url.key,
            format!(
                "a table has either `{}` or `webdav`, not both",
                o.key.rsplit('.').next().unwrap_or("ftp")
            ),
        );
    }
    Some(url)
}

/// Reads `webdav = "..."` and the keys beside it (a source's or an output's table).
pub fn read_endpoint(
    doc: &mut Doc<'_>,
    root: &Path,
    t: &mut TableReader<'_, '_>,
    url: &Str,
) -> Option<WebdavEndpoint> {
    let user = t.str(doc, "user");
    let password = t.str(doc, "password");
    let ca_file = t.str(doc, "ca_file");
    let timeout = t.str(doc, "timeout");
    let (mut ep, url_password) = match WebdavEndpoint::parse(&url.value) {
        Ok(x) => x,
        Err(e) => {
            doc.error(url.span.clone(), &url.key, e);
            return None;
        }
    };
    let mut ok = set_user(doc, &mut ep, user);
    ok &= set_password(doc, &mut ep, (password, url_password), url);
    if let Some(ca) = ca_file {
        if !ep.secure {
            doc.error(
                ca.span.clone(),
                &ca.key,
                "`ca_file` only matters for `https://` URLs",
            );
            ok = false;
        }
        ep.ca_file = Some(root.join(ca.value));
    }
    ok &= set_timeout(doc, &mut ep, timeout);
    ok.then_some(ep)
}

/// `user`, unless the URL names one already. False (reported) when both do.
fn set_user(doc: &mut Doc<'_>, ep: &mut WebdavEndpoint, user: Option<Str>) -> bool {
    let Some(u) = user else {
        return true;
    };
    let ok = ep.user.is_none();
    if !ok {
        doc.error(
            u.span.clone(),
            &u.key,
            "the user is given both in the URL and in `user`: keep one",
        );
    }
    ep.user = Some(u.value);
    ok
}

/// The password, from `password` or the URL (not both), which needs a user. False
/// (reported) when wrong.
fn set_password(
    doc: &mut Doc<'_>,
    ep: &mut WebdavEndpoint,
    (password, url_password): (Option<Str>, Option<String>),
    url: &Str,
) -> bool {
    let mut ok = true;
    let mut secret = |doc: &mut Doc<'_>, text: &str, s: &Str| match Secret::parse(text) {
        Ok(s) => Some(s),
        Err(e) => {
            doc.error(s.span.clone(), &s.key, e);
            ok = false;
            None
        }
    };
    ep.password = match (password, url_password) {
        (Some(_), Some(_)) => {
            doc.error(
                url.span.clone(),
                &url.key,
                "a password is given both in the URL and in `password`: keep only `password = \"${env:NAME}\"`",
            );
            ok = false;
            None
        }
        (Some(p), None) => secret(doc, &p.value, &p),
        // In the URL: `${env:NAME}` is a reference, anything else a literal (check warns).
        (None, Some(p)) if p.starts_with("${") => secret(doc, &p, url),
        (None, Some(p)) => Some(Secret::Literal(p)),
        (None, None) => None,
    };
    if ep.password.is_some() && ep.user.is_none() {
        doc.error(
            url.span.clone(),
            &url.key,
            "a password needs a user: `user = \"NAME\"` (or `https://NAME@host/...`)",
        );
        ok = false;
    }
    ok
}

/// `timeout`, at least 100ms ([`DEFAULT_TIMEOUT`] when absent). False (reported) when
/// wrong.
fn set_timeout(doc: &mut Doc<'_>, ep: &mut WebdavEndpoint, timeout: Option<Str>) -> bool {
    let Some(s) = timeout else {
        return true;
    };
    match parse_duration(&s.value) {
        Ok(d) if d >= Duration::from_millis(100) => {
            ep.timeout = d;
            true
        }
        Ok(_) => {
            doc.error(s.span.clone(), &s.key, "expected at least \"100ms\"");
            false
        }
        Err(e) => {
            doc.error(s.span.clone(), &s.key, e);
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let (e, pw) =
            WebdavEndpoint::parse("https://Cloud.Example/remote.php/dav/files/u/in%20box/")
                .unwrap();
        assert!(e.secure);
        assert_eq!(
            (e.host.as_str(), e.port, e.path.as_str()),
            ("cloud.example", 443, "remote.php/dav/files/u/in box")
        );
        assert!(pw.is_none() && e.user.is_none());
        let (e, pw) = WebdavEndpoint::parse("http://w%40m:${env:DAV_PW}@127.0.0.1:8080/x").unwrap();
        assert_eq!((e.secure, e.port), (false, 8080));
        assert_eq!(e.user.as_deref(), Some("w@m"));
        assert_eq!(pw.as_deref(), Some("${env:DAV_PW}"));
        assert_eq!(e.display(), "http://w@m@127.0.0.1:8080/x");
        let (e, pw) = WebdavEndpoint::parse("https://u:Lit-Pw-1@h").unwrap();
        assert_eq!(pw.as_deref(), Some("Lit-Pw-1"));
        assert!(!e.display().contains("Lit-Pw"));
        assert_eq!(e.path, "");
        for bad in [
            "ftp://h/x",
            "https:///x",
            "https://h/a/../b",
            "https://h/x?y=1",
            "https://u:Url-Pw-2x@h:x/",
        ] {
            let e = WebdavEndpoint::parse(bad).unwrap_err();
            assert!(!e.contains("Url-Pw"), "{e}");
        }
    }
}
