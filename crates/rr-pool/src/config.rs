//! The `<plugin>.pool` section, with RoadRunner's keys and defaults.

use std::time::Duration;

use rr_config::duration::{non_negative, option_non_negative};
use rr_config::StringOrList;
use serde::Deserialize;

/// Most workers one pool may have (RoadRunner's limit).
pub const MAX_WORKERS: u64 = 500;

/// How long a worker gets to exit after the stop frame when it is recycled
/// (RoadRunner hard-codes 10 s).
pub const RECYCLE_STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Settings of one worker pool (`http.pool`, `ticker.pool`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct PoolConfig {
    /// Every exec spawns a fresh worker and stops it afterwards (for
    /// development: code changes apply without a reset).
    pub debug: bool,
    /// Overrides `server.command` for this pool.
    pub command: Option<StringOrList>,
    /// Number of workers; 0 means one per CPU.
    pub num_workers: u64,
    /// Executions after which a worker is recycled; 0 means never. Each worker
    /// gets up to 14 % more so that they do not all restart together.
    pub max_jobs: u64,
    /// Most callers inside `exec` at once (executing or waiting); 0 means no limit.
    pub max_queue_size: u64,
    /// Bound for spawning a worker (start-up plus handshake) and for waiting
    /// for a free one.
    #[serde(deserialize_with = "non_negative")]
    pub allocate_timeout: Duration,
    /// Bound for a reset to wait for busy workers.
    #[serde(deserialize_with = "non_negative")]
    pub reset_timeout: Duration,
    /// Bound for a destroy (shutdown) to wait for busy workers and for each
    /// worker to exit after the stop frame.
    #[serde(deserialize_with = "non_negative")]
    pub destroy_timeout: Duration,
    /// Bound for a worker to end a streamed reply after the server asked it
    /// to stop (the client went away); past it the worker is killed. 0 means
    /// the default, as in RoadRunner.
    #[serde(deserialize_with = "non_negative")]
    pub stream_timeout: Duration,
    /// Limits checked periodically; absent means no supervision.
    pub supervisor: Option<SupervisorConfig>,
    /// How the workers are placed on the lanes. Not a YAML key: the plugin
    /// that owns the pool picks it for its kind of load.
    #[serde(skip)]
    pub lanes: LanePlacement,
}

/// How a pool places its workers on the [lanes](crate::lanes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LanePlacement {
    /// Workers share the lanes installed for the cores, worker *i* on lane
    /// *i mod cores*. A lane with several busy workers handles their
    /// replies in one wake-up: the most round trips per second (8 workers
    /// on 2 cores: about 1.0× the limit harness against 0.85–0.93 with a
    /// lane per worker).
    #[default]
    PerCore,
    /// Every worker gets a lane of its own, so more threads share the
    /// callers. When the callers are many network connections (HTTP), a
    /// preempted lane then stalls fewer of them: p99 under 32 connections on
    /// 4 workers was 1.3–2.0 ms against 3.1–3.4 ms with lanes per core.
    PerWorker,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            debug: false,
            command: None,
            num_workers: 0,
            max_jobs: 0,
            max_queue_size: 0,
            allocate_timeout: Duration::from_secs(60),
            reset_timeout: Duration::from_secs(60),
            destroy_timeout: Duration::from_secs(60),
            stream_timeout: Duration::from_secs(60),
            supervisor: None,
            lanes: LanePlacement::PerCore,
        }
    }
}

impl PoolConfig {
    /// `stream_timeout`, with 0 read as the 60 s default.
    pub fn effective_stream_timeout(&self) -> Duration {
        if self.stream_timeout.is_zero() {
            Duration::from_secs(60)
        } else {
            self.stream_timeout
        }
    }

    /// The number of workers to start: `num_workers`, or the CPU count when it is 0.
    pub fn effective_num_workers(&self) -> u64 {
        if self.num_workers == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get() as u64)
        } else {
            self.num_workers
        }
    }
}

/// The `pool.supervisor` section.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct SupervisorConfig {
    /// How often the limits are checked.
    #[serde(deserialize_with = "non_negative")]
    pub watch_tick: Duration,
    /// Longest a worker may live; recycled when idle after that.
    #[serde(default, deserialize_with = "option_non_negative")]
    pub ttl: Option<Duration>,
    /// Longest a worker that has served at least once may stay idle.
    #[serde(default, deserialize_with = "option_non_negative")]
    pub idle_ttl: Option<Duration>,
    /// Resident memory limit in MiB; a worker above it is recycled when idle.
    pub max_worker_memory: u64,
    /// Longest one exec may run; the worker is killed past it.
    #[serde(default, deserialize_with = "option_non_negative")]
    pub exec_ttl: Option<Duration>,
}

impl Default for SupervisorConfig {
    fn default() -> Self {
        SupervisorConfig {
            watch_tick: Duration::from_secs(5),
            ttl: None,
            idle_ttl: None,
            max_worker_memory: 0,
            exec_ttl: None,
        }
    }
}

impl SupervisorConfig {
    /// `exec_ttl` when set and non-zero.
    pub fn exec_ttl(&self) -> Option<Duration> {
        self.exec_ttl.filter(|d| !d.is_zero())
    }
}
