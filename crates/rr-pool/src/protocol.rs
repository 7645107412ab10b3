//! The worker protocol on top of goridge frames: the PID handshake, payload
//! frames, worker replies and the stop command (RoadRunner `internal/protocol.go`).

use bytes::Bytes;
use rr_goridge::{flags, stream, Frame, FrameError};
use serde::Deserialize;
use thiserror::Error;

use crate::payload::Payload;
use crate::relay::Connection;

/// Context with which a worker asks to be stopped (PHP `$worker->stop()`).
const WORKER_STOP_CONTEXT: &[u8] = br#"{"stop":true}"#;

/// A reply that breaks the protocol; the worker is killed for it.
#[derive(Debug, Error)]
pub enum ProtocolError {
    /// The frame itself was bad (CRC, truncated, closed, IO).
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// A handshake reply without the CONTROL flag.
    #[error("unexpected response, header is missing, no CONTROL flag")]
    NotControl,
    /// A handshake reply whose JSON is not `{"pid": N}` with N > 0.
    #[error("invalid handshake reply {0:?}: pid should be greater than 0")]
    BadPid(String),
    /// A data reply without exactly one option (the context length).
    #[error("options length should be equal 1 (body offset), got {0}")]
    Options(usize),
    /// A context length beyond the payload.
    #[error("bad payload: context length {context} exceeds payload length {payload}")]
    ContextLength {
        /// The announced context length.
        context: u32,
        /// The payload length.
        payload: usize,
    },
    /// A streamed reply to a caller that does not consume streams (jobs,
    /// RPC-driven plugins): RoadRunner only lets the HTTP plugin stream.
    #[error("the worker sent a streamed reply, which this plugin does not accept")]
    Stream,
}

/// How a worker answered a payload.
#[derive(Debug)]
pub(crate) enum Reply {
    /// A normal response (the last frame of a stream, too).
    Response(Payload),
    /// A frame with the `STREAM` flag: more frames follow.
    Streamed(Payload),
    /// `$worker->error(...)`: the exec fails, the worker stays.
    SoftError(String),
    /// `$worker->stop()`: the worker leaves; the payload goes to another one.
    StopRequested,
}

#[derive(Deserialize)]
struct PidMessage {
    pid: i64,
}

/// Runs the PID handshake on a fresh relay and returns the PID the worker reported.
pub(crate) async fn handshake(connection: &mut Connection) -> Result<u32, ProtocolError> {
    let request = format!(r#"{{"pid":{}}}"#, std::process::id());
    connection
        .writer
        .write_parts(
            flags::CONTROL | flags::CODEC_JSON,
            0,
            &[],
            &[request.as_bytes()],
        )
        .await?;
    let reply = connection.reader.read_frame().await?;
    if !reply.is_control() {
        return Err(ProtocolError::NotControl);
    }
    let bad_pid = || ProtocolError::BadPid(String::from_utf8_lossy(&reply.payload).into_owned());
    let message: PidMessage = serde_json::from_slice(&reply.payload).map_err(|_| bad_pid())?;
    u32::try_from(message.pid)
        .ok()
        .filter(|pid| *pid > 0)
        .ok_or_else(bad_pid)
}

/// Sends one payload: one option (the context length), then context and body.
pub(crate) async fn send_payload(
    connection: &mut Connection,
    payload: &Payload,
) -> Result<(), ProtocolError> {
    let context_len = u32::try_from(payload.context.len())
        .map_err(|_| FrameError::PayloadTooLong(payload.context.len()))?;
    connection
        .writer
        .write_parts(
            payload.codec,
            0,
            &[context_len],
            &[&payload.context, &payload.body],
        )
        .await?;
    Ok(())
}

/// Asks a streaming worker to stop its stream: stream byte `STOP`, no
/// flags, no options, no payload (RoadRunner's `sendStopStream`).
pub(crate) async fn send_stream_stop(connection: &mut Connection) -> Result<(), ProtocolError> {
    connection
        .writer
        .write_parts(0, stream::STOP, &[], &[])
        .await?;
    Ok(())
}

/// Answers a streaming worker's `PING`: stream byte `PONG`, nothing else.
pub(crate) async fn send_pong(connection: &mut Connection) -> Result<(), ProtocolError> {
    connection
        .writer
        .write_parts(0, stream::PONG, &[], &[])
        .await?;
    Ok(())
}

/// Asks the worker to exit (`{"stop":true}` control frame).
pub(crate) async fn send_stop(connection: &mut Connection) -> Result<(), ProtocolError> {
    connection
        .writer
        .write_parts(
            flags::CONTROL | flags::CODEC_JSON,
            0,
            &[],
            &[WORKER_STOP_CONTEXT],
        )
        .await?;
    Ok(())
}

/// Classifies a worker's reply frame, in RoadRunner's order.
pub(crate) fn classify_reply(frame: Frame) -> Result<Reply, ProtocolError> {
    if frame.is_error() {
        return Ok(Reply::SoftError(
            String::from_utf8_lossy(&frame.payload).into_owned(),
        ));
    }
    if frame.options.len() != 1 {
        return Err(ProtocolError::Options(frame.options.len()));
    }
    let context_len = frame.options.as_slice()[0];
    if context_len as usize > frame.payload.len() {
        return Err(ProtocolError::ContextLength {
            context: context_len,
            payload: frame.payload.len(),
        });
    }
    let streamed = frame.stream & stream::STREAM != 0;
    let mut body: Bytes = frame.payload;
    let context = body.split_to(context_len as usize);
    if streamed {
        // Callers that do not stream turn this into `ProtocolError::Stream`.
        return Ok(Reply::Streamed(Payload {
            context,
            body,
            codec: frame.flags,
        }));
    }
    if body.is_empty() && context.as_ref() == WORKER_STOP_CONTEXT {
        return Ok(Reply::StopRequested);
    }
    Ok(Reply::Response(Payload {
        context,
        body,
        codec: frame.flags,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(flags: u8, options: &[u32], payload: &[u8]) -> Frame {
        Frame::new(flags, options, Bytes::copy_from_slice(payload)).expect("valid frame")
    }

    #[test]
    fn error_flag_wins_over_missing_options() {
        match classify_reply(reply(flags::ERROR, &[], b"boom")) {
            Ok(Reply::SoftError(message)) => assert_eq!(message, "boom"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn context_and_body_are_split_at_the_option() {
        match classify_reply(reply(0, &[4], b"{}{}OK")) {
            Ok(Reply::Response(payload)) => {
                assert_eq!(&payload.context[..], b"{}{}");
                assert_eq!(&payload.body[..], b"OK");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn worker_stop_is_recognised_only_with_an_empty_body() {
        assert!(matches!(
            classify_reply(reply(0, &[13], br#"{"stop":true}"#)),
            Ok(Reply::StopRequested)
        ));
        assert!(matches!(
            classify_reply(reply(0, &[13], br#"{"stop":true}x"#)),
            Ok(Reply::Response(_))
        ));
    }

    #[test]
    fn stream_flag_marks_a_frame_with_more_to_follow() {
        let mut frame = reply(0, &[2], b"{}chunk");
        frame.stream = stream::STREAM | stream::PING;
        match classify_reply(frame) {
            Ok(Reply::Streamed(payload)) => assert_eq!(&payload.body[..], b"chunk"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn malformed_replies_are_protocol_errors() {
        assert!(matches!(
            classify_reply(reply(0, &[], b"x")),
            Err(ProtocolError::Options(0))
        ));
        assert!(matches!(
            classify_reply(reply(0, &[9], b"x")),
            Err(ProtocolError::ContextLength {
                context: 9,
                payload: 1
            })
        ));
    }
}
