//! The PDF parts of a job file: `[pdf]` (limits), `[[output]] extract` (attachments or
//! pages), `[source] contains` / `matches` (content routing) and `[source.set]` (document
//! sets).

use std::time::Duration;

use globset::GlobSet;
use regex::Regex;

use super::toml_reader::{Doc, Str, TableReader, parse_duration};
use crate::formats::pdf::{PageRange, PageSplit, PdfLimits};

/// What an `[[output]]` with `extract` takes out of a PDF, one file per piece.
#[derive(Debug, Clone)]
pub enum Extract {
    /// Embedded files whose (safe) name matches `include` (every file when `None`). With
    /// `required`, a PDF without any is an error.
    Attachments {
        include: Option<GlobSet>,
        patterns: Vec<String>,
        required: bool,
    },
    /// Page ranges as separate PDFs.
    Pages(PageSplit),
    /// Every PDF member of a document set as one PDF, in member order.
    Merge,
}

/// The record fields an extract output's name may use.
pub fn extract_fields(e: &Extract) -> &'static [&'static str] {
    match e {
        Extract::Attachments { .. } => &["attachment"],
        Extract::Pages(_) => &["page", "last_page", "part"],
        Extract::Merge => &[],
    }
}

/// Reads `[pdf]`.
pub fn read_limits(doc: &mut Doc<'_>, t: Option<TableReader<'_, '_>>) -> Option<PdfLimits> {
    let d = PdfLimits::default();
    let Some(mut t) = t else { return Some(d) };
    let timeout = match t.str(doc, "timeout") {
        None => Some(d.timeout),
        Some(s) => match parse_duration(&s.value) {
            Ok(v) if v >= Duration::from_millis(10) => Some(v),
            Ok(_) => {
                doc.error(s.span.clone(), &s.key, "expected at least \"10ms\"");
                None
            }
            Err(e) => {
                doc.error(s.span.clone(), &s.key, e);
                None
            }
        },
    };
    let max_size = t.uint(doc, "max_size").unwrap_or(d.max_size);
    let max_stream = t.uint(doc, "max_stream").unwrap_or(d.max_stream);
    let span = t.span.clone();
    t.finish_as(doc, "pdf", "");
    if max_size == 0 || max_stream == 0 {
        doc.error(
            span,
            "pdf",
            "max_size and max_stream must be at least 1 byte",
        );
        return None;
    }
    Some(PdfLimits {
        timeout: timeout?,
        max_size,
        max_stream,
    })
}

/// Reads `extract` and its keys from an `[[output]]`; `Some(None)`: not an extract output.
pub fn read_extract(doc: &mut Doc<'_>, t: &mut TableReader<'_, '_>) -> Option<Option<Extract>> {
    let kind = t.str(doc, "extract");
    let attachments = t.str_list(doc, "attachments");
    let required = t.bool(doc, "required");
    let pages = t.uint(doc, "pages");
    let ranges = t.str_list(doc, "ranges");
    let Some(kind) = kind else {
        if attachments.is_some() || required.is_some() || pages.is_some() || ranges.is_some() {
            doc.error(
                t.span.clone(),
                &format!("{}.extract", t.path),
                "`attachments`, `required`, `pages` and `ranges` need `extract = \"attachments\"` or `extract = \"pages\"`",
            );
            return None;
        }
        return Some(None);
    };
    match kind.value.as_str() {
        "attachments" => {
            let patterns: Vec<Str> = attachments.unwrap_or_default();
            let include = if patterns.is_empty() {
                None
            } else {
                Some(glob_set(doc, &patterns)?)
            };
            Some(Some(Extract::Attachments {
                include,
                patterns: patterns.into_iter().map(|s| s.value).collect(),
                required: required.unwrap_or(true),
            }))
        }
        "pages" => {
            let how = match (pages, ranges) {
                (Some(_), Some(r)) => {
                    doc.error(
                        r[0].span.clone(),
                        &r[0].key,
                        "give `pages` (pages per file) or `ranges`, not both",
                    );
                    return None;
                }
                (Some(0), None) => {
                    doc.error(t.span_of("pages"), "pages", "expected at least 1");
                    return None;
                }
                (Some(n), None) => PageSplit::Every(u32::try_from(n).unwrap_or(u32::MAX)),
                (None, Some(r)) => {
                    let mut out = Vec::new();
                    for s in &r {
                        match PageRange::parse(&s.value) {
                            Ok(p) => out.push(p),
                            Err(e) => doc.error(s.span.clone(), &s.key, e),
                        }
                    }
                    if out.len() != r.len() || out.is_empty() {
                        return None;
                    }
                    PageSplit::Ranges(out)
                }
                (None, None) => PageSplit::Every(1),
            };
            Some(Some(Extract::Pages(how)))
        }
        "merge" => Some(Some(Extract::Merge)),
        other => {
            doc.error(
                kind.span.clone(),
                &kind.key,
                format!("expected one of \"attachments\", \"pages\", \"merge\", found {other:?}"),
            );
            None
        }
    }
}

/// Globs on embedded files' names match in either case: producers spell the same
/// attachment differently (`ZUGFeRD-invoice.xml`, `zugferd-invoice.xml`).
pub fn glob_set(doc: &mut Doc<'_>, patterns: &[Str]) -> Option<GlobSet> {
    super::compile_globs(doc, patterns, false, true)
}

/// `[source] contains` / `matches`: which PDFs a job takes by their text.
#[derive(Debug, Clone)]
pub struct ContentRule {
    /// Every one of these texts must occur (case-sensitive).
    pub contains: Vec<String>,
    /// And this pattern must match.
    pub matches: Option<Regex>,
}

impl ContentRule {
    pub fn accepts(&self, text: &str) -> bool {
        self.contains.iter().all(|c| text.contains(c.as_str()))
            && self.matches.as_ref().is_none_or(|r| r.is_match(text))
    }
}

/// Reads `contains` and `matches` from `[source]`.
pub fn read_content_rule(
    doc: &mut Doc<'_>,
    t: &mut TableReader<'_, '_>,
) -> Option<Option<ContentRule>> {
    let contains = t.str_list(doc, "contains");
    let matches = t.str(doc, "matches");
    if contains.is_none() && matches.is_none() {
        return Some(None);
    }
    let re = match &matches {
        Some(m) => match regex::RegexBuilder::new(&m.value).multi_line(true).build() {
            Ok(r) => Some(r),
            Err(e) => {
                doc.error(m.span.clone(), &m.key, format!("expected a regex: {e}"));
                return None;
            }
        },
        None => None,
    };
    Some(Some(ContentRule {
        contains: contains
            .unwrap_or_default()
            .into_iter()
            .map(|s| s.value)
            .collect(),
        matches: re,
    }))
}
