//! What management plugins (rpc, status, metrics) see of the others.
//!
//! RoadRunner's informer, resetter, status and metrics plugins *collect*
//! every plugin that has workers, can reset, reports health or exposes
//! metrics. Here the container keeps a [`PluginDirectory`] of the enabled
//! plugins, always available as a service, and the [`Plugin`](crate::Plugin) trait has
//! optional hooks for health, readiness and metrics.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use bytes::Bytes;

use crate::plugin::SharedPlugin;

/// The enabled plugins, filled in as the container initialises them.
///
/// Take it in `init` with `ctx.require::<Arc<PluginDirectory>>()`; look
/// plugins up when a request comes, not in `init` (later plugins are not
/// there yet).
#[derive(Default)]
pub struct PluginDirectory {
    plugins: RwLock<Vec<SharedPlugin>>,
}

impl PluginDirectory {
    pub(crate) fn add(&self, plugin: SharedPlugin) {
        self.plugins
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(plugin);
    }

    /// Every enabled plugin, in serve order.
    pub fn all(&self) -> Vec<SharedPlugin> {
        self.plugins
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The enabled plugin named `name`.
    pub fn find(&self, name: &str) -> Option<SharedPlugin> {
        self.all().into_iter().find(|p| p.name() == name)
    }
}

impl std::fmt::Debug for PluginDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.all().iter().map(|p| p.name()).collect();
        f.debug_struct("PluginDirectory")
            .field("plugins", &names)
            .finish()
    }
}

/// A plugin's answer to a health or readiness probe (RoadRunner's `Status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Health {
    /// HTTP-like code: 200 when fine, 503 (or any other) when not.
    pub code: u16,
}

impl Health {
    /// Healthy / ready.
    pub const OK: Health = Health { code: 200 };
    /// Not healthy / not ready.
    pub const UNAVAILABLE: Health = Health { code: 503 };

    /// `OK` when `ok`, else `UNAVAILABLE`.
    pub fn from_bool(ok: bool) -> Health {
        if ok {
            Health::OK
        } else {
            Health::UNAVAILABLE
        }
    }
}

/// One metric family a plugin exposes, in Prometheus terms.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricFamily {
    /// Full metric name, e.g. `rr_ticker_ticks_total`.
    pub name: String,
    /// One-line description.
    pub help: String,
    /// Counter, gauge or histogram, with its samples.
    pub kind: MetricKind,
}

/// The samples of a metric family.
#[derive(Debug, Clone, PartialEq)]
pub enum MetricKind {
    /// Monotonic counters: (labels, value).
    Counter(Vec<(Labels, f64)>),
    /// Gauges: (labels, value).
    Gauge(Vec<(Labels, f64)>),
    /// Histograms: (labels, histogram).
    Histogram(Vec<(Labels, HistogramSample)>),
}

/// Label pairs of one sample.
pub type Labels = Vec<(String, String)>;

/// A histogram's state: cumulative counts per upper bound, sum and count.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HistogramSample {
    /// (upper bound, cumulative count), ascending; `+Inf` is implied by `count`.
    pub buckets: Vec<(f64, u64)>,
    /// Sum of all observations.
    pub sum: f64,
    /// Number of observations.
    pub count: u64,
}

/// A service callable over RPC: `<service>.<Method>` with a JSON body
/// (RoadRunner's PHP clients use JSON for informer, resetter and metrics).
#[async_trait]
pub trait RpcService: Send + Sync {
    /// Handles `method` (the part after the dot) with the request body
    /// encoded in `codec` (goridge codec flag); returns the response body
    /// in the same codec, or an error message.
    async fn call(&self, method: &str, codec: u8, body: Bytes) -> Result<Bytes, String>;
}

/// Where plugins register their RPC services; the `rpc` plugin provides it.
///
/// Take it with `ctx.optional::<Arc<dyn RpcRegistry>>()`: without an `rpc`
/// section there is none, and a plugin should work without it.
pub trait RpcRegistry: Send + Sync {
    /// Registers `service` under `name` (e.g. `metrics`).
    fn register(&self, name: &str, service: Arc<dyn RpcService>);
}

/// A histogram plugins can update from any thread without locks.
#[derive(Debug)]
pub struct AtomicHistogram {
    bounds: Vec<f64>,
    counts: Vec<AtomicU64>,
    /// Sum of observations in nanoseconds-of-a-unit (observations × 1e9).
    sum_nanos: AtomicU64,
    count: AtomicU64,
}

impl AtomicHistogram {
    /// A histogram with these ascending upper bounds (`+Inf` is implied).
    pub fn new(bounds: &[f64]) -> AtomicHistogram {
        AtomicHistogram {
            bounds: bounds.to_vec(),
            counts: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            sum_nanos: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    /// Records one observation (for durations: seconds).
    pub fn observe(&self, value: f64) {
        if let Some(bucket) = self.bounds.iter().position(|bound| value <= *bound) {
            self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        }
        self.sum_nanos
            .fetch_add((value.max(0.0) * 1e9) as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// The state now, with cumulative bucket counts.
    pub fn snapshot(&self) -> HistogramSample {
        let mut cumulative = 0;
        let buckets = self
            .bounds
            .iter()
            .zip(&self.counts)
            .map(|(bound, count)| {
                cumulative += count.load(Ordering::Relaxed);
                (*bound, cumulative)
            })
            .collect();
        HistogramSample {
            buckets,
            sum: self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9,
            count: self.count.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let histogram = AtomicHistogram::new(&[0.001, 0.01, 0.1]);
        for value in [0.0005, 0.002, 0.003, 0.5] {
            histogram.observe(value);
        }
        let sample = histogram.snapshot();
        assert_eq!(sample.buckets, vec![(0.001, 1), (0.01, 3), (0.1, 3)]);
        assert_eq!(sample.count, 4);
        assert!((sample.sum - 0.5055).abs() < 1e-6);
    }
}

/// Whether a listen address (`host:port`) stays on this machine: a loopback
/// IP or `localhost`. An empty host or `0.0.0.0` means every interface.
pub fn is_loopback_address(address: &str) -> bool {
    let host = address.rsplit_once(':').map_or(address, |(host, _)| host);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Warns when a management endpoint (RPC, status, metrics) listens beyond
/// loopback: they have no authentication, so whoever reaches the port can
/// use them (RPC can reset workers and read every schedule, job and key).
pub fn warn_if_exposed(plugin: &str, key: &str, address: &str) {
    if !is_loopback_address(address) {
        tracing::warn!(
            target: "rr",
            plugin,
            address,
            "`{key}` is reachable from other machines and has no authentication; bind it to 127.0.0.1 (the default) or firewall it"
        );
    }
}

#[cfg(test)]
mod exposure_tests {
    use super::is_loopback_address;

    #[test]
    fn only_loopback_addresses_count_as_local() {
        for local in [
            "127.0.0.1:6001",
            "localhost:2112",
            "[::1]:2114",
            "127.1.2.3:80",
        ] {
            assert!(is_loopback_address(local), "{local}");
        }
        for exposed in [
            "0.0.0.0:6001",
            ":6001",
            "10.0.0.5:2112",
            "[::]:2114",
            "example.com:80",
        ] {
            assert!(!is_loopback_address(exposed), "{exposed}");
        }
    }
}
