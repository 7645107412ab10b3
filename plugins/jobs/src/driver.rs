//! What a queue driver does for the plugin, and the options every driver
//! reads from `jobs.pipelines.<name>.config` or a `jobs.Declare` map.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use rr_plugin::async_trait;
use serde_json::{Map, Value};
use thiserror::Error;

use crate::job::Job;
use crate::proto::Stat;
use crate::queue::JobQueue;

/// A driver failure.
#[derive(Debug, Error)]
pub enum DriverError {
    /// RoadRunner's text for settling a job of a stopped pipeline.
    #[error("failed to acknowledge the JOB, the pipeline is probably stopped")]
    Stopped,
    /// An option has the wrong type or value.
    #[error("pipeline {pipeline}: option `{key}`: {message}")]
    Option {
        /// The pipeline.
        pipeline: String,
        /// The option.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// The broker failed.
    #[error("{0}")]
    Broker(String),
}

/// One pipeline's driver.
#[async_trait]
pub trait Driver: Send + Sync {
    /// The driver's name (`memory`, ...).
    fn kind(&self) -> &'static str;
    /// The pipeline's priority (a job's priority when it has none).
    fn priority(&self) -> i64;
    /// Adds a job (delivered after `job.delay` seconds).
    async fn push(&self, job: Job) -> Result<(), DriverError>;
    /// Starts (or resumes) consuming into the plugin's queue.
    async fn run(&self) -> Result<(), DriverError>;
    /// Stops consuming; pushing still works.
    async fn pause(&self) -> Result<(), DriverError>;
    /// Stops for good (destroy or shutdown).
    async fn stop(&self) -> Result<(), DriverError>;
    /// The pipeline's state for `jobs.Stat`.
    async fn state(&self) -> Result<Stat, DriverError>;
}

/// What a driver is built from.
pub struct PipelineSpec {
    /// The pipeline's name.
    pub name: String,
    /// Its driver options (numbers and booleans may be strings).
    pub options: Map<String, Value>,
    /// The driver's global section (`beanstalk: {addr, timeout}`), if any.
    pub global: Map<String, Value>,
    /// The plugin's queue.
    pub queue: Arc<JobQueue>,
}

impl PipelineSpec {
    fn error(&self, key: &str, message: impl Into<String>) -> DriverError {
        DriverError::Option {
            pipeline: self.name.clone(),
            key: key.to_owned(),
            message: message.into(),
        }
    }

    /// An integer option (a number or a numeric string), or `default`.
    pub fn int(&self, key: &str, default: i64) -> Result<i64, DriverError> {
        match self.options.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(Value::Number(n)) => n
                .as_i64()
                .ok_or_else(|| self.error(key, format!("{n} is not an integer"))),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(default),
            Some(Value::String(s)) => s
                .trim()
                .parse()
                .map_err(|_| self.error(key, format!("{s:?} is not an integer"))),
            Some(other) => Err(self.error(key, format!("{other} is not an integer"))),
        }
    }

    /// The `prefetch` option as a count of jobs handed out and not yet
    /// settled: `default` when absent or 0, an error when negative, and at
    /// most what a semaphore can count.
    pub fn prefetch(&self, default: i64) -> Result<usize, DriverError> {
        let prefetch = self.int("prefetch", default)?;
        match usize::try_from(prefetch) {
            Ok(0) => Ok(usize::try_from(default).unwrap_or(1)),
            Ok(n) => Ok(n.min(tokio::sync::Semaphore::MAX_PERMITS)),
            Err(_) => Err(self.error("prefetch", format!("must not be negative, got {prefetch}"))),
        }
    }

    /// A boolean option (`true`/`false`, also as strings), or `default`.
    pub fn bool(&self, key: &str, default: bool) -> Result<bool, DriverError> {
        match self.options.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(Value::String(s)) => match s.trim() {
                "" => Ok(default),
                "true" | "1" => Ok(true),
                "false" | "0" => Ok(false),
                _ => Err(self.error(key, format!("{s:?} is not a boolean"))),
            },
            Some(other) => Err(self.error(key, format!("{other} is not a boolean"))),
        }
    }

    /// A duration option in whole seconds (at least 1): a number of
    /// seconds, or a Go duration (`1s`, `500ms` rounds up), or `default`.
    pub fn seconds(&self, key: &str, default: u64) -> Result<u64, DriverError> {
        match self.options.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(Value::Number(_)) => Ok(self.int(key, 0)?.max(1).unsigned_abs()),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(default),
            Some(Value::String(s)) if s.trim().chars().all(|c| c.is_ascii_digit()) => {
                Ok(self.int(key, 0)?.max(1).unsigned_abs())
            }
            Some(Value::String(s)) => {
                let d = rr_config::duration::parse_go_duration(s.trim())
                    .ok()
                    .and_then(|d| d.to_std())
                    .ok_or_else(|| self.error(key, format!("{s:?} is not a duration")))?;
                Ok(d.as_secs_f64().ceil().max(1.0) as u64)
            }
            Some(other) => Err(self.error(key, format!("{other} is not a duration"))),
        }
    }

    /// A string option, or `default`.
    pub fn string(&self, key: &str, default: &str) -> Result<String, DriverError> {
        match self.options.get(key) {
            None | Some(Value::Null) => Ok(default.to_owned()),
            Some(Value::String(s)) if s.is_empty() => Ok(default.to_owned()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(Value::Number(n)) => Ok(n.to_string()),
            Some(other) => Err(self.error(key, format!("{other} is not a string"))),
        }
    }
}

/// The drivers this build knows.
pub const DRIVERS: &[&str] = &["memory", "beanstalk", "nats", "amqp", "boltdb"];

/// Builds the driver `kind` for `spec`; `None` for an unknown driver.
pub fn build(kind: &str, spec: PipelineSpec) -> Option<Result<Arc<dyn Driver>, DriverError>> {
    match kind {
        "memory" => Some(crate::memory::MemoryDriver::new(spec).map(|d| d as Arc<dyn Driver>)),
        "beanstalk" => {
            Some(crate::beanstalk::BeanstalkDriver::new(spec).map(|d| d as Arc<dyn Driver>))
        }
        "nats" => Some(crate::nats::NatsDriver::new(spec).map(|d| d as Arc<dyn Driver>)),
        "amqp" => Some(crate::amqp::AmqpDriver::new(spec).map(|d| d as Arc<dyn Driver>)),
        "boltdb" => Some(crate::boltdb::BoltdbDriver::new(spec).map(|d| d as Arc<dyn Driver>)),
        _ => None,
    }
}

/// The consuming switch of a broker driver: whether its listener should
/// take jobs, whether the pipeline is stopped for good, and the wake-up
/// that makes the listener look again after either changed.
#[derive(Debug, Default)]
pub struct Switch {
    consuming: std::sync::atomic::AtomicBool,
    stopped: std::sync::atomic::AtomicBool,
    wake: tokio::sync::Notify,
}

impl Switch {
    /// Consume (run or resume).
    pub fn run(&self) {
        self.consuming.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    /// Stop consuming; pushing still works.
    pub fn pause(&self) {
        self.consuming.store(false, Ordering::Release);
        self.wake.notify_one();
    }

    /// Stop for good.
    pub fn stop(&self) {
        self.consuming.store(false, Ordering::Release);
        self.stopped.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    /// Whether the listener should take jobs.
    pub fn is_consuming(&self) -> bool {
        self.consuming.load(Ordering::Acquire)
    }

    /// Whether the pipeline was stopped or destroyed.
    pub fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    /// Consuming and not stopped: `jobs.Stat`'s `ready`.
    pub fn is_ready(&self) -> bool {
        self.is_consuming() && !self.is_stopped()
    }

    /// Fails with [`DriverError::Stopped`] once stopped (a push after destroy).
    pub fn check_open(&self) -> Result<(), DriverError> {
        if self.is_stopped() {
            return Err(DriverError::Stopped);
        }
        Ok(())
    }

    /// Wakes the listener without a change (it has something else to see).
    pub fn poke(&self) {
        self.wake.notify_one();
    }

    /// Resolves at the next [`Switch::run`], [`Switch::pause`],
    /// [`Switch::stop`] or [`Switch::poke`].
    pub async fn changed(&self) {
        self.wake.notified().await;
    }
}

/// A driver's background task (listener or supervisor): ended at stop,
/// aborted when the driver is dropped.
#[derive(Debug)]
pub struct Background(std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>);

impl Background {
    /// Owns `task`.
    pub fn new(task: tokio::task::JoinHandle<()>) -> Background {
        Background(std::sync::Mutex::new(Some(task)))
    }

    /// Lets the task finish within `bound` (it saw the stop), then aborts it.
    /// Only the first call waits.
    pub async fn finish(&self, bound: std::time::Duration) {
        let task = self.0.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(mut task) = task {
            if tokio::time::timeout(bound, &mut task).await.is_err() {
                task.abort();
            }
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(task) = self.0.lock().unwrap_or_else(|p| p.into_inner()).take() {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn prefetch_is_the_default_when_zero_capped_and_never_negative() {
        let spec = |prefetch: Value| PipelineSpec {
            name: "p".into(),
            options: serde_json::json!({ "prefetch": prefetch })
                .as_object()
                .cloned()
                .unwrap_or_default(),
            global: Map::new(),
            queue: Arc::new(JobQueue::new(1)),
        };
        assert_eq!(spec(Value::Null).prefetch(7).expect("absent"), 7);
        assert_eq!(spec(0.into()).prefetch(7).expect("zero"), 7);
        assert_eq!(spec("3".into()).prefetch(7).expect("string"), 3);
        assert_eq!(
            spec(u64::MAX.into()).prefetch(7).ok(),
            None,
            "not an i64: an error"
        );
        assert_eq!(
            spec(i64::MAX.into()).prefetch(7).expect("huge"),
            tokio::sync::Semaphore::MAX_PERMITS
        );
        let err = spec((-1).into()).prefetch(7).expect_err("negative");
        assert!(err.to_string().contains("`prefetch`"), "{err}");
    }

    #[tokio::test]
    async fn the_switch_wakes_its_listener_on_every_change() {
        let switch = Arc::new(Switch::default());
        assert!(!switch.is_ready());
        let listener = {
            let switch = Arc::clone(&switch);
            tokio::spawn(async move {
                let mut seen = Vec::new();
                while !switch.is_stopped() {
                    switch.changed().await;
                    seen.push((switch.is_consuming(), switch.is_stopped()));
                }
                seen
            })
        };
        tokio::task::yield_now().await;
        switch.run();
        assert!(switch.is_ready());
        assert!(switch.check_open().is_ok());
        tokio::task::yield_now().await;
        switch.pause();
        tokio::task::yield_now().await;
        switch.stop();
        assert!(!switch.is_ready());
        assert!(matches!(switch.check_open(), Err(DriverError::Stopped)));
        let seen = tokio::time::timeout(Duration::from_secs(5), listener)
            .await
            .expect("the listener saw the stop")
            .expect("listener task");
        assert_eq!(seen.last(), Some(&(false, true)));
    }

    #[tokio::test]
    async fn a_background_task_that_ignores_the_stop_is_aborted_after_the_bound() {
        let task = Background::new(tokio::spawn(std::future::pending::<()>()));
        tokio::time::timeout(
            Duration::from_secs(5),
            task.finish(Duration::from_millis(10)),
        )
        .await
        .expect("finish returns after its bound");
        // A second finish has nothing left to wait for.
        task.finish(Duration::from_secs(60)).await;
    }
}
