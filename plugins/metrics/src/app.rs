//! The application's own collectors: declared in `metrics.collect` or over
//! RPC (`metrics.Declare`), updated over RPC. Semantics and error texts are
//! those of RoadRunner's metrics plugin (Prometheus client_golang).

use std::collections::BTreeMap;
use std::sync::Mutex;

use rr_plugin::{HistogramSample, Labels};
use serde::Deserialize;

use crate::exposition::{valid_label_name, valid_metric_name, Exposition};

/// Prometheus' default histogram buckets (`prometheus.DefBuckets`).
pub const DEFAULT_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A collector's declaration (`metrics.collect.<name>` or the `collector`
/// of `metrics.Declare`).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct CollectorSpec {
    /// Prefix of the full name.
    #[serde(alias = "Namespace")]
    pub namespace: String,
    /// Middle part of the full name.
    #[serde(alias = "Subsystem")]
    pub subsystem: String,
    /// `counter`, `gauge`, `histogram` or `summary`.
    #[serde(rename = "type", alias = "Type")]
    pub kind: String,
    /// Description.
    #[serde(alias = "Help")]
    pub help: String,
    /// Label names; the collector is a vector when there are any.
    #[serde(alias = "Labels")]
    pub labels: Vec<String>,
    /// Histogram upper bounds (default: Prometheus' default buckets).
    #[serde(alias = "Buckets")]
    pub buckets: Vec<f64>,
    /// Summary quantile objectives: accepted, not computed (the summary
    /// exposes `_sum` and `_count` only).
    #[serde(alias = "Objectives")]
    pub objectives: BTreeMap<String, f64>,
}

/// The kinds of collectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Monotonic.
    Counter,
    /// Up and down.
    Gauge,
    /// Buckets, sum, count.
    Histogram,
    /// Sum and count.
    Summary,
}

impl Kind {
    fn parse(text: &str) -> Option<Kind> {
        match text {
            "counter" => Some(Kind::Counter),
            "gauge" => Some(Kind::Gauge),
            "histogram" => Some(Kind::Histogram),
            "summary" => Some(Kind::Summary),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
            Kind::Summary => "summary",
        }
    }
}

#[derive(Debug, Clone, Default)]
struct Series {
    value: f64,
    /// Per-bucket (not cumulative) counts, histograms only.
    buckets: Vec<u64>,
    sum: f64,
    count: u64,
}

#[derive(Debug)]
struct Collector {
    full_name: String,
    help: String,
    kind: Kind,
    labels: Vec<String>,
    buckets: Vec<f64>,
    series: BTreeMap<Vec<String>, Series>,
}

impl Collector {
    fn new_series(&self) -> Series {
        Series {
            buckets: vec![0; self.buckets.len()],
            ..Series::default()
        }
    }

    /// The series for `values`, created on first use (vectors) — RoadRunner's
    /// label checks and messages.
    fn series(&mut self, name: &str, values: &[String]) -> Result<&mut Series, String> {
        let key = if self.labels.is_empty() {
            Vec::new()
        } else {
            if values.is_empty() {
                return Err(format!("required labels for collector {name}"));
            }
            if values.len() != self.labels.len() {
                return Err(format!(
                    "inconsistent label cardinality: expected {} label values but got {} in {values:?}",
                    self.labels.len(),
                    values.len()
                ));
            }
            values.to_vec()
        };
        let fresh = self.new_series();
        Ok(self.series.entry(key).or_insert(fresh))
    }
}

/// One update (`metrics.Add`, `Sub`, `Set`, `Observe`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Counters and gauges.
    Add,
    /// Gauges.
    Sub,
    /// Gauges.
    Set,
    /// Histograms and summaries.
    Observe,
}

impl Op {
    fn as_str(self) -> &'static str {
        match self {
            Op::Add => "Add",
            Op::Sub => "Sub",
            Op::Set => "Set",
            Op::Observe => "Observe",
        }
    }
}

/// The application's collectors, by the name they were declared with.
#[derive(Debug, Default)]
pub struct AppMetrics {
    collectors: Mutex<BTreeMap<String, Collector>>,
}

impl AppMetrics {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Collector>> {
        self.collectors.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Declares collector `name`; errors for an existing name, an unknown
    /// type, or invalid names or buckets.
    pub fn declare(&self, name: &str, spec: &CollectorSpec) -> Result<(), String> {
        let kind = Kind::parse(&spec.kind)
            .ok_or_else(|| format!("unknown collector type {}", spec.kind))?;
        let full_name = [spec.namespace.as_str(), spec.subsystem.as_str(), name]
            .iter()
            .filter(|part| !part.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join("_");
        if name.is_empty() || !valid_metric_name(&full_name) {
            return Err(format!("\"{full_name}\" is not a valid metric name"));
        }
        for label in &spec.labels {
            if !valid_label_name(label)
                || (label == "le" && kind == Kind::Histogram)
                || (label == "quantile" && kind == Kind::Summary)
            {
                return Err(format!(
                    "\"{label}\" is not a valid label name for metric \"{full_name}\""
                ));
            }
        }
        let mut buckets = Vec::new();
        if kind == Kind::Histogram {
            buckets = if spec.buckets.is_empty() {
                DEFAULT_BUCKETS.to_vec()
            } else {
                spec.buckets.clone()
            };
            if buckets.last() == Some(&f64::INFINITY) {
                buckets.pop();
            }
            if buckets.iter().any(|b| b.is_nan())
                || buckets.windows(2).any(|pair| pair[0] >= pair[1])
            {
                return Err(format!(
                    "histogram buckets must be in increasing order: {:?}",
                    spec.buckets
                ));
            }
        }
        let mut collectors = self.lock();
        if collectors.contains_key(name) {
            return Err(format!(
                "tried to register existing collector with the name `{name}`"
            ));
        }
        if collectors.values().any(|c| c.full_name == full_name) {
            return Err(format!(
                "duplicate metrics collector registration attempted: {full_name}"
            ));
        }
        let mut collector = Collector {
            full_name,
            help: spec.help.clone(),
            kind,
            labels: spec.labels.clone(),
            buckets,
            series: BTreeMap::new(),
        };
        if collector.labels.is_empty() {
            // A plain (non-vector) collector is exposed at 0 right away.
            let fresh = collector.new_series();
            collector.series.insert(Vec::new(), fresh);
        }
        collectors.insert(name.to_owned(), collector);
        Ok(())
    }

    /// Applies `op` with `value` to collector `name`.
    pub fn update(&self, op: Op, name: &str, value: f64, labels: &[String]) -> Result<(), String> {
        let mut collectors = self.lock();
        let collector = collectors.get_mut(name).ok_or_else(|| match op {
            Op::Add => {
                format!("undefined collector {name}, try first Declare the desired collector")
            }
            _ => format!("undefined collector {name}"),
        })?;
        let supported = matches!(
            (op, collector.kind),
            (Op::Add, Kind::Counter | Kind::Gauge)
                | (Op::Sub | Op::Set, Kind::Gauge)
                | (Op::Observe, Kind::Histogram | Kind::Summary)
        );
        if !supported {
            return Err(format!(
                "collector `{name}` does not support method `{}`",
                op.as_str()
            ));
        }
        if op == Op::Add && collector.kind == Kind::Counter && value < 0.0 {
            return Err("counter cannot decrease in value".to_owned());
        }
        let bounds = collector.buckets.clone();
        let series = collector.series(name, labels)?;
        match op {
            Op::Add => series.value += value,
            Op::Sub => series.value -= value,
            Op::Set => series.value = value,
            Op::Observe => {
                if let Some(i) = bounds.iter().position(|bound| value <= *bound) {
                    series.buckets[i] += 1;
                }
                series.sum += value;
                series.count += 1;
            }
        }
        Ok(())
    }

    /// Removes collector `name`.
    pub fn unregister(&self, name: &str) -> Result<(), String> {
        self.lock()
            .remove(name)
            .map(drop)
            .ok_or_else(|| format!("undefined collector {name}"))
    }

    /// Writes every collector into `out`.
    pub fn expose(&self, out: &mut Exposition) {
        let collectors = self.lock();
        let mut sorted: Vec<&Collector> = collectors.values().collect();
        sorted.sort_by(|a, b| a.full_name.cmp(&b.full_name));
        for collector in sorted {
            let name = &collector.full_name;
            if !out.family(name, &collector.help, collector.kind.as_str()) {
                continue;
            }
            for (values, series) in &collector.series {
                let labels: Labels = collector
                    .labels
                    .iter()
                    .cloned()
                    .zip(values.iter().cloned())
                    .collect();
                match collector.kind {
                    Kind::Counter | Kind::Gauge => out.sample(name, &labels, series.value),
                    Kind::Histogram => {
                        let mut cumulative = 0;
                        let buckets = collector
                            .buckets
                            .iter()
                            .zip(&series.buckets)
                            .map(|(bound, count)| {
                                cumulative += count;
                                (*bound, cumulative)
                            })
                            .collect();
                        let sample = HistogramSample {
                            buckets,
                            sum: series.sum,
                            count: series.count,
                        };
                        out.histogram_sample(name, &labels, &sample);
                    }
                    Kind::Summary => {
                        out.sample(&format!("{name}_sum"), &labels, series.sum);
                        out.sample(&format!("{name}_count"), &labels, series.count as f64);
                    }
                }
            }
        }
    }
}
