//! The runner's side of the retry queue: which queued files wait, and the circuit breaker
//! of each destination. Pure state with the time passed in, so that it is tested from a
//! table of steps with a clock the test controls.
//!
//! A destination is **closed** (no entry: files go), **open** (`until` in the future:
//! its queued files wait, and one wake is scheduled for a probe at `until`), or
//! **half-open** (`until` passed: the first queued file that is looked at goes as the
//! probe; the others wait for its outcome). A delivered probe closes the destination and
//! lets all its files go at once; a failed probe opens it again for twice as long (from
//! `every` up to `max`, ±20% jitter). Failures of other files while it is open do not
//! lengthen the pause.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::job::retry::Retry;
use crate::readiness::Meta;

/// What the runner does with a file it looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// Not held (or its turn came): take it as usual.
    Go,
    /// Held; someone else's wake or outcome lets it go.
    Hold,
    /// Held; look at it again at this time (it is its destination's next probe).
    HoldUntil(Instant),
}

#[derive(Debug, Clone)]
struct Held {
    meta: Meta,
    dest: String,
    /// Past this, it goes whatever the breaker says (one last try, then the error folder).
    deadline: Option<Instant>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Probe {
    None,
    Scheduled,
    InFlight(PathBuf),
}

#[derive(Debug, Clone)]
struct Dest {
    failures: u32,
    until: Instant,
    probe: Probe,
}

/// The queued files of one job and the state of their destinations.
#[derive(Debug)]
pub struct Holds {
    files: HashMap<PathBuf, Held>,
    dests: HashMap<String, Dest>,
    retry: Retry,
}

/// A destination's pause, for the journal (`ferry status`, restarts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pause {
    pub dest: String,
    pub failures: u32,
    pub until: Instant,
}

impl Holds {
    pub fn new(retry: Retry) -> Holds {
        Holds {
            files: HashMap::new(),
            dests: HashMap::new(),
            retry,
        }
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// A queued file (at start, from the journal), which first failed `age` ago.
    pub fn hold(&mut self, path: PathBuf, meta: Meta, dest: String, age: Duration, now: Instant) {
        let deadline = self
            .retry
            .give_up_after
            .map(|g| now + g.saturating_sub(age));
        self.files.insert(
            path,
            Held {
                meta,
                dest,
                deadline,
            },
        );
    }

    /// A destination paused at start (from the journal).
    pub fn pause(&mut self, dest: String, failures: u32, until: Instant) {
        self.dests.insert(
            dest,
            Dest {
                failures,
                until,
                probe: Probe::None,
            },
        );
    }

    /// Whether the file at `path` (as it is now: `meta`) may be taken at `now`.
    pub fn check(&mut self, path: &Path, meta: Meta, now: Instant) -> Check {
        let Some(h) = self.files.get(path) else {
            return Check::Go;
        };
        // A file that changed is a new file; one past its deadline has its last try.
        if h.meta != meta || h.deadline.is_some_and(|d| now >= d) {
            self.files.remove(path);
            return Check::Go;
        }
        let dest = self.dests.entry(h.dest.clone()).or_insert(Dest {
            failures: 0,
            until: now,
            probe: Probe::None,
        });
        if dest.until > now {
            if dest.probe == Probe::None {
                dest.probe = Probe::Scheduled;
                return Check::HoldUntil(dest.until);
            }
            return Check::Hold;
        }
        match &dest.probe {
            Probe::InFlight(p) if p != path => Check::Hold,
            _ => {
                dest.probe = Probe::InFlight(path.to_path_buf());
                self.files.remove(path);
                Check::Go
            }
        }
    }

    /// The file at `path` failed at `dest` for a reason that may pass and was queued; it
    /// first failed `age` ago. Returns the destination's pause when it changed (a closed
    /// destination, or a failed probe: paused again, for longer), for the journal.
    pub fn queued(
        &mut self,
        path: &Path,
        meta: Meta,
        dest: &str,
        age: Duration,
        now: Instant,
        jitter: f64,
    ) -> Option<Pause> {
        let d = self.dests.entry(dest.to_string()).or_insert(Dest {
            failures: 0,
            until: now,
            probe: Probe::None,
        });
        let was_probe = matches!(&d.probe, Probe::InFlight(p) if p == path);
        let changed = was_probe || d.until <= now;
        if changed {
            let wait = crate::protocol::backoff::wait(
                self.retry.every,
                self.retry.max,
                d.failures,
                jitter,
            );
            d.until = now + wait;
            d.failures = d.failures.saturating_add(1);
            d.probe = Probe::None;
        }
        let pause = changed.then(|| Pause {
            dest: dest.to_string(),
            failures: d.failures,
            until: d.until,
        });
        self.hold(path.to_path_buf(), meta, dest.to_string(), age, now);
        pause
    }

    /// The file at `path` was delivered (or failed for good: the destination answered).
    /// When it was a destination's probe, the destination is closed and its queued files
    /// are returned, to be taken now; and the destination, to drop its pause on record.
    pub fn finished(&mut self, path: &Path) -> Option<(String, Vec<PathBuf>)> {
        let dest = self
            .dests
            .iter()
            .find(|(_, d)| matches!(&d.probe, Probe::InFlight(p) if p == path))
            .map(|(k, _)| k.clone())?;
        self.dests.remove(&dest);
        let go: Vec<PathBuf> = self
            .files
            .iter()
            .filter(|(_, h)| h.dest == dest)
            .map(|(p, _)| p.clone())
            .collect();
        for p in &go {
            self.files.remove(p);
        }
        Some((dest, go))
    }

    /// The file at `path` ended otherwise (given back, stuck): when it was a probe, the
    /// next file looked at is the probe.
    pub fn released(&mut self, path: &Path) {
        for d in self.dests.values_mut() {
            if matches!(&d.probe, Probe::InFlight(p) if p == path) {
                d.probe = Probe::None;
            }
        }
    }

    /// The file at `path` vanished from the source (or was taken by the admin).
    pub fn vanished(&mut self, path: &Path) {
        self.files.remove(path);
        self.released(path);
    }

    /// Forgets the held files that are no longer in the source (`seen`: every file a full
    /// listing found); returns them.
    pub fn forget_missing(&mut self, seen: &std::collections::HashSet<PathBuf>) -> Vec<PathBuf> {
        let gone: Vec<PathBuf> = self
            .files
            .keys()
            .filter(|p| !seen.contains(*p))
            .cloned()
            .collect();
        for p in &gone {
            self.vanished(p);
        }
        gone
    }

    /// A combined run's queued original (a combining job holds its queued files as one
    /// batch, see [`Holds::due_batch`]): whether the file at `path` is held as this version
    /// of it. A changed file is a new file: it leaves the queue.
    pub fn held_unchanged(&mut self, path: &Path, meta: Meta) -> bool {
        match self.files.get(path) {
            Some(h) if h.meta == meta => true,
            Some(_) => {
                self.files.remove(path);
                false
            }
            None => false,
        }
    }

    /// Whether the held file at `path` may go now (its destination is not paused, or its
    /// `for` ran out); then it leaves the holds and is its destination's probe unless
    /// another file is. For `run --once` of a combining job.
    pub fn due_one(&mut self, path: &Path, now: Instant) -> bool {
        let Some(h) = self.files.get(path) else {
            return false;
        };
        let dest = self.dests.get(&h.dest);
        let due = dest.is_none_or(|d| d.until <= now) || h.deadline.is_some_and(|d| now >= d);
        if due {
            let h = self.files.remove(path).expect("held");
            let d = self.dests.entry(h.dest).or_insert(Dest {
                failures: 0,
                until: now,
                probe: Probe::None,
            });
            if d.probe == Probe::None {
                d.probe = Probe::InFlight(path.to_path_buf());
            }
        }
        due
    }

    /// A combining job's retry run: every held file whose destination's pause is over (or
    /// that has none on record, after a restart), or whose `for` ran out, leaves the holds
    /// together, in path order; the first of each destination is its probe (its delivery
    /// closes the destination, its failure pauses it for longer). Empty while every
    /// destination is paused.
    pub fn due_batch(&mut self, now: Instant) -> Vec<PathBuf> {
        let dests = &self.dests;
        let mut due: Vec<PathBuf> = self
            .files
            .iter()
            .filter(|(_, h)| {
                dests.get(&h.dest).is_none_or(|d| d.until <= now)
                    || h.deadline.is_some_and(|d| now >= d)
            })
            .map(|(p, _)| p.clone())
            .collect();
        due.sort();
        for p in &due {
            let h = self.files.remove(p).expect("held");
            let d = self.dests.entry(h.dest).or_insert(Dest {
                failures: 0,
                until: now,
                probe: Probe::None,
            });
            if !matches!(d.probe, Probe::InFlight(_)) {
                d.probe = Probe::InFlight(p.clone());
            }
        }
        due
    }

    /// The destinations paused now, with how many files wait for each.
    pub fn paused(&self, now: Instant) -> Vec<(Pause, usize)> {
        self.dests
            .iter()
            .filter(|(_, d)| d.until > now)
            .map(|(k, d)| {
                let n = self.files.values().filter(|h| &h.dest == k).count();
                (
                    Pause {
                        dest: k.clone(),
                        failures: d.failures,
                        until: d.until,
                    },
                    n,
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retry() -> Retry {
        Retry {
            every: Duration::from_secs(60),
            max: Duration::from_secs(600),
            give_up_after: Some(Duration::from_secs(3600)),
            written: true,
        }
    }

    fn m(size: u64) -> Meta {
        Meta { size, mtime_ns: 1 }
    }

    /// A dead share, then back: one probe per pause, pauses doubling to `max`, every file
    /// let go when a probe is delivered; another destination is never held.
    #[test]
    fn a_dead_destination_is_probed_once_per_pause_then_drained() {
        let t0 = Instant::now();
        let s = |n: u64| t0 + Duration::from_secs(n);
        let mut h = Holds::new(retry());
        let (a, b, c) = (Path::new("in/a"), Path::new("in/b"), Path::new("in/c"));
        // a and b fail at the share: paused 60 s (no jitter in the test).
        let p = h.queued(a, m(1), "share", Duration::ZERO, s(0), 0.0);
        assert_eq!(p.map(|p| (p.failures, p.until)), Some((1, s(60))));
        assert_eq!(h.queued(b, m(1), "share", Duration::ZERO, s(1), 0.0), None);
        // The first looked at schedules the probe's wake; the other waits silently.
        assert_eq!(h.check(a, m(1), s(2)), Check::HoldUntil(s(60)));
        assert_eq!(h.check(b, m(1), s(2)), Check::Hold);
        // Another destination's files are not held at all.
        assert_eq!(h.check(c, m(1), s(2)), Check::Go);
        // At 60 s one goes (the probe); the other waits for its outcome.
        assert_eq!(h.check(a, m(1), s(60)), Check::Go);
        assert_eq!(h.check(b, m(1), s(61)), Check::Hold);
        // The probe fails: paused twice as long.
        let p = h.queued(a, m(1), "share", Duration::from_secs(60), s(62), 0.0);
        assert_eq!(p.map(|p| (p.failures, p.until)), Some((2, s(182))));
        assert_eq!(h.check(b, m(1), s(63)), Check::HoldUntil(s(182)));
        assert_eq!(h.check(a, m(1), s(63)), Check::Hold);
        // Probe b at 182 s; delivered: the share is closed and a goes at once.
        assert_eq!(h.check(b, m(1), s(182)), Check::Go);
        let (dest, go) = h.finished(b).expect("b was the probe");
        assert_eq!((dest.as_str(), go), ("share", vec![a.to_path_buf()]));
        assert!(h.is_empty());
        assert_eq!(h.check(a, m(1), s(183)), Check::Go);
    }

    #[test]
    fn pauses_double_up_to_max_with_jitter() {
        let t0 = Instant::now();
        let mut h = Holds::new(retry());
        let f = Path::new("in/f");
        let mut now = t0;
        let mut waits = Vec::new();
        for _ in 0..6 {
            let p = h.queued(f, m(1), "ftp", Duration::ZERO, now, 0.1).unwrap();
            waits.push((p.until - now).as_secs());
            now = p.until;
            assert_eq!(h.check(f, m(1), now), Check::Go);
        }
        assert_eq!(waits, [66, 132, 264, 528, 660, 660]);
    }

    #[test]
    fn a_changed_file_or_one_past_its_deadline_goes() {
        let t0 = Instant::now();
        let mut h = Holds::new(retry());
        let f = Path::new("in/f");
        h.queued(f, m(1), "share", Duration::ZERO, t0, 0.0);
        assert_eq!(
            h.check(f, m(2), t0),
            Check::Go,
            "a new version is a new file"
        );
        h.queued(f, m(1), "share", Duration::from_secs(3590), t0, 0.0);
        assert_eq!(
            h.check(f, m(1), t0 + Duration::from_secs(5)),
            Check::HoldUntil(t0 + Duration::from_secs(60))
        );
        assert_eq!(h.check(f, m(1), t0 + Duration::from_secs(10)), Check::Go);
    }

    #[test]
    fn files_that_left_the_source_leave_the_queue() {
        let t0 = Instant::now();
        let mut h = Holds::new(retry());
        let (a, b) = (PathBuf::from("a"), PathBuf::from("b"));
        h.hold(a.clone(), m(1), "d".into(), Duration::ZERO, t0);
        h.hold(b.clone(), m(1), "d".into(), Duration::ZERO, t0);
        let seen: std::collections::HashSet<PathBuf> = [b.clone()].into();
        assert_eq!(h.forget_missing(&seen), [a]);
        assert_eq!(h.len(), 1);
    }

    /// A combined run's originals wait together and go together when the pause ends; a
    /// failed retry run pauses the destination for longer; a delivered one closes it.
    #[test]
    fn a_combined_run_is_retried_whole_after_each_pause() {
        let t0 = Instant::now();
        let s = |n: u64| t0 + Duration::from_secs(n);
        let mut h = Holds::new(retry());
        let (a, b) = (Path::new("in/a"), Path::new("in/b"));
        assert_eq!(
            h.queued(a, m(1), "out", Duration::ZERO, s(0), 0.0)
                .map(|p| p.until),
            Some(s(60))
        );
        assert_eq!(h.queued(b, m(1), "out", Duration::ZERO, s(0), 0.0), None);
        assert!(h.held_unchanged(a, m(1)) && h.held_unchanged(b, m(1)));
        assert!(h.due_batch(s(59)).is_empty());
        assert_eq!(h.due_batch(s(60)), [a.to_path_buf(), b.to_path_buf()]);
        assert!(h.is_empty());
        // The retry run fails again: paused twice as long, both held again.
        let p = h.queued(a, m(1), "out", Duration::from_secs(60), s(61), 0.0);
        assert_eq!(p.map(|p| (p.failures, p.until)), Some((2, s(181))));
        assert_eq!(
            h.queued(b, m(1), "out", Duration::from_secs(60), s(61), 0.0),
            None
        );
        assert!(h.due_batch(s(180)).is_empty());
        assert_eq!(h.due_batch(s(181)).len(), 2);
        // Delivered: the probe closes the destination.
        let (dest, go) = h.finished(a).expect("a was the probe");
        assert_eq!((dest.as_str(), go.len()), ("out", 0));
        assert!(h.finished(b).is_none());
        // A changed original is a new file.
        h.queued(a, m(1), "out", Duration::ZERO, s(200), 0.0);
        assert!(!h.held_unchanged(a, m(2)));
        assert!(h.is_empty());
    }

    #[test]
    fn a_probe_given_back_lets_the_next_file_probe() {
        let t0 = Instant::now();
        let mut h = Holds::new(retry());
        let (a, b) = (Path::new("a"), Path::new("b"));
        h.hold(a.into(), m(1), "d".into(), Duration::ZERO, t0);
        h.hold(b.into(), m(1), "d".into(), Duration::ZERO, t0);
        assert_eq!(h.check(a, m(1), t0), Check::Go);
        assert_eq!(h.check(b, m(1), t0), Check::Hold);
        h.released(a);
        assert_eq!(h.check(b, m(1), t0), Check::Go);
    }
}
