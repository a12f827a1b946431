//! Fixed-width records, as mainframe and AS/400 exports write them: each field at a start
//! column with a length, one record per line. Columns count characters of the decoded text
//! and start at 1, as record layouts print them.

use std::io::{BufRead, Write};
use std::sync::Arc;

use super::{ParseError, Position, Record};

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
    line: String,
    chars: Vec<char>,
    line_no: u64,
    byte: u64,
    count: u64,
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
            line: String::new(),
            chars: Vec::new(),
            line_no: 0,
            byte: 0,
            count: 0,
        }
    }

    pub fn read_into(&mut self, out: &mut Record) -> Result<bool, ParseError> {
        loop {
            self.line.clear();
            let start_byte = self.byte;
            let n = self.input.read_line(&mut self.line).map_err(|e| {
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
            let text = self.line.trim_end_matches(['\r', '\n']);
            let text = if self.line_no == 1 {
                text.trim_start_matches('\u{feff}')
            } else {
                text
            };
            if text.trim().is_empty() {
                continue;
            }
            self.count += 1;
            let pos = Position {
                record: self.count,
                line: self.line_no,
                byte: start_byte,
            };
            self.chars.clear();
            self.chars.extend(text.chars());
            let width = self.layout.width();
            if self.chars.len() < width && !self.layout.short_lines {
                return Err(ParseError::new(format!(
                    "the line has {} characters; the layout needs {width}",
                    self.chars.len()
                ))
                .at(pos));
            }
            if !Arc::ptr_eq(&out.names, &self.names) {
                out.names = self.names.clone();
            }
            out.values.resize(self.names.len(), String::new());
            for (v, c) in out.values.iter_mut().zip(&self.layout.columns) {
                v.clear();
                let from = (c.start - 1).min(self.chars.len());
                let to = (c.start - 1 + c.length).min(self.chars.len());
                v.extend(&self.chars[from..to]);
                if self.layout.trim {
                    // Padding sits on one side: before right-aligned values, after
                    // left-aligned ones. Blanks go on both sides.
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
            out.pos = pos;
            return Ok(true);
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
