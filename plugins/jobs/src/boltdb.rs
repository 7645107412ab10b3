//! The `boltdb` driver: jobs live in a local file and survive a restart.
//!
//! Options, as RoadRunner's: `file` (`rr.db`, relative to rr's working
//! directory), `priority` (10), `prefetch` (1000: jobs handed to the
//! plugin's queue and not yet settled), `permissions` (`"0755"`, octal, the
//! mode of a new file; an unparsable value falls back to 0755 with a
//! warning, as RoadRunner does).
//!
//! RoadRunner stores jobs in BoltDB; this driver uses [redb], the store the
//! kv plugin's `boltdb` driver uses too: one file, ACID transactions with
//! copy-on-write pages, crash-safe without a log to replay. The file is not
//! BoltDB's format. It has RoadRunner's three buckets as tables:
//!
//! * `push`: ready jobs keyed by (priority, sequence), so the first key is
//!   the next job to run: lowest priority number, then oldest;
//! * `delayed`: jobs keyed by (not-before time in unix milliseconds,
//!   sequence); wall-clock time, so a delay keeps counting across restarts;
//! * `processing`: jobs handed to a worker and not yet settled, keyed by
//!   sequence.
//!
//! Every change is one committed transaction before the call returns: a
//! push is durable when it returns; taking a job moves it from `push` to
//! `processing`; ack (and nack without requeue) deletes it; requeue moves
//! it back to `push` or `delayed`. Opening the file moves everything in
//! `processing` back to `push`: jobs that were with a worker when rr died
//! run again (at-least-once).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition};
use rr_plugin::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::backoff::Backoff;
use crate::driver::{Background, Driver, DriverError, PipelineSpec, Switch};
use crate::job::{Acknowledger, Delivery, Job};
use crate::proto::{Headers, Stat};
use crate::queue::JobQueue;

/// The driver's name.
pub const NAME: &str = "boltdb";
/// Default `file`.
pub const DEFAULT_FILE: &str = "rr.db";
/// Default `priority`.
pub const DEFAULT_PRIORITY: i64 = 10;
/// Default `prefetch`.
pub const DEFAULT_PREFETCH: i64 = 1000;
/// Default `permissions` (0755).
pub const DEFAULT_PERMISSIONS: u32 = 0o755;
/// Jobs moved from the file to the plugin's queue in one transaction: each
/// commit syncs the file, so taking a batch keeps a backlog from costing
/// one sync per job.
const TAKE_BATCH: usize = 64;

/// RoadRunner's name for the ready bucket (also `jobs.Stat`'s queue).
const READY_NAME: &str = "push";
/// Ready jobs: (priority, sequence) → record.
const READY: TableDefinition<(i64, u64), &[u8]> = TableDefinition::new(READY_NAME);
/// Delayed jobs: (not-before unix ms, sequence) → record.
const DELAYED: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("delayed");
/// Jobs with a worker: sequence → record.
const PROCESSING: TableDefinition<u64, &[u8]> = TableDefinition::new("processing");

fn store_error(e: impl std::fmt::Display) -> DriverError {
    DriverError::Broker(format!("boltdb: {e}"))
}

/// Milliseconds since the unix epoch (0 if the clock is before it).
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A job's fields other than its payload, stored as JSON.
#[derive(Serialize, Deserialize)]
struct Meta {
    id: String,
    name: String,
    headers: Headers,
    pipeline: String,
    priority: i64,
    auto_ack: bool,
}

/// A stored job: 4 bytes of meta length (little endian), the meta JSON,
/// then the payload as is (payloads are often large and not UTF-8).
fn encode(job: &Job) -> Result<Vec<u8>, DriverError> {
    let meta = serde_json::to_vec(&Meta {
        id: job.id.clone(),
        name: job.name.clone(),
        headers: job.headers.clone(),
        pipeline: job.pipeline.clone(),
        priority: job.priority,
        auto_ack: job.auto_ack,
    })
    .map_err(store_error)?;
    let len = u32::try_from(meta.len()).map_err(|_| store_error("job headers are too large"))?;
    let mut out = Vec::with_capacity(4 + meta.len() + job.payload.len());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&meta);
    out.extend_from_slice(&job.payload);
    Ok(out)
}

fn decode(raw: &[u8]) -> Result<Job, DriverError> {
    let (len, rest) = raw
        .split_first_chunk::<4>()
        .ok_or_else(|| store_error("stored job is truncated"))?;
    let len = u32::from_le_bytes(*len) as usize;
    if rest.len() < len {
        return Err(store_error("stored job is truncated"));
    }
    let (meta, payload) = rest.split_at(len);
    let meta: Meta = serde_json::from_slice(meta).map_err(store_error)?;
    Ok(Job {
        id: meta.id,
        name: meta.name,
        payload: Bytes::copy_from_slice(payload),
        headers: meta.headers,
        pipeline: meta.pipeline,
        priority: meta.priority,
        delay: 0,
        auto_ack: meta.auto_ack,
    })
}

/// What [`Store::take`] found.
#[derive(Debug, Default)]
struct Taken {
    /// Jobs moved to `processing`, best first, with their sequence.
    jobs: Vec<(u64, Job)>,
    /// When the earliest delayed job is due (unix ms), if any.
    next_due: Option<u64>,
    /// Records that could not be decoded (dropped, logged by the caller).
    corrupt: usize,
}

/// Stored job counts.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Counts {
    ready: u64,
    delayed: u64,
    processing: u64,
}

/// The file and its tables; every method is one blocking transaction.
struct Store {
    db: Database,
    /// The next sequence number (one past the highest in the file).
    seq: AtomicU64,
}

impl Store {
    /// Opens or creates the file (a new one gets `mode`), creates the
    /// tables, and moves jobs left in `processing` back to `push`. Returns
    /// the store and how many jobs were moved back.
    fn open(path: &Path, mode: u32) -> Result<(Store, u64), DriverError> {
        let existed = path.exists();
        let db = Database::create(path)
            .map_err(|e| store_error(format!("cannot open {}: {e}", path.display())))?;
        if !existed {
            set_mode(path, mode)?;
        }
        let txn = db.begin_write().map_err(store_error)?;
        let (recovered, max_seq) = {
            let mut ready = txn.open_table(READY).map_err(store_error)?;
            let delayed = txn.open_table(DELAYED).map_err(store_error)?;
            let mut processing = txn.open_table(PROCESSING).map_err(store_error)?;
            let mut max_seq = 0;
            for entry in ready.iter().map_err(store_error)? {
                max_seq = max_seq.max(entry.map_err(store_error)?.0.value().1);
            }
            for entry in delayed.iter().map_err(store_error)? {
                max_seq = max_seq.max(entry.map_err(store_error)?.0.value().1);
            }
            let mut back = Vec::new();
            for entry in processing.iter().map_err(store_error)? {
                let (seq, raw) = entry.map_err(store_error)?;
                back.push((seq.value(), raw.value().to_vec()));
            }
            for (seq, raw) in &back {
                max_seq = max_seq.max(*seq);
                // The priority is in the record; an unreadable one keeps
                // its place among the default-priority jobs rather than
                // being lost here (take reports and drops it).
                let priority = decode(raw).map_or(DEFAULT_PRIORITY, |job| job.priority);
                ready
                    .insert((priority, *seq), raw.as_slice())
                    .map_err(store_error)?;
                processing.remove(*seq).map_err(store_error)?;
            }
            (back.len() as u64, max_seq)
        };
        txn.commit().map_err(store_error)?;
        Ok((
            Store {
                db,
                seq: AtomicU64::new(max_seq + 1),
            },
            recovered,
        ))
    }

    fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed)
    }

    /// Stores `job`: ready, or delayed until `not_before` (unix ms). With
    /// `settled`, removes that sequence from `processing` in the same
    /// transaction (a requeue).
    fn put(
        &self,
        job: &Job,
        not_before: Option<u64>,
        settled: Option<u64>,
    ) -> Result<(), DriverError> {
        let raw = encode(job)?;
        let seq = self.next_seq();
        let txn = self.db.begin_write().map_err(store_error)?;
        {
            if let Some(done) = settled {
                txn.open_table(PROCESSING)
                    .map_err(store_error)?
                    .remove(done)
                    .map_err(store_error)?;
            }
            match not_before {
                Some(at) => {
                    txn.open_table(DELAYED)
                        .map_err(store_error)?
                        .insert((at, seq), raw.as_slice())
                        .map_err(store_error)?;
                }
                None => {
                    txn.open_table(READY)
                        .map_err(store_error)?
                        .insert((job.priority, seq), raw.as_slice())
                        .map_err(store_error)?;
                }
            }
        }
        txn.commit().map_err(store_error)
    }

    /// Deletes a settled job.
    fn remove(&self, seq: u64) -> Result<(), DriverError> {
        let txn = self.db.begin_write().map_err(store_error)?;
        txn.open_table(PROCESSING)
            .map_err(store_error)?
            .remove(seq)
            .map_err(store_error)?;
        txn.commit().map_err(store_error)
    }

    /// Moves delayed jobs due at `now` (unix ms) to `push`, then up to
    /// `max` of the best ready jobs to `processing`.
    fn take(&self, now: u64, max: usize) -> Result<Taken, DriverError> {
        let mut taken = Taken::default();
        let txn = self.db.begin_write().map_err(store_error)?;
        {
            let mut ready = txn.open_table(READY).map_err(store_error)?;
            let mut delayed = txn.open_table(DELAYED).map_err(store_error)?;
            let mut processing = txn.open_table(PROCESSING).map_err(store_error)?;
            let mut due = Vec::new();
            for entry in delayed.range(..=(now, u64::MAX)).map_err(store_error)? {
                let (key, raw) = entry.map_err(store_error)?;
                due.push((key.value(), raw.value().to_vec()));
            }
            for ((at, seq), raw) in due {
                delayed.remove((at, seq)).map_err(store_error)?;
                match decode(&raw) {
                    Ok(job) => {
                        ready
                            .insert((job.priority, seq), raw.as_slice())
                            .map_err(store_error)?;
                    }
                    Err(_) => taken.corrupt += 1,
                }
            }
            while taken.jobs.len() < max {
                let Some((key, raw)) = ready.pop_first().map_err(store_error)? else {
                    break;
                };
                let (_, seq) = key.value();
                let raw = raw.value().to_vec();
                match decode(&raw) {
                    Ok(job) => {
                        processing
                            .insert(seq, raw.as_slice())
                            .map_err(store_error)?;
                        taken.jobs.push((seq, job));
                    }
                    Err(_) => taken.corrupt += 1,
                }
            }
            taken.next_due = delayed
                .first()
                .map_err(store_error)?
                .map(|(key, _)| key.value().0);
        }
        txn.commit().map_err(store_error)?;
        Ok(taken)
    }

    fn counts(&self) -> Result<Counts, DriverError> {
        let txn = self.db.begin_read().map_err(store_error)?;
        Ok(Counts {
            ready: txn
                .open_table(READY)
                .map_err(store_error)?
                .len()
                .map_err(store_error)?,
            delayed: txn
                .open_table(DELAYED)
                .map_err(store_error)?
                .len()
                .map_err(store_error)?,
            processing: txn
                .open_table(PROCESSING)
                .map_err(store_error)?
                .len()
                .map_err(store_error)?,
        })
    }
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> Result<(), DriverError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| store_error(format!("cannot set permissions of {}: {e}", path.display())))
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) -> Result<(), DriverError> {
    Ok(())
}

struct Inner {
    name: String,
    priority: i64,
    queue: Arc<JobQueue>,
    /// The open file; taken at stop so the file is closed (and can be
    /// declared again) once the transactions under way finish.
    store: Mutex<Option<Arc<Store>>>,
    switch: Switch,
    in_flight: Arc<Semaphore>,
}

impl Inner {
    /// Runs `work` on the store on a blocking thread (redb syncs the file
    /// on commit); [`DriverError::Stopped`] once the pipeline is stopped.
    async fn with_store<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Store) -> Result<T, DriverError> + Send + 'static,
    ) -> Result<T, DriverError> {
        let store = self
            .store
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or(DriverError::Stopped)?;
        tokio::task::spawn_blocking(move || work(&store))
            .await
            .map_err(store_error)?
    }

    /// Stores `job` (delayed by `job.delay` seconds), settling `settled`
    /// in the same transaction, and wakes the listener.
    async fn put(&self, job: Job, settled: Option<u64>) -> Result<(), DriverError> {
        let not_before = (job.delay > 0)
            .then(|| now_ms().saturating_add(job.delay.unsigned_abs().saturating_mul(1000)));
        self.with_store(move |store| store.put(&job, not_before, settled))
            .await?;
        self.switch.poke();
        Ok(())
    }

    /// Moves jobs from the file to the plugin's queue while consuming, at
    /// most `prefetch` unsettled at a time.
    async fn listen(self: Arc<Self>) {
        // A failing file (disk full, permissions) is retried like a broker
        // that is down: soon at first, then every 5 s at most.
        let mut backoff = Backoff::new();
        loop {
            if self.switch.is_stopped() {
                return;
            }
            if !self.switch.is_consuming() {
                self.switch.changed().await;
                continue;
            }
            let first = tokio::select! {
                permit = Arc::clone(&self.in_flight).acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => return,
                },
                () = self.switch.changed() => continue,
            };
            let max = 1 + self.in_flight.available_permits().min(TAKE_BATCH - 1);
            let taken = self
                .with_store(move |store| store.take(now_ms(), max))
                .await;
            let taken = match taken {
                Ok(taken) => {
                    backoff.reset();
                    taken
                }
                Err(DriverError::Stopped) => return,
                Err(err) => {
                    drop(first);
                    let wait = backoff.next_wait();
                    tracing::error!(target: "jobs", pipeline = %self.name, error = %err, retry_in = ?wait, "boltdb: cannot read jobs from the file; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = self.switch.changed() => {}
                    }
                    continue;
                }
            };
            if taken.corrupt > 0 {
                tracing::error!(target: "jobs", pipeline = %self.name, count = taken.corrupt, "boltdb: unreadable job records dropped");
            }
            if taken.jobs.is_empty() {
                drop(first);
                let wait = taken
                    .next_due
                    .map(|due| Duration::from_millis(due.saturating_sub(now_ms())));
                tokio::select! {
                    () = self.switch.changed() => {}
                    () = async {
                        match wait {
                            Some(wait) => tokio::time::sleep(wait).await,
                            None => std::future::pending().await,
                        }
                    } => {}
                }
                continue;
            }
            let mut first = Some(first);
            for (seq, job) in taken.jobs {
                // Only this task takes permits and it saw enough available,
                // so the extra ones are there; waiting is the safe fallback.
                let permit = match first.take() {
                    Some(permit) => permit,
                    None => match Arc::clone(&self.in_flight).try_acquire_owned() {
                        Ok(permit) => permit,
                        Err(_) => match Arc::clone(&self.in_flight).acquire_owned().await {
                            Ok(permit) => permit,
                            Err(_) => return,
                        },
                    },
                };
                let ticket = Ticket {
                    inner: Arc::clone(&self),
                    seq,
                    permit: Mutex::new(Some(permit)),
                };
                let delivery = Delivery {
                    job,
                    driver: NAME,
                    // RoadRunner's boltdb context has no queue.
                    queue: None,
                    ack: Arc::new(ticket),
                };
                // A closed queue is the plugin shutting down: the job stays
                // in `processing` and runs again after the next start.
                if self.queue.push(delivery).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// One delivered job: its place in `processing` and its hold on the
/// pipeline's prefetch.
struct Ticket {
    inner: Arc<Inner>,
    seq: u64,
    permit: Mutex<Option<OwnedSemaphorePermit>>,
}

impl Ticket {
    fn release(&self) {
        drop(self.permit.lock().unwrap_or_else(|p| p.into_inner()).take());
    }

    async fn settle(&self, requeue: Option<Job>) -> Result<(), DriverError> {
        let seq = self.seq;
        let result = match requeue {
            Some(job) => self.inner.put(job, Some(seq)).await,
            None => self.inner.with_store(move |store| store.remove(seq)).await,
        };
        self.release();
        result
    }
}

#[async_trait]
impl Acknowledger for Ticket {
    async fn ack(&self, _job: &Job) -> Result<(), DriverError> {
        self.settle(None).await
    }

    async fn nack(&self, job: &Job, requeue: bool, delay: i64) -> Result<(), DriverError> {
        if !requeue {
            return self.settle(None).await;
        }
        let mut job = job.clone();
        job.delay = delay.max(0);
        self.settle(Some(job)).await
    }

    async fn requeue(&self, mut job: Job, headers: Headers, delay: i64) -> Result<(), DriverError> {
        job.headers.extend(headers);
        job.delay = delay.max(0);
        self.settle(Some(job)).await
    }

    fn is_stopped(&self) -> bool {
        self.inner.switch.is_stopped()
    }
}

/// A `boltdb` pipeline.
pub struct BoltdbDriver {
    inner: Arc<Inner>,
    path: PathBuf,
    listener: Background,
}

impl BoltdbDriver {
    /// Opens the pipeline's file (jobs left with a worker by a previous run
    /// become ready again) and starts paused; call [`Driver::run`] to consume.
    pub fn new(spec: PipelineSpec) -> Result<Arc<BoltdbDriver>, DriverError> {
        let priority = spec.int("priority", DEFAULT_PRIORITY)?;
        let prefetch = spec.prefetch(DEFAULT_PREFETCH)?;
        let file = spec.string("file", DEFAULT_FILE)?;
        let permissions = spec.string("permissions", "0755")?;
        let mode = u32::from_str_radix(permissions.trim(), 8).unwrap_or_else(|_| {
            tracing::warn!(target: "jobs", pipeline = %spec.name, provided = %permissions, "failed to parse permissions, fallback to default 0755");
            DEFAULT_PERMISSIONS
        });
        let path = PathBuf::from(file);
        let (store, recovered) = Store::open(&path, mode).map_err(|e| DriverError::Option {
            pipeline: spec.name.clone(),
            key: "file".into(),
            message: e.to_string(),
        })?;
        if recovered > 0 {
            tracing::warn!(target: "jobs", pipeline = %spec.name, file = %path.display(), count = recovered, "boltdb: jobs unsettled by the previous run are ready again");
        }
        let inner = Arc::new(Inner {
            name: spec.name,
            priority,
            queue: spec.queue,
            store: Mutex::new(Some(Arc::new(store))),
            switch: Switch::default(),
            in_flight: Arc::new(Semaphore::new(prefetch)),
        });
        let listener = tokio::spawn(Arc::clone(&inner).listen());
        Ok(Arc::new(BoltdbDriver {
            inner,
            path,
            listener: Background::new(listener),
        }))
    }

    /// The pipeline's file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[async_trait]
impl Driver for BoltdbDriver {
    fn kind(&self) -> &'static str {
        NAME
    }

    fn priority(&self) -> i64 {
        self.inner.priority
    }

    async fn push(&self, job: Job) -> Result<(), DriverError> {
        self.inner.switch.check_open()?;
        self.inner.put(job, None).await
    }

    async fn run(&self) -> Result<(), DriverError> {
        self.inner.switch.check_open()?;
        self.inner.switch.run();
        Ok(())
    }

    async fn pause(&self) -> Result<(), DriverError> {
        self.inner.switch.check_open()?;
        self.inner.switch.pause();
        Ok(())
    }

    async fn stop(&self) -> Result<(), DriverError> {
        self.inner.switch.stop();
        self.inner.in_flight.close();
        self.listener.finish(Duration::from_secs(5)).await;
        // Unsettled jobs stay in `processing`: the next open makes them
        // ready again. Dropping the store closes the file once the
        // transactions under way finish.
        self.inner
            .store
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        Ok(())
    }

    async fn state(&self) -> Result<Stat, DriverError> {
        let counts = match self.inner.with_store(Store::counts).await {
            Ok(counts) => counts,
            Err(DriverError::Stopped) => Counts::default(),
            Err(err) => return Err(err),
        };
        let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        Ok(Stat {
            pipeline: self.inner.name.clone(),
            driver: NAME.to_owned(),
            // RoadRunner reports its ready bucket as the queue.
            queue: READY_NAME.to_owned(),
            // As RoadRunner's: active counts the jobs pushed and not yet
            // settled, those with a worker included.
            active: count(counts.ready + counts.processing),
            delayed: count(counts.delayed),
            reserved: count(counts.processing),
            ready: self.inner.switch.is_ready(),
            priority: self.inner.priority.max(0).unsigned_abs(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(queue: &Arc<JobQueue>, file: &Path, options: serde_json::Value) -> PipelineSpec {
        let mut options = options.as_object().cloned().unwrap_or_default();
        options.insert("file".into(), json!(file.display().to_string()));
        PipelineSpec {
            name: "p".into(),
            options,
            global: serde_json::Map::new(),
            queue: Arc::clone(queue),
        }
    }

    fn job(id: &str, priority: i64, delay: i64) -> Job {
        let mut headers = Headers::new();
        headers.insert("h".into(), vec![id.into()]);
        Job {
            id: id.into(),
            name: "n".into(),
            payload: Bytes::from(format!("payload of {id} \u{0}\u{ff}").into_bytes()),
            headers,
            pipeline: "p".into(),
            priority,
            delay,
            auto_ack: false,
        }
    }

    async fn next(queue: &JobQueue) -> Delivery {
        tokio::time::timeout(Duration::from_secs(10), queue.pop())
            .await
            .expect("a job within 10s")
            .expect("open")
    }

    #[test]
    fn a_record_round_trips_and_truncation_is_an_error() {
        let original = job("a", 3, 0);
        let raw = encode(&original).expect("encode");
        assert_eq!(decode(&raw).expect("decode"), original);
        assert!(decode(&raw[..3]).is_err());
        assert!(decode(&raw[..10]).is_err());
    }

    #[test]
    fn the_store_keeps_jobs_across_reopen_and_orders_by_priority_then_age() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("jobs.db");
        {
            let (store, recovered) = Store::open(&path, 0o600).expect("open");
            assert_eq!(recovered, 0);
            for (id, priority) in [("b", 5), ("a", 1), ("c", 5)] {
                store.put(&job(id, priority, 0), None, None).expect("put");
            }
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let (store, _) = Store::open(&path, 0o600).expect("reopen");
        let taken = store.take(now_ms(), 10).expect("take");
        let ids: Vec<_> = taken.jobs.iter().map(|(_, j)| j.id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "c"]);
        assert_eq!(taken.jobs[0].1, job("a", 1, 0));
        assert_eq!(
            store.counts().expect("counts"),
            Counts {
                ready: 0,
                delayed: 0,
                processing: 3
            }
        );
    }

    #[test]
    fn jobs_in_flight_when_the_process_died_are_ready_after_reopen() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("jobs.db");
        let acked_seq;
        {
            let (store, _) = Store::open(&path, 0o600).expect("open");
            for id in ["x", "y", "z"] {
                store.put(&job(id, 10, 0), None, None).expect("put");
            }
            let taken = store.take(now_ms(), 2).expect("take");
            assert_eq!(taken.jobs.len(), 2);
            acked_seq = taken.jobs[0].0;
            store.remove(acked_seq).expect("ack x");
            // Dropped with y in `processing`: the process "died".
        }
        let (store, recovered) = Store::open(&path, 0o600).expect("reopen");
        assert_eq!(recovered, 1);
        let taken = store.take(now_ms(), 10).expect("take");
        let ids: Vec<_> = taken.jobs.iter().map(|(_, j)| j.id.as_str()).collect();
        assert_eq!(ids, ["y", "z"], "y keeps its place ahead of z");
        // New sequences never reuse a settled one.
        store.put(&job("w", 10, 0), None, None).expect("put");
        let w = store.take(now_ms(), 1).expect("take").jobs;
        assert!(w[0].0 > acked_seq && w[0].0 > taken.jobs[1].0);
    }

    #[test]
    fn delayed_jobs_wait_for_their_time_then_run_by_priority() {
        let dir = tempfile::tempdir().expect("tmp");
        let (store, _) = Store::open(&dir.path().join("jobs.db"), 0o600).expect("open");
        let t = 1_000_000;
        store
            .put(&job("late", 1, 0), Some(t + 5000), None)
            .expect("put");
        store
            .put(&job("soon-low", 9, 0), Some(t + 1000), None)
            .expect("put");
        store
            .put(&job("soon-high", 2, 0), Some(t + 2000), None)
            .expect("put");
        let taken = store.take(t, 10).expect("take");
        assert!(taken.jobs.is_empty());
        assert_eq!(taken.next_due, Some(t + 1000));
        let taken = store.take(t + 2000, 10).expect("take");
        let ids: Vec<_> = taken.jobs.iter().map(|(_, j)| j.id.as_str()).collect();
        assert_eq!(ids, ["soon-high", "soon-low"], "both due: priority decides");
        assert_eq!(taken.next_due, Some(t + 5000));
        // A requeue settles and delays in one transaction.
        let (seq, soon) = taken.jobs[0].clone();
        store
            .put(&soon, Some(t + 3000), Some(seq))
            .expect("requeue");
        assert_eq!(
            store.counts().expect("counts"),
            Counts {
                ready: 0,
                delayed: 2,
                processing: 1
            }
        );
        let ids: Vec<_> = store
            .take(t + 9000, 10)
            .expect("take")
            .jobs
            .into_iter()
            .map(|(_, j)| j.id)
            .collect();
        assert_eq!(ids, ["late", "soon-high"]);
    }

    #[tokio::test]
    async fn the_driver_delivers_settles_and_recovers_after_a_restart() {
        let dir = tempfile::tempdir().expect("tmp");
        let file = dir.path().join("rr.db");
        let queue = Arc::new(JobQueue::new(100));
        let driver = BoltdbDriver::new(spec(&queue, &file, json!({"prefetch": 2}))).expect("open");
        for (id, priority) in [("low", 20), ("high", 1), ("mid", 5)] {
            driver.push(job(id, priority, 0)).await.expect("push");
        }
        let stat = driver.state().await.expect("stat");
        assert_eq!(
            (stat.active, stat.ready, stat.queue.as_str()),
            (3, false, "push")
        );
        driver.run().await.expect("run");
        let high = next(&queue).await;
        let mid = next(&queue).await;
        assert_eq!((high.job.id.as_str(), mid.job.id.as_str()), ("high", "mid"));
        assert_eq!(high.queue, None);
        let stat = driver.state().await.expect("stat");
        assert_eq!(
            (stat.active, stat.reserved),
            (3, 2),
            "prefetch 2 holds low back"
        );
        high.ack.ack(&high.job).await.expect("ack");
        let low = next(&queue).await;
        assert_eq!(low.job.id, "low");
        low.ack.nack(&low.job, false, 0).await.expect("nack drops");
        let started = std::time::Instant::now();
        let mut headers = Headers::new();
        headers.insert("attempt".into(), vec!["2".into()]);
        mid.ack
            .requeue(mid.job.clone(), headers, 1)
            .await
            .expect("requeue");
        assert_eq!(driver.state().await.expect("stat").delayed, 1);
        let again = next(&queue).await;
        assert!(started.elapsed() >= Duration::from_millis(900));
        assert_eq!(again.job.headers["attempt"], ["2"]);
        // Stopped with `mid` unsettled: it comes back on the next open.
        driver.stop().await.expect("stop");
        assert!(matches!(
            again.ack.ack(&again.job).await,
            Err(DriverError::Stopped)
        ));
        assert!(matches!(
            driver.push(job("late", 1, 0)).await,
            Err(DriverError::Stopped)
        ));
        drop(driver);
        let queue = Arc::new(JobQueue::new(100));
        let driver = BoltdbDriver::new(spec(&queue, &file, json!({}))).expect("reopen");
        driver.run().await.expect("run");
        let back = next(&queue).await;
        assert_eq!(back.job.id, "mid");
        back.ack.ack(&back.job).await.expect("ack");
        let stat = driver.state().await.expect("stat");
        assert_eq!((stat.active, stat.delayed, stat.reserved), (0, 0, 0));
        driver.stop().await.expect("stop");
    }

    #[tokio::test]
    async fn options_are_checked_and_permissions_fall_back() {
        let dir = tempfile::tempdir().expect("tmp");
        let queue = Arc::new(JobQueue::new(1));
        let err = BoltdbDriver::new(spec(
            &queue,
            &dir.path().join("a.db"),
            json!({"prefetch": -1}),
        ))
        .err()
        .expect("invalid");
        assert!(err.to_string().contains("`prefetch`"), "{err}");
        let driver = BoltdbDriver::new(spec(
            &queue,
            &dir.path().join("b.db"),
            json!({"permissions": "rw", "priority": "3"}),
        ))
        .expect("bad permissions fall back to 0755");
        assert_eq!(driver.priority(), 3);
        // The file is held open: a second pipeline on it is refused.
        let err = BoltdbDriver::new(spec(&queue, &dir.path().join("b.db"), json!({})))
            .err()
            .expect("file in use");
        assert!(err.to_string().contains("`file`"), "{err}");
        driver.stop().await.expect("stop");
        let again = BoltdbDriver::new(spec(&queue, &dir.path().join("b.db"), json!({})))
            .expect("a stopped pipeline's file can be opened again");
        again.stop().await.expect("stop");
    }
}
