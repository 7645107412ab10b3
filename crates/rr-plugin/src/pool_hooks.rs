//! The management hooks that every plugin serving with its own worker pool
//! answers the same way (`rr reset`, `rr workers`, adding and removing
//! workers, the status plugin's health and readiness). A plugin's
//! [`Plugin`](crate::Plugin) methods hand these the pool it serves with:
//! `None` before `serve` and after `stop`.

use std::time::Duration;

use rr_pool::{Pool, WorkerStatus};

use crate::{Health, PluginError};

/// The pool, or the error that `plugin` is not running.
pub fn running(plugin: &str, pool: Option<Pool>) -> Result<Pool, PluginError> {
    pool.ok_or_else(|| PluginError::other(format!("{plugin} is not running")))
}

/// Replaces every worker, bounded by `limit`.
pub async fn reset(plugin: &str, pool: Option<Pool>, limit: Duration) -> Result<(), PluginError> {
    let pool = running(plugin, pool)?;
    tokio::time::timeout(limit, pool.reset())
        .await
        .map_err(|_| {
            PluginError::other(format!("{plugin} reset did not finish within {limit:?}"))
        })??;
    Ok(())
}

/// Adds one worker.
pub async fn add_worker(plugin: &str, pool: Option<Pool>) -> Result<(), PluginError> {
    Ok(running(plugin, pool)?.add_worker().await?)
}

/// Removes one worker; false when only the last one is left.
pub async fn remove_worker(plugin: &str, pool: Option<Pool>) -> Result<bool, PluginError> {
    Ok(running(plugin, pool)?.remove_worker().await?)
}

/// Healthy while a worker is ready or working (RoadRunner's `Status()`).
pub fn health(pool: Option<&Pool>) -> Health {
    let workers = pool.map(Pool::workers).unwrap_or_default();
    Health::from_bool(
        workers
            .iter()
            .any(|w| matches!(w.status, WorkerStatus::Ready | WorkerStatus::Working)),
    )
}

/// Ready while a worker is idle, so new work starts at once (RoadRunner's
/// `Ready()`).
pub fn ready(pool: Option<&Pool>) -> Health {
    let workers = pool.map(Pool::workers).unwrap_or_default();
    Health::from_bool(workers.iter().any(|w| w.status == WorkerStatus::Ready))
}
