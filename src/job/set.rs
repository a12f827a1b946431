//! `[source.set]`: document sets (companion files). A set is the files named by `members`
//! for one `{stem}`, like `12345.xml` + `12345.pdf`. The first member is the *lead*: it
//! is the file the job processes (its `[input]` reads it), it names the set, and the set
//! is taken once every member exists and has settled. The other members travel with it:
//! claimed, planned, archived or failed together.
//!
//! A *manifest set* (`manifest = "*.manifest"`) is a file listing its members instead:
//! the manifest is the lead, its entries (one name a line, a CSV column, or the text of
//! an XML element) name the other members, in their order.

use std::ops::Range;
use std::time::Duration;

use super::toml_reader::{Doc, Str, TableReader, parse_duration};

/// How a manifest lists its members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListFormat {
    /// One file name a line; blank lines and lines starting with `#` are skipped.
    Lines,
    /// A CSV file with a header row: the names are in the column with this header.
    Csv { column: String },
    /// An XML document: the names are the text of every element with this (local) name.
    Xml { element: String },
}

/// `[source.set] manifest`: the lead is a file listing the set's members.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub pattern: String,
    pub glob: globset::GlobMatcher,
    pub list: ListFormat,
}

impl PartialEq for Manifest {
    fn eq(&self, o: &Self) -> bool {
        self.pattern == o.pattern && self.list == o.list
    }
}
impl Eq for Manifest {}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The text before and after `{stem}`.
    pub prefix: String,
    pub suffix: String,
}

impl Member {
    pub fn name(&self, stem: &str) -> String {
        format!("{}{stem}{}", self.prefix, self.suffix)
    }

    /// The stem when `name` is this member's name for some non-empty stem.
    pub fn stem_of<'a>(&self, name: &'a str) -> Option<&'a str> {
        let s = name
            .strip_prefix(&self.prefix)?
            .strip_suffix(&self.suffix)?;
        (!s.is_empty()).then_some(s)
    }

    /// A glob taking this member's names.
    pub fn glob(&self) -> String {
        let esc = |s: &str| globset::escape(s);
        format!("{}*{}", esc(&self.prefix), esc(&self.suffix))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetSpec {
    /// The lead first. Empty for a manifest set.
    pub members: Vec<Member>,
    /// Set for a manifest set: the lead lists the other members.
    pub manifest: Option<Manifest>,
    /// An incomplete set whose lead or first member was seen this long ago goes to the
    /// error folder.
    pub timeout: Duration,
}

impl SetSpec {
    /// Which member `name` is, and its stem. When several match (`annex-7.pdf` is both
    /// `annex-{stem}.pdf` and `{stem}.pdf`), the one with the most literal text wins.
    pub fn which<'a>(&self, name: &'a str) -> Option<(usize, &'a str)> {
        self.members
            .iter()
            .enumerate()
            .filter_map(|(i, m)| {
                m.stem_of(name)
                    .map(|s| (i, s, m.prefix.len() + m.suffix.len()))
            })
            .max_by_key(|&(i, _, lit)| (lit, std::cmp::Reverse(i)))
            .map(|(i, s, _)| (i, s))
    }
}

/// The keys of `[source.set]` that say how a manifest lists its members.
struct ListKeys {
    list: Option<Str>,
    column: Option<Str>,
    element: Option<Str>,
}

/// Reads `[source.set]`: a set of `members` named by a common `{stem}`, or a `manifest`
/// that lists them; `timeout` (default 1h) for either.
pub fn read(doc: &mut Doc<'_>, mut t: TableReader<'_, '_>) -> Option<SetSpec> {
    let members = t.str_list(doc, "members");
    let manifest = t.str(doc, "manifest");
    let keys = ListKeys {
        list: t.str(doc, "list"),
        column: t.str(doc, "column"),
        element: t.str(doc, "element"),
    };
    let timeout = t.str(doc, "timeout");
    let span = t.span.clone();
    t.finish_as(doc, "source.set", "");
    let timeout = read_timeout(doc, timeout)?;
    if let Some(m) = manifest {
        if members.is_some() {
            doc.error(
                m.span.clone(),
                &m.key,
                "a set has either `members` (named by a common `{stem}`) or a `manifest` (a file listing them), not both",
            );
            return None;
        }
        let manifest = read_manifest(doc, m, keys, span)?;
        return Some(SetSpec {
            members: Vec::new(),
            manifest: Some(manifest),
            timeout,
        });
    }
    if let Some(l) = keys.list.or(keys.column).or(keys.element) {
        doc.error(
            l.span.clone(),
            &l.key,
            "`list`, `column` and `element` say how a manifest lists its files: the set needs `manifest`",
        );
        return None;
    }
    Some(SetSpec {
        members: read_members(doc, members, span)?,
        manifest: None,
        timeout,
    })
}

/// `timeout`: how long an incomplete set may wait, 1h by default.
fn read_timeout(doc: &mut Doc<'_>, timeout: Option<Str>) -> Option<Duration> {
    match timeout {
        None => Some(Duration::from_secs(3600)),
        Some(s) => match parse_duration(&s.value) {
            Ok(d) => Some(d),
            Err(e) => {
                doc.error(s.span.clone(), &s.key, e);
                None
            }
        },
    }
}

/// A manifest set: `manifest`, a pattern on the lead's name, and how it lists its members.
fn read_manifest(
    doc: &mut Doc<'_>,
    m: Str,
    keys: ListKeys,
    span: Range<usize>,
) -> Option<Manifest> {
    let glob = match globset::Glob::new(&m.value) {
        Ok(g) if !m.value.contains('/') => g.compile_matcher(),
        Ok(_) => {
            doc.error(
                m.span.clone(),
                &m.key,
                "expected a file name pattern without `/`, like \"*.manifest\"",
            );
            return None;
        }
        Err(e) => {
            doc.error(m.span.clone(), &m.key, format!("not a valid pattern: {e}"));
            return None;
        }
    };
    Some(Manifest {
        pattern: m.value,
        glob,
        list: read_list_format(doc, keys, span)?,
    })
}

/// `list` (`lines`, the default; `csv` with `column`; `xml` with `element`): how a
/// manifest lists its members.
fn read_list_format(doc: &mut Doc<'_>, keys: ListKeys, span: Range<usize>) -> Option<ListFormat> {
    let ListKeys {
        list,
        column,
        element,
    } = keys;
    let (key, message) = match (list.as_ref().map(|l| l.value.as_str()), column, element) {
        (None | Some("lines"), None, None) => return Some(ListFormat::Lines),
        (Some("csv"), Some(c), None) if !c.value.is_empty() => {
            return Some(ListFormat::Csv { column: c.value });
        }
        (Some("xml"), None, Some(e)) if !e.value.is_empty() => {
            return Some(ListFormat::Xml { element: e.value });
        }
        (Some("csv"), None, _) => (
            "source.set.column",
            "`list = \"csv\"` needs `column`: the header of the column that names the files"
                .to_string(),
        ),
        (Some("xml"), _, None) => (
            "source.set.element",
            "`list = \"xml\"` needs `element`: the name of the elements whose text names the files"
                .to_string(),
        ),
        (Some(l @ ("lines" | "csv" | "xml")), _, _) => (
            "source.set.list",
            format!(
                "`column` goes with `list = \"csv\"` and `element` with `list = \"xml\"` (list is {l:?})"
            ),
        ),
        (Some(other), _, _) => {
            let l = list.as_ref().expect("matched Some");
            doc.error(
                l.span.clone(),
                &l.key,
                format!("expected \"lines\", \"csv\" or \"xml\", found {other:?}"),
            );
            return None;
        }
        (None, _, _) => (
            "source.set.list",
            "`column` and `element` need `list = \"csv\"` or `list = \"xml\"`".to_string(),
        ),
    };
    doc.error(span, key, message);
    None
}

/// `members`: the set's file names, the lead first, each with `{stem}` once; at least two,
/// none twice.
fn read_members(
    doc: &mut Doc<'_>,
    members: Option<Vec<Str>>,
    span: Range<usize>,
) -> Option<Vec<Member>> {
    let Some(members) = members else {
        doc.error(
            span,
            "source.set.members",
            "missing `members` (the names of a set's files, the lead first, like [\"{stem}.xml\", \"{stem}.pdf\"]) or `manifest` (a pattern for a file that lists them, like \"*.manifest\")",
        );
        return None;
    };
    let out: Vec<Member> = members.iter().filter_map(|m| read_member(doc, m)).collect();
    if out.len() != members.len() {
        return None;
    }
    if out.len() < 2 {
        doc.error(
            span,
            "source.set.members",
            "a set needs at least two members",
        );
        return None;
    }
    if out.iter().enumerate().any(|(i, a)| out[..i].contains(a)) {
        doc.error(span, "source.set.members", "a member is listed twice");
        return None;
    }
    Some(out)
}

/// One of `members`: a file name with `{stem}` once and no other placeholder or `/`.
fn read_member(doc: &mut Doc<'_>, m: &Str) -> Option<Member> {
    match m.value.split_once("{stem}") {
        Some((p, s))
            if !s.contains("{stem}")
                && !p.contains(['{', '}', '/'])
                && !s.contains(['{', '}', '/']) =>
        {
            Some(Member {
                prefix: p.to_string(),
                suffix: s.to_string(),
            })
        }
        _ => {
            doc.error(
                m.span.clone(),
                &m.key,
                format!(
                    "expected a file name with `{{stem}}` once and no other placeholder or `/`, like \"{{stem}}.pdf\", found {:?}",
                    m.value
                ),
            );
            None
        }
    }
}

/// The largest manifest read: a list of file names, not a data file.
pub const MAX_MANIFEST: u64 = 1 << 20;

impl Manifest {
    /// The member names `bytes` (the manifest `own_name`) lists, in order, each checked:
    /// names in a manifest come from another system and are not trusted. Every bad entry
    /// is named in the error.
    pub fn members(&self, own_name: &str, bytes: &[u8]) -> Result<Vec<String>, String> {
        let text = std::str::from_utf8(bytes)
            .map_err(|e| format!("the manifest is not UTF-8 text ({e})"))?;
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let entries: Vec<String> = match &self.list {
            ListFormat::Lines => text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_string)
                .collect(),
            ListFormat::Csv { column } => csv_column(text, column)?,
            ListFormat::Xml { element } => xml_elements(text, element)?,
        };
        if entries.is_empty() {
            return Err("the manifest lists no file".into());
        }
        let mut bad = Vec::new();
        let mut out: Vec<String> = Vec::new();
        for e in entries {
            match check_entry(&e, own_name, &self.glob) {
                Err(why) => bad.push(format!("{e:?} {why}")),
                Ok(()) if out.contains(&e) => bad.push(format!("{e:?} is listed twice")),
                Ok(()) => out.push(e),
            }
        }
        if !bad.is_empty() {
            return Err(format!(
                "the manifest has {} bad entr{}: {}",
                bad.len(),
                if bad.len() == 1 { "y" } else { "ies" },
                bad.join("; ")
            ));
        }
        Ok(out)
    }
}

/// Whether one manifest entry is a plain name of a file in the manifest's folder.
fn check_entry(e: &str, own_name: &str, glob: &globset::GlobMatcher) -> Result<(), String> {
    if e.chars().any(|c| c.is_control()) {
        return Err("contains control characters".into());
    }
    let b = e.as_bytes();
    if e.starts_with(['/', '\\']) || (b.len() >= 2 && b[1] == b':' && b[0].is_ascii_alphabetic()) {
        return Err("is an absolute path (a manifest names files in its own folder)".into());
    }
    if e.split(['/', '\\']).any(|c| c == "..") {
        return Err("climbs out of the folder with `..`".into());
    }
    if e.contains(['/', '\\']) {
        return Err(
            "names a file in another folder (a manifest names files in its own folder)".into(),
        );
    }
    if e == "." {
        return Err("is not a file name".into());
    }
    if e.starts_with('.') {
        return Err("is a hidden or temporary name, which ferry never takes".into());
    }
    let stem = e.split('.').next().unwrap_or(e).trim_end();
    if crate::fsutil::is_reserved_name(stem) {
        return Err("is a reserved device name on Windows".into());
    }
    if e.ends_with(['.', ' ']) || e.contains(['<', '>', ':', '"', '|', '?', '*']) {
        return Err("is not a portable file name (Windows refuses it)".into());
    }
    if e.len() > 255 {
        return Err("is longer than 255 bytes".into());
    }
    if e == own_name || glob.is_match(e) {
        return Err("is a manifest itself".into());
    }
    Ok(())
}

fn csv_column(text: &str, column: &str) -> Result<Vec<String>, String> {
    let mut r = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(text.as_bytes());
    let headers = r
        .headers()
        .map_err(|e| format!("the manifest is not valid CSV: {e}"))?
        .clone();
    let i = headers
        .iter()
        .position(|h| h.trim() == column)
        .ok_or_else(|| {
            format!(
                "the manifest has no column {column:?} (its header: {})",
                headers.iter().collect::<Vec<_>>().join(", ")
            )
        })?;
    let mut out = Vec::new();
    for (n, rec) in r.records().enumerate() {
        let rec = rec.map_err(|e| format!("the manifest is not valid CSV: {e}"))?;
        match rec.get(i).map(str::trim) {
            Some(v) if !v.is_empty() => out.push(v.to_string()),
            _ => return Err(format!("row {} of the manifest has no {column:?}", n + 2)),
        }
    }
    Ok(out)
}

fn xml_elements(text: &str, element: &str) -> Result<Vec<String>, String> {
    use quick_xml::events::Event;
    let mut r = quick_xml::Reader::from_str(text);
    let mut out = Vec::new();
    // The text of the innermost open element of that name, while it is open.
    let mut depth_in = 0usize;
    let mut cur = String::new();
    let bad = |e: &dyn std::fmt::Display| format!("the manifest is not valid XML: {e}");
    loop {
        match r.read_event().map_err(|e| bad(&e))? {
            Event::Start(e) => {
                if e.local_name().into_inner() == element {
                    if depth_in > 0 {
                        return Err(format!("the manifest nests <{element}> elements"));
                    }
                    depth_in = 1;
                    cur.clear();
                } else if depth_in > 0 {
                    depth_in += 1;
                }
            }
            Event::Empty(e) if e.local_name().into_inner() == element => {
                return Err(format!("the manifest has an empty <{element}/>"));
            }
            Event::End(_) if depth_in > 0 => {
                depth_in -= 1;
                if depth_in == 0 {
                    out.push(cur.trim().to_string());
                }
            }
            Event::Text(t) if depth_in > 0 => {
                cur.push_str(&t.xml10_content());
            }
            Event::CData(t) if depth_in > 0 => {
                cur.push_str(&t.xml10_content());
            }
            Event::GeneralRef(g) if depth_in > 0 => {
                let name = g.xml10_content().into_owned();
                match g.resolve_char_ref() {
                    Ok(Some(c)) => cur.push(c),
                    Ok(None) => match quick_xml::escape::resolve_predefined_entity(&name) {
                        Some(s) => cur.push_str(s),
                        None => {
                            return Err(format!("the manifest uses an unknown entity &{name};"));
                        }
                    },
                    Err(e) => return Err(bad(&e)),
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if depth_in > 0 {
        return Err("the manifest is not valid XML: it ends inside an element".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_and_stems() {
        let m = Member {
            prefix: "IDX_".into(),
            suffix: ".xml".into(),
        };
        assert_eq!(m.stem_of("IDX_12345.xml"), Some("12345"));
        assert_eq!(m.stem_of("IDX_.xml"), None);
        assert_eq!(m.stem_of("12345.xml"), None);
        assert_eq!(m.name("9"), "IDX_9.xml");
        assert_eq!(m.glob(), "IDX_*.xml");
        let set = SetSpec {
            members: vec![
                Member {
                    prefix: "".into(),
                    suffix: ".pdf".into(),
                },
                Member {
                    prefix: "annex-".into(),
                    suffix: ".pdf".into(),
                },
            ],
            manifest: None,
            timeout: Duration::from_secs(1),
        };
        assert_eq!(set.which("7.pdf"), Some((0, "7")));
        assert_eq!(set.which("annex-7.pdf"), Some((1, "7")));
    }

    fn manifest(list: ListFormat) -> Manifest {
        Manifest {
            pattern: "*.manifest".into(),
            glob: globset::Glob::new("*.manifest").unwrap().compile_matcher(),
            list,
        }
    }

    #[test]
    fn manifest_lists() {
        let m = manifest(ListFormat::Lines);
        assert_eq!(
            m.members(
                "b.manifest",
                "\u{feff}# batch 1\r\na.pdf\r\n\r\n b c.pdf \n".as_bytes()
            )
            .unwrap(),
            ["a.pdf", "b c.pdf"]
        );
        let m = manifest(ListFormat::Csv {
            column: "file".into(),
        });
        assert_eq!(
            m.members("b.manifest", b"seq,file\n1,x.pdf\n2,\"y,1.pdf\"\n")
                .unwrap(),
            ["x.pdf", "y,1.pdf"]
        );
        assert!(
            m.members("b.manifest", b"seq,name\n1,x.pdf\n")
                .unwrap_err()
                .contains("no column")
        );
        let m = manifest(ListFormat::Xml {
            element: "File".into(),
        });
        assert_eq!(
            m.members(
                "b.manifest",
                b"<Batch><File>a.pdf</File><n:File xmlns:n='u'>R&amp;D.pdf</n:File><Other>z</Other></Batch>"
            )
            .unwrap(),
            ["a.pdf", "R&D.pdf"]
        );
        assert!(
            m.members("b.manifest", b"<Batch><File>a.pdf</Batch>")
                .is_err()
        );
    }

    #[test]
    fn hostile_manifest_entries_are_refused_all_named() {
        let m = manifest(ListFormat::Lines);
        let e = m
            .members(
                "b.manifest",
                b"ok.pdf\n../x.pdf\n/etc/passwd\nCON.pdf\nsub/a.pdf\nC:\\x.pdf\n.ferry-tmp\nok.pdf\nother.manifest\nlpt1\n",
            )
            .unwrap_err();
        for s in [
            "\"../x.pdf\" climbs",
            "\"/etc/passwd\" is an absolute",
            "\"CON.pdf\" is a reserved",
            "\"sub/a.pdf\" names a file in another folder",
            "\"C:\\\\x.pdf\" is an absolute",
            "\".ferry-tmp\" is a hidden",
            "\"ok.pdf\" is listed twice",
            "\"other.manifest\" is a manifest",
            "\"lpt1\" is a reserved",
        ] {
            assert!(e.contains(s), "{s} in {e}");
        }
        assert!(e.starts_with("the manifest has 9 bad entries"), "{e}");
        assert!(
            m.members("b.manifest", b"\n# nothing\n")
                .unwrap_err()
                .contains("no file")
        );
        assert!(
            m.members("b.manifest", b"a\xff.pdf")
                .unwrap_err()
                .contains("UTF-8")
        );
    }
}
