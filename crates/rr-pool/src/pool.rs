//! The static worker pool: a fixed number of workers, each executing one
//! payload at a time.
//!
//! Idle workers wait in FIFO queues, one per [lane](crate::lanes), behind
//! plain mutexes held only to push or pop, never across a round trip: an exec
//! leases a worker, owns it for the round trip, and gives it back. A caller
//! takes a worker of its own lane first, so the round trip runs inline on its
//! thread; a worker of another lane does its round trip on that lane. A
//! watcher task replaces workers that exit and runs the supervisor's limits.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::atomic::{fence, AtomicBool, AtomicIsize, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::config::{LanePlacement, PoolConfig, MAX_WORKERS, RECYCLE_STOP_TIMEOUT};
use crate::error::{ExecError, PoolError};
use crate::lanes::{current_lane, Lanes};
use crate::payload::Payload;
use crate::protocol::{ProtocolError, Reply};
use crate::status::WorkerStatus;
use crate::stream::{ReplyStream, Streamed, STREAM_BUFFER};
use crate::worker::{Relay, Spawner, StreamRead, Worker, WorkerCommand, WorkerShared};

/// Workers in a row that may ask to stop instead of answering one payload.
const MAX_STOP_REQUESTS: u32 = 10;

/// A snapshot of one worker, for `rr workers` and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerInfo {
    /// Process id.
    pub pid: u32,
    /// Current state.
    pub status: WorkerStatus,
    /// Payloads executed.
    pub num_execs: u64,
    /// When the worker was started.
    pub created: SystemTime,
    /// Resident memory in bytes (0 when unknown).
    pub memory_bytes: u64,
}

/// The part of a pool that one lane touches on every exec: its idle queue
/// and its share of the counters. Each lane writes only its own slot, and
/// slots sit on separate cache lines, so the lanes' round trips share no
/// written memory (pool-wide counters moved a cache line between the CPUs
/// several times per exec).
#[derive(Debug, Default)]
#[repr(align(128))]
struct LaneSlot {
    /// Idle workers of this lane, first in first out.
    idle: Mutex<VecDeque<Worker>>,
    /// Workers of this lane leased out and not yet given back.
    busy: AtomicIsize,
    /// Execs of callers on this lane.
    execs: AtomicU64,
    /// Failed execs of callers on this lane.
    failed: AtomicU64,
    /// Callers of this lane waiting for a free worker, woken in turn.
    waiters: Notify,
    /// How many callers of this lane wait.
    waiting: AtomicUsize,
}

/// A pool of PHP workers. Cloning gives another handle to the same pool.
#[derive(Debug, Clone)]
pub struct Pool {
    inner: Arc<PoolInner>,
}

#[derive(Debug)]
struct PoolInner {
    name: Arc<str>,
    config: PoolConfig,
    /// Workers the pool keeps (changes with `add_worker`/`remove_worker`).
    num_workers: AtomicU64,
    spawner: Spawner,
    /// Idle queues and counters, one slot per lane.
    slots: Vec<LaneSlot>,
    /// Callers waiting for a free worker, over all lanes. While any wait,
    /// a newcomer queues behind its lane's waiters instead of taking the
    /// worker freed for them, so no caller starves under load (the tail
    /// latency of a busy pool).
    waiting: AtomicUsize,
    all: Mutex<HashMap<u32, Arc<WorkerShared>>>,
    /// Bumped by each reset; workers of an older generation leave when released.
    generation: AtomicU64,
    destroyed: AtomicBool,
    /// Callers inside `exec`, counted only under a `max_queue_size`.
    inside: AtomicUsize,
    /// Told when a busy worker comes back during a destroy, and on every
    /// worker exit.
    busy_changed: Notify,
    fatal: watch::Sender<Option<String>>,
    reset_lock: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("pid", &self.shared.pid)
            .field("lane", &self.shared.lane)
            .finish()
    }
}

/// Runs `future` on `lane`: inline when the caller is already there (or
/// there are no lanes), else handed to that lane. `None` if the lane is gone.
async fn on_lane<F>(lane: usize, future: F) -> Option<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    match Lanes::get() {
        Some(lanes) if current_lane() != Some(lane) => lanes.run_on(lane, future).await.ok(),
        _ => Some(future.await),
    }
}

/// Starts `future` on `lane` without waiting for it.
fn spawn_on_lane<F>(lane: usize, future: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    match Lanes::get() {
        Some(lanes) => {
            lanes.handle(lane).spawn(future);
        }
        None => {
            tokio::spawn(future);
        }
    }
}

impl Pool {
    /// Starts `config.num_workers` workers in parallel, spread over the
    /// lanes, and returns when all of them finished their handshake. If one
    /// fails, all are stopped and the first error is returned.
    pub async fn start(
        name: &str,
        command: WorkerCommand,
        relay: Relay,
        config: PoolConfig,
    ) -> Result<Pool, PoolError> {
        if command.argv.is_empty() {
            return Err(PoolError::EmptyCommand);
        }
        let num_workers = if config.debug {
            0
        } else {
            config.effective_num_workers()
        };
        if num_workers > MAX_WORKERS {
            return Err(PoolError::TooManyWorkers(num_workers));
        }
        // Worker i lives on lane i mod lanes.
        let lanes = match Lanes::get() {
            Some(lanes) if config.lanes == LanePlacement::PerCore => {
                (num_workers.max(1) as usize).min(lanes.cores())
            }
            Some(lanes) => {
                lanes
                    .ensure(num_workers as usize)
                    .map_err(|source| PoolError::Spawn {
                        command: command.display(),
                        source,
                    })?;
                num_workers.max(1) as usize
            }
            None => 1,
        };
        let handshake_timeout = command
            .start_timeout
            .map_or(config.allocate_timeout, |t| t.min(config.allocate_timeout));
        let (exits, exit_events) = mpsc::unbounded_channel();
        let spawner = Spawner {
            command,
            relay,
            pool_name: Arc::from(name),
            handshake_timeout,
            max_jobs: if config.debug { 1 } else { config.max_jobs },
            exits,
        };
        let inner = Arc::new(PoolInner {
            name: Arc::from(name),
            config,
            num_workers: AtomicU64::new(num_workers),
            spawner,
            slots: (0..lanes).map(|_| LaneSlot::default()).collect(),
            waiting: AtomicUsize::new(0),
            all: Mutex::new(HashMap::new()),
            generation: AtomicU64::new(0),
            destroyed: AtomicBool::new(false),
            inside: AtomicUsize::new(0),
            busy_changed: Notify::new(),
            fatal: watch::channel(None).0,
            reset_lock: tokio::sync::Mutex::new(()),
        });
        let workers = inner.spawn_many(num_workers, 0).await?;
        for worker in workers {
            inner.push_idle(worker);
        }
        tokio::spawn(watch_pool(Arc::clone(&inner), exit_events));
        tracing::debug!(target: "server", pool = %inner.name, workers = num_workers, "pool started");
        Ok(Pool { inner })
    }

    /// How many lanes the pool's workers live on: lanes `0..lanes()`. A
    /// plugin that spreads its callers over these finds a worker of its
    /// caller's own lane whenever one is free.
    pub fn lanes(&self) -> usize {
        self.inner.slots.len()
    }

    /// The name given at start (the plugin's), used in logs.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The configuration the pool runs with.
    pub fn config(&self) -> &PoolConfig {
        &self.inner.config
    }

    /// Sends `payload` to a free worker and returns its reply.
    ///
    /// Waits up to `allocate_timeout` for a free worker. A worker error reply
    /// fails only this exec; a worker that breaks the protocol, dies, or runs
    /// past `exec_ttl` is killed and replaced, and this exec fails. A worker
    /// that asks to stop is replaced and the payload goes to another worker.
    ///
    /// A streamed reply (goridge `STREAM` flag) is a protocol error here:
    /// only callers that use [`Pool::exec_stream`] take streams.
    pub async fn exec(&self, payload: &Payload) -> Result<Payload, ExecError> {
        self.exec_waiting(payload, None, false)
            .await
            .map(|streamed| streamed.first)
    }

    /// [`Pool::exec`] for callers that take streamed replies (HTTP).
    ///
    /// Returns the first frame of the reply and, when it carried the
    /// `STREAM` flag, a [`ReplyStream`] of the frames that follow. The
    /// worker stays leased until its last frame; dropping the stream early
    /// stops the worker's stream (see [`ReplyStream`]). Between two frames
    /// `exec_ttl` applies to each wait.
    pub async fn exec_stream(&self, payload: &Payload) -> Result<Streamed, ExecError> {
        self.exec_waiting(payload, None, true).await
    }

    /// [`Pool::exec`], waiting at most `wait` (capped by `allocate_timeout`)
    /// for a free worker. Running out of that wait is the caller's to
    /// report: it fails with [`ExecError::NoFreeWorkers`] without the
    /// pool's own error log, because a caller that sets its own wait (a
    /// schedule, say) treats a busy pool as an expected outcome.
    pub async fn exec_within(
        &self,
        payload: &Payload,
        wait: Duration,
    ) -> Result<Payload, ExecError> {
        self.exec_waiting(payload, Some(wait), false)
            .await
            .map(|streamed| streamed.first)
    }

    async fn exec_waiting(
        &self,
        payload: &Payload,
        wait: Option<Duration>,
        streaming: bool,
    ) -> Result<Streamed, ExecError> {
        if payload.is_empty() {
            return Err(ExecError::EmptyPayload);
        }
        let inner = &self.inner;
        let _inside = InsideGuard::enter(inner)?;
        let mut stop_requests = 0;
        let result = loop {
            // The rare paths' futures are boxed: every exec's future is
            // moved whole (into its task, say), and inline they would make
            // it kilobytes larger.
            let leased = if inner.config.debug {
                Box::pin(inner.lease_fresh()).await?
            } else {
                inner.take_worker(wait).await?
            };
            let lane = leased.lane();
            let attempt = match Lanes::get() {
                // Another lane's worker: the round trip is handed to that
                // lane, which needs the lease and payload for itself.
                Some(lanes) if current_lane() != Some(lane) => {
                    let leased = leased.into_owned();
                    let payload = payload.clone();
                    Box::pin(lanes.run_on(lane, async move {
                        leased.execute(&payload, streaming).await
                    }))
                    .await
                    .unwrap_or(Attempt::Done(Err(ExecError::Stopped)))
                }
                _ => leased.execute(payload, streaming).await,
            };
            match attempt {
                Attempt::Done(result) => break result,
                Attempt::WorkerStopped => {
                    stop_requests += 1;
                    // RoadRunner retries without end; a worker that always
                    // stops would spin the pool forever.
                    if stop_requests >= MAX_STOP_REQUESTS {
                        break Err(ExecError::StopLoop(stop_requests));
                    }
                }
            }
        };
        let slot = inner.slot(inner.here());
        slot.execs.fetch_add(1, Ordering::Relaxed);
        if result.is_err() {
            slot.failed.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    /// Replaces every worker with a fresh one. New workers start first, so
    /// capacity never drops; busy old workers finish their exec and leave
    /// when released, so no in-flight exec is lost.
    pub async fn reset(&self) -> Result<(), PoolError> {
        let inner = &self.inner;
        let _one_at_a_time = inner.reset_lock.lock().await;
        if inner.destroyed.load(Ordering::Acquire) {
            return Err(PoolError::Stopped);
        }
        let generation = inner.generation() + 1;
        let count = inner.num_workers.load(Ordering::Acquire);
        let fresh = inner.spawn_many(count, generation).await?;
        inner.generation.store(generation, Ordering::Release);
        let stale = inner.drain_idle(|w| w.shared.generation < generation);
        for worker in fresh {
            inner.push_idle(worker);
        }
        for worker in stale {
            inner.stop_detached(worker, WorkerStatus::Destroyed, false, RECYCLE_STOP_TIMEOUT);
        }
        // Busy old workers leave in `release`; wait for them within reset_timeout.
        let deadline = Instant::now() + inner.config.reset_timeout;
        loop {
            let changed = inner.busy_changed.notified();
            if inner.count_generation_below(generation) == 0 {
                break;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                tracing::warn!(target: "server", pool = %inner.name, "reset_timeout passed while old workers were still busy; they will leave when done");
                break;
            }
        }
        tracing::info!(target: "server", pool = %inner.name, workers = count, "pool reset: all workers replaced");
        Ok(())
    }

    /// Starts one more worker (`informer.AddWorker`), on the next lane in turn
    /// (a lane of its own under [`LanePlacement::PerWorker`]).
    pub async fn add_worker(&self) -> Result<(), PoolError> {
        let inner = &self.inner;
        if inner.destroyed.load(Ordering::Acquire) {
            return Err(PoolError::Stopped);
        }
        if inner.config.debug {
            return Err(PoolError::DebugPool);
        }
        let count = inner.num_workers.load(Ordering::Acquire);
        if count >= MAX_WORKERS {
            return Err(PoolError::TooManyWorkers(count + 1));
        }
        let lane = match inner.config.lanes {
            LanePlacement::PerCore => count as usize % inner.slots.len(),
            LanePlacement::PerWorker => {
                let lane = count as usize;
                if let Some(lanes) = Lanes::get() {
                    lanes.ensure(lane + 1).map_err(|source| PoolError::Spawn {
                        command: inner.spawner.command.display(),
                        source,
                    })?;
                }
                lane
            }
        };
        let worker = inner.spawn_on(lane, inner.generation()).await?;
        inner.num_workers.fetch_add(1, Ordering::AcqRel);
        inner
            .lock_all()
            .insert(worker.shared.pid, Arc::clone(&worker.shared));
        inner.push_idle(worker);
        tracing::info!(target: "server", pool = %inner.name, workers = count + 1, "worker added");
        Ok(())
    }

    /// Stops one worker for good (`informer.RemoveWorker`), waiting up to
    /// `allocate_timeout` for one to be free. The last worker is never
    /// removed: then nothing happens and `false` is returned.
    pub async fn remove_worker(&self) -> Result<bool, ExecError> {
        let inner = &self.inner;
        if inner.config.debug {
            return Err(PoolError::DebugPool.into());
        }
        if inner.num_workers.load(Ordering::Acquire) <= 1 {
            return Ok(false);
        }
        let mut leased = inner.take_worker(None).await?;
        let Some(worker) = leased.worker.take() else {
            return Err(ExecError::Stopped);
        };
        let remaining = inner.num_workers.fetch_sub(1, Ordering::AcqRel) - 1;
        // Answer once it is gone, so a listing right after is accurate.
        let pid = worker.shared.pid;
        worker.shared.set_replace_on_exit(false);
        on_lane(
            worker.lane(),
            worker.stop(WorkerStatus::Destroyed, RECYCLE_STOP_TIMEOUT),
        )
        .await;
        inner.lock_all().remove(&pid);
        tracing::info!(target: "server", pid, pool = %inner.name, workers = remaining, "worker removed");
        Ok(true)
    }

    /// Stops the pool: no new execs are accepted, in-flight ones may finish
    /// within `destroy_timeout`, then every worker gets the stop frame and,
    /// past `destroy_timeout`, SIGKILL.
    pub async fn destroy(&self) {
        let inner = &self.inner;
        if inner.destroyed.swap(true, Ordering::SeqCst) {
            return;
        }
        for slot in &inner.slots {
            slot.waiters.notify_waiters();
        }
        let deadline = Instant::now() + inner.config.destroy_timeout;
        loop {
            let changed = inner.busy_changed.notified();
            if inner.busy() == 0 {
                break;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                tracing::warn!(target: "server", pool = %inner.name, "destroy_timeout passed with busy workers; killing them");
                break;
            }
        }
        let idle = inner.drain_idle(|_| true);
        let stop_timeout = deadline.saturating_duration_since(Instant::now());
        let mut stopping = JoinSet::new();
        for worker in idle {
            worker.shared.set_replace_on_exit(false);
            let lane = worker.lane();
            stopping.spawn(on_lane(
                lane,
                worker.stop(WorkerStatus::Destroyed, stop_timeout),
            ));
        }
        while stopping.join_next().await.is_some() {}
        // Workers still busy past the deadline are killed outright.
        let remaining: Vec<Arc<WorkerShared>> = inner.lock_all().values().cloned().collect();
        for shared in remaining {
            shared.set_replace_on_exit(false);
            shared.set_status(WorkerStatus::Destroyed);
            shared.kill();
            shared.wait_exit(Duration::from_secs(5)).await;
        }
        tracing::debug!(target: "server", pool = %inner.name, "pool destroyed");
    }

    /// A snapshot of every live worker.
    pub fn workers(&self) -> Vec<WorkerInfo> {
        let mut workers: Vec<WorkerInfo> = self
            .inner
            .lock_all()
            .values()
            .map(|shared| WorkerInfo {
                pid: shared.pid,
                status: shared.status(),
                num_execs: shared.execs(),
                created: shared.created,
                memory_bytes: shared.rss_bytes().unwrap_or(0),
            })
            .collect();
        workers.sort_by_key(|w| w.created);
        workers
    }

    /// Execs attempted and failed since start.
    pub fn exec_counts(&self) -> (u64, u64) {
        self.inner
            .slots
            .iter()
            .fold((0, 0), |(execs, failed), slot| {
                (
                    execs + slot.execs.load(Ordering::Relaxed),
                    failed + slot.failed.load(Ordering::Relaxed),
                )
            })
    }

    /// Resolves when the pool has lost every worker and could not start a
    /// new one within `allocate_timeout`; the pool is useless after that.
    pub async fn fatal_error(&self) -> String {
        let mut receiver = self.inner.fatal.subscribe();
        let message = receiver
            .wait_for(Option::is_some)
            .await
            .map(|message| message.clone().unwrap_or_default());
        // The sender lives as long as the pool, so while the caller holds
        // `self` the wait cannot fail.
        message.unwrap_or_else(|_| String::from("pool dropped"))
    }
}

/// Counts a caller inside `exec` for `max_queue_size`.
struct InsideGuard<'a>(&'a PoolInner);

impl<'a> InsideGuard<'a> {
    fn enter(inner: &'a PoolInner) -> Result<Option<Self>, ExecError> {
        let limit = inner.config.max_queue_size;
        // Without a limit nobody reads the count: keep every lane off it.
        if limit == 0 {
            return Ok(None);
        }
        let before = inner.inside.fetch_add(1, Ordering::AcqRel);
        let guard = InsideGuard(inner);
        if before as u64 >= limit {
            return Err(ExecError::QueueFull);
        }
        Ok(Some(guard))
    }
}

impl Drop for InsideGuard<'_> {
    fn drop(&mut self) {
        self.0.inside.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The outcome of one attempt at an exec.
enum Attempt {
    /// The exec is over (or, for a stream, its first frame is in), with this result.
    Done(Result<Streamed, ExecError>),
    /// The worker asked to stop; try another.
    WorkerStopped,
}

/// A worker taken out of the pool for one exec; counted as busy until it is
/// given back. Dropped without being given back (the caller gave up mid
/// round trip), the worker is killed and replaced.
///
/// A lease borrows the pool while its round trip runs inline on the
/// caller's lane; only one handed to another lane or to a stream task owns
/// a reference ([`Leased::into_owned`]). Taking a reference per exec would
/// bounce the pool's reference count between the lanes' CPUs.
struct Leased<'p> {
    worker: Option<Worker>,
    /// The worker's lane, whose slot counts the lease as busy.
    lane: usize,
    pool: Cow<'p, Arc<PoolInner>>,
}

impl<'p> Leased<'p> {
    fn new(worker: Worker, pool: &'p Arc<PoolInner>) -> Leased<'p> {
        let lane = worker.lane();
        pool.slot(lane).busy.fetch_add(1, Ordering::SeqCst);
        Leased {
            worker: Some(worker),
            lane,
            pool: Cow::Borrowed(pool),
        }
    }

    /// The same lease, owning its pool reference.
    fn into_owned(mut self) -> Leased<'static> {
        let owned = Leased::new_owned(self.worker.take(), self.lane, Arc::clone(&self.pool));
        // `self` drops empty-handed now and gives up its busy count; the
        // owned lease took one of its own.
        drop(self);
        owned
    }

    fn lane(&self) -> usize {
        self.lane
    }

    /// Runs the round trip (bounded by `exec_ttl`) and gives the worker back
    /// or recycles it. Runs on the worker's lane. With `streaming`, a
    /// streamed first frame hands the worker to a task that forwards the
    /// rest of the stream.
    async fn execute(mut self, payload: &Payload, streaming: bool) -> Attempt {
        let Some(worker) = self.worker.as_mut() else {
            return Attempt::Done(Err(ExecError::Stopped));
        };
        let pid = worker.shared.pid;
        let round_trip = match self.pool.exec_ttl() {
            Some(ttl) => match tokio::time::timeout(ttl, worker.round_trip(payload)).await {
                Ok(result) => result,
                Err(_) => {
                    worker.shared.set_status(WorkerStatus::ExecTtlReached);
                    tracing::warn!(target: "server", pid, pool = %self.pool.name, reason = "execTTL timeout elapsed", "worker stopped, and will be restarted");
                    self.lose();
                    return Attempt::Done(Err(ExecError::ExecTtl { pid, ttl }));
                }
            },
            None => worker.round_trip(payload).await,
        };
        match round_trip {
            Ok(Reply::Response(reply)) => {
                self.give_back();
                Attempt::Done(Ok(Streamed {
                    first: reply,
                    rest: None,
                }))
            }
            Ok(Reply::Streamed(first)) if streaming => {
                let (sender, frames) = tokio::sync::mpsc::channel(STREAM_BUFFER);
                let lane = self.lane();
                spawn_on_lane(lane, forward_stream(self.into_owned(), sender));
                Attempt::Done(Ok(Streamed {
                    first,
                    rest: Some(ReplyStream { pid, frames }),
                }))
            }
            Ok(Reply::Streamed(_)) => {
                worker.shared.set_status(WorkerStatus::Errored);
                tracing::error!(target: "server", pid, pool = %self.pool.name, "worker sent a streamed reply to a plugin that does not take streams; it is killed and replaced");
                self.lose();
                Attempt::Done(Err(ExecError::Protocol {
                    pid,
                    source: ProtocolError::Stream,
                }))
            }
            Ok(Reply::SoftError(message)) => {
                tracing::warn!(target: "server", pid, pool = %self.pool.name, error = %message, "soft worker error");
                self.give_back();
                Attempt::Done(Err(ExecError::Worker { pid, message }))
            }
            Ok(Reply::StopRequested) => {
                tracing::debug!(target: "server", pid, pool = %self.pool.name, "worker asked to stop; the payload goes to another worker");
                self.stop_on_request();
                Attempt::WorkerStopped
            }
            Err(source) => {
                worker.shared.set_status(WorkerStatus::Errored);
                tracing::error!(target: "server", pid, pool = %self.pool.name, error = %source, "worker failed and is killed; a new one will be started");
                self.lose();
                Attempt::Done(Err(ExecError::Protocol { pid, source }))
            }
        }
    }

    /// The worker asked to stop (RoadRunner's stop request): it leaves
    /// gracefully and, outside debug mode, a fresh one takes its place.
    fn stop_on_request(&mut self) {
        if let Some(worker) = self.worker.take() {
            let replace = !self.pool.config.debug;
            self.pool
                .stop_detached(worker, WorkerStatus::Invalid, replace, RECYCLE_STOP_TIMEOUT);
        }
    }

    /// Puts the worker back, or recycles it if a limit says so.
    fn give_back(&mut self) {
        if let Some(worker) = self.worker.take() {
            self.pool.release(worker);
        }
    }

    /// Kills the worker (its relay is in an unknown state); the watcher
    /// replaces it.
    fn lose(&mut self) {
        if let Some(worker) = self.worker.take() {
            // Debug pools keep no workers, so nothing replaces theirs.
            worker.shared.set_replace_on_exit(!self.pool.config.debug);
            worker.shared.kill();
        }
    }
}

impl Leased<'static> {
    fn new_owned(worker: Option<Worker>, lane: usize, pool: Arc<PoolInner>) -> Leased<'static> {
        pool.slot(lane).busy.fetch_add(1, Ordering::SeqCst);
        Leased {
            worker,
            lane,
            pool: Cow::Owned(pool),
        }
    }
}

/// Where a streamed reply goes frame by frame.
type FrameSender = tokio::sync::mpsc::Sender<Result<Payload, ExecError>>;

/// Forwards a worker's streamed frames to `frames` until its last frame,
/// then gives the worker back. If the reader goes away first, stops the
/// stream. Runs on the worker's lane and owns the lease throughout, so the
/// worker counts as busy until its stream is over.
async fn forward_stream(mut leased: Leased<'static>, frames: FrameSender) {
    let pool = Arc::clone(&leased.pool);
    let exec_ttl = pool.exec_ttl();
    loop {
        let Some(worker) = leased.worker.as_mut() else {
            return;
        };
        let pid = worker.shared.pid;
        // A reader that goes away while the worker is between frames is
        // noticed at once, not at the next frame.
        let read = worker.read_stream_frame(frames.closed());
        let read = match exec_ttl {
            Some(ttl) => match tokio::time::timeout(ttl, read).await {
                Ok(read) => read,
                Err(_) => {
                    worker.shared.set_status(WorkerStatus::ExecTtlReached);
                    tracing::warn!(target: "server", pid, pool = %pool.name, reason = "execTTL timeout elapsed", "worker stopped in the middle of a stream, and will be restarted");
                    leased.lose();
                    let _ = frames.send(Err(ExecError::ExecTtl { pid, ttl })).await;
                    return;
                }
            },
            None => read.await,
        };
        match read {
            StreamRead::Interrupted => break,
            StreamRead::Reply(Ok(Reply::Streamed(chunk))) => {
                if frames.send(Ok(chunk)).await.is_err() {
                    break;
                }
            }
            StreamRead::Reply(Ok(Reply::Response(last))) => {
                leased.give_back();
                let _ = frames.send(Ok(last)).await;
                return;
            }
            StreamRead::Reply(Ok(Reply::SoftError(message))) => {
                tracing::warn!(target: "server", pid, pool = %pool.name, error = %message, "soft worker error in the middle of a stream");
                leased.give_back();
                let _ = frames.send(Err(ExecError::Worker { pid, message })).await;
                return;
            }
            StreamRead::Reply(Ok(Reply::StopRequested)) => {
                leased.stop_on_request();
                let _ = frames.send(Err(ExecError::StopInStream { pid })).await;
                return;
            }
            StreamRead::Reply(Err(source)) => {
                worker_failed(&mut leased, &pool, pid, &source);
                let _ = frames.send(Err(ExecError::Protocol { pid, source })).await;
                return;
            }
        }
    }
    stop_stream(leased).await;
}

/// Asks the worker to end its stream and drains it: frames are discarded
/// until the final one (RoadRunner's stream stop), for at most
/// `stream_timeout`; past that the worker is killed and replaced.
async fn stop_stream(mut leased: Leased<'static>) {
    let pool = Arc::clone(&leased.pool);
    let timeout = pool.config.effective_stream_timeout();
    let Some(pid) = leased.worker.as_ref().map(|w| w.shared.pid) else {
        return;
    };
    tracing::debug!(target: "server", pid, pool = %pool.name, "the reader of a streamed reply went away; stopping the worker's stream");
    let drained = tokio::time::timeout(timeout, async {
        let worker = leased.worker.as_mut().ok_or(ProtocolError::Stream)?;
        worker.send_stream_stop().await?;
        loop {
            match worker.read_stream_frame(std::future::pending()).await {
                StreamRead::Reply(Ok(Reply::Streamed(_))) => {}
                StreamRead::Reply(Ok(reply)) => return Ok(reply),
                StreamRead::Reply(Err(source)) => return Err(source),
                // A pending interrupt never fires.
                StreamRead::Interrupted => return Err(ProtocolError::Stream),
            }
        }
    })
    .await;
    match drained {
        Ok(Ok(Reply::StopRequested)) => {
            leased.stop_on_request();
        }
        Ok(Ok(_)) => {
            tracing::debug!(target: "server", pid, pool = %pool.name, "worker ended its stream after the stop");
            leased.give_back();
        }
        Ok(Err(source)) => worker_failed(&mut leased, &pool, pid, &source),
        Err(_) => {
            if let Some(worker) = &leased.worker {
                worker.shared.set_status(WorkerStatus::Errored);
            }
            tracing::warn!(target: "server", pid, pool = %pool.name, ?timeout, "worker did not end its stream within stream_timeout after the stop; killed, a new one will be started");
            leased.lose();
        }
    }
}

/// Kills a worker that broke the protocol in the middle of a stream.
fn worker_failed(leased: &mut Leased<'_>, pool: &PoolInner, pid: u32, source: &ProtocolError) {
    if let Some(worker) = &leased.worker {
        worker.shared.set_status(WorkerStatus::Errored);
    }
    tracing::error!(target: "server", pid, pool = %pool.name, error = %source, "worker failed in the middle of a stream and is killed; a new one will be started");
    leased.lose();
}

impl Drop for Leased<'_> {
    fn drop(&mut self) {
        self.lose();
        // Only destroy waits for the busy count to reach zero (reset waits
        // for worker exits, which the watcher announces). SeqCst pairs with
        // destroy's: it either sees this lease gone or is told here.
        self.pool
            .slot(self.lane)
            .busy
            .fetch_sub(1, Ordering::SeqCst);
        if self.pool.destroyed.load(Ordering::SeqCst) {
            self.pool.busy_changed.notify_waiters();
        }
    }
}

impl PoolInner {
    fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn exec_ttl(&self) -> Option<Duration> {
        self.config.supervisor.as_ref().and_then(|s| s.exec_ttl())
    }

    fn slot(&self, lane: usize) -> &LaneSlot {
        &self.slots[lane % self.slots.len()]
    }

    fn lock_idle(&self, lane: usize) -> MutexGuard<'_, VecDeque<Worker>> {
        // Each critical section is one push, pop or drain: the queue is
        // consistent even after a panic elsewhere.
        self.slot(lane)
            .idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Workers leased out and not yet given back, over all lanes.
    fn busy(&self) -> isize {
        self.slots
            .iter()
            .map(|slot| slot.busy.load(Ordering::SeqCst))
            .sum()
    }

    /// Wakes a waiting caller for a worker just made free on `lane`: the
    /// first waiter of that lane, so the round trip runs there without a
    /// hand-off between threads; failing that, the first of the next lane
    /// that has waiters. A freed worker's lane keeps its waiters in order
    /// and no worker stays idle while anyone waits.
    ///
    /// The fence orders the push of the worker before the look at the
    /// counts, as [`Waiting::enter`] orders its counts before the waiter's
    /// look at the queues: a waiter either finds the worker or is woken.
    fn wake_a_waiter(&self, lane: usize) {
        fence(Ordering::SeqCst);
        if self.waiting.load(Ordering::SeqCst) == 0 {
            return;
        }
        for offset in 0..self.slots.len() {
            let slot = self.slot(lane + offset);
            if slot.waiting.load(Ordering::SeqCst) > 0 {
                slot.waiters.notify_one();
                return;
            }
        }
    }

    fn lock_all(&self) -> MutexGuard<'_, HashMap<u32, Arc<WorkerShared>>> {
        self.all.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes every idle worker matching `pick` out of the queues.
    fn drain_idle(&self, pick: impl Fn(&Worker) -> bool) -> Vec<Worker> {
        let mut taken = Vec::new();
        for lane in 0..self.slots.len() {
            let mut idle = self.lock_idle(lane);
            let (picked, kept): (VecDeque<Worker>, VecDeque<Worker>) =
                idle.drain(..).partition(&pick);
            *idle = kept;
            taken.extend(picked);
        }
        taken
    }

    fn count_generation_below(&self, generation: u64) -> usize {
        self.lock_all()
            .values()
            .filter(|w| w.generation < generation && !w.has_exited())
            .count()
    }

    /// Starts one worker on `lane`.
    async fn spawn_on(&self, lane: usize, generation: u64) -> Result<Worker, PoolError> {
        let spawner = self.spawner.clone();
        on_lane(lane, async move { spawner.spawn(generation, lane).await })
            .await
            .unwrap_or(Err(PoolError::Stopped))
    }

    /// Spawns `count` workers in parallel, spread over the lanes; on any
    /// failure kills the others.
    async fn spawn_many(
        self: &Arc<Self>,
        count: u64,
        generation: u64,
    ) -> Result<Vec<Worker>, PoolError> {
        let mut spawning = JoinSet::new();
        let lanes = self.slots.len();
        for index in 0..count {
            let pool = Arc::clone(self);
            let lane = index as usize % lanes;
            spawning.spawn(async move { pool.spawn_on(lane, generation).await });
        }
        let mut workers = Vec::with_capacity(count as usize);
        let mut first_error = None;
        while let Some(joined) = spawning.join_next().await {
            match joined {
                Ok(Ok(worker)) => {
                    self.lock_all()
                        .insert(worker.shared.pid, Arc::clone(&worker.shared));
                    workers.push(worker);
                }
                Ok(Err(err)) => {
                    first_error.get_or_insert(err);
                }
                Err(join_error) => {
                    tracing::error!(target: "server", error = %join_error, "a worker start-up task failed");
                }
            }
        }
        if let Some(err) = first_error {
            for worker in &workers {
                worker.shared.set_replace_on_exit(false);
                worker.shared.set_status(WorkerStatus::Destroyed);
                worker.shared.kill();
            }
            // Gone before the error is reported (see `Spawner::spawn`).
            for worker in workers {
                worker.shared.wait_exit(Duration::from_secs(5)).await;
            }
            return Err(err);
        }
        Ok(workers)
    }

    fn push_idle(&self, worker: Worker) {
        worker.shared.set_status(WorkerStatus::Ready);
        let lane = worker.lane();
        self.lock_idle(lane).push_back(worker);
        self.wake_a_waiter(lane);
    }

    /// The caller's lane as an index into this pool's idle queues.
    fn here(&self) -> usize {
        current_lane().unwrap_or(0) % self.slots.len()
    }

    /// A fresh worker for one exec of a debug pool.
    async fn lease_fresh(self: &Arc<Self>) -> Result<Leased<'_>, ExecError> {
        let worker = self.spawn_on(self.here(), self.generation()).await?;
        Ok(Leased::new(worker, self))
    }

    /// Takes a free worker, waiting up to `allocate_timeout`, or up to
    /// `wait` (quietly) when the caller sets its own bound.
    async fn take_worker(
        self: &Arc<Self>,
        wait: Option<Duration>,
    ) -> Result<Leased<'_>, ExecError> {
        let lane = self.here();
        // Fast path: a worker is free and nobody waits for one.
        if !self.destroyed.load(Ordering::Acquire) && self.waiting.load(Ordering::Acquire) == 0 {
            if let Some(worker) = self.pop_idle(lane) {
                return Ok(Leased::new(worker, self));
            }
        }
        let limit = wait.map_or(self.config.allocate_timeout, |w| {
            w.min(self.config.allocate_timeout)
        });
        let deadline = Instant::now() + limit;
        let slot = self.slot(lane);
        let _queued = Waiting::enter(&self.waiting, &slot.waiting);
        // Behind other waiters of its lane, a newcomer waits for its turn (a
        // wake-up) rather than looking at once.
        let mut my_turn = slot.waiting.load(Ordering::SeqCst) == 1;
        loop {
            let ready = slot.waiters.notified();
            tokio::pin!(ready);
            // Register before looking, so a push between the look and the
            // wait is not missed.
            ready.as_mut().enable();
            if self.destroyed.load(Ordering::Acquire) {
                return Err(ExecError::Stopped);
            }
            if my_turn {
                if let Some(worker) = self.pop_idle(lane) {
                    return Ok(Leased::new(worker, self));
                }
            }
            my_turn = true;
            if tokio::time::timeout_at(deadline, ready).await.is_err() {
                if let Some(worker) = self.pop_idle(lane) {
                    return Ok(Leased::new(worker, self));
                }
                if wait.is_none() {
                    tracing::error!(target: "server", pool = %self.name, "no free workers in the pool, wait timeout exceed");
                }
                return Err(ExecError::NoFreeWorkers(limit));
            }
        }
    }

    /// Pops the first live, current worker, from `lane`'s queue first, then
    /// from other lanes that have no waiters of their own (their freed
    /// workers are theirs); stale or dead ones met on the way are dealt with.
    fn pop_idle(&self, lane: usize) -> Option<Worker> {
        let lanes = self.slots.len();
        for offset in 0..lanes {
            let queue = (lane + offset) % lanes;
            if offset > 0 && self.slot(queue).waiting.load(Ordering::SeqCst) > 0 {
                continue;
            }
            loop {
                let (worker, more) = {
                    let mut idle = self.lock_idle(queue);
                    let Some(worker) = idle.pop_front() else {
                        break;
                    };
                    (worker, !idle.is_empty())
                };
                if worker.shared.has_exited() {
                    continue; // the watcher replaces it
                }
                if let Some(reason) = worker.shared.retire_reason() {
                    self.stop_detached(worker, reason, true, RECYCLE_STOP_TIMEOUT);
                    continue;
                }
                if more {
                    // Pass the baton: another waiter may take the next one.
                    self.wake_a_waiter(queue);
                }
                return Some(worker);
            }
        }
        None
    }

    /// Gives a worker back after an exec, or recycles it if a limit says so.
    fn release(&self, worker: Worker) {
        let stale = worker.shared.generation < self.generation();
        // Debug pools use a worker once; stale ones belong to a finished reset.
        if self.config.debug || stale {
            self.stop_detached(worker, WorkerStatus::Destroyed, false, RECYCLE_STOP_TIMEOUT);
        } else if worker.max_execs_reached() {
            self.stop_detached(
                worker,
                WorkerStatus::MaxJobsReached,
                true,
                RECYCLE_STOP_TIMEOUT,
            );
        } else if let Some(reason) = worker.shared.retire_reason() {
            self.stop_detached(worker, reason, true, RECYCLE_STOP_TIMEOUT);
        } else if self.destroyed.load(Ordering::Acquire) {
            // Destroy stops whatever is in the idle queues.
            self.lock_idle(worker.lane()).push_back(worker);
        } else {
            self.push_idle(worker);
        }
    }

    /// Stops a worker gracefully on its lane without waiting.
    fn stop_detached(
        &self,
        worker: Worker,
        status: WorkerStatus,
        replace: bool,
        timeout: Duration,
    ) {
        worker
            .shared
            .set_replace_on_exit(replace && !self.destroyed.load(Ordering::Acquire));
        tracing::debug!(target: "server", pid = worker.shared.pid, pool = %self.name, reason = %status, "stopping worker");
        let lane = worker.lane();
        spawn_on_lane(lane, worker.stop(status, timeout));
    }

    /// One supervisor pass over every worker.
    fn supervise(&self) {
        let Some(limits) = &self.config.supervisor else {
            return;
        };
        let now = SystemTime::now();
        let workers: Vec<Arc<WorkerShared>> = self.lock_all().values().cloned().collect();
        for shared in workers {
            if matches!(
                shared.status(),
                WorkerStatus::Inactive
                    | WorkerStatus::Stopping
                    | WorkerStatus::Stopped
                    | WorkerStatus::Destroyed
            ) {
                continue;
            }
            let age = now.duration_since(shared.created).unwrap_or_default();
            if limits.ttl.is_some_and(|ttl| !ttl.is_zero() && age >= ttl) {
                tracing::info!(target: "server", pid = shared.pid, pool = %self.name, reason = "ttl", "worker reached its time to live and will be recycled");
                shared.retire(WorkerStatus::TtlReached);
            }
            if limits.max_worker_memory > 0 {
                let limit = limits.max_worker_memory * 1024 * 1024;
                if let Some(rss) = shared.rss_bytes().filter(|rss| *rss >= limit) {
                    tracing::info!(target: "server", pid = shared.pid, pool = %self.name, rss_mib = rss / (1024 * 1024), limit_mib = limits.max_worker_memory, "worker reached its memory limit and will be recycled");
                    shared.retire(WorkerStatus::MaxMemoryReached);
                }
            }
            if let (Some(idle_ttl), Some(last_used)) = (limits.idle_ttl, shared.last_used()) {
                let idle_for = now.duration_since(last_used).unwrap_or_default();
                if !idle_ttl.is_zero()
                    && shared.status() == WorkerStatus::Ready
                    && idle_for >= idle_ttl
                {
                    shared.retire(WorkerStatus::IdleTtlReached);
                }
            }
        }
        // Idle workers with a retire mark leave now; busy ones when released.
        for worker in self.drain_idle(|w| w.shared.retire_reason().is_some()) {
            let reason = worker
                .shared
                .retire_reason()
                .unwrap_or(WorkerStatus::Invalid);
            self.stop_detached(worker, reason, true, RECYCLE_STOP_TIMEOUT);
        }
    }

    /// Starts a replacement on `lane` for an exited worker, retrying every
    /// second up to `allocate_timeout`.
    async fn replace(&self, lane: usize) -> Result<(), PoolError> {
        let deadline = Instant::now() + self.config.allocate_timeout;
        loop {
            match self.spawn_on(lane, self.generation()).await {
                Ok(worker) => {
                    if self.destroyed.load(Ordering::Acquire) {
                        worker.shared.set_replace_on_exit(false);
                        spawn_on_lane(
                            lane,
                            worker.stop(WorkerStatus::Destroyed, RECYCLE_STOP_TIMEOUT),
                        );
                        return Ok(());
                    }
                    self.lock_all()
                        .insert(worker.shared.pid, Arc::clone(&worker.shared));
                    self.push_idle(worker);
                    return Ok(());
                }
                Err(err) if Instant::now() + Duration::from_secs(1) < deadline => {
                    tracing::error!(target: "server", pool = %self.name, error = %err, "failed to start a replacement worker, retrying in 1s");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(err) => return Err(err),
            }
        }
    }
}

/// Replaces exited workers and runs the supervisor until the pool is destroyed.
async fn watch_pool(inner: Arc<PoolInner>, mut exits: mpsc::UnboundedReceiver<Arc<WorkerShared>>) {
    let watch_tick = inner
        .config
        .supervisor
        .as_ref()
        .map(|s| s.watch_tick)
        .filter(|t| !t.is_zero());
    let mut ticker = tokio::time::interval(watch_tick.unwrap_or(Duration::from_secs(3600)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut replacing = JoinSet::new();
    loop {
        tokio::select! {
            exited = exits.recv() => {
                let Some(shared) = exited else { return };
                inner.lock_all().remove(&shared.pid);
                inner.busy_changed.notify_waiters();
                let destroyed = inner.destroyed.load(Ordering::Acquire);
                if destroyed || !shared.replace_on_exit() {
                    if destroyed && inner.lock_all().is_empty() { return; }
                    continue;
                }
                let status = shared.exit_status().map_or_else(|| "unknown".to_owned(), |s| s.to_string());
                match shared.status() {
                    WorkerStatus::Stopped => tracing::warn!(target: "server", pid = shared.pid, pool = %inner.name, %status, "worker exited unexpectedly; starting a new one"),
                    reason => tracing::debug!(target: "server", pid = shared.pid, pool = %inner.name, %reason, "worker recycled; starting a new one"),
                }
                let inner = Arc::clone(&inner);
                let lane = shared.lane;
                replacing.spawn(async move {
                    if let Err(err) = inner.replace(lane).await {
                        if inner.lock_all().is_empty() && !inner.destroyed.load(Ordering::Acquire) {
                            let message = format!("no workers available, can't run the application: {err}");
                            tracing::error!(target: "server", pool = %inner.name, "{message}");
                            inner.fatal.send_replace(Some(message));
                        } else {
                            tracing::error!(target: "server", pool = %inner.name, error = %err, "could not replace a worker; the pool runs with fewer workers");
                        }
                    }
                });
            }
            _ = ticker.tick(), if watch_tick.is_some() => inner.supervise(),
            Some(_) = replacing.join_next(), if !replacing.is_empty() => {}
        }
    }
}

/// Counts a caller among the pool's and its lane's waiters for as long as
/// it lives.
struct Waiting<'a> {
    pool: &'a AtomicUsize,
    lane: &'a AtomicUsize,
}

impl<'a> Waiting<'a> {
    fn enter(pool: &'a AtomicUsize, lane: &'a AtomicUsize) -> Waiting<'a> {
        // The lane's count first: whoever sees the pool's count sees it too
        // (see `PoolInner::wake_a_waiter`).
        lane.fetch_add(1, Ordering::SeqCst);
        pool.fetch_add(1, Ordering::SeqCst);
        Waiting { pool, lane }
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.pool.fetch_sub(1, Ordering::SeqCst);
        self.lane.fetch_sub(1, Ordering::SeqCst);
    }
}
