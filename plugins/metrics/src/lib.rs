//! The `metrics` plugin: Prometheus text exposition (format 0.0.4) of rr's
//! pools, of every plugin's own metrics, and of the application's metrics.
//!
//! ```yaml
//! metrics:
//!   address: 127.0.0.1:2112    # default 127.0.0.1:2112 (RoadRunner's)
//!   collect:                   # application metrics, declared up front
//!     app_orders_total:
//!       type: counter          # counter | gauge | histogram | summary
//!       help: "Orders placed."
//!       labels: ["kind"]
//!     app_latency_seconds:
//!       type: histogram
//!       buckets: [0.1, 0.5, 1]
//! ```
//!
//! Enabled when the `metrics` section exists. `GET /metrics` answers the
//! exposition; other paths answer 404 (RoadRunner's handler answers every
//! path). Families:
//!
//! | name | type | labels | meaning |
//! |---|---|---|---|
//! | `rr_workers_total` | gauge | `plugin` | live workers of a plugin's pool |
//! | `rr_workers_by_state` | gauge | `plugin`, `state` | workers per state (`ready`, `working`, ... as `rr workers` names them; `ready`, `working`, `invalid` always present) |
//! | `rr_worker_memory_bytes` | gauge | `plugin`, `pid` | resident memory of each worker |
//! | `rr_worker_execs_total` | counter | `plugin`, `pid` | payloads each worker executed |
//!
//! then every plugin's own [`metrics`](rr_plugin::Plugin::metrics) (the
//! ticker's `rr_ticker_*`), then the application's collectors. A family
//! with an invalid name, or a name already used, is left out with a warning.
//!
//! With an `rpc` section the service `metrics` takes RoadRunner's JSON
//! methods used by spiral/roadrunner-metrics: `Declare`
//! (`{"name", "collector": {"namespace", "subsystem", "type", "help",
//! "labels", "buckets", "objectives"}}`), `Add`, `Sub`, `Set`, `Observe`
//! (`{"name", "value", "labels": [values]}`) and `Unregister` (the name as a
//! JSON string); each answers `true` or an error text.

#![forbid(unsafe_code)]

pub mod app;
pub mod exposition;
use rr_httpd as http;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use rr_plugin::{
    async_trait, InitContext, MetricFamily, MetricKind, Plugin, PluginDirectory, PluginError,
    RpcRegistry, RpcService, ServeContext, ServiceKey, SharedPlugin, Status,
};
use serde::Deserialize;

pub use app::{AppMetrics, CollectorSpec, Op};
pub use exposition::Exposition;

/// RoadRunner's default `metrics.address`.
pub const DEFAULT_ADDRESS: &str = "127.0.0.1:2112";

/// goridge's JSON codec flag, the codec of the metrics RPC service.
pub const CODEC_JSON: u8 = 0x08;

/// The `metrics` section.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct MetricsConfig {
    /// `host:port` to listen on; empty means [`DEFAULT_ADDRESS`].
    pub address: String,
    /// Application collectors declared up front, by name.
    pub collect: BTreeMap<String, CollectorSpec>,
}

/// Renders the whole exposition from the enabled plugins and the app's metrics.
pub fn render(plugins: &[SharedPlugin], app: &AppMetrics) -> String {
    let mut out = Exposition::default();
    let mut total = Vec::new();
    let mut by_state = Vec::new();
    let mut memory = Vec::new();
    let mut execs = Vec::new();
    for plugin in plugins {
        let Some(workers) = plugin.workers() else {
            continue;
        };
        let name = plugin.name().to_owned();
        let label = |extra: (&str, String)| {
            vec![
                ("plugin".to_owned(), name.clone()),
                (extra.0.to_owned(), extra.1),
            ]
        };
        total.push((
            vec![("plugin".to_owned(), name.clone())],
            workers.len() as f64,
        ));
        let mut states: BTreeMap<&str, usize> = ["ready", "working", "invalid"]
            .into_iter()
            .map(|s| (s, 0))
            .collect();
        for worker in &workers {
            *states.entry(worker.status.as_str()).or_default() += 1;
            memory.push((
                label(("pid", worker.pid.to_string())),
                worker.memory_bytes as f64,
            ));
            execs.push((
                label(("pid", worker.pid.to_string())),
                worker.num_execs as f64,
            ));
        }
        for (state, count) in states {
            by_state.push((label(("state", state.to_owned())), count as f64));
        }
    }
    out.simple(
        "rr_workers_total",
        "Live workers of a plugin's pool.",
        "gauge",
        &total,
    );
    out.simple(
        "rr_workers_by_state",
        "Workers of a plugin's pool per state.",
        "gauge",
        &by_state,
    );
    out.simple(
        "rr_worker_memory_bytes",
        "Resident memory of each worker.",
        "gauge",
        &memory,
    );
    out.simple(
        "rr_worker_execs_total",
        "Payloads each worker executed.",
        "counter",
        &execs,
    );
    for plugin in plugins {
        for family in plugin.metrics() {
            write_family(&mut out, &family);
        }
    }
    app.expose(&mut out);
    if !out.skipped().is_empty() {
        tracing::warn!(target: "metrics", skipped = ?out.skipped(), "metric families with invalid or repeated names left out");
    }
    out.finish()
}

/// Writes one plugin family.
pub fn write_family(out: &mut Exposition, family: &MetricFamily) {
    match &family.kind {
        MetricKind::Counter(samples) => out.simple(&family.name, &family.help, "counter", samples),
        MetricKind::Gauge(samples) => out.simple(&family.name, &family.help, "gauge", samples),
        MetricKind::Histogram(samples) => {
            if out.family(&family.name, &family.help, "histogram") {
                for (labels, sample) in samples {
                    out.histogram_sample(&family.name, labels, sample);
                }
            }
        }
    }
}

/// The `metrics` RPC service over the app's collectors.
#[derive(Debug, Clone)]
pub struct MetricsRpc {
    app: Arc<AppMetrics>,
}

#[derive(Debug, Deserialize)]
struct MetricArg {
    #[serde(alias = "Name")]
    name: String,
    #[serde(default, alias = "Value")]
    value: f64,
    #[serde(default, alias = "Labels")]
    labels: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
struct DeclareArg {
    #[serde(alias = "Name")]
    name: String,
    #[serde(default, alias = "Collector")]
    collector: CollectorSpec,
}

impl MetricsRpc {
    /// The service over `app`.
    pub fn new(app: Arc<AppMetrics>) -> MetricsRpc {
        MetricsRpc { app }
    }

    /// Handles `metrics.<method>` with a JSON body; answers JSON `true`.
    pub fn call_json(&self, method: &str, body: &[u8]) -> Result<Bytes, String> {
        fn arg<'a, T: Deserialize<'a>>(method: &str, body: &'a [u8]) -> Result<T, String> {
            serde_json::from_slice(body)
                .map_err(|e| format!("metrics.{method}: invalid JSON argument: {e}"))
        }
        let update = |op: Op| -> Result<(), String> {
            let m: MetricArg = arg(method, body)?;
            self.app.update(
                op,
                &m.name,
                m.value,
                m.labels.as_deref().unwrap_or_default(),
            )
        };
        match method {
            "Declare" => {
                let d: DeclareArg = arg(method, body)?;
                self.app.declare(&d.name, &d.collector)?;
            }
            "Add" => update(Op::Add)?,
            "Sub" => update(Op::Sub)?,
            "Set" => update(Op::Set)?,
            "Observe" => update(Op::Observe)?,
            "Unregister" => {
                let name: String = arg(method, body)?;
                self.app.unregister(&name)?;
            }
            other => return Err(format!("rpc: can't find method metrics.{other}")),
        }
        Ok(Bytes::from_static(b"true"))
    }
}

#[async_trait]
impl RpcService for MetricsRpc {
    async fn call(&self, method: &str, codec: u8, body: Bytes) -> Result<Bytes, String> {
        if codec & CODEC_JSON == 0 {
            return Err(format!(
                "codec 0x{codec:02x} is not supported by the metrics service; use JSON"
            ));
        }
        self.call_json(method, &body)
    }
}

/// The `metrics` plugin.
#[derive(Default)]
pub struct MetricsPlugin {
    address: String,
    app: Arc<AppMetrics>,
    directory: Option<Arc<PluginDirectory>>,
    server: Mutex<Option<http::HttpServer>>,
}

impl std::fmt::Debug for MetricsPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsPlugin")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl MetricsPlugin {
    /// The application's collectors.
    pub fn app(&self) -> Arc<AppMetrics> {
        Arc::clone(&self.app)
    }
}

#[async_trait]
impl Plugin for MetricsPlugin {
    fn name(&self) -> &'static str {
        "metrics"
    }

    fn weight(&self) -> u32 {
        1
    }

    fn requires(&self) -> Vec<ServiceKey> {
        vec![
            ServiceKey::of::<Arc<PluginDirectory>>(),
            ServiceKey::of::<Arc<dyn RpcRegistry>>(),
        ]
    }

    async fn init(&mut self, ctx: &mut InitContext<'_>) -> Result<Status, PluginError> {
        if !ctx.is_configured() {
            return Ok(Status::Disabled);
        }
        let config: MetricsConfig = ctx.section()?;
        self.address = if config.address.trim().is_empty() {
            DEFAULT_ADDRESS.to_owned()
        } else {
            config.address
        };
        for (name, spec) in &config.collect {
            self.app
                .declare(name, spec)
                .map_err(|e| PluginError::other(format!("`metrics.collect.{name}`: {e}")))?;
        }
        self.directory = Some(ctx.require::<Arc<PluginDirectory>>()?);
        if let Some(registry) = ctx.optional::<Arc<dyn RpcRegistry>>() {
            registry.register("metrics", Arc::new(MetricsRpc::new(Arc::clone(&self.app))));
        }
        Ok(Status::Enabled)
    }

    async fn serve(&self, _ctx: ServeContext) -> Result<(), PluginError> {
        let directory = self
            .directory
            .clone()
            .ok_or_else(|| PluginError::other("metrics served before init"))?;
        let listener = http::bind(&self.address, "metrics.address").await?;
        let local = listener
            .local_addr()
            .map_or_else(|_| String::new(), |a| a.to_string());
        let app = Arc::clone(&self.app);
        let handler: http::Handler = Arc::new(move |method, path, _query| {
            let reply = match (method.as_str(), path.as_str()) {
                ("GET" | "HEAD", "/metrics") => http::Reply {
                    status: 200,
                    content_type: exposition::CONTENT_TYPE,
                    body: render(&directory.all(), &app),
                },
                (_, "/metrics") => http::Reply::text(405, "method not allowed\n"),
                _ => http::Reply::not_found(),
            };
            Box::pin(async move { reply })
        });
        *self.server.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(http::HttpServer::start(listener, handler));
        tracing::info!(target: "metrics", address = %local, "metrics listening");
        rr_plugin::warn_if_exposed("metrics", "metrics.address", &local);
        Ok(())
    }

    async fn stop(&self) -> Result<(), PluginError> {
        let server = self.server.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(server) = server {
            server.stop().await;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
