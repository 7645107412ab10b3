//! Streamed replies: a worker answers one payload with several frames, all
//! but the last carrying the goridge `STREAM` flag (RoadRunner >= 2023.3;
//! only the HTTP plugin consumes them).

use std::task::{Context, Poll};

use tokio::sync::mpsc;

use crate::error::ExecError;
use crate::payload::Payload;

/// Frames buffered between the worker and a slow reader. Small on purpose:
/// the worker should feel a slow client (it blocks on its pipe) rather
/// than the server holding a whole response in memory.
pub(crate) const STREAM_BUFFER: usize = 2;

/// The answer of [`Pool::exec_stream`](crate::Pool::exec_stream).
#[derive(Debug)]
pub struct Streamed {
    /// The first frame of the reply; the whole reply when `rest` is `None`.
    pub first: Payload,
    /// The frames after the first, when the first carried the `STREAM` flag.
    pub rest: Option<ReplyStream>,
}

/// The frames of a streamed reply after the first, in order, ending with
/// the worker's last frame (the one without `STREAM`).
///
/// The worker stays leased until its stream ends. Dropping this before the
/// end sends the worker a stream stop (`STOP`), and the pool drains the
/// frames the worker still sends until its final one, for at most
/// `stream_timeout`; a worker that does not end its stream in time is
/// killed and replaced.
#[derive(Debug)]
pub struct ReplyStream {
    pub(crate) pid: u32,
    pub(crate) frames: mpsc::Receiver<Result<Payload, ExecError>>,
}

impl ReplyStream {
    /// A stream fed by `frames` instead of a worker, for consumers' tests
    /// (the pool builds the real ones). `pid` is what [`ReplyStream::pid`] says.
    pub fn from_channel(pid: u32, frames: mpsc::Receiver<Result<Payload, ExecError>>) -> Self {
        ReplyStream { pid, frames }
    }

    /// The process id of the worker that streams.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The next frame; `None` after the last one. An error ends the stream
    /// (worker error, protocol error, `exec_ttl` between two frames).
    pub async fn next(&mut self) -> Option<Result<Payload, ExecError>> {
        self.frames.recv().await
    }

    /// [`ReplyStream::next`] for poll-based consumers (an HTTP body).
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Payload, ExecError>>> {
        self.frames.poll_recv(cx)
    }

    /// Stops the stream early: the same as dropping it, spelled out.
    pub fn stop(self) {}
}
