//! The rr plugin container.
//!
//! Every part of the server is a [`Plugin`]: it reads its own config section
//! in `init`, takes the services it needs from plugins initialised before it
//! ([`InitContext::require`]), offers its own ([`InitContext::provide`]), and
//! then serves, stops and resets. The [`Container`] orders plugins by these
//! dependencies (RoadRunner's endure does the same by reflection) and runs the
//! lifecycle. A plugin never reaches into another plugin: it only uses the
//! services, such as [`WorkerServer`] for worker pools.
#![forbid(unsafe_code)]

pub mod container;
pub mod error;
pub mod management;
pub mod plugin;
pub mod server;

pub use async_trait::async_trait;
pub use container::Container;
pub use error::{ContainerError, PluginError};
pub use management::{
    AtomicHistogram, Health, HistogramSample, Labels, MetricFamily, MetricKind, PluginDirectory,
    RpcRegistry, RpcService,
};
pub use plugin::{InitContext, Plugin, ServeContext, ServiceKey, SharedPlugin, Status};
pub use server::WorkerServer;
