//! The `static` middleware: serves files under `http.static.dir`, with
//! ETags, conditional requests (304) and single byte ranges. Requests it
//! does not serve (no extension, forbidden or not allowed extension,
//! missing file, directory, other methods) go on to PHP.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::{
    HeaderName, HeaderValue, ACCEPT_RANGES, CONTENT_RANGE, CONTENT_TYPE, ETAG, IF_MODIFIED_SINCE,
    IF_NONE_MATCH, LAST_MODIFIED, RANGE,
};
use hyper::{Method, Request};

use crate::config::StaticConfig;
use crate::middleware::BoxResponse;
use crate::response::{file_body, full, plain, Body, HttpResponse};

/// The middleware's settings, prepared once.
#[derive(Debug, Clone)]
pub struct StaticFiles {
    root: PathBuf,
    forbid: Vec<String>,
    allow: Vec<String>,
    calculate_etag: bool,
    weak: bool,
    response_headers: Vec<(HeaderName, HeaderValue)>,
}

impl StaticFiles {
    /// From `http.static` (the directory was checked by the config).
    pub fn new(config: &StaticConfig) -> std::io::Result<StaticFiles> {
        let lower = |l: &[String]| -> Vec<String> {
            l.iter()
                .filter(|e| !e.is_empty())
                .map(|e| e.to_lowercase())
                .collect()
        };
        let forbid = lower(&config.forbid);
        // Forbidden wins: remove them from the allowed list.
        let allow = lower(&config.allow)
            .into_iter()
            .filter(|e| !forbid.contains(e))
            .collect();
        Ok(StaticFiles {
            root: Path::new(&config.dir).canonicalize()?,
            forbid,
            allow,
            calculate_etag: config.calculate_etag,
            weak: config.weak,
            response_headers: config
                .response
                .iter()
                .filter_map(|(k, v)| {
                    Some((
                        HeaderName::from_bytes(k.as_bytes()).ok()?,
                        HeaderValue::from_str(v).ok()?,
                    ))
                })
                .collect(),
        })
    }
}

/// Percent-decodes a URL path; `None` for a bad escape or a NUL byte.
pub fn decode_path(path: &str) -> Option<String> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            out.push(hex(*bytes.get(i + 1)?)? * 16 + hex(*bytes.get(i + 2)?)?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    if out.contains(&0) {
        return None;
    }
    String::from_utf8(out).ok()
}

/// What to do with a decoded request path.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// 403: a traversal attempt.
    Refuse,
    /// Not a static file: hand over to the next layer.
    Pass,
    /// Try this file (relative to the root).
    Try(PathBuf),
}

impl StaticFiles {
    /// Decides by the path alone (RoadRunner: any `..` is refused; files
    /// without an extension go to PHP; then forbid and allow).
    pub fn decide(&self, decoded: &str) -> Decision {
        if decoded.contains("..") || decoded.contains('\\') {
            return Decision::Refuse;
        }
        let path = decoded.replace(['\r', '\n'], "");
        let base = path.rsplit('/').next().unwrap_or(&path);
        let ext = base
            .rfind('.')
            .map(|i| base[i..].to_lowercase())
            .unwrap_or_default();
        if ext.is_empty()
            || self.forbid.contains(&ext)
            || (!self.allow.is_empty() && !self.allow.contains(&ext))
        {
            return Decision::Pass;
        }
        Decision::Try(PathBuf::from(path.trim_start_matches('/')))
    }
}

/// Castagnoli CRC-32 (what RoadRunner's strong ETag uses); hardware
/// accelerated where the CPU has it.
pub fn crc32c(data: &[u8]) -> u32 {
    crc32c::crc32c(data)
}

/// `"<size>-<crc32c>"`, none for an empty file.
pub fn strong_etag(body: &[u8]) -> Option<String> {
    (!body.is_empty()).then(|| format!("\"{}-{}\"", body.len(), crc32c(body)))
}

/// `W/"<size>-<mtime seconds>.<nanoseconds>"`.
pub fn weak_etag(size: u64, modified: SystemTime) -> String {
    let since = modified.duration_since(UNIX_EPOCH).unwrap_or_default();
    format!("W/\"{size}-{}.{}\"", since.as_secs(), since.subsec_nanos())
}

fn etag_matches(if_none_match: &str, etag: &str) -> bool {
    let strip = |t: &str| t.trim().trim_start_matches("W/").to_owned();
    if_none_match
        .split(',')
        .any(|t| t.trim() == "*" || strip(t) == strip(etag))
}

/// Parses a single `bytes=a-b` range against `len`; `Err` when unsatisfiable.
fn parse_range(value: &str, len: u64) -> Option<Result<(u64, u64), ()>> {
    let spec = value.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None; // several ranges: served whole
    }
    let (start, end) = spec.split_once('-')?;
    let (start, end) = (start.trim(), end.trim());
    let range = if start.is_empty() {
        let suffix: u64 = end.parse().ok()?;
        if suffix == 0 {
            return Some(Err(()));
        }
        (len.saturating_sub(suffix), len.checked_sub(1)?)
    } else {
        let start: u64 = start.parse().ok()?;
        let end = if end.is_empty() {
            len.saturating_sub(1)
        } else {
            end.parse::<u64>().ok()?.min(len.saturating_sub(1))
        };
        (start, end)
    };
    Some(if range.0 >= len || range.0 > range.1 {
        Err(())
    } else {
        Ok(range)
    })
}

/// Files up to this size are read into memory; larger ones are streamed.
pub const STREAM_THRESHOLD: u64 = 1024 * 1024;

/// What the blocking lookup found.
enum Found {
    Missing,
    Outside(PathBuf),
    /// A small file, read whole.
    Small(std::fs::Metadata, Bytes),
    /// A large file, opened, with its CRC-32C when a strong ETag needs it.
    Large(std::fs::Metadata, std::fs::File, Option<u32>),
}

/// Stat, symlink check and read (or open and checksum), in one blocking hop.
fn lookup(path: &Path, root: &Path, want_crc: bool) -> Found {
    let metadata = match std::fs::metadata(path) {
        Ok(m) if m.is_file() => m,
        _ => return Found::Missing,
    };
    // A symlink may point outside the root: refuse what resolves out of it.
    match std::fs::canonicalize(path) {
        Ok(real) if real.starts_with(root) => {}
        Ok(real) => return Found::Outside(real),
        Err(_) => return Found::Missing,
    }
    if metadata.len() <= STREAM_THRESHOLD {
        return match std::fs::read(path) {
            Ok(body) => Found::Small(metadata, Bytes::from(body)),
            Err(_) => Found::Missing,
        };
    }
    let Ok(mut file) = std::fs::File::open(path) else {
        return Found::Missing;
    };
    let crc = if want_crc {
        use std::io::{Read, Seek};
        let mut crc = 0u32;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => crc = crc32c::crc32c_append(crc, &buf[..n]),
                Err(_) => return Found::Missing,
            }
        }
        if file.rewind().is_err() {
            return Found::Missing;
        }
        Some(crc)
    } else {
        None
    };
    Found::Large(metadata, file, crc)
}

/// The file's bytes from `start` to `end` inclusive as a body.
async fn slice_body(content: Content, start: u64, end: u64) -> std::io::Result<Body> {
    match content {
        Content::Memory(bytes) => Ok(full(bytes.slice(start as usize..=end as usize))),
        Content::File(file) => {
            use tokio::io::AsyncSeekExt;
            let mut file = tokio::fs::File::from_std(file);
            file.seek(std::io::SeekFrom::Start(start)).await?;
            Ok(file_body(file, end - start + 1))
        }
    }
}

enum Content {
    Memory(Bytes),
    File(std::fs::File),
}

/// The middleware.
pub async fn serve(
    files: &StaticFiles,
    req: Request<Incoming>,
    next: impl FnOnce(Request<Incoming>) -> BoxResponse,
) -> HttpResponse {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return next(req).await;
    }
    let Some(decoded) = decode_path(req.uri().path()) else {
        return plain(400, Bytes::new());
    };
    let relative = match files.decide(&decoded) {
        Decision::Refuse => return plain(403, Bytes::new()),
        Decision::Pass => return next(req).await,
        Decision::Try(relative) => relative,
    };
    let path = files.root.join(&relative);
    let root = files.root.clone();
    let want_crc = files.calculate_etag && !files.weak;
    let found = tokio::task::spawn_blocking(move || lookup(&path, &root, want_crc)).await;
    let (metadata, content, crc) = match found {
        Ok(Found::Small(metadata, body)) => {
            let crc = (want_crc && !body.is_empty()).then(|| crc32c(&body));
            (metadata, Content::Memory(body), crc)
        }
        Ok(Found::Large(metadata, file, crc)) => (metadata, Content::File(file), crc),
        Ok(Found::Outside(real)) => {
            tracing::warn!(target: "http", path = %real.display(), "static file outside the root refused");
            return plain(403, Bytes::new());
        }
        Ok(Found::Missing) | Err(_) => return next(req).await,
    };
    let len = metadata.len();
    let modified = metadata.modified().ok();
    let etag = if !files.calculate_etag {
        None
    } else if files.weak {
        modified.map(|m| weak_etag(len, m))
    } else {
        crc.map(|crc| format!("\"{len}-{crc}\""))
    };
    let headers = req.headers();
    let not_modified = match (
        &etag,
        headers.get(IF_NONE_MATCH).and_then(|v| v.to_str().ok()),
    ) {
        (Some(etag), Some(inm)) => etag_matches(inm, etag),
        (_, Some(_)) => false,
        (_, None) => match (
            modified,
            headers
                .get(IF_MODIFIED_SINCE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| httpdate::parse_http_date(v).ok()),
        ) {
            (Some(modified), Some(since)) => {
                let secs = |t: SystemTime| {
                    t.duration_since(UNIX_EPOCH)
                        .map(|d| d.as_secs())
                        .unwrap_or_default()
                };
                secs(modified) <= secs(since)
            }
            _ => false,
        },
    };
    let head = req.method() == Method::HEAD;
    let mut response = if not_modified {
        plain(304, Bytes::new())
    } else {
        let range = headers
            .get(RANGE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_range(v, len));
        let (status, start, end) = match range {
            Some(Ok((start, end))) => (206, start, end),
            Some(Err(())) => {
                let mut r = plain(416, Bytes::new());
                if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                    r.headers_mut().insert(CONTENT_RANGE, v);
                }
                return r;
            }
            None => (200, 0, len.saturating_sub(1)),
        };
        let sent = if len == 0 { 0 } else { end - start + 1 };
        let body = if head || len == 0 {
            full(Bytes::new())
        } else {
            match slice_body(content, start, end).await {
                Ok(body) => body,
                Err(e) => {
                    tracing::debug!(target: "http", error = %e, "static file unreadable, passing to the worker");
                    return next(req).await;
                }
            }
        };
        let mut response = hyper::Response::new(body);
        *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or_default();
        let out = response.headers_mut();
        // Set explicitly: streamed bodies do not know their length, and
        // HEAD announces the length a GET would send.
        out.insert(hyper::header::CONTENT_LENGTH, HeaderValue::from(sent));
        if status == 206 {
            if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{end}/{len}")) {
                out.insert(CONTENT_RANGE, v);
            }
        }
        let mime = mime_guess::from_path(&relative).first_or_octet_stream();
        if let Ok(v) = HeaderValue::from_str(mime.as_ref()) {
            out.insert(CONTENT_TYPE, v);
        }
        out.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        response
    };
    let out = response.headers_mut();
    if let Some(etag) = etag.and_then(|e| HeaderValue::from_str(&e).ok()) {
        out.insert(ETAG, etag);
    }
    if let Some(modified) = modified {
        if let Ok(v) = HeaderValue::from_str(&httpdate::fmt_http_date(modified)) {
            out.insert(LAST_MODIFIED, v);
        }
    }
    for (name, value) in &files.response_headers {
        out.insert(name.clone(), value.clone());
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(forbid: &[&str], allow: &[&str]) -> StaticFiles {
        let config = StaticConfig {
            forbid: forbid.iter().map(|s| s.to_string()).collect(),
            allow: allow.iter().map(|s| s.to_string()).collect(),
            ..StaticConfig::default()
        };
        StaticFiles::new(&config).expect("cwd exists")
    }

    #[test]
    fn traversal_is_refused_even_encoded() {
        let f = files(&[], &[]);
        for raw in [
            "/../etc/passwd",
            "/a/%2e%2e/b.txt",
            "/%2E%2E%2Fsecret.txt",
            "/a..b.css",
            "/a%5c..%5cb.txt",
        ] {
            let decoded = decode_path(raw).expect("decodes");
            assert_eq!(f.decide(&decoded), Decision::Refuse, "{raw}");
        }
        assert_eq!(decode_path("/a%00.txt"), None);
        assert_eq!(decode_path("/a%zz.txt"), None);
    }

    #[test]
    fn extensions_decide_pass_or_try() {
        let f = files(&[".php"], &[]);
        assert_eq!(f.decide("/index.php"), Decision::Pass);
        assert_eq!(f.decide("/INDEX.PHP"), Decision::Pass);
        assert_eq!(f.decide("/noext"), Decision::Pass);
        assert_eq!(f.decide("/css/a.css"), Decision::Try("css/a.css".into()));
        let f = files(&[".css"], &[".css", ".js"]);
        assert_eq!(f.decide("/a.css"), Decision::Pass);
        assert_eq!(f.decide("/a.txt"), Decision::Pass);
        assert_eq!(f.decide("/a.js"), Decision::Try("a.js".into()));
    }

    #[test]
    fn etags_follow_roadrunner() {
        // CRC-32C check value.
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(
            strong_etag(b"123456789").as_deref(),
            Some("\"9-3808858755\"")
        );
        assert_eq!(strong_etag(b""), None);
        let t = UNIX_EPOCH + std::time::Duration::new(1_700_000_000, 5);
        assert_eq!(weak_etag(10, t), "W/\"10-1700000000.5\"");
        assert!(etag_matches("\"a\", W/\"b\"", "\"b\""));
        assert!(etag_matches("*", "\"x\""));
        assert!(!etag_matches("\"a\"", "\"b\""));
    }

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-3", 10), Some(Ok((0, 3))));
        assert_eq!(parse_range("bytes=5-", 10), Some(Ok((5, 9))));
        assert_eq!(parse_range("bytes=-3", 10), Some(Ok((7, 9))));
        assert_eq!(parse_range("bytes=8-100", 10), Some(Ok((8, 9))));
        assert_eq!(parse_range("bytes=10-", 10), Some(Err(())));
        assert_eq!(parse_range("bytes=0-1,3-4", 10), None);
        assert_eq!(parse_range("items=0-1", 10), None);
    }
}
