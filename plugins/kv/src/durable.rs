//! The durable local driver, configured as RoadRunner's `boltdb` driver
//! (`file`, `permissions`, `interval`), stored with [redb]: one file, ACID
//! transactions with copy-on-write pages, crash-safe without a log to
//! replay, pure Rust.
//!
//! Each value is stored as 8 bytes of expiry (unix milliseconds, little
//! endian, 0 = none) followed by the value, in the table `default` (the
//! bucket RoadRunner uses). Expiries live in the file, so they survive a
//! restart; reads skip expired keys, and a sweep every `interval` deletes
//! them.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use redb::{Database, ReadableTable, TableDefinition};
use rr_plugin::async_trait;
use tokio::task::JoinHandle;

use crate::storage::{effective_expiry, from_unix_ms, unix_ms, Clock, Item, KvError, Storage};

/// RoadRunner's bucket name.
const TABLE: TableDefinition<&str, &[u8]> = TableDefinition::new("default");

fn backend(e: impl std::fmt::Display) -> KvError {
    KvError::Backend(e.to_string())
}

fn encode(expires: Option<DateTime<Utc>>, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + value.len());
    out.extend_from_slice(&expires.map_or(0, unix_ms).to_le_bytes());
    out.extend_from_slice(value);
    out
}

/// (expiry, value) of a stored record; a record shorter than the header
/// reads as an empty value without expiry.
fn decode(raw: &[u8]) -> (Option<DateTime<Utc>>, &[u8]) {
    match raw.split_first_chunk::<8>() {
        Some((head, value)) => {
            let ms = i64::from_le_bytes(*head);
            ((ms != 0).then(|| from_unix_ms(ms)).flatten(), value)
        }
        None => (None, &[]),
    }
}

fn live(expires: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    expires.is_none_or(|at| at > now)
}

/// A storage in one local file.
pub struct DurableStorage {
    db: Mutex<Option<Arc<Database>>>,
    path: PathBuf,
    clock: Clock,
    sweeper: Mutex<Option<JoinHandle<()>>>,
}

impl DurableStorage {
    /// Opens (or creates, with `permissions` as its mode) the file at
    /// `path`. Within a Tokio runtime, expired keys are deleted every
    /// `interval`.
    pub fn open(
        path: &Path,
        permissions: u32,
        interval: Duration,
        clock: Clock,
    ) -> Result<DurableStorage, KvError> {
        let existed = path.exists();
        let db = Database::create(path)
            .map_err(|e| KvError::Backend(format!("cannot open {}: {e}", path.display())))?;
        if !existed {
            set_mode(path, permissions)?;
        }
        let txn = db.begin_write().map_err(backend)?;
        txn.open_table(TABLE).map_err(backend)?;
        txn.commit().map_err(backend)?;
        let db = Arc::new(db);
        let sweeper = tokio::runtime::Handle::try_current().ok().map(|handle| {
            let db = Arc::downgrade(&db);
            let clock = Arc::clone(&clock);
            let interval = interval.max(Duration::from_millis(10));
            handle.spawn(async move {
                let mut every = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
                every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    every.tick().await;
                    let Some(db) = db.upgrade() else { return };
                    let now = clock();
                    match tokio::task::spawn_blocking(move || sweep(&db, now)).await {
                        Ok(Ok(0)) => {}
                        Ok(Ok(n)) => tracing::debug!(target: "kv", removed = n, "expired keys swept"),
                        Ok(Err(e)) => tracing::error!(target: "kv", error = %e, "error during the gc phase of update"),
                        Err(_) => return,
                    }
                }
            })
        });
        Ok(DurableStorage {
            db: Mutex::new(Some(db)),
            path: path.to_owned(),
            clock,
            sweeper: Mutex::new(sweeper),
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records in the file, expired ones not yet swept included.
    pub async fn stored_len(&self) -> Result<u64, KvError> {
        self.run(|db| {
            use redb::ReadableTableMetadata;
            let txn = db.begin_read().map_err(backend)?;
            let table = txn.open_table(TABLE).map_err(backend)?;
            table.len().map_err(backend)
        })
        .await
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Database) -> Result<T, KvError> + Send + 'static,
    ) -> Result<T, KvError> {
        let db = self
            .db
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| KvError::Backend("the storage is stopped".into()))?;
        tokio::task::spawn_blocking(move || work(&db))
            .await
            .map_err(backend)?
    }

    /// Live (key, expiry, value) for each of `keys` that exists.
    async fn read(
        &self,
        keys: &[String],
    ) -> Result<Vec<(String, Option<DateTime<Utc>>, Vec<u8>)>, KvError> {
        let keys = keys.to_vec();
        let now = (self.clock)();
        self.run(move |db| {
            let txn = db.begin_read().map_err(backend)?;
            let table = txn.open_table(TABLE).map_err(backend)?;
            let mut found = Vec::new();
            for key in keys {
                if let Some(raw) = table.get(key.as_str()).map_err(backend)? {
                    let (expires, value) = decode(raw.value());
                    if live(expires, now) {
                        found.push((key, expires, value.to_vec()));
                    }
                }
            }
            Ok(found)
        })
        .await
    }
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> Result<(), KvError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| KvError::Backend(format!("cannot set permissions of {}: {e}", path.display())))
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) -> Result<(), KvError> {
    Ok(())
}

/// Deletes expired records; returns how many.
fn sweep(db: &Database, now: DateTime<Utc>) -> Result<usize, KvError> {
    let txn = db.begin_write().map_err(backend)?;
    let removed = {
        let mut table = txn.open_table(TABLE).map_err(backend)?;
        let mut expired = Vec::new();
        for entry in table.iter().map_err(backend)? {
            let (key, raw) = entry.map_err(backend)?;
            if !live(decode(raw.value()).0, now) {
                expired.push(key.value().to_owned());
            }
        }
        for key in &expired {
            table.remove(key.as_str()).map_err(backend)?;
        }
        expired.len()
    };
    txn.commit().map_err(backend)?;
    Ok(removed)
}

#[async_trait]
impl Storage for DurableStorage {
    fn op_prefix(&self) -> &'static str {
        "boltdb_driver"
    }

    async fn has(&self, keys: &[String]) -> Result<Vec<String>, KvError> {
        Ok(self
            .read(keys)
            .await?
            .into_iter()
            .map(|(k, _, _)| k)
            .collect())
    }

    async fn mget(&self, keys: &[String]) -> Result<Vec<(String, Vec<u8>)>, KvError> {
        Ok(self
            .read(keys)
            .await?
            .into_iter()
            .map(|(k, _, v)| (k, v))
            .collect())
    }

    async fn set(&self, items: Vec<Item>) -> Result<(), KvError> {
        let now = (self.clock)();
        self.run(move |db| {
            let txn = db.begin_write().map_err(backend)?;
            {
                let mut table = txn.open_table(TABLE).map_err(backend)?;
                for item in &items {
                    let expires = effective_expiry(&item.key, item.expires, now);
                    table
                        .insert(item.key.as_str(), encode(expires, &item.value).as_slice())
                        .map_err(backend)?;
                }
            }
            txn.commit().map_err(backend)
        })
        .await
    }

    async fn mexpire(&self, items: Vec<Item>) -> Result<(), KvError> {
        let now = (self.clock)();
        self.run(move |db| {
            let txn = db.begin_write().map_err(backend)?;
            {
                let mut table = txn.open_table(TABLE).map_err(backend)?;
                for item in &items {
                    let current = table.get(item.key.as_str()).map_err(backend)?.map(|raw| {
                        let (expires, value) = decode(raw.value());
                        (expires, value.to_vec())
                    });
                    if let Some((expires, value)) = current {
                        if live(expires, now) {
                            let expires = effective_expiry(&item.key, item.expires, now);
                            table
                                .insert(item.key.as_str(), encode(expires, &value).as_slice())
                                .map_err(backend)?;
                        }
                    }
                }
            }
            txn.commit().map_err(backend)
        })
        .await
    }

    async fn ttl(&self, keys: &[String]) -> Result<Vec<(String, Option<DateTime<Utc>>)>, KvError> {
        Ok(self
            .read(keys)
            .await?
            .into_iter()
            .map(|(k, e, _)| (k, e))
            .collect())
    }

    async fn delete(&self, keys: &[String]) -> Result<(), KvError> {
        let keys = keys.to_vec();
        self.run(move |db| {
            let txn = db.begin_write().map_err(backend)?;
            {
                let mut table = txn.open_table(TABLE).map_err(backend)?;
                for key in &keys {
                    table.remove(key.as_str()).map_err(backend)?;
                }
            }
            txn.commit().map_err(backend)
        })
        .await
    }

    async fn clear(&self) -> Result<(), KvError> {
        self.run(|db| {
            let txn = db.begin_write().map_err(backend)?;
            txn.delete_table(TABLE).map_err(backend)?;
            txn.open_table(TABLE).map_err(backend)?;
            txn.commit().map_err(backend)
        })
        .await
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
        // Dropping the last handle closes the file (and releases its lock).
        self.db.lock().unwrap_or_else(|p| p.into_inner()).take();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::tests::manual_clock;
    use std::sync::atomic::Ordering;

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

    const HOUR: Duration = Duration::from_secs(3600);

    #[tokio::test]
    async fn data_and_expiries_survive_reopening() {
        let dir = tempfile::tempdir().expect("must succeed");
        let path = dir.path().join("kv.db");
        let (clock, now) = manual_clock(1_000_000);
        let s = DurableStorage::open(&path, 0o600, HOUR, Arc::clone(&clock)).expect("must succeed");
        s.set(vec![item("a", "1", None), item("t", "2", Some(1_010_000))])
            .await
            .expect("must succeed");
        s.stop().await;
        drop(s);
        let s = DurableStorage::open(&path, 0o600, HOUR, Arc::clone(&clock)).expect("must succeed");
        assert_eq!(
            s.mget(&keys(&["a", "t", "x"])).await.expect("must succeed"),
            vec![("a".into(), b"1".to_vec()), ("t".into(), b"2".to_vec())]
        );
        let ttl = s.ttl(&keys(&["t"])).await.expect("must succeed");
        assert_eq!(
            ttl[0].1.expect("must succeed").timestamp_millis(),
            1_010_000
        );
        now.store(1_010_000, Ordering::SeqCst);
        assert_eq!(
            s.has(&keys(&["a", "t"])).await.expect("must succeed"),
            keys(&["a"])
        );
        s.stop().await;
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_new_file_gets_the_configured_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("must succeed");
        let path = dir.path().join("perm.db");
        let (clock, _) = manual_clock(0);
        let s = DurableStorage::open(&path, 0o640, HOUR, clock).expect("must succeed");
        let mode = std::fs::metadata(&path)
            .expect("must succeed")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o640);
        s.stop().await;
    }

    #[tokio::test]
    async fn delete_clear_and_mexpire() {
        let dir = tempfile::tempdir().expect("must succeed");
        let (clock, now) = manual_clock(1_000_000);
        let s = DurableStorage::open(&dir.path().join("d.db"), 0o600, HOUR, clock)
            .expect("must succeed");
        s.set(vec![item("a", "1", None), item("b", "2", None)])
            .await
            .expect("must succeed");
        s.mexpire(vec![
            item("a", "", Some(1_001_000)),
            item("ghost", "", Some(1_001_000)),
        ])
        .await
        .expect("must succeed");
        assert!(s
            .has(&keys(&["ghost"]))
            .await
            .expect("must succeed")
            .is_empty());
        assert_eq!(
            s.mget(&keys(&["a"])).await.expect("must succeed")[0].1,
            b"1"
        );
        now.store(1_001_000, Ordering::SeqCst);
        assert_eq!(
            s.has(&keys(&["a", "b"])).await.expect("must succeed"),
            keys(&["b"])
        );
        s.delete(&keys(&["b"])).await.expect("must succeed");
        s.set(vec![item("c", "3", None)])
            .await
            .expect("must succeed");
        s.clear().await.expect("must succeed");
        assert_eq!(s.stored_len().await.expect("must succeed"), 0);
        s.stop().await;
        assert!(s.has(&keys(&["c"])).await.is_err());
    }

    #[tokio::test]
    async fn the_sweep_deletes_expired_records() {
        let dir = tempfile::tempdir().expect("must succeed");
        let s = DurableStorage::open(
            &dir.path().join("s.db"),
            0o600,
            Duration::from_millis(50),
            crate::storage::system_clock(),
        )
        .expect("must succeed");
        let soon = Utc::now() + chrono::Duration::milliseconds(100);
        s.set(vec![Item {
            key: "x".into(),
            value: vec![1],
            expires: Some(soon),
        }])
        .await
        .expect("must succeed");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while s.stored_len().await.expect("must succeed") != 0 {
            assert!(tokio::time::Instant::now() < deadline, "never swept");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        s.stop().await;
    }

    #[tokio::test]
    async fn a_file_of_another_format_is_refused() {
        let dir = tempfile::tempdir().expect("must succeed");
        let path = dir.path().join("bolt.db");
        std::fs::write(&path, vec![0x42; 8192]).expect("must succeed");
        let (clock, _) = manual_clock(0);
        let err = DurableStorage::open(&path, 0o600, HOUR, clock)
            .err()
            .expect("must fail");
        assert!(err.to_string().starts_with("cannot open"), "{err}");
    }

    #[tokio::test]
    async fn the_same_file_cannot_be_opened_twice() {
        let dir = tempfile::tempdir().expect("must succeed");
        let path = dir.path().join("x.db");
        let (clock, _) = manual_clock(0);
        let a = DurableStorage::open(&path, 0o600, HOUR, Arc::clone(&clock)).expect("must succeed");
        let err = DurableStorage::open(&path, 0o600, HOUR, clock)
            .err()
            .expect("must succeed");
        assert!(err.to_string().contains("cannot open"), "{err}");
        a.stop().await;
    }
}
