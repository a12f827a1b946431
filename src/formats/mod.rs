//! File contents as records: readers turn bytes into [`Record`]s, writers turn records back
//! into bytes. Everything streams: a reader fills one reusable record at a time, so memory
//! does not grow with the file.

pub mod csv;
pub mod encoding;
pub mod fixed;
pub mod json;
pub mod json_in;
pub mod pdf;
pub mod template_out;
pub mod text;
pub mod xml;
pub mod xml_out;

use std::fmt;
use std::sync::Arc;

/// Where a record stands in its file, for error reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Position {
    /// 1-based record number (data records, not counting a header).
    pub record: u64,
    /// 1-based line where the record starts.
    pub line: u64,
    /// Byte offset where the record starts, in the decoded (UTF-8) text.
    pub byte: u64,
}

/// What a value is, for the writers that have types (JSON and JSON Lines); the others
/// write every value's text. A value is text unless a transform made it a number, a
/// boolean or none, or a JSON input had it so.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Kind {
    #[default]
    Text,
    /// A number whose text is written as it is (`1.50` stays `1.50`); a JSON writer checks
    /// that the text is a JSON number and writes a string otherwise.
    Number,
    Bool(bool),
    /// None (a JSON `null`); its text is empty.
    Null,
}

/// One record: field names shared by every record of a file, and this record's values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Record {
    pub names: Arc<[String]>,
    pub values: Vec<String>,
    /// The kind of each value, by index; empty (the usual case: every reader but JSON's)
    /// or shorter than `values` means text for the values it does not reach.
    pub kinds: Vec<Kind>,
    pub pos: Position,
}

impl Record {
    /// The kind of the value at `i`.
    pub fn kind(&self, i: usize) -> Kind {
        self.kinds.get(i).copied().unwrap_or_default()
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.names
            .iter()
            .position(|n| n == name)
            .map(|i| self.values.get(i).map_or("", String::as_str))
    }

    pub fn fields(&self) -> impl Iterator<Item = (&str, &str)> {
        self.names
            .iter()
            .zip(self.values.iter())
            .map(|(n, v)| (n.as_str(), v.as_str()))
    }
}

/// A record that could not be read, with everything an admin needs to find it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParseError {
    pub pos: Option<Position>,
    pub field: Option<String>,
    pub value: Option<String>,
    pub message: String,
}

/// The largest record a reader takes by default (`[input] max_record`): 64 MiB.
pub const DEFAULT_MAX_RECORD: u64 = 64 * 1024 * 1024;

/// How far past a record's limit a reader may have read ahead (its buffers) before the
/// record is known to be too large: the limit on reading is `max_record` plus this.
pub const READ_AHEAD: u64 = 1024 * 1024;

/// What every message of [`ParseError::too_large`] says.
const TOO_LARGE: &str = " is larger than max_record (";

impl ParseError {
    /// A record beyond `[input] max_record` bytes, starting at `pos` (record 0: the CSV
    /// header, or a line skipped before it). It ends the file whatever `on_error` says:
    /// past it, the reader cannot tell where the next record starts.
    pub fn too_large(max: u64, pos: Position) -> Self {
        let what = if pos.record == 0 {
            "the header (or a line skipped before it)"
        } else {
            "the record"
        };
        Self::too_large_thing(what, max, pos)
    }

    /// As [`ParseError::too_large`], for `what` (not a record).
    pub fn too_large_thing(what: &str, max: u64, pos: Position) -> Self {
        ParseError::new(format!(
            "{what}{TOO_LARGE}{max} bytes); the file is not read further (raise `[input] max_record` if records this large are expected)"
        ))
        .at(pos)
    }

    /// Whether this is a record beyond `max_record` (see [`ParseError::too_large`]).
    pub fn is_too_large(&self) -> bool {
        self.message.contains(TOO_LARGE)
    }

    pub fn new(message: impl Into<String>) -> Self {
        ParseError {
            message: message.into(),
            ..Default::default()
        }
    }

    pub fn at(mut self, pos: Position) -> Self {
        self.pos = Some(pos);
        self
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(p) = self.pos {
            write!(
                f,
                "record {} (line {}, byte {}): ",
                p.record, p.line, p.byte
            )?;
        }
        if let Some(field) = &self.field {
            write!(f, "field `{field}`: ")?;
        }
        if let Some(v) = &self.value {
            let shown: String = v.chars().take(80).collect();
            write!(f, "value {shown:?}: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ParseError {}

#[cfg(test)]
mod limit_tests {
    //! Every reader stops a record that never ends at `max_record`, having read little more
    //! than that: the input here is endless and refuses to be read past 8 MiB.

    use std::io::{self, BufReader, Read};

    use super::*;

    const MAX: u64 = 64 * 1024;
    const REFUSED_FROM: u64 = 8 * 1024 * 1024;

    /// `prefix`, then `x` forever (an error past [`REFUSED_FROM`] bytes).
    struct Endless {
        prefix: Vec<u8>,
        at: u64,
    }

    fn endless(prefix: &str) -> Endless {
        Endless {
            prefix: prefix.as_bytes().to_vec(),
            at: 0,
        }
    }

    impl Read for Endless {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.at >= REFUSED_FROM {
                return Err(io::Error::other("read far past the limit"));
            }
            let n = buf.len().min(64 * 1024);
            for (i, b) in buf[..n].iter_mut().enumerate() {
                let at = self.at as usize + i;
                *b = self.prefix.get(at).copied().unwrap_or(b'x');
            }
            self.at += n as u64;
            Ok(n)
        }
    }

    /// Reads until an error, which must be "too large" at `want`.
    fn fails_at(
        mut read: impl FnMut(&mut Record) -> Result<bool, ParseError>,
        want: (u64, u64, u64),
    ) -> ParseError {
        let mut rec = Record::default();
        let e = loop {
            match read(&mut rec) {
                Ok(true) => continue,
                Ok(false) => panic!("the reader ended without an error"),
                Err(e) => break e,
            }
        };
        assert!(e.is_too_large(), "{e}");
        let p = e.pos.expect("a position");
        assert_eq!((p.record, p.line, p.byte), want, "{e}");
        e
    }

    #[test]
    fn csv() {
        let mut r =
            csv::CsvReader::with_max_record(endless("a\n1\n"), Default::default(), MAX).unwrap();
        fails_at(|rec| r.read_into(rec), (2, 3, 4));
        // A header that never ends is record 0.
        let e = csv::CsvReader::with_max_record(endless(""), Default::default(), MAX)
            .err()
            .unwrap();
        assert!(
            e.message
                .starts_with("the header (or a line skipped before it) is larger")
        );
        assert!(e.is_too_large(), "{e}");
    }

    #[test]
    fn json_lines_and_array() {
        use json_in::{JsonInOptions, JsonInStyle, JsonReader};
        let lines = JsonInOptions {
            style: JsonInStyle::Lines,
            records: None,
        };
        let mut r = JsonReader::new(endless("{\"a\":1}\n{\"a\":\""), lines).with_max_record(MAX);
        fails_at(|rec| r.read_into(rec), (2, 2, 8));
        let mut r = JsonReader::new(endless("[{\"a\":1},{\"a\":\""), JsonInOptions::default())
            .with_max_record(MAX);
        fails_at(|rec| r.read_into(rec), (2, 1, 9));
    }

    #[test]
    fn xml_records_and_events_outside_them() {
        let opts = xml::XmlOptions {
            record: "/r/rec".into(),
            fields: vec![("A".into(), "a".into())],
            namespaces: Vec::new(),
        };
        let paths = || xml::XmlPaths::compile(&opts).unwrap();
        let input = BufReader::new(endless("<r><rec><a>1</a></rec>\n<rec><a>"));
        let mut r = xml::XmlReader::new(input, paths()).with_max_record(MAX);
        fails_at(|rec| r.read_into(rec), (2, 2, 28));
        // A text outside any record is held whole by the parser: limited too.
        let input = BufReader::new(endless("<r><other>"));
        let mut r = xml::XmlReader::new(input, paths()).with_max_record(MAX);
        let e = fails_at(|rec| r.read_into(rec), (1, 1, 10));
        assert!(
            e.message
                .starts_with("a text or tag outside the records is larger")
        );
        // With `record = "/"` the document is one record, but it is not held: a document
        // larger than the limit is read, a text larger than it is not.
        let whole = xml::XmlOptions {
            record: "/".into(),
            fields: vec![("A".into(), "/r/a".into())],
            namespaces: Vec::new(),
        };
        let doc = format!("<r><a>1</a>{}</r>", "<b>y</b>".repeat(20_000));
        assert!(doc.len() as u64 > 2 * MAX);
        let paths = || xml::XmlPaths::compile(&whole).unwrap();
        let mut r = xml::XmlReader::new(doc.as_bytes(), paths()).with_max_record(MAX);
        let mut rec = Record::default();
        assert!(r.read_into(&mut rec).unwrap());
        assert_eq!(rec.values, ["1"]);
        let input = BufReader::new(endless("<r><a>"));
        let mut r = xml::XmlReader::new(input, paths()).with_max_record(MAX);
        let e = fails_at(|rec| r.read_into(rec), (1, 1, 6));
        assert!(e.message.starts_with("a text or tag is larger"), "{e}");
    }

    #[test]
    fn fixed_width_and_text() {
        let layout = fixed::Layout {
            columns: vec![fixed::Column {
                name: "A".into(),
                start: 1,
                length: 5,
                align: fixed::Align::Left,
                pad: ' ',
            }],
            trim: true,
            short_lines: true,
        };
        let mut r =
            fixed::FixedReader::new(BufReader::new(endless("1\n")), layout).with_max_record(MAX);
        fails_at(|rec| r.read_into(rec), (2, 2, 2));
        let rules = text::TextOptions::default().compile().unwrap();
        let mut r = text::TextReader::new(endless("1\n"), rules).with_max_record(MAX);
        fails_at(|rec| r.read_into(rec), (2, 2, 2));
        let capture = text::TextOptions {
            mode: text::TextMode::Capture,
            fields: vec![("A".into(), vec!["(x+)".into()])],
            ..Default::default()
        };
        let mut r =
            text::TextReader::new(endless(""), capture.compile().unwrap()).with_max_record(MAX);
        fails_at(|rec| r.read_into(rec), (1, 1, 0));
    }
}
