//! What each measurement produces; the report renders these.

/// Throughput and latency of one side of one cell.
#[derive(Debug, Clone, Default)]
pub struct Throughput {
    /// Round trips per second over the measured window.
    pub ops_per_sec: f64,
    /// Median round-trip latency, microseconds.
    pub p50_us: f64,
    /// 99th percentile round-trip latency, microseconds.
    pub p99_us: f64,
    /// Round trips measured.
    pub samples: usize,
}

/// One exec cell: a worker count and a payload size, our pool against the limit harness.
#[derive(Debug, Clone)]
pub struct ExecCell {
    /// PHP workers (and concurrent callers).
    pub workers: usize,
    /// Body bytes sent and echoed back.
    pub payload: usize,
    /// The limit harness: one thread per worker, blocking pipe IO, no pool.
    pub limit: Throughput,
    /// Our pool (`rr_pool::Pool::exec`) on the tokio runtime.
    pub pool: Throughput,
}

impl ExecCell {
    /// Pool throughput as a fraction of the limit's.
    pub fn ratio(&self) -> f64 {
        if self.limit.ops_per_sec > 0.0 {
            self.pool.ops_per_sec / self.limit.ops_per_sec
        } else {
            0.0
        }
    }
}

/// Start-up of one server binary.
#[derive(Debug, Clone)]
pub struct Startup {
    /// `rr` or `RoadRunner`.
    pub server: String,
    /// From spawning `serve` to the first completed tick (ms); None when the
    /// server has no ticker.
    pub first_tick_ms: Option<f64>,
    /// From spawning `serve` to 64 workers ready (ms).
    pub ready_64_ms: f64,
}

/// Resident memory of one server binary.
#[derive(Debug, Clone)]
pub struct Memory {
    /// `rr` or `RoadRunner`.
    pub server: String,
    /// The server process idle with 2 workers (ticker at 1s for rr), KiB.
    pub idle_kib: u64,
    /// The server process under load with 8 workers, KiB.
    pub load_kib: u64,
    /// One PHP worker process, KiB.
    pub per_worker_kib: u64,
}

/// Ticker lateness at a short interval.
#[derive(Debug, Clone)]
pub struct Lateness {
    /// Interval between ticks, ms.
    pub interval_ms: u64,
    /// Measured window, s.
    pub seconds: u64,
    /// Ticks measured.
    pub samples: usize,
    /// Median lateness, µs.
    pub p50_us: f64,
    /// 99th percentile lateness, µs.
    pub p99_us: f64,
    /// Worst lateness, µs.
    pub max_us: f64,
    /// Every lateness sample in tick order, µs (for the plot).
    pub series_us: Vec<u64>,
    /// Planned ticks that were skipped.
    pub skipped: u64,
}

/// One server on one HTTP endpoint under wrk.
#[derive(Debug, Clone, Default)]
pub struct HttpCell {
    /// `rr`, `nginx + php-fpm` or `RoadRunner`.
    pub server: String,
    /// The path requested.
    pub endpoint: &'static str,
    /// Requests per second over the window.
    pub requests_per_sec: f64,
    /// Median latency, ms.
    pub p50_ms: f64,
    /// 99th percentile latency, ms.
    pub p99_ms: f64,
    /// Non-2xx/3xx answers and socket errors.
    pub errors: u64,
    /// Requests per second of every round, in the order they ran (the
    /// figures above are medians over them).
    pub rounds: Vec<f64>,
}

/// A named schedule's lateness over a long run, and its trend.
#[derive(Debug, Clone)]
pub struct Drift {
    /// The schedule's period, ms.
    pub every_ms: u64,
    /// Measured window, s.
    pub seconds: u64,
    /// Runs measured.
    pub runs: usize,
    /// Every planned time is exactly `first + k * every`.
    pub on_grid: bool,
    /// Median lateness, µs.
    pub p50_us: f64,
    /// 99th percentile lateness, µs.
    pub p99_us: f64,
    /// Worst lateness, µs.
    pub max_us: f64,
    /// Least-squares trend of lateness over the run, µs per minute.
    pub slope_us_per_min: f64,
}

/// Jobs end to end through one path: rr on a driver, or a broker client alone.
#[derive(Debug, Clone)]
pub struct JobsCell {
    /// `memory` or `amqp`.
    pub driver: String,
    /// `rr` or `lapin alone`.
    pub through: String,
    /// Jobs pushed and acked.
    pub jobs: usize,
    /// From the first push to the last ack, s.
    pub seconds: f64,
    /// `jobs / seconds`.
    pub jobs_per_sec: f64,
}

impl JobsCell {
    /// A cell for `jobs` done in `elapsed`.
    pub fn new(driver: &str, through: &str, jobs: usize, elapsed: std::time::Duration) -> JobsCell {
        let seconds = elapsed.as_secs_f64();
        JobsCell {
            driver: driver.to_owned(),
            through: through.to_owned(),
            jobs,
            seconds,
            jobs_per_sec: if seconds > 0.0 {
                jobs as f64 / seconds
            } else {
                0.0
            },
        }
    }
}

/// Everything one bench run measured.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Exec cells, in run order.
    pub exec: Vec<ExecCell>,
    /// Start-up per server.
    pub startup: Vec<Startup>,
    /// Memory per server.
    pub memory: Vec<Memory>,
    /// Ticker lateness (rr only).
    pub lateness: Option<Lateness>,
    /// Schedule drift (rr only).
    pub drift: Option<Drift>,
    /// HTTP side by side.
    pub http: Vec<HttpCell>,
    /// Jobs end to end: rr per driver, and the raw broker client.
    pub jobs: Vec<JobsCell>,
    /// Why a RoadRunner column is missing, when it is.
    pub roadrunner_note: Option<String>,
    /// Free text about the machine and the run (cores, load, duration).
    pub environment: String,
}

/// The p-th percentile (0..=100) of unsorted samples.
pub fn percentile(samples: &mut [u64], p: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    samples.sort_unstable();
    let rank = ((p / 100.0) * (samples.len() - 1) as f64).round() as usize;
    samples[rank.min(samples.len() - 1)] as f64
}
