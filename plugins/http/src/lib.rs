//! The `http` plugin: an HTTP/1.1, HTTP/2 (TLS ALPN or h2c) and HTTPS
//! front-end that hands every request to a PHP worker, wire-compatible with
//! RoadRunner's `http` plugin (v5 semantics).
//!
//! Each request becomes one payload with codec Proto: the context is a
//! protobuf `http.v1.Request` ([`proto`]), the body is the raw body or, for
//! urlencoded and multipart forms, the JSON form tree ([`form`]); uploads
//! are written to temp files and described in field 9. The worker answers
//! with a protobuf `http.v1.Response` context (or the legacy JSON
//! `{"status","headers"}`) and the body.
//!
//! ```yaml
//! http:
//!   address: 127.0.0.1:8080
//!   middleware: [gzip, static, headers]   # v5 order: the last listed runs first
//!   static: { dir: public, calculate_etag: true }
//!   pool: { num_workers: 4 }
//! ```
//!
//! See `docs/http.md` for every key and what is not supported.

#![forbid(unsafe_code)]

pub mod config;
pub mod form;
pub mod metrics;
pub mod middleware;
pub mod proto;
pub mod request;
pub mod response;
pub mod server;
pub mod static_files;
pub mod tls;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rr_plugin::{
    async_trait, pool_hooks, Health, InitContext, MetricFamily, Plugin, PluginError, ServeContext,
    ServiceKey, Status, WorkerServer,
};
use rr_pool::{LanePlacement, Pool, PoolConfig, WorkerInfo};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use config::{HttpConfig, Settings};
pub use metrics::HttpMetrics;

struct Running {
    pool: Pool,
    stop: watch::Sender<bool>,
    listeners: Vec<JoinHandle<()>>,
    watchdog: JoinHandle<()>,
}

/// The `http` plugin.
#[derive(Default)]
pub struct HttpPlugin {
    settings: Option<Settings>,
    server: Option<Arc<dyn WorkerServer>>,
    metrics: Arc<HttpMetrics>,
    running: Mutex<Option<Running>>,
}

impl HttpPlugin {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Running>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn pool(&self) -> Option<Pool> {
        self.lock().as_ref().map(|r| r.pool.clone())
    }
}

#[async_trait]
impl Plugin for HttpPlugin {
    fn name(&self) -> &'static str {
        "http"
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
        let config: HttpConfig = ctx.section()?;
        let mut settings = config.validate()?;
        // The server plugin validates `server.user`; only its ids matter here.
        if let Some(user) = ctx
            .config()
            .get("server.user")
            .and_then(|v| v.as_str())
            .filter(|u| !u.is_empty())
        {
            match nix::unistd::User::from_name(user) {
                Ok(Some(user)) => {
                    settings.upload_owner = Some((user.uid.as_raw(), user.gid.as_raw()));
                }
                _ => {
                    tracing::warn!(target: "http", user, "cannot resolve server.user; uploads stay owned by rr");
                }
            }
        }
        for name in &settings.raw.middleware {
            if middleware::Middleware::from_name(name).is_none() {
                tracing::warn!(target: "http", middleware = %name, "requested middleware does not exist or is not implemented by rr");
            }
        }
        self.server = Some(ctx.require::<Arc<dyn WorkerServer>>()?);
        self.settings = Some(settings);
        Ok(Status::Enabled)
    }

    async fn serve(&self, ctx: ServeContext) -> Result<(), PluginError> {
        let (Some(server), Some(settings)) = (&self.server, &self.settings) else {
            return Err(PluginError::other("http served before init"));
        };
        let static_files = match &settings.raw.static_files {
            Some(config) => Some(static_files::StaticFiles::new(config).map_err(|e| {
                PluginError::other(format!("http.static.dir `{}`: {e}", config.dir))
            })?),
            None => None,
        };
        let tls = match &settings.tls {
            Some(ssl) => Some(tls::acceptor(ssl).map_err(|e| PluginError::other(e.to_string()))?),
            None => None,
        };
        // Bind before starting workers so a taken port fails fast.
        let mut bound = Vec::new();
        if !settings.raw.address.is_empty() {
            let (listener, local) = server::bind(&settings.raw.address, "http.address")
                .await
                .map_err(PluginError::other)?;
            let kind = match &settings.tls {
                Some(ssl) if ssl.redirect => server::Listener::Redirect {
                    https_port: ssl
                        .address
                        .rsplit_once(':')
                        .and_then(|(_, p)| p.parse().ok())
                        .unwrap_or(443),
                },
                _ => server::Listener::Plain {
                    h2c: settings.raw.http2.h2c,
                },
            };
            bound.push((listener, local, kind));
        }
        if let (Some(ssl), Some(acceptor)) = (&settings.tls, tls) {
            let (listener, local) = server::bind(&ssl.address, "http.ssl.address")
                .await
                .map_err(PluginError::other)?;
            bound.push((listener, local, server::Listener::Tls(acceptor)));
        }
        let env = [("RR_MODE".to_owned(), "http".to_owned())];
        // Many connections share few workers here: a lane per worker keeps
        // the tail latency down (see rr_pool::LanePlacement).
        let pool_config = PoolConfig {
            lanes: LanePlacement::PerWorker,
            ..settings.raw.pool.clone()
        };
        let pool = server.new_pool("http", &pool_config, &env).await?;
        let app = Arc::new(server::App::new(
            settings.clone(),
            pool.clone(),
            static_files,
            Arc::clone(&self.metrics),
        ));
        let (stop, stopped) = watch::channel(false);
        let max_streams = settings.raw.http2.max_concurrent_streams;
        let mut listeners = Vec::new();
        for (listener, local, kind) in bound {
            let scheme = match kind {
                server::Listener::Tls(_) => "https",
                server::Listener::Redirect { .. } => "http (redirect to https)",
                server::Listener::Plain { h2c: true } => "http (h2c)",
                server::Listener::Plain { h2c: false } => "http",
            };
            tracing::info!(target: "http", address = %local, scheme, "http server was started");
            listeners.push(server::spawn(
                listener,
                kind,
                Arc::clone(&app),
                max_streams,
                stopped.clone(),
            ));
        }
        let watchdog = {
            let pool = pool.clone();
            tokio::spawn(async move {
                let message = pool.fatal_error().await;
                ctx.fail(PluginError::Other(message));
            })
        };
        *self.lock() = Some(Running {
            pool,
            stop,
            listeners,
            watchdog,
        });
        Ok(())
    }

    async fn stop(&self) -> Result<(), PluginError> {
        let Some(running) = self.lock().take() else {
            return Ok(());
        };
        // Stop accepting; in-flight requests finish (bounded) before the
        // workers go away.
        let _ = running.stop.send(true);
        for listener in running.listeners {
            let _ = listener.await;
        }
        running.watchdog.abort();
        running.pool.destroy().await;
        tracing::info!(target: "http", "http server was stopped");
        Ok(())
    }

    fn can_reset(&self) -> bool {
        true
    }

    async fn reset(&self) -> Result<(), PluginError> {
        // RoadRunner bounds a reset by the pool's `reset_timeout`.
        let limit = self
            .pool()
            .map_or(Duration::from_secs(60), |p| p.config().reset_timeout)
            .max(Duration::from_secs(1));
        pool_hooks::reset(self.name(), self.pool(), limit).await
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
        let workers = self.workers();
        self.metrics.families(workers.as_deref())
    }
}
