//! The rr plugin container.
//!
//! Every part of the server is a [`Plugin`]: it reads its own config section
//! in `init`, takes the services it needs from plugins initialised before it
//! ([`InitContext::require`]), offers its own ([`InitContext::provide`]), and
//! then serves, stops and resets. The [`Container`] orders plugins by these
//! dependencies (RoadRunner's endure does the same by reflection) and runs the
//! lifecycle. A plugin never reaches into another plugin: it only uses the
//! services, such as [`WorkerServer`] for worker pools.
//!
//! # What a plugin can use
//!
//! | need | how |
//! |---|---|
//! | its config section | [`InitContext::is_configured`], [`InitContext::section`] (errors name the key path) |
//! | the whole configuration | [`InitContext::config`] |
//! | PHP workers | `ctx.require::<Arc<dyn WorkerServer>>()`, then [`WorkerServer::new_pool`] with `RR_MODE=<name>` |
//! | logging | the `tracing` macros with `target: "<plugin name>"`: the `logs` plugin formats them, and `logs.channels.<name>.level` sets their level |
//! | RPC methods for PHP | `ctx.optional::<Arc<dyn RpcRegistry>>()`, then [`RpcRegistry::register`] |
//! | metrics | [`Plugin::metrics`] (and [`Plugin::workers`] for pool gauges); [`AtomicHistogram`] for histograms |
//! | health and readiness probes | [`Plugin::health`], [`Plugin::ready`] |
//! | `rr reset`, `rr workers`, add/remove workers | [`Plugin::reset`], [`Plugin::workers`], [`Plugin::add_worker`], [`Plugin::remove_worker`] |
//! | other plugins (management) | `ctx.require::<Arc<PluginDirectory>>()` |
//! | jobs pipelines' state (status `/jobs`) | the jobs plugin provides `Arc<dyn JobsReporter>`; read it with `ctx.optional` |
//! | a fatal error after start-up | [`ServeContext::fail`] stops the server |
//!
//! Built-in plugins (`plugins/*`) use exactly this API. A complete
//! out-of-tree example is `examples/plugins/heartbeat`, and
//! `docs/custom-plugin.md` walks through writing and building one.
#![forbid(unsafe_code)]

pub mod container;
pub mod error;
pub mod jobs_report;
pub mod management;
pub mod plugin;
pub mod pool_hooks;
pub mod server;

pub use async_trait::async_trait;
pub use container::Container;
pub use error::{ContainerError, PluginError};
pub use jobs_report::{JobsReporter, PipelineState};
pub use management::{is_loopback_address, warn_if_exposed};
pub use management::{
    AtomicHistogram, Health, HistogramSample, Labels, MetricFamily, MetricKind, PluginDirectory,
    RpcRegistry, RpcService,
};
pub use plugin::{InitContext, Plugin, ServeContext, ServiceKey, SharedPlugin, Status};
pub use server::WorkerServer;
