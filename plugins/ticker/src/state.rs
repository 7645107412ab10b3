//! The schedules' state that survives a restart of `rr` (`ticker.state_file`):
//! per schedule, the latest planned time it dealt with (the watermark),
//! whether it is paused, and the missed runs still waiting to catch up.
//!
//! One small JSON file, replaced atomically (write a sibling, then rename)
//! by one writer task that coalesces changes, so a schedule firing every
//! 100 ms costs at most one write in flight, never a write per run on the
//! loop's path.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

/// The format version written to the file; a file of another version is
/// refused rather than misread.
const VERSION: u32 = 1;

/// What is kept of one schedule.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedSchedule {
    /// The schedule's timing as `rr schedules` shows it (`every 1s`,
    /// `cron 0 * * * * (UTC)`); a saved state whose spec differs from the
    /// configured one is ignored, since its planned times mean nothing on
    /// the new timeline.
    pub spec: String,
    /// The latest planned time (unix ms) that was started or deliberately
    /// not run; the planned times after it and before now were missed.
    pub watermark: Option<i64>,
    /// Paused through the control API.
    #[serde(default)]
    pub paused: bool,
    /// Missed planned times (unix ms) waiting for their catch-up run.
    #[serde(default)]
    pub backlog: Vec<i64>,
}

#[derive(Debug, Serialize, Deserialize)]
struct StateFile {
    version: u32,
    schedules: BTreeMap<String, SavedSchedule>,
}

/// Why the state file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The file exists but could not be read.
    #[error("cannot read the ticker state file `{path}`: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// The file is not the JSON this version writes.
    #[error("the ticker state file `{path}` is not valid ({reason}); fix or delete it")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The file could not be written.
    #[error("cannot write the ticker state file `{path}`: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
}

/// The state of every schedule, loaded at start and saved as it changes.
#[derive(Debug)]
pub struct StateStore {
    path: PathBuf,
    schedules: Mutex<BTreeMap<String, SavedSchedule>>,
    changed: Notify,
}

impl StateStore {
    /// Reads `path`; a missing file is an empty state.
    pub fn load(path: &Path) -> Result<StateStore, StateError> {
        let schedules = match std::fs::read(path) {
            Ok(bytes) => parse(&bytes).map_err(|reason| StateError::Invalid {
                path: path.to_owned(),
                reason,
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(source) => {
                return Err(StateError::Read {
                    path: path.to_owned(),
                    source,
                })
            }
        };
        Ok(StateStore {
            path: path.to_owned(),
            schedules: Mutex::new(schedules),
            changed: Notify::new(),
        })
    }

    /// The file this store saves to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The saved state of `name`, if any.
    pub fn get(&self, name: &str) -> Option<SavedSchedule> {
        self.lock().get(name).cloned()
    }

    /// Changes the state of `name` (created with `spec` when absent) and
    /// wakes the writer.
    pub fn update(&self, name: &str, spec: &str, change: impl FnOnce(&mut SavedSchedule)) {
        {
            let mut schedules = self.lock();
            let entry = schedules
                .entry(name.to_owned())
                .or_insert_with(|| SavedSchedule {
                    spec: spec.to_owned(),
                    ..SavedSchedule::default()
                });
            if entry.spec != spec {
                *entry = SavedSchedule {
                    spec: spec.to_owned(),
                    ..SavedSchedule::default()
                };
            }
            change(entry);
        }
        self.changed.notify_one();
    }

    /// Keeps only the schedules in `names`: a schedule removed from the
    /// configuration leaves nothing behind.
    pub fn retain(&self, names: &[&str]) {
        self.lock().retain(|name, _| names.contains(&name.as_str()));
        self.changed.notify_one();
    }

    /// Writes the current state now.
    pub fn save(&self) -> Result<(), StateError> {
        let file = StateFile {
            version: VERSION,
            schedules: self.lock().clone(),
        };
        // A failure here must not write an empty file over a good one.
        let bytes = serde_json::to_vec_pretty(&file).map_err(|e| StateError::Write {
            path: self.path.clone(),
            source: std::io::Error::other(e),
        })?;
        let mut temporary = self.path.clone().into_os_string();
        temporary.push(".tmp");
        let temporary = PathBuf::from(temporary);
        std::fs::write(&temporary, bytes)
            .and_then(|()| std::fs::rename(&temporary, &self.path))
            .map_err(|source| StateError::Write {
                path: self.path.clone(),
                source,
            })
    }

    /// Saves after every change until `stop` resolves, then once more.
    pub async fn write_until(self: Arc<Self>, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            tokio::select! {
                () = &mut stop => break,
                () = self.changed.notified() => {}
            }
            self.save_logged().await;
        }
        self.save_logged().await;
    }

    async fn save_logged(self: &Arc<Self>) {
        let store = Arc::clone(self);
        let saved = tokio::task::spawn_blocking(move || store.save()).await;
        match saved {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(target: "ticker", error = %e, "schedule state not saved"),
            Err(e) => tracing::error!(target: "ticker", error = %e, "schedule state not saved"),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, SavedSchedule>> {
        self.schedules.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn parse(bytes: &[u8]) -> Result<BTreeMap<String, SavedSchedule>, String> {
    let file: StateFile = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if file.version != VERSION {
        return Err(format!(
            "version {} where {VERSION} is expected",
            file.version
        ));
    }
    Ok(file.schedules)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_file_is_an_empty_state_and_a_saved_one_reads_back() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("state.json");
        let store = StateStore::load(&path).expect("empty");
        assert_eq!(store.get("report"), None);
        store.update("report", "every 1s", |s| {
            s.watermark = Some(1_000);
            s.paused = true;
            s.backlog = vec![500];
        });
        store.save().expect("saved");
        let again = StateStore::load(&path).expect("read back");
        assert_eq!(
            again.get("report"),
            Some(SavedSchedule {
                spec: "every 1s".into(),
                watermark: Some(1_000),
                paused: true,
                backlog: vec![500],
            })
        );
    }

    #[test]
    fn a_new_spec_starts_from_a_clean_state() {
        let dir = tempfile::tempdir().expect("dir");
        let store = StateStore::load(&dir.path().join("s.json")).expect("empty");
        store.update("r", "every 1s", |s| s.watermark = Some(7));
        store.update("r", "every 2s", |_| {});
        assert_eq!(store.get("r").and_then(|s| s.watermark), None);
    }

    #[test]
    fn a_broken_file_is_named_and_not_overwritten() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("state.json");
        for bad in ["{not json", r#"{"version": 9, "schedules": {}}"#] {
            std::fs::write(&path, bad).expect("write");
            let err = StateStore::load(&path).expect_err(bad).to_string();
            assert!(
                err.contains("state.json") && err.contains("not valid"),
                "{err}"
            );
            assert_eq!(std::fs::read_to_string(&path).expect("kept"), bad);
        }
    }

    #[test]
    fn removed_schedules_are_forgotten() {
        let dir = tempfile::tempdir().expect("dir");
        let store = StateStore::load(&dir.path().join("s.json")).expect("empty");
        store.update("a", "every 1s", |_| {});
        store.update("b", "every 1s", |_| {});
        store.retain(&["b"]);
        assert!(store.get("a").is_none() && store.get("b").is_some());
    }
}
