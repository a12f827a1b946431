//! A WebDAV session over ureq (issue 17): the agent of an endpoint (TLS trust, timeouts, no
//! redirects, WebDAV's methods), `PROPFIND` with its multistatus answer read by quick-xml,
//! `MKCOL` of missing folders, streamed `PUT` and `GET`, `MOVE` with `Overwrite`, `DELETE`.
//! Knows nothing of staging, outboxes or the journal (`sources::webdav`, `outputs::webdav`).
//!
//! Paths: the endpoint's folder and everything below it are handled as decoded paths from
//! the server's root (`remote.php/dav/files/u/inbox/a b.csv`); each segment is %-escaped
//! when a URL is made, and `href`s in answers are decoded before they are compared.

use std::collections::HashSet;
use std::io::Read;

use ureq::http;

use super::{RResult, RemoteError};
use crate::job::webdav::WebdavEndpoint;

/// The most of a `PROPFIND` answer read (a folder of a few hundred thousand entries).
const MAX_LISTING: u64 = 64 * 1024 * 1024;
/// The most of an error answer read for a report.
const MAX_ERROR_BODY: u64 = 64 * 1024;

const PROPFIND_BODY: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<D:propfind xmlns:D="DAV:"><D:prop><D:resourcetype/><D:getcontentlength/><D:getlastmodified/><D:getetag/></D:prop></D:propfind>"#;

/// One entry of a `PROPFIND` answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Decoded path from the server's root, without leading or trailing `/`.
    pub path: String,
    pub is_dir: bool,
    pub size: u64,
    /// `getlastmodified` (ns since the epoch; 0 if absent).
    pub mtime_ns: i64,
    /// `getetag` without quotes and `W/`.
    pub etag: Option<String>,
}

/// What a request carries.
pub enum Payload {
    Empty,
    Bytes(&'static str),
    File(std::fs::File),
}

/// A session with one WebDAV server: its agent (and so its kept-alive connections), the
/// basic authentication header, and the folders known to exist.
pub struct Dav {
    pub ep: WebdavEndpoint,
    agent: Option<ureq::Agent>,
    /// `Basic ...`, resolved at the first request (a rotated password needs a reconnect).
    auth: Option<String>,
    dirs: HashSet<String>,
}

/// A percent-escaped path segment (only unreserved characters stay as they are).
fn escape(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `a/b` + `c/d` (either may be empty).
pub fn join(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_string(),
        (_, true) => a.to_string(),
        _ => format!("{a}/{b}"),
    }
}

/// The folder of `path` (`""` at the top).
pub fn parent(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(d, _)| d)
}

/// An `ETag` as compared: without `W/` and quotes.
pub fn normal_etag(v: &str) -> String {
    v.trim()
        .trim_start_matches("W/")
        .trim_matches('"')
        .to_string()
}

impl Dav {
    pub fn new(ep: WebdavEndpoint) -> Dav {
        Dav {
            ep,
            agent: None,
            auth: None,
            dirs: HashSet::new(),
        }
    }

    /// Drops the connections (and the resolved password, read again next time).
    pub fn disconnect(&mut self) {
        self.agent = None;
        self.auth = None;
        self.dirs.clear();
    }

    /// The decoded path from the server's root of `rel` below the endpoint's folder.
    pub fn abs(&self, rel: &str) -> String {
        join(&self.ep.path, rel.trim_matches('/'))
    }

    /// The URL of a path from the server's root.
    pub fn url(&self, abs: &str) -> String {
        let mut u = self.ep.origin();
        u.push('/');
        u.push_str(
            &abs.split('/')
                .filter(|s| !s.is_empty())
                .map(escape)
                .collect::<Vec<_>>()
                .join("/"),
        );
        u
    }

    fn agent(&mut self) -> RResult<ureq::Agent> {
        if let Some(a) = &self.agent {
            return Ok(a.clone());
        }
        use ureq::tls::{PemItem, RootCerts, TlsConfig};
        let mut tls = TlsConfig::builder();
        if let Some(ca) = &self.ep.ca_file {
            let pem = std::fs::read(ca).map_err(|e| {
                RemoteError::Transient(format!("cannot read the CA file {}: {e}", ca.display()))
            })?;
            let certs: Vec<_> = ureq::tls::parse_pem(&pem)
                .filter_map(|i| match i {
                    Ok(PemItem::Certificate(c)) => Some(c),
                    _ => None,
                })
                .collect();
            if certs.is_empty() {
                return Err(RemoteError::Transient(format!(
                    "no PEM certificate in {}",
                    ca.display()
                )));
            }
            tls = tls.root_certs(RootCerts::new_with_certs(&certs));
        }
        let t = Some(self.ep.timeout);
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .max_redirects_will_error(false)
            .allow_non_standard_methods(true)
            .timeout_connect(t)
            .timeout_per_read(t)
            .timeout_per_write(t)
            .timeout_recv_response(t)
            .user_agent(concat!("ferry/", env!("CARGO_PKG_VERSION")))
            .tls_config(tls.build())
            .build();
        let agent = ureq::Agent::new_with_config(config);
        if let Some(user) = &self.ep.user {
            let pw = match &self.ep.password {
                Some(p) => p.resolve().map_err(RemoteError::Transient)?,
                None => String::new(),
            };
            use base64::Engine;
            let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}"));
            crate::redact::learn(&token);
            self.auth = Some(format!("Basic {token}"));
        }
        self.agent = Some(agent.clone());
        Ok(agent)
    }

    /// Sends one request. `Err` is no answer at all (transient); any answer is returned.
    pub fn call(
        &mut self,
        method: &str,
        abs: &str,
        headers: &[(&str, String)],
        payload: Payload,
    ) -> RResult<http::Response<ureq::Body>> {
        let agent = self.agent()?;
        let url = self.url(abs);
        let mut b = http::Request::builder().method(method).uri(&url);
        if let Some(a) = &self.auth {
            b = b.header("Authorization", a.as_str());
        }
        for (k, v) in headers {
            b = b.header(*k, v.as_str());
        }
        let what = |e: &dyn std::fmt::Display| {
            RemoteError::Transient(format!("{method} {}: {e}", self.display_path(abs)))
        };
        let sent = match payload {
            Payload::Empty => agent.run(b.body(()).map_err(|e| what(&e))?),
            Payload::Bytes(s) => agent.run(b.body(s).map_err(|e| what(&e))?),
            Payload::File(f) => agent.run(b.body(f).map_err(|e| what(&e))?),
        };
        sent.map_err(|e| match e {
            ureq::Error::Timeout(t) => what(&format!("no answer in time ({t})")),
            ureq::Error::Io(io) => what(&format!("connection failed: {io}")),
            other => what(&format!("no answer: {other}")),
        })
    }

    /// The path as logs show it (the URL without the origin).
    fn display_path(&self, abs: &str) -> String {
        format!("/{abs}")
    }

    /// An answer that is not the one hoped for, as an error: 408, 429 and 5xx may pass
    /// (retried); any other status fails the file, with the start of the answer's body.
    pub fn refused(
        &self,
        method: &str,
        abs: &str,
        resp: http::Response<ureq::Body>,
    ) -> RemoteError {
        let status = resp.status();
        let body = resp
            .into_body()
            .with_config()
            .limit(MAX_ERROR_BODY)
            .read_to_vec()
            .unwrap_or_default();
        let msg = format!(
            "{method} {}: HTTP {} {}: {}",
            self.display_path(abs),
            status.as_u16(),
            status.canonical_reason().unwrap_or(""),
            super::http::excerpt(&body)
        );
        match status.as_u16() {
            408 | 429 | 500..=599 => RemoteError::Transient(msg),
            _ => RemoteError::Permanent(msg),
        }
    }

    /// `PROPFIND` with `Depth`: the entries, or `None` when the path does not exist.
    pub fn propfind(&mut self, abs: &str, depth: u8) -> RResult<Option<Vec<Entry>>> {
        let resp = self.call(
            "PROPFIND",
            abs,
            &[
                ("Depth", depth.to_string()),
                ("Content-Type", "application/xml; charset=utf-8".into()),
            ],
            Payload::Bytes(PROPFIND_BODY),
        )?;
        match resp.status().as_u16() {
            207 => {}
            404 => {
                let _ = resp.into_body().read_to_vec();
                return Ok(None);
            }
            _ => return Err(self.refused("PROPFIND", abs, resp)),
        }
        let body = resp
            .into_body()
            .with_config()
            .limit(MAX_LISTING)
            .read_to_vec()
            .map_err(|e| {
                RemoteError::Transient(format!(
                    "PROPFIND {}: the answer could not be read (at most {} MiB): {e}",
                    self.display_path(abs),
                    MAX_LISTING >> 20
                ))
            })?;
        Ok(Some(multistatus(&body)))
    }

    /// The entry of one path (`PROPFIND` with `Depth: 0`), `None` if it does not exist.
    pub fn stat(&mut self, abs: &str) -> RResult<Option<Entry>> {
        Ok(self
            .propfind(abs, 0)?
            .and_then(|mut v| (!v.is_empty()).then(|| v.swap_remove(0))))
    }

    /// Makes the folder `abs` and every missing folder above it (`MKCOL`, one level at a
    /// time, from the deepest one that exists). Folders seen are remembered.
    pub fn ensure_dir(&mut self, abs: &str) -> RResult<()> {
        let mut missing = Vec::new();
        let mut cur = abs.to_string();
        while !cur.is_empty() && !self.dirs.contains(&cur) {
            match self.stat(&cur)? {
                Some(e) if e.is_dir => break,
                Some(_) => {
                    return Err(RemoteError::Permanent(format!(
                        "{} is a file on the server, not a folder",
                        self.display_path(&cur)
                    )));
                }
                None => {
                    let up = parent(&cur).to_string();
                    missing.push(std::mem::replace(&mut cur, up));
                }
            }
        }
        for d in missing.iter().rev() {
            let resp = self.call("MKCOL", d, &[], Payload::Empty)?;
            match resp.status().as_u16() {
                // 405: made meanwhile (by another connection).
                201 | 405 => {
                    let _ = resp.into_body().read_to_vec();
                    tracing::debug!(folder = %d, "Made a remote folder (MKCOL).");
                }
                _ => return Err(self.refused("MKCOL", d, resp)),
            }
            self.dirs.insert(d.clone());
        }
        self.dirs.insert(abs.to_string());
        Ok(())
    }

    /// Forgets the folders known to exist (one was removed under us).
    pub fn forget_dirs(&mut self) {
        self.dirs.clear();
    }

    /// `PUT` of a local file, streamed, with its length. Ok with the answer's status when
    /// it is 2xx.
    pub fn put_file(&mut self, abs: &str, file: std::fs::File, size: u64) -> RResult<u16> {
        let resp = self.call(
            "PUT",
            abs,
            &[
                ("Content-Length", size.to_string()),
                ("Content-Type", "application/octet-stream".into()),
            ],
            Payload::File(file),
        )?;
        let status = resp.status().as_u16();
        if (200..300).contains(&status) {
            let _ = resp.into_body().read_to_vec();
            Ok(status)
        } else {
            Err(self.refused("PUT", abs, resp))
        }
    }

    /// `MOVE` to `to` with `Overwrite: T` or `F`. `Ok(false)`: the target exists and
    /// `overwrite` is false (412).
    pub fn move_to(&mut self, from: &str, to: &str, overwrite: bool) -> RResult<bool> {
        let dest = self.url(to);
        let resp = self.call(
            "MOVE",
            from,
            &[
                ("Destination", dest),
                ("Overwrite", if overwrite { "T" } else { "F" }.into()),
            ],
            Payload::Empty,
        )?;
        match resp.status().as_u16() {
            200..=299 => {
                let _ = resp.into_body().read_to_vec();
                Ok(true)
            }
            412 if !overwrite => {
                let _ = resp.into_body().read_to_vec();
                Ok(false)
            }
            _ => Err(self.refused("MOVE", from, resp)),
        }
    }

    /// `DELETE`; something already gone is fine.
    pub fn delete(&mut self, abs: &str) -> RResult<()> {
        let resp = self.call("DELETE", abs, &[], Payload::Empty)?;
        match resp.status().as_u16() {
            200..=299 | 404 => {
                let _ = resp.into_body().read_to_vec();
                Ok(())
            }
            _ => Err(self.refused("DELETE", abs, resp)),
        }
    }

    /// `GET`: the answer's `ETag` and a reader of its body (not limited: the caller reads
    /// at most what it expects). `None` when the file is gone.
    pub fn get(
        &mut self,
        abs: &str,
    ) -> RResult<Option<(Option<String>, impl Read + use<>)>> {
        let resp = self.call("GET", abs, &[], Payload::Empty)?;
        match resp.status().as_u16() {
            200 => {
                let etag = resp
                    .headers()
                    .get("etag")
                    .and_then(|v| v.to_str().ok())
                    .map(normal_etag);
                Ok(Some((etag, resp.into_body().into_reader())))
            }
            404 => Ok(None),
            _ => Err(self.refused("GET", abs, resp)),
        }
    }
}

/// The entries of a multistatus answer, in its order. Entries without an `href` are
/// dropped; what an entry's path means is the caller's business (a hostile server may
/// send anything there).
pub fn multistatus(body: &[u8]) -> Vec<Entry> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_reader(body);
    let mut out = Vec::new();
    let mut path: Vec<String> = Vec::new();
    let mut cur: Option<(Option<String>, Entry)> = None;
    let mut text = String::new();
    let mut buf = Vec::new();
    let blank = || Entry {
        path: String::new(),
        is_dir: false,
        size: 0,
        mtime_ns: 0,
        etag: None,
    };
    loop {
        let ev = reader.read_event_into(&mut buf);
        match ev {
            Ok(Event::Start(e)) => {
                let name = e.local_name().as_ref().to_string();
                if name == "response" {
                    cur = Some((None, blank()));
                }
                if name == "collection"
                    && path.last().is_some_and(|p| p == "resourcetype")
                    && let Some((_, en)) = cur.as_mut()
                {
                    en.is_dir = true;
                }
                path.push(name);
                text.clear();
            }
            Ok(Event::Empty(e)) => {
                if e.local_name().as_ref() == "collection"
                    && path.last().is_some_and(|p| p == "resourcetype")
                    && let Some((_, en)) = cur.as_mut()
                {
                    en.is_dir = true;
                }
            }
            Ok(Event::End(_)) => {
                let t = text.trim().to_string();
                text.clear();
                let name = path.pop().unwrap_or_default();
                if let Some((href, en)) = cur.as_mut() {
                    match name.as_str() {
                        "href" if path.last().is_some_and(|p| p == "response") => {
                            *href = Some(t)
                        }
                        "getcontentlength" if !t.is_empty() => en.size = t.parse().unwrap_or(0),
                        "getlastmodified" if !t.is_empty() => {
                            en.mtime_ns = chrono::DateTime::parse_from_rfc2822(&t)
                                .ok()
                                .and_then(|d| d.timestamp_nanos_opt())
                                .unwrap_or(0);
                        }
                        "getetag" if !t.is_empty() => en.etag = Some(normal_etag(&t)),
                        "response" => {
                            if let Some((Some(h), mut en)) = cur.take()
                                && let Some(p) = href_path(&h)
                            {
                                en.path = p;
                                out.push(en);
                            }
                        }
                        _ => {}
                    }
                }
            }
            Ok(Event::Text(t)) => text.push_str(&t.xml10_content()),
            Ok(Event::CData(t)) => text.push_str(&t.xml10_content()),
            Ok(Event::GeneralRef(r)) => {
                let name = r.xml10_content().into_owned();
                match r.resolve_char_ref() {
                    Ok(Some(c)) => text.push(c),
                    _ => text.push_str(
                        quick_xml::escape::resolve_predefined_entity(&name).unwrap_or(""),
                    ),
                }
            }
            Ok(Event::Eof) | Err(_) => break,
            _ => {}
        }
        buf.clear();
    }
    out
}

/// An `href` (a path, or a whole URL) as a decoded path from the server's root without
/// leading or trailing `/`; `None` when it cannot be decoded.
fn href_path(href: &str) -> Option<String> {
    let p = match href.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("", |i| &rest[i..]),
        None => href,
    };
    let p = p.split(['?', '#']).next().unwrap_or("");
    let decoded = crate::url::percent_decode(p).ok()?;
    Some(decoded.trim_matches('/').to_string())
}

/// The entries directly below the folder `dir` (a `Depth: 1` answer), as (name, entry).
/// Anything else a server put in its answer is dropped: the folder itself, entries
/// elsewhere, and names that are not one plain segment (`/`, `\`, `..`, `.`, empty,
/// control characters), which a hostile server could use to reach outside staging.
pub fn children(dir: &str, entries: Vec<Entry>) -> (Vec<(String, Entry)>, usize) {
    let mut out = Vec::new();
    let mut dropped = 0;
    for e in entries {
        if e.path == dir {
            continue;
        }
        let name = if dir.is_empty() {
            Some(e.path.as_str())
        } else {
            e.path
                .strip_prefix(dir)
                .and_then(|r| r.strip_prefix('/'))
        };
        match name {
            Some(n)
                if !n.is_empty()
                    && n != "."
                    && n != ".."
                    && !n.contains(['/', '\\'])
                    && !n.chars().any(char::is_control) =>
            {
                out.push((n.to_string(), e.clone()));
            }
            _ => dropped += 1,
        }
    }
    (out, dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_multistatus_answer_is_read_and_hostile_names_dropped() {
        let body = br#"<?xml version="1.0" encoding="utf-8"?>
<d:multistatus xmlns:d="DAV:">
<d:response><d:href>/dav/in/</d:href><d:propstat><d:prop><d:resourcetype><d:collection/></d:resourcetype></d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>
<d:response><d:href>http://h:1/dav/in/a%20b.csv</d:href><d:propstat><d:prop><d:resourcetype/><d:getcontentlength>12</d:getcontentlength><d:getlastmodified>Wed, 02 Dec 2026 10:00:00 GMT</d:getlastmodified><d:getetag>W/"abc-1"</d:getetag></d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>
<d:response><d:href>/dav/in/sub/</d:href><d:propstat><d:prop><d:resourcetype><d:collection></d:collection></d:resourcetype></d:prop></d:propstat></d:response>
<d:response><d:href>/dav/in/..%2F..%2Fetc%2Fpasswd</d:href><d:propstat><d:prop><d:getcontentlength>1</d:getcontentlength></d:prop></d:propstat></d:response>
<d:response><d:href>/dav/in/x/../../y</d:href></d:response>
<d:response><d:href>/etc/passwd</d:href></d:response>
<d:response><d:href>/dav/in/..</d:href></d:response>
<d:response><d:href>/dav/in/a%5Cb</d:href></d:response>
</d:multistatus>"#;
        let all = multistatus(body);
        assert_eq!(all.len(), 8);
        assert_eq!(all[1].path, "dav/in/a b.csv");
        assert_eq!(all[1].size, 12);
        assert_eq!(all[1].etag.as_deref(), Some("abc-1"));
        assert!(all[1].mtime_ns > 0 && !all[1].is_dir);
        assert!(all[0].is_dir && all[2].is_dir);
        let (kids, dropped) = children("dav/in", all);
        let names: Vec<&str> = kids.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["a b.csv", "sub"]);
        assert_eq!(dropped, 5);
    }

    #[test]
    fn urls_escape_each_segment() {
        let (ep, _) = WebdavEndpoint::parse("http://127.0.0.1:8/dav/in%20box").unwrap();
        let d = Dav::new(ep);
        assert_eq!(
            d.url(&d.abs("sub/a b#1.csv")),
            "http://127.0.0.1:8/dav/in%20box/sub/a%20b%231.csv"
        );
        assert_eq!(normal_etag("W/\"x\""), "x");
    }
}
