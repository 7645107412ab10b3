//! The middlewares RoadRunner bundles as separate plugins: `headers`
//! (+ CORS), `gzip` and `proxy_ip_parser`; `static` lives in
//! [`crate::static_files`].

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{
    HeaderName, HeaderValue, ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, VARY,
};
use hyper::{Method, Request, Response};

use crate::config::{CorsConfig, HeadersConfig, Subnet};
use crate::request::RemoteIp;
use crate::response::{file_body, full, plain, HttpResponse};

/// A boxed response future: what the next layer of the chain returns.
pub type BoxResponse = Pin<Box<dyn Future<Output = HttpResponse> + Send>>;

/// A middleware RoadRunner knows by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Middleware {
    /// `headers`: request/response headers and CORS.
    Headers,
    /// `gzip`: compresses responses.
    Gzip,
    /// `static`: serves files from `http.static.dir`.
    Static,
    /// `proxy_ip_parser`: client IP from forwarding headers of trusted peers.
    ProxyIp,
    /// `sendfile`: a reply with `X-Sendfile: <path>` sends that file.
    Sendfile,
    /// `http_metrics`: request metrics are always collected, so a no-op.
    HttpMetrics,
}

impl Middleware {
    /// The middleware called `name`, if rr implements it.
    pub fn from_name(name: &str) -> Option<Middleware> {
        match name {
            "headers" => Some(Middleware::Headers),
            "gzip" => Some(Middleware::Gzip),
            "static" => Some(Middleware::Static),
            "proxy_ip_parser" => Some(Middleware::ProxyIp),
            "sendfile" => Some(Middleware::Sendfile),
            "http_metrics" => Some(Middleware::HttpMetrics),
            _ => None,
        }
    }
}

/// The chain, outermost first, for a `middleware:` list. RoadRunner v5
/// wraps the handler in list order, so the **last** listed middleware sees
/// the request first; this keeps that order.
pub fn chain(names: &[String]) -> Vec<Middleware> {
    let mut chain = Vec::new();
    for name in names.iter().rev() {
        match Middleware::from_name(name) {
            Some(Middleware::HttpMetrics) => {}
            Some(m) => chain.push(m),
            None if crate::config::KNOWN_MIDDLEWARE.contains(&name.as_str()) => {
                tracing::warn!(target: "http", middleware = %name, "middleware is not implemented by rr, skipped");
            }
            None => {
                tracing::warn!(target: "http", middleware = %name, "requested middleware does not exist");
            }
        }
    }
    chain
}

fn list(text: &str) -> Vec<String> {
    text.split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

fn origin_matches(pattern: &str, origin: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    match pattern.split_once('*') {
        Some((prefix, suffix)) => {
            origin.len() >= prefix.len() + suffix.len()
                && origin.starts_with(prefix)
                && origin.ends_with(suffix)
        }
        None => pattern.eq_ignore_ascii_case(origin),
    }
}

fn set(response: &mut HttpResponse, name: &'static str, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        response
            .headers_mut()
            .insert(HeaderName::from_static(name), value);
    }
}

fn add_vary(response: &mut HttpResponse, value: &'static str) {
    response
        .headers_mut()
        .append(VARY, HeaderValue::from_static(value));
}

/// The `headers` middleware: adds `request` headers, answers CORS
/// preflights itself, and sets `response` (and CORS) headers.
pub async fn headers(
    config: &HeadersConfig,
    mut req: Request<Incoming>,
    next: impl FnOnce(Request<Incoming>) -> BoxResponse,
) -> HttpResponse {
    for (name, value) in &config.request {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            req.headers_mut().append(name, value);
        }
    }
    let origin = req
        .headers()
        .get("origin")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut response = match (&config.cors, origin) {
        (Some(cors), Some(origin))
            if req.method() == Method::OPTIONS
                && req.headers().contains_key("access-control-request-method") =>
        {
            preflight(cors, &req, &origin)
        }
        (Some(cors), origin) => {
            let mut response = next(req).await;
            add_vary(&mut response, "Origin");
            if let Some(origin) = origin {
                cors_actual(cors, &origin, &mut response);
            }
            response
        }
        (None, _) => next(req).await,
    };
    for (name, value) in &config.response {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

fn allow_origin_value(cors: &CorsConfig, origin: &str) -> Option<String> {
    let patterns = list(&cors.allowed_origin);
    let any =
        cors.origin_regex.is_none() && (patterns.is_empty() || patterns.iter().any(|p| p == "*"));
    let allowed = match &cors.origin_regex {
        Some(regex) => regex.is_match(origin),
        None => any || patterns.iter().any(|p| origin_matches(p, origin)),
    };
    if !allowed {
        return None;
    }
    let credentials = cors.allow_credentials.unwrap_or(false);
    Some(if any && !credentials {
        "*".to_owned()
    } else {
        origin.to_owned()
    })
}

fn preflight(cors: &CorsConfig, req: &Request<Incoming>, origin: &str) -> HttpResponse {
    let mut response = plain(cors.options_success_status, Bytes::new());
    add_vary(&mut response, "Origin");
    add_vary(&mut response, "Access-Control-Request-Method");
    add_vary(&mut response, "Access-Control-Request-Headers");
    let Some(allow) = allow_origin_value(cors, origin) else {
        return response;
    };
    let method = req
        .headers()
        .get("access-control-request-method")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_uppercase();
    let methods = list(&cors.allowed_methods);
    let method_ok = methods
        .iter()
        .any(|m| m == "*" || m.eq_ignore_ascii_case(&method))
        || (methods.is_empty() && matches!(method.as_str(), "GET" | "POST" | "HEAD"));
    if !method_ok {
        return response;
    }
    let requested = req
        .headers()
        .get("access-control-request-headers")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let mut allowed = list(&cors.allowed_headers);
    if allowed.is_empty() {
        allowed = ["Accept", "Content-Type", "X-Requested-With"]
            .map(str::to_owned)
            .to_vec();
    }
    allowed.push("Origin".to_owned());
    let headers_ok = allowed.iter().any(|h| h == "*")
        || list(&requested)
            .iter()
            .all(|r| allowed.iter().any(|a| a.eq_ignore_ascii_case(r)));
    if !headers_ok {
        return response;
    }
    set(&mut response, "access-control-allow-origin", &allow);
    set(&mut response, "access-control-allow-methods", &method);
    if !requested.is_empty() {
        set(&mut response, "access-control-allow-headers", &requested);
    }
    if cors.allow_credentials.unwrap_or(false) {
        set(&mut response, "access-control-allow-credentials", "true");
    }
    if cors.max_age > 0 {
        set(
            &mut response,
            "access-control-max-age",
            &cors.max_age.to_string(),
        );
    }
    response
}

fn cors_actual(cors: &CorsConfig, origin: &str, response: &mut HttpResponse) {
    let Some(allow) = allow_origin_value(cors, origin) else {
        return;
    };
    set(response, "access-control-allow-origin", &allow);
    if !cors.exposed_headers.is_empty() {
        set(
            response,
            "access-control-expose-headers",
            &list(&cors.exposed_headers).join(", "),
        );
    }
    if cors.allow_credentials.unwrap_or(false) {
        set(response, "access-control-allow-credentials", "true");
    }
}

/// Bodies smaller than this are sent as they are (gzhttp's default).
pub const GZIP_MIN_SIZE: usize = 1024;

/// Bodies larger than this are compressed on the blocking pool.
const GZIP_BLOCKING_SIZE: usize = 256 * 1024;

/// A content coding the `gzip` middleware can send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Coding {
    /// Zstandard (RFC 8878): better ratio than gzip at a fraction of its CPU.
    Zstd,
    /// Brotli (RFC 7932), at a quality meant for dynamic content.
    Brotli,
    /// gzip, the only one RoadRunner's middleware sends.
    Gzip,
}

impl Coding {
    /// Ours in order of preference, for ties in the client's weights.
    const PREFERRED: [Coding; 3] = [Coding::Zstd, Coding::Brotli, Coding::Gzip];

    /// The `Content-Encoding` token.
    fn token(self) -> &'static str {
        match self {
            Coding::Zstd => "zstd",
            Coding::Brotli => "br",
            Coding::Gzip => "gzip",
        }
    }

    fn compress(self, bytes: &[u8]) -> std::io::Result<Vec<u8>> {
        use std::io::Write;
        match self {
            Coding::Zstd => zstd::bulk::compress(bytes, ZSTD_LEVEL),
            Coding::Brotli => {
                let mut out = Vec::with_capacity(bytes.len() / 3);
                {
                    let mut encoder = brotli::CompressorWriter::new(
                        &mut out,
                        4096,
                        BROTLI_QUALITY,
                        BROTLI_WINDOW,
                    );
                    encoder.write_all(bytes)?;
                    encoder.flush()?;
                }
                Ok(out)
            }
            Coding::Gzip => gzip_bytes(bytes),
        }
    }
}

/// zstd's default level: fast enough for every reply.
const ZSTD_LEVEL: i32 = 3;
/// Brotli quality 5: near gzip's speed with a better ratio (11 is for
/// precompressed files, far too slow per request).
const BROTLI_QUALITY: u32 = 5;
/// Brotli window: 4 MiB.
const BROTLI_WINDOW: u32 = 22;

fn gzip_bytes(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(bytes.len() / 3),
        flate2::Compression::default(),
    );
    encoder.write_all(bytes)?;
    encoder.finish()
}

/// The coding to answer with: of the ones the client's `Accept-Encoding`
/// accepts (`q=0` refuses; `*` stands for any not named), the one with the
/// highest weight, ties going to zstd, then brotli, then gzip.
fn negotiate(req_headers: &hyper::HeaderMap) -> Option<Coding> {
    // Read in place for each of our codings: the header is short, and this
    // runs on every request.
    let items = || {
        req_headers
            .get_all(ACCEPT_ENCODING)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|item| {
                let mut parts = item.split(';');
                let coding = parts.next().unwrap_or_default().trim();
                let weight = parts
                    .filter_map(|p| p.trim().strip_prefix("q="))
                    .filter_map(|q| q.trim().parse::<f32>().ok())
                    .next_back()
                    .unwrap_or(1.0);
                (!coding.is_empty()).then_some((coding, weight))
            })
    };
    let weight_of = |token: &str| {
        items()
            .find(|(name, _)| name.eq_ignore_ascii_case(token))
            .or_else(|| items().find(|(name, _)| *name == "*"))
            .map_or(0.0, |(_, weight)| weight)
    };
    let mut best: Option<(Coding, f32)> = None;
    for coding in Coding::PREFERRED {
        let weight = weight_of(coding.token());
        if weight > 0.0 && best.is_none_or(|(_, w)| weight > w) {
            best = Some((coding, weight));
        }
    }
    best.map(|(coding, _)| coding)
}

fn compressible(content_type: &str) -> bool {
    let ct = content_type.to_ascii_lowercase();
    !(ct.starts_with("video/")
        || ct.starts_with("audio/")
        || (ct.starts_with("image/") && !ct.starts_with("image/svg"))
        || ct.contains("zip")
        || ct.contains("compressed")
        || ct.starts_with("font/woff"))
}

/// The `gzip` middleware (RoadRunner's name): compresses bodies of at least
/// [`GZIP_MIN_SIZE`] bytes with the best coding the client accepts, zstd,
/// brotli or gzip (RoadRunner sends only gzip).
pub async fn gzip(
    req: Request<Incoming>,
    next: impl FnOnce(Request<Incoming>) -> BoxResponse,
) -> HttpResponse {
    let coding = negotiate(req.headers()).filter(|_| req.method() != Method::HEAD);
    let mut response = next(req).await;
    add_vary(&mut response, "Accept-Encoding");
    let Some(coding) = coding else {
        return response;
    };
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if status < 200
        || status == 204
        || status == 206
        || status == 304
        || response.headers().contains_key(CONTENT_ENCODING)
        || !compressible(content_type)
    {
        return response;
    }
    // Only bodies in memory are compressed; streamed files go as they are.
    if hyper::body::Body::size_hint(response.body())
        .exact()
        .is_none()
    {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let bytes = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => return crate::response::text_error(500, &e.to_string()),
    };
    if bytes.len() < GZIP_MIN_SIZE {
        return Response::from_parts(parts, full(bytes));
    }
    // Large bodies are compressed off the async threads so one big reply
    // does not stall the other connections of its worker thread.
    let compressed = if bytes.len() > GZIP_BLOCKING_SIZE {
        let input = bytes.clone();
        tokio::task::spawn_blocking(move || coding.compress(&input))
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)))
    } else {
        coding.compress(&bytes)
    };
    match compressed {
        Ok(compressed) => {
            parts
                .headers
                .insert(CONTENT_ENCODING, HeaderValue::from_static(coding.token()));
            parts.headers.remove(CONTENT_LENGTH);
            Response::from_parts(parts, full(compressed))
        }
        Err(e) => {
            tracing::warn!(target: "http", error = %e, coding = coding.token(), "compression failed, sending the body uncompressed");
            Response::from_parts(parts, full(bytes))
        }
    }
}

/// The `sendfile` middleware: when the reply carries `X-Sendfile: <path>`,
/// the header is removed and the file is sent as
/// `application/octet-stream` with the reply's status and other headers; a
/// path with `..` is 403, a missing file 404 `not found`, an unreadable one 500.
pub async fn sendfile(
    req: Request<Incoming>,
    next: impl FnOnce(Request<Incoming>) -> BoxResponse,
) -> HttpResponse {
    let mut response = next(req).await;
    let Some(path) = response.headers_mut().remove("x-sendfile") else {
        return response;
    };
    let path = String::from_utf8_lossy(path.as_bytes()).into_owned();
    if path.is_empty() {
        return response;
    }
    if path.contains("..") {
        return plain(403, Bytes::new());
    }
    let metadata = match tokio::fs::metadata(&path).await {
        Ok(m) if m.is_file() => m,
        _ => return crate::response::text_error(404, "not found"),
    };
    match tokio::fs::File::open(&path).await {
        Ok(file) => {
            let (mut parts, _) = response.into_parts();
            parts
                .headers
                .insert(CONTENT_LENGTH, HeaderValue::from(metadata.len()));
            parts.headers.insert(
                CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            Response::from_parts(parts, file_body(file, metadata.len()))
        }
        Err(e) => crate::response::text_error(500, &e.to_string()),
    }
}

/// Headers `proxy_ip_parser` reads by default, in order.
pub const DEFAULT_TRUSTED_HEADERS: &[&str] = &[
    "Forwarded",
    "X-Forwarded-For",
    "X-Real-Ip",
    "True-Client-Ip",
    "Cf-Connecting-Ip",
];

/// The client IP in one forwarding header's value.
pub fn forwarded_ip(header: &str, value: &str) -> Option<IpAddr> {
    let candidate = if header.eq_ignore_ascii_case("forwarded") {
        // `for=192.0.2.60;proto=http, for="[2001:db8::1]:4711"`: the first element.
        let first = value.split(',').next()?;
        let for_value = first.split(';').find_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            k.trim().eq_ignore_ascii_case("for").then(|| v.trim())
        })?;
        let unquoted = for_value.trim_matches('"');
        if let Some(rest) = unquoted.strip_prefix('[') {
            rest.split(']').next()?.to_owned()
        } else {
            // Drop an IPv4 port (`1.2.3.4:80`) but not the colons of IPv6.
            match unquoted.split_once(':') {
                Some((ip, _)) if !unquoted[ip.len() + 1..].contains(':') => ip.to_owned(),
                _ => unquoted.to_owned(),
            }
        }
    } else if header.eq_ignore_ascii_case("x-forwarded-for") {
        value.split(',').next()?.trim().to_owned()
    } else {
        value.trim().to_owned()
    };
    candidate.parse().ok()
}

/// The `proxy_ip_parser` middleware: when the peer is in a trusted subnet,
/// the client IP PHP sees comes from the first forwarding header that has one.
pub async fn proxy_ip(
    peer: IpAddr,
    subnets: &[Subnet],
    trusted_headers: &[String],
    mut req: Request<Incoming>,
    next: impl FnOnce(Request<Incoming>) -> BoxResponse,
) -> HttpResponse {
    if subnets.iter().any(|s| s.contains(peer)) {
        let defaults: Vec<String>;
        let names: &[String] = if trusted_headers.is_empty() {
            defaults = DEFAULT_TRUSTED_HEADERS
                .iter()
                .map(|s| (*s).to_owned())
                .collect();
            &defaults
        } else {
            trusted_headers
        };
        let found = names.iter().find_map(|name| {
            let value = req.headers().get(name.as_str())?.to_str().ok()?;
            forwarded_ip(name, value)
        });
        if let Some(ip) = found {
            req.extensions_mut().insert(RemoteIp(ip.to_string()));
        }
    }
    next(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v5_order_runs_the_last_listed_first() {
        let names: Vec<String> = ["static", "headers", "gzip", "nope", "http_metrics", "otel"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            chain(&names),
            [Middleware::Gzip, Middleware::Headers, Middleware::Static]
        );
    }

    #[test]
    fn forwarded_headers_parse() {
        let ip = |h: &str, v: &str| forwarded_ip(h, v).map(|i| i.to_string());
        assert_eq!(
            ip("X-Forwarded-For", "1.2.3.4, 10.0.0.1").as_deref(),
            Some("1.2.3.4")
        );
        assert_eq!(
            ip("Forwarded", "for=192.0.2.60;proto=http;by=203.0.113.43").as_deref(),
            Some("192.0.2.60")
        );
        assert_eq!(
            ip("Forwarded", "For=\"[2001:db8:cafe::17]:4711\"").as_deref(),
            Some("2001:db8:cafe::17")
        );
        assert_eq!(
            ip("Forwarded", "for=1.2.3.4:80").as_deref(),
            Some("1.2.3.4")
        );
        assert_eq!(ip("X-Real-Ip", " ::1 ").as_deref(), Some("::1"));
        assert_eq!(ip("X-Real-Ip", "unknown"), None);
    }

    #[test]
    fn gzip_round_trips() {
        use std::io::Read;
        let input = "abc".repeat(1000);
        let compressed = gzip_bytes(input.as_bytes()).expect("gzip");
        assert!(compressed.len() < input.len() / 10);
        let mut out = String::new();
        flate2::read::GzDecoder::new(&compressed[..])
            .read_to_string(&mut out)
            .expect("gunzip");
        assert_eq!(out, input);
    }

    #[test]
    fn zstd_and_brotli_round_trip() {
        use std::io::Read;
        let input = "abc".repeat(1000);
        let compressed = Coding::Zstd.compress(input.as_bytes()).expect("zstd");
        assert!(compressed.len() < input.len() / 10);
        let out = zstd::stream::decode_all(&compressed[..]).expect("unzstd");
        assert_eq!(out, input.as_bytes());
        let compressed = Coding::Brotli.compress(input.as_bytes()).expect("brotli");
        assert!(compressed.len() < input.len() / 10);
        let mut out = String::new();
        brotli::Decompressor::new(&compressed[..], 4096)
            .read_to_string(&mut out)
            .expect("unbrotli");
        assert_eq!(out, input);
    }

    #[test]
    fn coding_negotiation() {
        let pick = |accept: &'static str| {
            let mut h = hyper::HeaderMap::new();
            h.insert(ACCEPT_ENCODING, HeaderValue::from_static(accept));
            negotiate(&h)
        };
        assert_eq!(pick("br, gzip;q=0.5"), Some(Coding::Brotli));
        assert_eq!(pick("gzip;q=0, br"), Some(Coding::Brotli));
        assert_eq!(pick("gzip"), Some(Coding::Gzip));
        assert_eq!(pick("gzip;q=0"), None);
        assert_eq!(pick("identity"), None);
        // curl --compressed, and a browser over HTTPS.
        assert_eq!(pick("deflate, gzip, br, zstd"), Some(Coding::Zstd));
        assert_eq!(pick("gzip, deflate, br, zstd"), Some(Coding::Zstd));
        // The client's weights come first; ours only break ties.
        assert_eq!(pick("zstd;q=0.5, gzip"), Some(Coding::Gzip));
        assert_eq!(pick("GZIP;q=0.9, Br;q=0.9"), Some(Coding::Brotli));
        // `*` covers the codings not named.
        assert_eq!(pick("*"), Some(Coding::Zstd));
        assert_eq!(pick("zstd;q=0, *;q=0.5"), Some(Coding::Brotli));
        assert_eq!(pick("*;q=0, gzip"), Some(Coding::Gzip));
        assert!(compressible("text/html; charset=utf-8"));
        assert!(compressible("image/svg+xml"));
        assert!(!compressible("image/png"));
    }

    #[test]
    fn cors_origin_rules_follow_rs_cors() {
        let mut cors = CorsConfig::default();
        assert_eq!(allow_origin_value(&cors, "https://x").as_deref(), Some("*"));
        cors.allow_credentials = Some(true);
        assert_eq!(
            allow_origin_value(&cors, "https://x").as_deref(),
            Some("https://x")
        );
        cors.allowed_origin = "https://a, https://b".into();
        assert_eq!(
            allow_origin_value(&cors, "https://b").as_deref(),
            Some("https://b")
        );
        assert_eq!(allow_origin_value(&cors, "https://c"), None);
        cors.origin_regex =
            Some(regex::Regex::new(r"^https://[a-z]+\.example\.com$").expect("regex"));
        assert_eq!(allow_origin_value(&cors, "https://b"), None);
        assert_eq!(
            allow_origin_value(&cors, "https://api.example.com").as_deref(),
            Some("https://api.example.com")
        );
    }

    #[test]
    fn origins_match_exactly_or_by_wildcard() {
        assert!(origin_matches("*", "http://a"));
        assert!(origin_matches(
            "https://*.example.com",
            "https://api.example.com"
        ));
        assert!(!origin_matches(
            "https://*.example.com",
            "https://example.org"
        ));
        assert!(origin_matches("http://A.com", "http://a.com"));
    }
}
