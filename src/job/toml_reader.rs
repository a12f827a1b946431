//! A small reader over toml's spanned document tree that collects *every* problem.
//!
//! serde stops at the first error in a file; admins want all of them, each with
//! file:line:column, the key, what was expected and what was found. So job files are parsed
//! into toml's [`DeTable`] (which keeps spans) and read key by key here; every read that goes
//! wrong records a [`Diag`] and carries on.

use std::collections::BTreeSet;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// One problem in one job file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diag {
    pub file: PathBuf,
    pub line: usize,
    pub col: usize,
    /// The dotted key, like `output[1].name`; empty for a whole-file problem.
    pub key: String,
    pub message: String,
}

impl fmt::Display for Diag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file.display(), self.line, self.col)?;
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)
    }
}

/// A string value with where it stands in the file.
#[derive(Debug, Clone)]
pub struct Str {
    pub value: String,
    pub span: Range<usize>,
    pub key: String,
}

/// The file being read and the problems found so far.
pub struct Doc<'s> {
    pub file: &'s Path,
    pub src: &'s str,
    pub diags: Vec<Diag>,
    /// Values read from another file (ferry.toml's job defaults), whose spans start at its
    /// `base`: a problem with one of them is reported in that file.
    pub also: Option<Also<'s>>,
}

/// Another file whose values a [`Doc`] reads, its spans shifted by `base`.
#[derive(Debug, Clone, Copy)]
pub struct Also<'s> {
    pub file: &'s Path,
    pub src: &'s str,
    pub base: usize,
}

/// Line and column (1-based, in characters) of a byte offset of `src`.
fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(src.len());
    let before = &src[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

impl<'s> Doc<'s> {
    pub fn new(file: &'s Path, src: &'s str) -> Self {
        Doc {
            file,
            src,
            diags: Vec::new(),
            also: None,
        }
    }

    /// Line and column (1-based, in characters) of a byte offset in this file; a value
    /// from the [`Also`] file counts as line 1, column 1 (as a built-in default does).
    pub fn position(&self, offset: usize) -> (usize, usize) {
        match self.also {
            Some(a) if offset >= a.base => (1, 1),
            _ => line_col(self.src, offset),
        }
    }

    /// The text of a span, in whichever file it is.
    fn text(&self, span: Range<usize>) -> Option<&'s str> {
        match self.also {
            Some(a) if span.start >= a.base => a.src.get(span.start - a.base..span.end - a.base),
            _ => self.src.get(span),
        }
    }

    pub fn error(&mut self, span: Range<usize>, key: &str, message: impl Into<String>) {
        let (file, (line, col)) = match self.also {
            Some(a) if span.start >= a.base => (a.file, line_col(a.src, span.start - a.base)),
            _ => (self.file, line_col(self.src, span.start)),
        };
        self.diags.push(Diag {
            file: file.to_path_buf(),
            line,
            col,
            key: key.to_string(),
            message: message.into(),
        });
    }

    /// An error at a byte range *inside* a string value, when the string is written without
    /// escapes (so offsets map one to one); otherwise at the value's start.
    pub fn error_in_str(&mut self, s: &Str, inner: Range<usize>, message: impl Into<String>) {
        let raw = self.text(s.span.clone()).unwrap_or("");
        let quote = if raw.starts_with("'''") || raw.starts_with("\"\"\"") {
            3
        } else {
            1
        };
        let start = if raw.get(quote..quote + s.value.len()) == Some(s.value.as_str()) {
            s.span.start + quote + inner.start
        } else {
            s.span.start
        };
        self.error(start..start, &s.key, message);
    }
}

/// Reads one TOML table; remembers which keys were read so that [`TableReader::finish`] can
/// report the unknown ones.
pub struct TableReader<'a, 'i> {
    pub path: String,
    pub span: Range<usize>,
    map: &'a DeTable<'i>,
    read: BTreeSet<String>,
}

fn type_name(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

fn found(v: &DeValue<'_>) -> String {
    match v {
        DeValue::String(s) => format!("the string {s:?}"),
        DeValue::Integer(i) => format!("the integer {i}"),
        DeValue::Float(x) => format!("the float {x}"),
        DeValue::Boolean(b) => format!("the boolean {b}"),
        other => type_name(other).to_string(),
    }
}

impl<'a, 'i> TableReader<'a, 'i> {
    pub fn new(path: impl Into<String>, span: Range<usize>, map: &'a DeTable<'i>) -> Self {
        TableReader {
            path: path.into(),
            span,
            map,
            read: BTreeSet::new(),
        }
    }

    fn key_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{}", self.path, key)
        }
    }

    fn get(&mut self, key: &str) -> Option<&'a Spanned<DeValue<'i>>> {
        self.read.insert(key.to_string());
        self.map.get(key)
    }

    /// The span of a key's value, for errors found later about it.
    pub fn span_of(&self, key: &str) -> Range<usize> {
        self.map.get(key).map_or(self.span.clone(), |v| v.span())
    }

    pub fn str(&mut self, doc: &mut Doc<'_>, key: &str) -> Option<Str> {
        let v = self.get(key)?;
        match v.get_ref() {
            DeValue::String(s) => Some(Str {
                value: s.to_string(),
                span: v.span(),
                key: self.key_path(key),
            }),
            other => {
                doc.error(
                    v.span(),
                    &self.key_path(key),
                    format!("expected a string, found {}", found(other)),
                );
                None
            }
        }
    }

    pub fn bool(&mut self, doc: &mut Doc<'_>, key: &str) -> Option<bool> {
        let v = self.get(key)?;
        match v.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            other => {
                doc.error(
                    v.span(),
                    &self.key_path(key),
                    format!("expected true or false, found {}", found(other)),
                );
                None
            }
        }
    }

    pub fn uint(&mut self, doc: &mut Doc<'_>, key: &str) -> Option<u64> {
        let v = self.get(key)?;
        let parsed = match v.get_ref() {
            DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
                .ok()
                .and_then(|n| u64::try_from(n).ok()),
            _ => None,
        };
        if parsed.is_none() {
            doc.error(
                v.span(),
                &self.key_path(key),
                format!(
                    "expected a whole number of 0 or more, found {}",
                    found(v.get_ref())
                ),
            );
        }
        parsed
    }

    /// A list of strings; a single string is taken as a list of one.
    pub fn str_list(&mut self, doc: &mut Doc<'_>, key: &str) -> Option<Vec<Str>> {
        let v = self.get(key)?;
        let key_path = self.key_path(key);
        match v.get_ref() {
            DeValue::String(s) => Some(vec![Str {
                value: s.to_string(),
                span: v.span(),
                key: key_path,
            }]),
            DeValue::Array(items) => {
                let mut out = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    match item.get_ref() {
                        DeValue::String(s) => out.push(Str {
                            value: s.to_string(),
                            span: item.span(),
                            key: format!("{key_path}[{i}]"),
                        }),
                        other => doc.error(
                            item.span(),
                            &format!("{key_path}[{i}]"),
                            format!("expected a string, found {}", found(other)),
                        ),
                    }
                }
                Some(out)
            }
            other => {
                doc.error(
                    v.span(),
                    &key_path,
                    format!("expected a list of strings, found {}", found(other)),
                );
                None
            }
        }
    }

    pub fn table(&mut self, doc: &mut Doc<'_>, key: &str) -> Option<TableReader<'a, 'i>> {
        let v = self.get(key)?;
        match v.get_ref() {
            DeValue::Table(t) => Some(TableReader::new(self.key_path(key), v.span(), t)),
            other => {
                doc.error(
                    v.span(),
                    &self.key_path(key),
                    format!(
                        "expected a table (`[{}]`), found {}",
                        self.key_path(key),
                        found(other)
                    ),
                );
                None
            }
        }
    }

    /// An array of tables (`[[key]]`); a single table is taken as an array of one.
    pub fn tables(&mut self, doc: &mut Doc<'_>, key: &str) -> Vec<TableReader<'a, 'i>> {
        let Some(v) = self.get(key) else {
            return Vec::new();
        };
        let key_path = self.key_path(key);
        match v.get_ref() {
            DeValue::Table(t) => vec![TableReader::new(key_path, v.span(), t)],
            DeValue::Array(items) => {
                let mut out = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    match item.get_ref() {
                        DeValue::Table(t) => out.push(TableReader::new(
                            format!("{key_path}[{}]", i + 1),
                            item.span(),
                            t,
                        )),
                        other => doc.error(
                            item.span(),
                            &format!("{key_path}[{}]", i + 1),
                            format!("expected a table, found {}", found(other)),
                        ),
                    }
                }
                out
            }
            other => {
                doc.error(
                    v.span(),
                    &key_path,
                    format!("expected `[[{key_path}]]` tables, found {}", found(other)),
                );
                Vec::new()
            }
        }
    }

    /// A table of string values (`[input.fields]`, `[input.namespaces]`), in file order.
    pub fn str_map(&mut self, doc: &mut Doc<'_>, key: &str) -> Option<Vec<(String, Str)>> {
        let mut t = self.table(doc, key)?;
        let mut out = Vec::new();
        let keys: Vec<String> = t.map.iter().map(|(k, _)| k.get_ref().to_string()).collect();
        for k in keys {
            if let Some(v) = t.str(doc, &k) {
                out.push((k, v));
            }
        }
        Some(out)
    }

    /// Every key of the table, in file order.
    pub fn keys(&self) -> Vec<String> {
        self.map
            .iter()
            .map(|(k, _)| k.get_ref().to_string())
            .collect()
    }

    /// Whether this key holds a table (without marking it read).
    pub fn is_table(&self, key: &str) -> bool {
        self.map
            .get(key)
            .is_some_and(|v| matches!(v.get_ref(), DeValue::Table(_)))
    }

    /// Whether the table has this key (without marking it read).
    pub fn has(&self, key: &str) -> bool {
        self.map.get(key).is_some()
    }

    /// [`TableReader::finish`] with the keys declared for a `table` of this `kind` (see
    /// [`super::keys::known`]): `t.finish_as(doc, "source", "mailbox")`.
    pub fn finish_as(self, doc: &mut Doc<'_>, table: &str, kind: &str) {
        #[cfg(test)]
        super::keys::tests::record_read(table, kind, &self.read);
        self.finish(doc, &super::keys::known(table, kind));
    }

    /// Reports every key of this table that was never read, with a suggestion when one of
    /// `known` is close.
    pub fn finish(self, doc: &mut Doc<'_>, known: &[&str]) {
        for (k, _) in self.map.iter() {
            if self.read.contains(k.get_ref().as_ref()) {
                continue;
            }
            let name = k.get_ref();
            if known.contains(&name.as_ref()) {
                // Known to the table, but not read for this kind (an FTP key beside
                // `webdav`, say): "did you mean" itself would be absurd.
                let kind = self.path.split(['[', '.']).next().unwrap_or("table");
                let message = format!(
                    "`{name}` does not apply here: it belongs to another kind of {kind} (see the README's tables of keys)"
                );
                doc.error(k.span(), &self.key_path(name), message);
                continue;
            }
            let mut message = format!("unknown key `{name}`");
            if let Some(close) = known
                .iter()
                .filter(|c| strsim::levenshtein(c, name) <= 2 || c.contains(name.as_ref()))
                .min_by_key(|c| strsim::levenshtein(c, name))
            {
                message.push_str(&format!("; did you mean `{close}`?"));
            }
            let where_ = if self.path.is_empty() {
                "at the top level".to_string()
            } else {
                format!("in [{}]", self.path)
            };
            message.push_str(&format!(
                " (expected one of {} {where_})",
                known
                    .iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            doc.error(k.span(), &self.key_path(name), message);
        }
    }
}

/// One of a closed set of words (`exists = "unique"`), or `default` when absent; anything
/// else is reported with the choices.
pub fn one_of<T: Copy>(
    doc: &mut Doc<'_>,
    s: Option<Str>,
    choices: &[(&str, T)],
    default: T,
) -> Option<T> {
    let Some(s) = s else { return Some(default) };
    if let Some((_, v)) = choices.iter().find(|(n, _)| *n == s.value) {
        return Some(*v);
    }
    doc.error(
        s.span.clone(),
        &s.key,
        format!(
            "expected one of {}, found {:?}",
            choices
                .iter()
                .map(|(n, _)| format!("\"{n}\""))
                .collect::<Vec<_>>()
                .join(", "),
            s.value
        ),
    );
    None
}

/// Parses a duration like `2s`, `500ms`, `1m30s`, `3h`, `1d` or `0`: the one duration parser
/// of job files and the command line. Not humantime: it also takes `2 secs`, `1M` (a month)
/// and `1y`, which job files have never accepted.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let t = text.trim();
    if t == "0" {
        return Ok(std::time::Duration::ZERO);
    }
    let mut total = std::time::Duration::ZERO;
    let mut rest = t;
    if rest.is_empty() {
        return Err("expected a duration like \"2s\", \"500ms\", \"1m30s\" or \"3h\"".into());
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit_end = rest[digits..]
            .find(|c: char| c.is_ascii_digit())
            .map_or(rest.len(), |i| digits + i);
        let (num, unit) = (&rest[..digits], rest[digits..unit_end].trim());
        let n: u64 = num.parse().map_err(|_| {
            format!(
                "expected a duration like \"2s\", \"500ms\", \"1m30s\" or \"3h\", found {text:?}"
            )
        })?;
        let unit_ms: u64 = match unit {
            "ms" => 1,
            "s" | "sec" => 1000,
            "m" | "min" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => {
                return Err(format!(
                    "unknown unit {unit:?} in {text:?}; use ms, s, m, h or d (\"2s\", \"500ms\", \"1m30s\")"
                ));
            }
        };
        total += std::time::Duration::from_millis(n.saturating_mul(unit_ms));
        rest = &rest[unit_end..];
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("3h"), Ok(Duration::from_secs(3 * 3600)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert!(parse_duration("2 secs").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn positions_are_one_based_characters() {
        let d = Doc::new(Path::new("x.toml"), "a = 1\nbé = \"x\"\n");
        assert_eq!(d.position(0), (1, 1));
        assert_eq!(d.position(6), (2, 1));
        assert_eq!(d.position(11), (2, 5));
    }
}
