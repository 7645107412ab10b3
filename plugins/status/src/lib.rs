//! The `status` plugin: RoadRunner's `/health` and `/ready` probes per plugin.
//!
//! ```yaml
//! status:
//!   address: 127.0.0.1:2114       # required; `:2114` listens on every interface
//!   unavailable_status_code: 503  # default 503
//! ```
//!
//! Enabled when the `status` section exists. There is no default address:
//! pick a loopback one unless the probes must be reachable from outside
//! (Kubernetes probes reach the pod address, so `:2114` there).
//!
//! Endpoints, as RoadRunner's status plugin answers them:
//!
//! - `GET /health?plugin=a&plugin=b` asks each named plugin's
//!   [`health`](rr_plugin::Plugin::health) hook; `GET /ready?plugin=...` its
//!   [`ready`](rr_plugin::Plugin::ready) hook. Without a `plugin` parameter
//!   every enabled plugin with the hook is asked.
//! - The body is a JSON array of
//!   `{"plugin_name": "ticker", "error_message": "", "status_code": 200}`.
//!   A plugin answering 500 or more is reported with the
//!   `unavailable_status_code` and the message `internal server error, see
//!   logs`, and the response then has that code; otherwise it is 200.
//! - A name that is not an enabled plugin, or a plugin without the hook, is
//!   skipped (RoadRunner logs it and leaves it out of the array), so
//!   `/health?plugin=nope` answers 200 with `[]`.
//! - `GET /jobs` answers a JSON array with one entry per jobs pipeline:
//!   `{"pipeline", "priority", "ready", "queue", "active", "delayed",
//!   "reserved", "driver", "error_message"}`, RoadRunner's `JobsReport`. A
//!   pipeline whose broker cannot tell is listed with its error. Without an
//!   enabled `jobs` plugin it answers the unavailable code and `jobs plugin
//!   not found`.
//! - Once rr is stopping, `/health` answers 200 `service is shutting down`
//!   `/ready` the unavailable code and `/jobs` 503 (RoadRunner's behaviour).
//! - Any other path answers 404.

#![forbid(unsafe_code)]

use rr_httpd as http;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rr_plugin::{
    async_trait, Health, InitContext, JobsReporter, Plugin, PluginDirectory, PluginError,
    ServeContext, ServiceKey, SharedPlugin, Status,
};
use serde::{Deserialize, Serialize};

pub use http::Reply;

/// The `status` section.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct StatusConfig {
    /// `host:port` to listen on; required.
    pub address: String,
    /// The code of an unavailable answer; 0 or absent means 503.
    pub unavailable_status_code: u16,
}

/// The default `unavailable_status_code`.
pub const DEFAULT_UNAVAILABLE_STATUS_CODE: u16 = 503;

/// One entry of the response array (RoadRunner's `Report`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// The plugin asked.
    pub plugin_name: String,
    /// Why it is unavailable, or empty.
    pub error_message: String,
    /// Its code (the unavailable code when it answered 500 or more).
    pub status_code: u16,
}

/// Which probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// `/health`, the plugin's `health()` hook.
    Health,
    /// `/ready`, the plugin's `ready()` hook.
    Ready,
}

/// What a path asks for.
enum Endpoint {
    /// `/health` or `/ready`.
    Probe(Probe),
    /// `/jobs`.
    Jobs,
}

/// A JSON array reply.
fn json_array<T: Serialize>(status: u16, items: &[T]) -> Reply {
    Reply {
        status,
        content_type: "application/json",
        body: serde_json::to_string(items).unwrap_or_else(|_| "[]".to_owned()),
    }
}

/// Answers the probes against a plugin directory.
pub struct Checker {
    directory: Arc<PluginDirectory>,
    jobs: Option<Arc<dyn JobsReporter>>,
    unavailable: u16,
    shutting_down: AtomicBool,
}

impl std::fmt::Debug for Checker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checker")
            .field("jobs", &self.jobs.is_some())
            .field("unavailable", &self.unavailable)
            .finish_non_exhaustive()
    }
}

impl Checker {
    /// A checker over `directory` answering `unavailable` when a plugin is not OK.
    pub fn new(directory: Arc<PluginDirectory>, unavailable: u16) -> Checker {
        Checker {
            directory,
            jobs: None,
            unavailable,
            shutting_down: AtomicBool::new(false),
        }
    }

    /// Answers `/jobs` from `jobs` (the jobs plugin's reporter).
    pub fn with_jobs(mut self, jobs: Option<Arc<dyn JobsReporter>>) -> Checker {
        self.jobs = jobs;
        self
    }

    /// From now on, answer as a server that is stopping.
    pub fn shutting_down(&self) {
        self.shutting_down.store(true, Ordering::Release);
    }

    /// Answers `GET <path>?<query>`.
    pub async fn handle(&self, method: &str, path: &str, query: Option<&str>) -> Reply {
        let endpoint = match path {
            "/health" => Endpoint::Probe(Probe::Health),
            "/ready" => Endpoint::Probe(Probe::Ready),
            "/jobs" => Endpoint::Jobs,
            _ => return Reply::not_found(),
        };
        if method != "GET" && method != "HEAD" {
            return Reply::text(405, "method not allowed\n");
        }
        if self.shutting_down.load(Ordering::Acquire) {
            return match endpoint {
                Endpoint::Probe(Probe::Health) => Reply::text(200, "service is shutting down\n"),
                Endpoint::Probe(Probe::Ready) => {
                    Reply::text(self.unavailable, "service is shutting down\n")
                }
                // RoadRunner answers a plain 503 here, whatever the code set.
                Endpoint::Jobs => Reply::text(503, "service is shutting down\n"),
            };
        }
        let probe = match endpoint {
            Endpoint::Probe(probe) => probe,
            Endpoint::Jobs => return self.jobs().await,
        };
        let names = http::query_values(query, "plugin");
        let plugins: Vec<SharedPlugin> = if names.is_empty() {
            self.directory.all()
        } else {
            names
                .iter()
                .filter_map(|name| {
                    let found = self.directory.find(name);
                    if found.is_none() {
                        tracing::info!(target: "status", plugin = %name, "plugin does not support health checks");
                    }
                    found
                })
                .collect()
        };
        let (code, reports) = self.check(probe, &plugins).await;
        json_array(code, &reports)
    }

    /// `/jobs`: every pipeline's state.
    async fn jobs(&self) -> Reply {
        let Some(jobs) = &self.jobs else {
            return Reply::text(self.unavailable, "jobs plugin not found\n");
        };
        json_array(200, &jobs.pipeline_states().await)
    }

    /// Asks every plugin in `plugins` that has the hook; returns the HTTP
    /// code and the reports.
    pub async fn check(&self, probe: Probe, plugins: &[SharedPlugin]) -> (u16, Vec<Report>) {
        let mut code = 200;
        let mut reports = Vec::new();
        for plugin in plugins {
            let answer: Option<Health> = match probe {
                Probe::Health => plugin.health().await,
                Probe::Ready => plugin.ready().await,
            };
            let Some(health) = answer else {
                tracing::debug!(target: "status", plugin = plugin.name(), "plugin does not support this probe; skipped");
                continue;
            };
            let report = match health.code {
                c if c >= 500 => {
                    code = self.unavailable;
                    Report {
                        plugin_name: plugin.name().to_owned(),
                        error_message: "internal server error, see logs".to_owned(),
                        status_code: self.unavailable,
                    }
                }
                c @ 100..=400 => Report {
                    plugin_name: plugin.name().to_owned(),
                    error_message: String::new(),
                    status_code: c,
                },
                c => Report {
                    plugin_name: plugin.name().to_owned(),
                    error_message: "unexpected status code".to_owned(),
                    status_code: c,
                },
            };
            reports.push(report);
        }
        (code, reports)
    }
}

/// The `status` plugin.
#[derive(Default)]
pub struct StatusPlugin {
    config: StatusConfig,
    checker: Option<Arc<Checker>>,
    server: Mutex<Option<http::HttpServer>>,
}

impl std::fmt::Debug for StatusPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatusPlugin")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Plugin for StatusPlugin {
    fn name(&self) -> &'static str {
        "status"
    }

    fn weight(&self) -> u32 {
        1
    }

    fn requires(&self) -> Vec<ServiceKey> {
        // The jobs reporter is optional; listing it only orders jobs first.
        vec![
            ServiceKey::of::<Arc<PluginDirectory>>(),
            ServiceKey::of::<Arc<dyn JobsReporter>>(),
        ]
    }

    async fn init(&mut self, ctx: &mut InitContext<'_>) -> Result<Status, PluginError> {
        if !ctx.is_configured() {
            return Ok(Status::Disabled);
        }
        let mut config: StatusConfig = ctx.section()?;
        if config.address.trim().is_empty() {
            return Err(PluginError::other(
                "`status.address` is required (e.g. 127.0.0.1:2114)",
            ));
        }
        if config.unavailable_status_code == 0 {
            config.unavailable_status_code = DEFAULT_UNAVAILABLE_STATUS_CODE;
        }
        if !(100..=999).contains(&config.unavailable_status_code) {
            return Err(PluginError::other(format!(
                "`status.unavailable_status_code` must be an HTTP status code (100-999), got {}",
                config.unavailable_status_code
            )));
        }
        let directory = ctx.require::<Arc<PluginDirectory>>()?;
        self.checker = Some(Arc::new(
            Checker::new(directory, config.unavailable_status_code)
                .with_jobs(ctx.optional::<Arc<dyn JobsReporter>>()),
        ));
        self.config = config;
        Ok(Status::Enabled)
    }

    async fn serve(&self, _ctx: ServeContext) -> Result<(), PluginError> {
        let checker = self
            .checker
            .clone()
            .ok_or_else(|| PluginError::other("status served before init"))?;
        let listener = http::bind(&self.config.address, "status.address").await?;
        let local = listener
            .local_addr()
            .map_or_else(|_| String::new(), |a| a.to_string());
        let handler: http::Handler = Arc::new(move |method, path, query| {
            let checker = Arc::clone(&checker);
            Box::pin(async move { checker.handle(&method, &path, query.as_deref()).await })
        });
        *self.server.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(http::HttpServer::start(listener, handler));
        tracing::info!(target: "status", address = %local, "status probes listening");
        rr_plugin::warn_if_exposed("status", "status.address", &local);
        Ok(())
    }

    async fn stop(&self) -> Result<(), PluginError> {
        if let Some(checker) = &self.checker {
            checker.shutting_down();
        }
        let server = self.server.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(server) = server {
            server.stop().await;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
