//! Real services the end-to-end tests run against (redis-server, memcached,
//! beanstalkd, nats-server), each on a free loopback port for one test,
//! started from the Debian packages `scripts/setup.sh` installs and killed on drop.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Whether `binary` is on PATH. When it is not, the test is skipped with a
/// message, except under `CI=true`, where that fails it.
pub fn installed(binary: &str) -> bool {
    let found = std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(binary).is_file()));
    if !found {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{binary} is not on PATH, and CI=true: run scripts/setup.sh");
        }
        eprintln!("SKIPPED: {binary} is not on PATH; scripts/setup.sh installs it");
    }
    found
}

/// Returns from the test unless the service's binary is installed (see
/// [`installed`]).
#[macro_export]
macro_rules! require_service {
    ($binary:literal) => {
        if !$crate::support::service::installed($binary) {
            return;
        }
    };
}

/// A running service, killed on drop.
pub struct Service {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

impl Service {
    /// Runs `command` (made for a free port) and waits until a line of its
    /// stdout or stderr contains `ready`.
    pub fn start(name: &str, command: impl FnOnce(u16) -> Command, ready: &'static str) -> Service {
        Service::start_on(name, super::free_tcp_port(), command, ready)
    }

    /// [`Service::start`] on a given port (to restart a service where it was).
    pub fn start_on(
        name: &str,
        port: u16,
        command: impl FnOnce(u16) -> Command,
        ready: &'static str,
    ) -> Service {
        let mut child = command(port)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let (ready_tx, ready_rx) = mpsc::channel();
        let outputs: [Box<dyn Read + Send>; 2] = [
            Box::new(child.stdout.take().expect("piped stdout")),
            Box::new(child.stderr.take().expect("piped stderr")),
        ];
        for output in outputs {
            let ready_tx = ready_tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(output).lines().map_while(Result::ok) {
                    if line.contains(ready) {
                        let _ = ready_tx.send(());
                    }
                }
            });
        }
        let service = Service { child, port };
        ready_rx
            .recv_timeout(super::START)
            .unwrap_or_else(|_| panic!("{name} on port {port} did not get ready"));
        service
    }

    /// `host:port` for rr's config.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Sends raw protocol text and returns what came back, up to one of the
    /// `|`-separated markers in `until`.
    pub fn exchange(&self, request: &str, until: &str) -> String {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.port))
            .unwrap_or_else(|e| panic!("connect to port {}: {e}", self.port));
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("read timeout");
        stream.write_all(request.as_bytes()).expect("write");
        let mut reply = Vec::new();
        let mut buf = [0u8; 4096];
        while !until
            .split('|')
            .any(|m| String::from_utf8_lossy(&reply).contains(m))
        {
            let n = stream.read(&mut buf).expect("read");
            if n == 0 {
                break;
            }
            reply.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&reply).into_owned()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// redis-server without persistence, its files in `dir`.
pub fn redis(dir: &Path) -> Service {
    Service::start(
        "redis-server",
        |port| {
            let mut command = Command::new("redis-server");
            command
                .args(["--port", &port.to_string()])
                .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                .arg("--dir")
                .arg(dir);
            command
        },
        "Ready to accept connections",
    )
}

/// memcached, TCP only, 16 MiB.
pub fn memcached() -> Service {
    Service::start(
        "memcached",
        |port| {
            let mut command = Command::new("memcached");
            command.args(["-l", "127.0.0.1", "-p", &port.to_string()]);
            command.args(["-U", "0", "-m", "16", "-vv"]);
            // memcached refuses to run as root without naming a user.
            if running_as_root() {
                command.args(["-u", "root"]);
            }
            command
        },
        "server listening",
    )
}

/// beanstalkd in memory (no binlog).
pub fn beanstalkd() -> Service {
    Service::start(
        "beanstalkd",
        |port| {
            // `-V` prints `bind ...` on stdout, which beanstalkd buffers when
            // it is a pipe: stdbuf (it execs, so the child is beanstalkd
            // itself) makes the line arrive at once.
            let mut command = Command::new("stdbuf");
            command.args([
                "-o0",
                "beanstalkd",
                "-l",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-V",
            ]);
            command
        },
        "bind ",
    )
}

/// nats-server with JetStream, its store in `dir`, on `port` (0: a free
/// one); the same `port` and `dir` bring back a killed server's streams.
pub fn nats(port: u16, dir: &Path) -> Service {
    let port = if port == 0 {
        super::free_tcp_port()
    } else {
        port
    };
    Service::start_on(
        "nats-server",
        port,
        |port| {
            let mut command = Command::new("nats-server");
            command
                .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string()])
                .arg("-sd")
                .arg(dir);
            command
        },
        "Server is ready",
    )
}

/// Whether this process runs as root (owner of `/proc/self`).
fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}
