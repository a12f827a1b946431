//! Retry timing of remote transfers.

use std::time::Duration;

/// Exponential backoff: 1 s doubling to 5 min, with ±20% jitter so that many failing
/// deliveries do not retry in lockstep.
#[derive(Debug, Clone)]
pub struct Backoff {
    failures: u32,
    pub min: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            failures: 0,
            min: Duration::from_secs(1),
            max: Duration::from_secs(300),
        }
    }
}

impl Backoff {
    /// Records a failure; returns how long to wait before the next try.
    pub fn fail(&mut self) -> Duration {
        let wait = wait(self.min, self.max, self.failures, jitter());
        self.failures = self.failures.saturating_add(1);
        wait
    }

    pub fn succeed(&mut self) {
        self.failures = 0;
    }

    pub fn failures(&self) -> u32 {
        self.failures
    }
}

/// The wait after the `failures`-th failure in a row (0 for the first): `min` doubled
/// `failures` times, at most `max`, scaled by `1 + jitter` (`jitter` in -0.2..0.2). A pure
/// function, so that retry timing is tested with chosen jitter instead of a clock.
pub fn wait(min: Duration, max: Duration, failures: u32, jitter: f64) -> Duration {
    let base = min.saturating_mul(1u32 << failures.min(16)).min(max);
    base.mul_f64(1.0 + jitter.clamp(-0.2, 0.2))
}

/// A jitter in -0.2..0.2 from the clock's nanoseconds (no random generator needed: what
/// matters is that many failing deliveries do not retry in lockstep).
pub fn jitter() -> f64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    (f64::from(nanos % 1000) / 1000.0 - 0.5) * 0.4
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_cap_with_jitter() {
        let mut b = Backoff::default();
        let waits: Vec<Duration> = (0..12).map(|_| b.fail()).collect();
        assert!(waits[0] >= Duration::from_millis(800) && waits[0] <= Duration::from_millis(1200));
        assert!(waits[1] >= Duration::from_millis(1600) && waits[1] <= Duration::from_millis(2400));
        assert!(waits[11] <= Duration::from_secs(360) && waits[11] >= Duration::from_secs(240));
        b.succeed();
        assert!(b.fail() <= Duration::from_millis(1200));
    }

    #[test]
    fn waits_double_to_the_cap_and_jitter_stays_within_a_fifth() {
        let (m, x) = (Duration::from_secs(60), Duration::from_secs(3600));
        let cases = [
            (0, 0.0, 60),
            (1, 0.0, 120),
            (5, 0.0, 1920),
            (6, 0.0, 3600),
            (30, 0.0, 3600),
            (0, 0.2, 72),
            (0, -0.2, 48),
            (0, 0.9, 72),
            (6, -0.9, 2880),
        ];
        for (failures, jitter, secs) in cases {
            assert_eq!(
                wait(m, x, failures, jitter),
                Duration::from_secs(secs),
                "{failures} failures, jitter {jitter}"
            );
        }
        assert!((-0.2..=0.2).contains(&jitter()));
    }
}
