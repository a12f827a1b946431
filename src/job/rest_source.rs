//! The REST source keys of a job file: `[source] http = "https://host/orders?changed_since={watermark}"`
//! with `records`, `next` or `page_param`, `watermark`, `since` and the HTTP keys every
//! endpoint has (`[source.headers]`, basic auth, `ca_file`, `timeout`: [`super::http::read_access`])
//! (issue 17; docs/rest-source.md). Read with the job's TableReader so every problem has a
//! file:line:col. Nothing here connects; secrets stay unresolved.

use std::path::Path;
use std::time::Duration;

use crate::job::http::{HttpAccess, check_url, read_access};
use crate::job::toml_reader::{Doc, Str, TableReader};

/// The placeholder of the URL the watermark goes into (URL-encoded).
pub const WATERMARK: &str = "{watermark}";
/// `max_pages` when the job does not say.
pub const DEFAULT_MAX_PAGES: u64 = 1000;

/// How the next page of an answer is found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Paging {
    /// One request per run.
    None,
    /// `next = "links.next"`: a URL (absolute or relative) at this path of the answer; the
    /// last page has none (absent, `null` or `""`).
    Field(Vec<String>),
    /// `next = "link"`: the `Link: <...>; rel="next"` header.
    LinkHeader,
    /// `page_param = "page"`: page numbers from `start`, until a page without records.
    Number { param: String, start: u64 },
}

/// A `[source] http = ...`.
#[derive(Debug, Clone)]
pub struct RestSource {
    /// The URL as written, `{watermark}` in it replaced at each run.
    pub url: String,
    pub access: HttpAccess,
    /// The path to the array of records in an answer (`data.items`); empty: the answer is
    /// the array.
    pub records: Vec<String>,
    pub paging: Paging,
    pub max_pages: u64,
    /// The record field (a path, `meta.changed`) whose highest value is the next watermark.
    pub watermark: Option<String>,
    /// The watermark before the first run (default: empty).
    pub since: Option<String>,
    /// How often the service is asked on a job without `schedule` or `every`.
    pub poll: Duration,
}

impl RestSource {
    /// The URL for logs, history and `ferry status` (it holds no secret: credentials are
    /// refused in it, and go in headers or `password`).
    pub fn display(&self) -> String {
        self.url.clone()
    }

    /// The path of the watermark field, split at dots.
    pub fn watermark_path(&self) -> Option<Vec<String>> {
        self.watermark.as_deref().map(split_path)
    }
}

/// `data.items` as its steps; `""` is no step (the top level).
pub fn split_path(p: &str) -> Vec<String> {
    p.split('.')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Reads the REST keys of `[source]` (the caller has seen `http`).
pub fn read_rest(
    doc: &mut Doc<'_>,
    root: &Path,
    t: &mut TableReader<'_, '_>,
    poll: Duration,
) -> Option<RestSource> {
    let url = t.str(doc, "http")?;
    let mut ok = check_rest_url(doc, &url);
    let access = read_access(doc, root, t, &url, "source");
    let records = t
        .str(doc, "records")
        .map_or_else(Vec::new, |s| split_path(&s.value));
    let paging = read_paging(doc, t);
    let max_pages = match t.uint(doc, "max_pages") {
        Some(0) => {
            let span = t.span_of("max_pages");
            doc.error(span, "source.max_pages", "expected at least 1");
            None
        }
        Some(n) => Some(n),
        None if t.has("max_pages") => None,
        None => Some(DEFAULT_MAX_PAGES),
    };
    let watermark = t.str(doc, "watermark");
    let since = t.str(doc, "since");
    if let Some(s) = &since
        && watermark.is_none()
    {
        doc.error(
            s.span.clone(),
            &s.key,
            "`since` is the first value of the watermark: it only counts with `watermark`",
        );
        ok = false;
    }
    let uses = url.value.contains(WATERMARK);
    match (&watermark, uses) {
        (Some(w), false) => {
            doc.error(
                w.span.clone(),
                &w.key,
                "with `watermark`, the URL must carry `{watermark}` (e.g. \"https://host/orders?changed_since={watermark}\"): otherwise every run reads the same records again",
            );
            ok = false;
        }
        (None, true) => {
            doc.error(
                url.span.clone(),
                &url.key,
                "the URL has `{watermark}`: name the record field it comes from with `watermark = \"changed_at\"`",
            );
            ok = false;
        }
        (Some(w), true) if split_path(&w.value).is_empty() => {
            doc.error(
                w.span.clone(),
                &w.key,
                "expected a record field, e.g. \"changed_at\"",
            );
            ok = false;
        }
        _ => {}
    }
    if !ok {
        return None;
    }
    Some(RestSource {
        url: url.value,
        access: access?,
        records,
        paging: paging?,
        max_pages: max_pages?,
        watermark: watermark.map(|w| w.value),
        since: since.map(|s| s.value),
        poll,
    })
}

/// The URL: `http(s)://`, no credentials, and no `{...}` but `{watermark}`.
fn check_rest_url(doc: &mut Doc<'_>, url: &Str) -> bool {
    if let Err(e) = check_url(&url.value) {
        doc.error(url.span.clone(), &url.key, e);
        return false;
    }
    let rest = url.value.replace(WATERMARK, "");
    if let Some(at) = rest.find(['{', '}']) {
        let other: String = rest[at..].chars().take_while(|c| *c != '}').collect();
        doc.error(
            url.span.clone(),
            &url.key,
            format!(
                "the only placeholder of the URL is `{WATERMARK}`, found `{other}}}` (write a literal brace as %7B or %7D)"
            ),
        );
        return false;
    }
    true
}

/// `next` or `page_param` (with `page_start`), not both.
fn read_paging(doc: &mut Doc<'_>, t: &mut TableReader<'_, '_>) -> Option<Paging> {
    let next = t.str(doc, "next");
    let param = t.str(doc, "page_param");
    let start = t.uint(doc, "page_start");
    if start.is_some() && param.is_none() {
        let span = t.span_of("page_start");
        doc.error(
            span,
            "source.page_start",
            "`page_start` is the first page number of `page_param`: it only counts with `page_param`",
        );
        return None;
    }
    match (next, param) {
        (Some(n), Some(_)) => {
            doc.error(
                n.span.clone(),
                &n.key,
                "a source pages either by `next` (a link to the next page) or by `page_param` (page numbers), not both",
            );
            None
        }
        (Some(n), None) if n.value == "link" => Some(Paging::LinkHeader),
        (Some(n), None) if split_path(&n.value).is_empty() => {
            doc.error(
                n.span.clone(),
                &n.key,
                "expected the path of the next page's URL in the answer (e.g. \"links.next\"), or \"link\" for the Link header",
            );
            None
        }
        (Some(n), None) => Some(Paging::Field(split_path(&n.value))),
        (None, Some(p)) if p.value.is_empty() || p.value.contains(['&', '=', '?', '#']) => {
            doc.error(
                p.span.clone(),
                &p.key,
                format!(
                    "expected a query parameter name such as \"page\", found {:?}",
                    p.value
                ),
            );
            None
        }
        (None, Some(p)) => Some(Paging::Number {
            param: p.value,
            start: start.unwrap_or(1),
        }),
        (None, None) => Some(Paging::None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_at_dots() {
        assert_eq!(split_path("data.items"), vec!["data", "items"]);
        assert!(split_path("").is_empty());
        assert_eq!(split_path("id"), vec!["id"]);
    }
}
