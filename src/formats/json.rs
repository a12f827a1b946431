//! JSON out: an array of objects, or JSON Lines (one object per line). Streams: each record
//! is written as it comes.

use std::io::{self, Write};

use super::Record;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonStyle {
    /// `[{...},\n{...}]`
    Array,
    /// `{...}\n{...}\n`
    Lines,
}

pub struct JsonWriter<W: Write> {
    out: W,
    style: JsonStyle,
    count: u64,
}

impl<W: Write> JsonWriter<W> {
    pub fn new(out: W, style: JsonStyle) -> Self {
        JsonWriter {
            out,
            style,
            count: 0,
        }
    }

    pub fn write(&mut self, rec: &Record) -> io::Result<()> {
        match (self.style, self.count) {
            (JsonStyle::Array, 0) => self.out.write_all(b"[\n")?,
            (JsonStyle::Array, _) => self.out.write_all(b",\n")?,
            (JsonStyle::Lines, _) => {}
        }
        self.out.write_all(b"{")?;
        for (i, (k, v)) in rec.fields().enumerate() {
            if i > 0 {
                self.out.write_all(b",")?;
            }
            write_str(&mut self.out, k)?;
            self.out.write_all(b":")?;
            write_str(&mut self.out, v)?;
        }
        self.out.write_all(b"}")?;
        if self.style == JsonStyle::Lines {
            self.out.write_all(b"\n")?;
        }
        self.count += 1;
        Ok(())
    }

    /// Closes the document and returns the writer.
    pub fn finish(mut self) -> io::Result<W> {
        if self.style == JsonStyle::Array {
            if self.count == 0 {
                self.out.write_all(b"[]\n")?;
            } else {
                self.out.write_all(b"\n]\n")?;
            }
        }
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Writes a JSON string literal, escaping as RFC 8259 requires.
fn write_str<W: Write>(out: &mut W, s: &str) -> io::Result<()> {
    out.write_all(b"\"")?;
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => {
                out.write_all(&bytes[start..i])?;
                write!(out, "\\u{b:04x}")?;
                start = i + 1;
                continue;
            }
            _ => continue,
        };
        out.write_all(&bytes[start..i])?;
        out.write_all(esc)?;
        start = i + 1;
    }
    out.write_all(&bytes[start..])?;
    out.write_all(b"\"")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn escapes_and_parses_back() {
        let rec = Record {
            names: Arc::from(vec!["a".to_string(), "b\"".to_string()]),
            values: vec!["x\ny\u{1}\\\"é".into(), "".into()],
            pos: Default::default(),
        };
        let mut w = JsonWriter::new(Vec::new(), JsonStyle::Array);
        w.write(&rec).unwrap();
        w.write(&rec).unwrap();
        let out = w.finish().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v[1]["a"], "x\ny\u{1}\\\"é");
        assert_eq!(v[0]["b\""], "");
        let w = JsonWriter::new(Vec::new(), JsonStyle::Array);
        assert_eq!(w.finish().unwrap(), b"[]\n");
    }
}
