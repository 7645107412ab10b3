//! How often a driver tries a broker it cannot reach.

use std::time::Duration;

/// Exponential pacing of reconnect attempts: 100 ms, doubling up to 5 s,
/// and back to 100 ms once a connection works. A broker restart costs a
/// short gap, and a long outage is not hammered with attempts.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
}

impl Backoff {
    /// The first wait.
    pub const MIN: Duration = Duration::from_millis(100);
    /// The longest wait.
    pub const MAX: Duration = Duration::from_secs(5);

    /// Pacing that starts at [`Backoff::MIN`].
    pub fn new() -> Backoff {
        Backoff { next: Self::MIN }
    }

    /// The wait before the next attempt; the one after it is twice as
    /// long, up to [`Backoff::MAX`].
    pub fn next_wait(&mut self) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        wait
    }

    /// A connection worked: the next failure waits [`Backoff::MIN`] again.
    pub fn reset(&mut self) {
        self.next = Self::MIN;
    }

    /// The wait before failed attempt `attempt` (1 for the first retry),
    /// for clients that count attempts themselves.
    pub fn for_attempt(attempt: usize) -> Duration {
        let doublings = u32::try_from(attempt.saturating_sub(1))
            .unwrap_or(u32::MAX)
            .min(16);
        Self::MIN.saturating_mul(1 << doublings).min(Self::MAX)
    }
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_the_cap_and_start_over_after_a_success() {
        let mut backoff = Backoff::new();
        let waits: Vec<u64> = (0..8)
            .map(|_| backoff.next_wait().as_millis() as u64)
            .collect();
        assert_eq!(waits, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        backoff.reset();
        assert_eq!(backoff.next_wait(), Backoff::MIN);
    }

    #[test]
    fn a_counted_attempt_gets_the_same_wait() {
        let mut backoff = Backoff::new();
        for attempt in 1..40 {
            assert_eq!(
                Backoff::for_attempt(attempt),
                backoff.next_wait(),
                "attempt {attempt}"
            );
        }
        assert_eq!(Backoff::for_attempt(0), Backoff::MIN);
        assert_eq!(Backoff::for_attempt(usize::MAX), Backoff::MAX);
    }
}
