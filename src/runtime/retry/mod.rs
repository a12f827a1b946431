//! The retry queue (issue 14; docs/design.md, "The retry queue"): a file whose delivery
//! failed for a reason that may pass ([`crate::outputs::failure`]) is not sent to the error
//! folder but stays in its source, recorded in the journal's `retry_queue`, and is taken
//! again later, with backoff and jitter, until it goes through or the job's `[retry] for`
//! runs out.
//!
//! Theory of operation:
//! - The worker that hit the failure ([`after_failure`]) writes the queue row durably
//!   (with the outputs this file has delivered already, which a later try skips), marks
//!   the attempt `queued` in the file's history, and ends with `Outcome::Queued`. Past
//!   `for`, it says give up instead and the file fails as before (error folder, report,
//!   alert).
//! - The runner keeps the queued files of its job in [`holds::Holds`]: a queued file is
//!   not taken while its destination is paused. Each destination has a circuit breaker:
//!   after a failure it is paused (`every`, doubling to `max`, ±20% jitter); when the
//!   pause ends ONE queued file is let through as a probe, and only when it is delivered
//!   are the destination's other files let through. A dead destination costs one try per
//!   pause, not one per file, and files for other destinations go on meanwhile.
//! - Restarts: the runner loads its holds from `retry_queue` and `retry_paused`.
//! - [`requeue`]: `ferry retry` moves files back from the error folder into their source.

pub mod batch;
pub mod holds;
pub mod requeue;
mod runner;

pub use runner::load;

use std::path::Path;

use rusqlite::OptionalExtension;
use rusqlite::types::Value;

use crate::job::Job;
use crate::journal::{Journal, now_ms};
use crate::readiness::Meta;
use crate::sources::staging::{free_text, int, text};

use super::deliver::{Delivery, Resolved};
use super::process::FileError;

/// A queued file as the journal has it.
#[derive(Debug, Clone)]
pub struct QueueRow {
    pub path: String,
    pub meta: Meta,
    pub dest: String,
    pub attempts: u32,
    pub first_failed: i64,
    pub error: String,
    /// Outputs delivered by an earlier try: never written again.
    pub delivered: Vec<u32>,
}

fn ids(s: &str) -> Vec<u32> {
    s.split(',').filter_map(|x| x.trim().parse().ok()).collect()
}

const SELECT: &str =
    "SELECT path, size, mtime_ns, dest, attempts, first_failed, error, delivered FROM retry_queue";

fn row_of(r: &rusqlite::Row<'_>) -> rusqlite::Result<QueueRow> {
    Ok(QueueRow {
        path: r.get(0)?,
        meta: Meta {
            size: r.get::<_, i64>(1)? as u64,
            mtime_ns: r.get(2)?,
        },
        dest: r.get(3)?,
        attempts: r.get::<_, i64>(4)? as u32,
        first_failed: r.get(5)?,
        error: r.get(6)?,
        delivered: ids(&r.get::<_, String>(7)?),
    })
}

/// Every queued file of `job`.
pub fn rows(journal: &Journal, job: &str) -> Vec<QueueRow> {
    journal
        .read(|c| {
            let mut st = c.prepare(&format!("{SELECT} WHERE job = ?1"))?;
            st.query_map([job], row_of)?.collect()
        })
        .unwrap_or_default()
}

/// The queue row of the file at `path`, when it is this version of it (same size and
/// mtime). A row of another version is dropped: a file that changed is a new file.
pub fn row_for(journal: &Journal, job: &str, path: &Path, meta: Meta) -> Option<QueueRow> {
    let p = path.to_string_lossy();
    let row = journal
        .read(|c| {
            c.query_row(
                &format!("{SELECT} WHERE job = ?1 AND path = ?2"),
                [job, &*p],
                row_of,
            )
            .optional()
        })
        .ok()
        .flatten()?;
    if row.meta == meta {
        return Some(row);
    }
    forget(journal, job, path);
    None
}

/// Drops the queue row of `path` (delivered, failed for good, or changed).
pub fn forget(journal: &Journal, job: &str, path: &Path) {
    let _ = journal.exec(
        "DELETE FROM retry_queue WHERE job = ?1 AND path = ?2",
        vec![text(job), text(&path.to_string_lossy())],
        false,
    );
}

/// A later try leaves out the outputs an earlier try delivered.
pub fn skip_delivered(resolved: &mut Resolved, row: &QueueRow) {
    let done = |i: &u32| row.delivered.contains(i);
    resolved.targets.retain(|t| !done(&t.idx));
    resolved.split_dirs.retain(|(i, _)| !done(i));
    resolved.extract_dirs.retain(|(i, _)| !done(i));
}

/// What becomes of a file whose delivery failed for a reason that may pass.
pub enum Decision {
    /// Queued for another try: the original stays where it is. When it first failed.
    Queued { first_failed: i64 },
    /// Past `[retry] for` (or retries are off): it fails, with this said first in its
    /// report (empty when retries are off).
    GiveUp(String),
}

/// Whether a file is still within its job's `[retry] for`, given when it first failed.
pub fn within(job: &Job, first_failed_ms: i64, now: i64) -> bool {
    match job.retry.give_up_after {
        None => true,
        Some(d) => now.saturating_sub(first_failed_ms) < d.as_millis() as i64,
    }
}

/// After a failure that may pass at `dest`: queues the file of `d` (durably, with the
/// outputs `delivered_now` that this try renamed into place), or says to give up.
pub fn after_failure(
    d: &Delivery<'_>,
    dest: &str,
    err: &FileError,
    delivered_now: &[u32],
) -> Decision {
    if !d.job.retry.enabled() || !d.companions.is_empty() {
        return Decision::GiveUp(String::new());
    }
    let now = now_ms();
    let path = &d.found.path;
    let before = row_for(d.journal, &d.job.name, path, d.found.meta);
    let first = before.as_ref().map_or(now, |r| r.first_failed);
    let attempts = before.as_ref().map_or(0, |r| r.attempts) + 1;
    if !within(d.job, first, now) {
        let why = format!(
            "gave up after {attempts} tries since {} ([retry] for = {:?}); the destination {dest} still fails",
            crate::journal::fmt_time(first),
            humanize(d.job.retry.give_up_after.unwrap_or_default()),
        );
        return Decision::GiveUp(why);
    }
    let mut delivered = before.map(|r| r.delivered).unwrap_or_default();
    delivered.extend_from_slice(delivered_now);
    let msg = err.to_string();
    let row = Row {
        path,
        meta: d.found.meta,
        id: d.id,
        dest,
        attempts,
        first,
        msg: &msg,
        delivered,
    };
    // Waited for: the plan of this try may be withdrawn next, and the outputs it
    // delivered must be on record before that.
    if let Err(e) = write_row(d.journal, &d.job.name, row, now, true) {
        tracing::error!(error = %e, "Cannot record the file in the retry queue; it fails instead.");
        return Decision::GiveUp(String::new());
    }
    tracing::warn!(destination = %dest, attempt = attempts, error = %msg, "Delivery failed for a reason that may pass; the file stays in its source and is tried again.");
    Decision::Queued {
        first_failed: first,
    }
}

/// A queue row to write, and the try it records (`id`: the file's journal record).
pub(super) struct Row<'a> {
    pub path: &'a Path,
    pub meta: Meta,
    pub id: i64,
    pub dest: &'a str,
    pub attempts: u32,
    pub first: i64,
    pub msg: &'a str,
    pub delivered: Vec<u32>,
}

/// Writes the queue row of one file and marks its try `queued` in its history.
pub(super) fn write_row(
    journal: &Journal,
    job: &str,
    row: Row<'_>,
    now: i64,
    wait: bool,
) -> crate::journal::Result<()> {
    let mut delivered = row.delivered;
    delivered.sort_unstable();
    delivered.dedup();
    let delivered_s = delivered
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",");
    journal.exec(
        "INSERT INTO retry_queue (job, path, size, mtime_ns, dest, attempts, first_failed, last_failed, error, delivered, file_ids)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
         ON CONFLICT (job, path) DO UPDATE SET size = excluded.size, mtime_ns = excluded.mtime_ns,
           dest = excluded.dest, attempts = excluded.attempts, last_failed = excluded.last_failed,
           error = excluded.error, delivered = excluded.delivered,
           file_ids = retry_queue.file_ids || ',' || excluded.file_ids",
        vec![
            text(job),
            text(&row.path.to_string_lossy()),
            int(row.meta.size as i64),
            int(row.meta.mtime_ns),
            text(row.dest),
            int(i64::from(row.attempts)),
            int(row.first),
            int(now),
            free_text(row.msg),
            text(&delivered_s),
            Value::Text(row.id.to_string()),
        ],
        wait,
    )?;
    let _ = journal.event(
        row.id,
        "queued",
        format!(
            "try {} failed at {}; queued for another try: {}",
            row.attempts, row.dest, row.msg
        ),
    );
    let _ = journal.exec(
        "UPDATE files SET state = 'queued', finished_at = ?2, updated_at = ?2 WHERE id = ?1",
        vec![int(row.id), int(now)],
        false,
    );
    Ok(())
}

pub use crate::job::retry::humanize;

/// A queued file, for `ferry status`.
#[derive(Debug, serde::Serialize)]
pub struct QueuedStatus {
    pub job: String,
    pub path: String,
    pub destination: String,
    pub attempts: u32,
    pub first_failed: String,
    pub next_attempt: Option<String>,
    pub error: String,
}

/// A paused destination, for `ferry status`.
#[derive(Debug, serde::Serialize)]
pub struct PausedStatus {
    pub job: String,
    pub destination: String,
    pub failures: u32,
    pub until: String,
    pub error: String,
    pub files: u64,
}

fn has_tables(c: &rusqlite::Connection) -> rusqlite::Result<bool> {
    c.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'retry_queue')",
        [],
        |r| r.get(0),
    )
}

/// The queue and the paused destinations, for `ferry status` (read-only).
pub fn status(
    c: &rusqlite::Connection,
) -> rusqlite::Result<(Vec<QueuedStatus>, Vec<PausedStatus>)> {
    use crate::journal::fmt_time;
    if !has_tables(c)? {
        return Ok((Vec::new(), Vec::new()));
    }
    let mut paused = Vec::new();
    let now = now_ms();
    let mut st = c.prepare(
        "SELECT p.job, p.dest, p.failures, p.until_ms, p.error,
                (SELECT COUNT(*) FROM retry_queue q WHERE q.job = p.job AND q.dest = p.dest)
         FROM retry_paused p ORDER BY p.job, p.dest",
    )?;
    let mut rows = st.query([])?;
    let mut until_of = std::collections::HashMap::new();
    while let Some(r) = rows.next()? {
        let (job, dest, until): (String, String, i64) = (r.get(0)?, r.get(1)?, r.get(3)?);
        until_of.insert((job.clone(), dest.clone()), until);
        paused.push(PausedStatus {
            job,
            destination: crate::redact::scrub(&dest).into_owned(),
            failures: r.get::<_, i64>(2)? as u32,
            until: fmt_time(until.max(now)),
            error: crate::redact::scrub(&r.get::<_, String>(4)?).into_owned(),
            files: r.get::<_, i64>(5)? as u64,
        });
    }
    let mut queued = Vec::new();
    let mut st = c.prepare(
        "SELECT job, path, dest, attempts, first_failed, error FROM retry_queue ORDER BY job, first_failed, path",
    )?;
    let mut rows = st.query([])?;
    while let Some(r) = rows.next()? {
        let (job, dest): (String, String) = (r.get(0)?, r.get(2)?);
        let next = until_of.get(&(job.clone(), dest.clone())).copied();
        queued.push(QueuedStatus {
            job,
            path: crate::redact::scrub(&r.get::<_, String>(1)?).into_owned(),
            destination: crate::redact::scrub(&dest).into_owned(),
            attempts: r.get::<_, i64>(3)? as u32,
            first_failed: fmt_time(r.get(4)?),
            // No pause on record: tried at the next look at the folder.
            next_attempt: Some(next.map_or_else(|| "now".into(), |t| fmt_time(t.max(now)))),
            error: crate::redact::scrub(&r.get::<_, String>(5)?).into_owned(),
        });
    }
    Ok((queued, paused))
}

/// The retry part of `ferry status`: paused destinations, then queued files with their
/// next try (the first 20 per job; the JSON has them all).
pub fn print_status(queued: &[QueuedStatus], paused: &[PausedStatus]) {
    if !paused.is_empty() {
        println!();
        println!("PAUSED DESTINATIONS (circuit breaker)");
        for p in paused {
            println!(
                "  {}: {} paused until {} after {} failure(s), {} file(s) queued: {}",
                p.job, p.destination, p.until, p.failures, p.files, p.error
            );
        }
    }
    if !queued.is_empty() {
        println!();
        println!("RETRY QUEUE ({} file(s))", queued.len());
        let mut shown: std::collections::HashMap<&str, usize> = Default::default();
        for q in queued {
            let n = shown.entry(q.job.as_str()).or_default();
            *n += 1;
            if *n > 20 {
                continue;
            }
            println!(
                "  {}: {} -> {}, {} tr{}, failing since {}, next try {}: {}",
                q.job,
                q.path,
                q.destination,
                q.attempts,
                if q.attempts == 1 { "y" } else { "ies" },
                q.first_failed,
                q.next_attempt.as_deref().unwrap_or("-"),
                q.error
            );
        }
        for (job, n) in shown.into_iter().filter(|(_, n)| *n > 20) {
            println!("  {job}: ... and {} more (ferry status --json)", n - 20);
        }
    }
}
