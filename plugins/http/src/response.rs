//! A worker's reply → the HTTP response (RoadRunner `handler/response.go`).

use bytes::Bytes;
use futures_util::TryStreamExt;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use rr_pool::{ExecError, Payload, ReplyStream};
use serde::Deserialize;

use crate::proto;

/// A response body: bytes in memory or a streamed file.
pub type Body = UnsyncBoxBody<Bytes, std::io::Error>;

/// The response type every layer of the server produces.
pub type HttpResponse = Response<Body>;

/// A body of bytes in memory (with an exact size).
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// The first `len` bytes of `file` from its current position, streamed in
/// 64 KiB chunks.
pub fn file_body(file: tokio::fs::File, len: u64) -> Body {
    use tokio::io::AsyncReadExt;
    let stream = tokio_util::io::ReaderStream::with_capacity(file.take(len), 64 * 1024);
    StreamBody::new(stream.map_ok(Frame::data)).boxed_unsync()
}

/// Goridge codec flag for JSON payloads.
pub const CODEC_JSON: u8 = 0x08;

/// A plain response with a status and a body.
pub fn plain(status: u16, body: impl Into<Bytes>) -> HttpResponse {
    let mut response = Response::new(full(body));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    response
}

/// Go's `http.Error`: text/plain, the message and a newline.
pub fn text_error(status: u16, message: &str) -> HttpResponse {
    let mut response = plain(status, format!("{message}\n"));
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response.headers_mut().insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// The answer to a failed exec: `internal_error_code` with an empty body,
/// or the error text when the pool runs in debug mode.
pub fn exec_error(error: &ExecError, code: u16, debug: bool) -> HttpResponse {
    if debug {
        plain(code, format!("{error}\n"))
    } else {
        plain(code, Bytes::new())
    }
}

/// The legacy (RR <= 2023.3) JSON reply context.
#[derive(Deserialize)]
struct JsonReply {
    #[serde(default)]
    status: i64,
    #[serde(default)]
    headers: Option<std::collections::BTreeMap<String, Vec<String>>>,
}

fn decode_context(reply: &Payload) -> Result<proto::Response, String> {
    let json_codec =
        reply.codec & CODEC_JSON != 0 && reply.codec & crate::request::CODEC_PROTO == 0;
    let from_json = |context: &[u8]| {
        serde_json::from_slice::<JsonReply>(context)
            .map(|j| proto::Response {
                status: j.status,
                headers: j
                    .headers
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, v.into_iter().map(String::into_bytes).collect()))
                    .collect(),
            })
            .map_err(|e| format!("invalid JSON response context: {e}"))
    };
    if json_codec {
        return from_json(&reply.context);
    }
    match proto::Response::decode(&reply.context) {
        Ok(response) => Ok(response),
        // A legacy PHP package that does not set the JSON codec bit.
        Err(_) if reply.context.first() == Some(&b'{') => from_json(&reply.context),
        Err(e) => Err(format!("invalid protobuf response context: {e}")),
    }
}

/// What the context of one reply frame asks for.
enum Head {
    /// A final status with its headers.
    Final(proto::Response),
    /// A frame that produces no response of its own: 101, or a 1xx
    /// (103 Early Hints) that hyper cannot send (see [`from_reply`]).
    Skipped,
    /// The frame cannot be answered as asked; send this instead.
    Refused(HttpResponse),
}

/// Reads the status and headers of one reply frame.
fn decode_head(reply: &Payload) -> Head {
    if reply.context.is_empty() {
        return Head::Final(proto::Response {
            status: 200,
            headers: Vec::new(),
        });
    }
    let decoded = match decode_context(reply) {
        Ok(decoded) => decoded,
        Err(e) => {
            tracing::error!(target: "http", error = %e, "worker reply cannot be decoded");
            return Head::Refused(plain(500, Bytes::new()));
        }
    };
    if !(100..=599).contains(&decoded.status) {
        return Head::Refused(text_error(
            500,
            &format!("unknown status code from worker: {}", decoded.status),
        ));
    }
    let status = decoded.status;
    if status == 101 {
        tracing::error!(target: "http", "101 Switching Protocols is not supported, the frame was ignored");
        return Head::Skipped;
    }
    if status < 200 {
        // hyper 1 has no way for a server handler to send an informational
        // response before the final one, so the hint is dropped and, as in
        // RoadRunner v6, its headers do not leak into the final response.
        if !reply.body.is_empty() {
            tracing::warn!(target: "http", status, "body of an informational response from the worker dropped");
        }
        tracing::debug!(target: "http", status, "informational response from the worker dropped (not supported by the HTTP server)");
        return Head::Skipped;
    }
    Head::Final(decoded)
}

/// Builds the response for a worker's reply; `head` for a HEAD request.
///
/// The worker's `Content-Length` is kept only when it matches the body (or,
/// for HEAD, when the body is empty): hyper trusts the header over the body,
/// so a wrong one would desynchronise a keep-alive connection.
/// `Transfer-Encoding` is dropped: the body's framing is the server's job.
/// A lone 1xx or 101 reply gives an empty 200.
pub fn from_reply(reply: Payload, head: bool) -> HttpResponse {
    match decode_head(&reply) {
        Head::Final(decoded) => {
            let body_len = reply.body.len();
            let mut response = plain(decoded.status as u16, reply.body);
            add_headers(&mut response, decoded.headers, Some(body_len), head);
            response
        }
        Head::Skipped => plain(200, Bytes::new()),
        Head::Refused(response) => response,
    }
}

/// Builds the response for a streamed reply: `first` and the frames of
/// `rest`, whose bodies are sent to the client as they arrive (chunked on
/// HTTP/1.1, DATA frames on HTTP/2).
///
/// As in RoadRunner, the first frame with a final status decides status and
/// headers; the status and headers that later frames repeat are ignored.
/// Leading 1xx frames are skipped (hyper cannot send them; see
/// [`from_reply`]). If the stream fails before a final status, the answer
/// is `error_code` with an empty body; once the head is out, a failure
/// aborts the body (HTTP/1.1 closes the connection without the last chunk,
/// HTTP/2 resets the stream), so the client sees an incomplete response.
/// `keep` lives as long as the body (the request's uploads: the worker may
/// read them until its last frame). Dropping the body (the client went away)
/// drops `rest`, which makes the pool stop the worker's stream.
pub async fn from_stream<K: Send + 'static>(
    first: Payload,
    mut rest: ReplyStream,
    error_code: u16,
    keep: K,
) -> HttpResponse {
    let mut frame = first;
    let decoded = loop {
        match decode_head(&frame) {
            Head::Final(decoded) => break decoded,
            Head::Refused(response) => return response,
            Head::Skipped => {}
        }
        match rest.next().await {
            Some(Ok(next)) => frame = next,
            Some(Err(e)) => {
                tracing::error!(target: "http", error = %e, "streamed reply failed before its status");
                return plain(error_code, Bytes::new());
            }
            None => {
                tracing::error!(target: "http", "streamed reply ended without a final status");
                return plain(error_code, Bytes::new());
            }
        }
    };
    let first_chunk = frame.body;
    let chunks = futures_util::stream::unfold(
        (Some(first_chunk), rest, keep),
        |(mut pending, mut rest, keep)| async move {
            loop {
                // Empty chunks are skipped: an empty DATA write means nothing
                // and the stop acknowledgement of a worker is one.
                if let Some(chunk) = pending.take().filter(|c| !c.is_empty()) {
                    return Some((Ok(Frame::data(chunk)), (None, rest, keep)));
                }
                match rest.next().await? {
                    Ok(next) => pending = Some(next.body),
                    Err(e) => {
                        tracing::error!(target: "http", error = %e, "streamed reply failed; the response is cut short");
                        return Some((Err(std::io::Error::other(e)), (None, rest, keep)));
                    }
                }
            }
        },
    );
    let mut response = Response::new(StreamBody::new(chunks).boxed_unsync());
    *response.status_mut() = StatusCode::from_u16(decoded.status as u16).unwrap_or(StatusCode::OK);
    // The length of a stream is unknown: any Content-Length is dropped.
    add_headers(&mut response, decoded.headers, None, false);
    response
}

/// Adds a worker's headers; `body_len` is the length of a body in memory
/// (`None` for a stream, whose `Content-Length` is always dropped).
fn add_headers(
    response: &mut HttpResponse,
    worker_headers: proto::HeaderMap,
    body_len: Option<usize>,
    head: bool,
) {
    let headers = response.headers_mut();
    for (name, values) in worker_headers {
        // Trailers and HTTP/2 push are not supported: `Trailer` is dropped
        // and the headers it names are sent as ordinary headers.
        if name == "Trailer"
            || name == "Http2-Push"
            || name.eq_ignore_ascii_case("transfer-encoding")
        {
            continue;
        }
        if name.eq_ignore_ascii_case("content-length") {
            let declared = values
                .last()
                .and_then(|v| std::str::from_utf8(v).ok())
                .and_then(|v| v.trim().parse::<usize>().ok());
            match (declared, body_len) {
                (Some(len), Some(body_len)) if len == body_len || (head && body_len == 0) => {
                    headers.insert(hyper::header::CONTENT_LENGTH, len.into());
                }
                _ => {
                    tracing::debug!(target: "http", "worker Content-Length does not match the body, dropped");
                }
            }
            continue;
        }
        let Ok(header) = HeaderName::from_bytes(name.as_bytes()) else {
            tracing::warn!(target: "http", header = %name, "invalid header name from the worker dropped");
            continue;
        };
        for value in values {
            match HeaderValue::from_bytes(&value) {
                Ok(value) => {
                    headers.append(header.clone(), value);
                }
                Err(_) => {
                    tracing::warn!(target: "http", header = %name, "invalid header value from the worker dropped");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(context: Vec<u8>, body: &str, codec: u8) -> Payload {
        Payload {
            context: context.into(),
            body: Bytes::copy_from_slice(body.as_bytes()),
            codec,
        }
    }

    async fn body(response: HttpResponse) -> Bytes {
        response
            .into_body()
            .collect()
            .await
            .expect("full body")
            .to_bytes()
    }

    #[tokio::test]
    async fn proto_reply_with_multi_value_headers() {
        let context = proto::Response {
            status: 201,
            headers: vec![("Set-Cookie".into(), vec![b"a=1".to_vec(), b"b=2".to_vec()])],
        }
        .encode();
        let response = from_reply(reply(context, "made", 0x80), false);
        assert_eq!(response.status(), 201);
        let cookies: Vec<_> = response.headers().get_all("set-cookie").iter().collect();
        assert_eq!(cookies, ["a=1", "b=2"]);
        assert_eq!(body(response).await, "made");
    }

    #[tokio::test]
    async fn legacy_json_reply_is_accepted() {
        let context = br#"{"status":404,"headers":{"X-A":["1"]}}"#.to_vec();
        for codec in [CODEC_JSON, 0] {
            let response = from_reply(reply(context.clone(), "nf", codec), false);
            assert_eq!(response.status(), 404);
            assert_eq!(response.headers()["x-a"], "1");
        }
    }

    #[tokio::test]
    async fn bad_status_and_empty_context() {
        let context = proto::Response {
            status: 700,
            headers: vec![],
        }
        .encode();
        let response = from_reply(reply(context, "", 0x80), false);
        assert_eq!(response.status(), 500);
        assert_eq!(
            body(response).await,
            "unknown status code from worker: 700\n"
        );
        let response = from_reply(reply(Vec::new(), "plain", 0), false);
        assert_eq!(response.status(), 200);
        assert_eq!(body(response).await, "plain");
    }

    #[tokio::test]
    async fn content_length_must_match_the_body() {
        let context = |len: &str| {
            proto::Response {
                status: 200,
                headers: vec![
                    ("Content-Length".into(), vec![len.as_bytes().to_vec()]),
                    ("Transfer-Encoding".into(), vec![b"chunked".to_vec()]),
                ],
            }
            .encode()
        };
        let wrong = from_reply(reply(context("5"), "hello world", 0x80), false);
        assert!(wrong.headers().get("content-length").is_none());
        assert!(wrong.headers().get("transfer-encoding").is_none());
        let right = from_reply(reply(context("11"), "hello world", 0x80), false);
        assert_eq!(right.headers()["content-length"], "11");
        let head = from_reply(reply(context("42"), "", 0x80), true);
        assert_eq!(head.headers()["content-length"], "42");
        let head_with_body = from_reply(reply(context("42"), "abc", 0x80), true);
        assert!(head_with_body.headers().get("content-length").is_none());
    }

    #[tokio::test]
    async fn informational_replies_do_not_leak_headers() {
        let context = proto::Response {
            status: 103,
            headers: vec![("Link".into(), vec![b"</a.css>".to_vec()])],
        }
        .encode();
        let response = from_reply(reply(context, "ignored", 0x80), false);
        assert_eq!(response.status(), 200);
        assert!(response.headers().get("link").is_none());
        assert_eq!(body(response).await, "");
    }

    fn streamed(
        frames: Vec<Result<Payload, ExecError>>,
    ) -> (ReplyStream, tokio::task::JoinHandle<()>) {
        let (sender, receiver) = tokio::sync::mpsc::channel(1);
        let feeding = tokio::spawn(async move {
            for frame in frames {
                if sender.send(frame).await.is_err() {
                    return;
                }
            }
        });
        (ReplyStream::from_channel(1, receiver), feeding)
    }

    fn head(status: i64, headers: Vec<(&str, &str)>) -> Vec<u8> {
        proto::Response {
            status,
            headers: headers
                .into_iter()
                .map(|(k, v)| (k.to_owned(), vec![v.as_bytes().to_vec()]))
                .collect(),
        }
        .encode()
    }

    #[tokio::test]
    async fn a_stream_skips_hints_takes_the_first_final_head_and_every_body() {
        let first = reply(head(103, vec![("Link", "</a.css>")]), "", 0x80);
        let (rest, _feeding) = streamed(vec![
            Ok(reply(
                head(201, vec![("X-A", "1"), ("Content-Length", "3")]),
                "one ",
                0x80,
            )),
            Ok(reply(head(500, vec![("X-B", "2")]), "", 0x80)),
            Ok(reply(head(500, vec![("X-B", "2")]), "two", 0x80)),
        ]);
        let response = from_stream(first, rest, 500, ()).await;
        assert_eq!(response.status(), 201);
        assert_eq!(response.headers()["x-a"], "1");
        assert!(response.headers().get("link").is_none());
        assert!(response.headers().get("x-b").is_none());
        assert!(response.headers().get("content-length").is_none());
        assert_eq!(body(response).await, "one two");
    }

    #[tokio::test]
    async fn a_stream_failing_before_its_status_gives_the_error_code() {
        let first = reply(head(103, vec![]), "", 0x80);
        let (rest, _feeding) = streamed(vec![Err(ExecError::Worker {
            pid: 1,
            message: "boom".into(),
        })]);
        let response = from_stream(first, rest, 502, ()).await;
        assert_eq!(response.status(), 502);
        assert_eq!(body(response).await, "");
    }

    #[tokio::test]
    async fn a_stream_failing_after_its_head_fails_the_body() {
        let first = reply(head(200, vec![]), "partial", 0x80);
        let (rest, _feeding) = streamed(vec![Err(ExecError::Worker {
            pid: 1,
            message: "boom".into(),
        })]);
        let response = from_stream(first, rest, 500, ()).await;
        assert_eq!(response.status(), 200);
        let mut body = response.into_body();
        let chunk = body.frame().await.expect("a frame").expect("data");
        assert_eq!(chunk.into_data().expect("data"), "partial");
        assert!(body.frame().await.expect("a frame").is_err());
    }

    #[tokio::test]
    async fn exec_errors_hide_their_text_unless_debug() {
        let error = ExecError::Worker {
            pid: 1,
            message: "boom".into(),
        };
        let quiet = exec_error(&error, 500, false);
        assert_eq!(quiet.status(), 500);
        assert_eq!(body(quiet).await, "");
        let loud = exec_error(&error, 503, true);
        assert_eq!(loud.status(), 503);
        assert!(String::from_utf8_lossy(&body(loud).await).contains("boom"));
    }
}
