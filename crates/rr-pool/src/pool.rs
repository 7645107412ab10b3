//! The static worker pool: a fixed number of workers, each executing one
//! payload at a time.
//!
//! Idle workers wait in a FIFO queue behind a plain mutex that is held only to
//! push or pop, never across a round trip: an exec takes a worker out,
//! owns it for the round trip, and puts it back. A watcher task replaces
//! workers that exit and runs the supervisor's limits.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::config::{PoolConfig, MAX_WORKERS, RECYCLE_STOP_TIMEOUT};

/// Workers in a row that may ask to stop instead of answering one payload.
const MAX_STOP_REQUESTS: u32 = 10;
use crate::error::{ExecError, PoolError};
use crate::payload::Payload;
use crate::protocol::Reply;
use crate::status::WorkerStatus;
use crate::worker::{Relay, RoundTripError, Spawner, Worker, WorkerCommand, WorkerShared};

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

/// Counters of one pool since it started.
#[derive(Debug, Default)]
struct Counters {
    execs: AtomicU64,
    failed: AtomicU64,
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
    num_workers: u64,
    spawner: Spawner,
    idle: Mutex<VecDeque<Worker>>,
    idle_ready: Notify,
    all: Mutex<HashMap<u32, Arc<WorkerShared>>>,
    /// Bumped by each reset; workers of an older generation leave when released.
    generation: AtomicU64,
    destroyed: AtomicBool,
    /// Callers inside `exec`, for `max_queue_size`.
    inside: AtomicUsize,
    /// Workers taken out of the idle queue and not yet given back.
    busy: AtomicUsize,
    busy_changed: Notify,
    counters: Counters,
    fatal: watch::Sender<Option<String>>,
    reset_lock: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("pid", &self.shared.pid)
            .finish()
    }
}

impl Pool {
    /// Starts `config.num_workers` workers in parallel and returns when all of
    /// them finished their handshake. If one fails, all are stopped and the
    /// first error is returned.
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
            num_workers,
            spawner,
            idle: Mutex::new(VecDeque::new()),
            idle_ready: Notify::new(),
            all: Mutex::new(HashMap::new()),
            generation: AtomicU64::new(0),
            destroyed: AtomicBool::new(false),
            inside: AtomicUsize::new(0),
            busy: AtomicUsize::new(0),
            busy_changed: Notify::new(),
            counters: Counters::default(),
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
    pub async fn exec(&self, payload: &Payload) -> Result<Payload, ExecError> {
        if payload.is_empty() {
            return Err(ExecError::EmptyPayload);
        }
        let inner = &self.inner;
        let _inside = InsideGuard::enter(inner)?;
        let mut stop_requests = 0;
        let result = loop {
            let mut worker = if inner.config.debug {
                inner.spawner.spawn(inner.generation()).await?
            } else {
                inner.take_worker().await?
            };
            let pid = worker.shared.pid;
            let round_trip = match inner.exec_ttl() {
                Some(ttl) => match tokio::time::timeout(ttl, worker.round_trip(payload)).await {
                    Ok(result) => result,
                    Err(_) => {
                        worker.shared.set_status(WorkerStatus::ExecTtlReached);
                        tracing::warn!(target: "server", pid, pool = %inner.name, reason = "execTTL timeout elapsed", "worker stopped, and will be restarted");
                        inner.lose(worker);
                        break Err(ExecError::ExecTtl { pid, ttl });
                    }
                },
                None => worker.round_trip(payload).await,
            };
            match round_trip {
                Ok(Reply::Response(reply)) => {
                    inner.release(worker);
                    break Ok(reply);
                }
                Ok(Reply::SoftError(message)) => {
                    tracing::warn!(target: "server", pid, pool = %inner.name, error = %message, "soft worker error");
                    inner.release(worker);
                    break Err(ExecError::Worker { pid, message });
                }
                Ok(Reply::StopRequested) => {
                    tracing::debug!(target: "server", pid, pool = %inner.name, "worker asked to stop; the payload goes to another worker");
                    inner.release_stopped(worker);
                    stop_requests += 1;
                    // RoadRunner retries without end; a worker that always
                    // stops would spin the pool forever.
                    if stop_requests >= MAX_STOP_REQUESTS {
                        break Err(ExecError::StopLoop(stop_requests));
                    }
                }
                Err(RoundTripError::Protocol(source)) => {
                    worker.shared.set_status(WorkerStatus::Errored);
                    tracing::error!(target: "server", pid, pool = %inner.name, error = %source, "worker failed and is killed; a new one will be started");
                    inner.lose(worker);
                    break Err(ExecError::Protocol { pid, source });
                }
            }
        };
        inner.counters.execs.fetch_add(1, Ordering::Relaxed);
        if result.is_err() {
            inner.counters.failed.fetch_add(1, Ordering::Relaxed);
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
        let fresh = inner.spawn_many(inner.num_workers, generation).await?;
        inner.generation.store(generation, Ordering::Release);
        let stale: Vec<Worker> = {
            let mut idle = inner.lock_idle();
            let (stale, current): (VecDeque<Worker>, VecDeque<Worker>) = idle
                .drain(..)
                .partition(|w| w.shared.generation < generation);
            *idle = current;
            idle.extend(fresh);
            stale.into_iter().collect()
        };
        for _ in 0..inner.num_workers {
            inner.idle_ready.notify_one();
        }
        for worker in stale {
            inner.stop_detached(worker, WorkerStatus::Destroyed, false, RECYCLE_STOP_TIMEOUT);
        }
        // Busy old workers leave in `release`; wait for them within reset_timeout.
        let deadline = Instant::now() + inner.config.reset_timeout;
        while inner.count_generation_below(generation) > 0 {
            let changed = inner.busy_changed.notified();
            if inner.count_generation_below(generation) == 0 {
                break;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                tracing::warn!(target: "server", pool = %inner.name, "reset_timeout passed while old workers were still busy; they will leave when done");
                break;
            }
        }
        tracing::info!(target: "server", pool = %inner.name, workers = inner.num_workers, "pool reset: all workers replaced");
        Ok(())
    }

    /// Stops the pool: no new execs are accepted, in-flight ones may finish
    /// within `destroy_timeout`, then every worker gets the stop frame and,
    /// past `destroy_timeout`, SIGKILL.
    pub async fn destroy(&self) {
        let inner = &self.inner;
        if inner.destroyed.swap(true, Ordering::AcqRel) {
            return;
        }
        inner.idle_ready.notify_waiters();
        let deadline = Instant::now() + inner.config.destroy_timeout;
        while inner.busy.load(Ordering::Acquire) > 0 {
            let changed = inner.busy_changed.notified();
            if inner.busy.load(Ordering::Acquire) == 0 {
                break;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                tracing::warn!(target: "server", pool = %inner.name, "destroy_timeout passed with busy workers; killing them");
                break;
            }
        }
        let idle: Vec<Worker> = inner.lock_idle().drain(..).collect();
        let stop_timeout = deadline.saturating_duration_since(Instant::now());
        let mut stopping = JoinSet::new();
        for worker in idle {
            worker.shared.set_replace_on_exit(false);
            stopping.spawn(worker.stop(WorkerStatus::Destroyed, stop_timeout));
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
        let c = &self.inner.counters;
        (
            c.execs.load(Ordering::Relaxed),
            c.failed.load(Ordering::Relaxed),
        )
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
    fn enter(inner: &'a PoolInner) -> Result<Self, ExecError> {
        let before = inner.inside.fetch_add(1, Ordering::AcqRel);
        let guard = InsideGuard(inner);
        let limit = inner.config.max_queue_size;
        if limit > 0 && before as u64 >= limit {
            return Err(ExecError::QueueFull);
        }
        Ok(guard)
    }
}

impl Drop for InsideGuard<'_> {
    fn drop(&mut self) {
        self.0.inside.fetch_sub(1, Ordering::AcqRel);
    }
}

impl PoolInner {
    fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn exec_ttl(&self) -> Option<Duration> {
        self.config.supervisor.as_ref().and_then(|s| s.exec_ttl())
    }

    fn lock_idle(&self) -> MutexGuard<'_, VecDeque<Worker>> {
        // Each critical section is one push, pop or drain: the queue is
        // consistent even after a panic elsewhere.
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_all(&self) -> MutexGuard<'_, HashMap<u32, Arc<WorkerShared>>> {
        self.all.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn count_generation_below(&self, generation: u64) -> usize {
        self.lock_all()
            .values()
            .filter(|w| w.generation < generation && !w.has_exited())
            .count()
    }

    /// Spawns `count` workers in parallel; on any failure kills the others.
    async fn spawn_many(&self, count: u64, generation: u64) -> Result<Vec<Worker>, PoolError> {
        let mut spawning = JoinSet::new();
        for _ in 0..count {
            let spawner = self.spawner.clone();
            spawning.spawn(async move { spawner.spawn(generation).await });
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
        self.lock_idle().push_back(worker);
        self.idle_ready.notify_one();
    }

    /// Takes a free worker, waiting up to `allocate_timeout`.
    async fn take_worker(&self) -> Result<Worker, ExecError> {
        let deadline = Instant::now() + self.config.allocate_timeout;
        loop {
            let ready = self.idle_ready.notified();
            tokio::pin!(ready);
            // Register before looking, so a push between the look and the
            // wait is not missed.
            ready.as_mut().enable();
            if self.destroyed.load(Ordering::Acquire) {
                return Err(ExecError::Stopped);
            }
            if let Some(worker) = self.pop_idle() {
                return Ok(worker);
            }
            if tokio::time::timeout_at(deadline, ready).await.is_err() {
                if let Some(worker) = self.pop_idle() {
                    return Ok(worker);
                }
                tracing::error!(target: "server", pool = %self.name, "no free workers in the pool, wait timeout exceed");
                return Err(ExecError::NoFreeWorkers(self.config.allocate_timeout));
            }
        }
    }

    /// Pops the first live, current worker; stale or dead ones met on the way
    /// are dealt with.
    fn pop_idle(&self) -> Option<Worker> {
        loop {
            let (worker, more) = {
                let mut idle = self.lock_idle();
                let worker = idle.pop_front()?;
                (worker, !idle.is_empty())
            };
            if worker.shared.has_exited() {
                continue; // the watcher replaces it
            }
            if let Some(reason) = worker.shared.retire_reason() {
                self.retire_now(worker, reason, true);
                continue;
            }
            self.busy.fetch_add(1, Ordering::AcqRel);
            if more {
                // Pass the baton: another waiter may be able to take the next one.
                self.idle_ready.notify_one();
            }
            return Some(worker);
        }
    }

    /// Gives a worker back after an exec, or recycles it if a limit says so.
    fn release(&self, worker: Worker) {
        let stale = worker.shared.generation < self.generation();
        let destroyed = self.destroyed.load(Ordering::Acquire);
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
        } else if destroyed {
            // Destroy stops the idle queue; put it there for that.
            self.lock_idle().push_back(worker);
        } else {
            self.push_idle(worker);
        }
        if !self.config.debug {
            self.busy.fetch_sub(1, Ordering::AcqRel);
        }
        self.busy_changed.notify_waiters();
    }

    /// A worker that asked to stop after taking a payload: it leaves and is
    /// replaced, and it no longer counts as busy.
    fn release_stopped(&self, worker: Worker) {
        self.retire_now(worker, WorkerStatus::Invalid, !self.config.debug);
        if !self.config.debug {
            self.busy.fetch_sub(1, Ordering::AcqRel);
        }
        self.busy_changed.notify_waiters();
    }

    /// Recycles a worker taken from the queue or released after an exec.
    fn retire_now(&self, worker: Worker, reason: WorkerStatus, replace: bool) {
        self.stop_detached(worker, reason, replace, RECYCLE_STOP_TIMEOUT);
    }

    /// A worker that failed mid-exec: killed (by dropping it mid round
    /// trip) and replaced by the watcher.
    fn lose(&self, worker: Worker) {
        worker.shared.set_replace_on_exit(true);
        worker.shared.kill();
        drop(worker);
        if !self.config.debug {
            self.busy.fetch_sub(1, Ordering::AcqRel);
        }
        self.busy_changed.notify_waiters();
    }

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
        tokio::spawn(worker.stop(status, timeout));
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
        let retiring: Vec<Worker> = {
            let mut idle = self.lock_idle();
            let (retiring, keep): (VecDeque<Worker>, VecDeque<Worker>) = idle
                .drain(..)
                .partition(|w| w.shared.retire_reason().is_some());
            *idle = keep;
            retiring.into_iter().collect()
        };
        for worker in retiring {
            let reason = worker
                .shared
                .retire_reason()
                .unwrap_or(WorkerStatus::Invalid);
            self.retire_now(worker, reason, true);
        }
    }

    /// Starts a replacement for an exited worker, retrying every second up
    /// to `allocate_timeout`.
    async fn replace(&self) -> Result<(), PoolError> {
        let deadline = Instant::now() + self.config.allocate_timeout;
        loop {
            let generation = self.generation();
            match self.spawner.spawn(generation).await {
                Ok(worker) => {
                    if self.destroyed.load(Ordering::Acquire) {
                        worker.shared.set_replace_on_exit(false);
                        tokio::spawn(worker.stop(WorkerStatus::Destroyed, RECYCLE_STOP_TIMEOUT));
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
                replacing.spawn(async move {
                    if let Err(err) = inner.replace().await {
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
