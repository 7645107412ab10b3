//! One named schedule's loop, apart from any pool so it can be tested on a
//! paused clock with a fake executor.
//!
//! Planned times lie on an absolute timeline: each one follows the previous
//! *planned* time (never "now"), so slow runs and late wake-ups do not
//! shift the ones after. Runs are spawned, so the loop keeps its timing
//! while they execute; the overlap policy decides what a due run does while
//! others are still in flight.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rr_plugin::AtomicHistogram;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;

use crate::cluster::RunClaims;
use crate::plan::{jitter_delay, next_after, unix_ms, Timeline, Timing};
use crate::schedule::{wait_until, HISTOGRAM_BOUNDS};
use crate::state::{SavedSchedule, StateStore};

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
    /// `every` planned times on multiples of the period since the Unix
    /// epoch instead of from the start, so that several instances (a
    /// cluster) share them.
    pub align_to_epoch: bool,
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
    /// The cluster's fencing token for this run (cluster mode only).
    pub fence: Option<u64>,
}

impl Run {
    /// The payload context: `extra`, then `schedule`, `planned` and
    /// `started` (unix milliseconds), which `extra` cannot override.
    pub fn context(&self, extra: &serde_json::Map<String, serde_json::Value>) -> String {
        let mut map = extra.clone();
        map.insert("schedule".to_owned(), self.schedule.to_string().into());
        map.insert("planned".to_owned(), unix_ms(self.planned).into());
        map.insert("started".to_owned(), unix_ms(self.started).into());
        if let Some(fence) = self.fence {
            map.insert("fence".to_owned(), fence.into());
        }
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
    no_worker: AtomicU64,
    elsewhere: AtomicU64,
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
            no_worker: AtomicU64::new(0),
            elsewhere: AtomicU64::new(0),
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
    caught_up: "Missed runs (paused, `rr` down, no free worker) run later by `catch_up`.",
    no_worker: "Runs that found no free worker within `worker_wait`.",
    elsewhere: "Planned runs another cluster instance claimed and ran.",
}

fn bump(counter: &AtomicU64, by: u64) {
    counter.fetch_add(by, Ordering::Relaxed);
}

/// Why a run did not complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunError {
    /// No worker became free within the schedule's `worker_wait`: the run
    /// never started on a worker.
    NoWorker(Duration),
    /// The run failed: a worker error, a crash, the pool's `exec_ttl`.
    Failed(String),
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::NoWorker(wait) => write!(f, "no free worker within {wait:?}"),
            RunError::Failed(cause) => f.write_str(cause),
        }
    }
}

impl From<rr_pool::ExecError> for RunError {
    fn from(error: rr_pool::ExecError) -> Self {
        match error {
            rr_pool::ExecError::NoFreeWorkers(wait) => RunError::NoWorker(wait),
            other => RunError::Failed(other.to_string()),
        }
    }
}

impl From<String> for RunError {
    fn from(cause: String) -> Self {
        RunError::Failed(cause)
    }
}

enum Outcome {
    Ok,
    Failed(String),
    TimedOut(Duration),
    NoWorker(Duration),
}

impl From<Result<(), RunError>> for Outcome {
    fn from(result: Result<(), RunError>) -> Self {
        match result {
            Ok(()) => Outcome::Ok,
            Err(RunError::NoWorker(wait)) => Outcome::NoWorker(wait),
            Err(RunError::Failed(cause)) => Outcome::Failed(cause),
        }
    }
}

/// A planned time that still has to run: missed while paused, while `rr`
/// was down, or for want of a free worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Missed {
    planned: DateTime<Utc>,
    /// The fencing token when this instance already won its cluster claim.
    fence: Option<u64>,
    /// Run from the backlog, after its time (a catch-up run).
    late: bool,
}

impl Missed {
    fn at(planned: DateTime<Utc>) -> Missed {
        Missed {
            planned,
            fence: None,
            late: false,
        }
    }
}

/// What a schedule's loop is connected to besides its pool.
#[derive(Debug, Default)]
pub struct Hooks {
    /// Commands from the control API.
    pub control: Option<mpsc::UnboundedReceiver<Control>>,
    /// Where the watermark, pause state and backlog are saved; the saved
    /// state is restored at start.
    pub store: Option<Arc<StateStore>>,
    /// The cluster's claims: a planned run starts only when claimed.
    pub claims: Option<Arc<dyn RunClaims>>,
}

/// Runs `spec` until `stop` turns true; runs in flight then complete (or
/// reach their timeout), a queued one is dropped.
pub async fn run<F, Fut>(
    spec: ScheduleSpec,
    timeline: Timeline,
    stats: Arc<ScheduleStats>,
    stop: watch::Receiver<bool>,
    execute: F,
) where
    F: Fn(Run) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), RunError>> + Send + 'static,
{
    run_controlled(spec, timeline, stats, stop, Hooks::default(), execute).await;
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

/// The first planned time after `now` for a schedule that starts afresh.
fn first_planned(spec: &ScheduleSpec, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    match spec.timing {
        Timing::Every(every) if spec.align_to_epoch => {
            let step = i64::try_from(every.as_nanos()).unwrap_or(i64::MAX).max(1);
            let since_epoch = now.timestamp_nanos_opt().unwrap_or(i64::MAX);
            let next = (since_epoch / step + 1).saturating_mul(step);
            Some(DateTime::from_timestamp_nanos(next))
        }
        _ => next_after(&spec.timing, now),
    }
}

/// One schedule's loop and everything it owns.
struct Loop<F> {
    spec: ScheduleSpec,
    timeline: Timeline,
    stats: Arc<ScheduleStats>,
    execute: Arc<F>,
    store: Option<Arc<StateStore>>,
    claims: Option<Arc<dyn RunClaims>>,
    /// How the timing reads in the saved state.
    described: String,
    running: JoinSet<(Missed, Outcome)>,
    pending: Option<DateTime<Utc>>,
    paused: bool,
    /// Missed planned times that `catch_up` runs, oldest first.
    backlog: VecDeque<Missed>,
    /// At most this many runs at once.
    room: usize,
    /// Catch-up runs in flight.
    late_running: usize,
    /// Stopping: runs in flight finish, nothing new starts.
    stopping: bool,
}

impl<F, Fut> Loop<F>
where
    F: Fn(Run) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), RunError>> + Send + 'static,
{
    fn name(&self) -> &str {
        &self.spec.name
    }

    fn save(&self, change: impl FnOnce(&mut SavedSchedule)) {
        if let Some(store) = &self.store {
            store.update(&self.spec.name, &self.described, change);
        }
    }

    fn save_backlog(&self) {
        let backlog = self.backlog.iter().map(|m| unix_ms(m.planned)).collect();
        self.save(|s| s.backlog = backlog);
    }

    /// Keeps `missed` for catch-up within the policy's bound; those that
    /// fall out are skipped.
    fn keep_missed(&mut self, missed: impl IntoIterator<Item = Missed>) {
        let keep = self.spec.catch_up.keep();
        for item in missed {
            if self.backlog.iter().any(|m| m.planned == item.planned) {
                continue;
            }
            if keep == 0 {
                self.skipped(item.planned, "no catch-up");
                continue;
            }
            self.backlog.push_back(item);
            self.backlog.make_contiguous().sort_by_key(|m| m.planned);
            while self.backlog.len() > keep {
                if let Some(dropped) = self.backlog.pop_front() {
                    self.skipped(dropped.planned, "beyond the catch-up limit");
                }
            }
        }
        self.save_backlog();
    }

    fn skipped(&self, planned: DateTime<Utc>, why: &str) {
        bump(&self.stats.skipped, 1);
        tracing::debug!(target: "ticker", schedule = %self.name(), planned = unix_ms(planned), why, "schedule run skipped");
    }

    /// Claims `planned` in the cluster; `None` when it must not run here.
    async fn claim(&self, missed: Missed) -> Option<Missed> {
        let Some(claims) = &self.claims else {
            return Some(missed);
        };
        if missed.fence.is_some() {
            return Some(missed);
        }
        let ttl = self.claim_ttl();
        let age = (self.timeline.now_utc() - missed.planned)
            .to_std()
            .unwrap_or_default();
        if age >= ttl {
            // Its claim may have expired: another instance may have run
            // it, and nothing can tell any more.
            self.skipped(missed.planned, "older than the cluster claims are kept");
            return None;
        }
        match claims
            .claim(&self.spec.name, unix_ms(missed.planned), ttl)
            .await
        {
            Ok(Some(fence)) => Some(Missed {
                fence: Some(fence),
                ..missed
            }),
            Ok(None) => {
                bump(&self.stats.elsewhere, 1);
                tracing::debug!(target: "ticker", schedule = %self.name(), planned = unix_ms(missed.planned), "schedule run claimed by another instance");
                None
            }
            Err(e) => {
                bump(&self.stats.failed, 1);
                tracing::warn!(target: "ticker", schedule = %self.name(), planned = unix_ms(missed.planned), error = %e, "schedule run not started");
                self.stats
                    .update(|s| s.last_result = Some(format!("failed: {e}")));
                None
            }
        }
    }

    /// How long a cluster claim is kept: long enough for any instance to
    /// still be catching up on it.
    fn claim_ttl(&self) -> Duration {
        let period = self.spec.timing.period_after(self.timeline.now_utc());
        let runs = self.spec.catch_up.keep().max(1) as u32 + 2;
        period.saturating_mul(runs).max(Duration::from_secs(3600))
    }

    /// Starts a run of `missed` now; `due` is when it was meant to start.
    fn start(&mut self, missed: Missed, due: DateTime<Utc>) {
        let started = self.timeline.now_utc();
        let lateness = (started - due).to_std().unwrap_or_default();
        self.stats.lateness.observe(lateness.as_secs_f64());
        tracing::debug!(target: "ticker", schedule = %self.name(), planned = unix_ms(missed.planned), lateness_us = lateness.as_micros() as u64, "schedule run started");
        bump(&self.stats.started, 1);
        self.stats.update(|s| s.last_run = Some(started));
        let run = Run {
            schedule: Arc::clone(&self.spec.name),
            planned: missed.planned,
            started,
            fence: missed.fence,
        };
        let execute = Arc::clone(&self.execute);
        let timeout = self.spec.timeout;
        let stats = Arc::clone(&self.stats);
        self.running.spawn(async move {
            let began = tokio::time::Instant::now();
            let exec = execute(run);
            let outcome = match timeout {
                Some(limit) => match tokio::time::timeout(limit, exec).await {
                    Ok(result) => Outcome::from(result),
                    Err(_) => Outcome::TimedOut(limit),
                },
                None => Outcome::from(exec.await),
            };
            if !matches!(outcome, Outcome::NoWorker(_)) {
                stats.duration.observe(began.elapsed().as_secs_f64());
            }
            (missed, outcome)
        });
    }

    /// Starts catch-up runs while there is room.
    async fn drain_backlog(&mut self) {
        let mut changed = false;
        while self.running.len() < self.room {
            let Some(missed) = self.backlog.pop_front() else {
                break;
            };
            changed = true;
            if let Some(claimed) = self.claim(missed).await {
                self.late_running += 1;
                self.start(
                    Missed {
                        late: true,
                        ..claimed
                    },
                    claimed.planned,
                );
            }
        }
        if changed {
            self.save_backlog();
        }
    }

    /// A run due now under the overlap policy; true when it started.
    async fn due_now(&mut self, planned: DateTime<Utc>, due: DateTime<Utc>, claim: bool) -> bool {
        let missed = Missed::at(planned);
        match admit(
            self.spec.overlap,
            self.running.len(),
            self.pending.is_some(),
        ) {
            Admit::Start => {
                let Some(claimed) = self.claim_if(missed, claim).await else {
                    return false;
                };
                self.start(claimed, due);
                true
            }
            Admit::Skip => {
                self.skipped(planned, "the previous run is still in flight");
                false
            }
            Admit::Queue => {
                self.pending = Some(planned);
                bump(&self.stats.queued, 1);
                false
            }
            Admit::Replace => {
                let Some(claimed) = self.claim_if(missed, claim).await else {
                    return false;
                };
                let cancelled = self.running.len() as u64;
                // Dropping an exec future kills its worker: that is how
                // the pool treats a caller that gives up.
                self.running.shutdown().await;
                bump(&self.stats.replaced, cancelled);
                tracing::info!(target: "ticker", schedule = %self.name(), cancelled, "running schedule run replaced by a new one");
                self.start(claimed, due);
                true
            }
        }
    }

    async fn claim_if(&self, missed: Missed, claim: bool) -> Option<Missed> {
        if claim {
            self.claim(missed).await
        } else {
            Some(missed)
        }
    }

    /// Deals with a run that ended.
    async fn finished(&mut self, done: Result<(Missed, Outcome), tokio::task::JoinError>) {
        if let Ok((missed, outcome)) = &done {
            if missed.late {
                self.late_running = self.late_running.saturating_sub(1);
                if !matches!(outcome, Outcome::NoWorker(_)) {
                    bump(&self.stats.caught_up, 1);
                }
            }
        }
        let result = match done {
            Ok((_, Outcome::Ok)) => {
                bump(&self.stats.succeeded, 1);
                "ok".to_owned()
            }
            Ok((_, Outcome::Failed(error))) => {
                bump(&self.stats.failed, 1);
                tracing::warn!(target: "ticker", schedule = %self.name(), error = %error, "schedule run failed");
                format!("failed: {error}")
            }
            Ok((_, Outcome::TimedOut(limit))) => {
                bump(&self.stats.failed, 1);
                bump(&self.stats.timed_out, 1);
                tracing::warn!(target: "ticker", schedule = %self.name(), timeout = ?limit, "schedule run timed out; its worker is killed");
                format!("failed: timed out after {limit:?}")
            }
            Ok((missed, Outcome::NoWorker(wait))) => {
                // It never reached a worker: not started, and not a
                // failure of the PHP code.
                self.stats.started.fetch_sub(1, Ordering::Relaxed);
                if !missed.late {
                    bump(&self.stats.no_worker, 1);
                    let catch_up = self.spec.catch_up.keep() > 0;
                    tracing::warn!(target: "ticker", schedule = %self.name(), planned = unix_ms(missed.planned), wait = ?wait, catch_up, "schedule run found no free worker");
                }
                // With catch-up it tries again at once (each try waits up
                // to `worker_wait`), so it runs as soon as a worker is free.
                self.keep_missed([missed]);
                format!("skipped: no free worker within {wait:?}")
            }
            // Cancelled by `replace` (already counted).
            Err(e) if e.is_cancelled() => return,
            Err(e) => {
                bump(&self.stats.failed, 1);
                tracing::warn!(target: "ticker", schedule = %self.name(), error = %e, "schedule run panicked");
                format!("failed: {e}")
            }
        };
        self.stats.update(|s| s.last_result = Some(result));
        if self.stopping {
            return;
        }
        if let Some(queued) = self.pending.take() {
            let missed = Missed::at(queued);
            if let Some(claimed) = self.claim(missed).await {
                self.start(claimed, queued);
            }
        }
        self.drain_backlog().await;
    }
}

/// [`run`], also connected to `hooks`: the control API (trigger, pause,
/// resume), the saved state, and the cluster's claims.
pub async fn run_controlled<F, Fut>(
    spec: ScheduleSpec,
    timeline: Timeline,
    stats: Arc<ScheduleStats>,
    mut stop: watch::Receiver<bool>,
    hooks: Hooks,
    execute: F,
) where
    F: Fn(Run) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), RunError>> + Send + 'static,
{
    let Hooks {
        mut control,
        store,
        claims,
    } = hooks;
    let room = match spec.overlap {
        Overlap::Allow(max) => max.max(1),
        _ => 1,
    };
    let described = spec.timing.describe();
    let saved = store
        .as_ref()
        .and_then(|s| s.get(&spec.name))
        .filter(|saved| saved.spec == described);
    let mut this = Loop {
        timeline,
        stats: Arc::clone(&stats),
        execute: Arc::new(execute),
        store,
        claims,
        described,
        running: JoinSet::new(),
        pending: None,
        paused: false,
        backlog: VecDeque::new(),
        room,
        late_running: 0,
        stopping: false,
        spec,
    };
    let now = timeline.now_utc();
    // Where the timeline goes on from: after the saved watermark when `rr`
    // ran this schedule before, else after now.
    let mut planned = match saved.as_ref().and_then(|s| s.watermark) {
        Some(watermark) => {
            let watermark = DateTime::<Utc>::from_timestamp_millis(watermark).unwrap_or(now);
            next_after(&this.spec.timing, watermark)
        }
        None => first_planned(&this.spec, now),
    };
    if let Some(saved) = saved {
        this.paused = saved.paused;
        let restored = saved
            .backlog
            .iter()
            .filter_map(|ms| DateTime::<Utc>::from_timestamp_millis(*ms))
            .map(Missed::at);
        this.keep_missed(restored);
        if !this.paused {
            let (next, missed, recent) =
                missed_times(&this.spec.timing, planned, now, this.spec.catch_up.keep());
            let kept = recent.len() as u64;
            let last = recent.last().copied();
            bump(&this.stats.skipped, missed - kept);
            this.keep_missed(recent.into_iter().map(Missed::at));
            if missed > 0 {
                tracing::info!(target: "ticker", schedule = %this.name(), missed, catching_up = kept, "schedule runs missed while rr was down");
            }
            if let Some(last) = last {
                this.save(|s| s.watermark = Some(unix_ms(last)));
            }
            planned = next;
        }
        this.stats.update(|s| s.paused = this.paused);
    }
    let run_on_start = this.spec.run_on_start;
    let jittered = |planned: DateTime<Utc>, jitter: Duration| {
        planned + chrono::Duration::from_std(jitter_delay(jitter)).unwrap_or_default()
    };
    let jitter = this.spec.jitter;
    let at = |fire: Option<DateTime<Utc>>| fire.map_or_else(far_future, |f| timeline.instant_of(f));
    let mut fire = match (this.paused, run_on_start) {
        (true, _) => None,
        (false, true) => {
            planned = Some(now);
            Some(now)
        }
        (false, false) => planned.map(|p| jittered(p, jitter)),
    };
    this.stats
        .update(|s| s.next_run = if this.paused { None } else { planned });
    let mut timer = Box::pin(wait_until(at(fire)));
    this.drain_backlog().await;

    loop {
        tokio::select! {
            // Stop wins over a run that is due at the same instant.
            biased;
            () = stopped(&mut stop) => break,
            command = next_command(&mut control) => match command {
                Control::Trigger(reply) => {
                    let now = this.timeline.now_utc();
                    // A trigger is this instance's own act, not a planned
                    // time the cluster shares, so it is not claimed.
                    let started = this.due_now(now, now, false).await;
                    tracing::info!(target: "ticker", schedule = %this.name(), started, "schedule triggered");
                    let _ = reply.send(started);
                }
                Control::Pause(reply) => {
                    if !this.paused {
                        this.paused = true;
                        fire = None;
                        timer.set(wait_until(far_future()));
                        this.stats.update(|s| {
                            s.paused = true;
                            s.next_run = None;
                        });
                        this.save(|s| s.paused = true);
                        tracing::info!(target: "ticker", schedule = %this.name(), "schedule paused");
                    }
                    let _ = reply.send(());
                }
                Control::Resume(reply) => {
                    if this.paused {
                        this.paused = false;
                        // Back on the absolute timeline: the planned times
                        // passed while paused are skipped or caught up.
                        let (next, missed, recent) = missed_times(
                            &this.spec.timing,
                            planned,
                            this.timeline.now_utc(),
                            this.spec.catch_up.keep(),
                        );
                        bump(&this.stats.skipped, missed - recent.len() as u64);
                        let last = recent.last().copied();
                        this.keep_missed(recent.into_iter().map(Missed::at));
                        this.drain_backlog().await;
                        planned = next;
                        fire = next.map(|n| jittered(n, jitter));
                        timer.set(wait_until(at(fire)));
                        this.stats.update(|s| {
                            s.paused = false;
                            s.next_run = next;
                        });
                        this.save(|s| {
                            s.paused = false;
                            if let Some(last) = last {
                                s.watermark = Some(unix_ms(last));
                            }
                        });
                        tracing::info!(target: "ticker", schedule = %this.name(), missed, "schedule resumed");
                    }
                    let _ = reply.send(());
                }
            },
            Some(done) = this.running.join_next(), if !this.running.is_empty() => {
                this.finished(done).await;
            }
            () = &mut timer, if fire.is_some() => {
                let (Some(due_planned), Some(due)) = (planned, fire) else { continue };
                let behind = !this.backlog.is_empty()
                    || (this.late_running > 0 && this.late_running == this.running.len());
                if !behind {
                    this.due_now(due_planned, due, true).await;
                } else {
                    // Missed runs still wait for their turn (no free worker,
                    // or catching up): this one joins them, in order, so
                    // `catch_up: last` keeps only the newest.
                    this.keep_missed([Missed::at(due_planned)]);
                    this.drain_backlog().await;
                }
                this.save(|s| s.watermark = Some(unix_ms(due_planned)));
                // The next planned time after this one; those already
                // passed (the loop was late by whole periods) are missed.
                let (next, missed) = first_after(
                    &this.spec.timing,
                    next_after(&this.spec.timing, due_planned),
                    this.timeline.now_utc(),
                );
                if missed > 0 {
                    bump(&this.stats.skipped, missed);
                    tracing::warn!(target: "ticker", schedule = %this.name(), missed, "schedule runs missed: the scheduler was late by whole periods");
                }
                planned = next;
                this.stats.update(|s| s.next_run = next);
                fire = next.map(|n| jittered(n, jitter));
                timer.set(wait_until(at(fire)));
            }
        }
    }
    if !this.backlog.is_empty() {
        tracing::info!(target: "ticker", schedule = %this.name(), kept = this.backlog.len(), "catch-up runs left for later");
    }
    if let Some(queued) = this.pending {
        tracing::debug!(target: "ticker", schedule = %this.name(), planned = unix_ms(queued), "queued schedule run dropped at stop");
    }
    this.stopping = true;
    while let Some(done) = this.running.join_next().await {
        this.finished(done).await;
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use tokio::time::Instant;

    /// The test timeline's start.
    pub(super) fn origin() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .expect("date")
            .with_timezone(&Utc)
    }

    /// A schedule `job` every `ms`, with `overlap` and nothing else set.
    pub(super) fn every(ms: u64, overlap: Overlap) -> ScheduleSpec {
        ScheduleSpec {
            name: Arc::from("job"),
            timing: Timing::Every(Duration::from_millis(ms)),
            overlap,
            jitter: Duration::ZERO,
            timeout: None,
            run_on_start: false,
            catch_up: CatchUp::None,
            align_to_epoch: false,
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
        let origin = origin();
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
                        Ok::<(), RunError>(())
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
                    async { Ok::<(), RunError>(()) }
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
        let origin = origin();
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
                Hooks {
                    control: Some(commands),
                    ..Hooks::default()
                },
                move |r: Run| {
                    seen.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push((r.planned - origin).num_milliseconds());
                    async move {
                        tokio::time::sleep(work).await;
                        Ok::<(), RunError>(())
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

/// Catch-up after a saturated pool and a restart, and cluster claims.
#[cfg(test)]
mod recovery_tests {
    use super::*;
    use std::sync::Mutex;

    /// (planned ms, fence) of each completed run.
    type Completed = Vec<(i64, Option<u64>)>;

    use super::tests::origin;

    fn ms(t: i64) -> DateTime<Utc> {
        origin() + chrono::Duration::milliseconds(t)
    }

    fn every(ms: u64, catch_up: CatchUp) -> ScheduleSpec {
        ScheduleSpec {
            catch_up,
            ..super::tests::every(ms, Overlap::Skip)
        }
    }

    /// Runs `spec` with `hooks` on a paused clock for `total`; `answer`
    /// decides each run's result from its planned ms (after a 10 ms run).
    /// Returns the planned ms of the runs that completed, and the fences.
    async fn drive(
        spec: ScheduleSpec,
        hooks: Hooks,
        total: Duration,
        answer: impl Fn(i64) -> Result<(), RunError> + Send + Sync + 'static,
    ) -> (Vec<i64>, Vec<Option<u64>>, Arc<ScheduleStats>) {
        let stats = Arc::new(ScheduleStats::default());
        let done: Arc<Mutex<Completed>> = Arc::default();
        let (stop_tx, stop_rx) = watch::channel(false);
        let answer = Arc::new(answer);
        let task = {
            let done = Arc::clone(&done);
            tokio::spawn(run_controlled(
                spec,
                Timeline::starting_at(origin()),
                Arc::clone(&stats),
                stop_rx,
                hooks,
                move |r: Run| {
                    let done = Arc::clone(&done);
                    let answer = Arc::clone(&answer);
                    async move {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        let planned = (r.planned - origin()).num_milliseconds();
                        let result = answer(planned);
                        if result.is_ok() {
                            done.lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .push((planned, r.fence));
                        }
                        result
                    }
                },
            ))
        };
        tokio::time::sleep(total).await;
        let _ = stop_tx.send(true);
        task.await.expect("loop ends");
        let done = done.lock().unwrap_or_else(|p| p.into_inner()).clone();
        (
            done.iter().map(|d| d.0).collect(),
            done.iter().map(|d| d.1).collect(),
            stats,
        )
    }

    #[tokio::test(start_paused = true)]
    async fn a_run_that_found_no_worker_is_caught_up_when_one_is_free() {
        // The pool is saturated for the first 450 ms of each drive.
        let busy = || {
            let start = tokio::time::Instant::now();
            move |_planned: i64| {
                if start.elapsed() < Duration::from_millis(450) {
                    Err(RunError::NoWorker(Duration::from_millis(50)))
                } else {
                    Ok(())
                }
            }
        };
        // catch_up: none: the missed runs are skipped, never retried.
        let (done, _, stats) = drive(
            every(100, CatchUp::None),
            Hooks::default(),
            Duration::from_millis(750),
            busy(),
        )
        .await;
        assert_eq!(done, [500, 600, 700]);
        assert_eq!((stats.no_worker(), stats.caught_up()), (4, 0));
        assert_eq!(stats.status().last_result.as_deref(), Some("ok"));

        // catch_up: last: the latest missed one (400) runs as soon as a
        // worker is free, before the next planned one.
        let (done, _, stats) = drive(
            every(100, CatchUp::Last),
            Hooks::default(),
            Duration::from_millis(750),
            busy(),
        )
        .await;
        assert_eq!(done, [400, 500, 600, 700]);
        assert!(stats.caught_up() >= 1 && stats.failed() == 0, "{stats:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_restart_catches_up_from_the_saved_watermark() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("state.json");
        // The previous `rr` ran up to -450 ms and left 550 ms ago.
        let store = Arc::new(StateStore::load(&path).expect("store"));
        let spec = every(100, CatchUp::All(3));
        store.update("job", &spec.timing.describe(), |s| {
            s.watermark = Some(unix_ms(ms(-500)))
        });
        let hooks = Hooks {
            store: Some(Arc::clone(&store)),
            ..Hooks::default()
        };
        let (done, _, stats) = drive(spec, hooks, Duration::from_millis(250), |_| Ok(())).await;
        // Missed: -400 .. 0 (5 times); the latest 3 run at once, then the
        // timeline goes on at 100, 200.
        assert_eq!(done, [-200, -100, 0, 100, 200]);
        assert_eq!((stats.caught_up(), stats.skipped()), (3, 2));
        let saved = store.get("job").expect("saved");
        assert_eq!(saved.watermark, Some(unix_ms(ms(200))));
        assert!(saved.backlog.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_saved_pause_survives_a_restart() {
        let dir = tempfile::tempdir().expect("dir");
        let store = Arc::new(StateStore::load(&dir.path().join("s.json")).expect("store"));
        let spec = every(100, CatchUp::None);
        store.update("job", &spec.timing.describe(), |s| {
            s.watermark = Some(unix_ms(ms(-300)));
            s.paused = true;
        });
        let hooks = Hooks {
            store: Some(store),
            ..Hooks::default()
        };
        let (done, _, stats) = drive(spec, hooks, Duration::from_millis(350), |_| Ok(())).await;
        assert!(done.is_empty(), "{done:?}");
        assert!(stats.status().paused);
    }

    /// Grants the claims of planned times that are multiples of 200 ms.
    #[derive(Debug, Default)]
    struct EveryOtherClaim {
        fence: std::sync::atomic::AtomicU64,
    }

    #[rr_plugin::async_trait]
    impl RunClaims for EveryOtherClaim {
        async fn claim(
            &self,
            _schedule: &str,
            planned_ms: i64,
            _ttl: Duration,
        ) -> Result<Option<u64>, crate::cluster::ClaimError> {
            if (planned_ms - unix_ms(origin())) % 200 == 0 {
                Ok(Some(self.fence.fetch_add(1, Ordering::SeqCst) + 1))
            } else {
                Ok(None)
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn only_claimed_runs_start_and_carry_their_fence() {
        let hooks = Hooks {
            claims: Some(Arc::new(EveryOtherClaim::default())),
            ..Hooks::default()
        };
        let (done, fences, stats) = drive(
            every(100, CatchUp::None),
            hooks,
            Duration::from_millis(850),
            |_| Ok(()),
        )
        .await;
        assert_eq!(done, [200, 400, 600, 800]);
        assert_eq!(fences, [Some(1), Some(2), Some(3), Some(4)]);
        assert_eq!((stats.elsewhere(), stats.skipped()), (4, 0));
    }
}

#[cfg(test)]
mod alignment_tests {
    use super::*;

    #[test]
    fn a_cluster_every_lands_on_multiples_of_its_period_since_the_epoch() {
        let spec = ScheduleSpec {
            align_to_epoch: true,
            ..super::tests::every(200, Overlap::Skip)
        };
        let now = DateTime::from_timestamp_millis(1_795_451_873_848).expect("time");
        let first = first_planned(&spec, now).expect("planned");
        assert_eq!(unix_ms(first), 1_795_451_874_000);
        let on_the_grid = DateTime::from_timestamp_millis(1_795_451_874_000).expect("time");
        assert_eq!(
            first_planned(&spec, on_the_grid).map(unix_ms),
            Some(1_795_451_874_200)
        );
    }
}
