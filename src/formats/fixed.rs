//! Fixed-width records, as mainframe and AS/400 exports write them: each field at a start
//! column with a length, one record per line. Columns count characters of the decoded text
//! and start at 1, as record layouts print them.

use std::io::{BufRead, Write};
use std::sync::Arc;

use super::{DEFAULT_MAX_RECORD, ParseError, Position, Record};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// One column of a layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    /// 1-based start column.
    pub start: usize,
    pub length: usize,
    /// How values are padded on output (numbers usually right, with `0`).
    pub align: Align,
    pub pad: char,
}

#[derive(Debug, Clone)]
pub struct Layout {
    pub columns: Vec<Column>,
    /// Strip the padding from values read (on by default).
    pub trim: bool,
    /// Lines shorter than the layout: pad with blanks (true) or fail.
    pub short_lines: bool,
}

impl Layout {
    /// Checks that columns do not overlap; returns the problem otherwise.
    pub fn check(&self) -> Result<(), String> {
        let mut cols: Vec<&Column> = self.columns.iter().collect();
        cols.sort_by_key(|c| c.start);
        for w in cols.windows(2) {
            if w[0].start + w[0].length > w[1].start {
                return Err(format!(
                    "columns `{}` ({}..{}) and `{}` (from {}) overlap",
                    w[0].name,
                    w[0].start,
                    w[0].start + w[0].length - 1,
                    w[1].name,
                    w[1].start
                ));
            }
        }
        if let Some(c) = self.columns.iter().find(|c| c.start == 0 || c.length == 0) {
            return Err(format!(
                "column `{}`: start and length count from 1",
                c.name
            ));
        }
        Ok(())
    }

    fn width(&self) -> usize {
        self.columns
            .iter()
            .map(|c| c.start + c.length - 1)
            .max()
            .unwrap_or(0)
    }
}

pub struct FixedReader<R: BufRead> {
    input: R,
    layout: Layout,
    names: Arc<[String]>,
    line: Vec<u8>,
    /// Byte offsets of the line's first characters, as far as the layout reaches.
    bounds: Vec<usize>,
    line_no: u64,
    byte: u64,
    count: u64,
    max_record: u64,
}

impl<R: BufRead> FixedReader<R> {
    pub fn new(input: R, layout: Layout) -> Self {
        let names: Arc<[String]> = layout
            .columns
            .iter()
            .map(|c| c.name.clone())
            .collect::<Vec<_>>()
            .into();
        FixedReader {
            input,
            layout,
            names,
            line: Vec::new(),
            bounds: Vec::new(),
            line_no: 0,
            byte: 0,
            count: 0,
            max_record: DEFAULT_MAX_RECORD,
        }
    }

    /// Fails on a line longer than `max` bytes (its line break not counted), reading no
    /// more of it than that.
    pub fn with_max_record(mut self, max: u64) -> Self {
        self.max_record = max;
        self
    }

    pub fn read_into(&mut self, out: &mut Record) -> Result<bool, ParseError> {
        loop {
            self.line.clear();
            let start_byte = self.byte;
            let max = self.max_record;
            // A line break past `max` bytes still ends a line of `max` bytes.
            let n = std::io::Read::take(&mut self.input, max + 1)
                .read_until(b'\n', &mut self.line)
                .map_err(|e| {
                    ParseError::new(match super::encoding::decode_error(&e) {
                        Some(d) => d.to_string(),
                        None => format!("cannot read: {e}"),
                    })
                })?;
            if n == 0 {
                return Ok(false);
            }
            self.byte += n as u64;
            self.line_no += 1;
            let pos = Position {
                record: self.count + 1,
                line: self.line_no,
                byte: start_byte,
            };
            if n as u64 > max && self.line.last() != Some(&b'\n') {
                return Err(ParseError::too_large(max, pos));
            }
            let text = std::str::from_utf8(&self.line)
                .map_err(|_| ParseError::new("the line is not valid UTF-8").at(pos))?
                .trim_end_matches(['\r', '\n']);
            let text = if self.line_no == 1 {
                text.trim_start_matches('\u{feff}')
            } else {
                text
            };
            if text.trim().is_empty() {
                continue;
            }
            self.count += 1;
            let width = self.layout.width();
            // The byte offset of each character the layout uses, and of the end.
            self.bounds.clear();
            self.bounds
                .extend(text.char_indices().map(|(i, _)| i).take(width + 1));
            let chars = self.bounds.len().min(width);
            if self.bounds.len() <= width {
                self.bounds.push(text.len());
            }
            if chars < width && !self.layout.short_lines {
                return Err(ParseError::new(format!(
                    "the line has {chars} characters; the layout needs {width}"
                ))
                .at(pos));
            }
            if !Arc::ptr_eq(&out.names, &self.names) {
                out.names = self.names.clone();
            }
            cut(&self.layout, text, &self.bounds, chars, &mut out.values);
            out.pos = pos;
            return Ok(true);
        }
    }
}

/// Cuts a line into the layout's values: `bounds` holds the byte offset of each of its
/// first `chars` characters and of the end of the last.
fn cut(layout: &Layout, text: &str, bounds: &[usize], chars: usize, values: &mut Vec<String>) {
    values.resize(layout.columns.len(), String::new());
    for (v, c) in values.iter_mut().zip(&layout.columns) {
        v.clear();
        let from = bounds[(c.start - 1).min(chars)];
        let to = bounds[(c.start - 1 + c.length).min(chars)];
        v.push_str(&text[from..to]);
        if layout.trim {
            // Padding sits on one side: before right-aligned values, after left-aligned
            // ones. Blanks go on both sides.
            let pad = |ch: char| ch == ' ' || ch == c.pad;
            let trimmed = match c.align {
                Align::Right => v.trim_start_matches(pad).trim_end(),
                Align::Left => v.trim_end_matches(pad).trim_start(),
            };
            if trimmed.is_empty() && c.pad != ' ' && v.contains(c.pad) {
                // All padding: `0000000000` is the number 0, not nothing.
                *v = c.pad.to_string();
            } else if trimmed.len() != v.len() {
                *v = trimmed.to_string();
            }
        }
    }
}

/// Writes records in a fixed-width layout, one line each.
pub struct FixedWriter<W: Write> {
    out: W,
    layout: Layout,
    crlf: bool,
    line: Vec<char>,
    buf: String,
}

impl<W: Write> FixedWriter<W> {
    pub fn new(out: W, layout: Layout, crlf: bool) -> Self {
        FixedWriter {
            out,
            layout,
            crlf,
            line: Vec::new(),
            buf: String::new(),
        }
    }

    /// Writes one record. A value longer than its column is an error naming the field:
    /// cutting it would silently change the data.
    pub fn write(&mut self, rec: &Record) -> Result<(), ParseError> {
        let width = self.layout.width();
        self.line.clear();
        self.line.resize(width, ' ');
        for c in &self.layout.columns {
            let v = rec.get(&c.name).unwrap_or("");
            let n = v.chars().count();
            if n > c.length {
                return Err(ParseError {
                    pos: Some(rec.pos),
                    field: Some(c.name.clone()),
                    value: Some(v.to_string()),
                    message: format!("{n} characters do not fit the column's {}", c.length),
                });
            }
            let value_at = match c.align {
                Align::Left => 0,
                Align::Right => c.length - n,
            };
            let slot = &mut self.line[c.start - 1..c.start - 1 + c.length];
            slot.fill(c.pad);
            for (i, ch) in v.chars().enumerate() {
                slot[value_at + i] = ch;
            }
        }
        self.buf.clear();
        self.buf.extend(self.line.iter());
        self.buf.push_str(if self.crlf { "\r\n" } else { "\n" });
        self.out
            .write_all(self.buf.as_bytes())
            .map_err(|e| ParseError::new(format!("cannot write: {e}")))
    }

    pub fn finish(mut self) -> std::io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> Layout {
        Layout {
            columns: vec![
                Column {
                    name: "no".into(),
                    start: 1,
                    length: 6,
                    align: Align::Right,
                    pad: '0',
                },
                Column {
                    name: "name".into(),
                    start: 7,
                    length: 10,
                    align: Align::Left,
                    pad: ' ',
                },
                Column {
                    name: "city".into(),
                    start: 18,
                    length: 6,
                    align: Align::Left,
                    pad: ' ',
                },
            ],
            trim: true,
            short_lines: true,
        }
    }

    #[test]
    fn reads_and_writes_back_the_same_lines() {
        let text =
            "000042Müller     Köln  \r\n000007Ann         Bonn\r\n000000Zoe        Ulm   \r\n";
        let mut r = FixedReader::new(text.as_bytes(), layout());
        let mut w = FixedWriter::new(Vec::new(), layout(), true);
        let mut rec = Record::default();
        let mut rows = Vec::new();
        while r.read_into(&mut rec).unwrap() {
            rows.push(rec.values.clone());
            w.write(&rec).unwrap();
        }
        assert_eq!(rows[0], vec!["42", "Müller", "Köln"]);
        assert_eq!(rows[1], vec!["7", "Ann", "Bonn"]);
        assert_eq!(rows[2], vec!["0", "Zoe", "Ulm"], "all padding is a zero");
        let out = String::from_utf8(w.finish().unwrap()).unwrap();
        assert_eq!(
            out,
            "000042Müller     Köln  \r\n000007Ann        Bonn  \r\n000000Zoe        Ulm   \r\n"
        );
    }

    #[test]
    fn too_long_values_and_overlaps_are_errors() {
        let mut w = FixedWriter::new(Vec::new(), layout(), false);
        let rec = Record {
            names: Arc::from(vec!["no".to_string(), "name".into(), "city".into()]),
            values: vec!["1".into(), "Maximilianus".into(), "".into()],
            kinds: Vec::new(),
            pos: Default::default(),
        };
        let e = w.write(&rec).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("name"));
        let mut l = layout();
        l.columns[1].start = 5;
        assert!(l.check().is_err());
        let mut l = layout();
        l.short_lines = false;
        let mut r = FixedReader::new("0001Ann\n".as_bytes(), l);
        assert!(
            r.read_into(&mut Record::default())
                .unwrap_err()
                .to_string()
                .contains("layout needs 23")
        );
    }
}
