//! The database source keys of a job file: `[source] database = "postgres://..."` with its
//! `query`, `watermark`, `since` and `empty` (issue 16, source half; docs/databases-source.md).
//! Read with the job's TableReader so every problem has a file:line:col. Nothing here
//! connects: the URL is checked for its scheme and kept as written (secrets unresolved).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::job::toml_reader::{Doc, Str, TableReader, one_of};

/// Which database a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbKind {
    Postgres,
    /// MySQL and MariaDB (`mysql://`, `mariadb://`).
    Mysql,
    Sqlite,
}

impl DbKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DbKind::Postgres => "postgres",
            DbKind::Mysql => "mysql",
            DbKind::Sqlite => "sqlite",
        }
    }
}

/// What a run whose query returns no rows does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Empty {
    /// Nothing: no staged file, no outputs (the default).
    Skip,
    /// A staged file with the header only goes through the job as any other.
    Process,
}

/// A `[source] database = ...`.
#[derive(Debug, Clone)]
pub struct DatabaseSource {
    pub kind: DbKind,
    /// The URL as written: `${env:NAME}` / `${file:PATH}` are resolved at each connection.
    pub url: String,
    /// The secrets in the URL (its `${...}` references, or a password written in it), for
    /// [`crate::redact`].
    pub secrets: Vec<crate::secrets::Secret>,
    /// For `sqlite://`: the database file (relative paths resolved against the root).
    pub sqlite_path: Option<PathBuf>,
    pub query: String,
    /// The column whose highest value is kept and bound as `:since` at the next run.
    pub watermark: Option<String>,
    /// `:since` before the first run (default: the lowest value of its type).
    pub since: Option<String>,
    pub empty: Empty,
    pub ca_file: Option<PathBuf>,
    /// How often the query runs on a job without `schedule` or `every`.
    pub poll: Duration,
}

impl DatabaseSource {
    /// The URL for logs and `ferry status`: no password, no secret reference resolved.
    pub fn display(&self) -> String {
        crate::redact::url_for_message(&self.url)
    }
}

/// The kind of a database URL, or what is wrong with it.
pub fn kind_of(url: &str) -> Result<DbKind, String> {
    let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    match scheme.as_deref() {
        Some("postgres" | "postgresql") => Ok(DbKind::Postgres),
        Some("mysql" | "mariadb") => Ok(DbKind::Mysql),
        Some("sqlite") => Ok(DbKind::Sqlite),
        _ => Err(format!(
            "expected a database URL: \"postgres://user@host:5432/db\", \"mysql://...\", \"mariadb://...\" or \"sqlite://PATH\", found {:?}",
            crate::redact::url_for_message(url)
        )),
    }
}

/// Reads the database keys of `[source]` (the caller has seen `database`).
pub fn read_database(
    doc: &mut Doc<'_>,
    root: &Path,
    t: &mut TableReader<'_, '_>,
    poll: Duration,
) -> Option<DatabaseSource> {
    let url_s = t.str(doc, "database")?;
    let (kind, sqlite_path) = read_kind(doc, root, &url_s);
    let (query, watermark, since) = read_query(doc, t);
    let empty_raw = t.str(doc, "empty");
    let empty = one_of(
        doc,
        empty_raw,
        &[("skip", Empty::Skip), ("process", Empty::Process)],
        Empty::Skip,
    );
    let ca_file = t
        .str(doc, "ca_file")
        .map(|s| crate::job::absolute(&root.join(s.value)));
    let secrets = match url_secrets(&url_s.value) {
        Ok(s) => Some(s),
        Err(e) => {
            doc.error(url_s.span.clone(), &url_s.key, e);
            None
        }
    };
    Some(DatabaseSource {
        kind: kind?,
        secrets: secrets?,
        url: url_s.value,
        sqlite_path,
        query: query?,
        watermark: watermark.map(|w| w.value),
        since: since.map(|s| s.value),
        empty: empty?,
        ca_file,
        poll,
    })
}

/// The kind of database the URL names, and for SQLite its file (relative to `root`).
/// The kind is `None` when wrong (reported).
fn read_kind(doc: &mut Doc<'_>, root: &Path, url_s: &Str) -> (Option<DbKind>, Option<PathBuf>) {
    let kind = match kind_of(&url_s.value) {
        Ok(k) => k,
        Err(e) => {
            doc.error(url_s.span.clone(), &url_s.key, e);
            return (None, None);
        }
    };
    if kind != DbKind::Sqlite {
        return (Some(kind), None);
    }
    let p = url_s.value.split_once("://").map_or("", |(_, p)| p);
    let p = p.split('?').next().unwrap_or("");
    if p.is_empty() {
        doc.error(
            url_s.span.clone(),
            &url_s.key,
            "expected the database file after `sqlite://`, e.g. \"sqlite://samples/orders.sqlite\"",
        );
        return (Some(kind), None);
    }
    (Some(kind), Some(crate::job::absolute(&root.join(p))))
}

/// `query` (required, checked), and `watermark` with its first value `since`: a query
/// with a watermark must use `:since`.
fn read_query(
    doc: &mut Doc<'_>,
    t: &mut TableReader<'_, '_>,
) -> (Option<String>, Option<Str>, Option<Str>) {
    let query = t.str(doc, "query");
    if query.is_none() {
        doc.error(
            t.span.clone(),
            "source.query",
            "missing `query`: the SELECT to run, e.g. `query = \"SELECT * FROM orders WHERE changed_at > :since ORDER BY changed_at\"`",
        );
    }
    let query = query.and_then(|q| check_query(doc, q));
    let watermark = t.str(doc, "watermark");
    let since = t.str(doc, "since");
    if let Some(s) = &since
        && watermark.is_none()
    {
        doc.error(
            s.span.clone(),
            &s.key,
            "`since` is the first value of the watermark: it only counts with `watermark`",
        );
    }
    if let (Some(w), Some(q)) = (&watermark, &query)
        && !crate::job::database_source::mentions_since(q)
    {
        doc.error(
            w.span.clone(),
            &w.key,
            "with `watermark`, the query must use `:since` (e.g. `WHERE changed_at > :since`): otherwise every run reads the same rows again",
        );
    }
    (query, watermark, since)
}

/// The `${env:NAME}` / `${file:PATH}` references of a URL, and a password written in it
/// as a literal (scrubbed all the same; better kept out of job files).
pub fn url_secrets(url: &str) -> Result<Vec<crate::secrets::Secret>, String> {
    let mut out = Vec::new();
    let mut rest = url;
    while let Some(start) = rest.find("${") {
        let len = rest[start..]
            .find('}')
            .ok_or("a `${` without its `}` in the URL")?;
        out.push(crate::secrets::Secret::parse(&rest[start..=start + len])?);
        rest = &rest[start + len + 1..];
    }
    let authority = url.split_once("://").map_or("", |(_, r)| r);
    let authority = authority.split('/').next().unwrap_or("");
    if let Some((userinfo, _)) = authority.rsplit_once('@')
        && let Some((_, pw)) = userinfo.split_once(':')
        && !pw.is_empty()
        && !pw.contains("${")
    {
        out.push(crate::secrets::Secret::Literal(
            super::remote::percent_decode(pw).unwrap_or_else(|_| pw.to_string()),
        ));
    }
    Ok(out)
}

fn check_query(doc: &mut Doc<'_>, q: Str) -> Option<String> {
    if q.value.trim().is_empty() {
        doc.error(
            q.span.clone(),
            &q.key,
            "expected a SELECT, found an empty string",
        );
        return None;
    }
    if let Some(name) = crate::job::database_source::other_parameter(&q.value) {
        doc.error(
            q.span.clone(),
            &q.key,
            format!("the query may use `:since` only (its value is bound, never pasted into the text); found `:{name}`"),
        );
        return None;
    }
    Some(q.value)
}

/// A piece of a query: text to keep, or the `:since` parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece<'a> {
    Text(&'a str),
    Since,
}

/// Every `:name` parameter of a query (its byte range and name), skipping string literals
/// ('...', "..." and `...` identifiers, PostgreSQL's $tag$...$tag$), comments and `::`
/// casts, so that a `:since` inside a literal stays text.
fn parameters(sql: &str) -> Vec<(std::ops::Range<usize>, &str)> {
    let b = sql.as_bytes();
    let word_end = |from: usize| {
        b[from..]
            .iter()
            .position(|c| !(c.is_ascii_alphanumeric() || *c == b'_'))
            .map_or(b.len(), |p| from + p)
    };
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            q @ (b'\'' | b'"' | b'`') => {
                i += 1;
                while i < b.len() {
                    if b[i] == b'\\' && q == b'\'' {
                        // MySQL's backslash escapes; harmless elsewhere (it only skips a byte
                        // inside a literal, where no parameter is looked for).
                        i += 2;
                    } else if b[i] == q && b.get(i + 1) == Some(&q) {
                        i += 2;
                    } else if b[i] == q {
                        break;
                    } else {
                        i += 1;
                    }
                }
                i += 1;
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i < b.len() && !(b[i] == b'*' && b.get(i + 1) == Some(&b'/')) {
                    i += 1;
                }
                i += 2;
            }
            b'$' => {
                // $tag$ ... $tag$ (a tag of letters, digits and `_`, possibly empty; `$1` is
                // a positional parameter, not a tag).
                let e = word_end(i + 1);
                if e < b.len() && b[e] == b'$' && !b.get(i + 1).is_some_and(u8::is_ascii_digit) {
                    let tag = &sql[i..=e];
                    i = sql[e + 1..]
                        .find(tag)
                        .map_or(b.len(), |p| e + 1 + p + tag.len());
                } else {
                    i += 1;
                }
            }
            b':' if b.get(i + 1) == Some(&b':') => i += 2,
            b':' if b
                .get(i + 1)
                .is_some_and(|c| c.is_ascii_alphabetic() || *c == b'_') =>
            {
                let e = word_end(i + 1);
                out.push((i..e, &sql[i + 1..e]));
                i = e;
            }
            _ => i += 1,
        }
    }
    out
}

/// Splits a query at its `:since` parameters (outside literals and comments).
pub fn pieces(sql: &str) -> Vec<Piece<'_>> {
    let mut out = Vec::new();
    let mut start = 0;
    for (range, _) in parameters(sql).into_iter().filter(|(_, n)| *n == "since") {
        out.push(Piece::Text(&sql[start..range.start]));
        out.push(Piece::Since);
        start = range.end;
    }
    out.push(Piece::Text(&sql[start..]));
    out
}

/// Whether the query binds `:since` anywhere.
pub fn mentions_since(sql: &str) -> bool {
    parameters(sql).iter().any(|(_, n)| *n == "since")
}

/// A `:name` parameter other than `:since` outside literals (a typo, or a parameter ferry
/// does not bind), if any.
pub fn other_parameter(sql: &str) -> Option<String> {
    parameters(sql)
        .into_iter()
        .find(|(_, n)| *n != "since")
        .map(|(_, n)| n.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(sql: &str) -> String {
        pieces(sql)
            .into_iter()
            .map(|p| match p {
                Piece::Text(t) => t.to_string(),
                Piece::Since => "?".to_string(),
            })
            .collect()
    }

    #[test]
    fn since_is_found_outside_literals_and_comments_only() {
        let cases = [
            (
                "SELECT * FROM t WHERE a > :since ORDER BY a",
                "SELECT * FROM t WHERE a > ? ORDER BY a",
            ),
            (
                "SELECT ':since' FROM t WHERE a > :since",
                "SELECT ':since' FROM t WHERE a > ?",
            ),
            ("SELECT \":since\" FROM t", "SELECT \":since\" FROM t"),
            (
                "SELECT 'it''s :since' , :since",
                "SELECT 'it''s :since' , ?",
            ),
            (
                "SELECT a::text FROM t WHERE b > :since",
                "SELECT a::text FROM t WHERE b > ?",
            ),
            ("SELECT $$ :since $$, :since", "SELECT $$ :since $$, ?"),
            (
                "SELECT $q$ :since $q$ -- :since\n, :since /* :since */",
                "SELECT $q$ :since $q$ -- :since\n, ? /* :since */",
            ),
            ("SELECT :since_x, :since", "SELECT :since_x, ?"),
            ("SELECT 'a\\' :since', :since", "SELECT 'a\\' :since', ?"),
            ("WHERE a > :since OR b > :since", "WHERE a > ? OR b > ?"),
            ("SELECT `:since` FROM t", "SELECT `:since` FROM t"),
        ];
        for (sql, want) in cases {
            assert_eq!(render(sql), want, "{sql}");
        }
        assert!(mentions_since("x > :since"));
        assert!(!mentions_since("x > ':since'"));
    }

    #[test]
    fn other_parameters_are_found() {
        assert_eq!(other_parameter("a > :sinse"), Some("sinse".into()));
        assert_eq!(other_parameter("a > :since"), None);
        assert_eq!(other_parameter("a::date > :since AND b = ':x'"), None);
        assert_eq!(other_parameter("a = '12:30'"), None);
    }

    #[test]
    fn urls_name_their_kind() {
        assert_eq!(kind_of("postgres://u@h/db"), Ok(DbKind::Postgres));
        assert_eq!(kind_of("postgresql://u@h/db"), Ok(DbKind::Postgres));
        assert_eq!(kind_of("mariadb://u@h/db"), Ok(DbKind::Mysql));
        assert_eq!(kind_of("mysql://u@h/db"), Ok(DbKind::Mysql));
        assert_eq!(kind_of("sqlite://x.db"), Ok(DbKind::Sqlite));
        let e = kind_of("oracle://u:secretpw@h/db").unwrap_err();
        assert!(!e.contains("secretpw"), "{e}");
    }

    #[test]
    fn url_secrets_are_found() {
        use crate::secrets::Secret;
        assert_eq!(
            url_secrets("postgres://u:${env:PW}@h/db").unwrap(),
            [Secret::Env("PW".into())]
        );
        assert_eq!(
            url_secrets("mysql://u:p%40ss@h/db").unwrap(),
            [Secret::Literal("p@ss".into())]
        );
        assert!(url_secrets("postgres://u@h/db").unwrap().is_empty());
        assert!(url_secrets("postgres://u:${nope}@h/db").is_err());
    }
}
