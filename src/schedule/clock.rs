//! The time schedules are computed with: the system's, or, for tests, one they set.
//!
//! `FERRY_TEST_CLOCK=PATH` makes ferry (the daemon and the commands alike) read the current
//! time from the file PATH, an RFC 3339 timestamp such as `2026-03-29T00:59:00Z`, which
//! the test rewrites to move time on. It is for tests only: it moves the time of schedules,
//! windows and the times of runs (and the ages of files waiting for review, `runtime::review`),
//! nothing else (readiness, `settle` and every timeout keep
//! the real clock). The schedule's loop looks at the clock at most once a second (every
//! 50 ms with a test clock), never in a file's path through the engine.

use std::path::PathBuf;
use std::time::Duration;

use jiff::Timestamp;

/// The environment variable that names a test clock's file.
pub const TEST_CLOCK_ENV: &str = "FERRY_TEST_CLOCK";

/// The longest the schedule's loop sleeps before it looks again: slots are met within a
/// second although the machine may sleep or its clock be set, and `ferry trigger` is
/// answered within a second.
const MAX_NAP: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Clock {
    System,
    /// A test's clock: the time written in this file.
    File(PathBuf),
}

impl Clock {
    /// The test clock when `FERRY_TEST_CLOCK` is set, the system's otherwise.
    pub fn from_env() -> Clock {
        match std::env::var_os(TEST_CLOCK_ENV) {
            Some(p) if !p.is_empty() => Clock::File(PathBuf::from(p)),
            _ => Clock::System,
        }
    }

    pub fn now(&self) -> Timestamp {
        match self {
            Clock::System => Timestamp::now(),
            Clock::File(p) => match std::fs::read_to_string(p)
                .ok()
                .and_then(|s| s.trim().parse::<Timestamp>().ok())
            {
                Some(t) => t,
                None => {
                    tracing::warn!(file = %p.display(), "{TEST_CLOCK_ENV}: cannot read an RFC 3339 time from the file; using the system's time.");
                    Timestamp::now()
                }
            },
        }
    }

    /// How long to sleep (in real time) before looking at the clock again, when the next
    /// thing due is at `due`: until then, but at most a second (50 ms with a test clock).
    pub fn nap(&self, due: Option<Timestamp>) -> Duration {
        match self {
            Clock::File(_) => Duration::from_millis(50),
            Clock::System => {
                let until = due
                    .map(|d| d.duration_since(Timestamp::now()).as_millis().max(10) as u64)
                    .unwrap_or(u64::MAX);
                Duration::from_millis(until).min(MAX_NAP)
            }
        }
    }
}
