//! End-to-end: streamed HTTP responses with real PHP workers
//! (`tests/php/http_stream.php`, on `Rr\Http\HttpWorker`) and real clients
//! (a raw HTTP/1.1 socket, curl for HTTP/2): chunks reach the client while
//! the worker is still streaming, 103 Early Hints are dropped without
//! leaking, a client that goes away stops the stream and the worker serves
//! again, and a worker that ignores the stop is killed after
//! `pool.stream_timeout`.
//!
//! Every wait is on an event (a worker's stderr line, bytes on the socket,
//! a FIFO the worker selects on) with a timeout, never a sleep.

use crate::support;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use support::{free_tcp_port, ok, php_command, RrProcess, EVENTUALLY, START};

fn tool_available(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// One rr with a single worker (so "the same worker" is certain) running
/// `tests/php/http_stream.php`.
fn start_rr(dir: &Path, stream_timeout: &str) -> (RrProcess, u16) {
    start_worker(dir, "http_stream.php", stream_timeout, "")
}

/// One rr with a single worker running `script`; `env` is the
/// `server.env` section's body, if any.
fn start_worker(dir: &Path, script: &str, stream_timeout: &str, env: &str) -> (RrProcess, u16) {
    let port = free_tcp_port();
    let yaml = format!(
        r#"version: "3"
server:
  command: {command}
{env}
http:
  address: 127.0.0.1:{port}
  http2:
    h2c: true
  pool:
    num_workers: 1
    allocate_timeout: 10s
    destroy_timeout: 5s
    stream_timeout: {stream_timeout}
"#,
        command = php_command(script),
    );
    let mut rr = RrProcess::start(dir, &yaml);
    ok(rr.wait_for_line(|l| l.is("rr", "rr server started"), START));
    (rr, port)
}

/// An HTTP/1.1 request whose answer is read bit by bit.
struct Streaming {
    socket: TcpStream,
    /// Everything received so far (head and raw chunked body).
    received: Vec<u8>,
}

impl Streaming {
    fn get(port: u16, target: &str) -> Streaming {
        Streaming::request(port, "GET", target)
    }

    fn request(port: u16, method: &str, target: &str) -> Streaming {
        let address = SocketAddr::from(([127, 0, 0, 1], port));
        let mut socket =
            TcpStream::connect_timeout(&address, Duration::from_secs(10)).expect("connect to rr");
        write!(
            socket,
            "{method} {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
        )
        .expect("send the request");
        Streaming {
            socket,
            received: Vec::new(),
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.received).into_owned()
    }

    /// Reads until `needle` has arrived (bounded by `timeout`).
    fn read_until(&mut self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 64 * 1024];
        while !self.text().contains(needle) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "{needle:?} did not arrive within {timeout:?}; got {:?}",
                self.text()
            );
            self.socket
                .set_read_timeout(Some(left))
                .expect("set a read timeout");
            match self.socket.read(&mut buf) {
                Ok(0) => panic!(
                    "connection closed before {needle:?} arrived; got {:?}",
                    self.text()
                ),
                Ok(n) => self.received.extend_from_slice(&buf[..n]),
                Err(e) => panic!(
                    "reading while waiting for {needle:?}: {e}; got {:?}",
                    self.text()
                ),
            }
        }
    }

    /// Reads to the end of the connection (bounded by `timeout`).
    fn read_to_end(&mut self, timeout: Duration) {
        self.socket
            .set_read_timeout(Some(timeout))
            .expect("set a read timeout");
        self.socket
            .read_to_end(&mut self.received)
            .expect("read the rest of the answer");
    }

    /// Goes away mid-answer: closing with unread data makes the kernel
    /// reset the connection, so rr's next write fails at once.
    fn abandon(self) {
        let _ = self.socket.shutdown(Shutdown::Both);
    }
}

/// The body of a chunked HTTP/1.1 answer, decoded.
fn dechunk(raw: &str) -> String {
    let (_, mut rest) = raw.split_once("\r\n\r\n").expect("a complete head");
    let mut body = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n").expect("a chunk size line");
        let size = usize::from_str_radix(size.trim(), 16).expect("a hex chunk size");
        if size == 0 {
            return body;
        }
        body.push_str(&after[..size]);
        rest = &after[size + 2..];
    }
}

/// The first chunk is on the client before the worker goes on: the worker
/// waits on a FIFO that the test writes only once it has read that chunk.
/// Also: 103 Early Hints, HTTP/2 data frames, a generator that throws.
#[test]
fn chunks_reach_the_client_while_the_worker_streams() {
    require_php!();
    if !tool_available("mkfifo") {
        eprintln!("SKIPPED: mkfifo is not on PATH");
        return;
    }
    let dir = support::temp_dir();
    let (mut rr, port) = start_rr(dir.path(), "5s");
    gated_then_hints(&mut rr, port, dir.path());

    // A generator that throws ends the stream after what it sent.
    let mut failed = Streaming::get(port, "/fail");
    failed.read_to_end(Duration::from_secs(10));
    assert_eq!(dechunk(&failed.text()), "partial\n");

    // HEAD gets the streamed head without a body; the worker's stream is
    // stopped (nothing will read it) and the worker serves on.
    let mut head = Streaming::request(port, "HEAD", "/endless");
    head.read_to_end(Duration::from_secs(10));
    let text = head.text();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        text.ends_with("\r\n\r\n"),
        "a body came with HEAD: {text:?}"
    );
    ok(rr.wait_for(support::event("STREAM_STOPPED"), EVENTUALLY));

    // The one worker served all of it.
    let (status, _) = ok(support::http_get(port, "/pid"));
    assert_eq!(status, 200);
    assert_eq!(rr.count(support::event("READY")), 1, "{}", rr.recent());
}

/// `/gated` (the first chunk is read before the worker may go on), then
/// `/hints` over HTTP/1.1 and, with curl, HTTP/2.
fn gated_then_hints(rr: &mut RrProcess, port: u16, dir: &Path) {
    let fifo = dir.join("gate");
    let made = Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("run mkfifo");
    assert!(made.success(), "mkfifo failed");

    let mut answer = Streaming::get(port, &format!("/gated?fifo={}", fifo.display()));
    answer.read_until("first\n", Duration::from_secs(10));
    let head = answer.text().to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("transfer-encoding: chunked"), "{head}");
    assert!(head.contains("content-type: text/plain"), "{head}");
    assert!(
        !answer.text().contains("last"),
        "the last chunk came with the first: {:?}",
        answer.text()
    );
    // Only now may the worker send the rest.
    let mut gate = std::fs::OpenOptions::new()
        .write(true)
        .open(&fifo)
        .expect("open the FIFO for writing");
    gate.write_all(b"open\n").expect("write the FIFO");
    drop(gate);
    answer.read_to_end(Duration::from_secs(10));
    assert_eq!(
        dechunk(&answer.text()),
        "first\nafter-gate open\nlast\n",
        "{:?}",
        answer.text()
    );
    ok(rr.wait_for(
        |l| {
            l.event_named("STREAM_DONE")
                .is_some_and(|e| e.get("path") == "/gated")
        },
        EVENTUALLY,
    ));

    // 103 then a streamed 201: the hint's Link header does not leak.
    let mut hints = Streaming::get(port, "/hints");
    hints.read_to_end(Duration::from_secs(10));
    let text = hints.text();
    assert!(text.starts_with("HTTP/1.1 201"), "{text}");
    let head = text.to_ascii_lowercase();
    assert!(head.contains("x-final: yes"), "{text}");
    assert!(!head.contains("\r\nlink:"), "{text}");
    assert_eq!(dechunk(&text), "abc");

    // The same stream over HTTP/2 (h2c prior knowledge).
    if tool_available("curl") {
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "10", "--http2-prior-knowledge", "-i"])
            .arg(format!("http://127.0.0.1:{port}/hints"))
            .output()
            .expect("run curl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{text} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.starts_with("HTTP/2 201"), "{text}");
        assert!(text.ends_with("\r\n\r\nabc"), "{text}");
    }
}

/// A client that goes away mid-stream: rr sends the worker a stream stop,
/// the worker's generator gets `StreamStoppedException`, the worker ends the
/// stream and serves the next request.
#[test]
fn a_client_that_goes_away_stops_the_stream_and_the_worker_serves_again() {
    require_php!();
    let dir = support::temp_dir();
    let (mut rr, port) = start_rr(dir.path(), "10s");
    client_goes_away(&mut rr, port);
}

/// `/endless`, abandoned after its first bytes: the worker reports the
/// stop and its pid answers the next request.
fn client_goes_away(rr: &mut RrProcess, port: u16) {
    let pid = rr.first_pid("READY");
    let mut answer = Streaming::get(port, "/endless");
    answer.read_until("eeee", Duration::from_secs(10));
    answer.abandon();
    let stopped = ok(rr.wait_for(support::event("STREAM_STOPPED"), EVENTUALLY))
        .event()
        .expect("an event");
    assert_eq!(stopped.pid(), pid);
    assert!(
        stopped.num("chunks").is_some_and(|n| n < 100_000),
        "{stopped:?}"
    );

    let (status, body) = ok(support::http_get(port, "/pid"));
    assert_eq!(status, 200);
    assert_eq!(body, pid.to_string(), "another worker answered");
    assert_eq!(rr.count(support::event("READY")), 1, "{}", rr.recent());
}

/// A worker that never ends its stream after the stop is killed once
/// `stream_timeout` has passed, and a fresh worker takes its place.
#[test]
fn a_worker_that_ignores_the_stop_is_killed_after_stream_timeout() {
    require_php!();
    let dir = support::temp_dir();
    let (mut rr, port) = start_rr(dir.path(), "1s");
    let pid = rr.first_pid("READY");

    let mut answer = Streaming::get(port, "/stubborn");
    answer.read_until("tick", Duration::from_secs(10));
    let stopped_at = Instant::now();
    answer.abandon();
    ok(rr.wait_for(
        |l| {
            l.message()
                .is_some_and(|m| m.contains("within stream_timeout"))
        },
        EVENTUALLY,
    ));
    assert!(
        stopped_at.elapsed() >= Duration::from_millis(900),
        "killed before stream_timeout passed"
    );
    ok(support::wait_gone(&[pid], EVENTUALLY));
    let fresh = rr.wait_for_new_worker(&[pid]);

    let (status, body) = ok(support::http_get(port, "/pid"));
    assert_eq!(status, 200);
    assert_eq!(body, fresh.to_string());
}

/// Where the official PHP packages are: `RR_OFFICIAL_HTTP_AUTOLOAD`, else
/// the autoloader of a local `/work/compat` install. They are never part of
/// this repository.
fn official_autoload() -> Option<std::path::PathBuf> {
    std::env::var_os("RR_OFFICIAL_HTTP_AUTOLOAD")
        .map(std::path::PathBuf::from)
        .or_else(|| Some("/work/compat/vendor-http/autoload.php".into()))
        .filter(|path| path.is_file())
}

/// The same streams from roadrunner-php/http's `HttpWorker` with a Generator
/// body: incremental chunks, 103 then a stream, and a client that goes away
/// (the official worker on pipes pings every fifth chunk and learns of the
/// stop around its pings, so PING/PONG is exercised too).
#[test]
fn the_official_php_packages_stream_and_stop_too() {
    require_php!();
    let Some(autoload) = official_autoload() else {
        eprintln!("SKIPPED: set RR_OFFICIAL_HTTP_AUTOLOAD to the autoload.php of roadrunner-php/http >= 3.5");
        return;
    };
    if !tool_available("mkfifo") {
        eprintln!("SKIPPED: mkfifo is not on PATH");
        return;
    }
    let dir = support::temp_dir();
    let env = format!(
        "  env:\n    RR_OFFICIAL_HTTP_AUTOLOAD: {}",
        autoload.display()
    );
    let (mut rr, port) = start_worker(dir.path(), "http_stream_official.php", "10s", &env);
    let ready = ok(rr.wait_for(support::event("READY"), START));
    assert!(ready.text.contains("lib=official"), "{}", ready.text);
    gated_then_hints(&mut rr, port, dir.path());
    client_goes_away(&mut rr, port);
}
