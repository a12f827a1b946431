//! REST sources (issue 17; docs/rest-source.md): a run asks the service for the records
//! changed since the watermark, page after page, and writes each record as one JSON line
//! into the run's part file. Everything else, staging the part as one file, the journal's
//! `db_source_runs`, the watermark that advances only once the file is done, schedules and
//! crash recovery, is the database source's run lifecycle ([`crate::sources::database`]).
//!
//! Only one page is held in memory at a time (at most [`MAX_PAGE`] bytes): its records are
//! written out before the next page is asked for. Requests go through the HTTP outputs'
//! client ([`crate::protocol::http`]): TLS verified, no redirects followed, headers and
//! basic authentication from [`crate::job::http::HttpAccess`], secrets resolved per run.

use std::io::Write;

use serde_json::Value;

use crate::job::rest_source::{Paging, RestSource, WATERMARK};
use crate::protocol::http as client;
use crate::sources::database::Fetched;
use crate::sources::database::rows::{self, Kind};

/// The largest answer (one page) read.
pub const MAX_PAGE: u64 = 64 * 1024 * 1024;

/// One run's requests, the records into `file` (fsynced at the end). `since` is the
/// watermark put into the URL (`None`: empty).
pub async fn fetch(
    src: &RestSource,
    since: Option<&str>,
    file: std::fs::File,
) -> Result<Fetched, String> {
    let src = src.clone();
    let since = since.map(str::to_string);
    tokio::task::spawn_blocking(move || fetch_pages(&src, since.as_deref(), file))
        .await
        .map_err(|e| e.to_string())?
}

fn fetch_pages(
    src: &RestSource,
    since: Option<&str>,
    file: std::fs::File,
) -> Result<Fetched, String> {
    let agent = client::agent(&src.access)?;
    let headers = src
        .access
        .request_headers(vec![("Accept".into(), "application/json".into())])?;
    let origin = url::Url::parse(&src.url.replace(WATERMARK, ""))
        .map_err(|e| format!("the URL {:?} cannot be read: {e}", src.display()))?;
    let mut out = Records::new(file, src.watermark_path());
    let mut url = first_url(src, since)?;
    for page_no in 1..=src.max_pages {
        let body = get_page(&agent, &url, &headers, page_no)?;
        let n = out.write_page(&body, &src.records, page_no)?;
        match next_url(src, &url, &body, n, page_no)? {
            Some(next) if same_origin(&next, &origin) => url = next,
            Some(next) => {
                return Err(format!(
                    "the next page's URL {} (page {page_no}) points to another server than {}: ferry sends the request's credentials only there",
                    next,
                    origin.origin().ascii_serialization()
                ));
            }
            None => return out.finish(),
        }
    }
    Err(format!(
        "the service still offers a next page after `max_pages` = {} pages; nothing is staged and the watermark stays (raise `max_pages`, or let each run ask for fewer records)",
        src.max_pages
    ))
}

/// The first request's URL: `{watermark}` replaced (URL-encoded), and the first page
/// number with `page_param`.
fn first_url(src: &RestSource, since: Option<&str>) -> Result<url::Url, String> {
    let text = src.url.replace(WATERMARK, &encode(since.unwrap_or("")));
    let mut url = url::Url::parse(&text)
        .map_err(|e| format!("the URL {:?} cannot be read: {e}", src.display()))?;
    if let Paging::Number { param, start } = &src.paging {
        set_param(&mut url, param, *start);
    }
    Ok(url)
}

/// Every byte but RFC 3986's unreserved ones as `%XX`.
fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `url` with `param=n`, replacing a value it had.
fn set_param(url: &mut url::Url, param: &str, n: u64) {
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| k != param)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let mut q = url.query_pairs_mut();
    q.clear();
    for (k, v) in &kept {
        q.append_pair(k, v);
    }
    q.append_pair(param, &n.to_string());
}

fn same_origin(a: &url::Url, b: &url::Url) -> bool {
    a.origin() == b.origin()
}

/// One page: a 2xx answer's body as JSON. Anything else fails the run.
fn get_page(
    agent: &ureq::Agent,
    url: &url::Url,
    headers: &[(String, String)],
    page_no: u64,
) -> Result<(Value, Option<String>), String> {
    let page = client::get(agent, url.as_str(), headers, MAX_PAGE)
        .map_err(|e| format!("GET {url} (page {page_no}): {e}"))?;
    if !(200..300).contains(&page.status) {
        let redirect = if (300..400).contains(&page.status) {
            " (redirects are not followed)"
        } else {
            ""
        };
        return Err(format!(
            "GET {url} (page {page_no}): HTTP {} {}{redirect}: {}",
            page.status,
            page.reason,
            client::excerpt(&page.body)
        ));
    }
    let body: Value = serde_json::from_slice(&page.body).map_err(|e| {
        format!(
            "GET {url} (page {page_no}): the answer is not JSON ({e}): {}",
            client::excerpt(&page.body)
        )
    })?;
    Ok((body, page.link_next))
}

/// The next page's URL, or `None` after the last page. `n`: the records of this page.
fn next_url(
    src: &RestSource,
    url: &url::Url,
    (body, link): &(Value, Option<String>),
    n: u64,
    page_no: u64,
) -> Result<Option<url::Url>, String> {
    let target = match &src.paging {
        Paging::None => return Ok(None),
        Paging::Number { param, start } => {
            if n == 0 {
                return Ok(None);
            }
            let mut next = url.clone();
            set_param(&mut next, param, start + page_no);
            return Ok(Some(next));
        }
        Paging::LinkHeader => link.clone(),
        Paging::Field(path) => match at_path(body, path) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.is_empty() => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => {
                return Err(format!(
                    "page {page_no}: expected the next page's URL (a string) at `{}`, found {}",
                    path.join("."),
                    kind_of(other)
                ));
            }
        },
    };
    target
        .map(|t| {
            url.join(&t)
                .map_err(|e| format!("page {page_no}: the next page's URL {t:?}: {e}"))
        })
        .transpose()
}

fn at_path<'v>(v: &'v Value, path: &[String]) -> Option<&'v Value> {
    path.iter().try_fold(v, |v, step| v.get(step.as_str()))
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The part file as JSON lines, and the highest watermark value seen.
struct Records {
    out: std::io::BufWriter<std::fs::File>,
    watermark: Option<Vec<String>>,
    max: Option<String>,
    kind: Kind,
    rows: u64,
}

impl Records {
    fn new(file: std::fs::File, watermark: Option<Vec<String>>) -> Records {
        Records {
            out: std::io::BufWriter::with_capacity(256 * 1024, file),
            watermark,
            max: None,
            kind: Kind::Text,
            rows: 0,
        }
    }

    /// Writes the records of one page; returns how many it had.
    fn write_page(
        &mut self,
        (body, _): &(Value, Option<String>),
        path: &[String],
        page_no: u64,
    ) -> Result<u64, String> {
        let shown = if path.is_empty() {
            "the top level".to_string()
        } else {
            format!("`{}`", path.join("."))
        };
        let records = match at_path(body, path) {
            Some(Value::Array(a)) => a.as_slice(),
            Some(Value::Null) => &[],
            None => {
                return Err(format!(
                    "page {page_no}: the answer has no {shown} (`records` names the path to the array of records, e.g. \"data.items\")"
                ));
            }
            Some(other) => {
                return Err(format!(
                    "page {page_no}: expected an array of records at {shown}, found {}",
                    kind_of(other)
                ));
            }
        };
        for (i, r) in records.iter().enumerate() {
            if !r.is_object() {
                return Err(format!(
                    "page {page_no}, record {}: expected an object, found {}",
                    i + 1,
                    kind_of(r)
                ));
            }
            self.see_watermark(r);
            serde_json::to_writer(&mut self.out, r).map_err(|e| format!("staging: {e}"))?;
            self.out
                .write_all(b"\n")
                .map_err(|e| format!("staging: {e}"))?;
            self.rows += 1;
        }
        Ok(records.len() as u64)
    }

    /// Keeps the record's watermark value when it is the highest yet: numbers compare as
    /// exact decimals, ISO dates and times as times, other text byte by byte.
    fn see_watermark(&mut self, r: &Value) {
        let Some(path) = &self.watermark else { return };
        let (v, kind) = match at_path(r, path) {
            Some(Value::Number(n)) => (n.to_string(), Kind::Number),
            Some(Value::String(s)) if looks_like_time(s) => (s.clone(), Kind::Time),
            Some(Value::String(s)) => (s.clone(), Kind::Text),
            _ => return,
        };
        if self.max.is_none() {
            self.kind = kind;
        }
        if self
            .max
            .as_deref()
            .is_none_or(|m| rows::higher(self.kind, &v, m))
        {
            self.max = Some(v);
        }
    }

    fn finish(self) -> Result<Fetched, String> {
        let f = self
            .out
            .into_inner()
            .map_err(|e| format!("staging: {}", e.error()))?;
        f.sync_all().map_err(|e| format!("staging: {e}"))?;
        Ok(Fetched {
            rows: self.rows,
            max: self.max,
            kind: self.kind,
        })
    }
}

/// `2026-12-03`, `2026-12-03T18:40:15.25Z`: compared as times (fractions padded).
fn looks_like_time(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 10
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[5..7].iter().all(u8::is_ascii_digit)
        && b[7] == b'-'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watermarks_are_url_encoded() {
        assert_eq!(encode("2026-12-03T10:00:00Z"), "2026-12-03T10%3A00%3A00Z");
        assert_eq!(encode("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
    }

    #[test]
    fn page_numbers_replace_the_parameter() {
        let mut u = url::Url::parse("http://h/o?since=1&page=7&x=y").unwrap();
        set_param(&mut u, "page", 2);
        assert_eq!(u.as_str(), "http://h/o?since=1&x=y&page=2");
    }

    #[test]
    fn the_highest_watermark_is_kept() {
        let f = tempfile_in_tmp();
        let mut r = Records::new(f, Some(vec!["t".into()]));
        for t in [
            "2026-12-03T10:00:00.5Z",
            "2026-12-03T10:00:01Z",
            "2026-12-03T10:00:00Z",
        ] {
            r.see_watermark(&serde_json::json!({ "t": t }));
        }
        assert_eq!(r.max.as_deref(), Some("2026-12-03T10:00:01Z"));
        let mut r = Records::new(tempfile_in_tmp(), Some(vec!["n".into()]));
        for n in [9, 10, 2] {
            r.see_watermark(&serde_json::json!({ "n": n }));
        }
        assert_eq!(r.max.as_deref(), Some("10"));
    }

    fn tempfile_in_tmp() -> std::fs::File {
        let p = std::env::temp_dir().join(format!(
            "ferry-rest-test-{}-{}",
            std::process::id(),
            crate::fsutil::temp_name()
        ));
        let f = std::fs::File::create(&p).unwrap();
        let _ = std::fs::remove_file(&p);
        f
    }
}
