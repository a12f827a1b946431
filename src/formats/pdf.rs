//! PDF in: text, metadata, embedded files and page operations, with
//! [lopdf](https://docs.rs/lopdf).
//!
//! PDFs come from outside and lopdf is a parser of a famously loose format, so every call
//! into it runs through [`guarded`]: on a worker thread of its own, inside `catch_unwind`,
//! with the job's time limit. A file that makes the parser panic, or that takes longer
//! than the limit, fails with a reason instead of taking ferry down or stalling its job.
//! Memory is bounded by refusing files over `max_size` before they are read (lopdf holds
//! the whole file and its objects in memory, roughly two to three times the file's size)
//! and by decoding every stream with a limit (`max_stream`), so a decompression bomb fails
//! instead of filling memory.
//!
//! Theory of the parts:
//!
//! - **Text** is lopdf's `extract_text`, page by page, in content-stream order (a label and
//!   its value often come out on adjacent lines). Pages are joined with a form feed line,
//!   as pdftotext does. A PDF without any text (a scan with no text layer) is an error of
//!   its own, never an empty success.
//! - **Attachments** are read from the `/Names /EmbeddedFiles` tree (its `/Kids` followed
//!   with a depth limit and a cycle check) and from the catalog's `/AF` array (Factur-X
//!   lists its XML there; pdfdetach misses files listed only there). The content is
//!   `/EF /F`, else `/EF /UF`; the name `/UF`, else `/F`, else the tree key; duplicates
//!   (the same stream listed twice) are dropped; names are reduced to a safe base name.
//! - **Pages** are split by deleting the other pages from a copy and pruning what no page
//!   uses; merging renumbers each document's objects and hangs every page under one new
//!   page tree.

use std::collections::{BTreeMap, HashSet};
use std::io::Read as _;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use lopdf::{Dictionary, Document, LoadOptions, Object, ObjectId};

/// Limits on the PDF work of one file; `[pdf]` in a job file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PdfLimits {
    /// The longest one file's PDF work may take.
    pub timeout: Duration,
    /// The largest PDF read at all, in bytes.
    pub max_size: u64,
    /// The largest a single stream (a page's content, an attachment) may decode to.
    pub max_stream: u64,
}

/// 60 s per file, 256 MiB files, 64 MiB streams.
impl Default for PdfLimits {
    fn default() -> Self {
        PdfLimits {
            timeout: Duration::from_secs(60),
            max_size: 256 * 1024 * 1024,
            max_stream: 64 * 1024 * 1024,
        }
    }
}

/// How deep a name tree or page tree is followed: real files use two or three levels.
const MAX_DEPTH: usize = 32;

/// Runs `f` on a worker thread, catching a panic and giving up after `timeout`. A worker
/// that runs over its time is abandoned (a thread cannot be killed): it holds its memory
/// and a CPU until it finishes on its own, but ferry and the job go on.
pub fn guarded<T, F>(timeout: Duration, f: F) -> Result<T, String>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, String> + Send + 'static,
{
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    let spawned = std::thread::Builder::new()
        .name("ferry-pdf".into())
        // Deeply nested objects recurse in the parser: a large stack turns what would be
        // a stack overflow (an abort) into ordinary work.
        .stack_size(256 * 1024 * 1024)
        .spawn(move || {
            let r = catch_unwind(AssertUnwindSafe(f));
            let _ = tx.send(r);
        });
    if let Err(e) = spawned {
        return Err(format!("cannot start a PDF worker: {e}"));
    }
    match rx.recv_timeout(timeout) {
        Ok(Ok(r)) => r,
        Ok(Err(panic)) => {
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown cause".into());
            Err(format!(
                "the PDF reader failed on this file (a malformed PDF): {msg}"
            ))
        }
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Err(format!(
            "reading the PDF took longer than {} s (pdf.timeout); it was abandoned",
            timeout.as_secs_f64()
        )),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            Err("the PDF worker ended without an answer".into())
        }
    }
}

/// Parses `bytes` as a PDF within `limits`. Not guarded: call it inside [`guarded`].
pub fn load(bytes: &[u8], limits: &PdfLimits) -> Result<Document, String> {
    if bytes.len() as u64 > limits.max_size {
        return Err(too_big(bytes.len() as u64, limits));
    }
    if bytes.is_empty() {
        return Err("the file is empty, not a PDF".into());
    }
    let head = &bytes[..bytes.len().min(1024)];
    if !head.windows(5).any(|w| w == b"%PDF-") {
        return Err("not a PDF: no `%PDF-` header in the first 1024 bytes".into());
    }
    if !ends_with_eof(bytes) {
        return Err(TRUNCATED.into());
    }
    let options = LoadOptions {
        max_decompressed_size: Some(limits.max_stream as usize),
        ..LoadOptions::default()
    };
    let doc = Document::load_mem_with_options(bytes, options)
        .map_err(|e| format!("cannot read the PDF (corrupt or truncated?): {e}"))?;
    if doc.is_encrypted() && doc.encryption_state.is_none() {
        return Err(
            "the PDF is protected by a password; ferry cannot read it (ask the sender for an unprotected copy)"
                .into(),
        );
    }
    if doc.get_pages().is_empty() {
        return Err("the PDF has no pages (a broken page tree or cross-reference table?)".into());
    }
    Ok(doc)
}

/// Why a PDF without its end marker is refused.
const TRUNCATED: &str = "the PDF is truncated or damaged: its last 1024 bytes hold no `%%EOF` end marker (an incomplete upload or copy?); ask the sender for the whole file";

/// Whether a PDF ends as every complete one does: `%%EOF` in its last 1024 bytes (where
/// readers look for it; a few producers write bytes after it). A file cut off in transfer
/// lacks it, and lopdf would otherwise rebuild what it can of it: a part of the text, or
/// none, that would pass for the whole document or for a scan.
fn ends_with_eof(bytes: &[u8]) -> bool {
    let tail = &bytes[bytes.len().saturating_sub(1024)..];
    tail.windows(5).any(|w| w == b"%%EOF")
}

/// What a record input takes from a PDF.
pub enum Want {
    /// The text of its pages.
    Text,
    /// The first embedded file whose name matches (the pattern as written, for messages).
    Attachment(globset::GlobMatcher, String),
}

/// Reads what a record input needs from a PDF's bytes, guarded: the bytes to read records
/// from, and the document's facts ([`info`]; with an attachment, also `attachment`, its
/// name).
pub fn read_for_records(
    bytes: Vec<u8>,
    limits: PdfLimits,
    want: Want,
) -> Result<(Vec<u8>, BTreeMap<String, String>), String> {
    guarded(limits.timeout, move || {
        let doc = load(&bytes, &limits)?;
        let mut meta = info(&doc);
        let data =
            match want {
                Want::Text => text(&doc, &limits)?.into_bytes(),
                Want::Attachment(m, pattern) => {
                    let all = attachments(&doc, &limits)?;
                    let names: Vec<String> = all.iter().map(|a| a.name.clone()).collect();
                    let a = all.into_iter().find(|a| m.is_match(&a.name)).ok_or_else(|| {
                    if names.is_empty() {
                        format!("the PDF has no embedded files; expected one matching {pattern:?}")
                    } else {
                        format!(
                            "the PDF has no embedded file matching {pattern:?}; it has {}",
                            names.join(", ")
                        )
                    }
                })?;
                    meta.insert("attachment".into(), a.name);
                    a.data
                }
            };
        Ok((data, meta))
    })
}

/// Refuses a file over `max_size` by its size on disk, before a byte of it is read.
pub fn check_size(path: &std::path::Path, limits: &PdfLimits) -> Result<(), String> {
    let size = std::fs::metadata(path)
        .map_err(|e| format!("cannot read the file: {e}"))?
        .len();
    check_len(size, limits)
}

/// Refuses an open file over `max_size` by its size, before a byte of it is read.
pub fn check_file(f: &std::fs::File, limits: &PdfLimits) -> Result<(), String> {
    let size = f
        .metadata()
        .map_err(|e| format!("cannot read the file: {e}"))?
        .len();
    check_len(size, limits)
}

fn check_len(size: u64, limits: &PdfLimits) -> Result<(), String> {
    if size > limits.max_size {
        return Err(too_big(size, limits));
    }
    Ok(())
}

/// Reads a whole file into memory, refusing one larger than `max_size` before reading it.
pub fn read_limited(r: &mut impl std::io::Read, limits: &PdfLimits) -> Result<Vec<u8>, String> {
    let mut buf = Vec::new();
    std::io::Read::take(&mut *r, limits.max_size + 1)
        .read_to_end(&mut buf)
        .map_err(|e| format!("cannot read the file: {e}"))?;
    if buf.len() as u64 > limits.max_size {
        return Err(format!(
            "the PDF is more than {} bytes, the job's limit (pdf.max_size)",
            limits.max_size
        ));
    }
    Ok(buf)
}

/// The message for a file over `max_size`.
pub fn too_big(size: u64, limits: &PdfLimits) -> String {
    format!(
        "the PDF is {size} bytes, more than the job's limit of {} bytes (pdf.max_size)",
        limits.max_size
    )
}

/// Facts about a document, as `meta` values for transforms and templates: `title`,
/// `author`, `subject`, `keywords`, `creator`, `producer`, `created`, `modified` (RFC 3339
/// when the PDF date is well-formed, else as written), `pages`, `pdf_version`, `encrypted`
/// and `pdfa` (`true`/`false`), `pdfa_level` (`3B`, or empty).
pub fn info(doc: &Document) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    let info = doc
        .trailer
        .get(b"Info")
        .ok()
        .and_then(|o| doc.dereference(o).ok())
        .and_then(|(_, o)| o.as_dict().ok());
    for (key, name) in [
        (&b"Title"[..], "title"),
        (b"Author", "author"),
        (b"Subject", "subject"),
        (b"Keywords", "keywords"),
        (b"Creator", "creator"),
        (b"Producer", "producer"),
        (b"CreationDate", "created"),
        (b"ModDate", "modified"),
    ] {
        let v = info
            .and_then(|d| d.get(key).ok())
            .and_then(|o| doc.dereference(o).ok())
            .and_then(|(_, o)| lopdf::decode_text_string(o).ok())
            .unwrap_or_default();
        let v = v.trim_matches(char::from(0)).trim().to_string();
        let v = if name == "created" || name == "modified" {
            pdf_date(&v).unwrap_or(v)
        } else {
            v
        };
        m.insert(name.to_string(), v);
    }
    m.insert("pages".into(), doc.get_pages().len().to_string());
    m.insert("pdf_version".into(), doc.version.clone());
    m.insert(
        "encrypted".into(),
        (doc.is_encrypted() || doc.was_encrypted()).to_string(),
    );
    let level = pdfa_level(doc);
    m.insert("pdfa".into(), level.is_some().to_string());
    m.insert("pdfa_level".into(), level.unwrap_or_default());
    m
}

/// `D:20140803120000+02'00'` as `2014-08-03T12:00:00+02:00`.
fn pdf_date(s: &str) -> Option<String> {
    let s = s.strip_prefix("D:").unwrap_or(s);
    let digits: String = s.chars().take_while(char::is_ascii_digit).collect();
    if digits.len() < 4 {
        return None;
    }
    let part = |from: usize, len: usize, default: &str| -> String {
        digits
            .get(from..from + len)
            .map_or(default.to_string(), str::to_string)
    };
    let (y, mo, d) = (part(0, 4, ""), part(4, 2, "01"), part(6, 2, "01"));
    let (h, mi, sec) = (part(8, 2, "00"), part(10, 2, "00"), part(12, 2, "00"));
    let rest = &s[digits.len()..];
    let zone = match rest.chars().next() {
        Some('Z') | None => "Z".to_string(),
        Some(sign @ ('+' | '-')) => {
            let z: String = rest[1..].chars().filter(char::is_ascii_digit).collect();
            let zh = z.get(0..2).unwrap_or("00");
            let zm = z.get(2..4).unwrap_or("00");
            format!("{sign}{zh}:{zm}")
        }
        Some(_) => return None,
    };
    let out = format!("{y}-{mo}-{d}T{h}:{mi}:{sec}{zone}");
    chrono::DateTime::parse_from_rfc3339(&out).ok().map(|_| out)
}

/// The PDF/A part and conformance from the catalog's XMP metadata, like `3B`.
fn pdfa_level(doc: &Document) -> Option<String> {
    let catalog = doc.catalog().ok()?;
    let (_, md) = doc.dereference(catalog.get(b"Metadata").ok()?).ok()?;
    let xmp = md
        .as_stream()
        .ok()?
        .get_plain_content_with_limit(1 << 20)
        .ok()?;
    let text = String::from_utf8_lossy(&xmp);
    let value = |key: &str| -> Option<String> {
        let at = text.find(key)? + key.len();
        let rest = &text[at..];
        // Either an attribute `pdfaid:part="3"` or an element `<pdfaid:part>3</...>`.
        let rest = rest.trim_start_matches(['=', '"', '\'', '>', ' ']);
        let v: String = rest.chars().take_while(|c| c.is_alphanumeric()).collect();
        (!v.is_empty()).then_some(v)
    };
    let part = value("pdfaid:part")?;
    Some(format!(
        "{part}{}",
        value("pdfaid:conformance").unwrap_or_default()
    ))
}

/// The text of every page, pages joined by a form-feed line. An error when no page has any
/// text at all.
pub fn text(doc: &Document, limits: &PdfLimits) -> Result<String, String> {
    let mut out = String::new();
    let mut first_error = None;
    let mut read_any = false;
    for (n, _) in doc.get_pages() {
        if n > 1 {
            out.push_str("\n\u{c}\n");
        }
        match doc.extract_text_with_limit(&[n], limits.max_stream as usize) {
            Ok(t) => {
                read_any = true;
                out.push_str(&t);
            }
            Err(e) => {
                first_error.get_or_insert(format!("page {n}: {e}"));
            }
        }
    }
    if !read_any {
        return Err(format!(
            "cannot read the text of any page: {}",
            first_error.unwrap_or_default()
        ));
    }
    if out.trim().is_empty() {
        if let Some(n) = page_without_content(doc) {
            return Err(format!(
                "the PDF is damaged: the content of page {n} is missing (a broken or cut-off file?); nothing to capture"
            ));
        }
        return Err(
            "the PDF has no text at all (a scanned image without a text layer?); nothing to capture"
                .into(),
        );
    }
    Ok(out)
}

/// The first page whose `/Contents` names an object the file does not have: a damaged
/// file, not a scan.
fn page_without_content(doc: &Document) -> Option<u32> {
    let missing = |o: &Object| o.as_reference().is_ok_and(|id| doc.get_object(id).is_err());
    doc.get_pages().into_iter().find_map(|(n, id)| {
        let page = doc.get_dictionary(id).ok()?;
        let broken = match page.get(b"Contents").ok()? {
            Object::Array(a) => a.iter().any(missing),
            o => missing(o),
        };
        broken.then_some(n)
    })
}

/// One embedded file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// A safe base name: no folders, no control characters, never empty.
    pub name: String,
    pub data: Vec<u8>,
}

/// Every embedded file of the document, in the order the name tree and then `/AF` list
/// them, each once.
pub fn attachments(doc: &Document, limits: &PdfLimits) -> Result<Vec<Attachment>, String> {
    let mut specs: Vec<(Option<String>, &Dictionary)> = Vec::new();
    let mut seen_nodes = HashSet::new();
    let catalog = doc
        .catalog()
        .map_err(|e| format!("the PDF has no readable catalog: {e}"))?;
    if let Some(tree) = catalog
        .get(b"Names")
        .ok()
        .and_then(|o| deref_dict(doc, o))
        .and_then(|names| names.get(b"EmbeddedFiles").ok())
        .and_then(|o| deref_dict(doc, o))
    {
        walk_name_tree(doc, tree, 0, &mut seen_nodes, &mut specs);
    }
    if let Some(af) = catalog
        .get(b"AF")
        .ok()
        .and_then(|o| doc.dereference(o).ok())
        .and_then(|(_, o)| o.as_array().ok())
    {
        for o in af {
            if let Some(d) = deref_dict(doc, o) {
                specs.push((None, d));
            }
        }
    }
    let mut out = Vec::new();
    let mut streams = HashSet::new();
    let mut used_names = HashSet::new();
    for (key, spec) in specs {
        let Some(ef) = spec.get(b"EF").ok().and_then(|o| deref_dict(doc, o)) else {
            continue;
        };
        let Some(stream_ref) = ef.get(b"F").or_else(|_| ef.get(b"UF")).ok() else {
            continue;
        };
        let Ok((id, obj)) = doc.dereference(stream_ref) else {
            continue;
        };
        if let Some(id) = id
            && !streams.insert(id)
        {
            continue;
        }
        let Ok(stream) = obj.as_stream() else {
            continue;
        };
        let data = stream
            .get_plain_content_with_limit(limits.max_stream as usize)
            .map_err(|e| format!("cannot read an embedded file: {e}"))?;
        let raw_name = [&b"UF"[..], b"F"]
            .iter()
            .find_map(|k| {
                spec.get(k)
                    .ok()
                    .and_then(|o| doc.dereference(o).ok())
                    .and_then(|(_, o)| lopdf::decode_text_string(o).ok())
                    .filter(|s| !s.trim().is_empty())
            })
            .or(key)
            .unwrap_or_default();
        let mut name = safe_name(&raw_name);
        // Two files of one name: the second gets a number, as it would on any disk.
        let mut n = 1;
        while !used_names.insert(name.clone()) {
            name = crate::fsutil::numbered(std::path::Path::new(&safe_name(&raw_name)), n)
                .to_string_lossy()
                .into_owned();
            n += 1;
        }
        out.push(Attachment { name, data });
    }
    Ok(out)
}

fn deref_dict<'a>(doc: &'a Document, o: &'a Object) -> Option<&'a Dictionary> {
    doc.dereference(o).ok().and_then(|(_, o)| o.as_dict().ok())
}

fn walk_name_tree<'a>(
    doc: &'a Document,
    node: &'a Dictionary,
    depth: usize,
    seen: &mut HashSet<*const Dictionary>,
    out: &mut Vec<(Option<String>, &'a Dictionary)>,
) {
    if depth > MAX_DEPTH || !seen.insert(node as *const Dictionary) {
        return;
    }
    if let Ok(names) = node
        .get(b"Names")
        .and_then(|o| doc.dereference(o))
        .and_then(|(_, o)| o.as_array())
    {
        for pair in names.chunks(2) {
            if let [k, v] = pair
                && let Some(d) = deref_dict(doc, v)
            {
                let key = doc
                    .dereference(k)
                    .ok()
                    .and_then(|(_, o)| lopdf::decode_text_string(o).ok());
                out.push((key, d));
            }
        }
    }
    if let Ok(kids) = node
        .get(b"Kids")
        .and_then(|o| doc.dereference(o))
        .and_then(|(_, o)| o.as_array())
    {
        for k in kids {
            if let Some(d) = deref_dict(doc, k) {
                walk_name_tree(doc, d, depth + 1, seen, out);
            }
        }
    }
}

/// An embedded file's name as a file name: the last path part, without control
/// characters; `attachment` when nothing is left.
pub fn safe_name(raw: &str) -> String {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = base.chars().filter(|c| !c.is_control()).collect();
    let cleaned = cleaned.trim().trim_start_matches('.').to_string();
    if cleaned.is_empty() {
        "attachment".into()
    } else {
        cleaned
    }
}

/// A page range, 1-based and inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRange {
    pub first: u32,
    /// `None`: to the last page.
    pub last: Option<u32>,
}

impl PageRange {
    /// `3`, `1-2`, `4-` (to the end).
    pub fn parse(s: &str) -> Result<PageRange, String> {
        let bad = || format!("expected a page range like \"1\", \"2-3\" or \"4-\", found {s:?}");
        let num = |t: &str| t.trim().parse::<u32>().ok().filter(|n| *n > 0);
        match s.split_once('-') {
            None => num(s).map(|n| PageRange {
                first: n,
                last: Some(n),
            }),
            Some((a, b)) if b.trim().is_empty() => num(a).map(|n| PageRange {
                first: n,
                last: None,
            }),
            Some((a, b)) => match (num(a), num(b)) {
                (Some(a), Some(b)) if a <= b => Some(PageRange {
                    first: a,
                    last: Some(b),
                }),
                _ => None,
            },
        }
        .ok_or_else(bad)
    }
}

/// How to cut a document into parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageSplit {
    /// Every `n` pages one file.
    Every(u32),
    /// These ranges, one file each; pages past the end are an error.
    Ranges(Vec<PageRange>),
}

/// One part of a split document: its first and last page and its bytes.
pub struct Part {
    pub first: u32,
    pub last: u32,
    pub data: Vec<u8>,
}

/// Cuts `doc` into parts, each a complete PDF.
pub fn split(doc: &Document, how: &PageSplit) -> Result<Vec<Part>, String> {
    let count = doc.get_pages().len() as u32;
    let ranges: Vec<(u32, u32)> = match how {
        PageSplit::Every(n) => {
            let n = (*n).max(1);
            (1..=count)
                .step_by(n as usize)
                .map(|f| (f, (f + n - 1).min(count)))
                .collect()
        }
        PageSplit::Ranges(rs) => rs
            .iter()
            .map(|r| {
                let last = r.last.unwrap_or(count);
                if r.first > count || last > count {
                    Err(format!(
                        "the page range {}-{last} is past the end: the PDF has {count} page(s)",
                        r.first
                    ))
                } else {
                    Ok((r.first, last))
                }
            })
            .collect::<Result<_, _>>()?,
    };
    let mut parts = Vec::new();
    for (first, last) in ranges {
        let mut copy = doc.clone();
        let drop: Vec<u32> = (1..=count).filter(|p| *p < first || *p > last).collect();
        copy.delete_pages(&drop);
        copy.prune_objects();
        let mut data = Vec::new();
        copy.save_to(&mut data)
            .map_err(|e| format!("cannot write pages {first}-{last}: {e}"))?;
        parts.push(Part { first, last, data });
    }
    Ok(parts)
}

/// Merges documents, in order, into one: every page of the first, then of the second, ...
pub fn merge(docs: Vec<Document>) -> Result<Vec<u8>, String> {
    let mut max_id = 1;
    let mut pages: Vec<(ObjectId, Object)> = Vec::new();
    let mut objects: BTreeMap<ObjectId, Object> = BTreeMap::new();
    let mut out = Document::with_version("1.7");
    for mut doc in docs {
        doc.renumber_objects_with(max_id);
        max_id = doc.max_id + 1;
        for (_, id) in doc.get_pages() {
            let mut page = doc
                .get_dictionary(id)
                .map_err(|e| format!("cannot read a page: {e}"))?
                .clone();
            // Inherited attributes live on the old page tree, which is replaced: copy them
            // onto the page itself.
            let mut parent = page.get(b"Parent").and_then(Object::as_reference).ok();
            let mut depth = 0;
            while let Some(pid) = parent
                && depth < MAX_DEPTH
            {
                let Ok(node) = doc.get_dictionary(pid) else {
                    break;
                };
                for key in [&b"Resources"[..], b"MediaBox", b"CropBox", b"Rotate"] {
                    if !page.has(key)
                        && let Ok(v) = node.get(key)
                    {
                        page.set(key.to_vec(), v.clone());
                    }
                }
                parent = node.get(b"Parent").and_then(Object::as_reference).ok();
                depth += 1;
            }
            pages.push((id, Object::Dictionary(page)));
        }
        objects.extend(doc.objects);
    }
    let mut catalog: Option<(ObjectId, Object)> = None;
    let mut tree: Option<(ObjectId, Object)> = None;
    for (id, obj) in objects {
        match obj.type_name().unwrap_or(b"") {
            b"Catalog" => {
                catalog.get_or_insert((id, obj));
            }
            b"Pages" => {
                if let Ok(d) = obj.as_dict() {
                    let mut d = d.clone();
                    if let Some((_, Object::Dictionary(old))) = &tree {
                        d.extend(old);
                    }
                    tree = Some((tree.as_ref().map_or(id, |t| t.0), Object::Dictionary(d)));
                }
            }
            b"Page" | b"Outlines" | b"Outline" => {}
            _ => {
                out.objects.insert(id, obj);
            }
        }
    }
    let (Some((catalog_id, catalog)), Some((tree_id, tree))) = (catalog, tree) else {
        return Err("a document to merge has no catalog or page tree".into());
    };
    for (id, page) in &pages {
        if let Ok(d) = page.as_dict() {
            let mut d = d.clone();
            d.set("Parent", tree_id);
            out.objects.insert(*id, Object::Dictionary(d));
        }
    }
    if let Ok(d) = tree.as_dict() {
        let mut d = d.clone();
        d.set("Count", pages.len() as u32);
        d.set(
            "Kids",
            pages
                .iter()
                .map(|(id, _)| Object::Reference(*id))
                .collect::<Vec<_>>(),
        );
        d.remove(b"Parent");
        out.objects.insert(tree_id, Object::Dictionary(d));
    }
    if let Ok(d) = catalog.as_dict() {
        let mut d = d.clone();
        d.set("Pages", tree_id);
        d.remove(b"Outlines");
        // Attachments and forms of the parts do not belong to the whole.
        d.remove(b"Names");
        d.remove(b"AF");
        d.remove(b"AcroForm");
        out.objects.insert(catalog_id, Object::Dictionary(d));
    }
    out.trailer.set("Root", catalog_id);
    out.max_id = out.objects.keys().map(|k| k.0).max().unwrap_or(0);
    out.renumber_objects();
    out.prune_objects();
    let mut data = Vec::new();
    out.save_to(&mut data)
        .map_err(|e| format!("cannot write the merged PDF: {e}"))?;
    Ok(data)
}

/// Does everything ferry does with an untrusted PDF, unguarded (for the fuzz target and
/// the mutation test): load, facts, text, attachments, a split into pages. Small limits
/// keep each run short.
pub fn exercise(data: &[u8]) {
    let limits = PdfLimits {
        timeout: Duration::from_secs(10),
        max_size: 16 * 1024 * 1024,
        max_stream: 4 * 1024 * 1024,
    };
    let Ok(doc) = load(data, &limits) else {
        return;
    };
    let _ = info(&doc);
    let _ = text(&doc, &limits);
    let _ = attachments(&doc, &limits);
    if doc.get_pages().len() <= 8 {
        let _ = split(&doc, &PageSplit::Every(1));
    }
}

#[cfg(test)]
pub mod testpdf {
    //! Small PDFs made in memory for tests.
    use lopdf::content::{Content, Operation};
    use lopdf::{Document, Object, Stream, dictionary};

    /// A PDF with one page per entry of `pages`, each showing its lines of text.
    pub fn with_pages(pages: &[&[&str]]) -> Vec<u8> {
        let mut doc = Document::with_version("1.5");
        let pages_id = doc.new_object_id();
        let font_id = doc.add_object(dictionary! {
            "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Courier",
        });
        let resources_id = doc.add_object(dictionary! {
            "Font" => dictionary! { "F1" => font_id },
        });
        let mut kids = Vec::new();
        for lines in pages {
            let mut ops = vec![
                Operation::new("BT", vec![]),
                Operation::new("Tf", vec!["F1".into(), 12.into()]),
                Operation::new("Td", vec![50.into(), 750.into()]),
                Operation::new("TL", vec![14.into()]),
            ];
            for l in *lines {
                ops.push(Operation::new("Tj", vec![Object::string_literal(*l)]));
                ops.push(Operation::new("T*", vec![]));
            }
            ops.push(Operation::new("ET", vec![]));
            let content = Content { operations: ops };
            let content_id = doc.add_object(Stream::new(
                dictionary! {},
                content.encode().expect("encodes"),
            ));
            let page_id = doc.add_object(dictionary! {
                "Type" => "Page",
                "Parent" => pages_id,
                "Contents" => content_id,
            });
            kids.push(page_id.into());
        }
        let count = kids.len() as u32;
        doc.objects.insert(
            pages_id,
            Object::Dictionary(dictionary! {
                "Type" => "Pages",
                "Kids" => kids,
                "Count" => count,
                "Resources" => resources_id,
                "MediaBox" => vec![0.into(), 0.into(), 595.into(), 842.into()],
            }),
        );
        let catalog_id = doc.add_object(dictionary! {
            "Type" => "Catalog",
            "Pages" => pages_id,
        });
        doc.trailer.set("Root", catalog_id);
        let info_id = doc.add_object(dictionary! {
            "Title" => Object::string_literal("Test invoice"),
            "Producer" => Object::string_literal("ferry tests"),
            "CreationDate" => Object::string_literal("D:20260102030405+01'00'"),
        });
        doc.trailer.set("Info", info_id);
        let mut out = Vec::new();
        doc.save_to(&mut out).expect("saves");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> PdfLimits {
        PdfLimits::default()
    }

    #[test]
    fn text_metadata_and_pages() {
        let bytes = testpdf::with_pages(&[&["Invoice 42", "Total 12.50"], &["Page two"]]);
        let doc = load(&bytes, &limits()).unwrap();
        let t = text(&doc, &limits()).unwrap();
        assert!(t.contains("Invoice 42"), "{t:?}");
        assert!(t.contains("Page two"), "{t:?}");
        let m = info(&doc);
        assert_eq!(m["pages"], "2");
        assert_eq!(m["title"], "Test invoice");
        assert_eq!(m["created"], "2026-01-02T03:04:05+01:00");
        assert_eq!(m["encrypted"], "false");
        assert_eq!(m["pdfa"], "false");
    }

    #[test]
    fn cut_off_and_damaged_files_say_so() {
        let bytes = testpdf::with_pages(&[&["Invoice 42"]]);
        let cut = load(&bytes[..bytes.len() - 40], &limits()).unwrap_err();
        assert!(cut.starts_with("the PDF is truncated or damaged"), "{cut}");
        // A page whose content object is gone: damaged, not a scan.
        let mut doc = load(&bytes, &limits()).unwrap();
        let page = *doc.get_pages().get(&1).unwrap();
        let contents = doc
            .get_dictionary(page)
            .unwrap()
            .get(b"Contents")
            .unwrap()
            .as_reference()
            .unwrap();
        doc.objects.remove(&contents);
        let e = text(&doc, &limits()).unwrap_err();
        assert!(e.contains("the content of page 1 is missing"), "{e}");
    }

    #[test]
    fn split_and_merge_count_pages() {
        let bytes = testpdf::with_pages(&[&["one"], &["two"], &["three"]]);
        let doc = load(&bytes, &limits()).unwrap();
        let parts = split(&doc, &PageSplit::Every(1)).unwrap();
        assert_eq!(parts.len(), 3);
        for p in &parts {
            let d = load(&p.data, &limits()).unwrap();
            assert_eq!(d.get_pages().len(), 1);
        }
        let two = split(
            &doc,
            &PageSplit::Ranges(vec![PageRange::parse("2-").unwrap()]),
        )
        .unwrap();
        let d = load(&two[0].data, &limits()).unwrap();
        assert_eq!(d.get_pages().len(), 2);
        assert!(text(&d, &limits()).unwrap().contains("three"));
        assert!(
            split(
                &doc,
                &PageSplit::Ranges(vec![PageRange::parse("4").unwrap()])
            )
            .is_err()
        );
        let docs = parts
            .iter()
            .map(|p| load(&p.data, &limits()).unwrap())
            .collect();
        let merged = merge(docs).unwrap();
        let m = load(&merged, &limits()).unwrap();
        assert_eq!(m.get_pages().len(), 3);
        let t = text(&m, &limits()).unwrap();
        let (a, b) = (t.find("one").unwrap(), t.find("three").unwrap());
        assert!(a < b, "{t:?}");
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        let l = limits();
        assert!(load(b"", &l).unwrap_err().contains("empty"));
        assert!(load(b"hello", &l).unwrap_err().contains("not a PDF"));
        let good = testpdf::with_pages(&[&["x"]]);
        for cut in [10, good.len() / 2, good.len() - 10] {
            let b = good[..cut].to_vec();
            // A truncated file may be repaired by lopdf or fail; it must never panic out.
            let _ = guarded(Duration::from_secs(10), move || {
                load(&b, &l).and_then(|d| text(&d, &l))
            });
        }
        let small = PdfLimits { max_size: 10, ..l };
        assert!(load(&good, &small).unwrap_err().contains("pdf.max_size"));
    }

    #[test]
    fn guarded_catches_panics_and_time() {
        let r: Result<(), String> = guarded(Duration::from_secs(5), || panic!("boom"));
        assert!(r.unwrap_err().contains("boom"));
        let r: Result<(), String> = guarded(Duration::from_millis(50), || {
            std::thread::sleep(Duration::from_secs(2));
            Ok(())
        });
        assert!(r.unwrap_err().contains("pdf.timeout"));
    }

    #[test]
    fn page_ranges() {
        assert_eq!(
            PageRange::parse("2-3").unwrap(),
            PageRange {
                first: 2,
                last: Some(3)
            }
        );
        assert!(PageRange::parse("3-2").is_err());
        assert!(PageRange::parse("0").is_err());
        assert!(PageRange::parse("x").is_err());
    }

    #[test]
    fn attachment_names_are_safe() {
        assert_eq!(safe_name("../../etc/passwd"), "passwd");
        assert_eq!(safe_name("C:\\x\\factur-x.xml"), "factur-x.xml");
        assert_eq!(safe_name(""), "attachment");
        assert_eq!(safe_name(".."), "attachment");
    }
}

#[cfg(test)]
mod corpus {
    use super::*;
    use std::path::Path;

    #[test]
    fn factur_x_attachments_are_byte_identical() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/pdf/factur-x");
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_none_or(|x| x != "pdf") {
                continue;
            }
            let doc = load(&std::fs::read(&p).unwrap(), &PdfLimits::default()).unwrap();
            let got = attachments(&doc, &PdfLimits::default()).unwrap();
            let stem = p.file_stem().unwrap();
            let mut want: Vec<_> = std::fs::read_dir(dir.join("expected").join(stem))
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            want.sort();
            let mut names: Vec<_> = got.iter().map(|a| a.name.clone()).collect();
            names.sort();
            let want_names: Vec<_> = want
                .iter()
                .map(|w| w.file_name().unwrap().to_string_lossy().into_owned())
                .collect();
            assert_eq!(names, want_names, "{}", p.display());
            for a in &got {
                let w = std::fs::read(dir.join("expected").join(stem).join(&a.name)).unwrap();
                assert!(a.data == w, "{} {}", p.display(), a.name);
            }
        }
    }
}

#[cfg(test)]
mod mutations {
    //! What the fuzz target does, without nightly: mutated real PDFs through every PDF
    //! path. A panic inside the parser is caught by [`guarded`]; this checks that every
    //! mutant ends (no hang, no abort) and counts the panics the guard had to catch.
    use super::*;
    use std::path::Path;

    fn mutants(seed: &[u8], n: usize) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ seed.len() as u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for i in 0..n {
            let mut m = seed.to_vec();
            match i % 4 {
                0 => {
                    for _ in 0..1 + next() % 16 {
                        let at = (next() as usize) % m.len();
                        m[at] ^= 1 << (next() % 8);
                    }
                }
                1 => m.truncate((next() as usize) % m.len()),
                2 => {
                    let at = (next() as usize) % m.len();
                    let len = ((next() as usize) % 512).min(m.len() - at);
                    let chunk = m[at..at + len].to_vec();
                    let to = (next() as usize) % m.len();
                    m.splice(to..to, chunk);
                }
                _ => {
                    // Damage the numbers the parser trusts most: lengths and offsets.
                    let digits: Vec<usize> = m
                        .iter()
                        .enumerate()
                        .filter(|(_, b)| b.is_ascii_digit())
                        .map(|(i, _)| i)
                        .collect();
                    for _ in 0..1 + next() % 8 {
                        if digits.is_empty() {
                            break;
                        }
                        let at = digits[(next() as usize) % digits.len()];
                        m[at] = b'0' + (next() % 10) as u8;
                    }
                }
            }
            out.push(m);
        }
        out
    }

    #[test]
    fn mutated_pdfs_never_crash_or_hang() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/pdf");
        let seeds = [
            "pdf-invoices/AmazonWebServices.pdf",
            "pdf-invoices/FlipkartInvoice.pdf",
            "pdf-invoices/QualityHosting.pdf",
            "factur-x/EN16931_Einfach.pdf",
        ];
        let mut panics = 0;
        let mut total = 0;
        for s in seeds {
            let seed = std::fs::read(dir.join(s)).unwrap();
            for m in mutants(&seed, 60) {
                total += 1;
                let r = guarded(Duration::from_secs(30), move || {
                    exercise(&m);
                    Ok(())
                });
                match r {
                    Ok(()) => {}
                    Err(e) if e.contains("failed on this file") => panics += 1,
                    Err(e) => panic!("{s}: {e}"),
                }
            }
        }
        eprintln!("{total} mutants, {panics} parser panics caught by the guard");
    }
}
