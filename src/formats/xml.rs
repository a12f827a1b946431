//! XML in, streaming: a record path picks the repeating element (say every
//! `cac:InvoiceLine` of a UBL invoice); fields are paths relative to it (`cbc:ID`,
//! `cac:Item/cbc:Name`, `cbc:InvoicedQuantity/@unitCode`), or absolute paths (`/Invoice/cbc:ID`)
//! for header values that come before the records in the document.
//!
//! Namespaces: a prefixed step (`cbc:ID`) matches by namespace URI, with prefixes declared
//! by the job, whatever prefixes the file uses; an unprefixed step matches the local name in
//! any namespace. A path starting with `//` matches at any depth.
//!
//! Safety: only character references and the five predefined entities are resolved. Any
//! other entity reference is an error, so there is no entity expansion at all ("billion
//! laughs") and no external entity is ever fetched.

use std::collections::HashMap;
use std::io::BufRead;
use std::sync::Arc;

use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;

use super::{DEFAULT_MAX_RECORD, ParseError, Position, Record};

#[derive(Debug, Clone, PartialEq, Eq)]
struct Step {
    /// Interned namespace id; `None` matches any namespace.
    ns: Option<u32>,
    /// Interned local name: its index in [`XmlPaths::locals`].
    local: u32,
}

#[derive(Debug, Clone)]
struct FieldPath {
    absolute: bool,
    anywhere: bool,
    steps: Vec<Step>,
    attr: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct XmlOptions {
    /// The repeating element, an absolute path (`/Invoice/cac:InvoiceLine`) or `//name`.
    /// `/` makes the whole document one record.
    pub record: String,
    /// (field name, path) in output order.
    pub fields: Vec<(String, String)>,
    /// (prefix, namespace URI) for the prefixes used in paths.
    pub namespaces: Vec<(String, String)>,
}

/// A compiled set of paths.
#[derive(Debug, Clone)]
pub struct XmlPaths {
    record: Option<FieldPath>,
    fields: Vec<FieldPath>,
    names: Arc<[String]>,
    ns_ids: HashMap<String, u32>,
    /// The local names the paths use. Each element's name is looked up here once, and
    /// paths are matched on numbers: no name comparisons per path and element.
    locals: Vec<String>,
}

fn parse_path(
    text: &str,
    prefixes: &HashMap<String, String>,
    ns_ids: &mut HashMap<String, u32>,
    locals: &mut Vec<String>,
) -> Result<FieldPath, String> {
    let t = text.trim();
    let anywhere = t.starts_with("//");
    let absolute = t.starts_with('/');
    let body = t.trim_start_matches('/');
    let mut steps = Vec::new();
    let mut attr = None;
    let parts: Vec<&str> = if body.is_empty() || body == "." {
        Vec::new()
    } else {
        body.split('/').collect()
    };
    for (i, part) in parts.iter().enumerate() {
        if let Some(a) = part.strip_prefix('@') {
            if i != parts.len() - 1 || a.is_empty() {
                return Err(format!(
                    "in {text:?}: an attribute (`@name`) may only end a path"
                ));
            }
            attr = Some(a.to_string());
            continue;
        }
        if part.is_empty() || *part == "." || *part == ".." || part.contains(['[', '*', '(']) {
            return Err(format!(
                "in {text:?}: expected element names separated by `/` (`cac:Item/cbc:Name`, `@unitCode`), found {part:?}"
            ));
        }
        let (ns, local) = match part.split_once(':') {
            Some((p, l)) => {
                let uri = prefixes.get(p).ok_or_else(|| {
                    format!("in {text:?}: the prefix `{p}` is not declared; add it to the job's `namespaces`")
                })?;
                let n = ns_ids.len() as u32;
                (Some(*ns_ids.entry(uri.clone()).or_insert(n)), l.to_string())
            }
            None => (None, part.to_string()),
        };
        let local = match locals.iter().position(|n| *n == local) {
            Some(i) => i as u32,
            None => {
                locals.push(local);
                locals.len() as u32 - 1
            }
        };
        steps.push(Step { ns, local });
    }
    Ok(FieldPath {
        absolute,
        anywhere,
        steps,
        attr,
    })
}

impl XmlPaths {
    pub fn compile(opts: &XmlOptions) -> Result<XmlPaths, String> {
        let prefixes: HashMap<String, String> = opts.namespaces.iter().cloned().collect();
        let mut ns_ids = HashMap::new();
        let mut locals = Vec::new();
        let record = if opts.record.trim() == "/" {
            None
        } else {
            let r = parse_path(&opts.record, &prefixes, &mut ns_ids, &mut locals)?;
            if !r.absolute || r.attr.is_some() || r.steps.is_empty() {
                return Err(format!(
                    "record {:?}: expected an absolute element path like \"/Invoice/cac:InvoiceLine\" or \"//Order\", or \"/\" for the whole document",
                    opts.record
                ));
            }
            Some(r)
        };
        let mut fields = Vec::new();
        for (name, path) in &opts.fields {
            let p = parse_path(path, &prefixes, &mut ns_ids, &mut locals)
                .map_err(|e| format!("field `{name}`: {e}"))?;
            if record.is_none() && !p.absolute {
                return Err(format!(
                    "field `{name}`: with the whole document as the record, paths are absolute (`/Invoice/cbc:ID`)"
                ));
            }
            fields.push(p);
        }
        Ok(XmlPaths {
            record,
            fields,
            names: opts
                .fields
                .iter()
                .map(|(n, _)| n.clone())
                .collect::<Vec<_>>()
                .into(),
            ns_ids,
            locals,
        })
    }
}

/// The parser's buffer, counting lines lazily: only when a position is asked for (each
/// record's start, errors), over everything consumed since the last time, in one pass.
/// (Counting on every `consume`, a few bytes at a time, cost a tenth of the reading.)
///
/// It also keeps the parser, which holds a whole event (a text, a tag) in memory, from
/// reading more than `max` bytes past `mark` (the start of the record being read, or of
/// the event being read outside records): it then fails with `past` set.
struct LineCounter<R> {
    inner: R,
    buf: Box<[u8]>,
    pos: usize,
    end: usize,
    /// Lines before `buf[..counted.0]`.
    counted: std::cell::Cell<(usize, u64)>,
    /// Offset of `buf[0]` in the input.
    base: u64,
    mark: u64,
    max: u64,
    past: bool,
}

impl<R> LineCounter<R> {
    fn new(inner: R) -> Self {
        LineCounter {
            inner,
            // As big as the pipeline's reader: it then hands its input over without a copy.
            buf: vec![0; 256 * 1024].into_boxed_slice(),
            pos: 0,
            end: 0,
            counted: std::cell::Cell::new((0, 0)),
            base: 0,
            mark: 0,
            max: DEFAULT_MAX_RECORD,
            past: false,
        }
    }

    /// Lines consumed so far.
    fn line_count(&self) -> u64 {
        let (at, n) = self.counted.get();
        let n = n + newlines(&self.buf[at.min(self.pos)..self.pos]);
        self.counted.set((self.pos, n));
        n
    }
}

/// Newlines in `bytes`, in a form the compiler vectorizes: byte-wide counters (a block of
/// 255 bytes cannot overflow them), summed per block.
fn newlines(bytes: &[u8]) -> u64 {
    bytes
        .chunks(255)
        .map(|c| {
            u64::from(
                c.iter()
                    .fold(0u8, |n, &b| n.wrapping_add(u8::from(b == b'\n'))),
            )
        })
        .sum()
}

impl<R: std::io::Read> std::io::Read for LineCounter<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let avail = self.fill_buf()?;
        let n = avail.len().min(out.len());
        out[..n].copy_from_slice(&avail[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl<R: std::io::Read> BufRead for LineCounter<R> {
    #[inline]
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        if self.pos == self.end {
            self.refill()?;
        }
        Ok(&self.buf[self.pos..self.end])
    }

    #[inline]
    fn consume(&mut self, amt: usize) {
        self.pos = (self.pos + amt).min(self.end);
    }
}

impl<R: std::io::Read> LineCounter<R> {
    /// Reads the next block (the parser asks for bytes many times per event: the common
    /// case above stays small enough to inline).
    #[inline(never)]
    fn refill(&mut self) -> std::io::Result<()> {
        let n = self.line_count();
        self.counted.set((0, n));
        // Everything handed over was consumed: what the record (or event) took so far.
        self.base += self.end as u64;
        self.pos = 0;
        self.end = 0;
        if self.base.saturating_sub(self.mark) > self.max {
            self.past = true;
            return Err(std::io::Error::other(
                "the record is larger than max_record",
            ));
        }
        self.end = loop {
            match self.inner.read(&mut self.buf) {
                Ok(k) => break k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        };
        Ok(())
    }
}

/// The interned id of an element's namespace: ids of namespaces the job names, or one id
/// for "another namespace" and one for "no namespace".
fn ns_id(ids: &HashMap<String, u32>, r: &ResolveResult<'_>) -> Option<u32> {
    match r {
        ResolveResult::Bound(ns) => {
            let uri: &str = ns.as_ref();
            // A job names a handful of namespaces: comparing costs less than hashing.
            Some(
                ids.iter()
                    .find(|(k, _)| k.as_str() == uri)
                    .map_or(u32::MAX, |(_, &id)| id),
            )
        }
        _ => Some(u32::MAX - 1),
    }
}

/// A field's text being collected: `set` once its element was seen (even empty). The text
/// keeps its allocation from record to record.
#[derive(Debug, Clone, Default)]
struct Slot {
    text: String,
    set: bool,
}

impl Slot {
    fn clear(&mut self) {
        self.text.clear();
        self.set = false;
    }

    fn push(&mut self, s: &str) {
        self.text.push_str(s);
        self.set = true;
    }
}

pub struct XmlReader<R: BufRead> {
    reader: NsReader<LineCounter<R>>,
    paths: XmlPaths,
    buf: Vec<u8>,
    /// The open elements (the first `depth`; the rest keep their allocations for reuse):
    /// namespace id or none, interned local name (`u32::MAX`: one no path uses), local name.
    stack: Vec<(Option<u32>, u32, String)>,
    depth: usize,
    record_depth: Option<usize>,
    /// Index of the field collecting text now, with the depth of its element.
    collecting: Vec<(usize, usize)>,
    values: Vec<Slot>,
    header: Vec<Slot>,
    count: u64,
    record_start: (u64, u64),
    done: bool,
}

impl<R: BufRead> XmlReader<R> {
    pub fn new(input: R, paths: XmlPaths) -> Self {
        let mut reader = NsReader::from_reader(LineCounter::new(input));
        reader.config_mut().expand_empty_elements = false;
        let n = paths.fields.len();
        XmlReader {
            reader,
            paths,
            buf: Vec::with_capacity(64 * 1024),
            stack: Vec::new(),
            depth: 0,
            record_depth: None,
            collecting: Vec::new(),
            values: vec![Slot::default(); n],
            header: vec![Slot::default(); n],
            count: 0,
            record_start: (0, 1),
            done: false,
        }
    }

    /// Fails on a record element (or, outside records, an event: a text, a tag) longer
    /// than `max` bytes, holding no more than about that much of it. With `record = "/"`
    /// the limit applies to each event: the document is not held, only its fields.
    pub fn with_max_record(mut self, max: u64) -> Self {
        self.reader.get_mut().max = max;
        self
    }

    /// Where the record being read started, or this event outside records.
    fn too_large(&mut self) -> ParseError {
        self.done = true;
        let lc = self.reader.get_ref();
        let (max, mark) = (lc.max, lc.mark);
        if self.record_depth.is_some() {
            let pos = Position {
                record: self.count + 1,
                line: self.record_start.1,
                byte: mark,
            };
            return ParseError::too_large(max, pos);
        }
        let pos = Position {
            byte: mark,
            ..self.position()
        };
        let what = if self.paths.record.is_some() {
            "a text or tag outside the records"
        } else {
            "a text or tag"
        };
        ParseError::too_large_thing(what, max, pos)
    }

    fn position(&self) -> Position {
        Position {
            record: self.count + 1,
            line: self.reader.get_ref().line_count() + 1,
            byte: self.reader.buffer_position(),
        }
    }

    fn matches(&self, p: &FieldPath, base: usize) -> bool {
        let stack = &self.stack[base..self.depth];
        let ok = |s: &Step, e: &(Option<u32>, u32, String)| {
            (s.ns.is_none() || s.ns == e.0) && s.local == e.1
        };
        if p.anywhere {
            stack.len() >= p.steps.len()
                && p.steps
                    .iter()
                    .rev()
                    .zip(stack.iter().rev())
                    .all(|(s, e)| ok(s, e))
        } else {
            stack.len() == p.steps.len() && p.steps.iter().zip(stack).all(|(s, e)| ok(s, e))
        }
    }

    fn error(&self, message: impl Into<String>) -> ParseError {
        ParseError::new(message).at(self.position())
    }

    /// The slot of field `i` now: the header's outside a record for absolute paths.
    fn slot(&mut self, i: usize) -> &mut Slot {
        if self.paths.fields[i].absolute && self.record_depth.is_none() {
            &mut self.header[i]
        } else {
            &mut self.values[i]
        }
    }

    fn append_text(&mut self, text: &str) {
        let depth = self.depth;
        for k in 0..self.collecting.len() {
            let (f, d) = self.collecting[k];
            if d == depth {
                self.slot(f).push(text);
            }
        }
    }

    /// Reads the next record into `out`. `Ok(false)` at the end of the document.
    pub fn read_into(&mut self, out: &mut Record) -> Result<bool, ParseError> {
        if self.done {
            return Ok(false);
        }
        loop {
            // Events borrow the buffer, not the reader: no copy of each event.
            let mut buf = std::mem::take(&mut self.buf);
            buf.clear();
            let step = self.step(&mut buf, out);
            self.buf = buf;
            if let Some(more) = step? {
                return Ok(more);
            }
        }
    }

    /// Reads and handles one event: `Some` when `read_into` has its answer.
    fn step(&mut self, buf: &mut Vec<u8>, out: &mut Record) -> Result<Option<bool>, ParseError> {
        if self.record_depth.is_none() {
            // Outside records (and in a document that is one record, `/`), each event is
            // held on its own.
            self.reader.get_mut().mark = self.reader.buffer_position();
        }
        let ev = match self.reader.read_event_into(buf) {
            Ok(e) => e,
            Err(_) if self.reader.get_ref().past => return Err(self.too_large()),
            Err(e) => {
                let mut p = self.position();
                p.byte = self.reader.error_position();
                return Err(ParseError::new(format!("malformed XML: {e}")).at(p));
            }
        };
        match ev {
            Event::Start(e) => {
                self.open(&e)?;
            }
            Event::Empty(e) => {
                self.open(&e)?;
                if self.close(out) {
                    return self.checked(out);
                }
            }
            Event::End(_) => {
                if self.close(out) {
                    return self.checked(out);
                }
            }
            Event::Text(t) => {
                if !self.collecting.is_empty() {
                    self.append_text(&t.xml10_content());
                }
            }
            Event::CData(c) => {
                if !self.collecting.is_empty() {
                    self.append_text(&c.xml10_content());
                }
            }
            Event::GeneralRef(r) => {
                let name = r.xml10_content().into_owned();
                let ch = match r.resolve_char_ref() {
                    Ok(Some(c)) => c.to_string(),
                    Ok(None) => match quick_xml::escape::resolve_predefined_entity(&name) {
                        Some(s) => s.to_string(),
                        None => {
                            return Err(self.error(format!(
                                "the entity `&{name};` is not expanded: ferry resolves only character references and &amp; &lt; &gt; &quot; &apos; (no DTD entities)"
                            )));
                        }
                    },
                    Err(e) => {
                        return Err(self.error(format!("bad character reference `&{name};`: {e}")));
                    }
                };
                if !self.collecting.is_empty() {
                    self.append_text(&ch);
                }
            }
            Event::Eof => {
                self.done = true;
                if self.depth > 0 {
                    return Err(self.error(format!(
                        "the document ends inside <{}>",
                        self.stack[self.depth - 1].2
                    )));
                }
                if self.paths.record.is_none() {
                    // The whole document is the record.
                    std::mem::swap(&mut self.values, &mut self.header);
                    self.emit(out);
                    return Ok(Some(true));
                }
                return Ok(Some(false));
            }
            Event::DocType(_) | Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
        }
        Ok(None)
    }

    fn open(&mut self, e: &quick_xml::events::BytesStart<'_>) -> Result<(), ParseError> {
        let local_name = e.local_name();
        let local: &str = local_name.as_ref();
        let id = self
            .paths
            .locals
            .iter()
            .position(|n| n == local)
            .map_or(u32::MAX, |i| i as u32);
        // The namespace matters only for names the paths use.
        let ns = if id == u32::MAX {
            None
        } else {
            ns_id(
                &self.paths.ns_ids,
                &self.reader.resolver().resolve_element(e.name()).0,
            )
        };
        match self.stack.get_mut(self.depth) {
            Some(top) => {
                top.0 = ns;
                top.1 = id;
                top.2.clear();
                top.2.push_str(local);
            }
            None => self.stack.push((ns, id, local.to_string())),
        }
        self.depth += 1;
        if id == u32::MAX {
            // Every path ends in a named element (or, for `.` and `@name`, in the record
            // element): one that no path names starts no record and no field.
            return Ok(());
        }
        let depth = self.depth;
        if self.record_depth.is_none()
            && let Some(r) = &self.paths.record
            && self.matches(r, 0)
        {
            self.record_depth = Some(depth);
            self.record_start = (
                self.reader.buffer_position(),
                self.reader.get_ref().line_count() + 1,
            );
            self.reader.get_mut().mark = self.record_start.0;
            for (i, v) in self.values.iter_mut().enumerate() {
                if self.paths.fields[i].absolute {
                    v.clone_from(&self.header[i]);
                } else {
                    v.clear();
                }
            }
        }
        for i in 0..self.paths.fields.len() {
            let f = &self.paths.fields[i];
            let base = match (f.absolute, self.record_depth) {
                (true, _) => 0,
                (false, Some(d)) => d,
                (false, None) => continue,
            };
            if !self.matches(f, base) {
                continue;
            }
            // A header value (outside any record) is replaced when its element comes again:
            // the second invoice of a file has its own number.
            if f.absolute && self.record_depth.is_none() && self.paths.record.is_some() {
                self.header[i].clear();
            }
            match &f.attr {
                Some(a) => {
                    for attr in e.attributes().flatten() {
                        let (_, local) = self.reader.resolver().resolve_attribute(attr.key);
                        if local.as_ref() == a.as_str() {
                            let v = attr
                                .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                                .map_err(|err| {
                                    ParseError::new(format!("bad attribute value: {err}"))
                                        .at(self.position())
                                })?;
                            let slot = if f.absolute && self.record_depth.is_none() {
                                &mut self.header[i]
                            } else {
                                &mut self.values[i]
                            };
                            if !slot.set {
                                slot.push(&v);
                            }
                        }
                    }
                }
                None => {
                    // The first occurrence of a field in a record wins.
                    if !self.slot(i).set {
                        self.collecting.push((i, depth));
                    }
                }
            }
        }
        Ok(())
    }

    /// A record just completed into `out`, if it is within `max_record`.
    fn checked(&mut self, out: &Record) -> Result<Option<bool>, ParseError> {
        let lc = self.reader.get_ref();
        if self.reader.buffer_position() - out.pos.byte > lc.max {
            self.done = true;
            return Err(ParseError::too_large(lc.max, out.pos));
        }
        Ok(Some(true))
    }

    /// Closes the innermost element; true when a record was completed into `out`.
    fn close(&mut self, out: &mut Record) -> bool {
        let depth = self.depth;
        for k in 0..self.collecting.len() {
            let (i, d) = self.collecting[k];
            if d == depth {
                // Seen, if empty: the field is "" rather than missing.
                self.slot(i).set = true;
            }
        }
        if !self.collecting.is_empty() {
            self.collecting.retain(|&(_, d)| d != depth);
        }
        self.depth -= 1;
        if self.record_depth == Some(depth) {
            self.record_depth = None;
            self.emit(out);
            return true;
        }
        false
    }

    fn emit(&mut self, out: &mut Record) {
        self.count += 1;
        if !Arc::ptr_eq(&out.names, &self.paths.names) {
            out.names = self.paths.names.clone();
        }
        out.values.resize(self.values.len(), String::new());
        for (o, v) in out.values.iter_mut().zip(self.values.iter_mut()) {
            o.clear();
            if v.set {
                o.push_str(v.text.trim());
            }
            v.clear();
        }
        out.pos = Position {
            record: self.count,
            line: self.record_start.1,
            byte: self.record_start.0,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newline_count_is_exact_past_the_byte_counters() {
        // Runs of newlines longer than a counter holds, and ragged lengths.
        for len in [0usize, 1, 254, 255, 256, 511, 1000, 70_000] {
            for every in [1usize, 2, 7, 300] {
                let bytes: Vec<u8> = (0..len)
                    .map(|i| if i % every == 0 { b'\n' } else { b'a' })
                    .collect();
                let want = bytes.iter().filter(|&&b| b == b'\n').count() as u64;
                assert_eq!(newlines(&bytes), want, "{len} bytes, every {every}");
            }
        }
    }

    const UBL: &[(&str, &str)] = &[
        (
            "cac",
            "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2",
        ),
        (
            "cbc",
            "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2",
        ),
    ];

    fn read(
        xml: &str,
        record: &str,
        fields: &[(&str, &str)],
    ) -> Result<Vec<Vec<String>>, ParseError> {
        let opts = XmlOptions {
            record: record.into(),
            fields: fields
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
            namespaces: UBL
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
        };
        let mut r = XmlReader::new(
            xml.as_bytes(),
            XmlPaths::compile(&opts).map_err(ParseError::new)?,
        );
        let mut rec = Record::default();
        let mut out = Vec::new();
        while r.read_into(&mut rec)? {
            out.push(rec.values.clone());
        }
        Ok(out)
    }

    const DOC: &str = r#"<?xml version="1.0"?>
<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"
  xmlns:c="urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"
  xmlns:b="urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2">
  <b:ID>INV-1</b:ID>
  <c:InvoiceLine><b:ID>1</b:ID><b:InvoicedQuantity unitCode="H87">3</b:InvoicedQuantity>
    <c:Item><b:Name>Bolt &amp; nut &#x20AC;</b:Name></c:Item></c:InvoiceLine>
  <c:InvoiceLine><b:ID>2</b:ID><b:InvoicedQuantity unitCode="KGM">1.5</b:InvoicedQuantity>
    <c:Item><b:Name><![CDATA[<raw>]]></b:Name></c:Item></c:InvoiceLine>
</Invoice>"#;

    #[test]
    fn records_with_namespaces_attributes_and_header_fields() {
        let rows = read(
            DOC,
            "/Invoice/cac:InvoiceLine",
            &[
                ("invoice", "/Invoice/cbc:ID"),
                ("line", "cbc:ID"),
                ("qty", "cbc:InvoicedQuantity"),
                ("unit", "cbc:InvoicedQuantity/@unitCode"),
                ("item", "cac:Item/cbc:Name"),
            ],
        )
        .unwrap();
        assert_eq!(
            rows,
            vec![
                vec!["INV-1", "1", "3", "H87", "Bolt & nut €"],
                vec!["INV-1", "2", "1.5", "KGM", "<raw>"],
            ]
        );
        let rows = read(DOC, "//cac:InvoiceLine", &[("line", "cbc:ID")]).unwrap();
        assert_eq!(rows.len(), 2);
        let rows = read(
            DOC,
            "/",
            &[("id", "/Invoice/cbc:ID"), ("first", "//cbc:Name")],
        )
        .unwrap();
        assert_eq!(rows, vec![vec!["INV-1", "Bolt & nut €"]]);
    }

    #[test]
    fn lines_are_right_past_the_first_buffer() {
        // Far more than one 256 KiB buffer, with line breaks inside records too.
        let mut xml = String::from("<a>\n");
        for i in 0..40_000 {
            xml.push_str(&format!("<r>\n<v>{i}</v></r>\n"));
        }
        xml.push_str("<r><v>x</w></r>\n</a>\n");
        let paths = XmlPaths::compile(&XmlOptions {
            record: "/a/r".into(),
            fields: vec![("v".into(), "v".into())],
            namespaces: vec![],
        })
        .unwrap();
        let mut r = XmlReader::new(xml.as_bytes(), paths);
        let mut rec = Record::default();
        for i in 0..40_000u64 {
            assert!(r.read_into(&mut rec).unwrap());
            assert_eq!(rec.values[0], i.to_string());
            assert_eq!(rec.pos.line, 2 + 2 * i, "record {i}");
        }
        let e = r.read_into(&mut rec).unwrap_err();
        assert_eq!(e.pos.unwrap().line, 80_002, "{e}");
    }

    #[test]
    fn header_values_follow_each_new_header_element() {
        let doc = "<Batch><Invoice><ID>INV-1</ID><Line><N>1</N></Line><Line><N>2</N></Line></Invoice>\
                   <Invoice><ID>INV-2</ID><Line><N>3</N></Line></Invoice></Batch>";
        let rows = read(doc, "//Line", &[("inv", "/Batch/Invoice/ID"), ("n", "N")]).unwrap();
        assert_eq!(
            rows,
            vec![vec!["INV-1", "1"], vec!["INV-1", "2"], vec!["INV-2", "3"]]
        );
    }

    #[test]
    fn no_entity_expansion_and_malformed_xml_has_a_position() {
        let bomb = "<!DOCTYPE x [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;\">]><x><y>&b;</y></x>";
        let e = read(bomb, "/x", &[("y", "y")]).unwrap_err();
        assert!(e.message.contains("not expanded"), "{e}");
        let e = read("<a>\n<b>1</b>\n<c></a>", "/a", &[("b", "b")]).unwrap_err();
        assert!(e.message.starts_with("malformed XML"), "{e}");
        assert_eq!(e.pos.unwrap().line, 3, "{e}");
        let e = read("<a><b>1</b>", "/a", &[("b", "b")]).unwrap_err();
        assert!(e.message.contains("ends inside"), "{e}");
        assert!(
            XmlPaths::compile(&XmlOptions {
                record: "/a".into(),
                fields: vec![("x".into(), "zz:b".into())],
                namespaces: vec![]
            })
            .is_err()
        );
    }
}

#[cfg(test)]
mod peppol {
    use super::*;

    /// Invoice number, dates, parties, totals and every invoice line of a real PEPPOL BIS 3
    /// invoice, checked against values read from the file by eye.
    #[test]
    fn peppol_base_example_lines() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/ubl-peppol/base-example.xml");
        let bytes = std::fs::read(path).unwrap();
        let f = |n: &str, p: &str| (n.to_string(), p.to_string());
        let opts = XmlOptions {
            record: "/Invoice/cac:InvoiceLine".into(),
            fields: vec![
                f("invoice", "/Invoice/cbc:ID"),
                f("issued", "/Invoice/cbc:IssueDate"),
                f("due", "/Invoice/cbc:DueDate"),
                f(
                    "seller",
                    "/Invoice/cac:AccountingSupplierParty/cac:Party/cac:PartyName/cbc:Name",
                ),
                f(
                    "buyer",
                    "/Invoice/cac:AccountingCustomerParty/cac:Party/cac:PartyName/cbc:Name",
                ),
                f(
                    "payable",
                    "/Invoice/cac:LegalMonetaryTotal/cbc:PayableAmount",
                ),
                f(
                    "currency",
                    "/Invoice/cac:LegalMonetaryTotal/cbc:PayableAmount/@currencyID",
                ),
                f("line", "cbc:ID"),
                f("qty", "cbc:InvoicedQuantity"),
                f("unit", "cbc:InvoicedQuantity/@unitCode"),
                f("amount", "cbc:LineExtensionAmount"),
                f("item", "cac:Item/cbc:Name"),
                f("gtin", "cac:Item/cac:StandardItemIdentification/cbc:ID"),
            ],
            namespaces: vec![
                f(
                    "cac",
                    "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2",
                ),
                f(
                    "cbc",
                    "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2",
                ),
            ],
        };
        let mut r = XmlReader::new(&bytes[..], XmlPaths::compile(&opts).unwrap());
        let mut rec = Record::default();
        let mut rows = Vec::new();
        while r.read_into(&mut rec).unwrap() {
            rows.push(rec.values.clone());
        }
        let head = [
            "Snippet1",
            "2017-11-13",
            "2017-12-01",
            "SupplierTradingName Ltd.",
            "BuyerTradingName AS",
            "1656.25",
            "EUR",
        ];
        let mut l1: Vec<&str> = head.to_vec();
        l1.extend(["1", "7", "DAY", "2800", "item name", "21382183120983"]);
        let mut l2: Vec<&str> = head.to_vec();
        l2.extend(["2", "-3", "DAY", "-1500", "item name 2", "21382183120983"]);
        assert_eq!(rows, vec![l1, l2]);
    }
}
