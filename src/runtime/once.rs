//! The bound of `ferry run --once` on files that do not settle (docs/design.md, "What
//! `--once` means"): a file present at start that is still not ready `settle` plus
//! [`ONCE_GRACE`] after the run's first look is left for the next run, and the run goes on
//! (and ends). Without it, one file that a writer keeps growing would hold the run (and a
//! combining job's whole batch) until ferry is stopped. Camel's file consumer does the same
//! with its `readLockTimeout` (10 s by default for `readLock=changed`): a file whose lock
//! cannot be had in time is skipped until the next poll.

use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How much longer than its `settle` a `--once` run waits for a file present at start.
pub const ONCE_GRACE: Duration = Duration::from_secs(10);

impl super::JobState {
    /// When the `--once` run's first look was at `now`: the time its waiting ends.
    pub(super) fn once_bound(&self, now: Instant) -> Instant {
        now + self.job.source.settle + ONCE_GRACE
    }

    /// The bound passed: every file of the run that is still settling is left for the next
    /// run (and not taken by this one even if it settles now).
    pub(super) fn once_leave_settling(&mut self) {
        let Some(pending) = &self.once_pending else {
            return;
        };
        let left: Vec<PathBuf> = self
            .tracker
            .settling()
            .into_iter()
            .filter(|p| pending.contains(p))
            .collect();
        for p in left {
            tracing::info!(file = %p.display(), wait = ?self.job.source.settle + ONCE_GRACE, "Still not ready after its settle time and the --once grace; left for the next run.");
            self.resolve_once(&p);
            self.once_left.insert(p);
        }
    }
}
