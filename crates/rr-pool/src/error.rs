//! Errors of pools and of single executions.

use std::time::Duration;

use thiserror::Error;

use crate::protocol::ProtocolError;

/// Why a pool or a worker could not be started, reset or stopped.
#[derive(Debug, Error)]
pub enum PoolError {
    /// No program to run.
    #[error("command should not be empty")]
    EmptyCommand,
    /// `num_workers` above RoadRunner's limit.
    #[error("number of workers can't be more than 500, got {0}")]
    TooManyWorkers(u64),
    /// The OS could not start the program.
    #[error("failed to start worker `{command}`: {source}")]
    Spawn {
        /// The command line.
        command: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// PHP could not open the worker script.
    #[error("worker `{command}` could not start: {message}")]
    ScriptNotFound {
        /// The command line.
        command: String,
        /// PHP's own message.
        message: String,
    },
    /// The process exited before it answered the handshake.
    #[error("worker `{command}` exited before the handshake ({status}){}", stderr_suffix(.stderr))]
    ExitedBeforeHandshake {
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// Its last stderr lines.
        stderr: String,
    },
    /// The handshake reply broke the protocol.
    #[error("worker `{command}` (pid {pid}) failed the handshake: {source}")]
    Handshake {
        /// The command line.
        command: String,
        /// The process id.
        pid: u32,
        /// What was wrong.
        #[source]
        source: ProtocolError,
    },
    /// Start-up plus handshake took longer than allowed.
    #[error("failed to spawn a worker, possible reasons: https://docs.roadrunner.dev/error-codes/allocate-timeout (worker `{command}` did not answer the handshake within {timeout:?})")]
    AllocateTimeout {
        /// The command line.
        command: String,
        /// The bound that passed.
        timeout: Duration,
    },
    /// The socket relay gave up on the worker's connection.
    #[error("the socket relay dropped the connection of worker pid {0}")]
    RelayDropped(u32),
    /// The pool was destroyed.
    #[error("pool is stopped")]
    Stopped,
    /// Debug pools start a worker per exec; there is no set to grow or shrink.
    #[error("a debug pool has no workers to add or remove")]
    DebugPool,
}

fn stderr_suffix(stderr: &str) -> String {
    if stderr.is_empty() {
        String::new()
    } else {
        format!("; its last output: {stderr}")
    }
}

/// Why one execution failed. Only this execution fails; the pool goes on.
#[derive(Debug, Error)]
pub enum ExecError {
    /// Both context and body were empty.
    #[error("payload can not be empty")]
    EmptyPayload,
    /// `max_queue_size` callers were already inside the pool.
    #[error("max queue size reached")]
    QueueFull,
    /// No worker became free within `allocate_timeout`.
    #[error("no free workers in the pool, wait timeout exceeded ({0:?})")]
    NoFreeWorkers(Duration),
    /// The pool is being destroyed.
    #[error("pool is stopped")]
    Stopped,
    /// The worker answered with `$worker->error(...)`; it keeps serving.
    #[error("worker pid {pid} replied with an error: {message}")]
    Worker {
        /// The worker's process id.
        pid: u32,
        /// The worker's message.
        message: String,
    },
    /// The exec ran past `supervisor.exec_ttl`; the worker was killed.
    #[error("worker pid {pid} was killed: execution took longer than exec_ttl ({ttl:?})")]
    ExecTtl {
        /// The worker's process id.
        pid: u32,
        /// The bound that passed.
        ttl: Duration,
    },
    /// The worker broke the protocol or died mid-exec; it was killed and replaced.
    #[error("worker pid {pid} failed: {source}")]
    Protocol {
        /// The worker's process id.
        pid: u32,
        /// What went wrong.
        #[source]
        source: ProtocolError,
    },
    /// The worker sent `$worker->stop()` in the middle of a streamed reply;
    /// it leaves, and the part already streamed cannot be taken back.
    #[error("worker pid {pid} asked to stop in the middle of a streamed reply")]
    StopInStream {
        /// The worker's process id.
        pid: u32,
    },
    /// Worker after worker asked to stop instead of answering this payload.
    #[error("{0} workers in a row asked to stop instead of answering this payload; giving up")]
    StopLoop(u32),
    /// A debug-mode pool could not start the worker for this exec.
    #[error(transparent)]
    Spawn(#[from] PoolError),
}
