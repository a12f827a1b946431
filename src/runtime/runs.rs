//! Scheduled runs and `active` windows in a job's runner (issue 14, schedules).
//!
//! Theory of operation: a gated job's runner keeps observing its source as usual (events,
//! rescans, readiness), so its queue always holds the files that are ready; the [`Gate`]
//! only decides when files leave the queue for the workers. An `active` window lets them
//! go while it is open. A scheduled job lets none go between runs: at a slot (or a missed
//! slot at start, or `ferry trigger`), the runner rescans, and the run takes exactly the
//! files that are ready at that moment, the first `ready` of the queue; files that become
//! ready during the run wait for the next one. Each file is processed as any other (its
//! guarantees do not change); the run ends when the last of its files has an outcome, and
//! its row in the journal's `runs` table says what it took, delivered and failed.
//!
//! The gate looks at its clock ([`crate::schedule::Clock`]) at most once a second, and at
//! `<state>/triggers/JOB`, the file `ferry trigger JOB` writes (docs/schedules.md).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use jiff::Timestamp;

use super::process::Outcome;
use crate::job::Job;
use crate::journal::Journal;
use crate::journal::runs::{self, RunFile};
use crate::schedule::{Clock, Timing};

/// Why a run happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    Schedule,
    /// A slot passed while ferry was stopped (one run, however many slots passed).
    Missed,
    /// `ferry trigger JOB`.
    Trigger,
    /// `ferry run --once`.
    Once,
    /// A combined run whose output failed for a reason that may pass, tried again after
    /// the job's `[retry]` backoff (docs/schedules.md, "A combined run's retries").
    Retry,
}

impl Why {
    pub fn as_str(self) -> &'static str {
        match self {
            Why::Schedule => "schedule",
            Why::Missed => "missed",
            Why::Trigger => "trigger",
            Why::Once => "once",
            Why::Retry => "retry",
        }
    }
}

/// The folder `ferry trigger` writes a file named after the job into.
pub fn trigger_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("triggers")
}

/// A run in progress.
struct Run {
    number: i64,
    why: Why,
    slot: Timestamp,
    /// Files of the run not handed to a worker yet.
    left: usize,
    /// Files handed out whose outcome is not known yet.
    outstanding: HashSet<PathBuf>,
    taken: u64,
    delivered: u64,
    failed: u64,
    /// Files queued for another try (the retry queue has them).
    queued: u64,
    files: Vec<RunFile>,
}

/// When a gated job's files may go to the workers.
pub(super) struct Gate {
    job: Arc<Job>,
    journal: Arc<Journal>,
    clock: Clock,
    once: bool,
    trigger: PathBuf,
    /// Where `every` intervals count from.
    anchor: Timestamp,
    next: Option<Timestamp>,
    pending: Option<(Why, Timestamp)>,
    run: Option<Run>,
    /// The job's last run number.
    runs: i64,
    /// Inside the `active` windows (as of the last look).
    inside: bool,
    /// The slot of the last run whose files were queued for another try: a combined
    /// run's retry keeps it (its `{date}`).
    retry_slot: Option<Timestamp>,
}

impl Gate {
    /// The gate of a job with a schedule or windows (`None`: the job takes files as they
    /// become ready). With `--once`, windows do not count, and a scheduled job makes one
    /// run of what is there now.
    pub(super) fn new(job: &Arc<Job>, journal: &Arc<Journal>, once: bool) -> Option<Gate> {
        let timing = &job.source.timing;
        if !timing.is_gated() || (once && !timing.is_scheduled()) {
            return None;
        }
        let clock = Clock::from_env();
        let now = clock.now();
        let _ = journal.flush();
        let newest = journal
            .read(|c| runs::last_run(c, &job.name))
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "Cannot read the job's last run; counting from now.");
                None
            });
        // A combined run's retry keeps the failed run's slot: the schedule counts from the
        // last run that was not a retry (its files are in the retry queue, not redone).
        let last = match &newest {
            Some(r) if r.why == Why::Retry.as_str() => journal
                .read(|c| runs::last_slot_run(c, &job.name))
                .ok()
                .flatten(),
            other => other.clone(),
        };
        let mut gate = Gate {
            job: job.clone(),
            journal: journal.clone(),
            trigger: trigger_dir(journal.state_dir()).join(&job.name),
            anchor: now,
            next: None,
            pending: None,
            run: None,
            runs: newest.as_ref().map_or(0, |r| r.run),
            inside: timing.inside(now),
            retry_slot: journal
                .read(|c| runs::last_queued_slot(c, &job.name))
                .ok()
                .flatten()
                .and_then(|ms| Timestamp::from_millisecond(ms).ok()),
            clock,
            once,
        };
        let interrupted = last
            .as_ref()
            .is_some_and(|r| r.finished_ms.is_none() || r.result == "interrupted");
        if let Some(r) = &newest
            && r.finished_ms.is_none()
        {
            let _ = journal.run_interrupted(&job.name, r.run, now.as_millisecond());
        }
        if once {
            gate.open(Why::Once, now, usize::MAX);
        } else if timing.is_scheduled() {
            gate.plan(last.as_ref().map(|r| r.slot_ms), now);
            if interrupted && gate.pending.is_none() {
                // Its files that were not handled wait in the source: the run is redone once.
                let slot = last.as_ref().map_or(now, |r| {
                    Timestamp::from_millisecond(r.slot_ms).unwrap_or(now)
                });
                tracing::info!(slot = %gate.timing().local(slot), "The job's last run was interrupted by a stop; it runs once now.");
                gate.pending = Some((Why::Missed, slot));
            }
        }
        Some(gate)
    }

    fn timing(&self) -> &Timing {
        &self.job.source.timing
    }

    /// The first slots of a scheduled job: a missed run now when a slot passed since its
    /// last run, then the next slot. A job that never ran waits for its first slot (an
    /// `every` job runs at once, and counts its interval from then).
    fn plan(&mut self, last_slot: Option<i64>, now: Timestamp) {
        let last = last_slot.and_then(|ms| Timestamp::from_millisecond(ms).ok());
        let is_every = matches!(self.timing().when, Some(crate::schedule::When::Every(_)));
        if let Some(last) = last
            && is_every
        {
            self.anchor = last;
        }
        match last {
            Some(last) => {
                if let Some(slot) = self.timing().latest_slot(last, now, self.anchor) {
                    tracing::info!(slot = %self.timing().local(slot), last_run = %self.timing().local(last), "A run was missed while ferry was stopped; it runs once now.");
                    self.pending = Some((Why::Missed, slot));
                }
            }
            None if is_every && self.timing().inside(now) => {
                self.pending = Some((Why::Schedule, now));
            }
            None => {}
        }
        self.next = self.timing().next_slot(now, self.anchor);
        match self.next {
            Some(n) => {
                tracing::info!(schedule = %self.timing().describe(), next_run = %self.timing().local(n), "Scheduled job: it takes files at its runs only.")
            }
            None => {
                tracing::warn!(schedule = %self.timing().describe(), "Scheduled job without a next run inside its windows; `ferry trigger` runs it.")
            }
        }
    }

    /// Whether the next ready file may go to a worker now.
    pub(super) fn may_take(&self) -> bool {
        if self.once {
            return true;
        }
        if self.timing().is_scheduled() {
            self.run.as_ref().is_some_and(|r| r.left > 0)
        } else {
            self.inside
        }
    }

    /// How many files of the queue's head the run in progress takes (`usize::MAX` for a
    /// `--once` run: everything), for a combined run that takes them all at once.
    pub(super) fn run_left(&self) -> usize {
        if self.once {
            return usize::MAX;
        }
        self.run.as_ref().map_or(0, |r| r.left)
    }

    /// The slot of the run in progress (a combined run's `{date}`).
    pub(super) fn run_slot(&self) -> Option<Timestamp> {
        self.run.as_ref().map(|r| r.slot)
    }

    /// Whether files wait for the gate (for the waiting count of `ferry status`).
    pub(super) fn holds_files(&self) -> bool {
        !self.once
    }

    /// A file went to a worker.
    pub(super) fn took(&mut self, path: &Path) {
        if let Some(r) = &mut self.run {
            r.left = r.left.saturating_sub(1);
            r.taken += 1;
            r.outstanding.insert(path.to_path_buf());
        }
    }

    /// A file's outcome; the run ends with the outcome of its last file.
    pub(super) fn outcome(&mut self, path: &Path, outcome: &Outcome) {
        let Some(r) = &mut self.run else { return };
        if !r.outstanding.remove(path) {
            return;
        }
        let result = match outcome {
            Outcome::Done { .. } => {
                r.delivered += 1;
                "delivered"
            }
            Outcome::Failed { .. } | Outcome::Stuck => {
                r.failed += 1;
                "failed"
            }
            Outcome::Ignored { .. } => "skipped",
            // In the retry queue: it stays in the source and is tried again by the queue.
            Outcome::Queued { .. } => {
                r.queued += 1;
                self.retry_slot = Some(r.slot);
                "queued"
            }
            Outcome::Released | Outcome::Waiting => "released",
        };
        r.files.push(RunFile {
            file: path.to_string_lossy().into_owned(),
            result: result.to_string(),
        });
        if r.left == 0 && r.outstanding.is_empty() {
            self.finish(false);
        }
    }

    /// Looks at the clock and the trigger file: the run to start now, if any.
    pub(super) fn tick(&mut self) -> Option<(Why, Timestamp)> {
        if self.once {
            return None;
        }
        let now = self.clock.now();
        if self.timing().is_scheduled() && std::fs::remove_file(&self.trigger).is_ok() {
            tracing::info!("Run triggered (ferry trigger).");
            self.pending = Some((Why::Trigger, now));
        }
        if let Some(next) = self.next
            && next <= now
        {
            let slot = self
                .timing()
                .latest_slot(next, now, self.anchor)
                .unwrap_or(next);
            if slot != next {
                tracing::info!(from = %self.timing().local(next), to = %self.timing().local(slot), "Several slots passed at once (the clock jumped); one run.");
            }
            if self.pending.is_none() {
                self.pending = Some((Why::Schedule, slot));
            }
            self.next = self.timing().next_slot(now, self.anchor);
        }
        let inside = self.timing().inside(now);
        if inside != self.inside && !self.timing().is_scheduled() {
            match self.timing().window_change(now) {
                Some(t) if inside => {
                    tracing::info!(until = %self.timing().local(t), "Inside the job's active window: files are taken.")
                }
                Some(t) => {
                    tracing::info!(until = %self.timing().local(t), "Outside the job's active windows: files wait.")
                }
                None => {}
            }
        }
        self.inside = inside;
        if self.run.is_some() {
            return None;
        }
        match self.pending {
            Some((why, _)) if why == Why::Trigger || inside => self.pending.take(),
            _ => None,
        }
    }

    /// Whether a combined run's retry may start now: no run going or due, inside the
    /// job's windows (a retry is a run: it keeps to them as the schedule's slots do), and
    /// not `--once` (which takes queued originals whose pause is over into its own run).
    pub(super) fn may_retry(&self) -> bool {
        !self.once && self.run.is_none() && self.pending.is_none() && self.inside
    }

    /// The slot a retry run keeps: the failed run's (the machine's time when none is known).
    pub(super) fn retry_slot(&self) -> Timestamp {
        self.retry_slot.unwrap_or_else(|| self.clock.now())
    }

    /// How long until the gate should look again.
    pub(super) fn nap(&self) -> std::time::Duration {
        self.clock.nap(self.next)
    }

    /// Starts a run of the `ready` files at the head of the queue.
    pub(super) fn open(&mut self, why: Why, slot: Timestamp, ready: usize) {
        self.runs += 1;
        let number = self.runs;
        let started = self.clock.now();
        let _ = self.journal.run_started(
            &self.job.name,
            number,
            slot.as_millisecond(),
            why.as_str(),
            started.as_millisecond(),
        );
        if why != Why::Once {
            tracing::info!(run = number, why = why.as_str(), slot = %self.timing().local(slot), files = ready, "Run started: {ready} file(s) ready.");
        }
        self.run = Some(Run {
            number,
            why,
            slot,
            left: ready,
            outstanding: HashSet::new(),
            taken: 0,
            delivered: 0,
            failed: 0,
            queued: 0,
            files: Vec::new(),
        });
        if ready == 0 {
            self.finish(false);
        }
    }

    /// The runner stops: a run still going ends, `interrupted` when some of its files were
    /// not handled (they wait in the source for the next run).
    pub(super) fn stop(&mut self) {
        if let Some(r) = &mut self.run {
            if r.why == Why::Once {
                r.left = 0;
            }
            let interrupted = r.left > 0 || !r.outstanding.is_empty();
            self.finish(interrupted);
        }
    }

    fn finish(&mut self, interrupted: bool) {
        let Some(r) = self.run.take() else { return };
        let result = if interrupted {
            "interrupted"
        } else if r.failed > 0 {
            "failed"
        } else if r.queued > 0 {
            "queued"
        } else {
            "ok"
        };
        let _ = self.journal.run_finished(
            &self.job.name,
            r.number,
            self.clock.now().as_millisecond(),
            result,
            [r.taken, r.delivered, r.failed],
            &r.files,
        );
        tracing::info!(
            run = r.number,
            why = r.why.as_str(),
            slot = %self.timing().local(r.slot),
            result,
            taken = r.taken,
            delivered = r.delivered,
            failed = r.failed,
            "Run finished: {} taken, {} delivered, {} failed.",
            r.taken,
            r.delivered,
            r.failed
        );
    }
}
