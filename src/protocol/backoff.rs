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
        let base = self
            .min
            .saturating_mul(1u32 << self.failures.min(16))
            .min(self.max);
        self.failures = self.failures.saturating_add(1);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let jitter = (f64::from(nanos % 1000) / 1000.0 - 0.5) * 0.4; // -0.2 .. 0.2
        base.mul_f64(1.0 + jitter)
    }

    pub fn succeed(&mut self) {
        self.failures = 0;
    }

    pub fn failures(&self) -> u32 {
        self.failures
    }
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
}
