//! JSON out: an array of objects, or JSON Lines (one object per line). Streams: each record
//! is written as it comes.
//!
//! A value is written by its [`Kind`]: text as a string, a number as its digits exactly as
//! the record has them (`1.50` stays `1.50`: no float in between), a boolean as
//! `true`/`false`, none as `null`. A "number" whose text is not a JSON number (`1,50`,
//! `inf`) is written as a string, so the output is always valid JSON.

use std::io::{self, Write};
use std::sync::Arc;

use super::{Kind, Record};

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
    /// One record's text, handed to `out` in one write: dozens of small writes per record
    /// through the encoder and the hashing output cost more than the formatting.
    buf: Vec<u8>,
    /// The field names of the last record, each written once as `"name":`.
    keys: Option<Keys>,
}

/// Field names, and each one's `"name":`.
type Keys = (Arc<[String]>, Vec<Vec<u8>>);

impl<W: Write> JsonWriter<W> {
    pub fn new(out: W, style: JsonStyle) -> Self {
        JsonWriter {
            out,
            style,
            count: 0,
            buf: Vec::with_capacity(4096),
            keys: None,
        }
    }

    pub fn write(&mut self, rec: &Record) -> io::Result<()> {
        if !matches!(&self.keys, Some((n, _)) if Arc::ptr_eq(n, &rec.names)) {
            let keys = rec
                .names
                .iter()
                .map(|k| {
                    let mut v = Vec::new();
                    write_str(&mut v, k);
                    v.push(b':');
                    v
                })
                .collect();
            self.keys = Some((rec.names.clone(), keys));
        }
        let keys = self.keys.as_ref().map_or(&[][..], |(_, k)| &k[..]);
        let b = &mut self.buf;
        b.clear();
        // Room for the record unless values need escapes: no growing while it is written.
        b.reserve(
            4 + keys.iter().map(Vec::len).sum::<usize>()
                + rec.values.iter().map(|v| v.len() + 3).sum::<usize>(),
        );
        match (self.style, self.count) {
            (JsonStyle::Array, 0) => b.extend_from_slice(b"[\n"),
            (JsonStyle::Array, _) => b.extend_from_slice(b",\n"),
            (JsonStyle::Lines, _) => {}
        }
        b.push(b'{');
        for (i, (k, v)) in keys.iter().zip(&rec.values).enumerate() {
            if i > 0 {
                b.push(b',');
            }
            b.extend_from_slice(k);
            // Most records (every one read from CSV and not transformed) are all text.
            if rec.kinds.is_empty() {
                write_str(b, v);
            } else {
                write_value(b, v, rec.kind(i));
            }
        }
        b.push(b'}');
        if self.style == JsonStyle::Lines {
            b.push(b'\n');
        }
        // One write per record, so an encoding error still belongs to its record.
        self.out.write_all(&self.buf)?;
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

/// Whether any byte needs an escape (a control character, `"` or `\`). Most values need
/// none: this looks at eight bytes at a time (a short value, or the tail of a long one, as
/// one padded or overlapping word), then they are copied at once.
fn needs_escape(bytes: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Exact per word: nonzero when some byte is zero, or below 0x20.
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let below_space = |x: u64| x.wrapping_sub(ONES * 0x20) & !x & HIGH;
    let bad = |x: u64| {
        below_space(x) | zero(x ^ (ONES * u64::from(b'"'))) | zero(x ^ (ONES * u64::from(b'\\')))
            != 0
    };
    let word = |c: &[u8]| u64::from_le_bytes(c.try_into().expect("8 bytes"));
    if bytes.len() < 8 {
        // Padded with spaces, which need no escape.
        let mut w = [b' '; 8];
        w[..bytes.len()].copy_from_slice(bytes);
        return bad(u64::from_le_bytes(w));
    }
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        if bad(word(c)) {
            return true;
        }
    }
    // The last eight bytes, overlapping what was checked.
    !chunks.remainder().is_empty() && bad(word(&bytes[bytes.len() - 8..]))
}

/// Appends a value as its kind says (see the module comment).
fn write_value(b: &mut Vec<u8>, v: &str, kind: Kind) {
    match kind {
        Kind::Number if is_json_number(v.as_bytes()) => b.extend_from_slice(v.as_bytes()),
        Kind::Text | Kind::Number => write_str(b, v),
        Kind::Bool(true) => b.extend_from_slice(b"true"),
        Kind::Bool(false) => b.extend_from_slice(b"false"),
        Kind::Null => b.extend_from_slice(b"null"),
    }
}

/// Whether `t` is a number as RFC 8259 writes one: `-?(0|[1-9][0-9]*)(.[0-9]+)?
/// ([eE][+-]?[0-9]+)?`.
pub fn is_json_number(t: &[u8]) -> bool {
    let digits = |i: usize| t[i..].iter().take_while(|b| b.is_ascii_digit()).count();
    let mut i = usize::from(t.first() == Some(&b'-'));
    match digits(i) {
        0 => return false,
        n if n > 1 && t[i] == b'0' => return false,
        n => i += n,
    }
    if t.get(i) == Some(&b'.') {
        match digits(i + 1) {
            0 => return false,
            n => i += 1 + n,
        }
    }
    if matches!(t.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(t.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        match digits(i) {
            0 => return false,
            n => i += n,
        }
    }
    i == t.len()
}

/// Appends a JSON string literal, escaping as RFC 8259 requires.
fn write_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    if !needs_escape(bytes) {
        out.extend_from_slice(bytes);
        out.push(b'"');
        return;
    }
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => {
                out.extend_from_slice(&bytes[start..i]);
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 15)]);
                start = i + 1;
                continue;
            }
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(esc);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
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
            kinds: Vec::new(),
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

    #[test]
    fn values_are_written_by_kind() {
        let rec = Record {
            names: Arc::from(
                ["a", "b", "c", "d", "e", "f", "g"]
                    .map(String::from)
                    .to_vec(),
            ),
            values: ["1.50", "2", "", "", "x", "1,50", "7"]
                .map(String::from)
                .to_vec(),
            kinds: vec![
                Kind::Number,
                Kind::Number,
                Kind::Bool(true),
                Kind::Null,
                Kind::Text,
                Kind::Number,
            ],
            pos: Default::default(),
        };
        let mut w = JsonWriter::new(Vec::new(), JsonStyle::Lines);
        w.write(&rec).unwrap();
        assert_eq!(
            String::from_utf8(w.finish().unwrap()).unwrap(),
            "{\"a\":1.50,\"b\":2,\"c\":true,\"d\":null,\"e\":\"x\",\"f\":\"1,50\",\"g\":\"7\"}\n",
            "a number not in JSON's notation is a string; past `kinds`, text"
        );
        for ok in [
            "0",
            "-0",
            "1.5",
            "-12.50e+3",
            "1E9",
            "100000000000000000000",
        ] {
            assert!(is_json_number(ok.as_bytes()), "{ok}");
        }
        for bad in [
            "", "-", "01", "1.", ".5", "+1", "1e", "inf", "NaN", "1 ", "0x1", "1.5.2",
        ] {
            assert!(!is_json_number(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn escape_check_agrees_with_a_byte_by_byte_check() {
        let naive = |s: &[u8]| s.iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\');
        for special in 0u8..=255 {
            for len in 1..20 {
                for at in 0..len {
                    let mut v = vec![b'a'; len];
                    v[at] = special;
                    assert_eq!(needs_escape(&v), naive(&v), "{special} at {at} of {len}");
                }
            }
        }
        let mut w = JsonWriter::new(Vec::new(), JsonStyle::Lines);
        let rec = Record {
            names: Arc::from(vec!["k".to_string()]),
            values: vec!["0123456789\u{7f}\u{1f}é\"".into()],
            kinds: Vec::new(),
            pos: Default::default(),
        };
        w.write(&rec).unwrap();
        assert_eq!(
            String::from_utf8(w.finish().unwrap()).unwrap(),
            "{\"k\":\"0123456789\u{7f}\\u001fé\\\"\"}\n"
        );
    }
}
