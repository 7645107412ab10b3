//! The pipelines, the queue, and the pollers that run jobs on the pool.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rr_plugin::{async_trait, JobsReporter, PipelineState};
use rr_pool::{Payload, Pool};
use serde_json::{Map, Value};

use crate::driver::{self, Driver, DriverError, PipelineSpec};
use crate::job::{self, Delivery, Job};
use crate::proto::{self, Stat};
use crate::queue::JobQueue;
use crate::reply::{self, Reply};

/// The header counting how often a job's worker died (or no worker was
/// free) before it answered.
pub const WORKER_FAILURES_HEADER: &str = "x-rr-worker-failures";
/// Worker failures after which a job is nacked instead of requeued, so a
/// job that kills every worker it meets cannot loop for ever.
pub const MAX_WORKER_FAILURES: u32 = 5;
/// Seconds a job waits after a worker failure before it is delivered again.
const WORKER_FAILURE_DELAY: i64 = 1;

/// goridge's raw codec flag: what RoadRunner sets on job payloads.
pub const CODEC_RAW: u8 = 0x04;

/// Counters behind the `rr_jobs_*` metrics.
#[derive(Debug, Default)]
pub struct JobsStats {
    /// Jobs pushed.
    pub push_ok: AtomicU64,
    /// Pushes refused.
    pub push_err: AtomicU64,
    /// Jobs done (ack).
    pub jobs_ok: AtomicU64,
    /// Jobs failed (nack without requeue, worker errors, bad replies).
    pub jobs_err: AtomicU64,
    /// Jobs requeued.
    pub jobs_requeue: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// A pipeline's name and driver.
type Named = (String, Arc<dyn Driver>);

/// The plugin's state shared by the RPC service and the pollers.
pub struct Core {
    queue: Arc<JobQueue>,
    pipelines: Mutex<BTreeMap<String, Arc<dyn Driver>>>,
    consume: HashSet<String>,
    timeout: Duration,
    globals: BTreeMap<String, Map<String, Value>>,
    /// The counters.
    pub stats: JobsStats,
}

impl Core {
    /// An empty core with a queue of `capacity`.
    pub fn new(capacity: usize, consume: &[String], timeout: Duration) -> Core {
        Core {
            queue: Arc::new(JobQueue::new(capacity)),
            pipelines: Mutex::new(BTreeMap::new()),
            consume: consume.iter().cloned().collect(),
            timeout,
            globals: BTreeMap::new(),
            stats: JobsStats::default(),
        }
    }

    /// Sets the drivers' global sections (driver name → section).
    pub fn with_globals(mut self, globals: BTreeMap<String, Map<String, Value>>) -> Core {
        self.globals = globals;
        self
    }

    /// The queue.
    pub fn queue(&self) -> &Arc<JobQueue> {
        &self.queue
    }

    fn map(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Arc<dyn Driver>>> {
        self.pipelines.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn find(&self, name: &str) -> Option<Arc<dyn Driver>> {
        self.map().get(name).cloned()
    }

    async fn bounded<T>(
        &self,
        what: &str,
        call: impl std::future::Future<Output = Result<T, DriverError>>,
    ) -> Result<T, String> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(result) => result.map_err(|e| e.to_string()),
            Err(_) => Err(format!("{what}: timeout ({:?})", self.timeout)),
        }
    }

    /// Builds pipeline `name` with `driver` and registers it (paused).
    pub fn add(
        &self,
        name: &str,
        driver: &str,
        options: Map<String, Value>,
    ) -> Result<Arc<dyn Driver>, String> {
        if let Some(existing) = self.find(name) {
            return Err(format!(
                "pipeline already exists, name: {name}, driver: {}",
                existing.kind()
            ));
        }
        let spec = PipelineSpec {
            name: name.to_owned(),
            options,
            global: self.globals.get(driver).cloned().unwrap_or_default(),
            queue: Arc::clone(&self.queue),
        };
        let built = driver::build(driver, spec).ok_or_else(|| {
            format!(
                "no such driver: {driver} (pipeline {name}); this build has: {}",
                driver::DRIVERS.join(", ")
            )
        })?;
        let built = built.map_err(|e| e.to_string())?;
        self.map().insert(name.to_owned(), Arc::clone(&built));
        Ok(built)
    }

    /// Whether `name` is in `consume`.
    pub fn consumes(&self, name: &str) -> bool {
        self.consume.contains(name)
    }

    /// `jobs.Push` for one job.
    pub async fn push(&self, job: Option<proto::Job>) -> Result<(), String> {
        let result = self.push_inner(job).await;
        bump(if result.is_ok() {
            &self.stats.push_ok
        } else {
            &self.stats.push_err
        });
        result
    }

    async fn push_inner(&self, job: Option<proto::Job>) -> Result<(), String> {
        let job = job.ok_or("job is required")?;
        if job.id.is_empty() {
            return Err("empty ID field not allowed".to_owned());
        }
        let pipeline = job
            .options
            .as_ref()
            .map(|o| o.pipeline.clone())
            .unwrap_or_default();
        let driver = self
            .find(&pipeline)
            .ok_or_else(|| format!("no such pipeline, requested: {pipeline}"))?;
        let job = Job::from_proto(job, driver.priority());
        let (id, name) = (job.id.clone(), job.name.clone());
        self.bounded("push", driver.push(job)).await?;
        tracing::debug!(target: "jobs", id = %id, job = %name, pipeline = %pipeline, driver = driver.kind(), "job was pushed successfully");
        Ok(())
    }

    fn each(&self, names: &[String]) -> Result<Vec<Named>, String> {
        names
            .iter()
            .map(|name| {
                self.find(name)
                    .map(|d| (name.clone(), d))
                    .ok_or_else(|| format!("no such pipeline: {name}"))
            })
            .collect()
    }

    /// `jobs.Pause`.
    pub async fn pause(&self, names: &[String]) -> Result<(), String> {
        for (name, driver) in self.each(names)? {
            self.bounded("pause", driver.pause()).await?;
            tracing::info!(target: "jobs", pipeline = %name, driver = driver.kind(), "pipeline was paused");
        }
        Ok(())
    }

    /// `jobs.Resume` (and starting the `consume` pipelines).
    pub async fn resume(&self, names: &[String]) -> Result<(), String> {
        for (name, driver) in self.each(names)? {
            self.bounded("resume", driver.run()).await?;
            tracing::info!(target: "jobs", pipeline = %name, driver = driver.kind(), "pipeline was resumed");
        }
        Ok(())
    }

    /// `jobs.List`: every pipeline's name.
    pub fn list(&self) -> Vec<String> {
        self.map().keys().cloned().collect()
    }

    /// `jobs.Declare`: a pipeline from string options.
    pub async fn declare(&self, mut options: BTreeMap<String, String>) -> Result<(), String> {
        let name = options
            .remove("name")
            .filter(|n| !n.is_empty())
            .or_else(|| options.get("queue").cloned().filter(|q| !q.is_empty()))
            .ok_or("pipeline name is required (the `name` key)")?;
        let driver = options
            .remove("driver")
            .filter(|d| !d.is_empty())
            .ok_or_else(|| {
                format!("no associated driver with the pipeline, pipeline name: {name}")
            })?;
        let options = options
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect();
        let built = self.add(&name, &driver, options)?;
        tracing::info!(target: "jobs", pipeline = %name, driver = %driver, "pipeline was declared");
        if self.consumes(&name) {
            self.bounded("run", built.run()).await?;
        }
        Ok(())
    }

    /// `jobs.Destroy`: stops and removes; the destroyed names.
    pub async fn destroy(&self, names: &[String]) -> Result<Vec<String>, String> {
        let mut destroyed = Vec::new();
        for (name, driver) in self.each(names)? {
            self.map().remove(&name);
            self.bounded("destroy", driver.stop()).await?;
            tracing::info!(target: "jobs", pipeline = %name, driver = driver.kind(), "pipeline was destroyed");
            destroyed.push(name);
        }
        Ok(destroyed)
    }

    /// `jobs.Stat`: every pipeline's state.
    pub async fn stat(&self) -> Result<Vec<Stat>, String> {
        let drivers: Vec<_> = self.map().values().cloned().collect();
        let mut stats = Vec::with_capacity(drivers.len());
        for driver in drivers {
            stats.push(self.bounded("stat", driver.state()).await?);
        }
        Ok(stats)
    }

    /// Stops every pipeline (shutdown).
    pub async fn stop_all(&self) {
        let drivers: Vec<_> = std::mem::take(&mut *self.map()).into_iter().collect();
        for (name, driver) in drivers {
            if let Err(err) = self.bounded("stop", driver.stop()).await {
                tracing::warn!(target: "jobs", pipeline = %name, error = %err, "pipeline did not stop cleanly");
            }
        }
    }

    /// One poller: runs jobs until the queue closes.
    pub async fn poll(self: Arc<Self>, pool: Pool) {
        while let Some(delivery) = self.queue.pop().await {
            self.execute(&pool, delivery).await;
        }
    }

    async fn execute(&self, pool: &Pool, delivery: Delivery) {
        let Delivery {
            job,
            driver,
            queue,
            ack,
        } = delivery;
        if ack.is_stopped() {
            tracing::warn!(target: "jobs", id = %job.id, pipeline = %job.pipeline, "the job's pipeline was stopped; the job is dropped");
            return;
        }
        let settle = |result: Result<(), DriverError>, what: &str| {
            if let Err(err) = result {
                tracing::error!(target: "jobs", id = %job.id, pipeline = %job.pipeline, error = %err, "job {what} failed");
            }
        };
        if job.auto_ack {
            settle(ack.ack(&job).await, "auto-ack");
        }
        let mut payload = Payload::new(
            job::context(&job, driver, queue.as_deref()),
            job.payload.clone(),
        );
        payload.codec = CODEC_RAW;
        tracing::debug!(target: "jobs", id = %job.id, job = %job.name, pipeline = %job.pipeline, driver, "job processing was started");
        let started = std::time::Instant::now();
        let reply = pool.exec(&payload).await;
        let elapsed = started.elapsed();
        if job.auto_ack {
            match reply {
                Ok(_) => {
                    bump(&self.stats.jobs_ok);
                    tracing::debug!(target: "jobs", id = %job.id, pipeline = %job.pipeline, elapsed = ?elapsed, auto_ack = true, "job was processed successfully");
                }
                Err(err) => {
                    bump(&self.stats.jobs_err);
                    tracing::error!(target: "jobs", id = %job.id, job = %job.name, pipeline = %job.pipeline, error = %err, "job failed (auto-acked)");
                }
            }
            return;
        }
        let reply = match reply {
            Ok(reply) => reply,
            Err(err) => {
                match retry_after_failure(&job, &err) {
                    Some(headers) => {
                        bump(&self.stats.jobs_requeue);
                        tracing::warn!(target: "jobs", id = %job.id, job = %job.name, pipeline = %job.pipeline, error = %err, delay = WORKER_FAILURE_DELAY, "the job never got an answer from a worker; requeued");
                        let (id, pipeline) = (job.id.clone(), job.pipeline.clone());
                        if let Err(requeue) = ack.requeue(job, headers, WORKER_FAILURE_DELAY).await
                        {
                            bump(&self.stats.jobs_err);
                            tracing::error!(target: "jobs", id = %id, pipeline = %pipeline, error = %requeue, "job requeue failed");
                        }
                    }
                    None => {
                        bump(&self.stats.jobs_err);
                        tracing::error!(target: "jobs", id = %job.id, job = %job.name, pipeline = %job.pipeline, error = %err, "job failed, nacked");
                        settle(ack.nack(&job, false, 0).await, "nack");
                    }
                }
                return;
            }
        };
        if reply.body.is_empty() {
            bump(&self.stats.jobs_ok);
            tracing::debug!(target: "jobs", id = %job.id, pipeline = %job.pipeline, elapsed = ?elapsed, "job was processed successfully");
            settle(ack.ack(&job).await, "ack");
            return;
        }
        match reply::parse(&reply.body) {
            Err(err) => {
                bump(&self.stats.jobs_err);
                tracing::error!(target: "jobs", id = %job.id, job = %job.name, pipeline = %job.pipeline, error = %err, "invalid worker reply, the job is nacked");
                settle(ack.nack(&job, false, 0).await, "nack");
            }
            Ok(Reply::Ack) => {
                bump(&self.stats.jobs_ok);
                tracing::debug!(target: "jobs", id = %job.id, pipeline = %job.pipeline, elapsed = ?elapsed, "job was processed successfully");
                settle(ack.ack(&job).await, "ack");
            }
            Ok(Reply::Unknown(kind)) => {
                bump(&self.stats.jobs_ok);
                tracing::warn!(target: "jobs", id = %job.id, pipeline = %job.pipeline, r#type = kind, "unknown response type, acknowledging the JOB");
                settle(ack.ack(&job).await, "ack");
            }
            Ok(Reply::Failed { message }) => {
                bump(&self.stats.jobs_err);
                tracing::error!(target: "jobs", id = %job.id, pipeline = %job.pipeline, reason = %message, "job failed");
                settle(ack.ack(&job).await, "ack");
            }
            Ok(Reply::Nack {
                message,
                requeue,
                delay,
            }) => {
                bump(if requeue {
                    &self.stats.jobs_requeue
                } else {
                    &self.stats.jobs_err
                });
                tracing::info!(target: "jobs", id = %job.id, pipeline = %job.pipeline, reason = %message, requeue, delay, "job was nacked");
                settle(ack.nack(&job, requeue, delay).await, "nack");
            }
            Ok(Reply::Requeue {
                message,
                delay,
                headers,
            }) => {
                bump(&self.stats.jobs_requeue);
                tracing::info!(target: "jobs", id = %job.id, pipeline = %job.pipeline, reason = %message, delay, "job was requeued");
                let id = job.id.clone();
                let pipeline = job.pipeline.clone();
                if let Err(err) = ack.requeue(job, headers, delay).await {
                    tracing::error!(target: "jobs", id = %id, pipeline = %pipeline, error = %err, "job requeue failed");
                }
            }
        }
    }
}

/// The headers to requeue `job` with after `err`, or `None` to nack it.
///
/// A job whose worker died or broke the protocol mid-run, or that found no
/// free worker (or a stopping pool), was never answered: dropping it would lose an accepted job,
/// so it is requeued (at-least-once), counting the failures in
/// [`WORKER_FAILURES_HEADER`] up to [`MAX_WORKER_FAILURES`]. A worker's
/// error reply and an `exec_ttl` overrun are answers about the job itself
/// and nack it, as RoadRunner does.
fn retry_after_failure(job: &Job, err: &rr_pool::ExecError) -> Option<proto::Headers> {
    use rr_pool::ExecError;
    let unanswered = matches!(
        err,
        ExecError::Protocol { .. }
            | ExecError::NoFreeWorkers(_)
            | ExecError::QueueFull
            | ExecError::Stopped
            | ExecError::StopLoop(_)
    );
    if !unanswered {
        return None;
    }
    let failures = job
        .headers
        .get(WORKER_FAILURES_HEADER)
        .and_then(|values| values.first())
        .and_then(|value| value.parse::<u32>().ok())
        .unwrap_or(0)
        + 1;
    if failures > MAX_WORKER_FAILURES {
        return None;
    }
    let mut headers = proto::Headers::new();
    headers.insert(
        WORKER_FAILURES_HEADER.to_owned(),
        vec![failures.to_string()],
    );
    Some(headers)
}

/// The pipelines' state for other plugins, provided as
/// `Arc<dyn JobsReporter>`.
#[async_trait]
impl JobsReporter for Core {
    /// Every pipeline's state, one entry each even when its driver cannot
    /// tell (the status plugin's `/jobs`).
    async fn pipeline_states(&self) -> Vec<PipelineState> {
        let drivers: Vec<_> = self
            .map()
            .iter()
            .map(|(name, driver)| (name.clone(), Arc::clone(driver)))
            .collect();
        let mut states = Vec::with_capacity(drivers.len());
        for (name, driver) in drivers {
            states.push(match self.bounded("stat", driver.state()).await {
                Ok(stat) => PipelineState {
                    pipeline: stat.pipeline,
                    priority: stat.priority,
                    ready: stat.ready,
                    queue: stat.queue,
                    active: stat.active,
                    delayed: stat.delayed,
                    reserved: stat.reserved,
                    driver: stat.driver,
                    error_message: String::new(),
                },
                Err(error) => PipelineState {
                    pipeline: name,
                    driver: driver.kind().to_owned(),
                    error_message: error,
                    ..PipelineState::default()
                },
            });
        }
        states
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rr_pool::ExecError;

    fn job_with_failures(failures: Option<&str>) -> Job {
        let mut headers = proto::Headers::new();
        if let Some(n) = failures {
            headers.insert(WORKER_FAILURES_HEADER.to_owned(), vec![n.to_owned()]);
        }
        Job {
            id: "1".to_owned(),
            name: "j".to_owned(),
            payload: bytes::Bytes::new(),
            headers,
            pipeline: "p".to_owned(),
            priority: 10,
            delay: 0,
            auto_ack: false,
        }
    }

    fn failures(headers: &proto::Headers) -> &str {
        &headers[WORKER_FAILURES_HEADER][0]
    }

    #[test]
    fn an_unanswered_job_is_requeued_with_its_failures_counted() {
        let busy = ExecError::NoFreeWorkers(Duration::from_secs(1));
        let headers = retry_after_failure(&job_with_failures(None), &busy).expect("requeued");
        assert_eq!(failures(&headers), "1");
        let headers = retry_after_failure(&job_with_failures(Some("3")), &ExecError::Stopped)
            .expect("requeued");
        assert_eq!(failures(&headers), "4");
        // A mangled counter starts again rather than failing the job.
        let headers = retry_after_failure(&job_with_failures(Some("x")), &busy).expect("requeued");
        assert_eq!(failures(&headers), "1");
    }

    #[test]
    fn a_job_that_keeps_killing_workers_is_nacked_in_the_end() {
        let busy = ExecError::QueueFull;
        let last = MAX_WORKER_FAILURES - 1;
        assert!(retry_after_failure(&job_with_failures(Some(&last.to_string())), &busy).is_some());
        let spent = MAX_WORKER_FAILURES.to_string();
        assert!(retry_after_failure(&job_with_failures(Some(&spent)), &busy).is_none());
    }

    #[test]
    fn answers_about_the_job_itself_nack_it() {
        let job = job_with_failures(None);
        let error_reply = ExecError::Worker {
            pid: 1,
            message: "boom".to_owned(),
        };
        assert!(retry_after_failure(&job, &error_reply).is_none());
        let too_slow = ExecError::ExecTtl {
            pid: 1,
            ttl: Duration::from_secs(1),
        };
        assert!(retry_after_failure(&job, &too_slow).is_none());
    }
}
