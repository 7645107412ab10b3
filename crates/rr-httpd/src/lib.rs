//! A small HTTP/1.1 server for the management plugins' GET endpoints
//! (hyper 1, one task per connection, graceful stop): status and metrics
//! share it.
#![forbid(unsafe_code)]

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use rr_plugin::PluginError;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How long a client may take to send its request head.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(60);
/// How long `stop` lets in-flight requests finish.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// A response: status, content type and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// HTTP status code.
    pub status: u16,
    /// `Content-Type` header.
    pub content_type: &'static str,
    /// The body.
    pub body: String,
}

impl Reply {
    /// A `text/plain` reply.
    pub fn text(status: u16, body: impl Into<String>) -> Reply {
        Reply {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into(),
        }
    }

    /// 404 for a path the server does not know.
    pub fn not_found() -> Reply {
        Reply::text(404, "404 page not found\n")
    }
}

/// What a request is reduced to: method, path and the raw query.
pub type Handler = Arc<
    dyn Fn(String, String, Option<String>) -> Pin<Box<dyn Future<Output = Reply> + Send>>
        + Send
        + Sync,
>;

/// A running server; [`HttpServer::stop`] ends it.
pub struct HttpServer {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for HttpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpServer").finish_non_exhaustive()
    }
}

/// Binds `address` (Go style: `:2112` means every interface); errors name `key`.
pub async fn bind(address: &str, key: &str) -> Result<TcpListener, PluginError> {
    let address = if address.starts_with(':') {
        format!("0.0.0.0{address}")
    } else {
        address.to_owned()
    };
    TcpListener::bind(&address)
        .await
        .map_err(|e| PluginError::other(format!("cannot listen on `{key}` = {address}: {e}")))
}

impl HttpServer {
    /// Serves `listener` with `handler` until stopped.
    pub fn start(listener: TcpListener, handler: Handler) -> HttpServer {
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(accept_loop(listener, handler, stopped));
        HttpServer { stop, task }
    }

    /// Stops accepting, lets in-flight requests finish (bounded), closes.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

async fn accept_loop(listener: TcpListener, handler: Handler, mut stopped: watch::Receiver<bool>) {
    let graceful = GracefulShutdown::new();
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stopped.changed() => break,
        };
        let handler = Arc::clone(&handler);
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            let handler = Arc::clone(&handler);
            async move {
                let method = request.method().as_str().to_owned();
                let path = request.uri().path().to_owned();
                let query = request.uri().query().map(str::to_owned);
                let reply = handler(method, path, query).await;
                Response::builder()
                    .status(reply.status)
                    .header("content-type", reply.content_type)
                    .body(Full::new(Bytes::from(reply.body)))
            }
        });
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            let _ = connection.await;
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await;
}

/// The values of query parameter `name`, percent-decoded, in order.
pub fn query_values(query: Option<&str>, name: &str) -> Vec<String> {
    query
        .unwrap_or_default()
        .split('&')
        .filter_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(key) == name).then(|| decode(value))
        })
        .collect()
}

fn decode(text: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16);
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(high), Some(low)) => {
                    out.push((high * 16 + low) as u8);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_repeated_and_decoded() {
        let q = Some("plugin=http&x=1&plugin=a%20b&plugin=c+d&plugin");
        assert_eq!(query_values(q, "plugin"), ["http", "a b", "c d", ""]);
        assert!(query_values(None, "plugin").is_empty());
        assert_eq!(query_values(Some("p=%zz%4"), "p"), ["%zz%4"]);
    }
}
