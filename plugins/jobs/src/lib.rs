//! The `jobs` plugin: RoadRunner's queue dispatcher.
//!
//! Drivers (here: `memory`) feed one in-process priority queue; pollers pop
//! the best job and execute it on the plugin's own pool, whose workers run
//! with `RR_MODE=jobs`. The worker gets the job payload as the body and a
//! JSON context (`id`, `job`, `driver`, `headers`, `pipeline`, and `queue`
//! for brokers), and answers `{"type": .., "data": {..}}` ([`reply`]): ack,
//! nack (drop or redeliver after a delay) or requeue with a delay and extra
//! headers; an empty reply is an ack. PHP pushes, declares, pauses and
//! resumes pipelines through the `jobs` RPC service ([`rpc`]), which speaks
//! RoadRunner's `jobs.v1` protobuf messages ([`proto`]).
//!
//! Differences from RoadRunner, on purpose: a reply that is not valid JSON
//! is *nacked* (RoadRunner acks it) with an error naming the job id; for
//! the memory driver both drop the job. An explicit `num_pollers` is
//! honoured (RoadRunner always uses `num_workers + 2`).

#![forbid(unsafe_code)]

pub mod amqp;
pub mod backoff;
pub mod beanstalk;
pub mod boltdb;
pub mod config;
pub mod core;
pub mod driver;
pub mod job;
pub mod memory;
pub mod nats;
pub mod proto;
pub mod queue;
pub mod reply;
pub mod rpc;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rr_plugin::{
    async_trait, pool_hooks, Health, InitContext, JobsReporter, MetricFamily, MetricKind, Plugin,
    PluginError, RpcRegistry, ServeContext, ServiceKey, Status, WorkerServer,
};
use rr_pool::{Pool, WorkerInfo};
use tokio::task::JoinHandle;

pub use crate::config::JobsConfig;
pub use crate::core::Core;

/// How long `rr reset jobs` may take.
const RESET_LIMIT: Duration = Duration::from_secs(60);

struct Running {
    pool: Pool,
    pollers: Vec<JoinHandle<()>>,
    watchdog: JoinHandle<()>,
}

/// The `jobs` plugin.
#[derive(Default)]
pub struct JobsPlugin {
    config: JobsConfig,
    server: Option<Arc<dyn WorkerServer>>,
    core: Option<Arc<Core>>,
    running: Mutex<Option<Running>>,
}

impl JobsPlugin {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Running>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn pool(&self) -> Option<Pool> {
        self.lock().as_ref().map(|r| r.pool.clone())
    }
}

#[async_trait]
impl Plugin for JobsPlugin {
    fn name(&self) -> &'static str {
        "jobs"
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

    fn provides(&self) -> Vec<ServiceKey> {
        vec![ServiceKey::of::<Arc<dyn JobsReporter>>()]
    }

    async fn init(&mut self, ctx: &mut InitContext<'_>) -> Result<Status, PluginError> {
        if !ctx.is_configured() {
            return Ok(Status::Disabled);
        }
        let config: JobsConfig = ctx.section()?;
        let pipelines = config.pipelines()?;
        let globals = driver::DRIVERS
            .iter()
            .filter_map(|kind| match ctx.config().get(kind) {
                Some(serde_json::Value::Object(section)) => {
                    Some(((*kind).to_owned(), section.clone()))
                }
                _ => None,
            })
            .collect();
        let core = Arc::new(
            Core::new(config.pipeline_size(), &config.consume, config.timeout())
                .with_globals(globals),
        );
        for pipeline in pipelines {
            if !driver::DRIVERS.contains(&pipeline.driver.as_str()) {
                // RoadRunner skips such a pipeline with an error, not fatal.
                tracing::error!(target: "jobs", pipeline = %pipeline.name, driver = %pipeline.driver, key = %format!("jobs.pipelines.{}.driver", pipeline.name), "no such driver, the pipeline is skipped; known drivers: {}", driver::DRIVERS.join(", "));
                continue;
            }
            core.add(&pipeline.name, &pipeline.driver, pipeline.options)
                .map_err(|message| {
                    rr_config::ConfigError::invalid(
                        format!("jobs.pipelines.{}.config", pipeline.name),
                        message,
                    )
                })?;
        }
        for name in &config.consume {
            if !core.list().contains(name) {
                tracing::warn!(target: "jobs", pipeline = %name, "`jobs.consume` names a pipeline that is not configured; a later jobs.Declare can create it");
            }
        }
        if let Some(registry) = ctx.optional::<Arc<dyn RpcRegistry>>() {
            registry.register("jobs", Arc::new(rpc::JobsService::new(Arc::clone(&core))));
        }
        self.server = Some(ctx.require::<Arc<dyn WorkerServer>>()?);
        ctx.provide::<Arc<dyn JobsReporter>>(Arc::clone(&core) as Arc<dyn JobsReporter>);
        self.core = Some(core);
        self.config = config;
        Ok(Status::Enabled)
    }

    async fn serve(&self, ctx: ServeContext) -> Result<(), PluginError> {
        let (Some(server), Some(core)) = (&self.server, &self.core) else {
            return Err(PluginError::other("jobs served before init"));
        };
        let env = [("RR_MODE".to_owned(), "jobs".to_owned())];
        let pool = server.new_pool("jobs", &self.config.pool, &env).await?;
        let pollers = (0..self.config.pollers())
            .map(|_| tokio::spawn(Arc::clone(core).poll(pool.clone())))
            .collect();
        let consume: Vec<String> = self
            .config
            .consume
            .iter()
            .filter(|name| core.list().contains(name))
            .cloned()
            .collect();
        core.resume(&consume)
            .await
            .map_err(|e| PluginError::other(format!("jobs: cannot start a pipeline: {e}")))?;
        let watchdog = {
            let pool = pool.clone();
            tokio::spawn(async move {
                let message = pool.fatal_error().await;
                ctx.fail(PluginError::Other(message));
            })
        };
        tracing::info!(target: "jobs", pipelines = ?core.list(), consume = ?consume, pollers = self.config.pollers(), workers = pool.workers().len(), "jobs started");
        *self.lock() = Some(Running {
            pool,
            pollers,
            watchdog,
        });
        Ok(())
    }

    async fn stop(&self) -> Result<(), PluginError> {
        let Some(running) = self.lock().take() else {
            return Ok(());
        };
        if let Some(core) = &self.core {
            // Jobs being executed finish; queued memory jobs are dropped.
            core.queue().close();
            for poller in running.pollers {
                if tokio::time::timeout(self.config.timeout(), poller)
                    .await
                    .is_err()
                {
                    tracing::warn!(target: "jobs", "a poller did not finish within the timeout");
                }
            }
            core.stop_all().await;
        }
        running.watchdog.abort();
        running.pool.destroy().await;
        if let Some(core) = &self.core {
            let s = &core.stats;
            tracing::info!(
                target: "jobs",
                pushed = s.push_ok.load(Ordering::Relaxed),
                ok = s.jobs_ok.load(Ordering::Relaxed),
                failed = s.jobs_err.load(Ordering::Relaxed),
                requeued = s.jobs_requeue.load(Ordering::Relaxed),
                "jobs stopped"
            );
        }
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
        let Some(core) = &self.core else {
            return Vec::new();
        };
        let s = &core.stats;
        // RoadRunner exports these running totals as gauges, under these
        // names (no `_total`), so its dashboards read them unchanged.
        let gauge = |name: &str, help: &str, value: &std::sync::atomic::AtomicU64| MetricFamily {
            name: name.to_owned(),
            help: help.to_owned(),
            kind: MetricKind::Gauge(vec![(Vec::new(), value.load(Ordering::Relaxed) as f64)]),
        };
        vec![
            gauge("rr_jobs_push_ok", "Number of job push", &s.push_ok),
            gauge(
                "rr_jobs_push_err",
                "Number of jobs push which was failed",
                &s.push_err,
            ),
            gauge(
                "rr_jobs_jobs_ok",
                "Number of successfully processed jobs",
                &s.jobs_ok,
            ),
            gauge(
                "rr_jobs_jobs_err",
                "Number of jobs error while processing in the worker",
                &s.jobs_err,
            ),
            gauge(
                "rr_jobs_jobs_requeue",
                "Number of jobs requeued (nack with redelivery, requeue)",
                &s.jobs_requeue,
            ),
        ]
    }
}
