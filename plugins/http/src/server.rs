//! The request path (middleware chain → PHP) and the listeners: plain
//! HTTP/1.1 (+ h2c prior knowledge), HTTPS with HTTP/2 via ALPN, and the
//! HTTP → HTTPS redirect.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::FutureExt;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, LOCATION};
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use rr_pool::{ExecError, Pool, Streamed};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::config::{HeadersConfig, Settings};
use crate::metrics::HttpMetrics;
use crate::middleware::{self, BoxResponse, Middleware};
use crate::request::{self, ConnInfo, RequestError, RequestInfo};
use crate::response::{self, plain, text_error, HttpResponse};
use crate::static_files::{self, StaticFiles};

/// RoadRunner's read/write/read-header timeouts are 5 minutes.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(300);
/// The most request-header bytes a client may send, on HTTP/1 and HTTP/2
/// alike: Go's `http.DefaultMaxHeaderBytes` (1 MiB) plus the 4 KiB slack its
/// server adds, which is what RoadRunner enforces. More gets 431 (HTTP/1)
/// or a refused stream (HTTP/2) before any worker sees the request.
pub const MAX_HEADER_BYTES: usize = (1 << 20) + 4096;
/// Bound for a TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long `stop` lets in-flight requests finish.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything a request needs: settings, the pool, the middleware chain.
pub struct App {
    settings: Settings,
    pool: Pool,
    chain: Vec<Middleware>,
    static_files: Option<StaticFiles>,
    headers: HeadersConfig,
    metrics: Arc<HttpMetrics>,
}

impl App {
    /// Builds the request path.
    pub fn new(
        settings: Settings,
        pool: Pool,
        static_files: Option<StaticFiles>,
        metrics: Arc<HttpMetrics>,
    ) -> App {
        let mut chain = middleware::chain(&settings.raw.middleware);
        // Middlewares whose section is missing (or, for proxy_ip_parser,
        // without trusted subnets) do nothing, as in RoadRunner.
        chain.retain(|m| match m {
            Middleware::Static => static_files.is_some(),
            Middleware::ProxyIp => !settings.trusted_subnets.is_empty(),
            _ => true,
        });
        let headers = settings.raw.headers.clone().unwrap_or_default();
        App {
            settings,
            pool,
            chain,
            static_files,
            headers,
            metrics,
        }
    }

    /// Serves one request that came on `conn`: metrics around the chain.
    pub async fn serve(self: Arc<Self>, req: Request<Incoming>, conn: ConnInfo) -> HttpResponse {
        let start = Instant::now();
        let metrics = Arc::clone(&self.metrics);
        let _in_flight = metrics.enter();
        let response = if head_too_large(&req) {
            header_fields_too_large()
        } else {
            Arc::clone(&self).layer(req, 0, conn).await
        };
        metrics.observe(response.status().as_u16(), start.elapsed().as_secs_f64());
        response
    }

    // The connection's facts travel as an argument, not in the request's
    // extensions: inserting one allocates a map for every request.
    fn layer(self: Arc<Self>, req: Request<Incoming>, index: usize, conn: ConnInfo) -> BoxResponse {
        Box::pin(async move {
            let Some(middleware) = self.chain.get(index) else {
                return self.php(req, &conn).await;
            };
            let peer = conn.peer.ip();
            let next = {
                let app = Arc::clone(&self);
                move |req| app.layer(req, index + 1, conn)
            };
            match middleware {
                Middleware::Headers => middleware::headers(&self.headers, req, next).await,
                Middleware::Gzip => middleware::gzip(req, next).await,
                Middleware::Sendfile => middleware::sendfile(req, next).await,
                Middleware::HttpMetrics => next(req).await,
                Middleware::ProxyIp => {
                    middleware::proxy_ip(
                        peer,
                        &self.settings.trusted_subnets,
                        &self.settings.raw.trusted_headers,
                        req,
                        next,
                    )
                    .await
                }
                Middleware::Static => match &self.static_files {
                    Some(files) => static_files::serve(files, req, next).await,
                    None => next(req).await,
                },
            }
        })
    }

    /// The innermost handler: body limit, payload, exec, response, access log.
    async fn php(self: Arc<Self>, req: Request<Incoming>, conn: &ConnInfo) -> HttpResponse {
        let start = Instant::now();
        let (payload, temp_files, info) = match request::prepare(req, conn, &self.settings).await {
            Ok(prepared) => prepared,
            Err(RequestError::TooLarge) => {
                return text_error(413, "serve_http: http: request body too large")
            }
            Err(RequestError::Read(e)) => {
                tracing::error!(target: "http", error = %e, "request forming error");
                return plain(400, Bytes::new());
            }
            Err(e) => {
                tracing::error!(target: "http", error = %e, "request forming error");
                return text_error(500, &format!("serve_http: {e}"));
            }
        };
        // The exec is never cancelled, as RoadRunner runs it on a
        // background context: if the client goes away it goes on in a task
        // of its own (see FinishEvenIfDropped), so the worker finishes and
        // returns to the pool instead of being killed mid-request, the
        // uploads live until it has replied, and the request is still
        // logged. A streamed reply's body pulls the
        // later frames; if the client goes away the body is dropped and the
        // pool stops the worker's stream (RoadRunner's only stop path).
        let app = Arc::clone(&self);
        let exec = async move {
            let result = app.pool.exec_stream(&payload).await;
            let response = match result {
                Ok(Streamed {
                    first,
                    rest: Some(rest),
                }) => {
                    // Boxed, as streamed replies are the rare case (see
                    // request::prepare on future sizes).
                    Box::pin(response::from_stream(
                        first,
                        rest,
                        app.settings.raw.internal_error_code,
                        temp_files,
                    ))
                    .await
                }
                Ok(Streamed { first, rest: None }) => {
                    drop(temp_files);
                    response::from_reply(first, info.method == "HEAD")
                }
                Err(e) => {
                    if matches!(e, ExecError::NoFreeWorkers(_) | ExecError::QueueFull) {
                        app.metrics.no_free_worker();
                    }
                    tracing::error!(target: "http", error = %e, method = %info.method, uri = %info.uri, "execute");
                    response::exec_error(
                        &e,
                        app.settings.raw.internal_error_code,
                        app.settings.raw.pool.debug,
                    )
                }
            };
            app.access_log(&info, response.status().as_u16(), start);
            response
        };
        match FinishEvenIfDropped::new(AssertUnwindSafe(exec).catch_unwind()).await {
            Ok(response) => response,
            Err(_) => {
                tracing::error!(target: "http", "exec panicked");
                plain(self.settings.raw.internal_error_code, Bytes::new())
            }
        }
    }

    fn access_log(&self, info: &RequestInfo, status: u16, start: Instant) {
        // Field values are formatted only when the line is enabled: no
        // work for a log nobody reads.
        match &info.access {
            Some(access) if self.settings.raw.access_logs => tracing::info!(
                target: "http",
                status,
                method = %info.method,
                URI = %info.uri,
                remote_address = %info.remote_addr,
                query = %info.raw_query,
                content_len = info.content_length,
                host = %access.host,
                user_agent = %access.user_agent,
                referer = %access.referer,
                elapsed = ?start.elapsed(),
                "http access log"
            ),
            _ => tracing::debug!(
                target: "http",
                status,
                method = %info.method,
                URI = %info.uri,
                remote_address = %info.remote_addr,
                elapsed = ?start.elapsed(),
                "http log"
            ),
        }
    }
}

/// Whether an HTTP/1 request's head (request line and headers) is over
/// [`MAX_HEADER_BYTES`]. hyper checks its read buffer against the limit
/// only while a head is still incomplete, so a head that arrives whole in
/// one large read gets through it; this check does not depend on how the
/// bytes arrived. HTTP/2 header lists are bounded by the h2 codec.
fn head_too_large<B>(req: &Request<B>) -> bool {
    if req.version() == hyper::Version::HTTP_2 {
        return false;
    }
    // "METHOD target HTTP/1.1\r\n", every "name: value\r\n", the blank line.
    let line = req.method().as_str().len()
        + req.uri().path_and_query().map_or(1, |p| p.as_str().len())
        + 12;
    let fields: usize = req
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    line + fields + 2 > MAX_HEADER_BYTES
}

/// 431, and the connection closes, as Go's server answers an oversized head.
fn header_fields_too_large() -> HttpResponse {
    let mut response = plain(431, Bytes::new());
    response
        .headers_mut()
        .insert(hyper::header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// A future that goes on in a task of its own if it is dropped before it
/// finishes. A task for every request would cost a spawn, a move of the
/// whole future and a join; this costs one box, and a task only for the
/// requests whose client went away.
struct FinishEvenIfDropped<F>(Option<Pin<Box<F>>>)
where
    F: Future + Send + 'static,
    F::Output: Send + 'static;

impl<F> FinishEvenIfDropped<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn new(future: F) -> Self {
        FinishEvenIfDropped(Some(Box::pin(future)))
    }
}

impl<F> Future for FinishEvenIfDropped<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let Some(inner) = self.0.as_mut() else {
            // Only a caller that polls again after Ready gets here.
            return Poll::Pending;
        };
        let output = ready!(inner.as_mut().poll(cx));
        self.0 = None;
        Poll::Ready(output)
    }
}

impl<F> Drop for FinishEvenIfDropped<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn drop(&mut self) {
        if let (Some(unfinished), Ok(runtime)) =
            (self.0.take(), tokio::runtime::Handle::try_current())
        {
            runtime.spawn(unfinished);
        }
    }
}

/// What a listener speaks.
#[derive(Clone)]
pub enum Listener {
    /// Plain HTTP/1.1; with `h2c`, HTTP/2 prior knowledge too.
    Plain {
        /// Accept cleartext HTTP/2.
        h2c: bool,
    },
    /// HTTPS; HTTP/2 when ALPN picks it.
    Tls(TlsAcceptor),
    /// Plain HTTP answering every request with a 308 to HTTPS.
    Redirect {
        /// The HTTPS port (left out of the URL when 443).
        https_port: u16,
    },
}

/// An accepted connection on its way to another runtime: a tokio stream is
/// bound to the reactor that accepted it, so it travels as a std one.
enum Moving {
    /// Still on the accepting runtime (no lanes installed).
    Here(TcpStream),
    /// Detached, to be registered on the lane's reactor.
    Detached(std::net::TcpStream),
}

impl Moving {
    fn into_tokio(self) -> std::io::Result<TcpStream> {
        match self {
            Moving::Here(stream) => Ok(stream),
            Moving::Detached(stream) => TcpStream::from_std(stream),
        }
    }
}

/// The runtime of the next of the pool's `pool_lanes` in turn, and
/// `stream` ready to move there.
fn on_next_lane(
    next: &mut usize,
    pool_lanes: usize,
    stream: TcpStream,
) -> std::io::Result<(tokio::runtime::Handle, Moving)> {
    let Some(lanes) = rr_pool::Lanes::get() else {
        return Ok((tokio::runtime::Handle::current(), Moving::Here(stream)));
    };
    // Only the lanes with this pool's workers: a connection elsewhere would
    // hand every round trip to another thread.
    let lane = *next % pool_lanes.max(1);
    *next = next.wrapping_add(1);
    if rr_pool::current_lane() == Some(lane) {
        return Ok((tokio::runtime::Handle::current(), Moving::Here(stream)));
    }
    // tokio's into_std leaves the socket non-blocking, as from_std wants.
    Ok((lanes.handle(lane), Moving::Detached(stream.into_std()?)))
}

/// Serves `listener` until `stop` turns true, then drains connections.
pub fn spawn(
    listener: TcpListener,
    kind: Listener,
    app: Arc<App>,
    max_streams: u32,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let graceful = GracefulShutdown::new();
        let mut next_lane = 0usize;
        loop {
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of descriptors and the like: back off instead of spinning.
                        tracing::warn!(target: "http", error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = stop.changed() => break,
            };
            let _ = stream.set_nodelay(true);
            let watcher = graceful.watcher();
            let app = Arc::clone(&app);
            let kind = kind.clone();
            // Connections go round the lanes, so a request's round trip to
            // PHP runs on the lane of a worker it can take without a
            // hand-off between threads (see rr_pool::lanes).
            let (runtime, stream) = match on_next_lane(&mut next_lane, app.pool.lanes(), stream) {
                Ok(moved) => moved,
                Err(e) => {
                    tracing::warn!(target: "http", error = %e, %peer, "connection dropped: cannot move it to a lane");
                    continue;
                }
            };
            runtime.spawn(async move {
                let stream = match stream.into_tokio() {
                    Ok(stream) => stream,
                    Err(e) => {
                        tracing::warn!(target: "http", error = %e, %peer, "connection dropped: cannot register it on its lane");
                        return;
                    }
                };
                match kind {
                    Listener::Plain { h2c } => {
                        let conn = ConnInfo::new(peer, false);
                        let builder =
                            builder(if h2c { Proto::Auto } else { Proto::H1 }, max_streams);
                        let served =
                            builder.serve_connection(TokioIo::new(stream), service(app, conn));
                        let _ = watcher.watch(served).await;
                    }
                    Listener::Tls(acceptor) => {
                        let tls = match tokio::time::timeout(
                            TLS_HANDSHAKE_TIMEOUT,
                            acceptor.accept(stream),
                        )
                        .await
                        {
                            Ok(Ok(tls)) => tls,
                            Ok(Err(e)) => {
                                tracing::debug!(target: "http", error = %e, %peer, "TLS handshake failed");
                                return;
                            }
                            Err(_) => return,
                        };
                        let proto = match tls.get_ref().1.alpn_protocol() {
                            Some(b"h2") => Proto::H2,
                            Some(b"http/1.1") => Proto::H1,
                            _ => Proto::Auto,
                        };
                        let conn = ConnInfo::new(peer, true);
                        let builder = builder(proto, max_streams);
                        let served =
                            builder.serve_connection(TokioIo::new(tls), service(app, conn));
                        let _ = watcher.watch(served).await;
                    }
                    Listener::Redirect { https_port } => {
                        let builder = builder(Proto::H1, max_streams);
                        let redirect = hyper::service::service_fn(move |req: Request<Incoming>| {
                            std::future::ready(Ok::<_, Infallible>(redirect(&req, https_port)))
                        });
                        let served = builder.serve_connection(TokioIo::new(stream), redirect);
                        let _ = watcher.watch(served).await;
                    }
                }
            });
        }
        drop(listener);
        let _ = tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await;
    })
}

#[derive(Clone, Copy)]
enum Proto {
    H1,
    H2,
    Auto,
}

fn builder(proto: Proto, max_streams: u32) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .max_buf_size(MAX_HEADER_BYTES)
        .header_read_timeout(HEADER_READ_TIMEOUT);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(MAX_HEADER_BYTES as u32)
        .max_concurrent_streams(max_streams);
    match proto {
        Proto::H1 => builder.http1_only(),
        Proto::H2 => builder.http2_only(),
        Proto::Auto => builder,
    }
}

fn service(
    app: Arc<App>,
    conn: ConnInfo,
) -> impl hyper::service::Service<
    Request<Incoming>,
    Response = HttpResponse,
    Error = Infallible,
    Future = impl std::future::Future<Output = Result<HttpResponse, Infallible>> + Send,
> + Clone {
    hyper::service::service_fn(move |req: Request<Incoming>| {
        let app = Arc::clone(&app);
        let conn = conn.clone();
        async move { Ok::<_, Infallible>(app.serve(req, conn).await) }
    })
}

/// 308 to the same host and path over HTTPS, with HSTS.
pub fn redirect<B>(req: &Request<B>, https_port: u16) -> HttpResponse {
    let host = request::host(req);
    let host = match host.rsplit_once(':') {
        // Keep IPv6 literals intact: only strip a port after `]` or from a name.
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) && !name.ends_with(':') => {
            name.to_owned()
        }
        _ => host,
    };
    let port = if https_port == 443 {
        String::new()
    } else {
        format!(":{https_port}")
    };
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let mut response = plain(308, Bytes::new());
    if let Ok(location) = HeaderValue::from_str(&format!("https://{host}{port}{path}")) {
        response.headers_mut().insert(LOCATION, location);
    }
    response.headers_mut().insert(
        "strict-transport-security",
        HeaderValue::from_static("max-age=31536000; includeSubDomains; preload"),
    );
    response
}

/// Binds a listen address; errors name `key`.
pub async fn bind(address: &str, key: &str) -> Result<(TcpListener, SocketAddr), String> {
    let address = crate::config::listen_address(address);
    let listener = TcpListener::bind(&address)
        .await
        .map_err(|e| format!("cannot listen on `{key}` = {address}: {e}"))?;
    let local = listener
        .local_addr()
        .map_err(|e| format!("cannot listen on `{key}` = {address}: {e}"))?;
    Ok((listener, local))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_keeps_host_path_and_sets_hsts() {
        let req = Request::get("/a?b=1")
            .header("host", "example.com:8080")
            .body(())
            .expect("request");
        let r = redirect(&req, 8443);
        assert_eq!(r.status(), 308);
        assert_eq!(r.headers()[LOCATION], "https://example.com:8443/a?b=1");
        assert!(r.headers()["strict-transport-security"]
            .to_str()
            .expect("ascii")
            .contains("max-age=31536000"));
        let r = redirect(&req, 443);
        assert_eq!(r.headers()[LOCATION], "https://example.com/a?b=1");
    }

    #[test]
    fn an_http1_head_over_the_limit_is_too_large_whatever_the_reads() {
        let with_value = |len: usize, version| {
            Request::get("/headers")
                .version(version)
                .header("x-big", "a".repeat(len))
                .body(())
                .expect("request")
        };
        // "GET /headers HTTP/1.1\r\n" + "x-big: …\r\n" + "\r\n"
        let fits = MAX_HEADER_BYTES - (3 + 8 + 12) - (5 + 4) - 2;
        assert!(!head_too_large(&with_value(fits, hyper::Version::HTTP_11)));
        assert!(head_too_large(&with_value(
            fits + 1,
            hyper::Version::HTTP_11
        )));
        assert!(!head_too_large(&with_value(
            fits + 1,
            hyper::Version::HTTP_2
        )));
        let refused = header_fields_too_large();
        assert_eq!(refused.status(), 431);
        assert_eq!(refused.headers()[hyper::header::CONNECTION], "close");
    }
}
