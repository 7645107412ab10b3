//! The `memory` driver: jobs live in this process only (lost on restart).
//!
//! Options: `priority` (10), `prefetch` (100000: jobs handed to the
//! plugin's queue and not yet settled, above which the driver waits).
//! Pushed jobs wait in a local priority heap (delayed ones in a timer heap)
//! until the pipeline consumes; a forwarding task moves them, best first,
//! into the plugin's queue. Nack without requeue drops the job; requeue and
//! nack with requeue push it back with its delay.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rr_plugin::async_trait;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::driver::{Driver, DriverError, PipelineSpec};
use crate::job::{Acknowledger, Delivery, Job};
use crate::proto::{Headers, Stat};
use crate::queue::JobQueue;

/// The driver's name.
pub const NAME: &str = "memory";
/// Default `priority`.
pub const DEFAULT_PRIORITY: i64 = 10;
/// Default `prefetch`.
pub const DEFAULT_PREFETCH: i64 = 100_000;
/// Jobs a pipeline holds locally (waiting or delayed) before pushes fail.
pub const LOCAL_CAPACITY: usize = 100_000;

struct Waiting {
    key: (i64, u64),
    due: Option<Instant>,
    job: Job,
}

impl PartialEq for Waiting {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Waiting {}
impl PartialOrd for Waiting {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Waiting {
    /// Top of the max-heap: earliest due (timer heap), then lowest priority, then oldest.
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .due
            .cmp(&self.due)
            .then_with(|| other.key.cmp(&self.key))
    }
}

#[derive(Default)]
struct State {
    consuming: bool,
    ready: BinaryHeap<Waiting>,
    delayed: BinaryHeap<Waiting>,
    seq: u64,
}

impl State {
    /// Moves the delayed jobs that are due into the ready heap.
    fn promote(&mut self, now: Instant) {
        while self.delayed.peek().is_some_and(|w| w.due <= Some(now)) {
            if let Some(mut waiting) = self.delayed.pop() {
                waiting.due = None;
                self.ready.push(waiting);
            }
        }
    }
}

struct Inner {
    name: String,
    priority: i64,
    prefetch: usize,
    queue: Arc<JobQueue>,
    state: Mutex<State>,
    wake: Notify,
    in_flight: Arc<Semaphore>,
    stopped: AtomicBool,
}

impl Inner {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn insert(&self, job: Job) -> Result<(), DriverError> {
        if self.stopped.load(AtomicOrdering::Acquire) {
            return Err(DriverError::Stopped);
        }
        let mut state = self.state();
        if state.ready.len() + state.delayed.len() >= LOCAL_CAPACITY {
            return Err(DriverError::Broker(
                "local pipeline is full, consider to increase prefetch number".to_owned(),
            ));
        }
        state.seq += 1;
        let key = (job.priority, state.seq);
        if job.delay > 0 {
            let due = Instant::now() + Duration::from_secs(job.delay.unsigned_abs());
            state.delayed.push(Waiting {
                key,
                due: Some(due),
                job,
            });
        } else {
            state.ready.push(Waiting {
                key,
                due: None,
                job,
            });
        }
        drop(state);
        self.wake.notify_one();
        Ok(())
    }

    async fn forward(self: Arc<Self>) {
        loop {
            if self.stopped.load(AtomicOrdering::Acquire) {
                return;
            }
            let (can_forward, next_due) = {
                let mut state = self.state();
                state.promote(Instant::now());
                (
                    state.consuming && !state.ready.is_empty(),
                    state.delayed.peek().and_then(|w| w.due),
                )
            };
            let timer = async {
                match next_due {
                    Some(due) => tokio::time::sleep_until(due).await,
                    None => std::future::pending().await,
                }
            };
            if !can_forward {
                tokio::select! {
                    () = self.wake.notified() => {}
                    () = timer => {}
                }
                continue;
            }
            tokio::select! {
                permit = Arc::clone(&self.in_flight).acquire_owned() => {
                    let Ok(permit) = permit else { return };
                    let job = {
                        let mut state = self.state();
                        if state.consuming { state.ready.pop().map(|w| w.job) } else { None }
                    };
                    if let Some(job) = job {
                        let ticket = Ticket { inner: Arc::clone(&self), permit: Mutex::new(Some(permit)) };
                        let delivery = Delivery { job, driver: NAME, queue: None, ack: Arc::new(ticket) };
                        if self.queue.push(delivery).await.is_err() {
                            return;
                        }
                    }
                }
                () = self.wake.notified() => {}
                () = timer => {}
            }
        }
    }
}

/// One delivered job's hold on the pipeline's prefetch.
struct Ticket {
    inner: Arc<Inner>,
    permit: Mutex<Option<OwnedSemaphorePermit>>,
}

impl Ticket {
    fn settle(&self) -> Result<(), DriverError> {
        if self.inner.stopped.load(AtomicOrdering::Acquire) {
            return Err(DriverError::Stopped);
        }
        drop(self.permit.lock().unwrap_or_else(|p| p.into_inner()).take());
        Ok(())
    }
}

#[async_trait]
impl Acknowledger for Ticket {
    async fn ack(&self, _job: &Job) -> Result<(), DriverError> {
        self.settle()
    }

    async fn nack(&self, job: &Job, requeue: bool, delay: i64) -> Result<(), DriverError> {
        self.settle()?;
        if requeue {
            let mut job = job.clone();
            job.delay = delay.max(0);
            self.inner.insert(job)?;
        }
        Ok(())
    }

    async fn requeue(&self, mut job: Job, headers: Headers, delay: i64) -> Result<(), DriverError> {
        self.settle()?;
        job.headers.extend(headers);
        job.delay = delay.max(0);
        self.inner.insert(job)
    }

    fn is_stopped(&self) -> bool {
        self.inner.stopped.load(AtomicOrdering::Acquire)
    }
}

/// A `memory` pipeline.
pub struct MemoryDriver {
    inner: Arc<Inner>,
    forwarder: Mutex<Option<JoinHandle<()>>>,
}

impl MemoryDriver {
    /// A paused pipeline from `spec`; call [`Driver::run`] to consume.
    pub fn new(spec: PipelineSpec) -> Result<Arc<MemoryDriver>, DriverError> {
        let priority = spec.int("priority", DEFAULT_PRIORITY)?;
        let prefetch = spec.prefetch(DEFAULT_PREFETCH)?;
        let inner = Arc::new(Inner {
            name: spec.name,
            priority,
            prefetch,
            queue: spec.queue,
            state: Mutex::new(State::default()),
            wake: Notify::new(),
            in_flight: Arc::new(Semaphore::new(prefetch)),
            stopped: AtomicBool::new(false),
        });
        let forwarder = tokio::spawn(Arc::clone(&inner).forward());
        Ok(Arc::new(MemoryDriver {
            inner,
            forwarder: Mutex::new(Some(forwarder)),
        }))
    }

    fn set_consuming(&self, consuming: bool) -> Result<(), DriverError> {
        if self.inner.stopped.load(AtomicOrdering::Acquire) {
            return Err(DriverError::Stopped);
        }
        self.inner.state().consuming = consuming;
        self.inner.wake.notify_one();
        Ok(())
    }
}

#[async_trait]
impl Driver for MemoryDriver {
    fn kind(&self) -> &'static str {
        NAME
    }

    fn priority(&self) -> i64 {
        self.inner.priority
    }

    async fn push(&self, job: Job) -> Result<(), DriverError> {
        self.inner.insert(job)
    }

    async fn run(&self) -> Result<(), DriverError> {
        self.set_consuming(true)
    }

    async fn pause(&self) -> Result<(), DriverError> {
        self.set_consuming(false)
    }

    async fn stop(&self) -> Result<(), DriverError> {
        self.inner.stopped.store(true, AtomicOrdering::Release);
        self.inner.in_flight.close();
        let forwarder = self
            .forwarder
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(forwarder) = forwarder {
            forwarder.abort();
        }
        let mut state = self.inner.state();
        state.consuming = false;
        state.ready.clear();
        state.delayed.clear();
        Ok(())
    }

    async fn state(&self) -> Result<Stat, DriverError> {
        let in_flight = self
            .inner
            .prefetch
            .saturating_sub(self.inner.in_flight.available_permits());
        let state = self.inner.state();
        Ok(Stat {
            pipeline: self.inner.name.clone(),
            driver: NAME.to_owned(),
            queue: self.inner.name.clone(),
            active: (state.ready.len() + in_flight) as i64,
            delayed: state.delayed.len() as i64,
            reserved: 0,
            ready: state.consuming && !self.inner.stopped.load(AtomicOrdering::Acquire),
            priority: self.inner.priority.max(0) as u64,
        })
    }
}

impl Drop for MemoryDriver {
    fn drop(&mut self) {
        if let Some(forwarder) = self
            .forwarder
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            forwarder.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use serde_json::json;

    fn spec(queue: &Arc<JobQueue>, options: serde_json::Value) -> PipelineSpec {
        PipelineSpec {
            name: "p".into(),
            options: options.as_object().cloned().unwrap_or_default(),
            global: serde_json::Map::new(),
            queue: Arc::clone(queue),
        }
    }

    fn job(id: &str, priority: i64, delay: i64) -> Job {
        Job {
            id: id.into(),
            name: "n".into(),
            payload: Bytes::new(),
            headers: Headers::new(),
            pipeline: "p".into(),
            priority,
            delay,
            auto_ack: false,
        }
    }

    async fn next(queue: &JobQueue) -> Delivery {
        tokio::time::timeout(Duration::from_secs(3600), queue.pop())
            .await
            .expect("a job within the hour")
            .expect("open")
    }

    #[tokio::test(start_paused = true)]
    async fn priority_and_delay_order_on_a_paused_clock() {
        let queue = Arc::new(JobQueue::new(100));
        let driver = MemoryDriver::new(spec(&queue, json!({}))).expect("valid");
        driver.push(job("late", 1, 5)).await.expect("push");
        driver.push(job("low", 20, 0)).await.expect("push");
        driver.push(job("high", 1, 0)).await.expect("push");
        driver.push(job("soon", 30, 2)).await.expect("push");
        // Paused: nothing moves.
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(queue.is_empty());
        let start = Instant::now();
        driver.run().await.expect("run");
        let mut order = Vec::new();
        for _ in 0..4 {
            let d = next(&queue).await;
            order.push((d.job.id.clone(), (Instant::now() - start).as_secs()));
            d.ack.ack(&d.job).await.expect("ack");
        }
        assert_eq!(
            order,
            [
                ("high".into(), 0),
                ("low".into(), 0),
                ("soon".into(), 1),
                ("late".into(), 4)
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn prefetch_bounds_unsettled_jobs_and_requeue_delays() {
        let queue = Arc::new(JobQueue::new(100));
        let driver = MemoryDriver::new(spec(&queue, json!({"prefetch": "1"}))).expect("valid");
        driver.run().await.expect("run");
        driver.push(job("a", 10, 0)).await.expect("push");
        driver.push(job("b", 10, 0)).await.expect("push");
        let a = next(&queue).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(queue.is_empty(), "prefetch 1: b waits for a");
        assert_eq!(driver.state().await.expect("stat").active, 2);
        let mut headers = Headers::new();
        headers.insert("attempt".into(), vec!["2".into()]);
        let started = Instant::now();
        a.ack
            .requeue(a.job.clone(), headers, 3)
            .await
            .expect("requeue");
        let b = next(&queue).await;
        assert_eq!(b.job.id, "b");
        b.ack.nack(&b.job, false, 0).await.expect("nack drops");
        let again = next(&queue).await;
        assert_eq!(again.job.id, "a");
        assert_eq!(again.job.headers["attempt"], ["2"]);
        assert_eq!((Instant::now() - started).as_secs(), 3);
        driver.stop().await.expect("stop");
        assert!(matches!(
            again.ack.ack(&again.job).await,
            Err(DriverError::Stopped)
        ));
    }

    #[tokio::test]
    async fn bad_options_name_the_key() {
        let queue = Arc::new(JobQueue::new(1));
        let err = MemoryDriver::new(spec(&queue, json!({"priority": "high"})))
            .err()
            .expect("invalid");
        assert!(err.to_string().contains("`priority`"), "{err}");
        let err = MemoryDriver::new(spec(&queue, json!({"prefetch": -1})))
            .err()
            .expect("invalid");
        assert!(err.to_string().contains("`prefetch`"), "{err}");
    }
}
