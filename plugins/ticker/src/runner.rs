//! One named schedule's loop, apart from any pool so it can be tested on a
//! paused clock with a fake executor.
//!
//! Planned times lie on an absolute timeline: each one follows the previous
//! *planned* time (never "now"), so slow runs and late wake-ups do not
//! shift the ones after. Runs are spawned, so the loop keeps its timing
//! while they execute; the overlap policy decides what a due run does while
//! others are still in flight.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rr_plugin::AtomicHistogram;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::plan::{jitter_delay, next_after, unix_ms, Timeline, Timing};
use crate::schedule::{wait_until, HISTOGRAM_BOUNDS};

/// What a due run does while earlier runs are still in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overlap {
    /// Drop it and count it as skipped (the default).
    Skip,
    /// Keep at most one pending run, started when the running one ends;
    /// further due runs are skipped.
    Queue,
    /// Run up to this many at once; beyond that, skip.
    Allow(usize),
    /// Cancel the running one (its worker is killed) and start this one.
    Replace,
}

/// Everything the loop needs to know about one schedule.
#[derive(Debug, Clone)]
pub struct ScheduleSpec {
    /// The schedule's name (its key under `ticker.schedules`).
    pub name: Arc<str>,
    /// When it runs.
    pub timing: Timing,
    /// What overlapping runs do.
    pub overlap: Overlap,
    /// A random delay in `[0, jitter)` added to each planned time.
    pub jitter: Duration,
    /// One run's bound; `None` leaves only the pool's `exec_ttl`.
    pub timeout: Option<Duration>,
    /// Run once right at start, then follow the timing.
    pub run_on_start: bool,
}

/// One run handed to the executor.
#[derive(Debug, Clone)]
pub struct Run {
    /// The schedule's name.
    pub schedule: Arc<str>,
    /// The time the run was planned for (before jitter).
    pub planned: DateTime<Utc>,
    /// When it started.
    pub started: DateTime<Utc>,
}

impl Run {
    /// The payload context: `extra`, then `schedule`, `planned` and
    /// `started` (unix milliseconds), which `extra` cannot override.
    pub fn context(&self, extra: &serde_json::Map<String, serde_json::Value>) -> String {
        let mut map = extra.clone();
        map.insert("schedule".to_owned(), self.schedule.to_string().into());
        map.insert("planned".to_owned(), unix_ms(self.planned).into());
        map.insert("started".to_owned(), unix_ms(self.started).into());
        serde_json::Value::Object(map).to_string()
    }
}

/// Counters of one schedule since it started.
#[derive(Debug)]
pub struct ScheduleStats {
    started: AtomicU64,
    succeeded: AtomicU64,
    failed: AtomicU64,
    timed_out: AtomicU64,
    skipped: AtomicU64,
    queued: AtomicU64,
    replaced: AtomicU64,
    /// How long each run took, seconds.
    pub duration: AtomicHistogram,
    /// How late each run started against its (jittered) planned time, seconds.
    pub lateness: AtomicHistogram,
}

impl Default for ScheduleStats {
    fn default() -> Self {
        ScheduleStats {
            started: AtomicU64::new(0),
            succeeded: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            timed_out: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            queued: AtomicU64::new(0),
            replaced: AtomicU64::new(0),
            duration: AtomicHistogram::new(&HISTOGRAM_BOUNDS),
            lateness: AtomicHistogram::new(&HISTOGRAM_BOUNDS),
        }
    }
}

macro_rules! getters {
    ($($name:ident: $doc:literal),* $(,)?) => {
        impl ScheduleStats {
            $(
                #[doc = $doc]
                pub fn $name(&self) -> u64 {
                    self.$name.load(Ordering::Relaxed)
                }
            )*
        }
    };
}

getters! {
    started: "Runs started.",
    succeeded: "Runs that completed successfully.",
    failed: "Runs that failed (worker error, crash, timeout).",
    timed_out: "Runs that passed the schedule's `timeout` (also counted as failed).",
    skipped: "Due runs dropped by the overlap policy (or missed while the loop was late).",
    queued: "Due runs held back by `overlap: queue` to start when the running one ends.",
    replaced: "Running runs cancelled by `overlap: replace`.",
}

fn bump(counter: &AtomicU64, by: u64) {
    counter.fetch_add(by, Ordering::Relaxed);
}

enum Outcome {
    Ok,
    Failed(String),
    TimedOut(Duration),
}

/// Runs `spec` until `stop` turns true; runs in flight then complete (or
/// reach their timeout), a queued one is dropped.
pub async fn run<F, Fut, E>(
    spec: ScheduleSpec,
    timeline: Timeline,
    stats: Arc<ScheduleStats>,
    mut stop: watch::Receiver<bool>,
    execute: F,
) where
    F: Fn(Run) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: std::fmt::Display + Send + 'static,
{
    let execute = Arc::new(execute);
    let name = Arc::clone(&spec.name);
    let mut running: JoinSet<Outcome> = JoinSet::new();
    let mut pending: Option<DateTime<Utc>> = None;
    let now = timeline.now_utc();
    let mut planned = if spec.run_on_start {
        Some(now)
    } else {
        next_after(&spec.timing, now)
    };
    let jittered = |planned: DateTime<Utc>, immediate: bool| {
        let delay = if immediate {
            Duration::ZERO
        } else {
            jitter_delay(spec.jitter)
        };
        planned + chrono::Duration::from_std(delay).unwrap_or_default()
    };
    let mut fire = planned.map(|p| jittered(p, spec.run_on_start));
    let mut timer = Box::pin(wait_until(
        fire.map_or_else(far_future, |f| timeline.instant_of(f)),
    ));

    let start = |running: &mut JoinSet<Outcome>, planned: DateTime<Utc>, due: DateTime<Utc>| {
        let started = timeline.now_utc();
        let lateness = (started - due).to_std().unwrap_or_default();
        stats.lateness.observe(lateness.as_secs_f64());
        bump(&stats.started, 1);
        let run = Run {
            schedule: Arc::clone(&name),
            planned,
            started,
        };
        let execute = Arc::clone(&execute);
        let timeout = spec.timeout;
        let stats = Arc::clone(&stats);
        running.spawn(async move {
            let began = tokio::time::Instant::now();
            let exec = execute(run);
            let outcome = match timeout {
                Some(limit) => match tokio::time::timeout(limit, exec).await {
                    Ok(Ok(())) => Outcome::Ok,
                    Ok(Err(e)) => Outcome::Failed(e.to_string()),
                    Err(_) => Outcome::TimedOut(limit),
                },
                None => match exec.await {
                    Ok(()) => Outcome::Ok,
                    Err(e) => Outcome::Failed(e.to_string()),
                },
            };
            stats.duration.observe(began.elapsed().as_secs_f64());
            outcome
        });
    };

    loop {
        tokio::select! {
            // Stop wins over a run that is due at the same instant.
            biased;
            () = stopped(&mut stop) => break,
            Some(done) = running.join_next(), if !running.is_empty() => {
                record(&spec.name, &stats, done);
                if let Some(queued) = pending.take() {
                    start(&mut running, queued, queued);
                }
            }
            () = &mut timer, if fire.is_some() => {
                let (Some(due_planned), Some(due)) = (planned, fire) else { continue };
                match spec.overlap {
                    _ if running.is_empty() => start(&mut running, due_planned, due),
                    Overlap::Skip => skip(&spec.name, &stats, due_planned),
                    Overlap::Queue => {
                        if pending.is_none() {
                            pending = Some(due_planned);
                            bump(&stats.queued, 1);
                        } else {
                            skip(&spec.name, &stats, due_planned);
                        }
                    }
                    Overlap::Allow(max) => {
                        if running.len() < max {
                            start(&mut running, due_planned, due);
                        } else {
                            skip(&spec.name, &stats, due_planned);
                        }
                    }
                    Overlap::Replace => {
                        let cancelled = running.len() as u64;
                        // Dropping an exec future kills its worker: that is
                        // how the pool treats a caller that gives up.
                        running.shutdown().await;
                        bump(&stats.replaced, cancelled);
                        tracing::info!(target: "ticker", schedule = %spec.name, cancelled, "running schedule run replaced by a new one");
                        start(&mut running, due_planned, due);
                    }
                }
                // The next planned time after this one; those already
                // passed (the loop was late by whole periods) are missed.
                let now = timeline.now_utc();
                let mut next = next_after(&spec.timing, due_planned);
                let mut missed = 0;
                while let Some(n) = next {
                    if n > now {
                        break;
                    }
                    missed += 1;
                    next = next_after(&spec.timing, n);
                }
                if missed > 0 {
                    bump(&stats.skipped, missed);
                    tracing::warn!(target: "ticker", schedule = %spec.name, missed, "schedule runs missed: the scheduler was late by whole periods");
                }
                planned = next;
                fire = next.map(|n| jittered(n, false));
                timer.set(wait_until(fire.map_or_else(far_future, |f| timeline.instant_of(f))));
            }
        }
    }
    if let Some(queued) = pending {
        tracing::debug!(target: "ticker", schedule = %spec.name, planned = unix_ms(queued), "queued schedule run dropped at stop");
    }
    while let Some(done) = running.join_next().await {
        record(&spec.name, &stats, done);
    }
}

/// Resolves once `stop` turns true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}

fn far_future() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(86_400 * 365)
}

fn skip(name: &str, stats: &ScheduleStats, planned: DateTime<Utc>) {
    bump(&stats.skipped, 1);
    tracing::debug!(target: "ticker", schedule = %name, planned = unix_ms(planned), "schedule run skipped: the previous run is still in flight");
}

fn record(name: &str, stats: &ScheduleStats, done: Result<Outcome, tokio::task::JoinError>) {
    match done {
        Ok(Outcome::Ok) => bump(&stats.succeeded, 1),
        Ok(Outcome::Failed(error)) => {
            bump(&stats.failed, 1);
            tracing::warn!(target: "ticker", schedule = %name, error = %error, "schedule run failed");
        }
        Ok(Outcome::TimedOut(limit)) => {
            bump(&stats.failed, 1);
            bump(&stats.timed_out, 1);
            tracing::warn!(target: "ticker", schedule = %name, timeout = ?limit, "schedule run timed out; its worker is killed");
        }
        // Cancelled by `replace` (already counted) or a panic in the executor.
        Err(e) if e.is_cancelled() => {}
        Err(e) => {
            bump(&stats.failed, 1);
            tracing::warn!(target: "ticker", schedule = %name, error = %e, "schedule run panicked");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use tokio::time::Instant;

    fn every(ms: u64, overlap: Overlap) -> ScheduleSpec {
        ScheduleSpec {
            name: Arc::from("job"),
            timing: Timing::Every(Duration::from_millis(ms)),
            overlap,
            jitter: Duration::ZERO,
            timeout: None,
            run_on_start: false,
        }
    }

    /// (planned ms, started ms) since the timeline's start, and whether it completed.
    type Seen = Arc<Mutex<Vec<(i64, i64, bool)>>>;

    /// Runs `spec` for `total` on a paused clock; each run takes `work`.
    async fn drive(
        spec: ScheduleSpec,
        work: Duration,
        total: Duration,
    ) -> (Vec<(i64, i64, bool)>, Arc<ScheduleStats>) {
        let origin = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .expect("date")
            .with_timezone(&Utc);
        let timeline = Timeline::starting_at(origin);
        let stats = Arc::new(ScheduleStats::default());
        let seen: Seen = Arc::default();
        let (stop_tx, stop_rx) = watch::channel(false);
        let task = {
            let seen = Arc::clone(&seen);
            tokio::spawn(run(
                spec,
                timeline,
                Arc::clone(&stats),
                stop_rx,
                move |r: Run| {
                    let seen = Arc::clone(&seen);
                    async move {
                        let index = {
                            let mut seen = seen.lock().unwrap_or_else(|p| p.into_inner());
                            seen.push((
                                (r.planned - origin).num_milliseconds(),
                                (r.started - origin).num_milliseconds(),
                                false,
                            ));
                            seen.len() - 1
                        };
                        tokio::time::sleep(work).await;
                        seen.lock().unwrap_or_else(|p| p.into_inner())[index].2 = true;
                        Ok::<(), String>(())
                    }
                },
            ))
        };
        tokio::time::sleep(total).await;
        let _ = stop_tx.send(true);
        task.await.expect("loop ends");
        let seen = seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
        (seen, stats)
    }

    fn planned(seen: &[(i64, i64, bool)]) -> Vec<i64> {
        seen.iter().map(|s| s.0).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn every_runs_on_an_absolute_timeline() {
        let (seen, stats) = drive(
            every(100, Overlap::Skip),
            Duration::from_millis(30),
            Duration::from_millis(1050),
        )
        .await;
        assert_eq!(
            planned(&seen),
            (1..=10).map(|k| k * 100).collect::<Vec<_>>()
        );
        assert!(seen.iter().all(|(p, s, done)| p == s && *done), "{seen:?}");
        assert_eq!(
            (stats.started(), stats.succeeded(), stats.skipped()),
            (10, 10, 0)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn skip_drops_runs_due_while_one_is_in_flight() {
        // 250 ms runs every 100 ms: 100 runs until 350, 200 and 300 are
        // skipped, 400 runs until 650, ...
        let (seen, stats) = drive(
            every(100, Overlap::Skip),
            Duration::from_millis(250),
            Duration::from_millis(1050),
        )
        .await;
        assert_eq!(planned(&seen), [100, 400, 700, 1000]);
        assert_eq!(stats.skipped(), 6);
    }

    #[tokio::test(start_paused = true)]
    async fn queue_keeps_one_pending_run() {
        // 250 ms runs: 100 runs to 350; 200 is queued and 300 skipped; 200
        // starts at 350 and runs to 600; 400 is queued, 500 skipped; ...
        let (seen, stats) = drive(
            every(100, Overlap::Queue),
            Duration::from_millis(250),
            Duration::from_millis(1000),
        )
        .await;
        let starts: Vec<(i64, i64)> = seen.iter().map(|s| (s.0, s.1)).collect();
        assert_eq!(&starts[..3], [(100, 100), (200, 350), (400, 600)]);
        // Back to back: each queued run starts when the previous one ends.
        for pair in starts.windows(2) {
            assert_eq!(pair[1].1 - pair[0].1, 250, "{starts:?}");
        }
        assert!(stats.queued() >= 3);
        assert!(stats.skipped() >= 3);
    }

    #[tokio::test(start_paused = true)]
    async fn allow_runs_up_to_max_concurrent() {
        // 250 ms runs every 100 ms: 3 would overlap; with 2 allowed every
        // third is skipped.
        let (seen, stats) = drive(
            every(100, Overlap::Allow(2)),
            Duration::from_millis(250),
            Duration::from_millis(1050),
        )
        .await;
        assert_eq!(planned(&seen), [100, 200, 400, 500, 700, 800, 1000]);
        assert_eq!(stats.skipped(), 3);
        let (seen, stats) = drive(
            every(100, Overlap::Allow(3)),
            Duration::from_millis(250),
            Duration::from_millis(1050),
        )
        .await;
        assert_eq!(seen.len(), 10);
        assert_eq!(stats.skipped(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn replace_cancels_the_running_one() {
        let (seen, stats) = drive(
            every(100, Overlap::Replace),
            Duration::from_millis(250),
            Duration::from_millis(1050),
        )
        .await;
        assert_eq!(seen.len(), 10, "every due run starts");
        // Each run but the last is cancelled by the next one before it ends.
        let completed = seen.iter().filter(|s| s.2).count();
        assert_eq!(
            completed, 1,
            "only the last, which stop lets finish: {seen:?}"
        );
        assert_eq!(stats.replaced(), 9);
        assert_eq!(stats.succeeded(), 1);
        assert_eq!(stats.failed(), 0, "a replaced run is not a failure");
    }

    #[tokio::test(start_paused = true)]
    async fn run_on_start_fires_at_once() {
        let spec = ScheduleSpec {
            run_on_start: true,
            ..every(1000, Overlap::Skip)
        };
        let (seen, _) = drive(spec, Duration::from_millis(10), Duration::from_millis(1500)).await;
        assert_eq!(planned(&seen), [0, 1000]);
    }

    #[tokio::test(start_paused = true)]
    async fn timeout_fails_the_run() {
        let spec = ScheduleSpec {
            timeout: Some(Duration::from_millis(50)),
            ..every(100, Overlap::Skip)
        };
        let (seen, stats) =
            drive(spec, Duration::from_millis(80), Duration::from_millis(350)).await;
        assert_eq!(seen.len(), 3);
        assert!(seen.iter().all(|s| !s.2), "none completes");
        assert_eq!(
            (stats.failed(), stats.timed_out(), stats.succeeded()),
            (3, 3, 0)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn jitter_delays_within_its_bound_without_moving_the_plan() {
        let spec = ScheduleSpec {
            jitter: Duration::from_millis(40),
            ..every(100, Overlap::Allow(10))
        };
        let (seen, _) = drive(spec, Duration::from_millis(1), Duration::from_millis(2050)).await;
        assert_eq!(
            planned(&seen),
            (1..=20).map(|k| k * 100).collect::<Vec<_>>()
        );
        for (p, s, _) in &seen {
            // [0, 40) ms of jitter; the paused clock's timer rounds a wait
            // up to the next whole millisecond, hence the closed bound.
            assert!((0..=40).contains(&(s - p)), "started {s} for planned {p}");
        }
        assert!(seen.iter().any(|(p, s, _)| s != p), "some delay was drawn");
    }

    #[tokio::test(start_paused = true)]
    async fn cron_runs_across_a_dst_change_on_the_test_clock() {
        let timeline = Timeline::starting_at(
            DateTime::parse_from_rfc3339("2026-03-28T12:00:00Z")
                .expect("date")
                .with_timezone(&Utc),
        );
        let spec = ScheduleSpec {
            timing: Timing::Cron {
                cron: Box::new(crate::plan::parse_cron("30 2 * * *").expect("cron")),
                timezone: crate::plan::parse_timezone("Europe/Berlin").expect("tz"),
            },
            ..every(1, Overlap::Skip)
        };
        let stats = Arc::new(ScheduleStats::default());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (stop_tx, stop_rx) = watch::channel(false);
        let begin = Instant::now();
        let task = {
            let seen = Arc::clone(&seen);
            tokio::spawn(run(
                spec,
                timeline,
                Arc::clone(&stats),
                stop_rx,
                move |r: Run| {
                    seen.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push((r.planned, begin.elapsed()));
                    async { Ok::<(), String>(()) }
                },
            ))
        };
        tokio::time::sleep(Duration::from_secs(2 * 86_400)).await;
        let _ = stop_tx.send(true);
        task.await.expect("loop ends");
        let seen = seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let planned: Vec<String> = seen.iter().map(|(p, _)| p.to_rfc3339()).collect();
        assert_eq!(
            planned,
            ["2026-03-29T01:00:00+00:00", "2026-03-30T00:30:00+00:00"]
        );
        // 13 h after 12:00 UTC, then 23.5 h later: the monotonic waits match.
        assert_eq!(seen[0].1, Duration::from_secs(13 * 3600));
        assert_eq!(seen[1].1, Duration::from_secs(36 * 3600 + 1800));
    }
}
