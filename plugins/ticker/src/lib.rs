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
//!
//! Named schedules (`ticker.schedules`, see `docs/schedules.md`) share the
//! same pool: each has a `cron` expression (in a `timezone`) or an `every`
//! interval, an overlap policy, jitter, a timeout and its own payload, and
//! its context carries `schedule`, `planned` and `started`. When schedules
//! are configured the legacy tick runs only if `interval` is set explicitly.
//! With an `rpc` section, the `schedules` RPC service ([`control`]) lists,
//! triggers, pauses and resumes them (`rr schedules`).

#![forbid(unsafe_code)]

pub mod cluster;
pub mod control;
pub mod plan;
pub mod runner;
pub mod schedule;
pub mod schedules;
pub mod state;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rr_config::duration::non_negative;
use rr_plugin::{
    async_trait, pool_hooks, Health, HistogramSample, InitContext, MetricFamily, MetricKind,
    Plugin, PluginError, RpcRegistry, ServeContext, ServiceKey, Status, WorkerServer,
};
use rr_pool::{Payload, Pool, PoolConfig, WorkerInfo};
use serde::Deserialize;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

pub use runner::ScheduleStats;
pub use schedule::{Tick, TickerStats};
pub use schedules::{Schedule, ScheduleConfig};

/// RoadRunner's ticker bounds its reset by 10 s.
const RESET_LIMIT: Duration = Duration::from_secs(10);

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
    /// Named schedules (name → schedule), run on the same pool.
    pub schedules: BTreeMap<String, ScheduleConfig>,
    /// Where the schedules' watermark, pause state and missed runs are
    /// kept across restarts; nothing is kept when absent.
    pub state_file: Option<std::path::PathBuf>,
    /// One fire per cluster: the shared store of run claims.
    pub cluster: cluster::ClusterConfig,
    /// Rehearse the schedules as if `rr` started at this UTC time
    /// (RFC 3339); the clock then runs at real speed. For trying cron and
    /// daylight-saving behaviour with real workers; never in production.
    pub rehearse_from: Option<String>,
}

impl Default for TickerConfig {
    fn default() -> Self {
        TickerConfig {
            interval: DEFAULT_INTERVAL,
            pool: PoolConfig::default(),
            schedules: BTreeMap::new(),
            state_file: None,
            cluster: cluster::ClusterConfig::default(),
            rehearse_from: None,
        }
    }
}

struct Running {
    pool: Pool,
    stop: watch::Sender<bool>,
    ticks: Option<JoinHandle<()>>,
    schedules: Vec<JoinHandle<()>>,
    /// Saves the schedules' state; its last write follows the loops' end.
    writer: Option<JoinHandle<()>>,
    watchdog: JoinHandle<()>,
}

/// The `ticker` plugin.
#[derive(Default)]
pub struct TickerPlugin {
    config: TickerConfig,
    server: Option<Arc<dyn WorkerServer>>,
    stats: Arc<TickerStats>,
    /// Whether the design document's single tick runs.
    legacy: bool,
    /// `ticker.rehearse_from`, read.
    rehearse_from: Option<chrono::DateTime<chrono::Utc>>,
    schedules: Vec<(Schedule, Arc<ScheduleStats>)>,
    /// Each schedule's command channel, taken by its loop in `serve`.
    controls: Mutex<Vec<Option<mpsc::UnboundedReceiver<runner::Control>>>>,
    running: Mutex<Option<Running>>,
}

impl TickerPlugin {
    /// The ticker's counters.
    pub fn stats(&self) -> Arc<TickerStats> {
        Arc::clone(&self.stats)
    }

    /// The counters of each named schedule.
    pub fn schedule_stats(&self) -> Vec<(Arc<str>, Arc<ScheduleStats>)> {
        self.schedules
            .iter()
            .map(|(s, stats)| (Arc::clone(&s.spec.name), Arc::clone(stats)))
            .collect()
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
        vec![
            ServiceKey::of::<Arc<dyn WorkerServer>>(),
            ServiceKey::of::<Arc<dyn RpcRegistry>>(),
        ]
    }

    async fn init(&mut self, ctx: &mut InitContext<'_>) -> Result<Status, PluginError> {
        if !ctx.is_configured() {
            return Ok(Status::Disabled);
        }
        let mut config: TickerConfig = ctx.section()?;
        if config.interval.is_zero() {
            config.interval = DEFAULT_INTERVAL;
        }
        let schedules = schedules::build(&config.schedules)?;
        self.rehearse_from = match &config.rehearse_from {
            Some(text) => Some(
                chrono::DateTime::parse_from_rfc3339(text.trim())
                    .map_err(|e| {
                        rr_config::ConfigError::invalid(
                            "ticker.rehearse_from",
                            format!("{text:?} is not an RFC 3339 time ({e})"),
                        )
                    })?
                    .with_timezone(&chrono::Utc),
            ),
            None => None,
        };
        if config.cluster.is_enabled()
            && config
                .cluster
                .redis
                .as_ref()
                .is_some_and(|r| r.addrs.is_empty())
        {
            return Err(rr_config::ConfigError::missing(
                "ticker.cluster.redis.addrs",
                "the cluster needs a Redis address (host:port)",
            )
            .into());
        }
        self.legacy = schedules.is_empty() || ctx.config().has("ticker.interval");
        self.schedules = schedules
            .into_iter()
            .map(|s| (s, Arc::new(ScheduleStats::default())))
            .collect();
        let (senders, receivers): (Vec<_>, Vec<_>) = self
            .schedules
            .iter()
            .map(|_| {
                let (sender, receiver) = mpsc::unbounded_channel();
                (sender, Some(receiver))
            })
            .unzip();
        *self.controls.lock().unwrap_or_else(|p| p.into_inner()) = receivers;
        if !self.schedules.is_empty() {
            if let Some(registry) = ctx.optional::<Arc<dyn RpcRegistry>>() {
                let entries = self
                    .schedules
                    .iter()
                    .zip(senders)
                    .map(|((schedule, stats), sender)| {
                        control::Entry::new(schedule, Arc::clone(stats), sender)
                    })
                    .collect();
                registry.register(
                    "schedules",
                    Arc::new(control::SchedulesService::new(entries)),
                );
            }
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
        let ticks = self.legacy.then(|| {
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
        });
        let timeline = match &self.rehearse_from {
            Some(from) => plan::Timeline::starting_at(*from),
            None => plan::Timeline::now(),
        };
        let store = match &self.config.state_file {
            Some(path) if !self.schedules.is_empty() => {
                let store = Arc::new(
                    state::StateStore::load(path).map_err(|e| PluginError::other(e.to_string()))?,
                );
                let names: Vec<&str> = self.schedules.iter().map(|(s, _)| &*s.spec.name).collect();
                store.retain(&names);
                Some(store)
            }
            _ => None,
        };
        let claims = if self.config.cluster.is_enabled() && !self.schedules.is_empty() {
            Some(
                cluster::RedisClaims::connect(&self.config.cluster)
                    .await
                    .map_err(|e| PluginError::other(e.to_string()))?,
            )
        } else {
            None
        };
        let mut controls =
            std::mem::take(&mut *self.controls.lock().unwrap_or_else(|p| p.into_inner()));
        controls.resize_with(self.schedules.len(), || None);
        let schedules = self
            .schedules
            .iter()
            .zip(controls)
            .map(|((schedule, stats), control)| {
                let pool = pool.clone();
                let body = Arc::clone(&schedule.body);
                let context = Arc::clone(&schedule.context);
                let wait = schedule.worker_wait;
                let stopped = stop.subscribe();
                let hooks = runner::Hooks {
                    control,
                    store: store.clone(),
                    claims: claims.clone(),
                };
                let spec = runner::ScheduleSpec {
                    align_to_epoch: claims.is_some(),
                    ..schedule.spec.clone()
                };
                tokio::spawn(runner::run_controlled(
                    spec,
                    timeline,
                    Arc::clone(stats),
                    stopped,
                    hooks,
                    move |run: runner::Run| {
                        let pool = pool.clone();
                        let payload = Payload::new(run.context(&context), body.to_string());
                        async move {
                            let reply = match wait {
                                Some(wait) => pool.exec_within(&payload, wait).await,
                                None => pool.exec(&payload).await,
                            };
                            reply.map(drop).map_err(runner::RunError::from)
                        }
                    },
                ))
            })
            .collect();
        let writer = store.map(|store| {
            let mut stopped = stop.subscribe();
            tokio::spawn(store.write_until(async move {
                let _ = stopped.wait_for(|s| *s).await;
            }))
        });
        let watchdog = {
            let pool = pool.clone();
            tokio::spawn(async move {
                let message = pool.fatal_error().await;
                ctx.fail(PluginError::Other(message));
            })
        };
        if self.legacy {
            tracing::info!(target: "ticker", interval = ?self.config.interval, workers = pool.workers().len(), "ticker started");
        }
        for (schedule, _) in &self.schedules {
            tracing::info!(target: "ticker", schedule = %schedule.spec.name, timing = %schedule.spec.timing.describe(), overlap = ?schedule.spec.overlap, "schedule started");
        }
        *self.lock() = Some(Running {
            pool,
            stop,
            ticks,
            schedules,
            writer,
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
        if let Some(ticks) = running.ticks {
            let _ = ticks.await;
        }
        for task in running.schedules {
            let _ = task.await;
        }
        if let Some(writer) = running.writer {
            let _ = writer.await;
        }
        running.watchdog.abort();
        running.pool.destroy().await;
        for (schedule, stats) in &self.schedules {
            tracing::info!(
                target: "ticker",
                schedule = %schedule.spec.name,
                started = stats.started(),
                succeeded = stats.succeeded(),
                failed = stats.failed(),
                timed_out = stats.timed_out(),
                skipped = stats.skipped(),
                queued = stats.queued(),
                replaced = stats.replaced(),
                caught_up = stats.caught_up(),
                no_worker = stats.no_worker(),
                elsewhere = stats.elsewhere(),
                "schedule stopped"
            );
        }
        if !self.legacy {
            return Ok(());
        }
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
        pool_hooks::reset(self.name(), self.pool(), RESET_LIMIT).await
    }

    fn workers(&self) -> Option<Vec<WorkerInfo>> {
        self.pool().map(|p| p.workers())
    }

    async fn add_worker(&self) -> Result<(), PluginError> {
        pool_hooks::add_worker(self.name(), self.pool()).await
    }

    async fn remove_worker(&self) -> Result<bool, PluginError> {
        pool_hooks::remove_worker(self.name(), self.pool()).await
    }

    async fn health(&self) -> Option<Health> {
        Some(pool_hooks::health(self.pool().as_ref()))
    }

    async fn ready(&self) -> Option<Health> {
        Some(pool_hooks::ready(self.pool().as_ref()))
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
        let mut families = vec![
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
        ];
        if !self.schedules.is_empty() {
            families.extend(self.schedule_metrics());
        }
        families
    }
}

impl TickerPlugin {
    fn schedule_metrics(&self) -> Vec<MetricFamily> {
        let label = |name: &Arc<str>| vec![("schedule".to_owned(), name.to_string())];
        let counter = |name: &str, help: &str, value: fn(&ScheduleStats) -> u64| MetricFamily {
            name: name.to_owned(),
            help: help.to_owned(),
            kind: MetricKind::Counter(
                self.schedules
                    .iter()
                    .map(|(s, stats)| (label(&s.spec.name), value(stats) as f64))
                    .collect(),
            ),
        };
        let histogram =
            |name: &str, help: &str, value: fn(&ScheduleStats) -> HistogramSample| MetricFamily {
                name: name.to_owned(),
                help: help.to_owned(),
                kind: MetricKind::Histogram(
                    self.schedules
                        .iter()
                        .map(|(s, stats)| (label(&s.spec.name), value(stats)))
                        .collect(),
                ),
            };
        vec![
            counter(
                "rr_ticker_schedule_runs_started_total",
                "Schedule runs started.",
                ScheduleStats::started,
            ),
            counter(
                "rr_ticker_schedule_runs_succeeded_total",
                "Schedule runs that completed successfully.",
                ScheduleStats::succeeded,
            ),
            counter(
                "rr_ticker_schedule_runs_failed_total",
                "Schedule runs that failed (worker error, crash, timeout).",
                ScheduleStats::failed,
            ),
            counter(
                "rr_ticker_schedule_runs_timed_out_total",
                "Schedule runs that passed their timeout.",
                ScheduleStats::timed_out,
            ),
            counter(
                "rr_ticker_schedule_runs_skipped_total",
                "Due schedule runs dropped by the overlap policy or missed.",
                ScheduleStats::skipped,
            ),
            counter(
                "rr_ticker_schedule_runs_queued_total",
                "Due schedule runs held back by overlap: queue.",
                ScheduleStats::queued,
            ),
            counter(
                "rr_ticker_schedule_runs_replaced_total",
                "Running schedule runs cancelled by overlap: replace.",
                ScheduleStats::replaced,
            ),
            counter(
                "rr_ticker_schedule_runs_caught_up_total",
                "Missed schedule runs (paused, rr down, no free worker) run later by catch_up.",
                ScheduleStats::caught_up,
            ),
            counter(
                "rr_ticker_schedule_runs_no_worker_total",
                "Schedule runs that found no free worker within worker_wait.",
                ScheduleStats::no_worker,
            ),
            counter(
                "rr_ticker_schedule_runs_claimed_elsewhere_total",
                "Planned schedule runs another cluster instance claimed.",
                ScheduleStats::elsewhere,
            ),
            histogram(
                "rr_ticker_schedule_run_duration_seconds",
                "How long each schedule run took.",
                |s| s.duration.snapshot(),
            ),
            histogram(
                "rr_ticker_schedule_lateness_seconds",
                "How late each schedule run started against its planned (jittered) time.",
                |s| s.lateness.snapshot(),
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
