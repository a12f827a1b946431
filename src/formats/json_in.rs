//! JSON in, streaming: a top-level array of objects (`[{...},{...}]`), an array found at a
//! dotted path inside the top-level object (`records = "data.orders"`), or JSON Lines (one
//! object per line, blank lines skipped). Each object is one record.
//!
//! Theory of operation: a small hand-written scanner reads the input through a fixed 64 KiB
//! buffer and checks the JSON grammar (RFC 8259) as it goes. It never holds more than the
//! record being read: the array around the records, and in path mode everything before and
//! after the array, is checked and skipped without being kept, so a 2 GB array takes as
//! much memory as its largest element. serde_json is not used because records must keep
//! what a `Value` loses: keys in document order and numbers as written (`12.50` stays
//! `12.50`, `1e400` does not overflow).
//!
//! A record's fields, in first-appearance order: strings as they are (escapes resolved),
//! numbers as their JSON text, `true`/`false`, null as an empty string. Numbers, booleans
//! and null keep their [`Kind`], so a JSON output writes them as they came. Nested objects are
//! flattened with dotted names (`{"customer":{"name":"A"}}` gives `customer.name`); an
//! empty nested object is kept as the text `{}`. Arrays are kept as compact JSON text
//! (whitespace dropped, keys, numbers and escapes as written). A key repeated in one
//! object keeps its first place and takes the last value, as JSON parsers do.
//!
//! Errors carry the record number, the line and the byte offset (and in the message the
//! column) where the problem is, and the dotted field being read. After malformed JSON in
//! an array the rest of the document cannot be trusted, so the reader ends (`Ok(false)`
//! after the error). In JSON Lines reading resumes at the next line. An element that is
//! not an object is reported and skipped in both styles.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt;
use std::io::{self, Read};
use std::sync::Arc;

use super::{DEFAULT_MAX_RECORD, Kind, ParseError, Position, Record};

/// How the records are laid out in the file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum JsonInStyle {
    /// One JSON document: an array of objects, or an object holding one (see `records`).
    #[default]
    Array,
    /// JSON Lines: one object per line; blank lines are skipped.
    Lines,
}

/// What a job says about its JSON input.
#[derive(Debug, Clone, Default)]
pub struct JsonInOptions {
    /// One document (an array) or JSON Lines.
    pub style: JsonInStyle,
    /// Dotted path to the records array inside the top-level object (`data.orders`), for
    /// API dumps that wrap their records. `None`: the document is the array. Keys that
    /// contain a dot cannot be named. Array style only.
    pub records: Option<String>,
}

impl JsonInOptions {
    /// Checks the options; returns the problem otherwise.
    pub fn check(&self) -> Result<(), String> {
        if let Some(p) = &self.records {
            if self.style == JsonInStyle::Lines {
                return Err(format!(
                    "records {p:?}: a path to the records applies to a JSON document (style array), not to JSON Lines"
                ));
            }
            if p.split('.').any(str::is_empty) {
                return Err(format!(
                    "records {p:?}: expected key names separated by dots, like \"data.orders\""
                ));
            }
        }
        Ok(())
    }
}

/// Deepest nesting accepted (as serde_json): deeper input is an error, not a stack overflow.
const MAX_DEPTH: usize = 128;
const BUF_SIZE: usize = 64 * 1024;
/// Distinct sets of field names remembered, so that records of alternating shapes share
/// their names.
const SHAPES: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Nothing read yet.
    Start,
    /// Inside the records array; `first` until its first element was read.
    Array {
        first: bool,
    },
    /// Between lines of JSON Lines.
    Lines,
    Done,
}

/// What a value starting with this byte is, for messages.
fn kind(b: u8) -> &'static str {
    match b {
        b'{' => "an object",
        b'[' => "an array",
        b'"' => "a string",
        b't' | b'f' => "a boolean",
        b'n' => "null",
        b'-' | b'0'..=b'9' => "a number",
        _ => "something that is not JSON",
    }
}

/// A byte as a message shows it.
fn describe(b: Option<u8>) -> String {
    match b {
        None => "the end of the input".into(),
        Some(b'\n') => "the end of the line".into(),
        Some(b) if b.is_ascii_graphic() => format!("`{}`", b as char),
        Some(b' ') => "a space".into(),
        Some(b) if b < 0x80 => format!("the control character 0x{b:02x}"),
        Some(_) => "a non-ASCII character".into(),
    }
}

/// Reads records from JSON text (already decoded to UTF-8).
pub struct JsonReader<R: Read> {
    input: R,
    buf: Box<[u8]>,
    pos: usize,
    len: usize,
    /// Byte offset of `buf[0]` in the input.
    base: u64,
    eof: bool,
    /// A read failed: nothing more can be read.
    io_failed: bool,
    /// 1-based line of `pos`, and the byte offset where that line starts.
    line: u64,
    line_start: u64,
    /// Whether a line break may occur inside a value (everywhere but in JSON Lines).
    newlines: bool,
    path: Vec<String>,
    opts: JsonInOptions,
    state: State,
    count: u64,
    in_record: bool,
    rec_pos: Position,
    names: Arc<[String]>,
    shapes: Vec<Arc<[String]>>,
    /// Flattened names of the record being read; the first `n` are in use.
    scratch: Vec<String>,
    /// The kind of each of the first `n` values.
    kinds: Vec<Kind>,
    n: usize,
    /// Dotted name of the field being read.
    key: String,
    tmp: Vec<u8>,
    max_record: u64,
}

impl<R: Read> JsonReader<R> {
    /// A reader of `input`. Options are checked on the first read (use
    /// [`JsonInOptions::check`] to check them when the job is loaded).
    pub fn new(input: R, opts: JsonInOptions) -> Self {
        let path = match &opts.records {
            Some(p) => p.split('.').map(str::to_string).collect(),
            None => Vec::new(),
        };
        JsonReader {
            input,
            buf: vec![0; BUF_SIZE].into_boxed_slice(),
            pos: 0,
            len: 0,
            base: 0,
            eof: false,
            io_failed: false,
            line: 1,
            line_start: 0,
            newlines: opts.style == JsonInStyle::Array,
            path,
            opts,
            state: State::Start,
            count: 0,
            in_record: false,
            rec_pos: Position::default(),
            names: Arc::from(Vec::new()),
            shapes: Vec::new(),
            scratch: Vec::new(),
            kinds: Vec::new(),
            n: 0,
            key: String::new(),
            tmp: Vec::new(),
            max_record: DEFAULT_MAX_RECORD,
        }
    }

    /// Fails on a record (an array element, a JSON Lines line) longer than `max` bytes,
    /// holding no more than about that much of it.
    pub fn with_max_record(mut self, max: u64) -> Self {
        self.max_record = max;
        self
    }

    /// The record being read is larger than `max_record`: nothing more is read.
    #[cold]
    fn too_large(&mut self) -> ParseError {
        self.io_failed = true;
        ParseError::too_large(self.max_record, self.rec_pos)
    }

    /// Reads the next record into `out`, reusing its allocations. `Ok(false)` at the end.
    pub fn read_into(&mut self, out: &mut Record) -> Result<bool, ParseError> {
        loop {
            match self.state {
                State::Done => return Ok(false),
                State::Start => {
                    if let Err(e) = self.start() {
                        self.state = State::Done;
                        return Err(e);
                    }
                }
                State::Array { first } => {
                    return match self.next_in_array(out, first) {
                        Ok(more) => Ok(more),
                        Err(Fail::Skip(e)) => Err(e),
                        Err(Fail::Fatal(e)) => {
                            self.state = State::Done;
                            Err(self.with_field(e))
                        }
                    };
                }
                State::Lines => {
                    return match self.next_line(out) {
                        Ok(more) => Ok(more),
                        Err(e) => {
                            let e = self.with_field(e);
                            self.in_record = false;
                            if self.io_failed || self.skip_line().is_err() {
                                self.state = State::Done;
                            }
                            Err(e)
                        }
                    };
                }
            }
        }
    }

    // --- reading bytes ---

    #[inline]
    fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    #[inline]
    fn peek(&mut self) -> Result<Option<u8>, ParseError> {
        if self.pos < self.len {
            Ok(Some(self.buf[self.pos]))
        } else {
            self.refill()
        }
    }

    #[cold]
    fn refill(&mut self) -> Result<Option<u8>, ParseError> {
        if self.eof || self.io_failed {
            return Ok(None);
        }
        self.base += self.len as u64;
        self.pos = 0;
        self.len = 0;
        if self.in_record && self.base - self.rec_pos.byte > self.max_record {
            return Err(self.too_large());
        }
        loop {
            match self.input.read(&mut self.buf) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(None);
                }
                Ok(n) => {
                    self.len = n;
                    return Ok(Some(self.buf[0]));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.io_failed = true;
                    let message = match super::encoding::decode_error(&e) {
                        Some(d) => d.to_string(),
                        None => format!("cannot read: {e}"),
                    };
                    return Err(ParseError::new(message).at(self.here()));
                }
            }
        }
    }

    /// Consumes a line break.
    fn newline(&mut self) {
        self.pos += 1;
        self.line += 1;
        self.line_start = self.offset();
    }

    /// Skips whitespace inside a value; a line break there is an error in JSON Lines.
    #[inline]
    fn ws(&mut self) -> Result<Option<u8>, ParseError> {
        loop {
            match self.peek()? {
                Some(b' ' | b'\t' | b'\r') => self.pos += 1,
                Some(b'\n') if self.newlines => self.newline(),
                Some(b'\n') => {
                    return Err(self.syntax(
                        "the line ends inside the record (JSON Lines holds one object per line)",
                    ));
                }
                b => return Ok(b),
            }
        }
    }

    /// Skips whitespace and line breaks between values.
    fn ws_all(&mut self) -> Result<Option<u8>, ParseError> {
        loop {
            match self.peek()? {
                Some(b' ' | b'\t' | b'\r') => self.pos += 1,
                Some(b'\n') => self.newline(),
                b => return Ok(b),
            }
        }
    }

    /// Skips the rest of the line and its line break (recovery in JSON Lines).
    fn skip_line(&mut self) -> Result<(), ParseError> {
        loop {
            if self.pos == self.len && self.refill()?.is_none() {
                return Ok(());
            }
            match self.buf[self.pos..self.len]
                .iter()
                .position(|&b| b == b'\n')
            {
                Some(i) => {
                    self.pos += i;
                    self.newline();
                    return Ok(());
                }
                None => self.pos = self.len,
            }
        }
    }

    // --- errors ---

    fn here(&self) -> Position {
        Position {
            record: if self.in_record {
                self.count
            } else {
                self.count + 1
            },
            line: self.line,
            byte: self.offset(),
        }
    }

    /// Malformed JSON at the current position.
    fn syntax(&self, msg: impl fmt::Display) -> ParseError {
        let column = self.offset() - self.line_start + 1;
        ParseError::new(format!("malformed JSON at column {column}: {msg}")).at(self.here())
    }

    /// "expected X, found Y" at the current position.
    fn unexpected(&mut self, expected: &str) -> ParseError {
        match self.peek() {
            Ok(b) => self.syntax(format_args!("expected {expected}, found {}", describe(b))),
            Err(e) => e,
        }
    }

    fn expect(&mut self, b: u8, expected: &str) -> Result<(), ParseError> {
        if self.peek()? == Some(b) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.unexpected(expected))
        }
    }

    /// Names the field being read in an error from inside a record.
    fn with_field(&self, mut e: ParseError) -> ParseError {
        if self.in_record && e.field.is_none() && !self.key.is_empty() {
            e.field = Some(self.key.clone());
        }
        e
    }

    // --- document structure ---

    fn start(&mut self) -> Result<(), ParseError> {
        self.opts.check().map_err(ParseError::new)?;
        // A UTF-8 byte-order mark left in undecoded input.
        if self.peek()? == Some(0xef) {
            for b in [0xef, 0xbb, 0xbf] {
                self.expect(b, "JSON")?;
            }
            self.line_start = self.offset();
        }
        if self.opts.style == JsonInStyle::Lines {
            self.state = State::Lines;
            return Ok(());
        }
        self.ws_all()?;
        if self.path.is_empty() {
            self.expect(
                b'[',
                "`[` (an array of records; for an array inside an object, set `records`)",
            )?;
            self.state = State::Array { first: true };
            return Ok(());
        }
        let path = std::mem::take(&mut self.path);
        let found = self.descend(&path);
        self.path = path;
        found?;
        self.state = State::Array { first: true };
        Ok(())
    }

    /// Walks down `path` from the top-level object, up to and into the records array.
    fn descend(&mut self, path: &[String]) -> Result<(), ParseError> {
        let records = self.opts.records.clone().unwrap_or_default();
        for (depth, seg) in path.iter().enumerate() {
            let b = self.ws()?;
            if b != Some(b'{') {
                let what = b.map_or("nothing", kind);
                return Err(if depth == 0 {
                    self.syntax(format_args!(
                        "expected an object holding `{seg}` (records = {records:?}), found {what}"
                    ))
                } else {
                    let at = path[..depth].join(".");
                    self.syntax(format_args!(
                        "`{at}` is {what}, not an object holding `{seg}` (records = {records:?})"
                    ))
                });
            }
            self.pos += 1;
            let mut b = self.ws()?;
            loop {
                if b == Some(b'}') {
                    let at = path[..=depth].join(".");
                    return Err(self.syntax(format_args!(
                        "there is no `{at}` in the document (records = {records:?})"
                    )));
                }
                if b != Some(b'"') {
                    return Err(self.unexpected("a key (a string in double quotes)"));
                }
                let mut key = std::mem::take(&mut self.tmp);
                key.clear();
                let read = self.string(Some(&mut key), false);
                let matched = key == seg.as_bytes();
                self.tmp = key;
                read?;
                self.ws()?;
                self.expect(b':', "`:` after the key")?;
                self.ws()?;
                if matched {
                    break;
                }
                self.value(None, depth + 2)?;
                b = self.ws()?;
                match b {
                    Some(b',') => {
                        self.pos += 1;
                        b = self.ws()?;
                    }
                    Some(b'}') => {}
                    _ => return Err(self.unexpected("`,` or `}`")),
                }
            }
        }
        match self.peek()? {
            Some(b'[') => {
                self.pos += 1;
                Ok(())
            }
            b => Err(self.syntax(format_args!(
                "`{records}` is {}, not an array of records",
                b.map_or("nothing", kind)
            ))),
        }
    }

    /// After the records array: checks and skips the rest of the objects around it, then
    /// requires the end of the input.
    fn close(&mut self) -> Result<(), ParseError> {
        for depth in (0..self.path.len()).rev() {
            loop {
                match self.ws()? {
                    Some(b',') => {
                        self.pos += 1;
                        if self.ws()? != Some(b'"') {
                            return Err(self.unexpected("a key (a string in double quotes)"));
                        }
                        self.string(None, false)?;
                        self.ws()?;
                        self.expect(b':', "`:` after the key")?;
                        self.ws()?;
                        self.value(None, depth + 2)?;
                    }
                    Some(b'}') => {
                        self.pos += 1;
                        break;
                    }
                    _ => return Err(self.unexpected("`,` or `}`")),
                }
            }
        }
        match self.ws_all()? {
            None => Ok(()),
            _ => Err(self.unexpected("the end of the input after the records")),
        }
    }

    fn begin_record(&mut self) {
        self.count += 1;
        self.in_record = true;
        self.rec_pos = Position {
            record: self.count,
            line: self.line,
            byte: self.offset(),
        };
        self.n = 0;
        self.key.clear();
    }

    /// An error for a record that is not an object, at its start.
    fn not_an_object(&self, b: u8) -> ParseError {
        ParseError::new(format!(
            "expected an object, found {} (each record must be a JSON object)",
            kind(b)
        ))
        .at(self.rec_pos)
    }

    fn next_in_array(&mut self, out: &mut Record, first: bool) -> Result<bool, Fail> {
        let b = self.ws()?;
        if b == Some(b']') {
            self.pos += 1;
            self.close()?;
            self.state = State::Done;
            return Ok(false);
        }
        if !first {
            if b != Some(b',') {
                return Err(self.unexpected("`,` or `]` after a record").into());
            }
            self.pos += 1;
            self.ws()?;
        }
        self.state = State::Array { first: false };
        self.begin_record();
        match self.peek()? {
            Some(b'{') => {
                self.record(out)?;
                if self.offset() - self.rec_pos.byte > self.max_record {
                    return Err(Fail::Fatal(self.too_large()));
                }
                self.in_record = false;
                Ok(true)
            }
            Some(b) => {
                let e = self.not_an_object(b);
                self.value(None, 1)?;
                self.in_record = false;
                Err(Fail::Skip(e))
            }
            None => Err(self.unexpected("a record").into()),
        }
    }

    fn next_line(&mut self, out: &mut Record) -> Result<bool, ParseError> {
        let Some(b) = self.ws_all()? else {
            self.state = State::Done;
            return Ok(false);
        };
        self.begin_record();
        if b != b'{' {
            return Err(self.not_an_object(b));
        }
        self.record(out)?;
        if self.offset() - self.rec_pos.byte > self.max_record {
            return Err(self.too_large());
        }
        loop {
            match self.peek()? {
                Some(b' ' | b'\t' | b'\r') => self.pos += 1,
                Some(b'\n') | None => break,
                _ => {
                    return Err(self.unexpected(
                        "the end of the line after the object (JSON Lines holds one object per line)",
                    ));
                }
            }
        }
        self.in_record = false;
        Ok(true)
    }

    // --- values ---

    /// Reads a string; `out` gets its contents (escapes resolved), or with `raw` its JSON
    /// text (quotes and escapes as written).
    fn string(&mut self, mut out: Option<&mut Vec<u8>>, raw: bool) -> Result<(), ParseError> {
        self.pos += 1;
        if raw && let Some(o) = out.as_deref_mut() {
            o.push(b'"');
        }
        loop {
            if self.pos == self.len && self.refill()?.is_none() {
                return Err(self.syntax("the input ends inside a string"));
            }
            let chunk = &self.buf[self.pos..self.len];
            let i = chunk
                .iter()
                .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
                .unwrap_or(chunk.len());
            if let Some(o) = out.as_deref_mut() {
                o.extend_from_slice(&chunk[..i]);
            }
            self.pos += i;
            if self.pos == self.len {
                continue;
            }
            match self.buf[self.pos] {
                b'"' => {
                    self.pos += 1;
                    if raw && let Some(o) = out {
                        o.push(b'"');
                    }
                    return Ok(());
                }
                b'\\' => {
                    self.pos += 1;
                    self.escape(&mut out, raw)?;
                }
                b'\n' => {
                    return Err(self.syntax(
                        "the line ends inside a string (a line break in a string is written `\\n`)",
                    ));
                }
                c => {
                    return Err(self.syntax(format_args!(
                        "the control character 0x{c:02x} must be escaped in a string"
                    )));
                }
            }
        }
    }

    /// Reads an escape sequence after its backslash.
    fn escape(&mut self, out: &mut Option<&mut Vec<u8>>, raw: bool) -> Result<(), ParseError> {
        let c = match self.peek()? {
            Some(c) => c,
            None => return Err(self.syntax("the input ends inside a string")),
        };
        let plain = match c {
            b'"' | b'\\' | b'/' => c,
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'u' => {
                self.pos += 1;
                if raw && let Some(o) = out.as_deref_mut() {
                    o.extend_from_slice(b"\\u");
                }
                let hi = self.hex4(out, raw)?;
                let code = if (0xd800..0xdc00).contains(&hi) {
                    if self.peek()? != Some(b'\\') {
                        return Err(self.syntax(format_args!(
                            "the surrogate \\u{hi:04X} must be followed by a low surrogate (\\uDC00-\\uDFFF)"
                        )));
                    }
                    self.pos += 1;
                    self.expect(b'u', "a low surrogate (\\uDC00-\\uDFFF)")?;
                    if raw && let Some(o) = out.as_deref_mut() {
                        o.extend_from_slice(b"\\u");
                    }
                    let lo = self.hex4(out, raw)?;
                    if !(0xdc00..0xe000).contains(&lo) {
                        return Err(self.syntax(format_args!(
                            "the surrogate \\u{hi:04X} must be followed by a low surrogate (\\uDC00-\\uDFFF), found \\u{lo:04X}"
                        )));
                    }
                    0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00)
                } else if (0xdc00..0xe000).contains(&hi) {
                    return Err(self.syntax(format_args!(
                        "the low surrogate \\u{hi:04X} has no high surrogate before it"
                    )));
                } else {
                    hi
                };
                if !raw && let Some(o) = out.as_deref_mut() {
                    // Surrogates were combined above: every remaining code is a char.
                    let ch = char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER);
                    o.extend_from_slice(ch.encode_utf8(&mut [0; 4]).as_bytes());
                }
                return Ok(());
            }
            _ => {
                return Err(self.syntax(format_args!(
                    "invalid escape in a string: a backslash followed by {} (valid: \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)",
                    describe(Some(c))
                )));
            }
        };
        self.pos += 1;
        if let Some(o) = out.as_deref_mut() {
            if raw {
                o.extend_from_slice(&[b'\\', c]);
            } else {
                o.push(plain);
            }
        }
        Ok(())
    }

    /// Reads the four hex digits of a `\u` escape (the `\u` is consumed).
    fn hex4(&mut self, out: &mut Option<&mut Vec<u8>>, raw: bool) -> Result<u32, ParseError> {
        let mut v = 0;
        for _ in 0..4 {
            let d = match self.peek()? {
                Some(c) if c.is_ascii_hexdigit() => {
                    if raw && let Some(o) = out.as_deref_mut() {
                        o.push(c);
                    }
                    (c as char).to_digit(16).unwrap_or(0)
                }
                _ => return Err(self.unexpected("four hex digits after \\u")),
            };
            self.pos += 1;
            v = v * 16 + d;
        }
        Ok(v)
    }

    #[inline]
    fn take(&mut self, out: &mut Option<&mut Vec<u8>>, c: u8) {
        self.pos += 1;
        if let Some(o) = out.as_deref_mut() {
            o.push(c);
        }
    }

    /// Reads digits; at least one when `one`.
    fn digits(&mut self, out: &mut Option<&mut Vec<u8>>, one: bool) -> Result<(), ParseError> {
        let mut any = false;
        while let Some(c @ b'0'..=b'9') = self.peek()? {
            self.take(out, c);
            any = true;
        }
        if one && !any {
            return Err(self.unexpected("a digit"));
        }
        Ok(())
    }

    /// Reads a number, copying its text.
    fn number(&mut self, mut out: Option<&mut Vec<u8>>) -> Result<(), ParseError> {
        if self.peek()? == Some(b'-') {
            self.take(&mut out, b'-');
        }
        match self.peek()? {
            Some(b'0') => self.take(&mut out, b'0'),
            Some(c @ b'1'..=b'9') => {
                self.take(&mut out, c);
                self.digits(&mut out, false)?;
            }
            _ => return Err(self.unexpected("a digit")),
        }
        if self.peek()? == Some(b'.') {
            self.take(&mut out, b'.');
            self.digits(&mut out, true)?;
        }
        if let Some(c @ (b'e' | b'E')) = self.peek()? {
            self.take(&mut out, c);
            if let Some(c @ (b'+' | b'-')) = self.peek()? {
                self.take(&mut out, c);
            }
            self.digits(&mut out, true)?;
        }
        Ok(())
    }

    fn literal(&mut self, word: &str, out: Option<&mut Vec<u8>>) -> Result<(), ParseError> {
        for &c in word.as_bytes() {
            if self.peek()? != Some(c) {
                return Err(self.unexpected(&format!("`{word}`")));
            }
            self.pos += 1;
        }
        if let Some(o) = out {
            o.extend_from_slice(word.as_bytes());
        }
        Ok(())
    }

    /// Reads any value, appending its compact JSON text to `out` (or only checking it).
    fn value(&mut self, out: Option<&mut Vec<u8>>, depth: usize) -> Result<(), ParseError> {
        match self.peek()? {
            Some(b'"') => self.string(out, true),
            Some(b'{') => self.container(out, depth, b'}'),
            Some(b'[') => self.container(out, depth, b']'),
            Some(b't') => self.literal("true", out),
            Some(b'f') => self.literal("false", out),
            Some(b'n') => self.literal("null", out),
            Some(b'-' | b'0'..=b'9') => self.number(out),
            _ => Err(self.unexpected("a value")),
        }
    }

    /// Reads an object (`close` is `}`) or an array (`]`) as compact JSON text.
    fn container(
        &mut self,
        mut out: Option<&mut Vec<u8>>,
        depth: usize,
        close: u8,
    ) -> Result<(), ParseError> {
        if depth > MAX_DEPTH {
            return Err(self.syntax(format_args!("nested more than {MAX_DEPTH} levels deep")));
        }
        let open = self.buf[self.pos];
        self.take(&mut out, open);
        let mut b = self.ws()?;
        if b == Some(close) {
            self.take(&mut out, close);
            return Ok(());
        }
        let object = close == b'}';
        loop {
            if object {
                if b != Some(b'"') {
                    return Err(self.unexpected("a key (a string in double quotes)"));
                }
                self.string(out.as_deref_mut(), true)?;
                self.ws()?;
                self.expect(b':', "`:` after the key")?;
                if let Some(o) = out.as_deref_mut() {
                    o.push(b':');
                }
                self.ws()?;
            }
            self.value(out.as_deref_mut(), depth + 1)?;
            b = self.ws()?;
            match b {
                Some(b',') => {
                    self.take(&mut out, b',');
                    b = self.ws()?;
                }
                Some(c) if c == close => {
                    self.take(&mut out, close);
                    return Ok(());
                }
                _ => {
                    return Err(self.unexpected(if object { "`,` or `}`" } else { "`,` or `]`" }));
                }
            }
        }
    }

    // --- records ---

    /// Reads the object at the current position as the record `out`.
    fn record(&mut self, out: &mut Record) -> Result<(), ParseError> {
        self.object_fields(&mut out.values, 1)?;
        self.finish_record(out);
        out.pos = self.rec_pos;
        Ok(())
    }

    /// Reads an object's members as fields named under `self.key`.
    fn object_fields(&mut self, values: &mut Vec<String>, depth: usize) -> Result<(), ParseError> {
        if depth > MAX_DEPTH {
            return Err(self.syntax(format_args!("nested more than {MAX_DEPTH} levels deep")));
        }
        self.pos += 1;
        let mut b = self.ws()?;
        if b == Some(b'}') {
            self.pos += 1;
            if depth > 1 {
                let mut v = self.begin_field(values);
                v.extend_from_slice(b"{}");
                self.end_field(values, v, Kind::Text)?;
            }
            return Ok(());
        }
        loop {
            if b != Some(b'"') {
                return Err(self.unexpected("a key (a string in double quotes)"));
            }
            let saved = self.key.len();
            self.read_key()?;
            self.ws()?;
            self.expect(b':', "`:` after the key")?;
            match self.ws()? {
                Some(b'{') => self.object_fields(values, depth + 1)?,
                Some(b'"') => {
                    let mut v = self.begin_field(values);
                    let read = self.string(Some(&mut v), false);
                    read?;
                    self.end_field(values, v, Kind::Text)?;
                }
                Some(b'n') => {
                    let v = self.begin_field(values);
                    self.literal("null", None)?;
                    self.end_field(values, v, Kind::Null)?;
                }
                b => {
                    // Arrays stay text (compact JSON).
                    let kind = match b {
                        Some(b't') => Kind::Bool(true),
                        Some(b'f') => Kind::Bool(false),
                        Some(b'-' | b'0'..=b'9') => Kind::Number,
                        _ => Kind::Text,
                    };
                    let mut v = self.begin_field(values);
                    self.value(Some(&mut v), depth + 1)?;
                    self.end_field(values, v, kind)?;
                }
            }
            self.key.truncate(saved);
            b = self.ws()?;
            match b {
                Some(b',') => {
                    self.pos += 1;
                    b = self.ws()?;
                }
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(self.unexpected("`,` or `}`")),
            }
        }
    }

    /// Reads a key and appends it to the dotted name.
    fn read_key(&mut self) -> Result<(), ParseError> {
        let mut k = std::mem::take(&mut self.tmp);
        k.clear();
        let start = self.here();
        let read = self.string(Some(&mut k), false);
        let text = std::str::from_utf8(&k);
        let r = match (read, text) {
            (Err(e), _) => Err(e),
            (Ok(()), Err(_)) => Err(ParseError::new("a key is not valid UTF-8").at(start)),
            (Ok(()), Ok(t)) => {
                if !self.key.is_empty() {
                    self.key.push('.');
                }
                self.key.push_str(t);
                Ok(())
            }
        };
        self.tmp = k;
        r
    }

    /// Starts field number `n`, named `self.key`; returns the (cleared) buffer of its value.
    fn begin_field(&mut self, values: &mut Vec<String>) -> Vec<u8> {
        let n = self.n;
        match self.scratch.get_mut(n) {
            Some(s) => {
                s.clear();
                s.push_str(&self.key);
            }
            None => self.scratch.push(self.key.clone()),
        }
        if values.len() <= n {
            values.resize(n + 1, String::new());
        }
        let mut v = std::mem::take(&mut values[n]).into_bytes();
        v.clear();
        v
    }

    fn end_field(
        &mut self,
        values: &mut [String],
        v: Vec<u8>,
        kind: Kind,
    ) -> Result<(), ParseError> {
        match String::from_utf8(v) {
            Ok(s) => {
                values[self.n] = s;
                self.kinds.truncate(self.n);
                self.kinds.push(kind);
                self.n += 1;
                Ok(())
            }
            Err(e) => Err(ParseError {
                value: Some(String::from_utf8_lossy(e.as_bytes()).into_owned()),
                ..ParseError::new("the value is not valid UTF-8").at(self.here())
            }),
        }
    }

    /// Settles the names of the record just read: the previous record's, a remembered
    /// set, or a new one (repeated names merged).
    fn finish_record(&mut self, out: &mut Record) {
        let n = self.n;
        out.values.truncate(n);
        out.kinds.clear();
        out.kinds.extend_from_slice(&self.kinds[..n]);
        let read = &self.scratch[..n];
        if *self.names != *read {
            if let Some(s) = self.shapes.iter().find(|s| ***s == *read) {
                self.names = s.clone();
            } else {
                let names = merge_repeated(read, &mut out.values, &mut out.kinds);
                self.names = match self.shapes.iter().find(|s| ***s == *names) {
                    Some(s) => s.clone(),
                    None => {
                        let a: Arc<[String]> = names.into();
                        self.shapes.insert(0, a.clone());
                        self.shapes.truncate(SHAPES);
                        a
                    }
                };
            }
        }
        if !Arc::ptr_eq(&out.names, &self.names) && *out.names != *self.names {
            out.names = self.names.clone();
        }
    }
}

/// The names of a record with each repeated name kept once, at its first place, with the
/// last value.
fn merge_repeated(
    names: &[String],
    values: &mut Vec<String>,
    kinds: &mut Vec<Kind>,
) -> Vec<String> {
    let mut first: HashMap<&str, usize> = HashMap::with_capacity(names.len());
    let mut keep = vec![true; names.len()];
    for (i, name) in names.iter().enumerate() {
        match first.entry(name.as_str()) {
            Entry::Occupied(e) => {
                values[*e.get()] = std::mem::take(&mut values[i]);
                kinds[*e.get()] = kinds[i];
                keep[i] = false;
            }
            Entry::Vacant(e) => {
                e.insert(i);
            }
        }
    }
    let mut i = 0;
    values.retain(|_| {
        i += 1;
        keep[i - 1]
    });
    let mut i = 0;
    kinds.retain(|_| {
        i += 1;
        keep[i - 1]
    });
    names
        .iter()
        .zip(&keep)
        .filter(|(_, k)| **k)
        .map(|(n, _)| n.clone())
        .collect()
}

/// How reading a record of an array failed.
enum Fail {
    /// The document is broken: stop.
    Fatal(ParseError),
    /// This record is bad; the next one can be read.
    Skip(ParseError),
}

impl From<ParseError> for Fail {
    fn from(e: ParseError) -> Self {
        Fail::Fatal(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Rows = Vec<Vec<(String, String)>>;

    fn opts(style: JsonInStyle, records: Option<&str>) -> JsonInOptions {
        JsonInOptions {
            style,
            records: records.map(str::to_string),
        }
    }

    /// Every record, or the first error.
    fn read(text: &str, o: JsonInOptions) -> Result<Rows, ParseError> {
        let mut r = JsonReader::new(text.as_bytes(), o);
        let mut rec = Record::default();
        let mut out = Vec::new();
        while r.read_into(&mut rec)? {
            out.push(
                rec.fields()
                    .map(|(a, b)| (a.to_string(), b.to_string()))
                    .collect(),
            );
        }
        Ok(out)
    }

    fn array(text: &str) -> Result<Rows, ParseError> {
        read(text, JsonInOptions::default())
    }

    /// Every record and every error, reading on after errors.
    fn read_all<R: Read>(input: R, o: JsonInOptions) -> Vec<Result<Record, ParseError>> {
        let mut r = JsonReader::new(input, o);
        let mut rec = Record::default();
        let mut out = Vec::new();
        loop {
            match r.read_into(&mut rec) {
                Ok(true) => out.push(Ok(rec.clone())),
                Ok(false) => return out,
                Err(e) => out.push(Err(e)),
            }
            assert!(out.len() < 10_000, "the reader does not end");
        }
    }

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn values_flattening_and_key_order() {
        let text = r#"[
  {"z": "last\tfirst \"q\" \u00e9\ud83d\ude00\/", "n": 12.50, "big": 1e400, "neg": -0,
   "ok": true, "no": false, "none": null,
   "customer": {"name": "Anna", "address": {"city": "Köln", "zip": "50667"}},
   "tags": [ "a", 1.0 , {"k" : [ true, null ], "\"": "x y"} ],
   "empty": {}, "none2": [ ], "after": "z"}
]"#;
        let rows = array(text).unwrap();
        assert_eq!(
            rows,
            vec![pairs(&[
                ("z", "last\tfirst \"q\" é😀/"),
                ("n", "12.50"),
                ("big", "1e400"),
                ("neg", "-0"),
                ("ok", "true"),
                ("no", "false"),
                ("none", ""),
                ("customer.name", "Anna"),
                ("customer.address.city", "Köln"),
                ("customer.address.zip", "50667"),
                ("tags", r#"["a",1.0,{"k":[true,null],"\"":"x y"}]"#),
                ("empty", "{}"),
                ("none2", "[]"),
                ("after", "z"),
            ])]
        );
        // The compact text of an array is valid JSON with the same content.
        let v: serde_json::Value = serde_json::from_str(&rows[0][10].1).unwrap();
        assert_eq!(v[2]["\""], "x y");
        assert_eq!(array("[]").unwrap(), Rows::new());
        assert_eq!(array(" [ {} , {} ] \n").unwrap(), vec![vec![], vec![]]);
    }

    /// Issue 11: numbers, booleans and null keep their JSON type for a JSON output.
    #[test]
    fn values_keep_their_json_kind() {
        let text = r#"[{"s":"1","n":12.50,"t":true,"f":false,"z":null,"a":[1],"o":{"k":-1},"r":"x","r":7},
            {"s":2}]"#;
        let mut r = JsonReader::new(text.as_bytes(), JsonInOptions::default());
        let mut rec = Record::default();
        assert!(r.read_into(&mut rec).unwrap());
        let n = Kind::Number;
        assert_eq!(
            rec.values,
            ["1", "12.50", "true", "false", "", "[1]", "-1", "7"]
        );
        assert_eq!(
            rec.kinds,
            [
                Kind::Text,
                n,
                Kind::Bool(true),
                Kind::Bool(false),
                Kind::Null,
                Kind::Text,
                n,
                n
            ]
        );
        assert!(r.read_into(&mut rec).unwrap());
        assert_eq!(
            (&rec.values[..], &rec.kinds[..]),
            (&["2".to_string()][..], &[n][..])
        );
    }

    #[test]
    fn repeated_keys_keep_their_first_place_and_last_value() {
        let rows = array(r#"[{"a":1,"b":2,"a":3,"c":{"d":4},"c.d":5}]"#).unwrap();
        assert_eq!(rows[0], pairs(&[("a", "3"), ("b", "2"), ("c.d", "5")]));
    }

    #[test]
    fn names_are_shared_and_values_reuse_their_buffers() {
        let text = r#"[{"a":"a long value that needs an allocation","b":1},
            {"a":"short","b":2},
            {"x":1},
            {"a":"again","b":3},
            {"b":4,"a":"other order"}]"#;
        let mut r = JsonReader::new(text.as_bytes(), JsonInOptions::default());
        let mut rec = Record::default();
        assert!(r.read_into(&mut rec).unwrap());
        let ab = rec.names.clone();
        let buf = rec.values[0].as_ptr();
        assert!(r.read_into(&mut rec).unwrap());
        assert!(Arc::ptr_eq(&rec.names, &ab));
        assert_eq!(rec.values[0].as_ptr(), buf, "the value's buffer is reused");
        assert_eq!(rec.get("a"), Some("short"));
        assert!(r.read_into(&mut rec).unwrap());
        assert_eq!(&*rec.names, &["x"]);
        assert_eq!(rec.values, vec!["1"]);
        assert!(r.read_into(&mut rec).unwrap());
        assert!(Arc::ptr_eq(&rec.names, &ab), "a shape seen before");
        assert!(r.read_into(&mut rec).unwrap());
        assert_eq!(&*rec.names, &["b", "a"]);
        assert!(!r.read_into(&mut rec).unwrap());
        assert!(!r.read_into(&mut rec).unwrap(), "stays at the end");
        // A record whose names equal the caller's keeps the caller's Arc.
        let mine: Arc<[String]> = Arc::from(vec!["a".to_string()]);
        let mut rec = Record {
            names: mine.clone(),
            ..Default::default()
        };
        let mut r = JsonReader::new(&br#"[{"a":1}]"#[..], JsonInOptions::default());
        assert!(r.read_into(&mut rec).unwrap());
        assert!(Arc::ptr_eq(&rec.names, &mine));
    }

    #[test]
    fn positions_of_records() {
        let text = "[\n  {\"a\": 1},\n  {\"a\": 2}, {\"a\": 3}\n]";
        let got: Vec<Position> = read_all(text.as_bytes(), JsonInOptions::default())
            .into_iter()
            .map(|r| r.unwrap().pos)
            .collect();
        let p = |record, line, byte| Position { record, line, byte };
        assert_eq!(got, vec![p(1, 2, 4), p(2, 3, 16), p(3, 3, 26)]);
    }

    #[test]
    fn records_at_a_path_skip_everything_around_them() {
        let text = r#"{"meta": {"note": "] } [ {", "list": [1, {"y": "]"}], "data": 0},
  "data": {"count": 2, "orders": [
     {"id": "A1", "total": "10.00"},
     {"id": "A2", "total": "7.5"}
  ], "after": [{"id": "not me"}]},
  "orders": [{"id": "nor me"}], "tail": null}"#;
        let rows = read(text, opts(JsonInStyle::Array, Some("data.orders"))).unwrap();
        assert_eq!(
            rows,
            vec![
                pairs(&[("id", "A1"), ("total", "10.00")]),
                pairs(&[("id", "A2"), ("total", "7.5")]),
            ]
        );
        let rows = read(text, opts(JsonInStyle::Array, Some("orders"))).unwrap();
        assert_eq!(rows, vec![pairs(&[("id", "nor me")])]);
        // The first record's position is inside the document.
        let all = read_all(
            text.as_bytes(),
            opts(JsonInStyle::Array, Some("data.orders")),
        );
        assert_eq!(all[0].as_ref().unwrap().pos.line, 3);

        let e = read(text, opts(JsonInStyle::Array, Some("data.lines"))).unwrap_err();
        assert!(e.message.contains("no `data.lines`"), "{e}");
        let e = read(text, opts(JsonInStyle::Array, Some("data.count"))).unwrap_err();
        assert!(
            e.message.contains("`data.count` is a number, not an array"),
            "{e}"
        );
        let e = read(text, opts(JsonInStyle::Array, Some("tail.x"))).unwrap_err();
        assert!(e.message.contains("`tail` is null, not an object"), "{e}");
        let e = read("[{}]", opts(JsonInStyle::Array, Some("data"))).unwrap_err();
        assert!(
            e.message.contains("expected an object holding `data`"),
            "{e}"
        );
        // Broken JSON after the records: the records are read, then the error.
        let all = read_all(
            &br#"{"d": [{"a": 1}], "x": tru}"#[..],
            opts(JsonInStyle::Array, Some("d")),
        );
        assert!(all[0].is_ok());
        let e = all[1].as_ref().unwrap_err();
        assert!(e.message.contains("expected `true`, found `}`"), "{e}");
        assert_eq!(all.len(), 2);
    }

    #[test]
    fn json_lines_with_line_numbers_and_recovery() {
        let text = "{\"a\": 1}\r\n\n   \n{\"a\": 2, \"b\": {\"c\": null}}\n[1]\n{\"a\": tru}\n{\"a\": 5} {\"a\": 6}\n{\"a\": \n7}\n{\"a\": 8}";
        let all = read_all(text.as_bytes(), opts(JsonInStyle::Lines, None));
        let ok = |i: usize| all[i].as_ref().unwrap();
        let err = |i: usize| all[i].as_ref().unwrap_err();
        assert_eq!(all.len(), 8, "{all:#?}");
        assert_eq!(ok(0).values, vec!["1"]);
        assert_eq!(
            ok(0).pos,
            Position {
                record: 1,
                line: 1,
                byte: 0
            }
        );
        assert_eq!(&*ok(1).names, &["a", "b.c"]);
        assert_eq!(
            ok(1).pos,
            Position {
                record: 2,
                line: 4,
                byte: 15
            }
        );
        assert_eq!(
            err(2).to_string(),
            "record 3 (line 5, byte 42): expected an object, found an array (each record must be a JSON object)"
        );
        assert_eq!(
            err(3).to_string(),
            "record 4 (line 6, byte 55): field `a`: malformed JSON at column 10: expected `true`, found `}`"
        );
        assert!(
            err(4)
                .message
                .contains("the end of the line after the object")
        );
        assert_eq!(err(4).pos.unwrap().line, 7);
        let e = err(5);
        assert!(e.message.contains("the line ends inside the record"), "{e}");
        assert_eq!((e.pos.unwrap().record, e.pos.unwrap().line), (6, 8));
        // The next line, `7}`, is a record of its own, and not an object.
        assert_eq!(err(6).pos.unwrap().line, 9);
        assert_eq!(ok(7).values, vec!["8"]);
        assert_eq!(ok(7).pos.record, 8);
        assert_eq!(ok(7).pos.line, 10);
        assert_eq!(
            read("", opts(JsonInStyle::Lines, None)).unwrap(),
            Rows::new()
        );
        assert_eq!(
            read("\n \n", opts(JsonInStyle::Lines, None)).unwrap(),
            Rows::new()
        );
    }

    #[test]
    fn malformed_json_has_record_line_byte_and_column() {
        let text = "[\n {\"a\": 1},\n {\"a\": 2,\n  \"b\": [1, 2,, 3]}\n]";
        let all = read_all(text.as_bytes(), JsonInOptions::default());
        assert_eq!(all.len(), 2, "the reader ends after malformed JSON");
        let e = all[1].as_ref().unwrap_err();
        assert_eq!(
            e.to_string(),
            "record 2 (line 4, byte 36): field `b`: malformed JSON at column 14: expected a value, found `,`"
        );
        assert_eq!(&text[36..37], ",");
        // Between records, the error belongs to the next one.
        let e = array("[{\"a\": 1} {\"a\": 2}]").unwrap_err();
        assert_eq!(
            e.to_string(),
            "record 2 (line 1, byte 10): malformed JSON at column 11: expected `,` or `]` after a record, found `{`"
        );
        let e = array("{\"a\": 1}").unwrap_err();
        assert!(
            e.message
                .contains("for an array inside an object, set `records`")
        );
        let e = array("").unwrap_err();
        assert!(e.message.contains("found the end of the input"), "{e}");
        let e = array("[{\"a\": \"open").unwrap_err();
        assert!(e.message.contains("the input ends inside a string"), "{e}");
        let e = array("[{\"a\": 1}] x").unwrap_err();
        assert!(e.message.contains("expected the end of the input"), "{e}");
        let e = array("[{\"a\": \"x\ny\"}]").unwrap_err();
        assert!(e.message.contains("the line ends inside a string"), "{e}");
        let e = array("[{\"a\": \"\\ud800x\"}]").unwrap_err();
        assert!(e.message.contains("low surrogate"), "{e}");
    }

    #[test]
    fn non_objects_are_reported_and_skipped() {
        let all = read_all(
            &br#"[{"a": 1}, 2, "s", [{"a": 9}], null, {"a": 3}]"#[..],
            JsonInOptions::default(),
        );
        assert_eq!(all.len(), 6);
        assert_eq!(all[0].as_ref().unwrap().values, vec!["1"]);
        let e = all[1].as_ref().unwrap_err();
        assert_eq!(
            e.to_string(),
            "record 2 (line 1, byte 11): expected an object, found a number (each record must be a JSON object)"
        );
        assert!(all[3].as_ref().unwrap_err().message.contains("an array"));
        assert!(all[4].as_ref().unwrap_err().message.contains("null"));
        let last = all[5].as_ref().unwrap();
        assert_eq!((last.pos.record, last.values[0].as_str()), (6, "3"));
    }

    /// The scanner accepts exactly what serde_json accepts.
    #[test]
    fn accepts_what_serde_json_accepts() {
        let values = [
            "0",
            "-0",
            "01",
            "-",
            "1.",
            ".5",
            "+1",
            "1e5",
            "1E+5",
            "1e-5",
            "1e",
            "1.5e",
            "-1.25E-3",
            "0x10",
            "NaN",
            "Infinity",
            "true",
            "True",
            "tru",
            "nul",
            "null",
            "\"\"",
            "\"a\\\"b\"",
            "\"\\u00\"",
            "\"\\uD83D\\uDE00\"",
            "\"\\uDE00\"",
            "\"\\uD83D\"",
            "\"\\uD83D\\u0041\"",
            "\"\\x\"",
            "\"\\'\"",
            "'single'",
            "\"tab\there\"",
            "\"\u{7f}\"",
            "[]",
            "[1,]",
            "[,1]",
            "[1 2]",
            "{}",
            "{\"a\":1,}",
            "{\"a\" 1}",
            "{a:1}",
            "{\"a\":1 \"b\":2}",
            "{\"a\":[1,{\"b\":[]}]}",
            "[[[[[]]]]]",
            "[[[[[]]]]",
            "{\"a\":1}}",
            "\"é\"",
        ];
        for v in values {
            for doc in [format!("[{{\"v\": {v}}}]"), format!("[{{\"v\": [{v}]}}]")] {
                let ours = array(&doc).is_ok();
                let theirs = serde_json::from_str::<serde_json::Value>(&doc).is_ok();
                assert_eq!(ours, theirs, "{doc}: ours {ours}, serde_json {theirs}");
                if ours {
                    // Values and compact arrays mean what serde_json reads.
                    let rows = array(&doc).unwrap();
                    let want = &serde_json::from_str::<serde_json::Value>(&doc).unwrap()[0]["v"];
                    let got = &rows[0][0].1;
                    match want {
                        serde_json::Value::String(s) => assert_eq!(got, s, "{doc}"),
                        serde_json::Value::Null => assert_eq!(got, "", "{doc}"),
                        serde_json::Value::Object(m) if m.is_empty() => {
                            assert_eq!(got, "{}", "{doc}")
                        }
                        serde_json::Value::Object(_) => {}
                        w => {
                            let back: serde_json::Value = serde_json::from_str(got).unwrap();
                            assert_eq!(&back, w, "{doc}")
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = format!("[{{\"a\": {}{}}}]", "[".repeat(10_000), "]".repeat(10_000));
        let e = array(&deep).unwrap_err();
        assert!(e.message.contains("nested more than 128"), "{e}");
        let deep = format!(
            "{{\"x\": {}{}}}",
            "{\"a\":".repeat(10_000),
            "}".repeat(10_000)
        );
        let e = read(&deep, opts(JsonInStyle::Array, Some("y"))).unwrap_err();
        assert!(e.message.contains("nested more than 128"), "{e}");
        let ok = format!("[{{\"a\": {}1{}}}]", "[".repeat(100), "]".repeat(100));
        assert_eq!(array(&ok).unwrap().len(), 1);
    }

    /// A reader that hands out one byte per call: every token crosses buffer refills.
    struct Trickle<'a>(&'a [u8]);
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            match self.0.split_first() {
                Some((&b, rest)) if !buf.is_empty() => {
                    buf[0] = b;
                    self.0 = rest;
                    Ok(1)
                }
                _ => Ok(0),
            }
        }
    }

    #[test]
    fn byte_at_a_time_input_reads_the_same() {
        let text = "\u{feff}[{\"s\": \"a\\u00e9\\ud83d\\ude00 \\n b\", \"n\": -1.5e+3, \"o\": {\"p\": [1, {\"q\": null}]}},\n {\"s\": \"Straße\", \"t\": true}]";
        let whole = read_all(text.as_bytes(), JsonInOptions::default());
        let trickled = read_all(Trickle(text.as_bytes()), JsonInOptions::default());
        assert_eq!(whole.len(), 2);
        assert_eq!(whole, trickled);
        let first = whole[0].as_ref().unwrap();
        assert_eq!(first.values[0], "aé😀 \n b");
        assert_eq!(first.pos.byte, 4, "after the BOM and `[`");
        let lines = "{\"a\": \"x\"}\n{\"a\": \"y\"}\n";
        assert_eq!(
            read_all(lines.as_bytes(), opts(JsonInStyle::Lines, None)),
            read_all(Trickle(lines.as_bytes()), opts(JsonInStyle::Lines, None))
        );
    }

    /// Generates `[{"id":0,...},{"id":1,...},...]` without ever holding it.
    struct Generated {
        next: u64,
        total: u64,
        pending: Vec<u8>,
        at: usize,
    }
    impl Read for Generated {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.at == self.pending.len() {
                self.pending.clear();
                self.at = 0;
                if self.next == 0 {
                    self.pending.push(b'[');
                }
                if self.next < self.total {
                    if self.next > 0 {
                        self.pending.push(b',');
                    }
                    let i = self.next;
                    self.pending.extend_from_slice(
                        format!("\n{{\"id\":{i},\"name\":\"customer {i}\",\"amount\":\"{i}.50\",\"address\":{{\"city\":\"Köln\"}}}}").as_bytes(),
                    );
                    self.next += 1;
                    if self.next == self.total {
                        self.pending.extend_from_slice(b"\n]\n");
                    }
                }
            }
            let n = buf.len().min(self.pending.len() - self.at);
            buf[..n].copy_from_slice(&self.pending[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }

    #[test]
    fn large_arrays_stream_in_constant_memory() {
        let total = 200_000;
        let mut r = JsonReader::new(
            Generated {
                next: 0,
                total,
                pending: Vec::new(),
                at: 0,
            },
            JsonInOptions::default(),
        );
        let mut rec = Record::default();
        let mut n = 0;
        let mut bytes = 0;
        while r.read_into(&mut rec).unwrap() {
            n += 1;
            assert_eq!(rec.pos.record, n);
            bytes = rec.pos.byte;
        }
        assert_eq!(n, total);
        assert_eq!(rec.get("amount"), Some("199999.50"));
        assert_eq!(rec.get("address.city"), Some("Köln"));
        assert!(bytes > 10_000_000, "the input was {bytes} bytes");
        // Nothing grew with the input.
        assert_eq!(r.buf.len(), BUF_SIZE);
        assert!(r.scratch.len() <= 4 && r.shapes.len() == 1);
        assert!(r.tmp.capacity() < 64 && r.key.capacity() < 64);
    }

    #[test]
    fn read_errors_and_undecodable_input() {
        use crate::formats::encoding::DecodeReader;
        let bytes = b"[{\"a\": \"ok\"}, {\"a\": \"bad \xff here\"}]";
        let all = read_all(
            DecodeReader::new(&bytes[..], encoding_rs::UTF_8, false),
            JsonInOptions::default(),
        );
        // The decoder fails on its first buffer, before the first record.
        assert_eq!(all.len(), 1);
        let e = all[0].as_ref().unwrap_err();
        assert!(e.message.contains("at byte offset 25"), "{e}");
        // Undecoded invalid UTF-8 is an error naming the field.
        let all = read_all(&bytes[..], JsonInOptions::default());
        let e = all[1].as_ref().unwrap_err();
        assert_eq!(e.field.as_deref(), Some("a"));
        assert!(e.message.contains("not valid UTF-8"), "{e}");
    }

    #[test]
    fn options_are_checked() {
        assert!(opts(JsonInStyle::Lines, Some("data")).check().is_err());
        let e = opts(JsonInStyle::Array, Some("data..orders"))
            .check()
            .unwrap_err();
        assert!(e.contains("separated by dots"), "{e}");
        assert!(
            opts(JsonInStyle::Array, Some("data.orders"))
                .check()
                .is_ok()
        );
        let all = read_all(&b"{}"[..], opts(JsonInStyle::Lines, Some("x")));
        assert_eq!(all.len(), 1);
        assert!(all[0].is_err());
    }
}
