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

/// One record: field names shared by every record of a file, and this record's values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Record {
    pub names: Arc<[String]>,
    pub values: Vec<String>,
    pub pos: Position,
}

impl Record {
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

/// The start of the message of [`ParseError::too_large`].
const TOO_LARGE: &str = "the record is larger than max_record";

impl ParseError {
    /// A record beyond `[input] max_record` bytes, starting at `pos`. It ends the file
    /// whatever `on_error` says: past it, the reader cannot tell where the next record
    /// starts.
    pub fn too_large(max: u64, pos: Position) -> Self {
        ParseError::new(format!(
            "{TOO_LARGE} ({max} bytes); the file is not read further (raise `[input] max_record` if records this large are expected)"
        ))
        .at(pos)
    }

    /// Whether this is a record beyond `max_record` (see [`ParseError::too_large`]).
    pub fn is_too_large(&self) -> bool {
        self.message.starts_with(TOO_LARGE)
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
