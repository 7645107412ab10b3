//! The accept loop and one connection's request/reply loop.

use std::sync::Arc;

use bytes::Bytes;
use rr_goridge::{flags, Frame, FrameError, FrameReader, FrameWriter};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::task::JoinSet;

use crate::codec::{unsupported, Codec};
use crate::{ListenAddr, Registry, MAX_REQUEST_PAYLOAD};

/// RoadRunner's text for a request frame without `[seq, method_len]`.
pub(crate) const BAD_OPTIONS: &str = "should be 2 options. SEQ_ID and METHOD_LEN";

pub(crate) enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl Listener {
    pub(crate) async fn bind(addr: &ListenAddr) -> std::io::Result<Listener> {
        match addr {
            ListenAddr::Tcp(addr) => Ok(Listener::Tcp(TcpListener::bind(addr).await?)),
            ListenAddr::Unix(path) => {
                // A socket left by an earlier run is replaced (RoadRunner
                // does the same); any other file is not touched.
                use std::os::unix::fs::FileTypeExt;
                if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket()) {
                    std::fs::remove_file(path)?;
                }
                Ok(Listener::Unix(UnixListener::bind(path)?))
            }
        }
    }
}

/// Accepts connections until aborted; dropping it closes them all.
pub(crate) async fn accept_loop(listener: Listener, registry: Arc<Registry>) {
    let mut connections = JoinSet::new();
    loop {
        // Reap finished connection tasks so the set does not grow.
        while connections.try_join_next().is_some() {}
        let accepted = match &listener {
            Listener::Tcp(l) => l.accept().await.map(|(s, peer)| {
                let _ = s.set_nodelay(true);
                let (r, w) = s.into_split();
                connections.spawn(serve_connection(r, w, Arc::clone(&registry)));
                peer.to_string()
            }),
            Listener::Unix(l) => l.accept().await.map(|(s, _)| {
                let (r, w) = s.into_split();
                connections.spawn(serve_connection(r, w, Arc::clone(&registry)));
                "unix".to_owned()
            }),
        };
        match accepted {
            Ok(peer) => tracing::debug!(target: "rpc", %peer, "connection accepted"),
            Err(err) => {
                // EMFILE and friends: back off a little instead of spinning.
                tracing::warn!(target: "rpc", error = %err, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

/// Serves one connection: one request at a time, in order.
async fn serve_connection<R, W>(reader: R, writer: W, registry: Arc<Registry>)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut reader = FrameReader::with_max_payload(reader, MAX_REQUEST_PAYLOAD);
    let mut writer = FrameWriter::new(writer);
    loop {
        let frame = match reader.read_frame().await {
            Ok(frame) => frame,
            Err(FrameError::Closed) => return,
            // A client that went away between requests (a killed worker)
            // is not a protocol fault.
            Err(FrameError::Io(err))
                if matches!(
                    err.kind(),
                    std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
                ) =>
            {
                tracing::debug!(target: "rpc", error = %err, "RPC client went away");
                return;
            }
            Err(err) => {
                // The stream cannot be resynchronised after a bad header.
                tracing::warn!(target: "rpc", error = %err, "closing RPC connection after an unreadable frame");
                return;
            }
        };
        let reply = handle(&registry, frame).await;
        let result = writer
            .write_parts(
                reply.flags,
                0,
                &[reply.seq, reply.method.len() as u32],
                &[&reply.method, &reply.body],
            )
            .await;
        if let Err(err) = result {
            tracing::debug!(target: "rpc", error = %err, "cannot write an RPC reply");
            return;
        }
    }
}

/// A reply frame's parts.
pub(crate) struct Reply {
    pub(crate) flags: u8,
    pub(crate) seq: u32,
    pub(crate) method: Bytes,
    pub(crate) body: Bytes,
}

impl Reply {
    fn error(codec: Codec, seq: u32, method: Bytes, message: String) -> Reply {
        Reply {
            flags: codec.flag() | flags::ERROR,
            seq,
            method,
            body: Bytes::from(message),
        }
    }
}

/// Decodes one request, calls the service, and builds the reply.
pub(crate) async fn handle(registry: &Registry, frame: Frame) -> Reply {
    let codec = Codec::from_flags(frame.flags);
    let options = frame.options.as_slice();
    let [seq, method_len] = *options else {
        let seq = options.first().copied().unwrap_or(0);
        return Reply::error(codec, seq, Bytes::new(), BAD_OPTIONS.to_owned());
    };
    let method_len = method_len as usize;
    if method_len > frame.payload.len() {
        let message = format!(
            "method name length {method_len} exceeds the payload of {} bytes",
            frame.payload.len()
        );
        return Reply::error(codec, seq, Bytes::new(), message);
    }
    let method = frame.payload.slice(..method_len);
    let body = frame.payload.slice(method_len..);
    let name = String::from_utf8_lossy(&method).into_owned();
    let Some((service_name, method_name)) = name.rsplit_once('.') else {
        let message = format!("rpc: service/method request ill-formed: {name}");
        return Reply::error(codec, seq, method, message);
    };
    let Some(service) = registry.get(service_name) else {
        let message = format!("rpc: can't find service {name}");
        return Reply::error(codec, seq, method, message);
    };
    if codec == Codec::Gob {
        return Reply::error(codec, seq, method, unsupported(codec, service_name));
    }
    match service.call(method_name, codec.flag(), body).await {
        Ok(body) => Reply {
            flags: codec.flag(),
            seq,
            method,
            body,
        },
        Err(message) => Reply::error(codec, seq, method, message),
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::time::Duration;

    use rr_plugin::PluginDirectory;
    use serde_json::json;

    use super::*;
    use crate::{RpcClient, RpcClientError};

    /// A server with the built-in services (no plugins) on a free port.
    async fn start() -> (String, tokio::task::JoinHandle<()>) {
        let registry = Arc::new(Registry::default());
        let config = json!({"rpc": {"listen": "tcp://127.0.0.1:0"}});
        crate::services::register_builtin(
            registry.as_ref(),
            Arc::new(PluginDirectory::default()),
            config,
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let task = tokio::spawn(accept_loop(Listener::Tcp(listener), registry));
        (format!("tcp://{addr}"), task)
    }

    fn remote(result: Result<serde_json::Value, RpcClientError>) -> String {
        match result {
            Err(RpcClientError::Remote { message, .. }) => message,
            other => panic!("expected an error reply, got {other:?}"),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn builtin_services_answer_like_roadrunner() {
        let (dsn, task) = start().await;
        tokio::task::spawn_blocking(move || {
            let mut c = RpcClient::connect(&dsn, Duration::from_secs(5)).expect("connect");
            assert_eq!(
                c.call_json("rpc.Version", &true).expect("version"),
                json!(env!("CARGO_PKG_VERSION"))
            );
            assert_eq!(
                c.call_json("informer.List", &true).expect("list"),
                json!([])
            );
            assert_eq!(
                c.call_json("informer.Workers", &"nope").expect("workers"),
                json!({"workers": []})
            );
            assert_eq!(
                c.call_json("resetter.List", &true).expect("list"),
                json!([])
            );
            assert_eq!(
                remote(c.call_json("resetter.Reset", &"nope")),
                "no such plugin: nope"
            );
            assert_eq!(
                remote(c.call_json("informer.AddWorker", &"ticker")),
                "plugin ticker does not support workers management"
            );
            assert_eq!(
                remote(c.call_json("nope.Method", &true)),
                "rpc: can't find service nope.Method"
            );
            assert_eq!(
                remote(c.call_json("informer.Nope", &true)),
                "rpc: can't find method informer.Nope"
            );
            // rpc.Config is []byte: base64 in JSON, the bytes with raw.
            let config = c.call_json("rpc.Config", &true).expect("config");
            assert_eq!(
                config,
                json!(crate::codec::base64(
                    br#"{"rpc":{"listen":"tcp://127.0.0.1:0"}}"#
                ))
            );
            let raw = c
                .call_raw("rpc.Config", flags::CODEC_RAW, b"")
                .expect("raw config");
            assert_eq!(&raw[..], br#"{"rpc":{"listen":"tcp://127.0.0.1:0"}}"#);
            for (codec, text) in [
                (0u8, "gob codec is not supported; use JSON"),
                (flags::CODEC_GOB, "gob codec is not supported; use JSON"),
                (
                    flags::CODEC_PROTO,
                    "proto codec (0x80) is not supported by the informer service; use JSON",
                ),
                (
                    flags::CODEC_MSGPACK,
                    "msgpack codec (0x10) is not supported by the informer service; use JSON",
                ),
            ] {
                match c.call_raw("informer.List", codec, b"") {
                    Err(RpcClientError::Remote { message, .. }) => assert_eq!(message, text),
                    other => panic!("codec {codec:#x}: {other:?}"),
                }
            }
            // The connection still works after all those errors.
            assert_eq!(
                c.call_json("informer.List", &true).expect("list"),
                json!([])
            );
        })
        .await
        .expect("client thread");
        task.abort();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn garbage_closes_only_its_own_connection() {
        let (dsn, task) = start().await;
        tokio::task::spawn_blocking(move || {
            let addr = dsn.trim_start_matches("tcp://").to_owned();
            let timeout = Some(Duration::from_secs(5));
            let open = || {
                let s = std::net::TcpStream::connect(&addr).expect("connect");
                s.set_read_timeout(timeout).expect("timeout");
                s
            };
            // An idle connection must not block the others.
            let _idle = open();
            let mut header = [0u8; rr_goridge::frame::MAX_HEADER_LEN];
            // A valid header announcing 4 GiB, and one with a broken CRC.
            let n =
                rr_goridge::frame::encode_header(&mut header, 0x08, 0, &[1, 4], u32::MAX as usize)
                    .expect("header");
            let huge_frame = header[..n].to_vec();
            let mut bad_crc = huge_frame.clone();
            bad_crc[6] ^= 0xff;
            let garbage: Vec<u8> = (0..200u32).map(|i| (i * 37 % 251) as u8).collect();
            for bytes in [garbage, bad_crc, huge_frame] {
                let mut s = open();
                s.write_all(&bytes).expect("write");
                let mut rest = Vec::new();
                // The server closes the connection: EOF, no hang.
                let _ = s.read_to_end(&mut rest);
                let mut c = RpcClient::connect(&dsn, Duration::from_secs(5)).expect("connect");
                assert_eq!(
                    c.call_json("informer.List", &true).expect("list"),
                    json!([])
                );
            }
            // One option: an error reply, and the connection goes on.
            let mut s = open();
            let n =
                rr_goridge::frame::encode_header(&mut header, 0x08, 0, &[1], 4).expect("header");
            s.write_all(&header[..n]).expect("write");
            s.write_all(b"true").expect("write");
            let mut reply = [0u8; 12 + 8 + BAD_OPTIONS.len()];
            s.read_exact(&mut reply).expect("error reply");
            assert_eq!(reply[1], flags::CODEC_JSON | flags::ERROR);
            assert_eq!(&reply[20..], BAD_OPTIONS.as_bytes());
        })
        .await
        .expect("client thread");
        task.abort();
    }
}
