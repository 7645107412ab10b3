//! One PHP worker process: spawn, handshake, round trips, stop and kill.
//!
//! A task owns the OS process and reaps it; everything else talks to that
//! task through `WorkerShared`. So a worker that dies while idle is noticed
//! at once (not at its next exec), and a kill can never hit a reused PID.

use std::collections::VecDeque;
use std::hash::{BuildHasher, Hasher};
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rr_goridge::{FrameError, FrameReader, FrameWriter};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, watch, Notify};

use crate::error::PoolError;
use crate::payload::Payload;
use crate::protocol::{self, ProtocolError, Reply};
use crate::relay::{BoxRead, BoxWrite, Connection, SocketRelay};
use crate::status::WorkerStatus;

/// Stderr lines kept per worker for error messages about failed start-ups.
const STDERR_TAIL: usize = 5;

/// What to run for each worker of a pool.
#[derive(Debug, Clone, Default)]
pub struct WorkerCommand {
    /// Program and arguments; no shell is involved.
    pub argv: Vec<String>,
    /// Variables set on top of the server's own environment.
    pub env: Vec<(String, String)>,
    /// Working directory; the server's own when absent.
    pub cwd: Option<PathBuf>,
    /// User and group id to run as (`server.user`), when the server is root.
    pub user: Option<(u32, u32)>,
    /// Bound for start-up plus handshake when stricter than the pool's
    /// `allocate_timeout` (`server.relay_timeout`).
    pub start_timeout: Option<Duration>,
}

impl WorkerCommand {
    /// The command line as one string, for messages.
    pub fn display(&self) -> String {
        self.argv.join(" ")
    }
}

/// How workers of a pool are connected.
#[derive(Debug, Clone)]
pub enum Relay {
    /// Over each worker's STDIN/STDOUT.
    Pipes,
    /// Over a shared socket listener.
    Socket(Arc<SocketRelay>),
}

/// State of one worker that the pool, the supervisor and the process task share.
#[derive(Debug)]
pub(crate) struct WorkerShared {
    pub(crate) pid: u32,
    /// The lane whose runtime drives this worker's relay.
    pub(crate) lane: usize,
    pub(crate) created: SystemTime,
    pub(crate) generation: u64,
    status: AtomicU8,
    execs: AtomicU64,
    /// Milliseconds since the epoch of the last finished exec; 0 = never used.
    last_used_ms: AtomicU64,
    /// A limit the supervisor found exceeded (a [`WorkerStatus`] number); 0 = none.
    retire: AtomicU8,
    /// Whether the pool should start another worker when this one exits.
    replace_on_exit: AtomicBool,
    kill: Notify,
    exit: watch::Sender<Option<ExitStatus>>,
    stderr_tail: Mutex<VecDeque<String>>,
}

impl WorkerShared {
    pub(crate) fn status(&self) -> WorkerStatus {
        WorkerStatus::from_u8(self.status.load(Ordering::Acquire)).unwrap_or(WorkerStatus::Errored)
    }

    pub(crate) fn set_status(&self, status: WorkerStatus) {
        self.status.store(status as u8, Ordering::Release);
    }

    pub(crate) fn execs(&self) -> u64 {
        self.execs.load(Ordering::Relaxed)
    }

    pub(crate) fn last_used(&self) -> Option<SystemTime> {
        match self.last_used_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(UNIX_EPOCH + Duration::from_millis(ms)),
        }
    }

    /// Marks a limit as exceeded; the worker is recycled when next idle.
    pub(crate) fn retire(&self, reason: WorkerStatus) {
        let _ = self
            .retire
            .compare_exchange(0, reason as u8, Ordering::AcqRel, Ordering::Acquire);
    }

    pub(crate) fn retire_reason(&self) -> Option<WorkerStatus> {
        match self.retire.load(Ordering::Acquire) {
            0 => None,
            n => WorkerStatus::from_u8(n),
        }
    }

    pub(crate) fn set_replace_on_exit(&self, replace: bool) {
        self.replace_on_exit.store(replace, Ordering::Release);
    }

    pub(crate) fn replace_on_exit(&self) -> bool {
        self.replace_on_exit.load(Ordering::Acquire)
    }

    /// Asks the process task to SIGKILL the worker's process group.
    pub(crate) fn kill(&self) {
        self.kill.notify_one();
    }

    pub(crate) fn has_exited(&self) -> bool {
        self.exit.borrow().is_some()
    }

    pub(crate) fn exit_status(&self) -> Option<ExitStatus> {
        *self.exit.borrow()
    }

    /// Waits up to `timeout` for the process to exit.
    pub(crate) async fn wait_exit(&self, timeout: Duration) -> Option<ExitStatus> {
        let mut receiver = self.exit.subscribe();
        let waited = tokio::time::timeout(timeout, async {
            receiver
                .wait_for(Option::is_some)
                .await
                .ok()
                .and_then(|status| *status)
        });
        waited.await.ok().flatten()
    }

    fn push_stderr(&self, line: String) {
        let mut tail = self.stderr_tail.lock().unwrap_or_else(|p| p.into_inner());
        if tail.len() == STDERR_TAIL {
            tail.pop_front();
        }
        tail.push_back(line);
    }

    /// The last lines the worker wrote to stderr, for error messages.
    pub(crate) fn stderr_tail(&self) -> String {
        let tail = self.stderr_tail.lock().unwrap_or_else(|p| p.into_inner());
        tail.iter().cloned().collect::<Vec<_>>().join(" | ")
    }

    /// Resident memory of the process in bytes (Linux `/proc`), if readable.
    pub(crate) fn rss_bytes(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    }
}

/// A worker the pool holds: the process state plus its relay.
///
/// Dropping a worker in the middle of a round trip (the caller gave up, or
/// `exec_ttl` fired) kills the process: its relay is in an unknown state.
pub(crate) struct Worker {
    pub(crate) shared: Arc<WorkerShared>,
    connection: Connection,
    /// Executions after which the worker is recycled; 0 = never.
    max_execs: u64,
    in_round_trip: bool,
}

impl Drop for Worker {
    fn drop(&mut self) {
        if self.in_round_trip {
            self.shared.kill();
        }
    }
}

impl Worker {
    /// Sends `payload` and reads the reply.
    pub(crate) async fn round_trip(&mut self, payload: &Payload) -> Result<Reply, ProtocolError> {
        self.in_round_trip = true;
        self.shared.set_status(WorkerStatus::Working);
        protocol::send_payload(&mut self.connection, payload).await?;
        self.shared.execs.fetch_add(1, Ordering::Relaxed);
        let frame = self.connection.reader.read_frame().await?;
        let reply = protocol::classify_reply(frame)?;
        // A streamed first frame leaves the relay mid-reply: dropped now,
        // the worker must still be killed.
        if !matches!(reply, Reply::Streamed(_)) {
            self.finish_round_trip();
        }
        Ok(reply)
    }

    fn finish_round_trip(&mut self) {
        self.in_round_trip = false;
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_millis().max(1) as u64);
        self.shared.last_used_ms.store(now_ms, Ordering::Relaxed);
    }

    /// Reads the next frame of a streamed reply, or returns
    /// [`StreamRead::Interrupted`] as soon as `interrupt` resolves first.
    ///
    /// Giving up the read is safe: the frame reader only buffers bytes, so
    /// a frame half read stays buffered for the next call. A `PING` is
    /// answered with a `PONG` before the frame is returned (the official PHP
    /// worker pings every fifth streamed frame).
    pub(crate) async fn read_stream_frame(
        &mut self,
        interrupt: impl std::future::Future<Output = ()>,
    ) -> StreamRead {
        let frame = tokio::select! {
            biased;
            frame = self.connection.reader.read_frame() => frame,
            () = interrupt => return StreamRead::Interrupted,
        };
        let frame = match frame {
            Ok(frame) => frame,
            Err(e) => return StreamRead::Reply(Err(e.into())),
        };
        if frame.stream & rr_goridge::stream::PING != 0 {
            if let Err(e) = protocol::send_pong(&mut self.connection).await {
                return StreamRead::Reply(Err(e));
            }
        }
        let reply = protocol::classify_reply(frame);
        if matches!(
            reply,
            Ok(Reply::Response(_) | Reply::SoftError(_) | Reply::StopRequested)
        ) {
            self.finish_round_trip();
        }
        StreamRead::Reply(reply)
    }

    /// Tells a streaming worker to stop its stream; it answers with a
    /// frame without the `STREAM` flag, read by [`Worker::read_stream_frame`].
    pub(crate) async fn send_stream_stop(&mut self) -> Result<(), ProtocolError> {
        protocol::send_stream_stop(&mut self.connection).await
    }

    /// The lane whose runtime drives this worker.
    pub(crate) fn lane(&self) -> usize {
        self.shared.lane
    }

    /// True when the worker has executed its `max_jobs`.
    pub(crate) fn max_execs_reached(&self) -> bool {
        self.max_execs > 0 && self.shared.execs() >= self.max_execs
    }

    /// Stops the worker gracefully: the stop frame, then up to `timeout` for
    /// it to exit, then SIGKILL. `status` is what it is stopped as.
    pub(crate) async fn stop(mut self, status: WorkerStatus, timeout: Duration) {
        self.shared.set_status(status);
        let shared = Arc::clone(&self.shared);
        if protocol::send_stop(&mut self.connection).await.is_ok() {
            // Closing our side too lets a worker blocked in a read notice EOF.
            let _ = self.connection.writer.shutdown().await;
        }
        drop(self);
        if shared.wait_exit(timeout).await.is_none() {
            tracing::warn!(target: "server", pid = shared.pid, "worker doesn't respond on stop command, killing process");
            shared.kill();
            shared.wait_exit(Duration::from_secs(5)).await;
        }
    }
}

/// What [`Worker::read_stream_frame`] got.
pub(crate) enum StreamRead {
    /// The next frame, classified.
    Reply(Result<Reply, ProtocolError>),
    /// The interrupt fired before a frame arrived.
    Interrupted,
}

/// Starts workers for one pool.
#[derive(Debug, Clone)]
pub(crate) struct Spawner {
    pub(crate) command: WorkerCommand,
    pub(crate) relay: Relay,
    pub(crate) pool_name: Arc<str>,
    /// Bound for start-up plus handshake.
    pub(crate) handshake_timeout: Duration,
    pub(crate) max_jobs: u64,
    pub(crate) exits: mpsc::UnboundedSender<Arc<WorkerShared>>,
}

impl Spawner {
    /// Starts one worker and completes its handshake. Must run on `lane`'s
    /// runtime (or with no lanes installed): the relay is registered there.
    pub(crate) async fn spawn(&self, generation: u64, lane: usize) -> Result<Worker, PoolError> {
        let pipes = matches!(self.relay, Relay::Pipes);
        let argv = &self.command.argv;
        let program = argv.first().ok_or(PoolError::EmptyCommand)?;
        let mut command = Command::new(program);
        command
            .args(&argv[1..])
            .envs(self.command.env.iter().map(|(k, v)| (k, v)))
            .stdin(if pipes { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Own process group: a Ctrl+C on the terminal reaches rr only, and
            // rr decides how its workers stop.
            .process_group(0);
        if let Some(cwd) = &self.command.cwd {
            command.current_dir(cwd);
        }
        if let Some((uid, gid)) = self.command.user {
            command.uid(uid).gid(gid);
        }
        let mut child = command.spawn().map_err(|source| PoolError::Spawn {
            command: self.command.display(),
            source,
        })?;
        let pid = child.id().ok_or(PoolError::EmptyCommand)?;
        let shared = Arc::new(WorkerShared {
            pid,
            lane,
            created: SystemTime::now(),
            generation,
            status: AtomicU8::new(WorkerStatus::Inactive as u8),
            execs: AtomicU64::new(0),
            last_used_ms: AtomicU64::new(0),
            retire: AtomicU8::new(0),
            replace_on_exit: AtomicBool::new(false),
            kill: Notify::new(),
            exit: watch::channel(None).0,
            stderr_tail: Mutex::new(VecDeque::new()),
        });
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(forward_output(
                stderr,
                Arc::clone(&shared),
                Arc::clone(&self.pool_name),
            ));
        }
        let stdin = child.stdin.take();
        let mut stdout = child.stdout.take();
        if !pipes {
            // With a socket relay STDOUT is free text: log it like stderr.
            if let Some(output) = stdout.take() {
                tokio::spawn(forward_output(
                    output,
                    Arc::clone(&shared),
                    Arc::clone(&self.pool_name),
                ));
            }
        }
        tokio::spawn(own_process(child, Arc::clone(&shared), self.exits.clone()));

        let connected = tokio::time::timeout(self.handshake_timeout, async {
            let mut connection = match (&self.relay, stdin, stdout) {
                (Relay::Pipes, Some(stdin), Some(stdout)) => Connection {
                    reader: FrameReader::new(Box::new(stdout) as BoxRead),
                    writer: FrameWriter::new(Box::new(stdin) as BoxWrite),
                },
                (Relay::Socket(listener), _, _) => {
                    let mut exited = shared.exit.subscribe();
                    tokio::select! {
                        connection = listener.claim(pid) => connection.ok_or(PoolError::RelayDropped(pid))?,
                        _ = async { exited.wait_for(Option::is_some).await.is_ok() } => {
                            listener.forget(pid);
                            return Err(self.exited_early(&shared).await);
                        }
                    }
                }
                _ => return Err(PoolError::RelayDropped(pid)),
            };
            if pipes {
                match protocol::handshake(&mut connection).await {
                    Ok(_) => {}
                    Err(ProtocolError::Frame(FrameError::Closed | FrameError::Truncated { .. })) => {
                        return Err(self.exited_early(&shared).await)
                    }
                    // Writing the handshake to a worker that already exited.
                    Err(ProtocolError::Frame(FrameError::Io(e)))
                        if e.kind() == std::io::ErrorKind::BrokenPipe =>
                    {
                        return Err(self.exited_early(&shared).await)
                    }
                    Err(ProtocolError::Frame(FrameError::FileNotFound(message))) => {
                        return Err(PoolError::ScriptNotFound {
                            command: self.command.display(),
                            message,
                        })
                    }
                    Err(source) => {
                        return Err(PoolError::Handshake {
                            command: self.command.display(),
                            pid,
                            source,
                        })
                    }
                }
            }
            Ok(connection)
        })
        .await;

        let connection = match connected {
            Ok(Ok(connection)) => connection,
            Ok(Err(err)) => {
                shared.kill();
                // Reaped before the error is reported: the caller may end the
                // runtime (and with it the reaper task) right after.
                shared.wait_exit(Duration::from_secs(5)).await;
                return Err(err);
            }
            Err(_) => {
                shared.kill();
                if let Relay::Socket(listener) = &self.relay {
                    listener.forget(pid);
                }
                shared.wait_exit(Duration::from_secs(5)).await;
                return Err(PoolError::AllocateTimeout {
                    command: self.command.display(),
                    timeout: self.handshake_timeout,
                });
            }
        };
        shared.set_status(WorkerStatus::Ready);
        shared.set_replace_on_exit(true);
        tracing::debug!(target: "server", pid, pool = %self.pool_name, "worker is allocated");
        Ok(Worker {
            shared,
            connection,
            max_execs: jittered(self.max_jobs),
            in_round_trip: false,
        })
    }

    /// The error for a worker that exited before the handshake, with its exit
    /// status and last stderr lines.
    async fn exited_early(&self, shared: &WorkerShared) -> PoolError {
        let status = shared.wait_exit(Duration::from_secs(2)).await;
        PoolError::ExitedBeforeHandshake {
            command: self.command.display(),
            status: status.map_or_else(|| "unknown".to_owned(), |s| s.to_string()),
            stderr: shared.stderr_tail(),
        }
    }
}

/// `max_jobs` plus a random 0..14 % so workers of one pool do not all
/// restart together (RoadRunner's jitter).
fn jittered(max_jobs: u64) -> u64 {
    if max_jobs == 0 {
        return 0;
    }
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    max_jobs + max_jobs * (random % 15) / 100
}

/// Owns the OS process: waits for it to exit (or kills it on request), then
/// reports the exit to the pool.
async fn own_process(
    mut child: Child,
    shared: Arc<WorkerShared>,
    exits: mpsc::UnboundedSender<Arc<WorkerShared>>,
) {
    let status = tokio::select! {
        status = child.wait() => status,
        () = shared.kill.notified() => {
            let group = nix::unistd::Pid::from_raw(shared.pid as i32);
            if nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL).is_err() {
                let _ = child.start_kill();
            }
            child.wait().await
        }
    };
    let status = match status {
        Ok(status) => status,
        Err(err) => {
            tracing::error!(target: "server", pid = shared.pid, error = %err, "waiting for a worker process failed");
            return;
        }
    };
    // A deliberate stop keeps its reason (max_jobs, ttl, reset...); anything
    // else is an exit nobody asked for.
    if matches!(
        shared.status(),
        WorkerStatus::Inactive | WorkerStatus::Ready | WorkerStatus::Working
    ) {
        shared.set_status(WorkerStatus::Stopped);
    }
    shared.exit.send_replace(Some(status));
    let _ = exits.send(shared);
}

/// Logs every line a worker writes to stderr (or to stdout, with socket
/// relays), tagged with its PID.
async fn forward_output(output: impl AsyncRead + Unpin, shared: Arc<WorkerShared>, pool: Arc<str>) {
    let mut reader = BufReader::with_capacity(64 * 1024, output);
    let mut line = Vec::with_capacity(256);
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let text = String::from_utf8_lossy(&line);
                let text = text.trim_end_matches(['\n', '\r']);
                tracing::info!(target: "server", pid = shared.pid, pool = %pool, "{text}");
                shared.push_stderr(text.to_owned());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_jobs_jitter_stays_within_fifteen_percent() {
        assert_eq!(jittered(0), 0);
        for _ in 0..200 {
            let limit = jittered(100);
            assert!((100..=114).contains(&limit), "{limit}");
        }
    }
}
