//! The `memory` driver: a map in this process. Expired keys are never
//! returned (every read checks the clock) and a sweeper task frees them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rr_plugin::async_trait;
use tokio::task::JoinHandle;

use crate::storage::{effective_expiry, Clock, Item, KvError, Storage};

/// How often the sweeper removes expired keys.
pub const SWEEP_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
struct Entry {
    value: Vec<u8>,
    expires: Option<DateTime<Utc>>,
}

impl Entry {
    fn live(&self, now: DateTime<Utc>) -> bool {
        self.expires.is_none_or(|at| at > now)
    }
}

type Map = Arc<Mutex<HashMap<String, Entry>>>;

fn lock(map: &Map) -> MutexGuard<'_, HashMap<String, Entry>> {
    map.lock().unwrap_or_else(|p| p.into_inner())
}

/// An in-memory storage.
pub struct MemoryStorage {
    map: Map,
    clock: Clock,
    sweeper: Mutex<Option<JoinHandle<()>>>,
}

impl MemoryStorage {
    /// An empty storage on `clock`. Within a Tokio runtime it also starts
    /// the sweeper; without one, expired keys are only hidden until
    /// overwritten or deleted.
    pub fn new(clock: Clock) -> MemoryStorage {
        let map: Map = Arc::default();
        let sweeper = tokio::runtime::Handle::try_current().ok().map(|handle| {
            let map = Arc::clone(&map);
            let clock = Arc::clone(&clock);
            handle.spawn(async move {
                let mut every = tokio::time::interval(SWEEP_EVERY);
                every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    every.tick().await;
                    let now = clock();
                    lock(&map).retain(|_, e| e.live(now));
                }
            })
        });
        MemoryStorage {
            map,
            clock,
            sweeper: Mutex::new(sweeper),
        }
    }

    /// How many keys are held, expired ones not yet swept included.
    pub fn stored_len(&self) -> usize {
        lock(&self.map).len()
    }
}

impl Drop for MemoryStorage {
    fn drop(&mut self) {
        if let Some(task) = self
            .sweeper
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            task.abort();
        }
    }
}

#[async_trait]
impl Storage for MemoryStorage {
    fn op_prefix(&self) -> &'static str {
        "in_memory_plugin"
    }

    async fn has(&self, keys: &[String]) -> Result<Vec<String>, KvError> {
        let now = (self.clock)();
        let map = lock(&self.map);
        Ok(keys
            .iter()
            .filter(|k| map.get(*k).is_some_and(|e| e.live(now)))
            .cloned()
            .collect())
    }

    async fn mget(&self, keys: &[String]) -> Result<Vec<(String, Vec<u8>)>, KvError> {
        let now = (self.clock)();
        let map = lock(&self.map);
        Ok(keys
            .iter()
            .filter_map(|k| {
                map.get(k)
                    .filter(|e| e.live(now))
                    .map(|e| (k.clone(), e.value.clone()))
            })
            .collect())
    }

    async fn set(&self, items: Vec<Item>) -> Result<(), KvError> {
        let now = (self.clock)();
        let mut map = lock(&self.map);
        for item in items {
            let expires = effective_expiry(&item.key, item.expires, now);
            map.insert(
                item.key,
                Entry {
                    value: item.value,
                    expires,
                },
            );
        }
        Ok(())
    }

    async fn mexpire(&self, items: Vec<Item>) -> Result<(), KvError> {
        let now = (self.clock)();
        let mut map = lock(&self.map);
        for item in items {
            if let Some(entry) = map.get_mut(&item.key).filter(|e| e.live(now)) {
                entry.expires = effective_expiry(&item.key, item.expires, now);
            }
        }
        Ok(())
    }

    async fn ttl(&self, keys: &[String]) -> Result<Vec<(String, Option<DateTime<Utc>>)>, KvError> {
        let now = (self.clock)();
        let map = lock(&self.map);
        Ok(keys
            .iter()
            .filter_map(|k| {
                map.get(k)
                    .filter(|e| e.live(now))
                    .map(|e| (k.clone(), e.expires))
            })
            .collect())
    }

    async fn delete(&self, keys: &[String]) -> Result<(), KvError> {
        let mut map = lock(&self.map);
        for key in keys {
            map.remove(key);
        }
        Ok(())
    }

    async fn clear(&self) -> Result<(), KvError> {
        lock(&self.map).clear();
        Ok(())
    }

    async fn stop(&self) {
        if let Some(task) = self
            .sweeper
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            task.abort();
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::atomic::{AtomicI64, Ordering};

    /// A clock tests move by hand (unix milliseconds).
    pub(crate) fn manual_clock(start_ms: i64) -> (Clock, Arc<AtomicI64>) {
        let now = Arc::new(AtomicI64::new(start_ms));
        let read = Arc::clone(&now);
        let clock: Clock = Arc::new(move || {
            DateTime::from_timestamp_millis(read.load(Ordering::SeqCst)).unwrap_or_default()
        });
        (clock, now)
    }

    fn keys(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    fn item(key: &str, value: &str, expires_ms: Option<i64>) -> Item {
        Item {
            key: key.into(),
            value: value.as_bytes().to_vec(),
            expires: expires_ms.and_then(DateTime::from_timestamp_millis),
        }
    }

    #[tokio::test]
    async fn set_get_has_delete_clear() {
        let (clock, _) = manual_clock(1_000_000);
        let s = MemoryStorage::new(clock);
        s.set(vec![item("a", "1", None), item("b", "2", None)])
            .await
            .expect("must succeed");
        assert_eq!(
            s.has(&keys(&["a", "x", "b"])).await.expect("must succeed"),
            keys(&["a", "b"])
        );
        assert_eq!(
            s.mget(&keys(&["b", "zz"])).await.expect("must succeed"),
            vec![("b".to_owned(), b"2".to_vec())]
        );
        s.delete(&keys(&["a", "nope"])).await.expect("must succeed");
        assert_eq!(
            s.has(&keys(&["a", "b"])).await.expect("must succeed"),
            keys(&["b"])
        );
        s.clear().await.expect("must succeed");
        assert!(s.has(&keys(&["b"])).await.expect("must succeed").is_empty());
    }

    #[tokio::test]
    async fn expired_keys_are_never_returned() {
        let (clock, now) = manual_clock(1_000_000);
        let s = MemoryStorage::new(clock);
        s.set(vec![item("t", "v", Some(1_005_000)), item("p", "v", None)])
            .await
            .expect("must succeed");
        let ttl = s
            .ttl(&keys(&["t", "p", "missing"]))
            .await
            .expect("must succeed");
        assert_eq!(ttl.len(), 2);
        assert_eq!(
            ttl[0].1.expect("must succeed").timestamp_millis(),
            1_005_000
        );
        assert_eq!(ttl[1].1, None);
        now.store(1_004_999, Ordering::SeqCst);
        assert_eq!(
            s.has(&keys(&["t"])).await.expect("must succeed"),
            keys(&["t"])
        );
        now.store(1_005_000, Ordering::SeqCst);
        assert!(s.has(&keys(&["t"])).await.expect("must succeed").is_empty());
        assert!(s
            .mget(&keys(&["t"]))
            .await
            .expect("must succeed")
            .is_empty());
        assert!(s.ttl(&keys(&["t"])).await.expect("must succeed").is_empty());
        // Expiring an expired key does not bring it back.
        s.mexpire(vec![item("t", "", Some(2_000_000))])
            .await
            .expect("must succeed");
        assert!(s.has(&keys(&["t"])).await.expect("must succeed").is_empty());
    }

    #[tokio::test]
    async fn past_expiry_keeps_the_key_without_ttl_like_roadrunner() {
        let (clock, _) = manual_clock(1_000_000);
        let s = MemoryStorage::new(clock);
        s.set(vec![item("k", "v", Some(999_000))])
            .await
            .expect("must succeed");
        assert_eq!(
            s.ttl(&keys(&["k"])).await.expect("must succeed"),
            vec![("k".into(), None)]
        );
    }

    #[tokio::test]
    async fn mexpire_changes_existing_keys_only() {
        let (clock, now) = manual_clock(1_000_000);
        let s = MemoryStorage::new(clock);
        s.set(vec![item("k", "v", None)])
            .await
            .expect("must succeed");
        s.mexpire(vec![
            item("k", "", Some(1_002_000)),
            item("ghost", "", Some(1_002_000)),
        ])
        .await
        .expect("must succeed");
        assert!(s
            .has(&keys(&["ghost"]))
            .await
            .expect("must succeed")
            .is_empty());
        assert_eq!(
            s.mget(&keys(&["k"])).await.expect("must succeed")[0].1,
            b"v"
        );
        now.store(1_002_001, Ordering::SeqCst);
        assert!(s.has(&keys(&["k"])).await.expect("must succeed").is_empty());
    }

    #[tokio::test]
    async fn the_sweeper_frees_expired_keys() {
        let s = MemoryStorage::new(crate::storage::system_clock());
        let soon = Utc::now() + chrono::Duration::milliseconds(50);
        s.set(vec![Item {
            key: "x".into(),
            value: vec![1],
            expires: Some(soon),
        }])
        .await
        .expect("must succeed");
        assert_eq!(s.stored_len(), 1);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while s.stored_len() != 0 {
            assert!(tokio::time::Instant::now() < deadline, "never swept");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
