//! "Is this file completely written?" as a small state machine.
//!
//! A file is taken only after it was seen twice with the same size and modification time,
//! `settle` apart (or at once with `settle = "0s"`), and, in done-file mode, only while its
//! trigger file exists. Wall-clock mtimes are compared only with each other, never with the
//! local clock: on a share whose server clock is off, "old" mtimes say nothing.
//!
//! The clock is a parameter (`now`), so tests drive it from tables of cases.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What the source saw of a file: enough to notice that it is still being written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub size: u64,
    pub mtime_ns: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Unchanged since `since`.
    Settling { since: Instant },
    /// Handed to processing.
    Taken,
    /// Processed and still in the source (kept): ignored until it changes.
    Finished,
}

#[derive(Debug, Clone)]
struct Entry {
    meta: Meta,
    phase: Phase,
    /// Wall-clock time first seen, ms since the epoch, for the journal.
    first_seen_ms: i64,
}

/// What to do about a file after an observation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Take it now.
    Ready { first_seen_ms: i64 },
    /// Look again at this instant.
    WaitUntil(Instant),
    /// Waiting for something other than time (its done-file).
    Blocked,
    /// Being processed, or finished and unchanged.
    Ignore,
}

/// Readiness of every file of one source.
#[derive(Debug)]
pub struct Tracker {
    settle: Duration,
    entries: HashMap<PathBuf, Entry>,
}

impl Tracker {
    pub fn new(settle: Duration) -> Self {
        Tracker {
            settle,
            entries: HashMap::new(),
        }
    }

    /// Records an observation of `path`. `gate_open` is false while a required done-file is
    /// missing. `wall_ms` is the wall-clock time, recorded as "first seen".
    pub fn observe(
        &mut self,
        path: &Path,
        meta: Meta,
        now: Instant,
        gate_open: bool,
        wall_ms: i64,
    ) -> Verdict {
        let settle = self.settle;
        let entry = self.entries.entry(path.to_path_buf()).or_insert(Entry {
            meta,
            phase: Phase::Settling { since: now },
            first_seen_ms: wall_ms,
        });
        match entry.phase {
            Phase::Taken => return Verdict::Ignore,
            Phase::Finished if entry.meta == meta => return Verdict::Ignore,
            Phase::Finished => {
                // Same name, new content: a legacy system reused the name.
                *entry = Entry {
                    meta,
                    phase: Phase::Settling { since: now },
                    first_seen_ms: wall_ms,
                };
            }
            Phase::Settling { .. } if entry.meta != meta => {
                entry.meta = meta;
                entry.phase = Phase::Settling { since: now };
            }
            Phase::Settling { .. } => {}
        }
        let Phase::Settling { since } = entry.phase else {
            return Verdict::Ignore;
        };
        if !gate_open {
            return Verdict::Blocked;
        }
        let due = since + settle;
        if now >= due {
            entry.phase = Phase::Taken;
            Verdict::Ready {
                first_seen_ms: entry.first_seen_ms,
            }
        } else {
            Verdict::WaitUntil(due)
        }
    }

    /// The file is gone from the source.
    pub fn vanished(&mut self, path: &Path) {
        if let Some(e) = self.entries.get(path)
            && e.phase != Phase::Taken
        {
            self.entries.remove(path);
        }
    }

    /// Processing ended. `kept` is the file's identity when it is still in the source and must
    /// not be taken again while unchanged; `None` when it left the source.
    pub fn finished(&mut self, path: &Path, kept: Option<Meta>) {
        match kept {
            Some(meta) => {
                if let Some(e) = self.entries.get_mut(path) {
                    e.meta = meta;
                    e.phase = Phase::Finished;
                }
            }
            None => {
                self.entries.remove(path);
            }
        }
    }

    /// Processing gave the file back (it changed while being taken, or shutdown): it settles
    /// again from `now`.
    pub fn released(&mut self, path: &Path, now: Instant) {
        if let Some(e) = self.entries.get_mut(path) {
            e.phase = Phase::Settling { since: now };
        }
    }

    /// Hands a file to processing without a look at its readiness (a combined run's
    /// queued original, retried whole: it was ready when its run took it, and it is
    /// unchanged). Returns when it was first seen.
    pub fn take(&mut self, path: &Path, meta: Meta, wall_ms: i64) -> i64 {
        let e = self.entries.entry(path.to_path_buf()).or_insert(Entry {
            meta,
            phase: Phase::Taken,
            first_seen_ms: wall_ms,
        });
        e.meta = meta;
        e.phase = Phase::Taken;
        e.first_seen_ms
    }

    /// Marks a known, already processed file (found in the journal) as finished.
    pub fn mark_finished(&mut self, path: &Path, meta: Meta, wall_ms: i64) {
        self.entries.insert(
            path.to_path_buf(),
            Entry {
                meta,
                phase: Phase::Finished,
                first_seen_ms: wall_ms,
            },
        );
    }

    pub fn is_known(&self, path: &Path) -> bool {
        self.entries.contains_key(path)
    }

    /// Files that are still settling, for `ferry status`.
    pub fn waiting(&self) -> usize {
        self.entries
            .values()
            .filter(|e| matches!(e.phase, Phase::Settling { .. }))
            .count()
    }

    pub fn in_flight(&self) -> usize {
        self.entries
            .values()
            .filter(|e| e.phase == Phase::Taken)
            .count()
    }

    /// Paths not seen in a full scan that are not in flight: to be forgotten.
    pub fn forget_missing(&mut self, seen: &std::collections::HashSet<PathBuf>) {
        self.entries
            .retain(|p, e| e.phase == Phase::Taken || seen.contains(p));
    }

    /// Every settling path, for the next look.
    pub fn settling(&self) -> Vec<PathBuf> {
        self.entries
            .iter()
            .filter(|(_, e)| matches!(e.phase, Phase::Settling { .. }))
            .map(|(p, _)| p.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const M1: Meta = Meta {
        size: 10,
        mtime_ns: 1,
    };
    const M2: Meta = Meta {
        size: 20,
        mtime_ns: 2,
    };

    /// (offset in ms, meta, gate open, expected verdict kind)
    fn run(settle_ms: u64, steps: &[(u64, Meta, bool, &str)]) {
        let t0 = Instant::now();
        let mut t = Tracker::new(Duration::from_millis(settle_ms));
        let p = Path::new("/in/a.csv");
        for (i, (at, meta, gate, want)) in steps.iter().enumerate() {
            let v = t.observe(p, *meta, t0 + Duration::from_millis(*at), *gate, 0);
            let got = match v {
                Verdict::Ready { .. } => "ready".to_string(),
                Verdict::WaitUntil(d) => format!("wait {}", (d - t0).as_millis()),
                Verdict::Blocked => "blocked".into(),
                Verdict::Ignore => "ignore".into(),
            };
            assert_eq!(got, *want, "step {i} of {steps:?}");
        }
    }

    #[test]
    fn settle_cases() {
        // Unchanged for the settle time: taken.
        run(
            2000,
            &[
                (0, M1, true, "wait 2000"),
                (1000, M1, true, "wait 2000"),
                (2000, M1, true, "ready"),
            ],
        );
        // Still growing: the clock restarts at every change.
        run(
            2000,
            &[
                (0, M1, true, "wait 2000"),
                (1500, M2, true, "wait 3500"),
                (3000, M2, true, "wait 3500"),
                (3500, M2, true, "ready"),
            ],
        );
        // Zero settle: at once.
        run(0, &[(0, M1, true, "ready"), (5, M1, true, "ignore")]);
        // Done-file mode: blocked until the trigger exists.
        run(
            0,
            &[
                (0, M1, false, "blocked"),
                (100, M1, false, "blocked"),
                (200, M1, true, "ready"),
            ],
        );
        // A taken file is ignored whatever happens to it.
        run(0, &[(0, M1, true, "ready"), (10, M2, true, "ignore")]);
    }

    #[test]
    fn kept_files_come_back_only_when_changed() {
        let t0 = Instant::now();
        let mut t = Tracker::new(Duration::ZERO);
        let p = Path::new("/in/a.csv");
        assert!(matches!(
            t.observe(p, M1, t0, true, 0),
            Verdict::Ready { .. }
        ));
        t.finished(p, Some(M1));
        assert_eq!(t.observe(p, M1, t0, true, 0), Verdict::Ignore);
        assert!(matches!(
            t.observe(p, M2, t0, true, 0),
            Verdict::Ready { .. }
        ));
        t.finished(p, None);
        assert!(!t.is_known(p));
    }

    #[test]
    fn vanished_and_released() {
        let t0 = Instant::now();
        let mut t = Tracker::new(Duration::from_secs(1));
        let p = Path::new("/in/a.csv");
        assert_eq!(
            t.observe(p, M1, t0, true, 0),
            Verdict::WaitUntil(t0 + Duration::from_secs(1))
        );
        assert_eq!(t.waiting(), 1);
        t.vanished(p);
        assert_eq!(t.waiting(), 0);
        let t1 = t0 + Duration::from_secs(5);
        assert_eq!(
            t.observe(p, M1, t1, true, 0),
            Verdict::WaitUntil(t1 + Duration::from_secs(1))
        );
        assert!(matches!(
            t.observe(p, M1, t1 + Duration::from_secs(1), true, 0),
            Verdict::Ready { .. }
        ));
        t.vanished(p); // in flight: kept
        assert_eq!(t.in_flight(), 1);
        t.released(p, t1 + Duration::from_secs(2));
        assert_eq!(t.waiting(), 1);
    }
}
