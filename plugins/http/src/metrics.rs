//! Request metrics (RoadRunner's `http_metrics` names) and the plugin's
//! worker gauges.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rr_plugin::{AtomicHistogram, MetricFamily, MetricKind};
use rr_pool::{WorkerInfo, WorkerStatus};

/// Prometheus' default buckets, which RoadRunner's histogram uses.
const BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Counters updated by the request path.
#[derive(Debug, Default)]
pub struct HttpMetrics {
    by_status: Mutex<BTreeMap<u16, (u64, Arc<AtomicHistogram>)>>,
    in_flight: AtomicI64,
    no_free_workers: AtomicU64,
}

/// Decrements the in-flight gauge when the request ends, however it ends.
#[derive(Debug)]
pub struct InFlight<'a>(&'a HttpMetrics);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl HttpMetrics {
    /// Counts a request as in flight until the guard drops.
    pub fn enter(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self)
    }

    /// Records a finished request.
    pub fn observe(&self, status: u16, seconds: f64) {
        let histogram = {
            let mut map = self.by_status.lock().unwrap_or_else(|p| p.into_inner());
            let entry = map
                .entry(status)
                .or_insert_with(|| (0, Arc::new(AtomicHistogram::new(BUCKETS))));
            entry.0 += 1;
            Arc::clone(&entry.1)
        };
        histogram.observe(seconds);
    }

    /// Counts an exec that found no free worker.
    pub fn no_free_worker(&self) {
        self.no_free_workers.fetch_add(1, Ordering::Relaxed);
    }

    /// Requests answered so far with `status`.
    pub fn requests(&self, status: u16) -> u64 {
        self.by_status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&status)
            .map_or(0, |e| e.0)
    }

    /// The families for the metrics plugin.
    pub fn families(&self, workers: Option<&[WorkerInfo]>) -> Vec<MetricFamily> {
        let map = self.by_status.lock().unwrap_or_else(|p| p.into_inner());
        let label = |s: &u16| vec![("status".to_owned(), s.to_string())];
        let gauge = |name: &str, help: &str, value: f64| MetricFamily {
            name: name.to_owned(),
            help: help.to_owned(),
            kind: MetricKind::Gauge(vec![(Vec::new(), value)]),
        };
        let mut families = vec![
            MetricFamily {
                name: "rr_http_request_total".to_owned(),
                help: "Total number of handled http requests after server restart.".to_owned(),
                kind: MetricKind::Counter(
                    map.iter().map(|(s, e)| (label(s), e.0 as f64)).collect(),
                ),
            },
            MetricFamily {
                name: "rr_http_request_duration_seconds".to_owned(),
                help: "HTTP request duration.".to_owned(),
                kind: MetricKind::Histogram(
                    map.iter()
                        .map(|(s, e)| (label(s), e.1.snapshot()))
                        .collect(),
                ),
            },
            gauge(
                "rr_http_requests_queue",
                "Total number of queued requests.",
                self.in_flight.load(Ordering::Relaxed) as f64,
            ),
            MetricFamily {
                name: "rr_http_no_free_workers_total".to_owned(),
                help: "Total number of NoFreeWorkers occurrences.".to_owned(),
                kind: MetricKind::Counter(vec![(
                    Vec::new(),
                    self.no_free_workers.load(Ordering::Relaxed) as f64,
                )]),
            },
        ];
        if let Some(workers) = workers {
            let count = |s: WorkerStatus| workers.iter().filter(|w| w.status == s).count() as f64;
            families.extend([
                gauge(
                    "rr_http_total_workers",
                    "Total number of workers used by the HTTP plugin",
                    workers.len() as f64,
                ),
                gauge(
                    "rr_http_workers_memory_bytes",
                    "Memory usage by HTTP workers.",
                    workers.iter().map(|w| w.memory_bytes as f64).sum(),
                ),
                gauge(
                    "rr_http_workers_ready",
                    "HTTP workers currently in ready state",
                    count(WorkerStatus::Ready),
                ),
                gauge(
                    "rr_http_workers_working",
                    "HTTP workers currently in working state",
                    count(WorkerStatus::Working),
                ),
                gauge(
                    "rr_http_workers_invalid",
                    "HTTP workers currently in invalid,killing,destroyed,errored,inactive states",
                    workers.len() as f64
                        - count(WorkerStatus::Ready)
                        - count(WorkerStatus::Working),
                ),
            ]);
        }
        families
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_by_status() {
        let m = HttpMetrics::default();
        {
            let _guard = m.enter();
            m.observe(200, 0.01);
        }
        m.observe(200, 0.02);
        m.observe(500, 0.5);
        assert_eq!(m.requests(200), 2);
        let families = m.families(Some(&[]));
        let total = families
            .iter()
            .find(|f| f.name == "rr_http_request_total")
            .expect("family");
        assert_eq!(
            total.kind,
            MetricKind::Counter(vec![
                (vec![("status".into(), "200".into())], 2.0),
                (vec![("status".into(), "500".into())], 1.0)
            ])
        );
        assert!(families.iter().any(|f| f.name == "rr_http_total_workers"));
        let queue = families
            .iter()
            .find(|f| f.name == "rr_http_requests_queue")
            .expect("queue");
        assert_eq!(queue.kind, MetricKind::Gauge(vec![(vec![], 0.0)]));
    }
}
