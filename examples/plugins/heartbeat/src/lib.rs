//! `heartbeat`: an rr plugin that lives outside rr's source tree.
//!
//! Every `interval` it sends body `{"beat": N, "message": "..."}` (N from 1)
//! to its own pool of PHP workers, which run with `RR_MODE=heartbeat`. A
//! failed beat is logged and the next one goes out on time; a pool that
//! cannot keep any worker alive stops the server.
//!
//! ```yaml
//! heartbeat:
//!   interval: 500ms     # default 1s
//!   message: hello      # default "beat"
//!   pool:
//!     num_workers: 1    # any pool option
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rr_config::duration::non_negative;
use rr_plugin::{
    async_trait, Health, InitContext, Plugin, PluginError, ServeContext, ServiceKey, Status,
    WorkerServer,
};
use rr_pool::{Payload, Pool, PoolConfig, WorkerInfo};
use serde::Deserialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The `heartbeat` section, with its defaults.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct HeartbeatConfig {
    /// Time between beats (Go duration syntax: `500ms`, `2s`).
    #[serde(deserialize_with = "non_negative")]
    pub interval: Duration,
    /// Sent with every beat.
    pub message: String,
    /// The plugin's own pool.
    pub pool: PoolConfig,
}

impl Default for HeartbeatConfig {
    fn default() -> Self {
        HeartbeatConfig {
            interval: Duration::from_secs(1),
            message: "beat".to_owned(),
            pool: PoolConfig::default(),
        }
    }
}

/// What runs between `serve` and `stop`.
struct Running {
    pool: Pool,
    stop: watch::Sender<bool>,
    beats: JoinHandle<()>,
    watchdog: JoinHandle<()>,
}

/// The `heartbeat` plugin. `rr build` makes it with `Default`.
#[derive(Default)]
pub struct HeartbeatPlugin {
    config: HeartbeatConfig,
    server: Option<Arc<dyn WorkerServer>>,
    sent: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    running: Mutex<Option<Running>>,
}

impl HeartbeatPlugin {
    fn pool(&self) -> Option<Pool> {
        self.lock().as_ref().map(|r| r.pool.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Running>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl Plugin for HeartbeatPlugin {
    /// Also the config section's name.
    fn name(&self) -> &'static str {
        "heartbeat"
    }

    /// The `server` plugin's pool factory must be initialised first.
    fn requires(&self) -> Vec<ServiceKey> {
        vec![ServiceKey::of::<Arc<dyn WorkerServer>>()]
    }

    async fn init(&mut self, ctx: &mut InitContext<'_>) -> Result<Status, PluginError> {
        // No `heartbeat:` section: the plugin is off, which is not an error.
        if !ctx.is_configured() {
            return Ok(Status::Disabled);
        }
        let mut config: HeartbeatConfig = ctx.section()?;
        if config.interval.is_zero() {
            config.interval = HeartbeatConfig::default().interval;
        }
        self.server = Some(ctx.require::<Arc<dyn WorkerServer>>()?);
        self.config = config;
        Ok(Status::Enabled)
    }

    async fn serve(&self, ctx: ServeContext) -> Result<(), PluginError> {
        let server = self
            .server
            .as_ref()
            .ok_or_else(|| PluginError::other("heartbeat served before init"))?;
        // RR_MODE tells the PHP side which loop to run.
        let env = [("RR_MODE".to_owned(), "heartbeat".to_owned())];
        let pool = server
            .new_pool("heartbeat", &self.config.pool, &env)
            .await?;
        let (stop, mut stopped) = watch::channel(false);
        let beats = {
            let pool = pool.clone();
            let (sent, failed) = (Arc::clone(&self.sent), Arc::clone(&self.failed));
            let (interval, message) = (self.config.interval, self.config.message.clone());
            tokio::spawn(async move {
                let mut ticker = tokio::time::interval(interval);
                ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                ticker.tick().await; // the first tick is immediate: wait one interval
                loop {
                    tokio::select! {
                        _ = ticker.tick() => {}
                        _ = stopped.changed() => return,
                    }
                    let beat = sent.fetch_add(1, Ordering::Relaxed) + 1;
                    let body = serde_json::json!({ "beat": beat, "message": message });
                    let payload = Payload::new(Vec::new(), body.to_string());
                    if let Err(err) = pool.exec(&payload).await {
                        failed.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(target: "heartbeat", beat, error = %err, "heartbeat failed");
                    }
                }
            })
        };
        let watchdog = {
            let pool = pool.clone();
            tokio::spawn(async move {
                let message = pool.fatal_error().await;
                ctx.fail(PluginError::Other(message));
            })
        };
        tracing::info!(target: "heartbeat", interval = ?self.config.interval, text = %self.config.message, "heartbeat started");
        *self.lock() = Some(Running {
            pool,
            stop,
            beats,
            watchdog,
        });
        Ok(())
    }

    async fn stop(&self) -> Result<(), PluginError> {
        let Some(running) = self.lock().take() else {
            return Ok(());
        };
        // A beat in progress completes; no new one starts.
        let _ = running.stop.send(true);
        let _ = running.beats.await;
        running.watchdog.abort();
        running.pool.destroy().await;
        tracing::info!(
            target: "heartbeat",
            sent = self.sent.load(Ordering::Relaxed),
            failed = self.failed.load(Ordering::Relaxed),
            "heartbeat stopped"
        );
        Ok(())
    }

    fn can_reset(&self) -> bool {
        true
    }

    /// `rr reset heartbeat`: fresh workers (e.g. after a deploy).
    async fn reset(&self) -> Result<(), PluginError> {
        let pool = self
            .pool()
            .ok_or_else(|| PluginError::other("heartbeat is not running"))?;
        Ok(pool.reset().await?)
    }

    /// `rr workers heartbeat`.
    fn workers(&self) -> Option<Vec<WorkerInfo>> {
        self.pool().map(|p| p.workers())
    }

    /// `/health?plugin=heartbeat`: healthy while a worker lives.
    async fn health(&self) -> Option<Health> {
        let workers = self.pool().map(|p| p.workers()).unwrap_or_default();
        Some(Health::from_bool(!workers.is_empty()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(yaml: &str) -> HeartbeatConfig {
        rr_config::Config::from_yaml_str_with_env(yaml, &[], &|_| None)
            .expect("valid yaml")
            .section("heartbeat")
            .expect("valid section")
    }

    #[test]
    fn an_empty_section_takes_the_defaults() {
        let config = section("version: '3'\nheartbeat:\n");
        assert_eq!(config.interval, Duration::from_secs(1));
        assert_eq!(config.message, "beat");
    }

    #[test]
    fn values_override_the_defaults() {
        let config = section(
            "version: '3'\nheartbeat:\n  interval: 500ms\n  message: hello\n  pool:\n    num_workers: 2\n",
        );
        assert_eq!(config.interval, Duration::from_millis(500));
        assert_eq!(config.message, "hello");
        assert_eq!(config.pool.num_workers, 2);
    }
}
