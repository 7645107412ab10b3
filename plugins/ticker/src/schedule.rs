//! The tick loop, apart from any pool so it can be tested on a paused clock.
//!
//! Ticks are planned on an absolute timeline (`start + k * interval`), so a
//! slow tick or a late wake-up never shifts the ticks after it. Ticks run one
//! at a time; a tick that falls due while the previous one still runs is
//! skipped and counted, as Go's ticker in the design document drops it.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rr_plugin::AtomicHistogram;
use tokio::sync::watch;
use tokio::time::Instant;

/// Upper bounds (seconds) of the duration and lateness histograms.
pub(crate) const HISTOGRAM_BOUNDS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0,
];

/// Counters of one ticker since it started.
#[derive(Debug)]
pub struct TickerStats {
    sent: AtomicU64,
    failed: AtomicU64,
    skipped: AtomicU64,
    last_lateness_us: AtomicU64,
    /// How long each tick's execution took, seconds.
    pub duration: AtomicHistogram,
    /// How late each tick started against its plan, seconds.
    pub lateness: AtomicHistogram,
}

impl Default for TickerStats {
    fn default() -> Self {
        TickerStats {
            sent: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            last_lateness_us: AtomicU64::new(0),
            duration: AtomicHistogram::new(&HISTOGRAM_BOUNDS),
            lateness: AtomicHistogram::new(&HISTOGRAM_BOUNDS),
        }
    }
}

impl TickerStats {
    /// Ticks executed, successful or not.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Ticks whose execution failed (worker error, crash, timeout).
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    /// Ticks skipped because the previous one was still running.
    pub fn skipped(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }

    /// How late the last tick started versus its plan.
    pub fn last_lateness(&self) -> Duration {
        Duration::from_micros(self.last_lateness_us.load(Ordering::Relaxed))
    }
}

/// One tick to execute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tick {
    /// The tick counter, from 0.
    pub number: u64,
    /// Unix seconds when the previous tick completed; 0 before the first.
    pub last_tick: u64,
}

impl Tick {
    /// The payload body: `{"tick": N}`.
    pub fn body(&self) -> String {
        format!(r#"{{"tick":{}}}"#, self.number)
    }

    /// The payload context: `{"lastTick": <unix seconds>}`.
    pub fn context(&self) -> String {
        format!(r#"{{"lastTick":{}}}"#, self.last_tick)
    }
}

/// Runs ticks every `interval` until `stop` turns true. A tick in progress
/// when stop arrives completes first.
pub async fn run<F, Fut, E>(
    interval: Duration,
    stats: &TickerStats,
    mut stop: watch::Receiver<bool>,
    mut execute: F,
) where
    F: FnMut(Tick) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let start = Instant::now();
    let mut slot: u64 = 1;
    let mut tick = Tick {
        number: 0,
        last_tick: 0,
    };
    loop {
        let planned = slot_time(start, interval, slot);
        tokio::select! {
            // Stop wins over a tick that is due at the same instant.
            biased;
            changed = stop.wait_for(|stopped| *stopped) => {
                let _ = changed;
                return;
            }
            () = wait_until(planned) => {}
        }
        let lateness = Instant::now().saturating_duration_since(planned);
        stats
            .last_lateness_us
            .store(lateness.as_micros() as u64, Ordering::Relaxed);
        stats.lateness.observe(lateness.as_secs_f64());
        let began = Instant::now();
        let result = execute(tick).await;
        stats.duration.observe(began.elapsed().as_secs_f64());
        stats.sent.fetch_add(1, Ordering::Relaxed);
        match result {
            Ok(()) => tracing::debug!(
                target: "ticker",
                tick = tick.number,
                lateness_us = lateness.as_micros() as u64,
                duration_us = began.elapsed().as_micros() as u64,
                "tick done"
            ),
            Err(err) => {
                stats.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(target: "ticker", tick = tick.number, error = %err, "tick failed; ticking goes on");
            }
        }
        tick = Tick {
            number: tick.number + 1,
            last_tick: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        };
        // The next slot is the first one still in the future; the ones
        // passed while this tick ran are skipped.
        let elapsed_slots = (Instant::now().saturating_duration_since(start).as_nanos()
            / interval.as_nanos().max(1)) as u64;
        let next = (elapsed_slots + 1).max(slot + 1);
        let skipped = next - slot - 1;
        if skipped > 0 {
            stats.skipped.fetch_add(skipped, Ordering::Relaxed);
            tracing::debug!(target: "ticker", skipped, "ticks skipped: they fell due while the previous tick was running");
        }
        slot = next;
    }
}

/// How early the runtime's timer hands over to the precise wait.
const COARSE_MARGIN: Duration = Duration::from_millis(2);

/// Waits until `deadline` to within tens of microseconds.
///
/// tokio's timer works in whole milliseconds (a deadline is rounded up to
/// the next tick, and the wait itself again), which made ticks 0.5 to 2 ms
/// late and capped a 1 ms ticker near 500 ticks a second. So the runtime
/// timer is used only until shortly before the deadline, and a blocking
/// thread sleeps the rest with the OS's high-resolution timer.
pub(crate) async fn wait_until(deadline: Instant) {
    if let Some(coarse) = deadline.checked_sub(COARSE_MARGIN) {
        tokio::time::sleep_until(coarse).await;
    }
    let remaining = deadline.saturating_duration_since(Instant::now());
    if !remaining.is_zero() {
        let _ = tokio::task::spawn_blocking(move || std::thread::sleep(remaining)).await;
    }
    // Only a paused (test) clock can still be short of the deadline here; a
    // tokio sleep on a passed deadline would wait for the timer's next tick.
    if Instant::now() < deadline {
        tokio::time::sleep_until(deadline).await;
    }
}

/// When slot `slot` falls due: `start + slot * interval`, computed in
/// nanoseconds so a long-running ticker never overflows or rounds.
fn slot_time(start: Instant, interval: Duration, slot: u64) -> Instant {
    let offset = interval.as_nanos().saturating_mul(u128::from(slot));
    start + Duration::from_nanos(u64::try_from(offset).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    async fn run_for(
        interval: Duration,
        total: Duration,
        work: impl Fn(Tick) -> Duration + Send + Sync + 'static,
    ) -> (Vec<(Tick, Duration)>, Arc<TickerStats>) {
        let stats = Arc::new(TickerStats::default());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (stop_tx, stop_rx) = watch::channel(false);
        let start = Instant::now();
        let task = {
            let stats = Arc::clone(&stats);
            let seen = Arc::clone(&seen);
            tokio::spawn(async move {
                run(interval, &stats, stop_rx, |tick| {
                    seen.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push((tick, start.elapsed()));
                    let took = work(tick);
                    async move {
                        tokio::time::sleep(took).await;
                        Ok::<(), String>(())
                    }
                })
                .await;
            })
        };
        tokio::time::sleep(total).await;
        let _ = stop_tx.send(true);
        task.await.expect("loop ends");
        let seen = seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
        (seen, stats)
    }

    #[tokio::test(start_paused = true)]
    async fn ticks_land_on_an_absolute_timeline() {
        let (seen, stats) = run_for(
            Duration::from_millis(100),
            Duration::from_millis(1050),
            |_| Duration::from_millis(30),
        )
        .await;
        assert_eq!(seen.len(), 10);
        for (k, (tick, at)) in seen.iter().enumerate() {
            assert_eq!(tick.number, k as u64);
            assert_eq!(*at, Duration::from_millis(100 * (k as u64 + 1)), "no drift");
        }
        assert_eq!(seen[0].0.last_tick, 0, "the first tick has no previous one");
        assert!(seen[1].0.last_tick > 0);
        assert_eq!(stats.skipped(), 0);
        assert_eq!(stats.sent(), 10);
    }

    #[tokio::test(start_paused = true)]
    async fn ticks_due_during_a_slow_tick_are_skipped_and_counted() {
        // Tick 0 (at 100 ms) takes 250 ms: slots 200 and 300 pass, next is 400.
        let (seen, stats) = run_for(
            Duration::from_millis(100),
            Duration::from_millis(550),
            |tick| {
                if tick.number == 0 {
                    Duration::from_millis(250)
                } else {
                    Duration::from_millis(10)
                }
            },
        )
        .await;
        let times: Vec<Duration> = seen.iter().map(|(_, at)| *at).collect();
        assert_eq!(
            times,
            [100, 400, 500].map(Duration::from_millis),
            "skipped slots are not made up"
        );
        assert_eq!(stats.skipped(), 2);
        let numbers: Vec<u64> = seen.iter().map(|(t, _)| t.number).collect();
        assert_eq!(numbers, [0, 1, 2], "the counter counts executed ticks");
    }

    #[tokio::test(start_paused = true)]
    async fn failures_are_counted_and_ticking_goes_on() {
        let stats = TickerStats::default();
        let (stop_tx, stop_rx) = watch::channel(false);
        let runner = run(
            Duration::from_millis(10),
            &stats,
            stop_rx,
            |tick| async move {
                if tick.number % 2 == 0 {
                    Err("worker crashed")
                } else {
                    Ok(())
                }
            },
        );
        let stopper = async {
            tokio::time::sleep(Duration::from_millis(45)).await;
            let _ = stop_tx.send(true);
        };
        tokio::join!(runner, stopper);
        assert_eq!(stats.sent(), 4);
        assert_eq!(stats.failed(), 2);
    }

    #[test]
    fn payload_shapes_match_the_design_document() {
        let tick = Tick {
            number: 7,
            last_tick: 1_700_000_000,
        };
        assert_eq!(tick.body(), r#"{"tick":7}"#);
        assert_eq!(tick.context(), r#"{"lastTick":1700000000}"#);
    }
}
