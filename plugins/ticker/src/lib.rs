//! The `ticker` plugin of the design document.
//!
//! Every `interval` it sends body `{"tick": N}` (N from 0) with context
//! `{"lastTick": <unix seconds when the previous tick completed>}` (0 before
//! the first tick; Go's example sends its zero time there) to its own pool,
//! whose workers run with `RR_MODE=ticker`. The reply is ignored.
//!
//! Unlike the document's sample, whose error check looks at the wrong
//! variable, a failed tick (worker error, crash, `exec_ttl`) is logged with
//! its cause and counted, and ticking goes on; only a pool that cannot keep
//! any worker alive stops the server.
//!
//! ```yaml
//! ticker:
//!   interval: 1s        # Go duration; 0 or absent means 1s
//!   pool:
//!     num_workers: 2    # any pool option
//! ```

#![forbid(unsafe_code)]

pub mod schedule;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rr_config::duration::non_negative;
use rr_plugin::{
    async_trait, Health, HistogramSample, InitContext, MetricFamily, MetricKind, Plugin,
    PluginError, ServeContext, ServiceKey, Status, WorkerServer,
};
use rr_pool::{Payload, Pool, PoolConfig, WorkerInfo, WorkerStatus};
use serde::Deserialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use schedule::{Tick, TickerStats};

/// The interval used when `ticker.interval` is absent or zero.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);

/// The `ticker` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct TickerConfig {
    /// Time between ticks; zero means [`DEFAULT_INTERVAL`].
    #[serde(deserialize_with = "non_negative")]
    pub interval: Duration,
    /// The ticker's own pool.
    pub pool: PoolConfig,
}

impl Default for TickerConfig {
    fn default() -> Self {
        TickerConfig {
            interval: DEFAULT_INTERVAL,
            pool: PoolConfig::default(),
        }
    }
}

struct Running {
    pool: Pool,
    stop: watch::Sender<bool>,
    ticks: JoinHandle<()>,
    watchdog: JoinHandle<()>,
}

/// The `ticker` plugin.
#[derive(Default)]
pub struct TickerPlugin {
    config: TickerConfig,
    server: Option<Arc<dyn WorkerServer>>,
    stats: Arc<TickerStats>,
    running: Mutex<Option<Running>>,
}

impl TickerPlugin {
    /// The ticker's counters.
    pub fn stats(&self) -> Arc<TickerStats> {
        Arc::clone(&self.stats)
    }

    fn pool(&self) -> Option<Pool> {
        self.lock().as_ref().map(|r| r.pool.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Running>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl Plugin for TickerPlugin {
    fn name(&self) -> &'static str {
        "ticker"
    }

    fn weight(&self) -> u32 {
        10
    }

    fn requires(&self) -> Vec<ServiceKey> {
        vec![ServiceKey::of::<Arc<dyn WorkerServer>>()]
    }

    async fn init(&mut self, ctx: &mut InitContext<'_>) -> Result<Status, PluginError> {
        if !ctx.is_configured() {
            return Ok(Status::Disabled);
        }
        let mut config: TickerConfig = ctx.section()?;
        if config.interval.is_zero() {
            config.interval = DEFAULT_INTERVAL;
        }
        self.server = Some(ctx.require::<Arc<dyn WorkerServer>>()?);
        self.config = config;
        Ok(Status::Enabled)
    }

    async fn serve(&self, ctx: ServeContext) -> Result<(), PluginError> {
        let server = self
            .server
            .as_ref()
            .ok_or_else(|| PluginError::other("ticker served before init"))?;
        let env = [("RR_MODE".to_owned(), "ticker".to_owned())];
        let pool = server.new_pool("ticker", &self.config.pool, &env).await?;
        let (stop, stopped) = watch::channel(false);
        let ticks = {
            let pool = pool.clone();
            let stats = Arc::clone(&self.stats);
            let interval = self.config.interval;
            tokio::spawn(async move {
                schedule::run(interval, &stats, stopped, |tick| {
                    let pool = pool.clone();
                    async move {
                        let payload = Payload::new(tick.context(), tick.body());
                        pool.exec(&payload).await.map(drop)
                    }
                })
                .await;
            })
        };
        let watchdog = {
            let pool = pool.clone();
            tokio::spawn(async move {
                let message = pool.fatal_error().await;
                ctx.fail(PluginError::Other(message));
            })
        };
        tracing::info!(target: "ticker", interval = ?self.config.interval, workers = pool.workers().len(), "ticker started");
        *self.lock() = Some(Running {
            pool,
            stop,
            ticks,
            watchdog,
        });
        Ok(())
    }

    async fn stop(&self) -> Result<(), PluginError> {
        let Some(running) = self.lock().take() else {
            return Ok(());
        };
        // The tick in progress completes; no new one starts.
        let _ = running.stop.send(true);
        let _ = running.ticks.await;
        running.watchdog.abort();
        running.pool.destroy().await;
        tracing::info!(
            target: "ticker",
            sent = self.stats.sent(),
            failed = self.stats.failed(),
            skipped = self.stats.skipped(),
            "ticker stopped"
        );
        Ok(())
    }

    fn can_reset(&self) -> bool {
        true
    }

    async fn reset(&self) -> Result<(), PluginError> {
        let pool = self
            .pool()
            .ok_or_else(|| PluginError::other("ticker is not running"))?;
        // RoadRunner's ticker bounds its reset by 10 s.
        tokio::time::timeout(Duration::from_secs(10), pool.reset())
            .await
            .map_err(|_| PluginError::other("ticker reset did not finish within 10s"))??;
        Ok(())
    }

    fn workers(&self) -> Option<Vec<WorkerInfo>> {
        self.pool().map(|p| p.workers())
    }

    async fn add_worker(&self) -> Result<(), PluginError> {
        let pool = self
            .pool()
            .ok_or_else(|| PluginError::other("ticker is not running"))?;
        Ok(pool.add_worker().await?)
    }

    async fn remove_worker(&self) -> Result<bool, PluginError> {
        let pool = self
            .pool()
            .ok_or_else(|| PluginError::other("ticker is not running"))?;
        Ok(pool.remove_worker().await?)
    }

    /// Healthy while the pool has a live worker.
    async fn health(&self) -> Option<Health> {
        let workers = self.pool().map(|p| p.workers()).unwrap_or_default();
        Some(Health::from_bool(!workers.is_empty()))
    }

    /// Ready while a worker is idle, so the next tick can start on time.
    async fn ready(&self) -> Option<Health> {
        let workers = self.pool().map(|p| p.workers()).unwrap_or_default();
        Some(Health::from_bool(
            workers.iter().any(|w| w.status == WorkerStatus::Ready),
        ))
    }

    fn metrics(&self) -> Vec<MetricFamily> {
        let counter = |name: &str, help: &str, value: u64| MetricFamily {
            name: name.to_owned(),
            help: help.to_owned(),
            kind: MetricKind::Counter(vec![(Vec::new(), value as f64)]),
        };
        let histogram = |name: &str, help: &str, sample: HistogramSample| MetricFamily {
            name: name.to_owned(),
            help: help.to_owned(),
            kind: MetricKind::Histogram(vec![(Vec::new(), sample)]),
        };
        vec![
            counter(
                "rr_ticker_ticks_sent_total",
                "Ticks executed, successful or not.",
                self.stats.sent(),
            ),
            counter(
                "rr_ticker_ticks_failed_total",
                "Ticks whose execution failed.",
                self.stats.failed(),
            ),
            counter(
                "rr_ticker_ticks_skipped_total",
                "Ticks skipped because the previous one was still running.",
                self.stats.skipped(),
            ),
            histogram(
                "rr_ticker_tick_duration_seconds",
                "How long each tick's execution took.",
                self.stats.duration.snapshot(),
            ),
            histogram(
                "rr_ticker_tick_lateness_seconds",
                "How late each tick started against its schedule.",
                self.stats.lateness.snapshot(),
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(yaml: &str) -> Result<TickerConfig, rr_config::ConfigError> {
        rr_config::Config::from_yaml_str_with_env(yaml, &[], &|_| None)?.section("ticker")
    }

    #[test]
    fn the_design_documents_section_reads() {
        let config =
            section("version: '2.7'\nticker:\n  interval: 1s\n  pool:\n    num_workers: 2\n")
                .expect("valid");
        assert_eq!(config.interval, Duration::from_secs(1));
        assert_eq!(config.pool.num_workers, 2);
    }

    #[test]
    fn an_empty_section_takes_the_defaults() {
        let config = section("version: '3'\nticker:\n").expect("valid");
        assert_eq!(config.interval, DEFAULT_INTERVAL);
        assert_eq!(config.pool, PoolConfig::default());
    }

    #[test]
    fn bad_and_negative_intervals_name_the_key() {
        for bad in ["abc", "-1s", "10 s"] {
            let err =
                section(&format!("version: '3'\nticker:\n  interval: {bad}\n")).expect_err(bad);
            assert!(err.to_string().contains("`ticker.interval`"), "{err}");
        }
    }
}
