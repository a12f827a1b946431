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

impl ParseError {
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
