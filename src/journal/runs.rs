//! The runs of scheduled jobs (issue 14, schedules): one row per run, with why it ran,
//! its slot, when it started and finished, and what it took, delivered and failed.
//! `ferry runs` and `ferry status` read them; the daemon writes them through the journal's
//! writer thread, in order with the files' own rows.

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::Serialize;

use super::{Journal, Result};

/// The schedules part's migration step: the `runs` table. Self-contained (it only adds a
/// table), so it can run at any version step.
pub(super) fn migrate_runs(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS runs (
            job TEXT NOT NULL,
            run INTEGER NOT NULL,
            slot INTEGER NOT NULL,
            why TEXT NOT NULL,
            started INTEGER NOT NULL,
            finished INTEGER,
            result TEXT NOT NULL,
            taken INTEGER NOT NULL,
            delivered INTEGER NOT NULL,
            failed INTEGER NOT NULL,
            files TEXT NOT NULL,
            PRIMARY KEY (job, run)
        );",
    )
}

/// One file of a run and what became of it: `delivered`, `failed`, `skipped` (not for this
/// job after all), or `released` (it changed while taken; a later run takes it).
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct RunFile {
    pub file: String,
    pub result: String,
}

/// A run as `ferry runs` shows it. Times are RFC 3339 in UTC.
#[derive(Debug, Clone, Serialize)]
pub struct RunRow {
    pub job: String,
    pub run: i64,
    /// `schedule`, `missed` (a slot that passed while ferry was stopped), `trigger`
    /// (`ferry trigger`), `once` (`ferry run --once`) or `retry` (a combined run tried
    /// again after its output failed for a reason that may pass).
    pub why: String,
    pub slot: String,
    pub started: String,
    pub finished: Option<String>,
    /// `running`, `ok`, `failed` (at least one file failed), `queued` (files of it wait
    /// in the retry queue, none failed) or `interrupted` (ferry stopped before every file
    /// of the run was handled).
    pub result: String,
    pub taken: u64,
    pub delivered: u64,
    pub failed: u64,
    pub files: Vec<RunFile>,
    #[serde(skip)]
    pub slot_ms: i64,
    #[serde(skip)]
    pub started_ms: i64,
    #[serde(skip)]
    pub finished_ms: Option<i64>,
}

/// A journal time (ms) as RFC 3339 in UTC.
pub fn rfc3339(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| ms.to_string())
}

impl Journal {
    /// A run began: `run` is the job's next run number ([`last_run`] + 1).
    pub fn run_started(
        &self,
        job: &str,
        run: i64,
        slot: i64,
        why: &str,
        started: i64,
    ) -> Result<()> {
        self.exec(
            "INSERT OR REPLACE INTO runs (job, run, slot, why, started, finished, result, taken, delivered, failed, files)
             VALUES (?1, ?2, ?3, ?4, ?5, NULL, 'running', 0, 0, 0, '[]')",
            vec![
                Value::Text(job.into()),
                Value::Integer(run),
                Value::Integer(slot),
                Value::Text(why.into()),
                Value::Integer(started),
            ],
            false,
        )
    }

    /// A run ended (or was interrupted), with what it took and what became of each file.
    pub fn run_finished(
        &self,
        job: &str,
        run: i64,
        finished: i64,
        result: &str,
        counts: [u64; 3],
        files: &[RunFile],
    ) -> Result<()> {
        let files = serde_json::to_string(files).unwrap_or_else(|_| "[]".into());
        self.exec(
            "UPDATE runs SET finished = ?3, result = ?4, taken = ?5, delivered = ?6, failed = ?7, files = ?8
             WHERE job = ?1 AND run = ?2",
            vec![
                Value::Text(job.into()),
                Value::Integer(run),
                Value::Integer(finished),
                Value::Text(result.into()),
                Value::Integer(counts[0] as i64),
                Value::Integer(counts[1] as i64),
                Value::Integer(counts[2] as i64),
                Value::Text(files),
            ],
            false,
        )
    }
}

fn has_runs(conn: &Connection) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'runs')",
        [],
        |r| r.get(0),
    )
}

const COLUMNS: &str =
    "job, run, slot, why, started, finished, result, taken, delivered, failed, files";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RunRow> {
    let slot: i64 = r.get(2)?;
    let started: i64 = r.get(4)?;
    let finished: Option<i64> = r.get(5)?;
    let files: String = r.get(10)?;
    Ok(RunRow {
        job: r.get(0)?,
        run: r.get(1)?,
        slot: rfc3339(slot),
        why: r.get(3)?,
        started: rfc3339(started),
        finished: finished.map(rfc3339),
        result: r.get(6)?,
        taken: r.get::<_, i64>(7)? as u64,
        delivered: r.get::<_, i64>(8)? as u64,
        failed: r.get::<_, i64>(9)? as u64,
        files: serde_json::from_str(&files).unwrap_or_default(),
        slot_ms: slot,
        started_ms: started,
        finished_ms: finished,
    })
}

/// The runs, the newest started first (of one job, with `job`); `limit` 0 is every run.
pub fn list(conn: &Connection, job: Option<&str>, limit: usize) -> rusqlite::Result<Vec<RunRow>> {
    if !has_runs(conn)? {
        return Ok(Vec::new());
    }
    let limit = if limit == 0 { -1 } else { limit as i64 };
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM runs WHERE ?1 IS NULL OR job = ?1 ORDER BY rowid DESC LIMIT ?2"
    ))?;
    stmt.query_map(params![job, limit], row)?.collect()
}

/// The job's latest run, if it ever ran.
pub fn last_run(conn: &Connection, job: &str) -> rusqlite::Result<Option<RunRow>> {
    if !has_runs(conn)? {
        return Ok(None);
    }
    conn.query_row(
        &format!("SELECT {COLUMNS} FROM runs WHERE job = ?1 ORDER BY run DESC LIMIT 1"),
        [job],
        row,
    )
    .optional()
}

/// The job's last run that was not a combined run's retry (which keeps the failed run's
/// slot): where its schedule counts from.
pub fn last_slot_run(conn: &Connection, job: &str) -> rusqlite::Result<Option<RunRow>> {
    if !has_runs(conn)? {
        return Ok(None);
    }
    conn.query_row(
        &format!(
            "SELECT {COLUMNS} FROM runs WHERE job = ?1 AND why <> 'retry' ORDER BY run DESC LIMIT 1"
        ),
        [job],
        row,
    )
    .optional()
}

/// The slot of the job's last run with files queued for another try (its result
/// `queued`): a combined run's retry keeps it after a restart.
pub fn last_queued_slot(conn: &Connection, job: &str) -> rusqlite::Result<Option<i64>> {
    if !has_runs(conn)? {
        return Ok(None);
    }
    conn.query_row(
        "SELECT slot FROM runs WHERE job = ?1 AND result = 'queued' ORDER BY run DESC LIMIT 1",
        [job],
        |r| r.get(0),
    )
    .optional()
}

impl Journal {
    /// A run that was going when ferry was killed: marked `interrupted` at `at`.
    pub fn run_interrupted(&self, job: &str, run: i64, at: i64) -> Result<()> {
        self.exec(
            "UPDATE runs SET finished = ?3, result = 'interrupted' WHERE job = ?1 AND run = ?2 AND finished IS NULL",
            vec![Value::Text(job.into()), Value::Integer(run), Value::Integer(at)],
            false,
        )
    }
}
