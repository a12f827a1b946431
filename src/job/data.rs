//! The data parts of a job file: `[input]` (how to read records), `[transform]` (how to
//! change them) and each output's `format` (how to write them).

use std::ops::Range;
use std::path::Path;

use encoding_rs::Encoding;

use super::toml_reader::{Doc, Str, TableReader, one_of};
use crate::formats::csv::{CsvOptions, CsvOutOptions, Quoting, Ragged};
use crate::formats::fixed::{Align, Column, Layout};
use crate::formats::json::JsonStyle;
use crate::formats::json_in::{JsonInOptions, JsonInStyle};
use crate::formats::template_out::{TemplateOptions, TemplateWriter};
use crate::formats::text::{ItemsOptions, TextMode, TextOptions, TextRules};
use crate::formats::xml::{XmlOptions, XmlPaths};
use crate::formats::xml_out::{XmlOutOptions, XmlWriter};
pub use crate::transform::TransformSpec;

/// What to do with a record that cannot be read or transformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    /// The whole file fails and goes to the error folder; nothing is written.
    Fail,
    /// The record is written to a rejects file beside the outputs, with the reason.
    Skip,
}

#[derive(Debug, Clone)]
pub enum InputFormat {
    Csv(CsvOptions),
    Xml(XmlOptions),
    Fixed(Layout),
    Json(JsonInOptions),
    Text(TextRules),
    /// A PDF's text, read with the rules of `text` (`mode`, `capture`, `items`, ...).
    Pdf(TextRules),
}

#[derive(Debug, Clone)]
pub struct Input {
    pub format: InputFormat,
    pub encoding: &'static Encoding,
    /// Replace undecodable bytes with U+FFFD instead of failing.
    pub replace: bool,
    pub on_error: OnError,
    /// Read the records from the first embedded file of a PDF whose name matches this glob
    /// (`attachment = "factur-x.xml"`), not from the file itself.
    pub attachment: Option<(String, globset::GlobMatcher)>,
    /// The largest record, in bytes of the decoded text (`max_record`): a larger one fails
    /// the file, and no reader holds much more of it than this.
    pub max_record: u64,
}

impl Input {
    /// The names of the fields its records have, when the job file says them all (XML
    /// paths, text captures, fixed-width columns, CSV `columns`); `None` when the file
    /// does (a CSV header, JSON keys).
    pub fn field_names(&self) -> Option<Vec<String>> {
        match &self.format {
            InputFormat::Csv(o) => o.columns.clone(),
            InputFormat::Xml(o) => Some(o.fields.iter().map(|(n, _)| n.clone()).collect()),
            InputFormat::Fixed(l) => Some(l.columns.iter().map(|c| c.name.clone()).collect()),
            InputFormat::Json(_) => None,
            InputFormat::Text(r) | InputFormat::Pdf(r) => Some(r.names().to_vec()),
        }
    }
}

#[derive(Debug, Clone)]
pub enum OutputFormat {
    /// The original bytes, unchanged.
    Original,
    Csv(CsvOutOptions),
    Json(JsonStyle),
    Fixed(Layout),
    Xml(XmlOutOptions),
    /// Text from minijinja templates: a header, one rendering per record, a footer.
    Text(TemplateOptions),
    /// Records loaded into a database table (`database = ...`): written to a spool file
    /// first, loaded when the output is committed (src/outputs/database.rs).
    /// The table's columns are learnt per file, before its records are read.
    Database(
        std::sync::Arc<super::database::DatabaseOutput>,
        Option<std::sync::Arc<crate::db::types::Described>>,
    ),
}

#[derive(Debug, Clone)]
pub struct OutputData {
    pub format: OutputFormat,
    pub encoding: &'static Encoding,
    /// Write `?` for characters the encoding lacks instead of failing.
    pub replace: bool,
    pub crlf: bool,
}

impl Default for OutputData {
    fn default() -> Self {
        OutputData {
            format: OutputFormat::Original,
            encoding: encoding_rs::UTF_8,
            replace: false,
            crlf: false,
        }
    }
}

fn one_char(doc: &mut Doc<'_>, s: Option<Str>, default: Option<u8>) -> Option<Option<u8>> {
    let Some(s) = s else { return Some(default) };
    let v = match s.value.as_str() {
        "\\t" | "\t" | "tab" => "\t",
        other => other,
    };
    if v.len() == 1 && v.is_ascii() {
        return Some(Some(v.as_bytes()[0]));
    }
    doc.error(
        s.span.clone(),
        &s.key,
        format!(
            "expected one ASCII character (or \"tab\"), found {:?}",
            s.value
        ),
    );
    None
}

fn encoding(doc: &mut Doc<'_>, s: Option<Str>) -> Option<&'static Encoding> {
    let Some(s) = s else {
        return Some(encoding_rs::UTF_8);
    };
    match crate::formats::encoding::by_label(&s.value) {
        Some(e) => Some(e),
        None => {
            doc.error(
                s.span.clone(),
                &s.key,
                format!(
                    "unknown encoding {:?}; use a label such as \"utf-8\", \"windows-1252\", \"iso-8859-15\", \"utf-16le\"",
                    s.value
                ),
            );
            None
        }
    }
}

fn layout(doc: &mut Doc<'_>, t: &mut TableReader<'_, '_>, trim: bool) -> Option<Layout> {
    let mut columns = Vec::new();
    let mut ok = true;
    let tables = t.tables(doc, "column");
    if tables.is_empty() {
        doc.error(
            t.span.clone(),
            &format!("{}.column", t.path),
            "a fixed-width format needs `[[...column]]` entries with name, start and length",
        );
        return None;
    }
    for mut c in tables {
        let name = c.str(doc, "name");
        let start = c.uint(doc, "start");
        let length = c.uint(doc, "length");
        let align_raw = c.str(doc, "align");
        let align = one_of(
            doc,
            align_raw,
            &[("left", Align::Left), ("right", Align::Right)],
            Align::Left,
        );
        let pad_raw = c.str(doc, "pad");
        let pad = match pad_raw {
            Some(p) if p.value.chars().count() == 1 => p.value.chars().next(),
            Some(p) => {
                doc.error(p.span.clone(), &p.key, "expected one character");
                None
            }
            None => Some(' '),
        };
        let span = c.span.clone();
        let path = c.path.clone();
        c.finish_as(doc, "column", "");
        match (name, start, length, align, pad) {
            (Some(n), Some(s), Some(l), Some(a), Some(p)) if s > 0 && l > 0 => {
                columns.push(Column {
                    name: n.value,
                    start: s as usize,
                    length: l as usize,
                    align: a,
                    pad: p,
                })
            }
            (Some(_), Some(_), Some(_), _, _) => {
                doc.error(span, &path, "start and length count from 1");
                ok = false;
            }
            _ => {
                if c_missing(doc, span, &path) {
                    ok = false;
                }
            }
        }
    }
    let l = Layout {
        columns,
        trim,
        short_lines: true,
    };
    if let Err(e) = l.check() {
        doc.error(t.span.clone(), &t.path, e);
        return None;
    }
    ok.then_some(l)
}

fn c_missing(doc: &mut Doc<'_>, span: std::ops::Range<usize>, path: &str) -> bool {
    doc.error(span, path, "each column needs `name`, `start` and `length`");
    true
}

/// `encoding`, and the key (`on_undecodable` in `[input]`, `on_unmappable` in an output)
/// that says whether a character that cannot be converted is replaced (`"replace"`) or
/// fails the file (`"error"`, the default).
fn read_encoding(
    doc: &mut Doc<'_>,
    t: &mut TableReader<'_, '_>,
    on_bad_char: &str,
) -> (Option<&'static Encoding>, Option<bool>) {
    let enc_raw = t.str(doc, "encoding");
    let enc = encoding(doc, enc_raw);
    let bad_char_raw = t.str(doc, on_bad_char);
    let replace = one_of(
        doc,
        bad_char_raw,
        &[("error", false), ("replace", true)],
        false,
    );
    (enc, replace)
}

/// `delimiter` and `quote` of a CSV input or output: one character each, `,` and `"` by
/// default.
fn read_delimiter_quote(doc: &mut Doc<'_>, t: &mut TableReader<'_, '_>) -> Option<(u8, u8)> {
    let d = t.str(doc, "delimiter");
    let delimiter = one_char(doc, d, Some(b','));
    let q = t.str(doc, "quote");
    let quote = one_char(doc, q, Some(b'"'));
    Some((delimiter??, quote??))
}

/// A table of string values (`[input.fields]`, `[output.namespaces]`) as (name, value)
/// pairs in file order; empty when absent.
fn str_values(doc: &mut Doc<'_>, t: &mut TableReader<'_, '_>, key: &str) -> Vec<(String, String)> {
    let map = t.str_map(doc, key).unwrap_or_default();
    map.into_iter().map(|(k, v)| (k, v.value)).collect()
}

/// Reads `[input]`: its format, how its text is decoded and what a bad record does, then
/// the keys of that format. Every problem found is reported; `None` if there was one.
pub fn read_input(doc: &mut Doc<'_>, mut t: TableReader<'_, '_>) -> Option<Input> {
    let Some(kind) = read_input_kind(doc, &mut t) else {
        t.finish_as(doc, "input", "");
        return None;
    };
    let (enc, replace) = read_encoding(doc, &mut t, "on_undecodable");
    let on_error_raw = t.str(doc, "on_error");
    let on_error = one_of(
        doc,
        on_error_raw,
        &[("fail", OnError::Fail), ("skip", OnError::Skip)],
        OnError::Fail,
    );
    let attachment = read_attachment(doc, &mut t, &kind);
    let max_record = read_max_record(doc, &mut t);
    // A bad CSV key or text `mode` ends the reading of `[input]` at once (`?`): its unknown
    // keys are not reported then.
    let format = match kind.as_str() {
        "csv" => Some(InputFormat::Csv(read_csv_input(doc, &mut t)?)),
        "xml" => read_xml_input(doc, &mut t).map(InputFormat::Xml),
        "json" => read_json_input(doc, &mut t, JsonInStyle::Array).map(InputFormat::Json),
        "jsonl" => read_json_input(doc, &mut t, JsonInStyle::Lines).map(InputFormat::Json),
        "text" | "pdf" => match read_text_input(doc, &mut t)?.compile() {
            Ok(rules) if kind == "pdf" => Some(InputFormat::Pdf(rules)),
            Ok(rules) => Some(InputFormat::Text(rules)),
            Err(e) => {
                doc.error(t.span.clone(), "input", e);
                None
            }
        },
        // "fixed"
        _ => {
            let trim = t.bool(doc, "trim").unwrap_or(true);
            layout(doc, &mut t, trim).map(InputFormat::Fixed)
        }
    };
    t.finish_as(doc, "input", "");
    Some(Input {
        format: format?,
        encoding: enc?,
        replace: replace?,
        on_error: on_error?,
        attachment: attachment?,
        max_record: max_record?,
    })
}

/// `format` of `[input]`, which must be there and be one of the input formats: without
/// it nothing else of `[input]` can be read.
fn read_input_kind(doc: &mut Doc<'_>, t: &mut TableReader<'_, '_>) -> Option<String> {
    let Some(f) = t.str(doc, "format") else {
        doc.error(
            t.span.clone(),
            "input.format",
            "missing `format`: \"csv\", \"xml\", \"json\", \"jsonl\", \"text\", \"fixed\" or \"pdf\"",
        );
        return None;
    };
    match f.value.as_str() {
        "csv" | "xml" | "fixed" | "json" | "jsonl" | "text" | "pdf" => Some(f.value),
        other => {
            doc.error(
                f.span.clone(),
                &f.key,
                format!(
                    "expected one of \"csv\", \"xml\", \"json\", \"jsonl\", \"text\", \"fixed\", \"pdf\", found {other:?}"
                ),
            );
            None
        }
    }
}

/// `attachment`: the glob naming the file embedded in a PDF whose records are read, not
/// the PDF itself. `Some(None)` when absent; `None` when wrong (reported).
fn read_attachment(
    doc: &mut Doc<'_>,
    t: &mut TableReader<'_, '_>,
    kind: &str,
) -> Option<Option<(String, globset::GlobMatcher)>> {
    let Some(a) = t.str(doc, "attachment") else {
        return Some(None);
    };
    if kind == "pdf" {
        doc.error(
            a.span.clone(),
            &a.key,
            "`attachment` reads an embedded file in another format (\"xml\", \"csv\", ...); with format = \"pdf\" the PDF's own text is read",
        );
        return None;
    }
    // In either case, like `[[output]] attachments` (see `job::pdf::glob_set`).
    match globset::GlobBuilder::new(&a.value)
        .case_insensitive(true)
        .build()
    {
        Ok(g) => Some(Some((a.value.clone(), g.compile_matcher()))),
        Err(e) => {
            doc.error(
                a.span.clone(),
                &a.key,
                format!("expected a glob pattern, found {:?}: {}", a.value, e.kind()),
            );
            None
        }
    }
}

/// The keys of a CSV input; `None` when one is wrong (reported).
fn read_csv_input(doc: &mut Doc<'_>, t: &mut TableReader<'_, '_>) -> Option<CsvOptions> {
    let delimiter_quote = read_delimiter_quote(doc, t);
    let e = t.str(doc, "escape");
    let escape = one_char(doc, e, None);
    let c = t.str(doc, "comment");
    let comment = one_char(doc, c, None);
    let header = t.bool(doc, "header").unwrap_or(true);
    let columns = t
        .str_list(doc, "columns")
        .map(|l| l.into_iter().map(|s| s.value).collect());
    let skip_lines = t.uint(doc, "skip_lines").unwrap_or(0) as usize;
    let r = t.str(doc, "ragged");
    let ragged = one_of(
        doc,
        r,
        &[("error", Ragged::Error), ("pad", Ragged::Pad)],
        Ragged::Error,
    );
    let trim = t.bool(doc, "trim").unwrap_or(false);
    let (delimiter, quote) = delimiter_quote?;
    Some(CsvOptions {
        delimiter,
        quote,
        escape: escape?,
        header,
        columns,
        comment: comment?,
        skip_lines,
        ragged: ragged?,
        trim,
    })
}

/// The keys of an XML input (`record`, `[input.fields]`, `[input.namespaces]`), checked
/// by compiling its paths; `None` when they are wrong (reported).
fn read_xml_input(doc: &mut Doc<'_>, t: &mut TableReader<'_, '_>) -> Option<XmlOptions> {
    let record = t.str(doc, "record");
    let fields = str_values(doc, t, "fields");
    let namespaces = str_values(doc, t, "namespaces");
    let Some(record) = record else {
        doc.error(
            t.span.clone(),
            "input.record",
            "missing `record`: the repeating element, e.g. \"/Invoice/cac:InvoiceLine\", or \"/\" for the whole document",
        );
        return None;
    };
    if fields.is_empty() {
        doc.error(
            record.span.clone(),
            "input.fields",
            "missing `[input.fields]`: name = \"path\" pairs such as `ID = \"cbc:ID\"`",
        );
    }
    let opts = XmlOptions {
        record: record.value.clone(),
        fields,
        namespaces,
    };
    match XmlPaths::compile(&opts) {
        Ok(_) => Some(opts),
        Err(e) => {
            doc.error(record.span.clone(), "input", e);
            None
        }
    }
}

/// `records` of a JSON (`style` array) or JSON lines input: where the records are;
/// `None` when the path is wrong (reported).
fn read_json_input(
    doc: &mut Doc<'_>,
    t: &mut TableReader<'_, '_>,
    style: JsonInStyle,
) -> Option<JsonInOptions> {
    let records = t.str(doc, "records");
    let opts = JsonInOptions {
        style,
        records: records.as_ref().map(|r| r.value.clone()),
    };
    match opts.check() {
        Ok(()) => Some(opts),
        Err(e) => {
            let span = records.map_or(t.span.clone(), |r| r.span);
            doc.error(span, "input.records", e);
            None
        }
    }
}

/// The keys of a text or PDF input (`mode`, `line_field`, `[input.capture]`, `required`,
/// `[input.items]`), not yet compiled; `None` when `mode` is wrong (reported).
fn read_text_input(doc: &mut Doc<'_>, t: &mut TableReader<'_, '_>) -> Option<TextOptions> {
    let mode_raw = t.str(doc, "mode");
    let mode = one_of(
        doc,
        mode_raw,
        &[("lines", TextMode::Lines), ("capture", TextMode::Capture)],
        TextMode::Lines,
    );
    let line_field = t
        .str(doc, "line_field")
        .map_or("line".to_string(), |s| s.value);
    let mut fields = Vec::new();
    if let Some(mut c) = t.table(doc, "capture") {
        let keys: Vec<String> = c.keys();
        for k in keys {
            if let Some(list) = c.str_list(doc, &k) {
                fields.push((k, list.into_iter().map(|s| s.value).collect()));
            }
        }
    }
    let required = t
        .str_list(doc, "required")
        .unwrap_or_default()
        .into_iter()
        .map(|s| s.value)
        .collect();
    let items = t.table(doc, "items").and_then(|it| read_items(doc, it));
    Some(TextOptions {
        mode: mode?,
        line_field,
        fields,
        required,
        items,
    })
}

/// `[input.items]` of a text input: the lines of a list of items, between an optional
/// `start` and `end`; `None` when `line` is missing (reported).
fn read_items(doc: &mut Doc<'_>, mut it: TableReader<'_, '_>) -> Option<ItemsOptions> {
    let start = it.str(doc, "start").map(|s| s.value);
    let end = it.str(doc, "end").map(|s| s.value);
    let line = it.str(doc, "line");
    let across_lines = it.bool(doc, "across_lines").unwrap_or(false);
    let span = it.span.clone();
    it.finish_as(doc, "input.items", "");
    let Some(l) = line else {
        doc.error(
            span,
            "input.items.line",
            "missing `line`: the pattern of one item line, with named groups",
        );
        return None;
    };
    Some(ItemsOptions {
        start,
        end,
        line: l.value,
        across_lines,
    })
}

/// `max_record` (bytes, at least 1), and a word for `max_bytes`, its old name in text
/// input.
fn read_max_record(doc: &mut Doc<'_>, t: &mut TableReader<'_, '_>) -> Option<u64> {
    if t.uint(doc, "max_bytes").is_some() {
        let span = t.span_of("max_bytes");
        doc.error(
            span,
            "input.max_bytes",
            "`max_bytes` is now `max_record` (bytes), the record size limit of every input format",
        );
        return None;
    }
    match t.uint(doc, "max_record") {
        None => Some(crate::formats::DEFAULT_MAX_RECORD),
        Some(0) => {
            let span = t.span_of("max_record");
            doc.error(
                span,
                "input.max_record",
                "max_record must be at least 1 byte",
            );
            None
        }
        Some(n) => Some(n),
    }
}

/// Reports each filter, test and function that `s` (an expression, or a template when
/// `template`) names but `env` lacks: minijinja looks them up only when it evaluates them,
/// which would be too late. Whether every name was known.
fn known_names(
    doc: &mut Doc<'_>,
    env: &minijinja::Environment<'_>,
    s: &Str,
    template: bool,
) -> bool {
    let mut ok = true;
    for (range, message) in crate::transform::check::unknown_names(env, &s.value, template) {
        doc.error_in_str(s, range, message);
        ok = false;
    }
    ok
}

/// Reads `[transform]`; lookup files resolve against the job file's folder.
pub fn read_transform(
    doc: &mut Doc<'_>,
    job_dir: &Path,
    mut t: TableReader<'_, '_>,
) -> Option<TransformSpec> {
    let filter = t.str(doc, "filter");
    let fields = t.str_map(doc, "fields").unwrap_or_default();
    let keep = t.bool(doc, "keep").unwrap_or(false);
    let lookups = t.str_map(doc, "lookups").unwrap_or_default();
    let split = t.str(doc, "split").map(|s| s.value);
    t.finish_as(doc, "transform", "");
    let env = crate::transform::environment(&Default::default());
    let mut ok = true;
    for s in filter.iter().chain(fields.iter().map(|(_, v)| v)) {
        if let Err(e) = env.compile_expression(&s.value) {
            doc.error(
                s.span.clone(),
                &s.key,
                format!(
                    "expected a minijinja expression: {}",
                    e.detail().unwrap_or(&e.to_string())
                ),
            );
            ok = false;
            continue;
        }
        ok &= known_names(doc, &env, s, false);
    }
    let mut tables = Vec::new();
    for (name, file) in lookups {
        let p = job_dir.join(&file.value);
        if !p.is_file() {
            doc.error(
                file.span.clone(),
                &file.key,
                format!("no lookup table at {}", p.display()),
            );
            ok = false;
        }
        tables.push((name, p));
    }
    ok.then_some(TransformSpec {
        filter: filter.map(|s| s.value),
        fields: fields.into_iter().map(|(k, v)| (k, v.value)).collect(),
        keep,
        lookups: tables,
        split,
    })
}

/// Reads the format keys of one `[[output]]`: its format, how its text is encoded and the
/// keys of that format. Every problem found is reported; `None` if there was one.
pub fn read_output_data(
    doc: &mut Doc<'_>,
    t: &mut TableReader<'_, '_>,
    has_input: bool,
) -> Option<OutputData> {
    let format_raw = t.str(doc, "format");
    let (enc, replace) = read_encoding(doc, t, "on_unmappable");
    let le_raw = t.str(doc, "line_ending");
    let crlf = one_of(doc, le_raw, &[("lf", false), ("crlf", true)], false);
    let kind = format_raw
        .as_ref()
        .map_or("original", |s| s.value.as_str())
        .to_string();
    if kind != "original"
        && !has_input
        && let Some(f) = &format_raw
    {
        doc.error(
            f.span.clone(),
            &f.key,
            "an output format other than \"original\" needs an `[input]` section that says how to read the file",
        );
        return None;
    }
    // A problem with the format's keys as a whole is reported at `format`.
    let at = format_raw
        .as_ref()
        .map_or(t.span.clone(), |f| f.span.clone());
    // A bad CSV key or a missing `template` ends the reading at once (`?`): the encoding
    // is not checked then.
    let format = match kind.as_str() {
        "original" => Some(OutputFormat::Original),
        "json" => Some(OutputFormat::Json(JsonStyle::Array)),
        "jsonl" => Some(OutputFormat::Json(JsonStyle::Lines)),
        "csv" => Some(OutputFormat::Csv(read_csv_output(doc, t, crlf)?)),
        "fixed" => layout(doc, t, false).map(OutputFormat::Fixed),
        "xml" => read_xml_output(doc, t, at).map(OutputFormat::Xml),
        "text" => {
            let templates = read_templates(doc, t, at)?;
            compile_templates(doc, templates).map(OutputFormat::Text)
        }
        other => {
            if let Some(f) = &format_raw {
                doc.error(
                    f.span.clone(),
                    &f.key,
                    format!("expected one of \"original\", \"csv\", \"json\", \"jsonl\", \"xml\", \"fixed\", \"text\", found {other:?}"),
                );
            }
            None
        }
    };
    if let Some(e) = enc
        && (e == encoding_rs::UTF_16LE || e == encoding_rs::UTF_16BE)
    {
        let span = t.span_of("encoding");
        doc.error(
            span,
            &format!("{}.encoding", t.path),
            "UTF-16 output is not supported; use \"utf-8\" or a single-byte encoding",
        );
        return None;
    }
    Some(OutputData {
        format: format?,
        encoding: enc?,
        replace: replace?,
        crlf: crlf?,
    })
}

/// The keys of a CSV output, with the output's `line_ending` (`crlf`, read already);
/// `None` when one is wrong (reported).
fn read_csv_output(
    doc: &mut Doc<'_>,
    t: &mut TableReader<'_, '_>,
    crlf: Option<bool>,
) -> Option<CsvOutOptions> {
    let delimiter_quote = read_delimiter_quote(doc, t);
    let qs = t.str(doc, "quoting");
    let quoting = one_of(
        doc,
        qs,
        &[
            ("necessary", Quoting::Necessary),
            ("always", Quoting::Always),
            ("non-numeric", Quoting::NonNumeric),
            ("never", Quoting::Never),
        ],
        Quoting::Necessary,
    );
    let header = t.bool(doc, "header").unwrap_or(true);
    let (delimiter, quote) = delimiter_quote?;
    Some(CsvOutOptions {
        delimiter,
        quote,
        quoting: quoting?,
        header,
        crlf: crlf?,
    })
}

/// The keys of an XML output, checked by making a writer with them; `None` when they are
/// wrong (reported at `at`, the output's `format`).
fn read_xml_output(
    doc: &mut Doc<'_>,
    t: &mut TableReader<'_, '_>,
    at: Range<usize>,
) -> Option<XmlOutOptions> {
    let d = XmlOutOptions::default();
    let root = t.str(doc, "root").map_or(d.root.clone(), |s| s.value);
    let record = t.str(doc, "record").map_or(d.record.clone(), |s| s.value);
    let namespaces = str_values(doc, t, "namespaces");
    let default_namespace = t.str(doc, "default_namespace").map(|s| s.value);
    let fields = str_values(doc, t, "fields");
    let opts = XmlOutOptions {
        root,
        record,
        namespaces,
        default_namespace,
        fields,
        declaration: t.bool(doc, "declaration").unwrap_or(d.declaration),
        indent: t.bool(doc, "indent").unwrap_or(true),
        skip_empty: t.bool(doc, "skip_empty").unwrap_or(d.skip_empty),
    };
    match XmlWriter::new(Vec::new(), &opts) {
        Ok(_) => Some(opts),
        Err(e) => {
            doc.error(at, &format!("{}.fields", t.path), e);
            None
        }
    }
}

/// The templates of a text output, as written in the job file.
struct Templates {
    header: Option<Str>,
    record: Str,
    footer: Option<Str>,
}

/// `header`, `template` and `footer` of a text output; `None` when `template` is missing
/// (reported at `at`, the output's `format`).
fn read_templates(
    doc: &mut Doc<'_>,
    t: &mut TableReader<'_, '_>,
    at: Range<usize>,
) -> Option<Templates> {
    let header = t.str(doc, "header");
    let template = t.str(doc, "template");
    let footer = t.str(doc, "footer");
    let Some(record) = template else {
        doc.error(at, &format!("{}.template", t.path), "a text output needs `template`, rendered once per record (and may have `header` and `footer`)");
        return None;
    };
    Some(Templates {
        header,
        record,
        footer,
    })
}

/// Compiles a text output's templates and checks the filters, tests and functions they
/// name; `None` when one is wrong (reported at the template).
fn compile_templates(doc: &mut Doc<'_>, s: Templates) -> Option<TemplateOptions> {
    let opts = TemplateOptions {
        header: s.header.as_ref().map(|s| s.value.clone()),
        record: s.record.value.clone(),
        footer: s.footer.as_ref().map(|s| s.value.clone()),
    };
    if let Err(e) = TemplateWriter::new(Vec::new(), &opts, Default::default()) {
        doc.error(s.record.span.clone(), &s.record.key, e);
        return None;
    }
    let env = crate::formats::template_out::environment();
    let mut ok = true;
    for s in [s.header.as_ref(), Some(&s.record), s.footer.as_ref()]
        .into_iter()
        .flatten()
    {
        ok &= known_names(doc, &env, s, true);
    }
    ok.then_some(opts)
}
