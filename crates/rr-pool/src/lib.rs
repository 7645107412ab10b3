//! PHP worker processes and the static worker pool.
//!
//! A [`Pool`] starts `num_workers` processes of one [`WorkerCommand`], runs
//! the PID handshake over their [`Relay`], and executes [`Payload`]s on them
//! one at a time per worker, with RoadRunner's limits: `max_jobs`,
//! `allocate_timeout`, `max_queue_size`, and the supervisor's `ttl`,
//! `idle_ttl`, `max_worker_memory` and `exec_ttl`. [`Pool::exec_stream`]
//! also takes streamed replies, bounded by `stream_timeout` once stopped.
#![forbid(unsafe_code)]

pub mod config;
pub mod error;
pub mod lanes;
pub mod payload;
pub mod pool;
pub mod protocol;
pub mod relay;
pub mod status;
pub mod stream;
pub mod worker;

pub use config::{LanePlacement, PoolConfig, SupervisorConfig};
pub use error::{ExecError, PoolError};
pub use lanes::{current_lane, Lanes};
pub use payload::Payload;
pub use pool::{Pool, WorkerInfo};
pub use relay::{RelayAddress, RelayAddressError, SocketRelay};
pub use status::WorkerStatus;
pub use stream::{ReplyStream, Streamed};
pub use worker::{Relay, WorkerCommand};
