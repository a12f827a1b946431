//! The redactor: every configured secret value is replaced by `***` in whatever ferry
//! writes, whoever produced the text (ferry itself, a library's trace, a server's reply).
//!
//! # Theory of operation
//!
//! One process-wide set of secret values. It learns a value
//!
//! - from every job loaded, at start and at each hot reload ([`crate::job::secrets::learn_job`]): each password
//!   of the job is resolved (`${env:..}`, `${file:..}`, a literal in the job file or in an
//!   FTP URL's userinfo) and remembered;
//! - from every resolution at connection time ([`crate::secrets::Secret::resolve`]), so a
//!   rotated secret is known before it is sent to any server.
//!
//! A value is never forgotten while the process runs: an old password of a rotated secret or
//! of a removed job is still a password, and text about it may still be written.
//!
//! Every writer goes through [`scrub`]: the log (the tracing writer [`Redacting`], all
//! levels, text and JSON), the journal's free texts (events, errors), error reports, alert
//! mails, and what `ferry status` and `ferry history` read from the journal. A new writer
//! (the console) calls [`scrub`] on its texts, or wraps its stream in [`Redacting`].
//!
//! Besides the value itself, the forms it takes when a writer escapes it are redacted too:
//! Rust `{:?}` and JSON escaping (logs in JSON, a library logging a quoted command), IMAP
//! quoting (`LOGIN "user" "pass"`), and URL percent-encoding, nested up to three deep (a
//! JSON log line of a `{:?}` of an IMAP command).
//!
//! # Short secrets
//!
//! A value of [`MIN_ANYWHERE`] characters or more is replaced wherever it occurs. A shorter
//! one (a weak password, but still a password) is replaced only where it stands alone: not
//! preceded or followed by a letter or digit. `PASS abc`, `"abc"` and `pw=abc,` lose it;
//! `abcdef`, `crabcake` and a hash do not, so that a three-letter password does not turn
//! every word holding those letters into `***`. The empty value is never redacted.
//!
//! # Second line of defence
//!
//! [`library_caps`] keeps the traces of the libraries that print protocol lines with
//! credentials in them (suppaftp's `PASS`, async-imap's `LOGIN`, lettre's base64 `AUTH`
//! lines, which no substring match can recognise) below the level where they do so, unless
//! the log filter names the library explicitly.

use std::borrow::Cow;
use std::io::{self, Write};
use std::sync::{Arc, LazyLock, RwLock};

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::MakeWriter;

/// What a secret is replaced with.
pub const MASK: &str = "***";

/// Secrets at least this long (in characters) are replaced wherever they occur; shorter
/// ones only where they stand alone (see the module documentation).
pub const MIN_ANYWHERE: usize = 6;

/// One form of one secret, as it is searched for.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    text: String,
    anywhere: bool,
}

/// The known secrets, longest form first (a longer secret that contains a shorter one is
/// replaced whole).
#[derive(Debug, Default)]
struct Known {
    values: Vec<String>,
    patterns: Vec<Pattern>,
}

static KNOWN: LazyLock<RwLock<Arc<Known>>> = LazyLock::new(Default::default);

fn known() -> Arc<Known> {
    KNOWN.read().unwrap_or_else(|p| p.into_inner()).clone()
}

/// Remembers a secret value: from now on it is redacted everywhere.
pub fn learn(value: &str) {
    if value.is_empty() || known().values.iter().any(|v| v == value) {
        return;
    }
    let mut guard = KNOWN.write().unwrap_or_else(|p| p.into_inner());
    if guard.values.iter().any(|v| v == value) {
        return;
    }
    let mut next = Known {
        values: guard.values.clone(),
        patterns: guard.patterns.clone(),
    };
    next.values.push(value.to_string());
    let anywhere = value.chars().count() >= MIN_ANYWHERE;
    for text in forms(value) {
        if !next.patterns.iter().any(|p| p.text == text) {
            next.patterns.push(Pattern { text, anywhere });
        }
    }
    next.patterns.sort_by(|a, b| {
        b.text
            .len()
            .cmp(&a.text.len())
            .then(b.anywhere.cmp(&a.anywhere))
    });
    *guard = Arc::new(next);
}

/// `text` with every known secret replaced by [`MASK`].
pub fn scrub(text: &str) -> Cow<'_, str> {
    let known = known();
    let mut out: Option<String> = None;
    for p in &known.patterns {
        let current = out.as_deref().unwrap_or(text);
        if let Some(replaced) = replace(current, p) {
            out = Some(replaced);
        }
    }
    match out {
        Some(s) => Cow::Owned(s),
        None => Cow::Borrowed(text),
    }
}

/// [`scrub`] for an owned string, in place.
pub fn scrub_string(s: &mut String) {
    if let Cow::Owned(o) = scrub(s) {
        *s = o;
    }
}

/// `text` with each occurrence of `p` replaced, or `None` when there is none.
fn replace(text: &str, p: &Pattern) -> Option<String> {
    if !text.contains(&p.text) {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for (i, m) in text.match_indices(&p.text) {
        let end = i + m.len();
        if !p.anywhere && !stands_alone(text, i, end) {
            continue;
        }
        out.push_str(&text[last..i]);
        out.push_str(MASK);
        last = end;
    }
    if last == 0 {
        return None;
    }
    out.push_str(&text[last..]);
    Some(out)
}

fn stands_alone(text: &str, start: usize, end: usize) -> bool {
    let before = text[..start].chars().next_back();
    let after = text[end..].chars().next();
    !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
}

/// The value and the forms writers escape it into, up to three escapings deep.
fn forms(value: &str) -> Vec<String> {
    let mut all = vec![value.to_string()];
    let mut frontier = all.clone();
    for _ in 0..3 {
        let mut next = Vec::new();
        for f in &frontier {
            for e in [
                debug_escaped(f),
                json_escaped(f),
                imap_quoted(f),
                percent_encoded(f),
            ] {
                if !all.contains(&e) {
                    all.push(e.clone());
                    next.push(e);
                }
            }
        }
        frontier = next;
    }
    all
}

fn debug_escaped(s: &str) -> String {
    let d = format!("{s:?}");
    d[1..d.len() - 1].to_string()
}

fn json_escaped(s: &str) -> String {
    let j = serde_json::to_string(s).unwrap_or_default();
    j.get(1..j.len().saturating_sub(1))
        .unwrap_or("")
        .to_string()
}

/// An IMAP quoted string's content (RFC 3501: `\` and `"` escaped).
fn imap_quoted(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// As in a URL's userinfo: everything but the unreserved characters percent-encoded.
fn percent_encoded(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A URL for messages: a password in its userinfo (`scheme://user:PASSWORD@host`) replaced
/// by [`MASK`]. For errors about a URL in a job file, before its secrets are known.
pub fn url_for_message(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_string();
    };
    match rest[..at].split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:{MASK}{}", &rest[at..]),
        None => url.to_string(),
    }
}

// ---------------------------------------------------------------------------------------
// Writers

/// A tracing writer that scrubs each event before it reaches `M`'s stream. The formatting
/// layer writes an event in one piece per writer; the writer keeps it whole and scrubs it
/// when dropped, so a secret is never split between two writes.
pub struct Redacting<M> {
    inner: M,
}

impl<M> Redacting<M> {
    pub fn new(inner: M) -> Redacting<M> {
        Redacting { inner }
    }
}

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for Redacting<M> {
    type Writer = Scrubbed<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        Scrubbed::new(self.inner.make_writer())
    }
}

/// A writer that keeps what it is given and writes it scrubbed on `flush` and when dropped
/// (a log event, a command's output). Past [`Scrubbed::HOLD`] bytes, the complete lines
/// held are written: memory stays bounded, and a secret never spans a line.
pub struct Scrubbed<W: Write> {
    buf: Vec<u8>,
    inner: W,
}

impl<W: Write> Scrubbed<W> {
    pub const HOLD: usize = 64 * 1024;

    pub fn new(inner: W) -> Scrubbed<W> {
        Scrubbed {
            buf: Vec::new(),
            inner,
        }
    }

    /// Writes the first `n` bytes held, scrubbed.
    fn write_held(&mut self, n: usize) -> io::Result<()> {
        if n == 0 {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&self.buf[..n]);
        let result = self.inner.write_all(scrub(&text).as_bytes());
        self.buf.drain(..n);
        result
    }

    fn write_out(&mut self) -> io::Result<()> {
        self.write_held(self.buf.len())?;
        self.inner.flush()
    }
}

impl<W: Write> Write for Scrubbed<W> {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(b);
        if self.buf.len() > Self::HOLD
            && let Some(end) = self.buf.iter().rposition(|&c| c == b'\n')
        {
            self.write_held(end + 1)?;
        }
        Ok(b.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.write_out()
    }
}

impl<W: Write> Drop for Scrubbed<W> {
    fn drop(&mut self) {
        let _ = self.write_out();
    }
}

/// Libraries whose traces carry credentials, and the most they may log unless the filter
/// names them: suppaftp logs `PASS <password>` at TRACE, async-imap `LOGIN "user" "pass"`
/// at TRACE, lettre (with its tracing feature) the base64 `AUTH` line at DEBUG; rustls'
/// traces hold handshake details only but are capped with them.
const LIBRARY_CAPS: &[(&str, LevelFilter)] = &[
    ("suppaftp", LevelFilter::DEBUG),
    ("async_imap", LevelFilter::DEBUG),
    ("lettre", LevelFilter::INFO),
    ("rustls", LevelFilter::DEBUG),
    ("tokio_rustls", LevelFilter::DEBUG),
    // HTTP outputs: request lines and headers (Authorization) at DEBUG and TRACE.
    ("ureq", LevelFilter::INFO),
    ("ureq_proto", LevelFilter::INFO),
];

/// A filter (to add beside the log filter) that caps the libraries of [`LIBRARY_CAPS`]
/// not named in the log filter `spec`; everything else up to `most` passes. `most` is the
/// log filter's own most verbose level: the two together keep its level hint, so `log`
/// records above it are still dropped at no cost.
pub fn library_caps(spec: &str, most: Option<LevelFilter>) -> Targets {
    let most = most.unwrap_or(LevelFilter::TRACE);
    let named = |lib: &str| {
        spec.split(',')
            .any(|d| d.trim().split(['=', '[']).next() == Some(lib))
    };
    LIBRARY_CAPS
        .iter()
        .filter(|(lib, _)| !named(lib))
        .fold(Targets::new().with_default(most), |t, (lib, cap)| {
            t.with_target(*lib, (*cap).min(most))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn a_server_reply_echoing_the_password_is_scrubbed() {
        learn("Echo-Pw-91xq");
        assert_eq!(
            scrub("530 Login incorrect for Echo-Pw-91xq (user ferry)"),
            "530 Login incorrect for *** (user ferry)"
        );
        assert_eq!(scrub("PASS Echo-Pw-91xq\r\n"), "PASS ***\r\n");
        assert!(matches!(scrub("nothing secret"), Cow::Borrowed(_)));
    }

    #[test]
    fn escaped_forms_are_scrubbed() {
        let pw = r#"q"uo\te-Pw-77"#;
        learn(pw);
        let imap = format!("a1 LOGIN \"alice\" \"{}\"", imap_quoted(pw));
        for text in [
            pw.to_string(),
            format!("{imap:?}"),
            serde_json::to_string(&imap).unwrap(),
            serde_json::to_string(&format!("{:?}", imap)).unwrap(),
            format!("ftp://u:{}@h/", percent_encoded(pw)),
        ] {
            let s = scrub(&text);
            assert!(s.contains(MASK), "{text} -> {s}");
            assert!(!s.contains("uo"), "{text} -> {s}");
        }
    }

    #[test]
    fn short_secrets_only_where_they_stand_alone() {
        learn("zq9");
        assert_eq!(scrub("PASS zq9"), "PASS ***");
        assert_eq!(scrub("pw=\"zq9\", next"), "pw=\"***\", next");
        assert_eq!(scrub("xzq9 zq9y zq9"), "xzq9 zq9y ***");
        learn("Long-Pw-zq9-44");
        assert_eq!(scrub("aLong-Pw-zq9-44b"), "a***b");
    }

    #[test]
    fn url_passwords_are_masked_in_messages() {
        assert_eq!(
            url_for_message("sftp://u:p@ss@h:21/x"),
            "sftp://u:***@h:21/x"
        );
        assert_eq!(url_for_message("ftp://u@h/x:y@z"), "ftp://u@h/x:y@z");
    }

    #[test]
    fn the_tracing_writer_scrubs_text_and_json_lines() {
        learn("Trace-Pw-5t6y");
        #[derive(Clone, Default)]
        struct Sink(Arc<Mutex<Vec<u8>>>);
        impl Write for Sink {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let sink = Sink::default();
        let s2 = sink.clone();
        let writer = Redacting::new(move || s2.clone());
        let text = tracing_subscriber::fmt()
            .with_writer(writer)
            .with_max_level(tracing::Level::TRACE)
            .finish();
        tracing::subscriber::with_default(text, || {
            tracing::trace!(reply = ?"x\"Trace-Pw-5t6y\"", "CC OUT: PASS Trace-Pw-5t6y");
        });
        let s3 = sink.clone();
        let json = tracing_subscriber::fmt()
            .json()
            .with_writer(Redacting::new(move || s3.clone()))
            .finish();
        tracing::subscriber::with_default(json, || {
            tracing::info!(error = "login \"Trace-Pw-5t6y\" refused", "failed");
        });
        let out = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        assert!(!out.contains("Trace-Pw-5t6y"), "{out}");
        assert_eq!(out.matches(MASK).count(), 3, "{out}");
    }

    #[test]
    fn a_secret_split_between_writes_is_scrubbed_and_long_output_is_written_by_lines() {
        learn("Split-Pw-8k1m");
        let mut out = Vec::new();
        {
            let mut w = Scrubbed::new(&mut out);
            write!(w, "PASS Split-").unwrap();
            writeln!(w, "Pw-8k1m").unwrap();
            let line = format!("{}\n", "x".repeat(1000));
            for _ in 0..100 {
                w.write_all(line.as_bytes()).unwrap();
            }
            assert!(w.buf.len() <= Scrubbed::<Vec<u8>>::HOLD, "{}", w.buf.len());
            write!(w, "end Split-Pw-8k1m").unwrap();
        }
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("PASS ***\n"), "{}", &text[..20]);
        assert!(text.ends_with("end ***"));
        assert_eq!(text.lines().count(), 102);
    }

    #[test]
    fn library_traces_are_capped_unless_named() {
        let t = library_caps("trace", Some(LevelFilter::TRACE));
        assert!(t.would_enable("suppaftp::sync_ftp::control", &tracing::Level::DEBUG));
        assert!(!t.would_enable("suppaftp::sync_ftp::control", &tracing::Level::TRACE));
        assert!(!t.would_enable("lettre::transport", &tracing::Level::DEBUG));
        assert!(t.would_enable("ferry::remote", &tracing::Level::TRACE));
        let named = library_caps("info,suppaftp=trace", Some(LevelFilter::TRACE));
        assert!(named.would_enable("suppaftp::sync_ftp::control", &tracing::Level::TRACE));
        assert!(!named.would_enable("async_imap::imap_stream", &tracing::Level::TRACE));
        // Never beyond the log filter's own level hint.
        let info = library_caps("info", Some(LevelFilter::INFO));
        assert!(!info.would_enable("ferry::remote", &tracing::Level::DEBUG));
        assert!(info.would_enable("lettre::transport", &tracing::Level::INFO));
        assert!(!info.would_enable("suppaftp::sync_ftp::control", &tracing::Level::DEBUG));
    }
}
