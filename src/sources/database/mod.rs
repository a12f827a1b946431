//! Database sources (issue 16, source half; docs/databases-source.md): each run executes
//! the job's query and stages its rows as one CSV file, which the engine then processes as
//! any original (transform, outputs, disposal), so no guarantee is argued again here.
//!
//! Theory of operation, per run:
//! 1. [`settle`]: the previous staged run of the job is looked up in the journal. Still
//!    being processed (or queued for a retry): this run does nothing, so rows are never
//!    staged twice. Done: its watermark becomes the job's. Failed (the file went to the
//!    error folder): the watermark stays where it was, so this run reads the same rows again.
//! 2. The query runs with `:since` bound to the watermark (the `wm_after` of the job's
//!    newest `done` run, else `since`, else the lowest value of its type); the rows are
//!    streamed (never held in memory) into `staging/.ferry-part-db-*` as CSV with a header,
//!    and the highest watermark value seen is kept.
//! 3. The part is fsynced, the run recorded (`db_source_runs`, state `fetched`, waited),
//!    the part renamed to its staged name and the folder fsynced (state `staged`).
//! 4. The job's runner takes the staged file like a file dropped in a folder.
//!
//! A crash before 3 leaves a part file, removed at the next start; between the record and
//! the rename, [`recover`] finishes the rename. The watermark only moves once the journal
//! says the staged file is `done`, which is after every output is committed.
//!
//! REST sources (`[source] http = ...`, [`crate::sources::rest`]) run the same way: only
//! step 2 differs (pages of JSON records into a JSON-lines part), so this lifecycle, the
//! `db_source_runs` table and the scheduling are theirs too ([`Polled`]).

pub mod connect;
pub mod rows;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures_util::TryStreamExt;
use rusqlite::OptionalExtension;
use rusqlite::types::Value;
use sqlx::{Column, Executor, Row, Statement, TypeInfo};

use crate::fsutil;
use crate::job::Job;
use crate::job::database_source::{DatabaseSource, DbKind, Empty, Piece, pieces};
use crate::job::rest_source::RestSource;
use crate::journal::{Journal, now_ms};
use rows::Kind;

fn text(s: &str) -> Value {
    Value::Text(s.to_string())
}

fn opt(s: Option<&str>) -> Value {
    s.map_or(Value::Null, text)
}

/// A source whose runs each stage one file: a database query, or a REST service's
/// records. Everything but fetching ([`fetch_database`], [`crate::sources::rest::fetch`])
/// is shared.
#[derive(Clone, Copy)]
pub enum Polled<'a> {
    Database(&'a DatabaseSource),
    Rest(&'a RestSource),
}

/// What the log says of a polled source's runs.
struct Words {
    staged: &'static str,
    pending: &'static str,
    empty: &'static str,
    failed: &'static str,
    back: &'static str,
    delivered: &'static str,
    not_delivered: &'static str,
}

const DB_WORDS: Words = Words {
    staged: "Query rows staged.",
    pending: "The previous run's rows are still being processed; no query this time.",
    empty: "The query returned no rows; nothing to do.",
    failed: "The query failed; it runs again at the next run.",
    back: "The database answers again.",
    delivered: "The query's rows are delivered; the watermark advances.",
    not_delivered: "The query's rows were not delivered; the next run reads them again.",
};

const REST_WORDS: Words = Words {
    staged: "REST records staged.",
    pending: "The previous run's records are still being processed; no request this time.",
    empty: "The service returned no records; nothing to do.",
    failed: "The request failed; it is tried again at the next run.",
    back: "The service answers again.",
    delivered: "The service's records are delivered; the watermark advances.",
    not_delivered: "The service's records were not delivered; the next run reads them again.",
};

impl<'a> Polled<'a> {
    /// The job's polled source, if it has one.
    pub fn of(job: &'a Job) -> Option<Polled<'a>> {
        match (&job.source.database, &job.source.http) {
            (Some(d), _) => Some(Polled::Database(d)),
            (None, Some(r)) => Some(Polled::Rest(r)),
            (None, None) => None,
        }
    }

    fn display(self) -> String {
        match self {
            Polled::Database(d) => d.display(),
            Polled::Rest(r) => r.display(),
        }
    }

    fn poll(self) -> Duration {
        match self {
            Polled::Database(d) => d.poll,
            Polled::Rest(r) => r.poll,
        }
    }

    fn watermark(self) -> Option<&'a str> {
        match self {
            Polled::Database(d) => d.watermark.as_deref(),
            Polled::Rest(r) => r.watermark.as_deref(),
        }
    }

    fn since(self) -> Option<&'a str> {
        match self {
            Polled::Database(d) => d.since.as_deref(),
            Polled::Rest(r) => r.since.as_deref(),
        }
    }

    /// What `db_source_runs.query` keeps: the query, or the URL as written.
    fn request(self) -> &'a str {
        match self {
            Polled::Database(d) => &d.query,
            Polled::Rest(r) => &r.url,
        }
    }

    fn skip_empty(self) -> bool {
        match self {
            Polled::Database(d) => d.empty == Empty::Skip,
            Polled::Rest(_) => true,
        }
    }

    fn extension(self) -> &'static str {
        match self {
            Polled::Database(_) => "csv",
            Polled::Rest(_) => "jsonl",
        }
    }

    fn words(self) -> &'static Words {
        match self {
            Polled::Database(_) => &DB_WORDS,
            Polled::Rest(_) => &REST_WORDS,
        }
    }

    /// The history event's text of a settled run.
    fn detail(self, run: &RunRow, watermark: &str) -> String {
        match self {
            Polled::Database(d) => format!(
                "{} row(s) from {}; {watermark}; query: {}",
                run.rows,
                d.display(),
                run.query.split_whitespace().collect::<Vec<_>>().join(" ")
            ),
            Polled::Rest(r) => format!("{} record(s) from {}; {watermark}", run.rows, r.display()),
        }
    }
}

fn polled(job: &Job) -> Polled<'_> {
    Polled::of(job).expect("a job with a database or REST source")
}

/// What a fetch staged in the part file (fsynced): the record count and the highest
/// watermark value seen, with how such values compare.
pub struct Fetched {
    pub rows: u64,
    pub max: Option<String>,
    pub kind: Kind,
}

/// What a run did.
#[derive(Debug)]
pub enum Ran {
    /// The previous run's file is still being processed: nothing was queried.
    Pending,
    /// The query returned no rows (and `empty = "skip"`).
    Empty,
    Staged {
        rows: u64,
        path: PathBuf,
    },
}

/// A staged run's record.
struct RunRow {
    id: i64,
    staged: String,
    size: i64,
    mtime_ns: i64,
    query: String,
    column: Option<String>,
    before: Option<String>,
    after: Option<String>,
    rows: i64,
}

/// At start: finishes renames the journal recorded, removes part files it did not.
pub fn recover(job: &Job, journal: &Journal) -> anyhow::Result<()> {
    let staging = &job.source.folder;
    fsutil::create_dir_all_durable(staging)?;
    let rows: Vec<(i64, String, String)> = journal.read(|c| {
        let mut st = c.prepare(
            "SELECT id, staged, part FROM db_source_runs WHERE job = ?1 AND state = 'fetched'",
        )?;
        st.query_map([&job.name], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect()
    })?;
    for (id, staged, part) in rows {
        let staged = PathBuf::from(staged);
        let part = staging.join(part);
        let state = if fsutil::exists(&staged) {
            "staged"
        } else if fsutil::exists(&part) && fsutil::rename_noreplace(&part, &staged).is_ok() {
            fsutil::sync_dir(staging)?;
            tracing::info!(file = %staged.display(), "Finished staging a query's rows fetched before the stop.");
            "staged"
        } else {
            "lost"
        };
        journal.exec(
            "UPDATE db_source_runs SET state = ?2 WHERE id = ?1",
            vec![Value::Integer(id), text(state)],
            false,
        )?;
    }
    journal.flush()?;
    for e in std::fs::read_dir(staging)?.flatten() {
        if e.file_name().to_string_lossy().starts_with(PART_PREFIX) {
            let _ = std::fs::remove_file(e.path());
        }
    }
    Ok(())
}

const PART_PREFIX: &str = ".ferry-part-db-";

/// Looks at the job's staged runs: those the engine finished are marked `done` (the
/// watermark advances) or `failed` (it does not), with an event in the file's history.
/// Returns whether a staged run is still waiting to be processed.
pub fn settle(job: &Job, journal: &Journal) -> anyhow::Result<bool> {
    let staged: Vec<RunRow> = journal.read(|c| {
        let mut st = c.prepare(
            "SELECT id, staged, size, mtime_ns, query, wm_column, wm_before, wm_after, rows
             FROM db_source_runs WHERE job = ?1 AND state IN ('staged', 'fetched') ORDER BY id",
        )?;
        st.query_map([&job.name], |r| {
            Ok(RunRow {
                id: r.get(0)?,
                staged: r.get(1)?,
                size: r.get(2)?,
                mtime_ns: r.get(3)?,
                query: r.get(4)?,
                column: r.get(5)?,
                before: r.get(6)?,
                after: r.get(7)?,
                rows: r.get(8)?,
            })
        })?
        .collect()
    })?;
    let mut pending = false;
    for run in staged {
        let state: Option<String> = journal.read(|c| {
            c.query_row(
                "SELECT state FROM files WHERE job = ?1 AND path = ?2 AND size = ?3 AND mtime_ns = ?4 ORDER BY id DESC LIMIT 1",
                rusqlite::params![job.name, run.staged, run.size, run.mtime_ns],
                |r| r.get(0),
            )
            .optional()
        })?;
        let outcome = match state.as_deref() {
            Some("done") => "done",
            Some("failed") => "failed",
            None if !fsutil::exists(Path::new(&run.staged)) => "lost",
            _ => {
                pending = true;
                continue;
            }
        };
        let watermark = match (&run.column, outcome) {
            (None, _) => "no watermark".to_string(),
            (Some(c), "done") => format!(
                "watermark {c}: {} -> {}",
                run.before.as_deref().unwrap_or("(first run)"),
                run.after.as_deref().unwrap_or("(none)")
            ),
            (Some(c), _) => format!(
                "watermark {c} stays {}",
                run.before.as_deref().unwrap_or("(first run)")
            ),
        };
        let detail = polled(job).detail(&run, &watermark);
        journal.exec(
            "UPDATE db_source_runs SET state = ?2, finished_at = ?3 WHERE id = ?1",
            vec![
                Value::Integer(run.id),
                text(outcome),
                Value::Integer(now_ms()),
            ],
            false,
        )?;
        journal.exec(
            "INSERT INTO events (file_id, at, state, detail)
             SELECT id, ?5, 'query', ?6 FROM files WHERE job = ?1 AND path = ?2 AND size = ?3 AND mtime_ns = ?4
             ORDER BY id DESC LIMIT 1",
            vec![
                text(&job.name),
                text(&run.staged),
                Value::Integer(run.size),
                Value::Integer(run.mtime_ns),
                Value::Integer(now_ms()),
                Value::Text(crate::redact::scrub(&detail).into_owned()),
            ],
            false,
        )?;
        match outcome {
            "done" => {
                tracing::info!(file = %run.staged, rows = run.rows, watermark = run.after.as_deref().unwrap_or("-"), "{}", polled(job).words().delivered)
            }
            _ => {
                tracing::warn!(file = %run.staged, rows = run.rows, watermark = run.before.as_deref().unwrap_or("-"), outcome, "{}", polled(job).words().not_delivered)
            }
        }
    }
    journal.flush()?;
    Ok(pending)
}

/// The watermark the next run binds: that of the job's newest `done` run for this column.
fn current_watermark(job: &Job, journal: &Journal, column: &str) -> anyhow::Result<Option<String>> {
    Ok(journal.read(|c| {
        c.query_row(
            "SELECT wm_after FROM db_source_runs WHERE job = ?1 AND wm_column = ?2 AND state = 'done' AND wm_after IS NOT NULL ORDER BY id DESC LIMIT 1",
            [&job.name, column],
            |r| r.get(0),
        )
        .optional()
    })?)
}

/// Where the rows go while the query runs: a CSV part file, the row count and the highest
/// watermark value seen.
struct Sink {
    out: csv::Writer<std::io::BufWriter<std::fs::File>>,
    wm_index: Option<usize>,
    wm_kind: Kind,
    max: Option<String>,
    rows: u64,
}

impl Sink {
    fn header(&mut self, names: &[String], watermark: Option<&str>) -> Result<(), String> {
        if let Some(w) = watermark {
            self.wm_index = names.iter().position(|n| n.eq_ignore_ascii_case(w));
            if self.wm_index.is_none() {
                return Err(format!(
                    "the watermark column {w:?} is not among the query's columns ({})",
                    names.join(", ")
                ));
            }
        }
        self.out
            .write_record(names)
            .map_err(|e| format!("staging: {e}"))
    }

    fn field(&mut self, i: usize, v: Option<&str>) -> Result<(), String> {
        if Some(i) == self.wm_index
            && let Some(v) = v
            && self
                .max
                .as_deref()
                .is_none_or(|m| rows::higher(self.wm_kind, v, m))
        {
            self.max = Some(v.to_string());
        }
        self.out
            .write_field(v.unwrap_or(""))
            .map_err(|e| format!("staging: {e}"))
    }

    fn end_row(&mut self) -> Result<(), String> {
        self.rows += 1;
        self.out
            .write_record(None::<&[u8]>)
            .map_err(|e| format!("staging: {e}"))
    }
}

/// The query with each `:since` replaced by `param(n)` (n counts from 1).
fn render(sql: &str, param: impl Fn(usize) -> String) -> (String, usize) {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut n = 0;
    for p in pieces(sql) {
        match p {
            Piece::Text(t) => out.push_str(t),
            Piece::Since => {
                n += 1;
                out.push_str(&param(n));
            }
        }
    }
    (out, n)
}

/// How `:since` is bound in MySQL and SQLite, which convert on comparison: a whole number
/// as one, text otherwise; `None` (a first run without `since`) as the lowest integer,
/// which is below every number, date (MySQL) and text (SQLite orders numbers first).
enum Bound {
    Int(i64),
    Text(String),
}

fn bound(v: Option<&str>) -> Bound {
    match v {
        None => Bound::Int(i64::MIN),
        Some(s) => s
            .parse::<i64>()
            .map_or_else(|_| Bound::Text(s.to_string()), Bound::Int),
    }
}

/// Writes the header from a prepared statement's columns and, when the job names a
/// watermark column, takes its kind from the column's type (`kind` maps the type's name).
/// Returns the column names.
fn header<S: sqlx::Statement>(
    stmt: &S,
    src: &DatabaseSource,
    sink: &mut Sink,
    kind: fn(&str) -> rows::Kind,
) -> Result<Vec<String>, String> {
    let names: Vec<String> = stmt
        .columns()
        .iter()
        .map(|c| c.name().to_string())
        .collect();
    if let Some(i) = src
        .watermark
        .as_deref()
        .and_then(|w| names.iter().position(|n| n.eq_ignore_ascii_case(w)))
    {
        sink.wm_kind = kind(stmt.columns()[i].type_info().name());
    }
    sink.header(&names, src.watermark.as_deref())?;
    Ok(names)
}

async fn query_postgres(
    src: &DatabaseSource,
    since: Option<&str>,
    sink: &mut Sink,
) -> Result<(), String> {
    let mut conn = connect::postgres(src).await?;
    let e = |e: sqlx::Error| crate::redact::scrub(&e.to_string()).into_owned();
    let (mut sql, uses) = render(&src.query, |_| "$1".into());
    let mut value: Option<String> = None;
    if uses > 0 {
        // The server infers `:since`'s type; the value is sent as text and cast to it, so
        // a timestamp, a number or a text watermark compares as its column does.
        let probe = conn
            .prepare(sqlx::SqlSafeStr::into_sql_str(sqlx::AssertSqlSafe(
                sql.clone(),
            )))
            .await
            .map_err(e)?;
        let ty = match probe.parameters() {
            Some(sqlx::Either::Left(types)) => types
                .first()
                .map(|t| t.name().to_string())
                .unwrap_or_default(),
            _ => String::new(),
        };
        if ty.is_empty() || !ty.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_') {
            return Err(format!(
                "cannot bind `:since`: PostgreSQL gives it the type {ty:?}; compare it with a column of a plain type (a number, a date or time, text)"
            ));
        }
        sql = render(&src.query, |_| format!("CAST(CAST($1 AS TEXT) AS {ty})")).0;
        value = since
            .map(str::to_string)
            .or_else(|| rows::pg_lowest(&ty).map(str::to_string));
        if since.is_none() && value.is_none() {
            return Err(format!(
                "`:since` has the type {ty}, which has no lowest value ferry knows: set `since` in the job"
            ));
        }
        sink.wm_kind = rows::pg_kind(&ty);
    }
    let stmt = conn
        .prepare(sqlx::SqlSafeStr::into_sql_str(sqlx::AssertSqlSafe(
            sql.clone(),
        )))
        .await
        .map_err(e)?;
    let names = header(&stmt, src, sink, rows::pg_kind)?;
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    if uses > 0 {
        q = q.bind(value);
    }
    let mut stream = q.fetch(&mut conn);
    while let Some(row) = stream.try_next().await.map_err(e)? {
        for (i, name) in names.iter().enumerate() {
            let raw = row.try_get_raw(i).map_err(e)?;
            let v = rows::pg_text(raw, name)?;
            sink.field(i, v.as_deref())?;
        }
        sink.end_row()?;
    }
    Ok(())
}

async fn query_mysql(
    src: &DatabaseSource,
    since: Option<&str>,
    sink: &mut Sink,
) -> Result<(), String> {
    let mut conn = connect::mysql(src).await?;
    let e = |e: sqlx::Error| crate::redact::scrub(&e.to_string()).into_owned();
    let (sql, uses) = render(&src.query, |_| "?".into());
    let stmt = conn
        .prepare(sqlx::SqlSafeStr::into_sql_str(sqlx::AssertSqlSafe(
            sql.clone(),
        )))
        .await
        .map_err(e)?;
    let names = header(&stmt, src, sink, rows::mysql_kind)?;
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for _ in 0..uses {
        q = match bound(since) {
            Bound::Int(i) => q.bind(i),
            Bound::Text(t) => q.bind(t),
        };
    }
    let mut stream = q.fetch(&mut conn);
    while let Some(row) = stream.try_next().await.map_err(e)? {
        for (i, name) in names.iter().enumerate() {
            let v = rows::mysql_text(&row, i, name)?;
            sink.field(i, v.as_deref())?;
        }
        sink.end_row()?;
    }
    Ok(())
}

fn query_sqlite(src: &DatabaseSource, since: Option<&str>, sink: &mut Sink) -> Result<(), String> {
    let conn = connect::sqlite(src)?;
    let e = |e: rusqlite::Error| e.to_string();
    let (sql, uses) = render(&src.query, |_| "?1".into());
    let mut stmt = conn.prepare(&sql).map_err(e)?;
    let names: Vec<String> = stmt.column_names().map(str::to_string).collect();
    sink.header(&names, src.watermark.as_deref())?;
    let value: rusqlite::types::Value = match bound(since) {
        Bound::Int(i) => Value::Integer(i),
        Bound::Text(t) => match t.parse::<f64>() {
            Ok(f) if t.contains('.') => Value::Real(f),
            _ => Value::Text(t),
        },
    };
    let mut rows_iter = if uses > 0 {
        stmt.query([value]).map_err(e)?
    } else {
        stmt.query([]).map_err(e)?
    };
    while let Some(row) = rows_iter.next().map_err(e)? {
        for (i, name) in names.iter().enumerate() {
            let v = rows::sqlite_text(row.get_ref(i).map_err(e)?, name)?;
            if Some(i) == sink.wm_index
                && let Some((_, k)) = &v
            {
                sink.wm_kind = *k;
            }
            sink.field(i, v.as_ref().map(|(s, _)| s.as_str()))?;
        }
        sink.end_row()?;
    }
    Ok(())
}

/// One run: settles the previous one, fetches (the query's rows, the service's records),
/// stages them. An `Err` is an outage or a mistake in the query or the answers (logged by
/// the caller; the next run tries again; nothing was staged).
pub async fn run(job: &Arc<Job>, journal: &Arc<Journal>) -> Result<Ran, String> {
    let j = job.clone();
    let jr = journal.clone();
    let pending = tokio::task::spawn_blocking(move || settle(&j, &jr))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("journal: {e}"))?;
    let src = polled(job);
    if pending {
        tracing::info!("{}", src.words().pending);
        return Ok(Ran::Pending);
    }
    let before = match src.watermark() {
        Some(c) => current_watermark(job, journal, c).map_err(|e| format!("journal: {e}"))?,
        None => None,
    };
    let since = before.clone().or_else(|| src.since().map(str::to_string));
    let staging = job.source.folder.clone();
    fsutil::create_dir_all_durable(&staging).map_err(|e| format!("staging: {e}"))?;
    let part_name = format!("{PART_PREFIX}{}", &fsutil::temp_name()[11..]);
    let part = staging.join(&part_name);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&part)
        .map_err(|e| format!("staging: {e}"))?;
    let started = std::time::Instant::now();
    let fetched = match src {
        Polled::Database(d) => fetch_database(d, since.as_deref(), file).await,
        Polled::Rest(r) => crate::sources::rest::fetch(r, since.as_deref(), file).await,
    };
    let fetched = match fetched {
        Ok(f) => f,
        Err(e) => {
            let _ = std::fs::remove_file(&part);
            return Err(e);
        }
    };
    if fetched.rows == 0 && src.skip_empty() {
        let _ = std::fs::remove_file(&part);
        tracing::info!(
            watermark = before.as_deref().unwrap_or("-"),
            "{}",
            src.words().empty
        );
        return Ok(Ran::Empty);
    }
    let after = match (&before, &fetched.max) {
        (Some(b), Some(m)) if !rows::higher(fetched.kind, m, b) => Some(b.clone()),
        (b, m) => m.clone().or_else(|| b.clone()),
    };
    let staged = stage(job, journal, &part_name, &fetched, (&before, &after))?;
    tracing::info!(
        rows = fetched.rows,
        file = %staged.display(),
        watermark_before = before.as_deref().unwrap_or("-"),
        watermark_after = after.as_deref().unwrap_or("-"),
        ms = started.elapsed().as_millis() as u64,
        "{}", src.words().staged
    );
    Ok(Ran::Staged {
        rows: fetched.rows,
        path: staged,
    })
}

/// The database half of a run: the query's rows into the part file as CSV (fsynced).
async fn fetch_database(
    src: &DatabaseSource,
    since: Option<&str>,
    file: std::fs::File,
) -> Result<Fetched, String> {
    let mut sink = Sink {
        out: csv::WriterBuilder::new()
            .terminator(csv::Terminator::Any(b'\n'))
            .from_writer(std::io::BufWriter::with_capacity(256 * 1024, file)),
        wm_index: None,
        wm_kind: Kind::Text,
        max: None,
        rows: 0,
    };
    match src.kind {
        DbKind::Postgres => query_postgres(src, since, &mut sink).await?,
        DbKind::Mysql => query_mysql(src, since, &mut sink).await?,
        DbKind::Sqlite => {
            let src2 = src.clone();
            let since2 = since.map(str::to_string);
            let (r, s) = tokio::task::spawn_blocking(move || {
                let r = query_sqlite(&src2, since2.as_deref(), &mut sink);
                (r, sink)
            })
            .await
            .map_err(|e| e.to_string())?;
            sink = s;
            r?
        }
    }
    let f = sink
        .out
        .into_inner()
        .map_err(|e| format!("staging: {}", e.error()))?;
    let f = f
        .into_inner()
        .map_err(|e| format!("staging: {}", e.error()))?;
    f.sync_all().map_err(|e| format!("staging: {e}"))?;
    Ok(Fetched {
        rows: sink.rows,
        max: sink.max,
        kind: sink.wm_kind,
    })
}

/// Records the run (waited) and renames the part to its staged name
/// (`JOB-YYYYMMDDTHHMMSSmmmZ.EXT`), the folder fsynced: from here the runner takes it.
fn stage(
    job: &Job,
    journal: &Journal,
    part_name: &str,
    fetched: &Fetched,
    (before, after): (&Option<String>, &Option<String>),
) -> Result<PathBuf, String> {
    let src = polled(job);
    let staging = &job.source.folder;
    let part = staging.join(part_name);
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%3fZ");
    let staged = staging.join(format!("{}-{stamp}.{}", job.name, src.extension()));
    let md = std::fs::metadata(&part).map_err(|e| format!("staging: {e}"))?;
    let meta = crate::sources::folder::meta_of(&md);
    let staged_s = staged.to_string_lossy().into_owned();
    let rec = journal.exec(
        "INSERT INTO db_source_runs (job, staged, part, query, wm_column, wm_kind, wm_before, wm_after, rows, size, mtime_ns, state, started_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, 'fetched', ?12)",
        vec![
            text(&job.name),
            text(&staged_s),
            text(part_name),
            text(src.request()),
            opt(src.watermark()),
            text(fetched.kind.as_str()),
            opt(before.as_deref()),
            opt(after.as_deref()),
            Value::Integer(fetched.rows as i64),
            Value::Integer(meta.size as i64),
            Value::Integer(meta.mtime_ns),
            Value::Integer(now_ms()),
        ],
        true,
    );
    if let Err(e) = rec {
        let _ = std::fs::remove_file(&part);
        return Err(format!("journal: {e}"));
    }
    fsutil::rename_noreplace(&part, &staged).map_err(|e| format!("staging: {e}"))?;
    fsutil::sync_dir(staging).map_err(|e| format!("staging: {e}"))?;
    let _ = journal.exec(
        "UPDATE db_source_runs SET state = 'staged' WHERE job = ?1 AND staged = ?2",
        vec![text(&job.name), text(&staged_s)],
        false,
    );
    Ok(staged)
}

/// The error of each polled job whose last run failed (a run that works clears it): the
/// runner's `ferry status` line shows it instead of the staging folder until then.
static FAILING: std::sync::Mutex<std::collections::BTreeMap<String, String>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

fn set_failing(job: &Job, error: Option<&str>) {
    let mut f = FAILING.lock().unwrap_or_else(|e| e.into_inner());
    match error {
        Some(e) => f.insert(job.name.clone(), e.to_string()),
        None => f.remove(&job.name),
    };
}

/// The source column of the job's `ferry status` line: the staging folder, or for a
/// polled source whose last run failed, its URL and the error.
pub fn status_source(job: &Job) -> String {
    let failing = FAILING.lock().unwrap_or_else(|e| e.into_inner());
    match (Polled::of(job), failing.get(&job.name)) {
        (Some(src), Some(e)) => format!("{} (error: {e})", src.display()),
        _ => job.source.folder.to_string_lossy().into_owned(),
    }
}

/// What `ferry status` shows as the job's source, given what the runner last wrote: the
/// polled source's error while its last run failed, else the (staging) folder.
pub fn shown_source(job: &Job, written: Option<String>) -> String {
    match (Polled::of(job), written) {
        (Some(src), Some(w)) if w.starts_with(&format!("{} (error: ", src.display())) => w,
        _ => job.source.folder.display().to_string(),
    }
}

/// A run with its outcome logged; `last_error` keeps a failing source from logging the
/// same ERROR at every run. Returns whether the run worked.
async fn run_logged(
    job: &Arc<Job>,
    journal: &Arc<Journal>,
    last_error: &mut Option<String>,
) -> bool {
    match run(job, journal).await {
        Ok(_) => {
            set_failing(job, None);
            if last_error.take().is_some() {
                tracing::info!(source = %polled(job).display(), "{}", polled(job).words().back);
            }
            true
        }
        Err(e) => {
            let src = polled(job);
            set_failing(job, Some(&e));
            if last_error.as_deref() != Some(e.as_str()) {
                tracing::error!(source = %src.display(), error = %e, "{}", src.words().failed);
                let _ =
                    journal.job_status(&job.name, &format!("{} (error: {e})", src.display()), 0);
            }
            *last_error = Some(e);
            false
        }
    }
}

/// `run --once`, before the job's files are taken: one run (its rows are then in staging).
/// Returns whether the query worked (a failed one makes the run's exit code 1).
pub async fn once_fetch(job: &Arc<Job>, journal: &Arc<Journal>) -> bool {
    let (j, jr) = (job.clone(), journal.clone());
    match tokio::task::spawn_blocking(move || recover(&j, &jr)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(error = %e, "Cannot recover the staging folder."),
        Err(e) => tracing::error!(error = %e, "Recovery task failed."),
    }
    run_logged(job, journal, &mut None).await
}

/// `run --once`, after the job's files: records what became of the staged rows (the
/// watermark advances when they were delivered).
pub async fn once_finish(job: &Arc<Job>, journal: &Arc<Journal>) {
    let (j, jr) = (job.clone(), journal.clone());
    let r = tokio::task::spawn_blocking(move || {
        jr.flush()?;
        settle(&j, &jr)
    })
    .await;
    if let Ok(Err(e)) = r {
        tracing::error!(error = %e, "Cannot record the query's outcome; done at the next run.");
    }
}

/// Asks the daemon's database task for a run and waits until its rows are staged (a
/// scheduled job's gate, before it counts the files of the run).
pub type RunRequest = tokio::sync::oneshot::Sender<()>;

/// The daemon's database task of a job: a run at every request (a scheduled job's gate)
/// or, without a schedule, every `poll`; between runs, finished runs are settled every few
/// seconds so the watermark and history follow soon after delivery.
pub async fn daemon(
    job: Arc<Job>,
    journal: Arc<Journal>,
    mut stop: tokio::sync::watch::Receiver<bool>,
    mut requests: Option<tokio::sync::mpsc::Receiver<RunRequest>>,
) {
    let (j, jr) = (job.clone(), journal.clone());
    if let Ok(Err(e)) = tokio::task::spawn_blocking(move || recover(&j, &jr)).await {
        tracing::error!(error = %e, "Cannot recover the staging folder.");
    }
    let poll = polled(&job).poll();
    let mut last_error = None;
    let mut next_poll = tokio::time::Instant::now();
    loop {
        let scheduled = requests.is_some();
        tokio::select! {
            _ = stop.changed() => break,
            req = recv_request(&mut requests), if scheduled => match req {
                Some(reply) => {
                    let _ = run_logged(&job, &journal, &mut last_error).await;
                    let _ = reply.send(());
                }
                None => requests = None,
            },
            _ = tokio::time::sleep_until(next_poll), if !scheduled => {
                let _ = run_logged(&job, &journal, &mut last_error).await;
                next_poll = tokio::time::Instant::now() + poll;
            }
            _ = tokio::time::sleep(Duration::from_secs(2)) => {
                let (j, jr) = (job.clone(), journal.clone());
                let _ = tokio::task::spawn_blocking(move || settle(&j, &jr)).await;
            }
        }
        if *stop.borrow() {
            break;
        }
    }
}

async fn recv_request(
    rx: &mut Option<tokio::sync::mpsc::Receiver<RunRequest>>,
) -> Option<RunRequest> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}
