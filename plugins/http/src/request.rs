//! An incoming request → the worker payload: protobuf `http.v1.Request` in
//! the context (codec Proto), and the body chosen by method and
//! `Content-Type` as RoadRunner's `handler/request.go` does.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::{BodyDataStream, BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, CONTENT_LENGTH, CONTENT_TYPE, COOKIE, HOST, REFERER, USER_AGENT};
use hyper::{Method, Request, Version};
use rr_pool::Payload;
use serde_json::{json, Value};
use thiserror::Error;
use tokio::io::AsyncWriteExt;

use crate::config::Settings;
use crate::form::{self, Leaf, Pick, Tree, TreeError};
use crate::proto;

/// Goridge codec flag for protobuf payloads.
pub const CODEC_PROTO: u8 = 0x80;

/// What the server knows about the connection a request came on.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// The peer's address.
    pub peer: SocketAddr,
    /// The peer's IP as text, formatted once per connection rather than
    /// for every request on it.
    pub peer_ip: Arc<str>,
    /// Whether the connection is TLS.
    pub tls: bool,
}

impl ConnInfo {
    /// The facts of a connection from `peer`.
    pub fn new(peer: SocketAddr, tls: bool) -> ConnInfo {
        ConnInfo {
            peer,
            peer_ip: peer.ip().to_string().into(),
            tls,
        }
    }
}

/// The client IP PHP sees, when a middleware (`proxy_ip_parser`) replaced
/// the peer's.
#[derive(Debug, Clone)]
pub struct RemoteIp(pub String);

/// Why a request could not become a payload.
#[derive(Debug, Error)]
pub enum RequestError {
    /// The body is over `max_request_size` (413).
    #[error("http: request body too large")]
    TooLarge,
    /// The form tree has a conflicting key.
    #[error(transparent)]
    Tree(#[from] TreeError),
    /// The multipart body is malformed.
    #[error("multipart: {0}")]
    Multipart(String),
    /// Reading the body failed (client gone).
    #[error("read body: {0}")]
    Read(String),
}

/// One uploaded file as PHP's `$_FILES` entry wants it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileUpload {
    /// Client file name.
    pub name: String,
    /// The part's `Content-Type`.
    pub mime: String,
    /// Bytes received.
    pub size: u64,
    /// PHP upload error code (0 ok, 6 no tmp dir, 7 cannot write, 8 extension).
    pub error: u8,
    /// Absolute temp file path; empty when not written.
    pub tmp_name: String,
}

/// PHP's `UPLOAD_ERR_NO_TMP_DIR`.
pub const UPLOAD_ERR_NO_TMP_DIR: u8 = 6;
/// PHP's `UPLOAD_ERR_CANT_WRITE`.
pub const UPLOAD_ERR_CANT_WRITE: u8 = 7;
/// PHP's `UPLOAD_ERR_EXTENSION`.
pub const UPLOAD_ERR_EXTENSION: u8 = 8;

impl Leaf for FileUpload {
    fn is_empty_leaf(&self) -> bool {
        false
    }

    fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "mime": self.mime,
            "size": self.size,
            "error": self.error,
            "tmpName": self.tmp_name,
        })
    }
}

/// The request's temp files; dropping it deletes them (after the response).
#[derive(Debug, Default)]
pub struct TempFiles(pub Vec<tempfile::TempPath>);

/// Facts about the request kept for logs and metrics.
#[derive(Debug, Clone, Default)]
pub struct RequestInfo {
    /// Method.
    pub method: String,
    /// Absolute URI.
    pub uri: String,
    /// Client IP.
    pub remote_addr: String,
    /// Raw query.
    pub raw_query: String,
    /// `Content-Length` (-1 when unknown).
    pub content_length: i64,
    /// Host, `User-Agent` and `Referer`: read only for `access_logs`, the
    /// one log line that shows them.
    pub access: Option<AccessFacts>,
}

/// The facts only the access log shows.
#[derive(Debug, Clone, Default)]
pub struct AccessFacts {
    /// Host.
    pub host: String,
    /// `User-Agent`.
    pub user_agent: String,
    /// `Referer`.
    pub referer: String,
}

/// Go's `CanonicalMIMEHeaderKey`: `content-type` → `Content-Type`; names
/// with bytes outside the token set stay as they are.
pub fn canonical_header(name: &str) -> String {
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if !name.bytes().all(token) {
        return name.to_owned();
    }
    let mut upper = true;
    name.chars()
        .map(|c| {
            let out = if upper {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            };
            upper = c == '-';
            out
        })
        .collect()
}

/// Request headers for the proto map: canonical names, all values, no `Host`.
pub fn header_map(headers: &HeaderMap) -> proto::HeaderMap {
    headers
        .keys()
        .filter(|name| *name != HOST)
        .map(|name| {
            let values = headers
                .get_all(name)
                .iter()
                .map(|v| v.as_bytes().to_vec())
                .collect();
            (canonical_header(name.as_str()), values)
        })
        .collect()
}

/// HTTP/2 clients may split `Cookie` into one header per cookie; Go's h2
/// server joins them back into one value with `; `, and so does this.
pub fn join_cookie_crumbs(map: &mut proto::HeaderMap) {
    if let Some((_, values)) = map.iter_mut().find(|(name, _)| name == "Cookie") {
        if values.len() > 1 {
            let joined = values.join(&b"; "[..]);
            *values = vec![joined];
        }
    }
}

/// Cookies as Go's `Request.Cookies` reads them, values URL-unescaped with
/// query rules; bad values are dropped; a repeated name keeps the last.
pub fn cookies(headers: &HeaderMap) -> proto::HeaderMap {
    let mut out: proto::HeaderMap = Vec::new();
    let valid_value = |v: &str| {
        v.bytes()
            .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b';' && b != b'\\')
    };
    for header in headers.get_all(COOKIE) {
        let Ok(text) = header.to_str() else { continue };
        for part in text.split(';') {
            let part = part.trim();
            let Some((name, value)) = part.split_once('=') else {
                continue;
            };
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic() && b != b'=') {
                continue;
            }
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value);
            if !valid_value(value) {
                continue;
            }
            let Some(value) = form::query_unescape(value.as_bytes()) else {
                continue;
            };
            match out.iter_mut().find(|(n, _)| n == name) {
                Some(slot) => slot.1 = vec![value.into_bytes()],
                None => out.push((name.to_owned(), vec![value.into_bytes()])),
            }
        }
    }
    out
}

fn strip_crlf(text: &str) -> String {
    without_crlf(Cow::Borrowed(text)).into_owned()
}

/// `text` without CR and LF, copied only when it has any.
fn without_crlf(text: Cow<'_, str>) -> Cow<'_, str> {
    if text.contains(['\r', '\n']) {
        Cow::Owned(text.replace(['\r', '\n'], ""))
    } else {
        text
    }
}

/// `HTTP/1.1`, `HTTP/2.0`, ...
pub fn protocol(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

/// The absolute URI RoadRunner sends: the request line's absolute form as
/// is, else scheme + Host (HTTP/2: `:authority`) + path and query.
pub fn absolute_uri<B>(req: &Request<B>, tls: bool) -> String {
    let uri = req.uri();
    if req.version() != Version::HTTP_2 && uri.scheme().is_some() {
        return without_crlf(Cow::Owned(uri.to_string())).into_owned();
    }
    let host = uri
        .authority()
        .map(|a| a.as_str())
        .or_else(|| req.headers().get(HOST).and_then(|h| h.to_str().ok()))
        .unwrap_or_default();
    let scheme = if tls { "https://" } else { "http://" };
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut absolute = String::with_capacity(scheme.len() + host.len() + path.len());
    absolute.push_str(scheme);
    absolute.push_str(host);
    absolute.push_str(path);
    without_crlf(Cow::Owned(absolute)).into_owned()
}

/// The request's host (Host header or HTTP/2 authority).
pub fn host<B>(req: &Request<B>) -> String {
    req.uri()
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| {
            req.headers()
                .get(HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_owned)
        })
        .unwrap_or_default()
}

fn header_str(headers: &HeaderMap, name: impl hyper::header::AsHeaderName) -> &str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// The payload for `req`, which came on `conn`, its temp files and its
/// facts for logs.
pub async fn prepare(
    req: Request<Incoming>,
    conn: &ConnInfo,
    settings: &Settings,
) -> Result<(Payload, TempFiles, RequestInfo), RequestError> {
    let tls = conn.tls;
    let remote_addr = match req.extensions().get::<RemoteIp>() {
        Some(ip) => ip.0.clone(),
        None => conn.peer_ip.to_string(),
    };
    let content_length = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let mut message = proto::Request {
        remote_addr,
        protocol: protocol(req.version()).to_owned(),
        method: req.method().as_str().to_owned(),
        uri: absolute_uri(&req, tls),
        header: {
            let mut map = header_map(req.headers());
            if req.version() == Version::HTTP_2 {
                join_cookie_crumbs(&mut map);
            }
            map
        },
        cookies: cookies(req.headers()),
        raw_query: strip_crlf(req.uri().query().unwrap_or_default()),
        parsed: false,
        uploads: Vec::new(),
        attributes: Vec::new(),
    };
    let access = settings.raw.access_logs.then(|| AccessFacts {
        host: host(&req),
        user_agent: strip_crlf(header_str(req.headers(), USER_AGENT)),
        referer: strip_crlf(header_str(req.headers(), REFERER)),
    });
    let limit = settings.max_request_bytes;
    if content_length.is_some_and(|l| l > limit) {
        return Err(RequestError::TooLarge);
    }
    let content_type = header_str(req.headers(), CONTENT_TYPE).to_owned();
    let method = req.method().clone();
    let raw = settings.raw.raw_body;
    let mut files = TempFiles::default();
    let body: Bytes = if method == Method::HEAD || method == Method::OPTIONS {
        Bytes::new()
    } else if !raw && content_type.contains("application/x-www-form-urlencoded") {
        message.parsed = true;
        // Go parses a urlencoded body only for these methods.
        if matches!(method, Method::POST | Method::PUT | Method::PATCH) {
            let bytes = read_all(req.into_body(), limit).await?;
            tree_body(&form::parse_urlencoded(&bytes)?)
        } else {
            Bytes::new()
        }
    } else if !raw && content_type.contains("multipart/form-data") {
        message.parsed = true;
        // Boxed: inline, the multipart parser's state would make every
        // request's future kilobytes larger, and futures are moved whole.
        let (fields, uploads) = Box::pin(multipart(
            req.into_body(),
            &content_type,
            settings,
            limit,
            &mut files,
        ))
        .await?;
        if !uploads.is_empty() {
            message.uploads = serde_json::to_vec(&uploads.to_json()).unwrap_or_default();
        }
        tree_body(&fields)
    } else {
        read_all(req.into_body(), limit).await?
    };
    let context = message.encode();
    let payload = Payload {
        context: context.into(),
        body,
        codec: CODEC_PROTO,
    };
    // The message is spent: its strings move into the facts kept for logs.
    let info = RequestInfo {
        method: message.method,
        uri: message.uri,
        remote_addr: message.remote_addr,
        raw_query: message.raw_query,
        content_length: content_length.map_or(-1, |l| l as i64),
        access,
    };
    Ok((payload, files, info))
}

fn tree_body(tree: &Tree<String>) -> Bytes {
    if tree.is_empty() {
        Bytes::new()
    } else {
        serde_json::to_vec(&tree.to_json())
            .unwrap_or_default()
            .into()
    }
}

fn limit_error(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if err.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        cur = err.source();
    }
    false
}

async fn read_all(body: Incoming, limit: u64) -> Result<Bytes, RequestError> {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if limit_error(e.as_ref()) => Err(RequestError::TooLarge),
        Err(e) => Err(RequestError::Read(e.to_string())),
    }
}

/// Go's `path.Ext` of the file name, lower-cased.
fn extension(name: &str) -> String {
    let base = name.rsplit('/').next().unwrap_or(name);
    base.rfind('.')
        .map(|i| base[i..].to_lowercase())
        .unwrap_or_default()
}

async fn multipart(
    body: Incoming,
    content_type: &str,
    settings: &Settings,
    limit: u64,
    files: &mut TempFiles,
) -> Result<(Tree<String>, Tree<FileUpload>), RequestError> {
    let boundary =
        multer::parse_boundary(content_type).map_err(|e| RequestError::Multipart(e.to_string()))?;
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let stream = BodyDataStream::new(Limited::new(body, limit));
    let mut parts = multer::Multipart::new(stream, boundary);
    let fail = |e: multer::Error| match &e {
        multer::Error::StreamReadFailed(inner) if limit_error(inner.as_ref()) => {
            RequestError::TooLarge
        }
        _ => RequestError::Multipart(e.to_string()),
    };
    let mut values: Vec<(String, String)> = Vec::new();
    let mut uploads: Vec<(String, FileUpload)> = Vec::new();
    while let Some(mut field) = parts.next_field().await.map_err(fail)? {
        let name = field.name().unwrap_or_default().to_owned();
        let file_name = field.file_name().unwrap_or_default().to_owned();
        if file_name.is_empty() {
            // Go treats a part without a file name as a form value.
            let text = field.text().await.map_err(fail)?;
            values.push((name, text));
            continue;
        }
        let mime = field
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let ext = extension(&file_name);
        let refused = settings.uploads_forbid.contains(&ext)
            || (!settings.uploads_allow.is_empty() && !settings.uploads_allow.contains(&ext));
        let mut upload = FileUpload {
            name: file_name,
            mime,
            size: 0,
            error: 0,
            tmp_name: String::new(),
        };
        let mut target = None;
        if refused {
            upload.error = UPLOAD_ERR_EXTENSION;
        } else {
            match tempfile::Builder::new()
                .prefix("upload")
                .tempfile_in(&settings.uploads_dir)
            {
                Ok(named) => {
                    let (file, path) = named.into_parts();
                    if let Some((uid, gid)) = settings.upload_owner {
                        if let Err(e) = std::os::unix::fs::fchown(&file, Some(uid), Some(gid)) {
                            tracing::warn!(target: "http", error = %e, file = %path.display(), "cannot hand the upload to server.user");
                        }
                    }
                    upload.tmp_name = path.to_string_lossy().into_owned();
                    files.0.push(path);
                    target = Some(tokio::fs::File::from_std(file));
                }
                Err(e) => {
                    tracing::error!(target: "http", error = %e, dir = %settings.uploads_dir.display(), "cannot create an upload temp file");
                    upload.error = UPLOAD_ERR_NO_TMP_DIR;
                }
            }
        }
        while let Some(chunk) = field.next().await {
            let chunk = chunk.map_err(fail)?;
            upload.size += chunk.len() as u64;
            if let Some(file) = target.as_mut() {
                if let Err(e) = file.write_all(&chunk).await {
                    tracing::error!(target: "http", error = %e, file = %upload.tmp_name, "cannot write an upload");
                    upload.error = UPLOAD_ERR_CANT_WRITE;
                    target = None;
                }
            }
        }
        if let Some(mut file) = target {
            if let Err(e) = file.flush().await {
                tracing::error!(target: "http", error = %e, file = %upload.tmp_name, "cannot write an upload");
                upload.error = UPLOAD_ERR_CANT_WRITE;
            }
        }
        uploads.push((name, upload));
    }
    let mut fields = Tree::default();
    for (key, group) in form::group(values) {
        fields.push(&key, group, Pick::Last)?;
    }
    let mut tree = Tree::default();
    for (key, group) in form::group(uploads) {
        tree.push(&key, group, Pick::First)?;
    }
    Ok((fields, tree))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    #[test]
    fn header_names_become_canonical() {
        assert_eq!(canonical_header("content-type"), "Content-Type");
        assert_eq!(canonical_header("x-foo-bar"), "X-Foo-Bar");
        assert_eq!(canonical_header("X-ALL-CAPS"), "X-All-Caps");
        assert_eq!(canonical_header("weird name"), "weird name");
    }

    #[test]
    fn header_map_keeps_every_value_and_drops_host() {
        let mut headers = HeaderMap::new();
        headers.insert(HOST, HeaderValue::from_static("example.com"));
        headers.append("x-multi", HeaderValue::from_static("1"));
        headers.append("x-multi", HeaderValue::from_static("2"));
        let map = header_map(&headers);
        assert_eq!(
            map,
            vec![("X-Multi".to_owned(), vec![b"1".to_vec(), b"2".to_vec()])]
        );
    }

    #[test]
    fn h2_cookie_crumbs_are_joined() {
        let mut map: proto::HeaderMap =
            vec![("Cookie".to_owned(), vec![b"a=1".to_vec(), b"b=2".to_vec()])];
        join_cookie_crumbs(&mut map);
        assert_eq!(map[0].1, vec![b"a=1; b=2".to_vec()]);
    }

    #[test]
    fn cookies_are_unescaped_last_wins_bad_dropped() {
        let mut headers = HeaderMap::new();
        headers.append(
            COOKIE,
            HeaderValue::from_static("a=1; b=x%20y+z; a=2; bad=%zz; q=\"quoted\""),
        );
        headers.append(COOKIE, HeaderValue::from_static("c=3"));
        let map = cookies(&headers);
        let get = |n: &str| {
            map.iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| String::from_utf8_lossy(&v[0]).into_owned())
        };
        assert_eq!(get("a").as_deref(), Some("2"));
        assert_eq!(get("b").as_deref(), Some("x y z"));
        assert_eq!(get("q").as_deref(), Some("quoted"));
        assert_eq!(get("c").as_deref(), Some("3"));
        assert_eq!(get("bad"), None);
    }

    #[test]
    fn uris_are_absolute() {
        let req = Request::get("/p?q=1")
            .header(HOST, "h:8080")
            .body(())
            .expect("request");
        assert_eq!(absolute_uri(&req, false), "http://h:8080/p?q=1");
        assert_eq!(absolute_uri(&req, true), "https://h:8080/p?q=1");
        let abs = Request::get("http://other/x").body(()).expect("request");
        assert_eq!(absolute_uri(&abs, false), "http://other/x");
        let h2 = Request::get("https://h2host/y")
            .version(Version::HTTP_2)
            .body(())
            .expect("request");
        assert_eq!(absolute_uri(&h2, false), "http://h2host/y");
    }

    #[test]
    fn extensions_are_go_path_ext_lowercased() {
        assert_eq!(extension("a.PHP"), ".php");
        assert_eq!(extension("dir.d/file"), "");
        assert_eq!(extension("archive.tar.gz"), ".gz");
        assert_eq!(extension("noext"), "");
    }
}
