//! Streaming text decoding: any encoding encoding_rs knows, to UTF-8.
//!
//! A byte-order mark wins over the configured encoding (as in browsers): a UTF-8 or UTF-16
//! BOM selects that encoding and is removed. Undecodable bytes are an error naming their
//! byte offset in the original file, unless the job asks to replace them with U+FFFD. The
//! original bytes are never changed: this only reads.

use std::io::{self, Read};

use encoding_rs::{CoderResult, Decoder, DecoderResult, Encoding};

/// Undecodable input, with where it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bytes {bytes} at byte offset {offset} are not valid {encoding}")]
pub struct DecodeError {
    pub offset: u64,
    pub encoding: &'static str,
    /// The offending bytes, in hex.
    pub bytes: String,
}

/// Looks up an encoding by any of its WHATWG labels (`utf-8`, `windows-1252`, `latin1`,
/// `iso-8859-15`, `utf-16le`, `shift_jis`, ...).
pub fn by_label(label: &str) -> Option<&'static Encoding> {
    Encoding::for_label(label.trim().as_bytes())
}

/// Bytes of the original read at a time.
const INPUT: usize = 128 * 1024;

/// A reader that yields the UTF-8 text of an encoded byte stream.
pub struct DecodeReader<R> {
    inner: R,
    decoder: Decoder,
    replace: bool,
    input: Vec<u8>,
    in_pos: usize,
    in_len: usize,
    /// Bytes of the original consumed by the decoder so far.
    consumed: u64,
    output: Vec<u8>,
    out_pos: usize,
    out_len: usize,
    eof: bool,
    done: bool,
}

impl<R: Read> DecodeReader<R> {
    pub fn new(inner: R, encoding: &'static Encoding, replace: bool) -> Self {
        DecodeReader {
            inner,
            decoder: encoding.new_decoder(),
            replace,
            input: vec![0; INPUT],
            in_pos: 0,
            in_len: 0,
            consumed: 0,
            // For reads too small to decode into directly (decoding stops when it is full
            // and goes on at the next read).
            output: vec![0; 64 * 1024],
            out_pos: 0,
            out_len: 0,
            eof: false,
            done: false,
        }
    }

    /// The encoding in use: the configured one, or the one a BOM selected.
    pub fn encoding(&self) -> &'static Encoding {
        self.decoder.encoding()
    }

    /// Decodes into `dst` (at least [`MIN_DIRECT`] bytes), reading more of the original as
    /// needed; 0 only at the end.
    fn decode_into(&mut self, dst: &mut [u8]) -> io::Result<usize> {
        while !self.done {
            if self.in_pos == self.in_len && !self.eof {
                let n = loop {
                    match self.inner.read(&mut self.input) {
                        Ok(n) => break n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(e),
                    }
                };
                self.in_pos = 0;
                self.in_len = n;
                self.eof = n == 0;
            }
            let src = &self.input[self.in_pos..self.in_len];
            let last = self.eof;
            let (read, written) = if self.replace {
                let (result, read, written, _) = self.decoder.decode_to_utf8(src, dst, last);
                if result == CoderResult::InputEmpty && last {
                    self.done = true;
                }
                (read, written)
            } else {
                let (result, read, written) = self
                    .decoder
                    .decode_to_utf8_without_replacement(src, dst, last);
                match result {
                    DecoderResult::InputEmpty if last => self.done = true,
                    DecoderResult::Malformed(bad, after) => {
                        // `consumed` is the file offset of `src[0]`; the bad bytes end
                        // `after` bytes before the end of what this call read, and may
                        // have started in an earlier buffer.
                        let end = read - after as usize;
                        let offset = (self.consumed + end as u64).saturating_sub(bad as u64);
                        let shown = &src[end.saturating_sub(bad as usize)..end];
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            DecodeError {
                                offset,
                                encoding: self.decoder.encoding().name(),
                                bytes: hex::encode(shown),
                            },
                        ));
                    }
                    _ => {}
                }
                (read, written)
            };
            self.in_pos += read;
            self.consumed += read as u64;
            if written > 0 {
                return Ok(written);
            }
        }
        Ok(0)
    }
}

/// A read into a buffer at least this big is decoded straight into it, not into this
/// reader's own buffer and then copied.
const MIN_DIRECT: usize = 4096;

impl<R: Read> Read for DecodeReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.out_pos == self.out_len {
            if buf.len() >= MIN_DIRECT {
                return self.decode_into(buf);
            }
            let mut out = std::mem::take(&mut self.output);
            let decoded = self.decode_into(&mut out);
            self.output = out;
            self.out_pos = 0;
            self.out_len = decoded?;
        }
        let n = buf.len().min(self.out_len - self.out_pos);
        buf[..n].copy_from_slice(&self.output[self.out_pos..self.out_pos + n]);
        self.out_pos += n;
        Ok(n)
    }
}

/// The decode error inside an I/O error, if that is what it is.
pub fn decode_error(e: &io::Error) -> Option<&DecodeError> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<DecodeError>())
}

/// A character the target encoding cannot represent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the character {ch:?} (U+{code:04X}) cannot be written in {encoding}")]
pub struct EncodeError {
    pub ch: char,
    pub code: u32,
    pub encoding: &'static str,
}

/// A writer that takes UTF-8 text and writes it in another encoding. A character the
/// encoding lacks is an error, or, with `replace`, written as the encoding's replacement
/// (`?` for single-byte encodings, a numeric character reference never).
pub struct EncodeWriter<W: std::io::Write> {
    inner: W,
    encoder: encoding_rs::Encoder,
    replace: bool,
    out: Vec<u8>,
    /// An incomplete UTF-8 sequence from the end of the last write.
    pending: Vec<u8>,
    /// The encoding of one write, written once all of it is encoded.
    staged: Vec<u8>,
    utf8: bool,
}

impl<W: std::io::Write> EncodeWriter<W> {
    pub fn new(inner: W, encoding: &'static Encoding, replace: bool) -> Self {
        // encoding_rs encodes UTF-16 as UTF-8 (as the WHATWG standard says); write those
        // through a dedicated path.
        let utf8 = encoding == encoding_rs::UTF_8;
        EncodeWriter {
            inner,
            encoder: encoding.output_encoding().new_encoder(),
            replace,
            out: vec![0; 64 * 1024],
            pending: Vec::new(),
            staged: Vec::new(),
            utf8,
        }
    }

    /// Encodes `text` whole, or writes nothing of it: a record with a character the
    /// encoding lacks must not leave half of itself in the output when it is skipped.
    fn encode(&mut self, text: &str, last: bool) -> io::Result<()> {
        let mut src = text;
        self.staged.clear();
        loop {
            let (result, read, written) =
                self.encoder
                    .encode_from_utf8_without_replacement(src, &mut self.out, last);
            self.staged.extend_from_slice(&self.out[..written]);
            src = &src[read..];
            match result {
                encoding_rs::EncoderResult::InputEmpty => {
                    return self.inner.write_all(&self.staged);
                }
                encoding_rs::EncoderResult::OutputFull => {}
                encoding_rs::EncoderResult::Unmappable(ch) => {
                    if self.replace {
                        self.staged.push(b'?');
                    } else {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            EncodeError {
                                ch,
                                code: ch as u32,
                                encoding: self.encoder.encoding().name(),
                            },
                        ));
                    }
                }
            }
        }
    }

    /// Flushes and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        if !self.pending.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "text ended inside a UTF-8 sequence",
            ));
        }
        if !self.utf8 {
            self.encode("", true)?;
        }
        self.inner.flush()?;
        Ok(self.inner)
    }
}

impl<W: std::io::Write> std::io::Write for EncodeWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.utf8 {
            return self.inner.write(buf);
        }
        self.pending.extend_from_slice(buf);
        let valid = match std::str::from_utf8(&self.pending) {
            Ok(_) => self.pending.len(),
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            Err(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "the text to encode is not UTF-8",
                ));
            }
        };
        let rest = self.pending.split_off(valid);
        let text = std::mem::replace(&mut self.pending, rest);
        // SAFETY-free: validated just above.
        let text = String::from_utf8(text).map_err(|_| io::Error::other("UTF-8 validated"))?;
        self.encode(&text, false)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(bytes: &[u8], label: &str, replace: bool) -> io::Result<String> {
        let mut r = DecodeReader::new(bytes, by_label(label).unwrap(), replace);
        let mut s = String::new();
        r.read_to_string(&mut s)?;
        Ok(s)
    }

    #[test]
    fn windows_1252_and_boms() {
        assert_eq!(
            decode(b"M\xe4rz \x80", "windows-1252", false).unwrap(),
            "März €"
        );
        assert_eq!(
            decode(b"\xef\xbb\xbfa;b", "windows-1252", false).unwrap(),
            "a;b"
        );
        assert_eq!(decode(b"\xff\xfea\x00;\x00", "utf-8", false).unwrap(), "a;");
        assert_eq!(decode(b"\xfe\xff\x00a", "latin1", false).unwrap(), "a");
    }

    #[test]
    fn strict_utf8_names_the_offset() {
        let e = decode(b"abc\xffdef", "utf-8", false).unwrap_err();
        let d = decode_error(&e).unwrap();
        assert_eq!((d.offset, d.bytes.as_str()), (3, "ff"));
        assert_eq!(
            decode(b"abc\xffdef", "utf-8", true).unwrap(),
            "abc\u{fffd}def"
        );
    }

    #[test]
    fn offsets_past_the_first_buffer() {
        let mut big = vec![b'x'; 200_000];
        big[150_001] = 0xc3; // a lead byte followed by 'x' is malformed
        let e = decode(&big, "utf-8", false).unwrap_err();
        assert_eq!(decode_error(&e).unwrap().offset, 150_001);
    }

    #[test]
    fn small_and_big_reads_decode_the_same_text() {
        // Reads big enough to decode into directly alternate with small ones served from
        // the reader's own buffer; multi-byte characters straddle every boundary.
        let text: String = (0..300_000)
            .map(|i| ['a', 'é', '€', '𝄞', '\n'][i % 5])
            .collect();
        for (label, bytes) in [
            ("utf-8", text.as_bytes().to_vec()),
            (
                "utf-16le",
                text.encode_utf16().flat_map(u16::to_le_bytes).collect(),
            ),
            ("windows-1252", {
                let t: String = text.chars().filter(|&c| c != '𝄞').collect();
                by_label("windows-1252").unwrap().encode(&t).0.into_owned()
            }),
        ] {
            let want = by_label(label)
                .unwrap()
                .decode_without_bom_handling(&bytes)
                .0;
            let mut r = DecodeReader::new(&bytes[..], by_label(label).unwrap(), false);
            let mut got = Vec::new();
            for size in [1usize, 5000, 3, 200_000, 4095, 4096, 70_000]
                .iter()
                .cycle()
            {
                let mut buf = vec![0; *size];
                let n = r.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            assert_eq!(String::from_utf8(got).unwrap(), want, "{label}");
        }
    }

    #[test]
    fn encoding_windows_1252() {
        use std::io::Write;
        let mut w = EncodeWriter::new(Vec::new(), by_label("windows-1252").unwrap(), false);
        // Split a multi-byte character across writes.
        let text = "März €".as_bytes();
        w.write_all(&text[..2]).unwrap();
        w.write_all(&text[2..]).unwrap();
        assert_eq!(w.finish().unwrap(), b"M\xe4rz \x80");
        let mut w = EncodeWriter::new(Vec::new(), by_label("windows-1252").unwrap(), false);
        let e = w.write_all("Ω".as_bytes()).unwrap_err();
        assert!(e.to_string().contains("U+03A9"), "{e}");
        let mut w = EncodeWriter::new(Vec::new(), by_label("windows-1252").unwrap(), true);
        w.write_all("aΩb".as_bytes()).unwrap();
        assert_eq!(w.finish().unwrap(), b"a?b");
    }

    #[test]
    fn truncated_multibyte_at_the_end() {
        let e = decode(b"ab\xe2\x82", "utf-8", false).unwrap_err();
        assert_eq!(decode_error(&e).unwrap().offset, 2);
    }
}
