//! The retry queue for a combined run (`combine = true`, docs/schedules.md "A combined
//! run's retries"): when the run's output fails for a reason that may pass, every original
//! of the run is queued together, with one first failure and one count of tries, so that
//! the run is retried whole (the runner's [`super::holds::Holds::due_batch`]) and given up
//! on whole.

use std::path::Path;

use super::{Decision, Row, humanize, row_for, within, write_row};
use crate::job::Job;
use crate::journal::{Journal, now_ms};
use crate::readiness::Meta;

/// One original of the run, claimed (`id`: its journal record).
pub struct Original<'a> {
    pub path: &'a Path,
    pub meta: Meta,
    pub id: i64,
}

/// After the run's output failed at `dest` for a reason that may pass: queues every
/// original (durably; the last write is waited for), or says to give up (past the job's
/// `[retry] for`, counted from the run's first failure, or retries off).
pub fn queue_run(
    job: &Job,
    journal: &Journal,
    run: &[Original<'_>],
    dest: &str,
    msg: &str,
) -> Decision {
    if !job.retry.enabled() || run.is_empty() {
        return Decision::GiveUp(String::new());
    }
    let now = now_ms();
    let before: Vec<_> = run
        .iter()
        .filter_map(|o| row_for(journal, &job.name, o.path, o.meta))
        .collect();
    let first = before.iter().map(|r| r.first_failed).min().unwrap_or(now);
    let attempts = before.iter().map(|r| r.attempts).max().unwrap_or(0) + 1;
    if !within(job, first, now) {
        return Decision::GiveUp(format!(
            "gave up after {attempts} tries of the run since {} ([retry] for = {:?}); the destination {dest} still fails",
            crate::journal::fmt_time(first),
            humanize(job.retry.give_up_after.unwrap_or_default()),
        ));
    }
    for (i, o) in run.iter().enumerate() {
        let row = Row {
            path: o.path,
            meta: o.meta,
            id: o.id,
            dest,
            attempts,
            first,
            msg,
            delivered: Vec::new(),
        };
        if let Err(e) = write_row(journal, &job.name, row, now, i + 1 == run.len()) {
            tracing::error!(error = %e, "Cannot record the run in the retry queue; its files fail instead.");
            return Decision::GiveUp(String::new());
        }
    }
    tracing::warn!(destination = %dest, attempt = attempts, originals = run.len(), error = %msg, "The run's output failed for a reason that may pass; its files stay in the source and the run is tried again.");
    Decision::Queued {
        first_failed: first,
    }
}
