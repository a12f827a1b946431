//! XML out, streaming: one root element, one record element per record, each field written
//! at a path relative to the record element, the same paths the XML reader takes:
//! `cbc:ID` (a child element), `cac:Item/cbc:Name` (nested), `@code` (an attribute of the
//! record element), `cbc:InvoicedQuantity/@unitCode` (an attribute of a child element) and
//! `.` (the record element's own text).
//!
//! Consecutive fields that share a parent share one parent element: `cac:Item/cbc:Name`
//! followed by `cac:Item/cbc:Price` write one `<cac:Item>` holding both, and a `Qty` field
//! next to a `Qty/@unit` field write one `<Qty unit="..">..</Qty>`. The element tree is worked
//! out once from the field list; each record is then written as it comes, nothing is kept.
//!
//! Without a field list every record field becomes a child element named after the field
//! (made a valid XML name: invalid characters become `_`, a name that cannot start an XML
//! name gets a leading `_`).
//!
//! Namespaces: every prefix used in a name must be declared in `namespaces`; the
//! declarations (and `default_namespace`, as `xmlns`) go on the root element. A value with a
//! character XML 1.0 cannot carry (a control character other than tab, CR and LF) is an
//! error for that record, reported before any of it is written.

use std::io::{self, BufWriter, Write};
use std::sync::Arc;

use super::{ParseError, Record};

/// How [`XmlWriter`] lays out its document.
#[derive(Debug, Clone)]
pub struct XmlOutOptions {
    /// The document element (`Invoices`, `ns:Batch`).
    pub root: String,
    /// The element written for each record (`Invoice`, `cac:InvoiceLine`).
    pub record: String,
    /// (prefix, namespace URI), declared on the root element.
    pub namespaces: Vec<(String, String)>,
    /// Declared as `xmlns` on the root element: unprefixed elements are in it.
    pub default_namespace: Option<String>,
    /// (record field name, path relative to the record element) in output order. Empty:
    /// every field of the record as a child element named after it.
    pub fields: Vec<(String, String)>,
    /// Starts the document with `<?xml version="1.0" encoding="UTF-8"?>`.
    pub declaration: bool,
    /// One element a line, indented by two spaces a level. Elements that have text of
    /// their own and child elements are written without added whitespace inside them.
    pub indent: bool,
    /// Leaves out fields with an empty value, and elements left with nothing in them;
    /// otherwise an empty value is an empty element (`<Name/>`) or attribute.
    pub skip_empty: bool,
}

impl Default for XmlOutOptions {
    fn default() -> Self {
        XmlOutOptions {
            root: "Records".into(),
            record: "Record".into(),
            namespaces: Vec::new(),
            default_namespace: None,
            fields: Vec::new(),
            declaration: true,
            indent: false,
            skip_empty: false,
        }
    }
}

/// One element of the per-record tree, with the fields that fill it.
#[derive(Debug, Clone)]
struct Node {
    name: String,
    /// Index into the field list of the field giving this element's text.
    text: Option<usize>,
    /// (attribute name, field index).
    attrs: Vec<(String, usize)>,
    children: Vec<Node>,
}

impl Node {
    fn new(name: &str) -> Node {
        Node {
            name: name.to_string(),
            text: None,
            attrs: Vec::new(),
            children: Vec::new(),
        }
    }
}

/// Something worked out for one list of field names, kept while records share it.
type PerNames<T> = Option<(Arc<[String]>, Vec<T>)>;

/// Writes records as XML, streaming.
pub struct XmlWriter<W: Write> {
    out: BufWriter<W>,
    /// The record element with the fields' elements below it; `None` without a field list.
    tree: Option<Node>,
    /// Record field name of each entry of the field list.
    field_names: Vec<String>,
    /// Where each field-list entry sits in the current records' names, cached per name list.
    field_index: PerNames<Option<usize>>,
    /// Element names for the fields when there is no field list, cached per name list.
    auto_names: PerNames<String>,
    record: String,
    root_start: String,
    root: String,
    declaration: Option<String>,
    indent: bool,
    skip_empty: bool,
    started: bool,
    count: u64,
    /// Scratch: per field, whether it is written for the current record.
    present: Vec<bool>,
}

/// XML 1.0 `NameStartChar`, without `:`.
fn is_name_start(c: char) -> bool {
    matches!(c,
        'A'..='Z' | '_' | 'a'..='z'
        | '\u{C0}'..='\u{D6}' | '\u{D8}'..='\u{F6}' | '\u{F8}'..='\u{2FF}'
        | '\u{370}'..='\u{37D}' | '\u{37F}'..='\u{1FFF}' | '\u{200C}'..='\u{200D}'
        | '\u{2070}'..='\u{218F}' | '\u{2C00}'..='\u{2FEF}' | '\u{3001}'..='\u{D7FF}'
        | '\u{F900}'..='\u{FDCF}' | '\u{FDF0}'..='\u{FFFD}' | '\u{10000}'..='\u{EFFFF}')
}

/// XML 1.0 `NameChar`, without `:`.
fn is_name_char(c: char) -> bool {
    is_name_start(c)
        || matches!(c,
            '-' | '.' | '0'..='9' | '\u{B7}' | '\u{300}'..='\u{36F}' | '\u{203F}'..='\u{2040}')
}

/// A name without a colon (a prefix, or a local name).
fn is_ncname(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(is_name_start) && chars.all(is_name_char)
}

/// XML 1.0 `Char`: what a document may contain at all.
fn is_xml_char(c: char) -> bool {
    matches!(c,
        '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// Makes a field name a valid element name: characters that cannot be in a name become
/// `_`, and a name that cannot start with its first character gets a leading `_`.
pub fn sanitize_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| if is_name_char(c) { c } else { '_' })
        .collect();
    if !out.chars().next().is_some_and(is_name_start) {
        out.insert(0, '_');
    }
    out
}

/// Checks `prefix:local` or `local`, with the prefix declared (`xml` always is).
fn check_qname(name: &str, prefixes: &[(String, String)]) -> Result<(), String> {
    match name.split_once(':') {
        Some((p, l)) => {
            if !is_ncname(p) || !is_ncname(l) {
                return Err(format!("{name:?} is not a valid XML name"));
            }
            if p != "xml" && !prefixes.iter().any(|(q, _)| q == p) {
                return Err(format!(
                    "the prefix `{p}` of {name:?} is not declared; add it to the job's `namespaces`"
                ));
            }
            Ok(())
        }
        None if is_ncname(name) => Ok(()),
        None => Err(format!("{name:?} is not a valid XML name")),
    }
}

/// Adds field `i`, written at `path`, to the record element's tree.
fn add_field(
    record: &mut Node,
    i: usize,
    path: &str,
    prefixes: &[(String, String)],
) -> Result<(), String> {
    let t = path.trim();
    if t.is_empty() {
        return Err("the path is empty".into());
    }
    if t.starts_with('/') {
        return Err(format!(
            "in {t:?}: output paths are relative to the record element (`cbc:ID`, `cac:Item/cbc:Name`, `@code`)"
        ));
    }
    let mut parts: Vec<&str> = if t == "." {
        Vec::new()
    } else {
        t.split('/').collect()
    };
    let attr = match parts.last().and_then(|p| p.strip_prefix('@')) {
        Some(a) => {
            parts.pop();
            check_qname(a, prefixes).map_err(|e| format!("in {t:?}: {e}"))?;
            if a == "xmlns" || a.starts_with("xmlns:") {
                return Err(format!(
                    "in {t:?}: namespace declarations come from the job's `namespaces`"
                ));
            }
            Some(a)
        }
        None => None,
    };
    for part in &parts {
        if part.starts_with('@') {
            return Err(format!(
                "in {t:?}: an attribute (`@name`) may only end a path"
            ));
        }
        check_qname(part, prefixes).map_err(|e| {
            format!("in {t:?}: {e} (expected element names separated by `/`, `@name` last)")
        })?;
    }
    let Some((leaf, parents)) = parts.split_last() else {
        // On the record element itself.
        return match attr {
            Some(a) if record.attrs.iter().any(|(n, _)| n == a) => Err(format!(
                "two fields write the attribute `{a}` of the record element"
            )),
            Some(a) => {
                record.attrs.push((a.to_string(), i));
                Ok(())
            }
            None if record.text.is_some() => {
                Err("two fields write the text of the record element (`.`)".into())
            }
            None => {
                record.text = Some(i);
                Ok(())
            }
        };
    };
    let mut node = record;
    for p in parents {
        let reuse = node.children.last().is_some_and(|c| c.name == *p);
        if !reuse {
            node.children.push(Node::new(p));
        }
        node = node.children.last_mut().expect("just pushed");
    }
    // The leaf is shared with the previous field unless that would write something twice.
    let reuse = node.children.last().is_some_and(|c| {
        c.name == *leaf
            && match attr {
                Some(a) => c.attrs.iter().all(|(n, _)| n != a),
                None => c.text.is_none(),
            }
    });
    if !reuse {
        node.children.push(Node::new(leaf));
    }
    let leaf = node.children.last_mut().expect("just pushed");
    match attr {
        Some(a) => leaf.attrs.push((a.to_string(), i)),
        None => leaf.text = Some(i),
    }
    Ok(())
}

/// Writes `s` escaped for text (`attr == false`) or a double-quoted attribute value.
/// CR is always a character reference (a parser would turn a raw one into LF); in an
/// attribute, so are tab and LF (a parser would turn them into spaces).
fn write_escaped<W: Write>(out: &mut W, s: &str, attr: bool) -> io::Result<()> {
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &[u8] = match b {
            b'&' => b"&amp;",
            b'<' => b"&lt;",
            b'>' => b"&gt;",
            b'"' => b"&quot;",
            b'\'' => b"&apos;",
            b'\r' => b"&#xD;",
            b'\n' if attr => b"&#xA;",
            b'\t' if attr => b"&#x9;",
            _ => continue,
        };
        out.write_all(&bytes[start..i])?;
        out.write_all(esc)?;
        start = i + 1;
    }
    out.write_all(&bytes[start..])
}

fn write_indent<W: Write>(out: &mut W, level: usize) -> io::Result<()> {
    out.write_all(b"\n")?;
    for _ in 0..level {
        out.write_all(b"  ")?;
    }
    Ok(())
}

/// Whether `node` gets written: it or an element below it has a field to show.
fn node_present(node: &Node, present: &[bool]) -> bool {
    node.text.is_some_and(|i| present[i])
        || node.attrs.iter().any(|&(_, i)| present[i])
        || node.children.iter().any(|c| node_present(c, present))
}

/// Writes `node` (always: the caller checks `node_present`) at nesting `level`.
fn write_node<W: Write>(
    out: &mut W,
    node: &Node,
    values: &[&str],
    present: &[bool],
    level: usize,
    indent: bool,
) -> io::Result<()> {
    if indent {
        write_indent(out, level)?;
    }
    write!(out, "<{}", node.name)?;
    for &(ref name, i) in &node.attrs {
        if present[i] {
            write!(out, " {name}=\"")?;
            write_escaped(out, values[i], true)?;
            out.write_all(b"\"")?;
        }
    }
    let text = node.text.filter(|&i| present[i] && !values[i].is_empty());
    let has_children = node.children.iter().any(|c| node_present(c, present));
    if text.is_none() && !has_children {
        return out.write_all(b"/>");
    }
    out.write_all(b">")?;
    if let Some(i) = text {
        write_escaped(out, values[i], false)?;
    }
    // Whitespace added next to text of the element's own would become part of it.
    let inner_indent = indent && text.is_none();
    for c in node.children.iter().filter(|c| node_present(c, present)) {
        write_node(out, c, values, present, level + 1, inner_indent)?;
    }
    if inner_indent {
        write_indent(out, level)?;
    }
    write!(out, "</{}>", node.name)
}

impl<W: Write> XmlWriter<W> {
    /// Checks the names and paths; nothing is written before the first record (or
    /// [`finish`](Self::finish)).
    pub fn new(out: W, opts: &XmlOutOptions) -> Result<Self, String> {
        let ns = &opts.namespaces;
        for (k, (p, uri)) in ns.iter().enumerate() {
            if !is_ncname(p) || p.eq_ignore_ascii_case("xmlns") || p == "xml" {
                return Err(format!("namespace prefix {p:?} cannot be declared"));
            }
            if uri.is_empty() {
                return Err(format!("namespace prefix `{p}`: the URI is empty"));
            }
            if ns[..k].iter().any(|(q, _)| q == p) {
                return Err(format!("namespace prefix `{p}` is declared twice"));
            }
            if uri.chars().any(|c| !is_xml_char(c)) {
                return Err(format!("namespace `{p}`: the URI has a control character"));
            }
        }
        if let Some(d) = &opts.default_namespace
            && d.chars().any(|c| !is_xml_char(c))
        {
            return Err("the default namespace has a control character".into());
        }
        check_qname(&opts.root, ns).map_err(|e| format!("root: {e}"))?;
        check_qname(&opts.record, ns).map_err(|e| format!("record: {e}"))?;
        let tree = if opts.fields.is_empty() {
            None
        } else {
            let mut record = Node::new(&opts.record);
            for (i, (name, path)) in opts.fields.iter().enumerate() {
                add_field(&mut record, i, path, ns).map_err(|e| format!("field `{name}`: {e}"))?;
            }
            Some(record)
        };
        let mut root_start = Vec::new();
        write!(root_start, "<{}", opts.root).expect("vec write");
        if let Some(d) = &opts.default_namespace {
            root_start.extend_from_slice(b" xmlns=\"");
            write_escaped(&mut root_start, d, true).expect("vec write");
            root_start.push(b'"');
        }
        for (p, uri) in ns {
            write!(root_start, " xmlns:{p}=\"").expect("vec write");
            write_escaped(&mut root_start, uri, true).expect("vec write");
            root_start.push(b'"');
        }
        Ok(XmlWriter {
            out: BufWriter::with_capacity(64 * 1024, out),
            tree,
            field_names: opts.fields.iter().map(|(n, _)| n.clone()).collect(),
            field_index: None,
            auto_names: None,
            record: opts.record.clone(),
            root_start: String::from_utf8(root_start).expect("built from strings"),
            root: opts.root.clone(),
            declaration: opts
                .declaration
                .then(|| "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n".to_string()),
            indent: opts.indent,
            skip_empty: opts.skip_empty,
            started: false,
            count: 0,
            present: Vec::new(),
        })
    }

    /// Names another encoding in the XML declaration, for output that the caller encodes
    /// (with an encoding writer around `W`) in something other than UTF-8.
    pub fn with_encoding(mut self, label: &str) -> Self {
        if self.declaration.is_some() {
            let mut decl = b"<?xml version=\"1.0\" encoding=\"".to_vec();
            write_escaped(&mut decl, label, true).expect("vec write");
            decl.extend_from_slice(b"\"?>\n");
            self.declaration = Some(String::from_utf8(decl).expect("built from strings"));
        }
        self
    }

    /// Records written so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    fn start(&mut self) -> io::Result<()> {
        if let Some(d) = &self.declaration {
            self.out.write_all(d.as_bytes())?;
        }
        self.out.write_all(self.root_start.as_bytes())?;
        self.started = true;
        Ok(())
    }

    /// The error for a value XML cannot carry, or a field the record lacks.
    fn record_error(&self, rec: &Record, field: &str, message: String) -> ParseError {
        let mut pos = rec.pos;
        if pos.record == 0 {
            pos.record = self.count + 1;
        }
        ParseError {
            pos: Some(pos),
            field: Some(field.to_string()),
            value: None,
            message,
        }
    }

    fn check_value(&self, rec: &Record, field: &str, value: &str) -> Result<(), ParseError> {
        match value.chars().find(|&c| !is_xml_char(c)) {
            None => Ok(()),
            Some(c) => Err(ParseError {
                value: Some(value.to_string()),
                ..self.record_error(
                    rec,
                    field,
                    format!(
                        "the character U+{:04X} is not allowed in XML 1.0",
                        u32::from(c)
                    ),
                )
            }),
        }
    }

    /// Writes one record element. A record that cannot be written (a value with a
    /// character XML cannot carry, a field of the field list it does not have) is an error
    /// naming record and field, and nothing of it is written. A failed write to `W` is an
    /// error too (its message starts with "cannot write").
    pub fn write(&mut self, rec: &Record) -> Result<(), ParseError> {
        // Everything is checked before a byte of the record is written.
        if self.tree.is_some() {
            self.index_fields(rec);
            let (_, idx) = self.field_index.as_ref().expect("just indexed");
            for (k, name) in self.field_names.iter().enumerate() {
                let Some(i) = idx[k] else {
                    return Err(self.record_error(
                        rec,
                        name,
                        "the record has no such field (check the job's `fields`)".into(),
                    ));
                };
                self.check_value(rec, name, rec.values.get(i).map_or("", String::as_str))?;
            }
        } else {
            for (name, value) in rec.fields() {
                self.check_value(rec, name, value)?;
            }
        }
        self.write_checked(rec).map_err(|e| {
            let mut err = ParseError::new(format!("cannot write: {e}"));
            err.pos = Some(rec.pos);
            err
        })?;
        self.count += 1;
        Ok(())
    }

    fn index_fields(&mut self, rec: &Record) {
        if self
            .field_index
            .as_ref()
            .is_some_and(|(names, _)| Arc::ptr_eq(names, &rec.names))
        {
            return;
        }
        let idx = self
            .field_names
            .iter()
            .map(|n| rec.names.iter().position(|m| m == n))
            .collect();
        self.field_index = Some((rec.names.clone(), idx));
    }

    fn write_checked(&mut self, rec: &Record) -> io::Result<()> {
        if !self.started {
            self.start()?;
            self.out.write_all(b">")?;
        }
        match &self.tree {
            Some(tree) => {
                let (_, idx) = self.field_index.as_ref().expect("indexed in write");
                let values: Vec<&str> = idx
                    .iter()
                    .map(|i| i.and_then(|i| rec.values.get(i)).map_or("", String::as_str))
                    .collect();
                self.present.clear();
                self.present
                    .extend(values.iter().map(|v| !(self.skip_empty && v.is_empty())));
                write_node(&mut self.out, tree, &values, &self.present, 1, self.indent)
            }
            None => {
                if !self
                    .auto_names
                    .as_ref()
                    .is_some_and(|(names, _)| Arc::ptr_eq(names, &rec.names))
                {
                    let el = rec.names.iter().map(|n| sanitize_name(n)).collect();
                    self.auto_names = Some((rec.names.clone(), el));
                }
                let (_, elements) = self.auto_names.as_ref().expect("just set");
                let out = &mut self.out;
                if self.indent {
                    write_indent(out, 1)?;
                }
                write!(out, "<{}>", self.record)?;
                for (el, value) in elements.iter().zip(rec.values.iter()) {
                    if self.skip_empty && value.is_empty() {
                        continue;
                    }
                    if self.indent {
                        write_indent(out, 2)?;
                    }
                    if value.is_empty() {
                        write!(out, "<{el}/>")?;
                    } else {
                        write!(out, "<{el}>")?;
                        write_escaped(out, value, false)?;
                        write!(out, "</{el}>")?;
                    }
                }
                if self.indent {
                    write_indent(out, 1)?;
                }
                write!(out, "</{}>", self.record)
            }
        }
    }

    /// Closes the document (an empty root element when no record was written) and returns
    /// the writer.
    pub fn finish(mut self) -> io::Result<W> {
        if self.started {
            if self.indent && self.count > 0 {
                self.out.write_all(b"\n")?;
            }
            writeln!(self.out, "</{}>", self.root)?;
        } else {
            self.start()?;
            self.out.write_all(b"/>\n")?;
        }
        self.out.flush()?;
        self.out.into_inner().map_err(|e| e.into_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::Position;
    use crate::formats::xml::{XmlOptions, XmlPaths, XmlReader};

    const CAC: &str = "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2";
    const CBC: &str = "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2";

    fn rec(fields: &[(&str, &str)]) -> Record {
        Record {
            names: fields
                .iter()
                .map(|(n, _)| n.to_string())
                .collect::<Vec<_>>()
                .into(),
            values: fields.iter().map(|(_, v)| v.to_string()).collect(),
            kinds: Vec::new(),
            pos: Position::default(),
        }
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    fn write_all(opts: &XmlOutOptions, recs: &[Record]) -> Result<String, ParseError> {
        let mut w = XmlWriter::new(Vec::new(), opts).map_err(ParseError::new)?;
        for r in recs {
            w.write(r)?;
        }
        Ok(String::from_utf8(w.finish().unwrap()).unwrap())
    }

    fn opts(fields: &[(&str, &str)]) -> XmlOutOptions {
        XmlOutOptions {
            root: "Orders".into(),
            record: "Order".into(),
            fields: pairs(fields),
            declaration: false,
            ..Default::default()
        }
    }

    #[test]
    fn nesting_shared_parents_and_attributes() {
        let o = opts(&[
            ("no", "@no"),
            ("id", "ID"),
            ("name", "Item/Name"),
            ("price", "Item/Price"),
            ("cur", "Item/Price/@currency"),
            ("qty", "Qty"),
            ("unit", "Qty/@unit"),
            ("deep", "A/B/C"),
            ("deep2", "A/B/D"),
            ("other", "Item/Name"),
        ]);
        let r = rec(&[
            ("no", "7"),
            ("id", "1"),
            ("name", "Bolt"),
            ("price", "2.50"),
            ("cur", "EUR"),
            ("qty", "3"),
            ("unit", "H87"),
            ("deep", "c"),
            ("deep2", "d"),
            ("other", "Nut"),
        ]);
        assert_eq!(
            write_all(&o, &[r]).unwrap(),
            "<Orders><Order no=\"7\"><ID>1</ID>\
             <Item><Name>Bolt</Name><Price currency=\"EUR\">2.50</Price></Item>\
             <Qty unit=\"H87\">3</Qty><A><B><C>c</C><D>d</D></B></A>\
             <Item><Name>Nut</Name></Item></Order></Orders>\n"
        );
        // The attribute first, then the text: still one element. The same element twice
        // in a row: two elements under one parent.
        let o = opts(&[
            ("unit", "Qty/@unit"),
            ("qty", "Qty"),
            ("a", "L/Note"),
            ("b", "L/Note"),
            ("t", "."),
        ]);
        let r = rec(&[
            ("unit", "KGM"),
            ("qty", "1.5"),
            ("a", "x"),
            ("b", "y"),
            ("t", "own"),
        ]);
        assert_eq!(
            write_all(&o, &[r]).unwrap(),
            "<Orders><Order>own<Qty unit=\"KGM\">1.5</Qty>\
             <L><Note>x</Note><Note>y</Note></L></Order></Orders>\n"
        );
    }

    #[test]
    fn namespaces_declaration_and_indent() {
        let o = XmlOutOptions {
            root: "Invoices".into(),
            record: "cac:InvoiceLine".into(),
            namespaces: pairs(&[("cac", CAC), ("cbc", CBC)]),
            default_namespace: Some("urn:example:batch".into()),
            fields: pairs(&[
                ("line", "cbc:ID"),
                ("item", "cac:Item/cbc:Name"),
                ("lang", "cac:Item/cbc:Name/@xml:lang"),
            ]),
            indent: true,
            ..Default::default()
        };
        let r = rec(&[("line", "1"), ("item", "Bolt"), ("lang", "en")]);
        let text = write_all(&o, &[r.clone(), r]).unwrap();
        let line = "  <cac:InvoiceLine>\n    <cbc:ID>1</cbc:ID>\n    <cac:Item>\n      \
                    <cbc:Name xml:lang=\"en\">Bolt</cbc:Name>\n    </cac:Item>\n  \
                    </cac:InvoiceLine>\n";
        assert_eq!(
            text,
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Invoices xmlns=\"urn:example:batch\" \
                 xmlns:cac=\"{CAC}\" xmlns:cbc=\"{CBC}\">\n{line}{line}</Invoices>\n"
            )
        );
        // Undeclared or invalid names are refused up front.
        let bad = |f: &[(&str, &str)]| {
            XmlWriter::new(
                Vec::new(),
                &XmlOutOptions {
                    fields: pairs(f),
                    namespaces: pairs(&[("cbc", CBC)]),
                    ..Default::default()
                },
            )
            .err()
            .unwrap()
        };
        assert!(bad(&[("a", "zz:ID")]).contains("`zz`"));
        assert!(bad(&[("a", "/Root/ID")]).contains("relative"));
        assert!(bad(&[("a", "@x/ID")]).contains("only end"));
        assert!(bad(&[("a", "1ID")]).contains("not a valid XML name"));
        assert!(bad(&[("a", "Item//ID")]).contains("not a valid XML name"));
        assert!(bad(&[("a", "@xmlns:q")]).contains("namespace"));
        assert!(bad(&[("a", "@c"), ("b", "@c")]).contains("two fields"));
        assert!(bad(&[("a", ""), ("b", "@c")]).contains("field `a`"));
        assert!(
            XmlWriter::new(
                Vec::new(),
                &XmlOutOptions {
                    namespaces: pairs(&[("a", CAC), ("a", CBC)]),
                    ..Default::default()
                }
            )
            .is_err()
        );
        let w = XmlWriter::new(
            Vec::new(),
            &XmlOutOptions {
                declaration: true,
                ..opts(&[])
            },
        )
        .unwrap()
        .with_encoding("windows-1252");
        assert!(
            String::from_utf8(w.finish().unwrap())
                .unwrap()
                .starts_with("<?xml version=\"1.0\" encoding=\"windows-1252\"?>\n<Orders/>")
        );
    }

    #[test]
    fn escaping() {
        let o = opts(&[("a", "@a"), ("t", "T")]);
        let v = "x & y < z > \"q\" 'a'\r\n\tend";
        let text = write_all(&o, &[rec(&[("a", v), ("t", v)])]).unwrap();
        assert_eq!(
            text,
            "<Orders><Order a=\"x &amp; y &lt; z &gt; &quot;q&quot; &apos;a&apos;&#xD;&#xA;&#x9;end\">\
             <T>x &amp; y &lt; z &gt; &quot;q&quot; &apos;a&apos;&#xD;\n\tend</T></Order></Orders>\n"
        );
        let text = write_all(&opts(&[]), &[rec(&[("t", "]]> é €")])]).unwrap();
        assert!(text.contains("<t>]]&gt; é €</t>"), "{text}");
    }

    #[test]
    fn invalid_characters_are_an_error_naming_field_and_record() {
        let o = opts(&[("id", "ID"), ("name", "Name")]);
        let mut w = XmlWriter::new(Vec::new(), &o).unwrap();
        w.write(&rec(&[("id", "1"), ("name", "ok")])).unwrap();
        let mut bad = rec(&[("id", "2"), ("name", "bell\u{7}")]);
        let e = w.write(&bad).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("name"));
        assert_eq!(e.pos.unwrap().record, 2);
        assert!(e.message.contains("U+0007"), "{e}");
        assert!(e.to_string().starts_with("record 2 "), "{e}");
        // The reader's position wins when the record has one.
        bad.pos = Position {
            record: 40,
            line: 41,
            byte: 42,
        };
        assert_eq!(w.write(&bad).unwrap_err().pos.unwrap().record, 40);
        bad.values[1] = "\u{FFFE}".into();
        assert!(w.write(&bad).unwrap_err().message.contains("U+FFFE"));
        // Nothing of a refused record was written; writing goes on.
        w.write(&rec(&[("id", "3"), ("name", "")])).unwrap();
        assert_eq!(w.count(), 2);
        let text = String::from_utf8(w.finish().unwrap()).unwrap();
        assert_eq!(
            text,
            "<Orders><Order><ID>1</ID><Name>ok</Name></Order>\
             <Order><ID>3</ID><Name/></Order></Orders>\n"
        );
        // Without a field list, every field is checked; a field list naming a field the
        // record lacks is an error too.
        let mut w = XmlWriter::new(Vec::new(), &opts(&[])).unwrap();
        let e = w.write(&rec(&[("a", "\u{0}")])).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("a"));
        let mut w = XmlWriter::new(Vec::new(), &o).unwrap();
        let e = w.write(&rec(&[("id", "1")])).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("name"));
        assert!(e.message.contains("no such field"), "{e}");
    }

    #[test]
    fn zero_records_and_empty_values() {
        let o = XmlOutOptions {
            namespaces: pairs(&[("cbc", CBC)]),
            ..opts(&[("a", "cbc:A")])
        };
        assert_eq!(
            write_all(&o, &[]).unwrap(),
            format!("<Orders xmlns:cbc=\"{CBC}\"/>\n")
        );
        let o = XmlOutOptions {
            indent: true,
            declaration: true,
            ..opts(&[])
        };
        assert_eq!(
            write_all(&o, &[]).unwrap(),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Orders/>\n"
        );
        let fields = [
            ("code", "@code"),
            ("a", "A"),
            ("n", "Item/Name"),
            ("p", "Item/Price"),
            ("u", "Q/@unit"),
            ("q", "Q"),
        ];
        let r = rec(&[
            ("code", ""),
            ("a", ""),
            ("n", ""),
            ("p", ""),
            ("u", "H87"),
            ("q", ""),
        ]);
        assert_eq!(
            write_all(&opts(&fields), std::slice::from_ref(&r)).unwrap(),
            "<Orders><Order code=\"\"><A/><Item><Name/><Price/></Item><Q unit=\"H87\"/></Order></Orders>\n"
        );
        let skip = XmlOutOptions {
            skip_empty: true,
            ..opts(&fields)
        };
        assert_eq!(
            write_all(&skip, std::slice::from_ref(&r)).unwrap(),
            "<Orders><Order><Q unit=\"H87\"/></Order></Orders>\n"
        );
        let r = rec(&[("a", "1"), ("b", ""), ("c", "3")]);
        let skip = XmlOutOptions {
            skip_empty: true,
            ..opts(&[])
        };
        assert_eq!(
            write_all(&skip, std::slice::from_ref(&r)).unwrap(),
            "<Orders><Order><a>1</a><c>3</c></Order></Orders>\n"
        );
        assert_eq!(
            write_all(&opts(&[]), &[r]).unwrap(),
            "<Orders><Order><a>1</a><b/><c>3</c></Order></Orders>\n"
        );
    }

    #[test]
    fn indent_leaves_mixed_content_alone() {
        let o = XmlOutOptions {
            indent: true,
            ..opts(&[
                ("t", "."),
                ("q", "Q"),
                ("n", "I/N"),
                ("m", "J/K/M"),
                ("mt", "J/K"),
            ])
        };
        let r = rec(&[
            ("t", "own"),
            ("q", "1"),
            ("n", "x"),
            ("m", "y"),
            ("mt", "z"),
        ]);
        assert_eq!(
            write_all(&o, &[r]).unwrap(),
            "<Orders>\n  <Order>own<Q>1</Q><I><N>x</N></I><J><K>z<M>y</M></K></J></Order>\n</Orders>\n"
        );
        let r = rec(&[("t", ""), ("q", "1"), ("n", "x"), ("m", "y"), ("mt", "z")]);
        assert_eq!(
            write_all(&o, &[r]).unwrap(),
            "<Orders>\n  <Order>\n    <Q>1</Q>\n    <I>\n      <N>x</N>\n    </I>\n    \
             <J>\n      <K>z<M>y</M></K>\n    </J>\n  </Order>\n</Orders>\n"
        );
    }

    #[test]
    fn field_names_become_element_names() {
        assert_eq!(sanitize_name("OrderNo"), "OrderNo");
        assert_eq!(sanitize_name("Order No."), "Order_No.");
        assert_eq!(sanitize_name("1st"), "_1st");
        assert_eq!(sanitize_name("-x"), "_-x");
        assert_eq!(sanitize_name("a:b/c"), "a_b_c");
        assert_eq!(sanitize_name(""), "_");
        assert_eq!(sanitize_name("Größe€?"), "Größe€_");
        let o = XmlOutOptions {
            indent: true,
            ..opts(&[])
        };
        let text = write_all(&o, &[rec(&[("Order No", "1"), ("2nd", "b")])]).unwrap();
        assert_eq!(
            text,
            "<Orders>\n  <Order>\n    <Order_No>1</Order_No>\n    <_2nd>b</_2nd>\n  </Order>\n</Orders>\n"
        );
    }

    #[test]
    fn round_trip_through_the_reader() {
        let f = [
            ("code", "@code"),
            ("id", "cbc:ID"),
            ("qty", "cbc:InvoicedQuantity"),
            ("unit", "cbc:InvoicedQuantity/@unitCode"),
            ("item", "cac:Item/cbc:Name"),
            ("gtin", "cac:Item/cac:Std/cbc:ID"),
            ("note", "cbc:Note"),
            ("empty", "cbc:Empty"),
        ];
        let recs = [
            rec(&[
                ("code", "a\"b'<&>\tc\nd"),
                ("id", "1"),
                ("qty", "3"),
                ("unit", "H87"),
                ("item", "Bolt & nut € <M8>"),
                ("gtin", "0123"),
                ("note", "two\r\nlines ]]> 'q' \"q\""),
                ("empty", ""),
            ]),
            rec(&[
                ("code", ""),
                ("id", "2"),
                ("qty", "1.5"),
                ("unit", "KGM"),
                ("item", "日本語"),
                ("gtin", ""),
                ("note", "x"),
                ("empty", ""),
            ]),
        ];
        for indent in [false, true] {
            let o = XmlOutOptions {
                root: "Invoice".into(),
                record: "cac:InvoiceLine".into(),
                namespaces: pairs(&[("cac", CAC), ("cbc", CBC)]),
                default_namespace: Some(
                    "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2".into(),
                ),
                fields: pairs(&f),
                indent,
                ..Default::default()
            };
            let text = write_all(&o, &recs).unwrap();
            // The reader, with other prefixes for the same namespaces.
            let ro = XmlOptions {
                record: "/Invoice/c:InvoiceLine".into(),
                fields: pairs(&f)
                    .into_iter()
                    .map(|(n, p)| (n, p.replace("cac:", "c:").replace("cbc:", "b:")))
                    .collect(),
                namespaces: pairs(&[("c", CAC), ("b", CBC)]),
            };
            let mut r = XmlReader::new(text.as_bytes(), XmlPaths::compile(&ro).unwrap());
            let mut got = Record::default();
            let mut n = 0;
            while r.read_into(&mut got).unwrap() {
                assert_eq!(got.values, recs[n].values, "indent {indent}: {text}");
                n += 1;
            }
            assert_eq!(n, 2);
        }
        // Without a field list, read back by the element names.
        let text = write_all(&opts(&[]), &recs).unwrap();
        let ro = XmlOptions {
            record: "/Orders/Order".into(),
            fields: f
                .iter()
                .map(|(n, _)| (n.to_string(), n.to_string()))
                .collect(),
            namespaces: Vec::new(),
        };
        let mut r = XmlReader::new(text.as_bytes(), XmlPaths::compile(&ro).unwrap());
        let mut got = Record::default();
        for want in &recs {
            assert!(r.read_into(&mut got).unwrap());
            assert_eq!(got.values, want.values, "{text}");
        }
        assert!(!r.read_into(&mut got).unwrap());
    }
}
