//! The plugin's priority queue: drivers push deliveries, pollers pop the
//! one with the lowest priority number (FIFO among equals). It holds at
//! most `pipeline_size` jobs; a full queue makes pushers wait.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::Mutex;

use tokio::sync::Semaphore;

use crate::job::Delivery;

struct Entry {
    priority: i64,
    seq: u64,
    delivery: Delivery,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Entry {}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Entry {
    /// The max-heap's top is the lowest priority number, then the oldest.
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .priority
            .cmp(&self.priority)
            .then_with(|| other.seq.cmp(&self.seq))
    }
}

/// The shared queue.
pub struct JobQueue {
    heap: Mutex<BinaryHeap<Entry>>,
    items: Semaphore,
    space: Semaphore,
    seq: AtomicU64,
}

impl JobQueue {
    /// A queue holding at most `capacity` jobs (at least 1).
    pub fn new(capacity: usize) -> JobQueue {
        JobQueue {
            heap: Mutex::new(BinaryHeap::new()),
            items: Semaphore::new(0),
            space: Semaphore::new(capacity.clamp(1, Semaphore::MAX_PERMITS)),
            seq: AtomicU64::new(0),
        }
    }

    fn heap(&self) -> std::sync::MutexGuard<'_, BinaryHeap<Entry>> {
        self.heap.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a delivery, waiting while the queue is full. Returns it back
    /// when the queue is closed.
    pub async fn push(&self, delivery: Delivery) -> Result<(), Delivery> {
        match self.space.acquire().await {
            Ok(permit) => permit.forget(),
            Err(_) => return Err(delivery),
        }
        let seq = self.seq.fetch_add(1, AtomicOrdering::Relaxed);
        self.heap().push(Entry {
            priority: delivery.job.priority,
            seq,
            delivery,
        });
        self.items.add_permits(1);
        Ok(())
    }

    /// The next delivery; `None` once the queue is closed.
    pub async fn pop(&self) -> Option<Delivery> {
        self.items.acquire().await.ok()?.forget();
        let entry = self.heap().pop()?;
        self.space.add_permits(1);
        Some(entry.delivery)
    }

    /// Jobs waiting.
    pub fn len(&self) -> usize {
        self.heap().len()
    }

    /// Whether no job waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Wakes every waiting pusher and popper with "closed".
    pub fn close(&self) {
        self.items.close();
        self.space.close();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::job::{Acknowledger, Job};
    use crate::proto::Headers;

    struct Nothing;

    #[rr_plugin::async_trait]
    impl Acknowledger for Nothing {
        async fn ack(&self, _: &Job) -> Result<(), crate::driver::DriverError> {
            Ok(())
        }
        async fn nack(&self, _: &Job, _: bool, _: i64) -> Result<(), crate::driver::DriverError> {
            Ok(())
        }
        async fn requeue(
            &self,
            _: Job,
            _: Headers,
            _: i64,
        ) -> Result<(), crate::driver::DriverError> {
            Ok(())
        }
        fn is_stopped(&self) -> bool {
            false
        }
    }

    pub(crate) fn delivery(id: &str, priority: i64) -> Delivery {
        Delivery {
            job: Job {
                id: id.into(),
                name: "n".into(),
                payload: bytes::Bytes::new(),
                headers: Headers::new(),
                pipeline: "p".into(),
                priority,
                delay: 0,
                auto_ack: false,
            },
            driver: "memory",
            queue: None,
            ack: Arc::new(Nothing),
        }
    }

    #[tokio::test]
    async fn lowest_priority_first_then_fifo() {
        let queue = JobQueue::new(10);
        for (id, p) in [("a", 5), ("b", 1), ("c", 5), ("d", 10), ("e", 1)] {
            queue.push(delivery(id, p)).await.expect("open");
        }
        let mut order = Vec::new();
        while !queue.is_empty() {
            order.push(queue.pop().await.expect("item").job.id);
        }
        assert_eq!(order, ["b", "e", "a", "c", "d"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_queue_blocks_pushers_until_a_pop() {
        let queue = Arc::new(JobQueue::new(1));
        queue.push(delivery("a", 1)).await.expect("open");
        let pusher = {
            let queue = Arc::clone(&queue);
            tokio::spawn(async move { queue.push(delivery("b", 1)).await.is_ok() })
        };
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        assert!(!pusher.is_finished());
        assert_eq!(queue.pop().await.expect("a").job.id, "a");
        assert!(pusher.await.expect("join"));
        queue.close();
        assert!(queue.pop().await.is_none());
    }
}
