//! Alerts by email: a job's `[alert]` names an admin address that gets a mail for every
//! file sent to the error folder (its error report in the body and attached) and, with
//! `daily = "HH:MM"`, a daily summary.
//!
//! Alerts go through the same outbox + deliverer as email outputs: the alert task reads
//! the journal for newly failed files, writes each report durably into the job's alert
//! outbox (`var/outbox/<job>/alerts`, one file per failed file, named by its journal id so
//! rewriting it after a crash is harmless), then records how far it got. The deliverer
//! sends and retries with backoff; a mail server that is down loses nothing.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use chrono::{Local, TimeZone};
use rusqlite::OptionalExtension;
use rusqlite::types::Value;

use crate::fsutil;
use crate::job::Job;
use crate::journal::Journal;

const CREATE: &str = "CREATE TABLE IF NOT EXISTS mail_alerts (
    job TEXT PRIMARY KEY,
    last_file INTEGER NOT NULL,
    last_daily TEXT NOT NULL
)";

fn state(journal: &Journal, job: &str) -> Result<(i64, String)> {
    journal.exec(CREATE, Vec::new(), true)?;
    let row: Option<(i64, String)> = journal.read(|c| {
        c.query_row(
            "SELECT last_file, last_daily FROM mail_alerts WHERE job = ?1",
            [job],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
    })?;
    match row {
        Some(r) => Ok(r),
        // Every failure on record is alerted once, from the job's first one; the first
        // daily summary is due at the first `daily` time reached.
        None => Ok((0, String::new())),
    }
}

fn save(journal: &Journal, job: &str, last: i64, daily: &str) -> Result<()> {
    journal.exec(
        "INSERT OR REPLACE INTO mail_alerts (job, last_file, last_daily) VALUES (?1, ?2, ?3)",
        vec![
            Value::Text(job.to_string()),
            Value::Integer(last),
            Value::Text(daily.to_string()),
        ],
        true,
    )?;
    Ok(())
}

/// Writes a file into the outbox atomically (temp, fsync, rename over).
pub(crate) fn put(dir: &Path, name: &str, text: &str) -> Result<()> {
    fsutil::create_dir_all_durable(dir)?;
    let tmp = dir.join(fsutil::temp_name());
    std::fs::write(&tmp, crate::redact::scrub(text).as_bytes())?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, dir.join(name))?;
    fsutil::sync_dir(dir)?;
    Ok(())
}

/// An alert for an outbox file of output `idx` that was given up on (`[retry] for`), when
/// the job has `[alert]`: its report goes into the alert outbox like a failed file's.
pub fn outbox_failure(job: &Job, idx: usize, name: &str, report: &str) {
    let Some(alert) = &job.alert else { return };
    let safe = fsutil::portable_component(name);
    let stamp = crate::journal::now_ms();
    let text = format!("ferry could not deliver this file in time.\n\n{report}");
    if let Err(e) = put(
        &alert.email.outbox,
        &format!("outbox-{}-{stamp}-{safe}.error.txt", idx + 1),
        &text,
    ) {
        tracing::error!(error = %format!("{e:#}"), "Cannot write the alert.");
    }
}

/// A notice for the admin that is not about a failed file (an answer of a two-way exchange
/// that is overdue: `crate::runtime::expect`), when the job has `[alert]`. The same notice has the
/// same `name`, so writing it again after a crash replaces it.
pub fn notice(job: &Job, name: &str, text: &str) {
    let Some(alert) = &job.alert else { return };
    let safe = fsutil::portable_component(name);
    if let Err(e) = put(&alert.email.outbox, &format!("{safe}.txt"), text) {
        tracing::error!(error = %format!("{e:#}"), "Cannot write the alert.");
    }
}

/// One pass: an alert file for every file that failed since the last pass, and the daily
/// summary when due. Returns how many alert files were written.
pub fn pass(job: &Job, journal: &Journal) -> Result<usize> {
    let Some(alert) = &job.alert else {
        return Ok(0);
    };
    let (mut last, mut last_daily) = state(journal, &job.name)?;
    type Failed = (i64, String, String, Option<String>, Option<String>);
    let failed: Vec<Failed> = journal.read(|c| {
        let mut st = c.prepare(
            "SELECT id, name, path, error, error_dest FROM files WHERE job = ?1 AND id > ?2 AND state = 'failed' ORDER BY id",
        )?;
        st.query_map(rusqlite::params![job.name, last], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })?
        .collect()
    })?;
    let mut n = 0;
    for (id, name, path, error, dest) in failed {
        let report = dest
            .as_deref()
            .map(|d| crate::fsutil::report_path(Path::new(d)))
            .and_then(|p| std::fs::read_to_string(p).ok());
        let text = match report {
            Some(r) => r,
            None => format!(
                "ferry job {}: {name} ({path}) failed.\nError: {}\nError folder: {}\n",
                job.name,
                error.as_deref().unwrap_or("(none recorded)"),
                dest.as_deref().unwrap_or("(none)")
            ),
        };
        let safe = fsutil::portable_component(&name);
        put(
            &alert.email.outbox,
            &format!("{id:09}-{safe}.error.txt"),
            &text,
        )?;
        last = last.max(id);
        save(journal, &job.name, last, &last_daily)?;
        n += 1;
    }
    if let Some(at) = alert.daily {
        let now = Local::now();
        let today = now.date_naive().to_string();
        if last_daily != today && now.time() >= at {
            let since = Local
                .from_local_datetime(&(now.date_naive() - chrono::Days::new(1)).and_time(at))
                .single()
                .map_or(0, |t| t.timestamp_millis());
            let (done, failed): (i64, i64) = journal.read(|c| {
                c.query_row(
                    "SELECT COALESCE(SUM(state = 'done'), 0), COALESCE(SUM(state = 'failed'), 0) FROM files WHERE job = ?1 AND finished_at >= ?2",
                    rusqlite::params![job.name, since],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
            })?;
            let text = format!(
                "ferry daily summary for job {} ({} to {}):\n  done:   {done}\n  failed: {failed}\n",
                job.name,
                Local
                    .timestamp_millis_opt(since)
                    .single()
                    .map_or_else(String::new, |t| t.format("%Y-%m-%d %H:%M").to_string()),
                now.format("%Y-%m-%d %H:%M"),
            );
            put(&alert.email.outbox, &format!("summary-{today}.txt"), &text)?;
            last_daily = today;
            save(journal, &job.name, last, &last_daily)?;
            n += 1;
        }
    }
    Ok(n)
}

/// The daemon's alert task: a pass every few seconds until `stop`.
pub async fn run(
    job: Arc<Job>,
    journal: Arc<Journal>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut last_error = String::new();
    loop {
        match tokio::task::block_in_place(|| pass(&job, &journal)) {
            Ok(_) => last_error.clear(),
            Err(e) => {
                let msg = format!("{e:#}");
                if msg != last_error {
                    tracing::warn!(error = %msg, "Cannot prepare alert mails; trying again.");
                    last_error = msg;
                }
            }
        }
        tokio::select! {
            _ = stop.changed() => break,
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    }
}

/// For `run --once`: one pass after the local files are handled.
pub fn once(job: &Job, journal: &Journal) -> Result<usize> {
    journal.flush()?;
    tokio::task::block_in_place(|| pass(job, journal))
}
