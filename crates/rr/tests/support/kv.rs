//! A real `memcached` on a free loopback port, for one test.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Skips the test when `memcached` is missing, unless `CI=true`, where
/// that fails it.
#[macro_export]
macro_rules! require_memcached {
    () => {
        if !$crate::support::kv::memcached_available() {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("memcached is not on PATH, and CI=true: run scripts/setup.sh");
            }
            eprintln!("SKIPPED: memcached is not on PATH; install memcached to run this test");
            return;
        }
    };
}

/// Whether `memcached -V` runs.
pub fn memcached_available() -> bool {
    Command::new("memcached")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A running memcached, killed on drop.
pub struct MemcachedServer {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

impl MemcachedServer {
    /// Starts memcached (TCP only, 16 MiB) and waits until it accepts a
    /// connection.
    pub fn start() -> MemcachedServer {
        let port = super::free_tcp_port();
        let mut command = Command::new("memcached");
        command.args([
            "-l",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            "0",
            "-m",
            "16",
        ]);
        // memcached refuses to run as root without naming a user.
        if running_as_root() {
            command.args(["-u", "root"]);
        }
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start memcached: {e}"));
        let mut server = MemcachedServer { child, port };
        let deadline = Instant::now() + super::START;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("memcached on port {port} exited: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "memcached on port {port} did not get ready"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    /// `host:port` for rr's config.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

/// Whether this process runs as root (owner of `/proc/self`).
fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

impl Drop for MemcachedServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
