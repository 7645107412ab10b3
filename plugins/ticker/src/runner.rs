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
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rr_plugin::AtomicHistogram;
use tokio::sync::{mpsc, oneshot, watch};
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

/// Which planned times missed while paused run on `Resume`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CatchUp {
    /// None: they are skipped (the default).
    #[default]
    None,
    /// Only the latest one.
    Last,
    /// The latest ones, up to this many, oldest first, one after another.
    All(usize),
}

impl CatchUp {
    /// How many missed runs it keeps.
    pub fn keep(self) -> usize {
        match self {
            CatchUp::None => 0,
            CatchUp::Last => 1,
            CatchUp::All(limit) => limit,
        }
    }
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
    /// What `Resume` does with the planned times passed while paused.
    pub catch_up: CatchUp,
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

/// A command for a running schedule's loop (see [`run_controlled`]).
#[derive(Debug)]
pub enum Control {
    /// Run now under the overlap policy; answers whether a run started.
    Trigger(oneshot::Sender<bool>),
    /// Plan nothing until resumed; answers once paused.
    Pause(oneshot::Sender<()>),
    /// Replan from now on the absolute timeline; answers once resumed.
    Resume(oneshot::Sender<()>),
}

/// What the control API reports of a schedule besides its counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScheduleStatus {
    /// Paused by [`Control::Pause`].
    pub paused: bool,
    /// The next planned time (before jitter); `None` while paused or when
    /// a cron expression has no further occurrence.
    pub next_run: Option<DateTime<Utc>>,
    /// When the last run started.
    pub last_run: Option<DateTime<Utc>>,
    /// `ok` or `failed: <cause>` of the last run that ended.
    pub last_result: Option<String>,
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
    caught_up: AtomicU64,
    /// How long each run took, seconds.
    pub duration: AtomicHistogram,
    /// How late each run started against its (jittered) planned time, seconds.
    pub lateness: AtomicHistogram,
    status: Mutex<ScheduleStatus>,
}

impl ScheduleStats {
    /// Paused, next run, last run and last result, as of now.
    pub fn status(&self) -> ScheduleStatus {
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn update(&self, change: impl FnOnce(&mut ScheduleStatus)) {
        change(&mut self.status.lock().unwrap_or_else(|p| p.into_inner()));
    }
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
            caught_up: AtomicU64::new(0),
            duration: AtomicHistogram::new(&HISTOGRAM_BOUNDS),
            lateness: AtomicHistogram::new(&HISTOGRAM_BOUNDS),
            status: Mutex::new(ScheduleStatus::default()),
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
    caught_up: "Runs missed while paused and run on `Resume` (`catch_up`).",
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
    stop: watch::Receiver<bool>,
    execute: F,
) where
    F: Fn(Run) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: std::fmt::Display + Send + 'static,
{
    run_controlled(spec, timeline, stats, stop, None, execute).await;
}

/// What the overlap policy makes of a run due now.
enum Admit {
    Start,
    Skip,
    Queue,
    Replace,
}

fn admit(overlap: Overlap, running: usize, pending: bool) -> Admit {
    match overlap {
        _ if running == 0 => Admit::Start,
        Overlap::Skip => Admit::Skip,
        Overlap::Queue if pending => Admit::Skip,
        Overlap::Queue => Admit::Queue,
        Overlap::Allow(max) if running < max => Admit::Start,
        Overlap::Allow(_) => Admit::Skip,
        Overlap::Replace => Admit::Replace,
    }
}

/// The first planned time after `now`, starting with `candidate` itself,
/// and how many planned times up to `now` were passed over.
pub fn first_after(
    timing: &Timing,
    candidate: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> (Option<DateTime<Utc>>, u64) {
    let (next, missed, _) = missed_times(timing, candidate, now, 0);
    (next, missed)
}

/// [`first_after`], plus the latest `keep` passed-over planned times,
/// oldest first.
pub fn missed_times(
    timing: &Timing,
    candidate: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    keep: usize,
) -> (Option<DateTime<Utc>>, u64, Vec<DateTime<Utc>>) {
    let Some(mut next) = candidate else {
        return (None, 0, Vec::new());
    };
    if next > now {
        return (Some(next), 0, Vec::new());
    }
    if let Timing::Every(every) = timing {
        // Arithmetic, so a long pause on a short period costs nothing.
        let step = every.as_nanos().max(1);
        let behind =
            u128::try_from((now - next).num_nanoseconds().unwrap_or(i64::MAX)).unwrap_or_default();
        let passed = behind / step + 1;
        let at = |k: u128| {
            let offset = i64::try_from(k * step).unwrap_or(i64::MAX);
            next.checked_add_signed(chrono::Duration::nanoseconds(offset))
        };
        let kept = passed.min(keep as u128);
        let recent = (passed - kept..passed).filter_map(at).collect();
        return (
            at(passed),
            u64::try_from(passed).unwrap_or(u64::MAX),
            recent,
        );
    }
    let mut missed = 0;
    let mut recent = std::collections::VecDeque::with_capacity(keep);
    loop {
        missed += 1;
        if keep > 0 {
            if recent.len() == keep {
                recent.pop_front();
            }
            recent.push_back(next);
        }
        match next_after(timing, next) {
            Some(n) if n > now => return (Some(n), missed, recent.into()),
            Some(n) => next = n,
            None => return (None, missed, recent.into()),
        }
    }
}

/// [`run`], also obeying `control` (trigger, pause, resume).
pub async fn run_controlled<F, Fut, E>(
    spec: ScheduleSpec,
    timeline: Timeline,
    stats: Arc<ScheduleStats>,
    mut stop: watch::Receiver<bool>,
    mut control: Option<mpsc::UnboundedReceiver<Control>>,
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
    let mut paused = false;
    // Runs missed while paused that `catch_up` runs, oldest first.
    let mut backlog: std::collections::VecDeque<DateTime<Utc>> = Default::default();
    let room = match spec.overlap {
        Overlap::Allow(max) => max.max(1),
        _ => 1,
    };
    let now = timeline.now_utc();
    let mut planned = if spec.run_on_start {
        Some(now)
    } else {
        next_after(&spec.timing, now)
    };
    stats.update(|s| s.next_run = planned);
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
        stats.update(|s| s.last_run = Some(started));
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

    // A run due now under the overlap policy; true when it started.
    macro_rules! due_now {
        ($planned:expr, $due:expr) => {{
            let (due_planned, due) = ($planned, $due);
            match admit(spec.overlap, running.len(), pending.is_some()) {
                Admit::Start => {
                    start(&mut running, due_planned, due);
                    true
                }
                Admit::Skip => {
                    skip(&spec.name, &stats, due_planned);
                    false
                }
                Admit::Queue => {
                    pending = Some(due_planned);
                    bump(&stats.queued, 1);
                    false
                }
                Admit::Replace => {
                    let cancelled = running.len() as u64;
                    // Dropping an exec future kills its worker: that is
                    // how the pool treats a caller that gives up.
                    running.shutdown().await;
                    bump(&stats.replaced, cancelled);
                    tracing::info!(target: "ticker", schedule = %spec.name, cancelled, "running schedule run replaced by a new one");
                    start(&mut running, due_planned, due);
                    true
                }
            }
        }};
    }

    loop {
        tokio::select! {
            // Stop wins over a run that is due at the same instant.
            biased;
            () = stopped(&mut stop) => break,
            command = next_command(&mut control) => match command {
                Control::Trigger(reply) => {
                    let now = timeline.now_utc();
                    let started = due_now!(now, now);
                    tracing::info!(target: "ticker", schedule = %spec.name, started, "schedule triggered");
                    let _ = reply.send(started);
                }
                Control::Pause(reply) => {
                    if !paused {
                        paused = true;
                        fire = None;
                        timer.set(wait_until(far_future()));
                        stats.update(|s| {
                            s.paused = true;
                            s.next_run = None;
                        });
                        tracing::info!(target: "ticker", schedule = %spec.name, "schedule paused");
                    }
                    let _ = reply.send(());
                }
                Control::Resume(reply) => {
                    if paused {
                        paused = false;
                        // Back on the absolute timeline: the planned times
                        // passed while paused are skipped.
                        let (next, missed, recent) = missed_times(
                            &spec.timing,
                            planned,
                            timeline.now_utc(),
                            spec.catch_up.keep(),
                        );
                        bump(&stats.skipped, missed - recent.len() as u64);
                        backlog.extend(recent);
                        while running.len() < room {
                            let Some(missed_at) = backlog.pop_front() else { break };
                            bump(&stats.caught_up, 1);
                            start(&mut running, missed_at, missed_at);
                        }
                        planned = next;
                        fire = next.map(|n| jittered(n, false));
                        timer.set(wait_until(fire.map_or_else(far_future, |f| timeline.instant_of(f))));
                        stats.update(|s| {
                            s.paused = false;
                            s.next_run = next;
                        });
                        tracing::info!(target: "ticker", schedule = %spec.name, missed, "schedule resumed");
                    }
                    let _ = reply.send(());
                }
            },
            Some(done) = running.join_next(), if !running.is_empty() => {
                record(&spec.name, &stats, done);
                if let Some(queued) = pending.take() {
                    start(&mut running, queued, queued);
                }
                while running.len() < room {
                    let Some(missed_at) = backlog.pop_front() else { break };
                    bump(&stats.caught_up, 1);
                    start(&mut running, missed_at, missed_at);
                }
            }
            () = &mut timer, if fire.is_some() => {
                let (Some(due_planned), Some(due)) = (planned, fire) else { continue };
                due_now!(due_planned, due);
                // The next planned time after this one; those already
                // passed (the loop was late by whole periods) are missed.
                let (next, missed) = first_after(
                    &spec.timing,
                    next_after(&spec.timing, due_planned),
                    timeline.now_utc(),
                );
                if missed > 0 {
                    bump(&stats.skipped, missed);
                    tracing::warn!(target: "ticker", schedule = %spec.name, missed, "schedule runs missed: the scheduler was late by whole periods");
                }
                planned = next;
                stats.update(|s| s.next_run = next);
                fire = next.map(|n| jittered(n, false));
                timer.set(wait_until(fire.map_or_else(far_future, |f| timeline.instant_of(f))));
            }
        }
    }
    if !backlog.is_empty() {
        tracing::info!(target: "ticker", schedule = %spec.name, dropped = backlog.len(), "catch-up runs dropped at stop");
    }
    if let Some(queued) = pending {
        tracing::debug!(target: "ticker", schedule = %spec.name, planned = unix_ms(queued), "queued schedule run dropped at stop");
    }
    while let Some(done) = running.join_next().await {
        record(&spec.name, &stats, done);
    }
}

/// The next command, or never when there is no (more) control channel.
async fn next_command(control: &mut Option<mpsc::UnboundedReceiver<Control>>) -> Control {
    if let Some(receiver) = control {
        if let Some(command) = receiver.recv().await {
            return command;
        }
        *control = None;
    }
    std::future::pending().await
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
    let result = match done {
        Ok(Outcome::Ok) => {
            bump(&stats.succeeded, 1);
            "ok".to_owned()
        }
        Ok(Outcome::Failed(error)) => {
            bump(&stats.failed, 1);
            tracing::warn!(target: "ticker", schedule = %name, error = %error, "schedule run failed");
            format!("failed: {error}")
        }
        Ok(Outcome::TimedOut(limit)) => {
            bump(&stats.failed, 1);
            bump(&stats.timed_out, 1);
            tracing::warn!(target: "ticker", schedule = %name, timeout = ?limit, "schedule run timed out; its worker is killed");
            format!("failed: timed out after {limit:?}")
        }
        // Cancelled by `replace` (already counted) or a panic in the executor.
        Err(e) if e.is_cancelled() => return,
        Err(e) => {
            bump(&stats.failed, 1);
            tracing::warn!(target: "ticker", schedule = %name, error = %e, "schedule run panicked");
            format!("failed: {e}")
        }
    };
    stats.update(|s| s.last_result = Some(result));
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
            catch_up: CatchUp::None,
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

    /// Control sender, stop sender, planned ms of each run, stats, the loop.
    type Controlled = (
        mpsc::UnboundedSender<Control>,
        watch::Sender<bool>,
        Arc<Mutex<Vec<i64>>>,
        Arc<ScheduleStats>,
        tokio::task::JoinHandle<()>,
    );

    /// A controlled loop of `spec` on a paused clock from the origin; each
    /// run takes `work` and records its planned ms.
    fn controlled(spec: ScheduleSpec, work: Duration) -> Controlled {
        let origin = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .expect("date")
            .with_timezone(&Utc);
        let stats = Arc::new(ScheduleStats::default());
        let seen: Arc<Mutex<Vec<i64>>> = Arc::default();
        let (control, commands) = mpsc::unbounded_channel();
        let (stop_tx, stop_rx) = watch::channel(false);
        let task = {
            let seen = Arc::clone(&seen);
            tokio::spawn(run_controlled(
                spec,
                Timeline::starting_at(origin),
                Arc::clone(&stats),
                stop_rx,
                Some(commands),
                move |r: Run| {
                    seen.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push((r.planned - origin).num_milliseconds());
                    async move {
                        tokio::time::sleep(work).await;
                        Ok::<(), String>(())
                    }
                },
            ))
        };
        (control, stop_tx, seen, stats, task)
    }

    async fn ask<T>(
        control: &mpsc::UnboundedSender<Control>,
        make: impl FnOnce(oneshot::Sender<T>) -> Control,
    ) -> T {
        let (reply, answer) = oneshot::channel();
        control.send(make(reply)).expect("loop alive");
        answer.await.expect("answered")
    }

    #[tokio::test(start_paused = true)]
    async fn pause_plans_nothing_and_resume_returns_to_the_timeline() {
        let (control, stop, seen, stats, task) =
            controlled(every(100, Overlap::Skip), Duration::from_millis(10));
        tokio::time::sleep(Duration::from_millis(250)).await;
        ask(&control, Control::Pause).await;
        let status = stats.status();
        assert!(status.paused && status.next_run.is_none(), "{status:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(
            *seen.lock().expect("seen"),
            [100, 200],
            "nothing while paused"
        );
        ask(&control, Control::Resume).await;
        // Resumed at 750: 300..=700 were skipped; 800 is next, on the grid.
        assert_eq!(stats.skipped(), 5);
        assert!(!stats.status().paused);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let _ = stop.send(true);
        task.await.expect("loop ends");
        assert_eq!(*seen.lock().expect("seen"), [100, 200, 800, 900, 1000]);
        let status = stats.status();
        assert_eq!(status.last_result.as_deref(), Some("ok"));
        assert!(status.last_run.is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn trigger_runs_now_under_the_overlap_policy() {
        let (control, stop, seen, stats, task) =
            controlled(every(1000, Overlap::Skip), Duration::from_millis(100));
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(ask(&control, Control::Trigger).await, "idle: starts");
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!ask(&control, Control::Trigger).await, "busy: skipped");
        assert_eq!(stats.skipped(), 1);
        // The plan is untouched: the next run is still at 1000.
        tokio::time::sleep(Duration::from_millis(700)).await;
        let _ = stop.send(true);
        task.await.expect("loop ends");
        assert_eq!(*seen.lock().expect("seen"), [300, 1000]);
        assert_eq!(stats.started(), 2);
    }

    #[test]
    fn first_after_counts_the_planned_times_passed() {
        let t =
            |ms: i64| DateTime::<Utc>::from_timestamp_millis(1_700_000_000_000 + ms).expect("time");
        let every = Timing::Every(Duration::from_millis(100));
        assert_eq!(first_after(&every, Some(t(100)), t(50)), (Some(t(100)), 0));
        assert_eq!(first_after(&every, Some(t(100)), t(100)), (Some(t(200)), 1));
        assert_eq!(first_after(&every, Some(t(100)), t(750)), (Some(t(800)), 7));
        assert_eq!(first_after(&every, None, t(750)), (None, 0));
        let cron = Timing::Cron {
            cron: Box::new(crate::plan::parse_cron("* * * * * *").expect("cron")),
            timezone: chrono_tz::UTC,
        };
        let (next, missed) = first_after(&cron, Some(t(1000)), t(4500));
        assert_eq!(
            (next.map(|n| n - t(0)), missed),
            (Some(chrono::Duration::seconds(5)), 4)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn catch_up_runs_the_latest_missed_times_on_resume() {
        for (catch_up, expected, skipped) in [
            (CatchUp::None, vec![100, 200, 800], 5),
            (CatchUp::Last, vec![100, 200, 700, 800], 4),
            (CatchUp::All(3), vec![100, 200, 500, 600, 700, 800], 2),
            (
                CatchUp::All(10),
                vec![100, 200, 300, 400, 500, 600, 700, 800],
                0,
            ),
        ] {
            let spec = ScheduleSpec {
                catch_up,
                ..every(100, Overlap::Skip)
            };
            let (control, stop, seen, stats, task) = controlled(spec, Duration::from_millis(10));
            tokio::time::sleep(Duration::from_millis(250)).await;
            ask(&control, Control::Pause).await;
            tokio::time::sleep(Duration::from_millis(500)).await;
            ask(&control, Control::Resume).await;
            // One after another, 10 ms each, all before 800.
            tokio::time::sleep(Duration::from_millis(100)).await;
            let _ = stop.send(true);
            task.await.expect("loop ends");
            assert_eq!(*seen.lock().expect("seen"), expected, "{catch_up:?}");
            assert_eq!(stats.skipped(), skipped, "{catch_up:?}");
            assert_eq!(stats.caught_up(), catch_up.keep().min(5) as u64);
        }
    }

    #[test]
    fn missed_times_keeps_the_latest_oldest_first() {
        let t =
            |ms: i64| DateTime::<Utc>::from_timestamp_millis(1_700_000_000_000 + ms).expect("time");
        let every = Timing::Every(Duration::from_millis(100));
        assert_eq!(
            missed_times(&every, Some(t(100)), t(750), 2),
            (Some(t(800)), 7, vec![t(600), t(700)])
        );
        let cron = Timing::Cron {
            cron: Box::new(crate::plan::parse_cron("* * * * * *").expect("cron")),
            timezone: chrono_tz::UTC,
        };
        assert_eq!(
            missed_times(&cron, Some(t(1000)), t(4500), 3),
            (Some(t(5000)), 4, vec![t(2000), t(3000), t(4000)])
        );
    }
}
