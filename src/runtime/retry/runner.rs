//! The retry queue in a job's runner: held files are not taken, queued outcomes pause
//! their destination, a delivered probe lets the destination's files go. A few hooks
//! that `runtime`'s `JobState` calls.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::holds::{Check, Holds, Pause};
use crate::job::Job;
use crate::journal::{Journal, now_ms};
use crate::sources::folder::Found;
use crate::sources::staging::{free_text, int, text};

/// The holds of `job` as the journal has them (after a restart): its queued files that
/// are still in the source, and its paused destinations.
pub fn load(job: &Job, journal: &Journal) -> Holds {
    let mut holds = Holds::new(job.retry.clone());
    let (now, now_wall) = (Instant::now(), now_ms());
    for r in super::rows(journal, &job.name) {
        if !crate::fsutil::exists(Path::new(&r.path)) {
            super::forget(journal, &job.name, Path::new(&r.path));
            continue;
        }
        let age = Duration::from_millis(now_wall.saturating_sub(r.first_failed).max(0) as u64);
        holds.hold(PathBuf::from(&r.path), r.meta, r.dest, age, now);
    }
    let paused: Vec<(String, u32, i64)> = journal
        .read(|c| {
            let mut st =
                c.prepare("SELECT dest, failures, until_ms FROM retry_paused WHERE job = ?1")?;
            st.query_map([&job.name], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect()
        })
        .unwrap_or_default();
    for (dest, failures, until_ms) in paused {
        let left = Duration::from_millis(until_ms.saturating_sub(now_wall).max(0) as u64);
        holds.pause(dest, failures, now + left);
    }
    if !holds.is_empty() {
        tracing::info!(job = %job.name, queued = holds.len(), "Files wait in the retry queue.");
    }
    holds
}

fn record_pause(journal: &Journal, job: &str, p: &Pause, error: &str) {
    let left = p.until.saturating_duration_since(Instant::now());
    let _ = journal.exec(
        "INSERT OR REPLACE INTO retry_paused (job, dest, failures, until_ms, error) VALUES (?1, ?2, ?3, ?4, ?5)",
        vec![
            text(job),
            text(&p.dest),
            int(i64::from(p.failures)),
            int(now_ms() + left.as_millis() as i64),
            free_text(error),
        ],
        false,
    );
}

impl super::super::JobState {
    /// Whether the file `f` is held in the retry queue (then it is not taken now).
    pub(in crate::runtime) fn retry_held(&mut self, f: &Found) -> bool {
        if self.holds.is_empty() {
            return false;
        }
        if self.job.combines() {
            return self.retry_held_in_run(f);
        }
        match self.holds.check(&f.path, f.meta, Instant::now()) {
            Check::Go => return false,
            Check::Hold => {}
            Check::HoldUntil(t) => self.wakes.push(std::cmp::Reverse((t, f.path.clone()))),
        }
        if self.once_pending.is_some() {
            tracing::info!(file = %f.path.display(), "Queued for another try; left for a later run.");
            self.resolve_once(&f.path);
        }
        true
    }

    /// [`Self::retry_held`] for a combining job: its queued originals wait together for a
    /// retry run ([`Self::retry_due`]), not one by one; `--once` takes those whose pause is
    /// over into its run.
    fn retry_held_in_run(&mut self, f: &Found) -> bool {
        if !self.holds.held_unchanged(&f.path, f.meta) {
            return false;
        }
        if self.once_pending.is_some() {
            if self.holds.due_one(&f.path, Instant::now()) {
                return false;
            }
            tracing::info!(file = %f.path.display(), "Queued for another try; left for a later run.");
            self.resolve_once(&f.path);
        }
        true
    }

    /// A combining job's queued originals whose destination's pause is over, unchanged
    /// and still in the source, handed to processing (the tracker marks them taken), each
    /// with when it was first seen: the files of a retry run. Changed ones are new files,
    /// looked at as any other.
    pub(in crate::runtime) fn retry_due(&mut self) -> Vec<(Found, i64)> {
        if self.holds.is_empty() {
            return Vec::new();
        }
        let mut files = Vec::new();
        for p in self.holds.due_batch(Instant::now()) {
            let Some(f) = self.stat(&p) else {
                self.tracker.vanished(&p);
                self.holds.released(&p);
                continue;
            };
            let row = super::row_for(&self.journal, &self.job.name, &p, f.meta);
            if row.is_none() {
                self.holds.released(&p);
                self.observe(f);
                continue;
            }
            let first_seen = self.tracker.take(&f.path, f.meta, now_ms());
            files.push((f, first_seen));
        }
        files
    }

    /// A file was queued after a failure at `dest` that may pass.
    pub(in crate::runtime) fn retry_queued(
        &mut self,
        found: &Found,
        dest: &str,
        first_failed_ms: i64,
        error: &str,
    ) {
        let now = Instant::now();
        self.tracker.released(&found.path, now);
        let age = Duration::from_millis(now_ms().saturating_sub(first_failed_ms).max(0) as u64);
        let jitter = crate::protocol::backoff::jitter();
        if let Some(p) = self
            .holds
            .queued(&found.path, found.meta, dest, age, now, jitter)
        {
            let wait = p.until.saturating_duration_since(now);
            tracing::warn!(destination = %dest, pause = ?wait, failures = p.failures, "Destination paused: its queued files wait, the job's other files go on.");
            record_pause(&self.journal, &self.job.name, &p, error);
        }
        // A combined run's originals wait together for a retry run (`retry_due`), which
        // the gate's clock starts; no wake of their own.
        let check = if self.job.combines() {
            Check::Hold
        } else {
            self.holds.check(&found.path, found.meta, now)
        };
        match check {
            Check::HoldUntil(t) => self.wakes.push(std::cmp::Reverse((t, found.path.clone()))),
            Check::Hold => {}
            Check::Go => self
                .wakes
                .push(std::cmp::Reverse((now, found.path.clone()))),
        }
        if self.once_pending.is_some() {
            self.resolve_once(&found.path);
        }
    }

    /// A file was delivered: when it was its destination's probe, the destination works
    /// again and its queued files are taken now.
    pub(in crate::runtime) fn retry_delivered(&mut self, path: &Path) {
        let Some((dest, go)) = self.holds.finished(path) else {
            return;
        };
        tracing::info!(destination = %dest, queued = go.len(), "The destination works again; its queued files go now.");
        let _ = self.journal.exec(
            "DELETE FROM retry_paused WHERE job = ?1 AND dest = ?2",
            vec![text(&self.job.name), text(&dest)],
            false,
        );
        for p in go {
            if let Some(f) = self.stat(&p) {
                self.observe(f);
            }
        }
    }

    /// After a full listing: queued files that left the source (moved away or deleted by
    /// someone) leave the queue.
    pub(in crate::runtime) fn retry_forget_missing(
        &mut self,
        seen: &std::collections::HashSet<PathBuf>,
    ) {
        if self.holds.is_empty() {
            return;
        }
        for p in self.holds.forget_missing(seen) {
            tracing::info!(file = %p.display(), "A queued file left its source; it leaves the retry queue.");
            super::forget(&self.journal, &self.job.name, &p);
        }
    }

    /// A file ended otherwise (failed for good, given back, stuck).
    pub(in crate::runtime) fn retry_released(&mut self, path: &Path) {
        self.holds.released(path);
    }
}
