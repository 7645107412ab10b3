//! A real `redis-server` on a free loopback port, for one test.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;

/// Skips the test when `redis-server` is missing, unless `CI=true`, where
/// that fails it.
#[macro_export]
macro_rules! require_redis {
    () => {
        if !$crate::support::redis::available() {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("redis-server is not on PATH, and CI=true: run scripts/setup.sh");
            }
            eprintln!(
                "SKIPPED: redis-server is not on PATH; install redis-server to run this test"
            );
            return;
        }
    };
}

/// Whether `redis-server --version` runs.
pub fn available() -> bool {
    Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A running server, killed on drop.
pub struct RedisServer {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

impl RedisServer {
    /// Starts a server without persistence in `dir` and waits until it
    /// logs that it accepts connections.
    pub fn start(dir: &Path) -> RedisServer {
        let port = super::free_tcp_port();
        let mut child = Command::new("redis-server")
            .args(["--port", &port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start redis-server: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let (ready_tx, ready) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.contains("Ready to accept connections") {
                    let _ = ready_tx.send(());
                }
            }
        });
        let server = RedisServer { child, port };
        ready
            .recv_timeout(super::START)
            .unwrap_or_else(|_| panic!("redis-server on port {port} did not get ready"));
        server
    }

    /// `host:port` for rr's config.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
