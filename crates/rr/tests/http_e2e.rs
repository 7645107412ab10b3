//! End-to-end: the http plugin with real PHP workers (`tests/php/http_echo.php`)
//! and a real client (curl): methods, headers, cookies, query, JSON, form and
//! multipart bodies, uploads and their removal, 413, worker errors and
//! crashes, static files with ETag/304 and traversal refusal, gzip, CORS,
//! proxy IPs, h2c, TLS with HTTP/2 via ALPN, the HTTPS redirect, metrics
//! and `rr workers`/`rr reset`.
//!
//! Each test starts one rr and sends all its requests to it; readiness is the
//! `http server was started` log line, never a sleep.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use support::{free_tcp_port, ok, php_command, run_rr, RrProcess, START};

/// What curl got back.
#[derive(Debug)]
struct Reply {
    status: u16,
    /// `1.1` or `2`.
    version: String,
    /// Lower-cased names, in order.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "reply is not JSON ({e}): {:?} {}",
                self,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Runs curl with `args` (10 s bound), keeping the body, the last response's
/// headers, the status and the HTTP version.
fn curl(dir: &Path, args: &[&str]) -> Reply {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let unique = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let body_file = dir.join(format!("body-{unique}"));
    let head_file = dir.join(format!("head-{unique}"));
    let output = Command::new("curl")
        .args(["-sS", "-g", "--max-time", "10", "-o"])
        .arg(&body_file)
        .arg("-D")
        .arg(&head_file)
        .args(["-w", "%{http_code} %{http_version}"])
        .args(args)
        .output()
        .expect("run curl");
    let out = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "curl {args:?} failed: {out} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let (status, version) = out.split_once(' ').expect("status and version");
    let head = std::fs::read_to_string(&head_file).unwrap_or_default();
    // With redirects or 100-continue several heads are dumped: keep the last.
    let last = head
        .split("\r\n\r\n")
        .filter(|h| !h.trim().is_empty())
        .last()
        .unwrap_or_default();
    let headers = last
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let body = std::fs::read(&body_file).unwrap_or_default();
    let _ = std::fs::remove_file(&body_file);
    let _ = std::fs::remove_file(&head_file);
    Reply {
        status: status.parse().expect("numeric status"),
        version: version.to_owned(),
        headers,
        body,
    }
}

fn curl_available() -> bool {
    Command::new("curl")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

macro_rules! require_curl {
    () => {
        if !curl_available() {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("curl is not on PATH, and CI=true: the http end-to-end tests need curl");
            }
            eprintln!("SKIPPED: curl is not on PATH");
            return;
        }
    };
}

fn started(rr: &mut RrProcess) {
    ok(rr.wait_for_line(|l| l.is("rr", "rr server started"), START));
}

/// A directory of static files: `a.txt`, `page.html`, `script.php` (must
/// reach PHP), and `escape.txt`, a symlink to a file outside the root.
fn static_root(dir: &Path) -> PathBuf {
    let root = dir.join("public");
    std::fs::create_dir_all(root.join("sub")).expect("mkdir");
    std::fs::write(root.join("a.txt"), "hello static\n").expect("write");
    std::fs::write(root.join("sub/page.html"), "<p>page</p>".repeat(200)).expect("write");
    std::fs::write(root.join("script.php"), "<?php echo 'source';").expect("write");
    std::fs::write(dir.join("secret.txt"), "secret\n").expect("write");
    // Over the 1 MiB streaming threshold.
    let big: Vec<u8> = (0..3 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(root.join("big.bin"), big).expect("write");
    std::os::unix::fs::symlink(dir.join("secret.txt"), root.join("escape.txt")).expect("symlink");
    root
}

/// Core request path, static files and middlewares on one plain listener
/// with h2c on.
#[test]
fn requests_bodies_uploads_errors_static_and_middlewares() {
    require_php!();
    require_curl!();
    let dir = support::temp_dir();
    let root = static_root(dir.path());
    let uploads = dir.path().join("uploads");
    std::fs::create_dir_all(&uploads).expect("mkdir");
    let port = free_tcp_port();
    let rpc = free_tcp_port();
    let metrics = free_tcp_port();
    let status_port = free_tcp_port();
    let yaml = format!(
        r#"version: "3"
server:
  command: {command}
status:
  address: 127.0.0.1:{status_port}
rpc:
  listen: tcp://127.0.0.1:{rpc}
metrics:
  address: 127.0.0.1:{metrics}
http:
  address: 127.0.0.1:{port}
  max_request_size: 1
  trusted_subnets: ["127.0.0.0/8"]
  # v5 order: the last listed runs first (proxy, gzip, static, headers, sendfile)
  middleware: [sendfile, headers, static, gzip, proxy_ip_parser, http_metrics]
  uploads:
    dir: {uploads}
    forbid: [".exe"]
  http2:
    h2c: true
  static:
    dir: {root}
    forbid: [".php"]
    calculate_etag: true
    response:
      X-Static: "1"
  headers:
    request:
      X-From-Rr: added
    response:
      X-Powered-By: rr
    cors:
      allowed_origin: "https://app.example"
      allowed_methods: "GET,POST,PUT"
      allowed_headers: "*"
      max_age: 600
  pool:
    num_workers: 2
    allocate_timeout: 5s
    destroy_timeout: 5s
"#,
        command = php_command("http_echo.php"),
        uploads = uploads.display(),
        root = root.display(),
    );
    let mut rr = RrProcess::start(dir.path(), &yaml);
    started(&mut rr);
    let d = dir.path();
    let url = |path: &str| format!("http://127.0.0.1:{port}{path}");

    // GET: query, repeated headers, cookies; Host only in the URI.
    let r = curl(
        d,
        &[
            &url("/p/a?x=1&list[]=a&list[]=b"),
            "-H",
            "X-Multi: one",
            "-H",
            "X-Multi: two",
            "-H",
            "Cookie: sid=a%20b; theme=dark",
        ],
    );
    assert_eq!((r.status, r.version.as_str()), (200, "1.1"));
    let j = r.json();
    assert_eq!(j["method"], "GET");
    assert_eq!(
        j["uri"],
        format!("http://127.0.0.1:{port}/p/a?x=1&list[]=a&list[]=b")
    );
    assert_eq!(j["protocol"], "HTTP/1.1");
    assert_eq!(j["rawQuery"], "x=1&list[]=a&list[]=b");
    assert_eq!(j["query"]["list"], serde_json::json!(["a", "b"]));
    assert_eq!(j["headers"]["X-Multi"], serde_json::json!(["one", "two"]));
    assert_eq!(j["headers"]["X-From-Rr"], serde_json::json!(["added"]));
    assert!(j["headers"].get("Host").is_none(), "{j}");
    assert_eq!(j["cookies"]["sid"], "a b");
    assert_eq!(j["cookies"]["theme"], "dark");
    // proxy_ip_parser: the peer 127.0.0.1 is trusted but sent no header.
    assert_eq!(j["remoteAddr"], "127.0.0.1");
    assert_eq!(r.header("x-powered-by"), Some("rr"));

    // Forwarded client IP from a trusted peer.
    let r = curl(
        d,
        &[&url("/ip"), "-H", "X-Forwarded-For: 203.0.113.9, 10.0.0.1"],
    );
    assert_eq!(r.json()["remoteAddr"], "203.0.113.9");

    // Methods with raw bodies: JSON stays raw, parsed=false.
    for method in ["POST", "PUT", "PATCH", "DELETE"] {
        let r = curl(
            d,
            &[
                "-X",
                method,
                &url("/json"),
                "-H",
                "Content-Type: application/json",
                "--data-binary",
                r#"{"k":[1,2]}"#,
            ],
        );
        let j = r.json();
        assert_eq!(j["method"], method);
        assert_eq!(j["body"], r#"{"k":[1,2]}"#);
        assert_eq!(j["parsed"], false);
    }
    // HEAD: no body in either direction, status and headers still there.
    // (`-I` writes the head where the body would go: no JSON may follow it.)
    let r = curl(d, &["-I", &url("/head")]);
    assert_eq!(r.status, 200);
    assert!(!r.text().contains('{'), "{}", r.text());

    // Urlencoded form: the bracket tree as JSON, parsed=true.
    let r = curl(
        d,
        &[
            &url("/form"),
            "--data",
            "user[name]=Ann+Lee&user[tags][]=a&user[tags][]=b&n=1&n=2",
        ],
    );
    let j = r.json();
    assert_eq!(j["parsed"], true);
    assert_eq!(
        j["parsedBody"],
        serde_json::json!({"user": {"name": "Ann Lee", "tags": ["a", "b"]}, "n": "2"})
    );

    // A key that is both a scalar and a branch: 500 with the reason (v5).
    let r = curl(d, &[&url("/form"), "--data", "a=1&a[b]=2"]);
    assert_eq!(r.status, 500);
    assert_eq!(
        r.text(),
        "serve_http: invalid multiple values to key 'a' in tree\n"
    );

    // Multipart: fields in the body, files in uploads; a forbidden extension
    // gets error 8; temp files are gone once the response is out.
    let file_a = d.join("a.bin");
    std::fs::write(&file_a, vec![7u8; 70_000]).expect("write");
    let file_exe = d.join("tool.exe");
    std::fs::write(&file_exe, "MZ").expect("write");
    let r = curl(
        d,
        &[
            &url("/upload"),
            "-F",
            "title=report",
            "-F",
            "meta[lang]=en",
            "-F",
            &format!("docs[]=@{};type=application/x-test", file_a.display()),
            "-F",
            &format!("docs[]=@{}", file_a.display()),
            "-F",
            &format!("bad=@{}", file_exe.display()),
        ],
    );
    let j = r.json();
    assert_eq!(j["parsed"], true);
    assert_eq!(
        j["parsedBody"],
        serde_json::json!({"title": "report", "meta": {"lang": "en"}})
    );
    let docs = j["uploads"]["docs"].as_array().expect("docs[] is a list");
    assert_eq!(docs.len(), 2, "{j}");
    assert_eq!(docs[0]["name"], "a.bin");
    assert_eq!(docs[0]["mime"], "application/x-test");
    assert_eq!(docs[0]["size"], 70_000);
    assert_eq!(docs[0]["error"], 0);
    assert_eq!(docs[0]["exists"], true);
    assert_eq!(docs[0]["actualSize"], 70_000);
    let tmp = docs[0]["tmpName"].as_str().expect("tmpName");
    assert!(tmp.starts_with(uploads.to_str().expect("utf-8")), "{tmp}");
    assert_eq!(j["uploads"]["bad"]["error"], 8);
    assert_eq!(j["uploads"]["bad"]["tmpName"], "");
    for doc in docs {
        let path = doc["tmpName"].as_str().expect("tmpName");
        assert!(!Path::new(path).exists(), "{path} was not removed");
    }
    assert_eq!(
        std::fs::read_dir(&uploads).expect("read uploads").count(),
        0
    );

    // 413 beyond max_request_size (1 MB), announced by Content-Length.
    let big = d.join("big.bin");
    std::fs::write(&big, vec![b'x'; 1024 * 1024 + 10]).expect("write");
    let r = curl(
        d,
        &[
            &url("/big"),
            "-H",
            "Content-Type: application/octet-stream",
            "--data-binary",
            &format!("@{}", big.display()),
        ],
    );
    assert_eq!(r.status, 413);
    assert!(r.text().contains("request body too large"), "{}", r.text());
    // Without Content-Length (chunked) the limit stops the read: raw and multipart.
    for form in [false, true] {
        let data = format!("@{}", big.display());
        let field = format!("f={data}");
        let mut args = vec![
            url("/big"),
            "-H".into(),
            "Transfer-Encoding: chunked".into(),
        ];
        if form {
            args.extend(["-F".into(), field]);
        } else {
            args.extend([
                "-H".into(),
                "Content-Type: application/octet-stream".into(),
                "--data-binary".into(),
                data,
            ]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_eq!(curl(d, &args).status, 413, "chunked, form={form}");
    }
    // Just under the limit passes.
    std::fs::write(&big, vec![b'x'; 1024 * 1024 - 10]).expect("write");
    let r = curl(
        d,
        &[
            &url("/big"),
            "-H",
            "Content-Type: application/octet-stream",
            "--data-binary",
            &format!("@{}", big.display()),
        ],
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["bodyLength"], 1024 * 1024 - 10);

    // Worker error: internal_error_code, empty body (no pool.debug).
    let r = curl(d, &[&url("/?error=secret+detail")]);
    assert_eq!(r.status, 500);
    assert!(r.body.is_empty(), "{}", r.text());
    // Worker crash mid-request: 5xx for that request; the next ones work.
    let r = curl(d, &[&url("/?crash=3")]);
    assert_eq!(r.status, 500);
    for _ in 0..3 {
        assert_eq!(curl(d, &[&url("/after-crash")]).status, 200);
    }
    // Status and multi-value headers from PHP.
    let r = curl(
        d,
        &[&url(
            "/?status=201&header[X-A][]=1&header[X-A][]=2&header[X-B]=b",
        )],
    );
    assert_eq!(r.status, 201);
    let xa: Vec<&str> = r
        .headers
        .iter()
        .filter(|(n, _)| n == "x-a")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(xa, ["1", "2"]);
    assert_eq!(r.header("x-b"), Some("b"));

    // sendfile: PHP names a file, rr sends it; `..` is refused, missing is 404.
    let secret = d.join("secret.txt");
    let r = curl(
        d,
        &[&url(&format!("/?header[X-Sendfile]={}", secret.display()))],
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "secret\n");
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    assert_eq!(r.header("x-sendfile"), None);
    let r = curl(d, &[&url("/?header[X-Sendfile]=/tmp/../etc/passwd")]);
    assert_eq!(r.status, 403);
    let r = curl(d, &[&url("/?header[X-Sendfile]=/nonexistent/file")]);
    assert_eq!((r.status, r.text().as_str()), (404, "not found\n"));

    // Static: served with ETag and response headers; 304 on If-None-Match.
    let r = curl(d, &[&url("/a.txt")]);
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "hello static\n");
    assert_eq!(r.header("x-static"), Some("1"));
    let etag = r.header("etag").expect("etag").to_owned();
    assert!(etag.starts_with("\"13-"), "{etag}");
    let r = curl(
        d,
        &[&url("/a.txt"), "-H", &format!("If-None-Match: {etag}")],
    );
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty());
    // A large file is streamed: whole, by range, and its length on HEAD.
    let expected: Vec<u8> = (0..3 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let r = curl(d, &[&url("/big.bin")]);
    assert_eq!(r.status, 200);
    assert!(
        r.body == expected,
        "big.bin differs ({} bytes)",
        r.body.len()
    );
    assert!(r
        .header("etag")
        .is_some_and(|e| e.starts_with("\"3145728-")));
    let r = curl(d, &[&url("/big.bin"), "-H", "Range: bytes=2000000-2000009"]);
    assert_eq!(r.status, 206);
    assert_eq!(r.body, expected[2_000_000..2_000_010]);
    assert_eq!(
        r.header("content-range"),
        Some("bytes 2000000-2000009/3145728")
    );
    let r = curl(d, &["--http2-prior-knowledge", &url("/big.bin")]);
    assert!(r.version == "2" && r.body == expected, "big.bin over h2c");
    let r = curl(d, &["-I", &url("/big.bin")]);
    assert_eq!(r.header("content-length"), Some("3145728"));
    let r = curl(
        d,
        &[&url(&format!(
            "/?header[X-Sendfile]={}",
            root.join("big.bin").display()
        ))],
    );
    assert!(
        r.body == expected,
        "sendfile big.bin differs ({} bytes)",
        r.body.len()
    );

    // Traversal (raw and encoded) and a symlink out of the root are refused.
    for path in [
        "/../secret.txt",
        "/sub/%2e%2e/%2e%2e/secret.txt",
        "/escape.txt",
    ] {
        let r = curl(d, &["--path-as-is", &url(path)]);
        assert_eq!(r.status, 403, "{path}: {}", r.text());
    }
    // Forbidden extension and missing files go to PHP.
    assert_eq!(curl(d, &[&url("/script.php")]).json()["method"], "GET");
    assert_eq!(curl(d, &[&url("/missing.css")]).json()["method"], "GET");

    // gzip middleware: large bodies are compressed, small ones are not.
    let r = curl(d, &[&url("/sub/page.html"), "-H", "Accept-Encoding: gzip"]);
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert!(r.body.len() < 2200, "compressed size {}", r.body.len());
    let r = curl(d, &["--compressed", &url("/sub/page.html")]);
    assert_eq!(r.text(), "<p>page</p>".repeat(200));
    // Beyond RoadRunner: zstd and brotli for clients that take them, and
    // curl --compressed (which offers all three) gets zstd.
    assert_eq!(r.header("content-encoding"), Some("zstd"));
    for coding in ["br", "zstd", "gzip"] {
        let accept = format!("Accept-Encoding: {coding}");
        let r = curl(d, &["--compressed", "-H", &accept, &url("/sub/page.html")]);
        assert_eq!(r.header("content-encoding"), Some(coding));
        assert_eq!(r.text(), "<p>page</p>".repeat(200), "{coding}");
    }
    let r = curl(d, &[&url("/a.txt"), "-H", "Accept-Encoding: gzip"]);
    assert_eq!(r.header("content-encoding"), None);
    // A large PHP reply (compressed off the async threads) round-trips.
    let text = d.join("text.txt");
    let long = "line of text to compress\n".repeat(20_000);
    std::fs::write(&text, &long).expect("write");
    let r = curl(
        d,
        &[
            "--compressed",
            &url("/?raw=1"),
            "-H",
            "Content-Type: text/plain",
            "--data-binary",
            &format!("@{}", text.display()),
        ],
    );
    assert_eq!(r.header("content-encoding"), Some("zstd"));
    assert!(
        r.text() == long,
        "decoded reply differs ({} bytes)",
        r.body.len()
    );

    // CORS: the preflight is answered without PHP, actual requests get the origin.
    let r = curl(
        d,
        &[
            "-X",
            "OPTIONS",
            &url("/api"),
            "-H",
            "Origin: https://app.example",
            "-H",
            "Access-Control-Request-Method: PUT",
            "-H",
            "Access-Control-Request-Headers: X-Token",
        ],
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    assert_eq!(r.header("access-control-allow-methods"), Some("PUT"));
    assert_eq!(r.header("access-control-max-age"), Some("600"));
    assert!(r.body.is_empty());
    let r = curl(d, &[&url("/api"), "-H", "Origin: https://app.example"]);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    let r = curl(d, &[&url("/api"), "-H", "Origin: https://evil.example"]);
    assert_eq!(r.header("access-control-allow-origin"), None);

    // h2c with prior knowledge on the same port.
    let r = curl(d, &["--http2-prior-knowledge", &url("/h2c?x=1")]);
    assert_eq!(r.version, "2");
    assert_eq!(r.json()["protocol"], "HTTP/2.0");
    assert_eq!(r.json()["uri"], format!("http://127.0.0.1:{port}/h2c?x=1"));

    // Metrics: requests by status.
    let (status, text) = ok(support::http_get(metrics, "/metrics"));
    assert_eq!(status, 200);
    assert!(
        text.contains("rr_http_request_total{status=\"200\"}"),
        "{text}"
    );
    assert!(
        text.contains("rr_http_request_total{status=\"500\"}"),
        "{text}"
    );
    assert!(
        text.contains("rr_http_request_duration_seconds_bucket"),
        "{text}"
    );
    assert!(text.contains("rr_http_total_workers 2"), "{text}");

    // Health and readiness through the status plugin.
    for probe in ["/health?plugin=http", "/ready?plugin=http"] {
        let (code, text) = ok(support::http_get(status_port, probe));
        assert_eq!(code, 200, "{probe}: {text}");
    }

    // rr workers http / rr reset http over RPC.
    let out = run_rr(
        d,
        &["workers", "http", "-c", ".rr.yaml"],
        Duration::from_secs(20),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("ready") || text.contains("READY"), "{text}");
    let out = run_rr(
        d,
        &["reset", "http", "-c", ".rr.yaml"],
        Duration::from_secs(30),
    );
    assert!(
        out.status.success(),
        "{} {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(curl(d, &[&url("/after-reset")]).status, 200);

    rr.stop_cleanly();
}

/// HTTPS with a self-signed certificate: HTTP/2 via ALPN, HTTP/1.1 on
/// request, and the plain listener redirecting with HSTS.
#[test]
fn tls_alpn_h2_and_redirect() {
    require_php!();
    require_curl!();
    let dir = support::temp_dir();
    let d = dir.path();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
        .expect("self-signed certificate");
    std::fs::write(d.join("cert.pem"), cert.cert.pem()).expect("write cert");
    std::fs::write(d.join("key.pem"), cert.key_pair.serialize_pem()).expect("write key");
    let plain = free_tcp_port();
    let tls = free_tcp_port();
    let yaml = format!(
        r#"version: "3"
server:
  command: {command}
http:
  address: 127.0.0.1:{plain}
  ssl:
    address: 127.0.0.1:{tls}
    redirect: true
    cert: cert.pem
    key: key.pem
  pool:
    num_workers: 1
    allocate_timeout: 5s
    destroy_timeout: 5s
"#,
        command = php_command("http_echo.php"),
    );
    let mut rr = RrProcess::start(d, &yaml);
    started(&mut rr);
    let resolve = format!("localhost:{tls}:127.0.0.1");
    let cacert = d.join("cert.pem");
    let cacert = cacert.to_str().expect("utf-8");
    let url = format!("https://localhost:{tls}/secure?q=1");

    let r = curl(
        d,
        &["--http2", "--cacert", cacert, "--resolve", &resolve, &url],
    );
    assert_eq!((r.status, r.version.as_str()), (200, "2"));
    let j = r.json();
    assert_eq!(j["protocol"], "HTTP/2.0");
    assert_eq!(j["uri"], format!("https://localhost:{tls}/secure?q=1"));

    let r = curl(
        d,
        &["--http1.1", "--cacert", cacert, "--resolve", &resolve, &url],
    );
    assert_eq!((r.status, r.version.as_str()), (200, "1.1"));
    assert_eq!(
        r.json()["uri"],
        format!("https://localhost:{tls}/secure?q=1")
    );

    let r = curl(d, &[&format!("http://127.0.0.1:{plain}/x?y=1")]);
    assert_eq!(r.status, 308);
    assert_eq!(
        r.header("location"),
        Some(format!("https://127.0.0.1:{tls}/x?y=1").as_str())
    );
    assert!(r
        .header("strict-transport-security")
        .is_some_and(|v| v.contains("max-age=31536000")));

    rr.stop_cleanly();
}

/// A missing certificate stops rr at start with RoadRunner's message.
#[test]
fn missing_certificate_fails_start() {
    let dir = support::temp_dir();
    let d = dir.path();
    std::fs::write(d.join("key.pem"), "x").expect("write");
    let yaml = format!(
        "version: \"3\"\nserver:\n  command: [\"php\", \"-v\"]\nhttp:\n  ssl:\n    address: 127.0.0.1:{}\n    key: key.pem\n    cert: nope.pem\n",
        free_tcp_port()
    );
    let mut rr = RrProcess::start(d, &yaml);
    rr.expect_quick_failure("config errors are found in init");
    rr.drain();
    let text: Vec<&str> = rr.lines().iter().map(|l| l.text.as_str()).collect();
    let all = text.join("\n");
    assert!(
        all.contains("cert file 'nope.pem' does not exists") && all.contains("http.ssl.cert"),
        "{all}"
    );
}

/// With its only worker busy, a request fails with `internal_error_code`
/// after `allocate_timeout` (not after the busy one finishes); a stop lets
/// the in-flight request finish with its reply before rr exits 0.
#[test]
fn allocate_timeout_is_quick_and_stop_drains_in_flight_requests() {
    require_php!();
    require_curl!();
    let dir = support::temp_dir();
    let d = dir.path().to_owned();
    let port = free_tcp_port();
    let yaml = format!(
        r#"version: "3"
server:
  command: {command}
http:
  address: 127.0.0.1:{port}
  internal_error_code: 503
  access_logs: true
  pool:
    num_workers: 1
    allocate_timeout: 300ms
    destroy_timeout: 10s
"#,
        command = php_command("http_echo.php"),
    );
    let mut rr = RrProcess::start(&d, &yaml);
    started(&mut rr);
    let worker = rr.ready_pids()[0];

    // A client that gives up does not cost the worker its life: it
    // finishes the request and serves the next one.
    let gone = Command::new("curl")
        .args(["-sS", "--max-time", "0.3"])
        .arg(format!("http://127.0.0.1:{port}/gone?sleep_ms=600"))
        .output()
        .expect("run curl");
    assert!(!gone.status.success(), "the client should have timed out");
    // The request is finished (and logged) although its client is gone.
    ok(rr.wait_for_line(
        |l| {
            l.is("http", "http access log")
                && l.field_str("URI").is_some_and(|u| u.contains("/gone"))
        },
        START,
    ));
    let r = curl(&d, &[&format!("http://127.0.0.1:{port}/after-gone")]);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["pid"], worker);
    rr.drain();
    assert_eq!(rr.ready_pids(), [worker], "{}", rr.recent());

    let slow = {
        let d = d.clone();
        std::thread::spawn(move || {
            curl(
                &d,
                &[&format!("http://127.0.0.1:{port}/slow?sleep_ms=1200")],
            )
        })
    };
    // The worker has the slow request once it logs it.
    ok(rr.wait_for_line(
        |l| {
            l.logger() == Some("server")
                && l.message()
                    .is_some_and(|m| m.starts_with("REQUEST") && m.contains("/slow"))
        },
        START,
    ));
    let begun = std::time::Instant::now();
    let r = curl(&d, &[&format!("http://127.0.0.1:{port}/starved")]);
    let took = begun.elapsed();
    assert_eq!(r.status, 503);
    assert!(r.body.is_empty(), "{}", r.text());
    assert!(
        took < Duration::from_millis(1500),
        "no-worker answer took {took:?}"
    );

    // Stop while the slow request is in flight: it still gets its reply.
    rr.signal(nix::sys::signal::Signal::SIGINT);
    let r = slow.join().expect("slow request thread");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json()["uri"],
        format!("http://127.0.0.1:{port}/slow?sleep_ms=1200")
    );
    let (status, _) = ok(rr.wait_exit(Duration::from_secs(15)));
    assert_eq!(status.code(), Some(0), "{}", rr.recent());
}

/// `ssl.root_ca` with `require_and_verify_client_cert`: a client without a
/// certificate signed by that CA is refused at the handshake; one with it
/// is served.
#[test]
fn mutual_tls_requires_a_client_certificate() {
    require_php!();
    require_curl!();
    use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair};
    let dir = support::temp_dir();
    let d = dir.path();
    let write = |name: &str, text: String| std::fs::write(d.join(name), text).expect("write");
    let server = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("cert");
    write("cert.pem", server.cert.pem());
    write("key.pem", server.key_pair.serialize_pem());
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().expect("key");
    let ca = ca_params.self_signed(&ca_key).expect("ca");
    write("ca.pem", ca.pem());
    let mut client_params = CertificateParams::new(vec!["client".to_owned()]).expect("params");
    client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client_key = KeyPair::generate().expect("key");
    let client = client_params
        .signed_by(&client_key, &ca, &ca_key)
        .expect("client cert");
    write("client.pem", client.pem());
    write("client.key", client_key.serialize_pem());

    let tls = free_tcp_port();
    let yaml = format!(
        r#"version: "3"
server:
  command: {command}
http:
  ssl:
    address: 127.0.0.1:{tls}
    cert: cert.pem
    key: key.pem
    root_ca: ca.pem
    client_auth_type: require_and_verify_client_cert
  pool:
    num_workers: 1
    allocate_timeout: 5s
    destroy_timeout: 5s
"#,
        command = php_command("http_echo.php"),
    );
    let mut rr = RrProcess::start(d, &yaml);
    started(&mut rr);
    let resolve = format!("localhost:{tls}:127.0.0.1");
    let url = format!("https://localhost:{tls}/mtls");
    let path = |n: &str| d.join(n).display().to_string();

    let refused = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "10",
            "--cacert",
            &path("cert.pem"),
            "--resolve",
            &resolve,
            &url,
        ])
        .output()
        .expect("run curl");
    assert!(
        !refused.status.success(),
        "a client without a certificate was served"
    );

    let r = curl(
        d,
        &[
            "--cacert",
            &path("cert.pem"),
            "--cert",
            &path("client.pem"),
            "--key",
            &path("client.key"),
            "--resolve",
            &resolve,
            &url,
        ],
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["uri"], url);
    rr.stop_cleanly();
}

/// With `server.user`, upload temp files (created 0600 by rr) are handed to
/// that user, so PHP running as it can read them.
#[test]
fn uploads_belong_to_the_worker_user() {
    require_php!();
    require_curl!();
    if !nix::unistd::Uid::effective().is_root()
        || nix::unistd::User::from_name("nobody")
            .ok()
            .flatten()
            .is_none()
    {
        eprintln!("SKIPPED: needs root and a `nobody` user");
        return;
    }
    let dir = support::temp_dir();
    let d = dir.path();
    let port = free_tcp_port();
    let yaml = format!(
        r#"version: "3"
server:
  command: {command}
  user: nobody
http:
  address: 127.0.0.1:{port}
  pool:
    num_workers: 1
    allocate_timeout: 5s
    destroy_timeout: 5s
"#,
        command = php_command("http_echo.php"),
    );
    let mut rr = RrProcess::start(d, &yaml);
    started(&mut rr);
    let file = d.join("doc.txt");
    std::fs::write(&file, "for nobody\n").expect("write");
    let r = curl(
        d,
        &[
            &format!("http://127.0.0.1:{port}/upload"),
            "-F",
            &format!("doc=@{}", file.display()),
        ],
    );
    let doc = &r.json()["uploads"]["doc"];
    assert_eq!(doc["error"], 0, "{doc}");
    // sha256 of "for nobody\n": PHP could read the file.
    assert_eq!(
        doc["sha256"],
        "b2d857e5811d72d9905357633b6c240e7baa4a177106022f31e2bb94b311f021"
    );
    rr.stop_cleanly();
}

/// `pool.debug: true` (a fresh worker per request) puts the error text into
/// the `internal_error_code` body, which is empty otherwise.
#[test]
fn debug_pool_shows_the_error_text() {
    require_php!();
    require_curl!();
    let dir = support::temp_dir();
    let d = dir.path();
    let port = free_tcp_port();
    let yaml = format!(
        r#"version: "3"
server:
  command: {command}
http:
  address: 127.0.0.1:{port}
  pool:
    debug: true
    allocate_timeout: 10s
    destroy_timeout: 5s
"#,
        command = php_command("http_echo.php"),
    );
    let mut rr = RrProcess::start(d, &yaml);
    started(&mut rr);
    let r = curl(
        d,
        &[&format!("http://127.0.0.1:{port}/?error=visible+in+debug")],
    );
    assert_eq!(r.status, 500);
    assert!(r.text().contains("visible in debug"), "{}", r.text());
    let r = curl(d, &[&format!("http://127.0.0.1:{port}/ok")]);
    assert_eq!(r.status, 200);
    rr.stop_cleanly();
}

/// A minimal rr with the echo worker on `port`, uploads into `uploads`, and
/// h2c on, for the limit and upload-safety tests below.
fn echo_server(dir: &Path, port: u16, uploads: &Path) -> RrProcess {
    let yaml = format!(
        r#"version: "3"
server:
  command: {command}
http:
  address: 127.0.0.1:{port}
  uploads:
    dir: {uploads}
  http2:
    h2c: true
  pool:
    num_workers: 1
    allocate_timeout: 5s
    destroy_timeout: 5s
"#,
        command = php_command("http_echo.php"),
        uploads = uploads.display(),
    );
    let mut rr = RrProcess::start(dir, &yaml);
    started(&mut rr);
    rr
}

/// Request headers are limited like RoadRunner's (Go's 1 MiB plus 4 KiB),
/// on HTTP/1 and HTTP/2 alike: 600 KiB of headers reach PHP over HTTP/1.1
/// (hyper alone stops near 408 KiB) and 60 KiB over HTTP/2 (hyper alone
/// stops at 16 KiB; curl sends no header block over 64 KiB), 1.1 MiB get
/// 431 before any worker sees them (sent raw: curl refuses headers that
/// large itself), and the server goes on.
#[test]
fn request_headers_are_limited_like_roadrunner() {
    require_php!();
    require_curl!();
    let dir = support::temp_dir();
    let d = dir.path();
    let uploads = d.join("uploads");
    std::fs::create_dir_all(&uploads).expect("mkdir");
    let port = free_tcp_port();
    let mut rr = echo_server(d, port, &uploads);
    let url = format!("http://127.0.0.1:{port}/headers");
    let header_file = |name: &str, bytes: usize| {
        let path = d.join(name);
        std::fs::write(&path, format!("X-Big: {}\r\n", "a".repeat(bytes))).expect("write");
        format!("@{}", path.display())
    };
    let h1_allowed = header_file("h1-allowed", 600 * 1024);
    let h2_allowed = header_file("h2-allowed", 60 * 1024);

    let r = curl(d, &[&url, "-H", &h1_allowed]);
    assert_eq!(r.status, 200, "HTTP/1.1, 600 KiB of headers");
    let sent = r.json()["headers"]["X-Big"][0].as_str().map(str::len);
    assert_eq!(sent, Some(600 * 1024));
    let r = curl(d, &[&url, "--http2-prior-knowledge", "-H", &h2_allowed]);
    assert_eq!(
        (r.status, r.version.as_str()),
        (200, "2"),
        "HTTP/2, 60 KiB of headers"
    );
    let sent = r.json()["headers"]["X-Big"][0].as_str().map(str::len);
    assert_eq!(sent, Some(60 * 1024));

    let reached_php =
        |rr: &RrProcess| rr.count(|l| l.message().is_some_and(|m| m.starts_with("REQUEST")));
    let before = reached_php(&rr);
    let status = raw_status_line(port, &format!("X-Big: {}\r\n", "a".repeat(1100 * 1024)));
    assert!(
        status.contains(" 431 "),
        "HTTP/1.1, 1.1 MiB of headers: {status:?}"
    );
    // One byte over the limit mostly arrives whole, and hyper checks its
    // limit only while a head is incomplete: rr's own check must answer.
    // The head is the request line (23 bytes), `Host: x` (9), `X-Big: `
    // with its CRLF (9) and the blank line (2).
    let over_by_one = MAX_HEADER_BYTES + 1 - (23 + 9 + 9 + 2);
    let status = raw_status_line(port, &format!("X-Big: {}\r\n", "a".repeat(over_by_one)));
    assert!(
        status.contains(" 431 "),
        "HTTP/1.1, a head one byte over the limit: {status:?}"
    );
    assert_eq!(reached_php(&rr), before, "{}", rr.recent());

    let r = curl(d, &[&url]);
    assert_eq!(r.status, 200, "the server goes on");
    rr.stop_cleanly();
}

/// RoadRunner's limit on a request head: Go's `DefaultMaxHeaderBytes`
/// (1 MiB) plus the 4 KiB it allows on top.
const MAX_HEADER_BYTES: usize = (1 << 20) + 4096;

/// Sends `GET /headers` with `headers` over a plain connection and returns
/// the reply's status line. The server may close before it has read all of
/// it, so a failed write is not an error here.
fn raw_status_line(port: u16, headers: &str) -> String {
    use std::io::{BufRead, Write};
    let stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    let request = format!("GET /headers HTTP/1.1\r\nHost: x\r\n{headers}\r\n");
    let _ = (&stream).write_all(request.as_bytes());
    let mut line = String::new();
    let _ = std::io::BufReader::new(&stream).read_line(&mut line);
    line
}

/// An upload's client-side name never chooses where it lands: names with
/// `..`, absolute paths, and the name of a file already in the uploads
/// directory all go to fresh temp files there, nothing is overwritten, and
/// the temp files are gone after the request.
#[test]
fn upload_names_never_choose_or_overwrite_a_file() {
    require_php!();
    require_curl!();
    let dir = support::temp_dir();
    let d = dir.path();
    let uploads = d.join("uploads");
    std::fs::create_dir_all(&uploads).expect("mkdir");
    let victim = uploads.join("victim.txt");
    std::fs::write(&victim, "keep me\n").expect("write");
    let outside = d.join("outside.txt");
    std::fs::write(&outside, "keep me too\n").expect("write");
    let port = free_tcp_port();
    let mut rr = echo_server(d, port, &uploads);

    let payload = d.join("payload.txt");
    std::fs::write(&payload, "attacker\n").expect("write");
    let names = [
        "victim.txt".to_owned(),
        "../outside.txt".to_owned(),
        outside.display().to_string(),
        "..%2Foutside.txt".to_owned(),
    ];
    let mut args = vec![format!("http://127.0.0.1:{port}/upload")];
    for (i, name) in names.iter().enumerate() {
        args.push("-F".to_owned());
        args.push(format!("f{i}=@{};filename={name}", payload.display()));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = curl(d, &args);
    assert_eq!(r.status, 200, "{}", r.text());
    let j = r.json();
    for i in 0..names.len() {
        let leaf = &j["uploads"][format!("f{i}")];
        assert_eq!(leaf["error"], 0, "{leaf}");
        let tmp = PathBuf::from(leaf["tmpName"].as_str().expect("tmpName"));
        assert_eq!(tmp.parent(), Some(uploads.as_path()), "{leaf}");
        assert_ne!(tmp, victim, "{leaf}");
        assert_eq!(leaf["actualSize"], 9, "{leaf}");
    }
    assert_eq!(
        std::fs::read_to_string(&victim).expect("victim"),
        "keep me\n"
    );
    assert_eq!(
        std::fs::read_to_string(&outside).expect("outside"),
        "keep me too\n"
    );
    let left: Vec<_> = std::fs::read_dir(&uploads)
        .expect("read uploads")
        .filter_map(Result::ok)
        .map(|e| e.file_name())
        .collect();
    assert_eq!(
        left,
        vec![std::ffi::OsString::from("victim.txt")],
        "temp files left"
    );
    rr.stop_cleanly();
}
