//! Real services the end-to-end tests run against (redis-server, memcached,
//! beanstalkd, nats-server, rabbitmq-server), each on a free loopback port for
//! one test, started from the Debian packages `scripts/setup.sh` installs and
//! killed on drop.

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
        // Some servers (beanstalkd) print their bind line before they
        // listen: the port accepting a connection is the real readiness.
        let deadline = std::time::Instant::now() + super::START;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "{name} on port {port} never accepted a connection"
            );
            std::thread::yield_now();
        }
        service
    }

    /// The process id of what `command` started.
    pub fn pid(&self) -> u32 {
        self.child.id()
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
    beanstalkd_on(super::free_tcp_port())
}

/// beanstalkd on `port` (a restart where a killed one listened).
pub fn beanstalkd_on(port: u16) -> Service {
    beanstalkd_with(port, None)
}

/// beanstalkd on `port` keeping its jobs in a binlog in `dir`: a restart
/// with the same `dir` brings them back.
pub fn beanstalkd_persistent(port: u16, dir: &Path) -> Service {
    beanstalkd_with(port, Some(dir))
}

fn beanstalkd_with(port: u16, binlog: Option<&Path>) -> Service {
    Service::start_on(
        "beanstalkd",
        port,
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
            if let Some(dir) = binlog {
                command.arg("-b").arg(dir);
            }
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

/// A RabbitMQ node of its own: its database, logs, Erlang cookie and
/// ports (AMQP, distribution, epmd) private to the test, no plugins.
/// Killed (with its epmd) on drop.
pub struct RabbitMq {
    node: Option<Service>,
    dir: std::path::PathBuf,
    /// The AMQP port on 127.0.0.1.
    pub port: u16,
    dist_port: u16,
    epmd_port: u16,
}

impl RabbitMq {
    /// Starts a node with its files under `dir`.
    pub fn start(dir: &Path) -> RabbitMq {
        let mut rabbit = RabbitMq {
            node: None,
            dir: dir.to_owned(),
            port: super::free_tcp_port(),
            dist_port: super::free_tcp_port(),
            epmd_port: super::free_tcp_port(),
        };
        std::fs::write(dir.join("enabled_plugins"), "[].\n").expect("enabled_plugins");
        rabbit.boot();
        rabbit
    }

    fn boot(&mut self) {
        let (dir, dist, epmd) = (self.dir.clone(), self.dist_port, self.epmd_port);
        self.node = Some(Service::start_on(
            "rabbitmq-server",
            self.port,
            move |port| {
                use std::os::unix::process::CommandExt;
                // /usr/sbin/rabbitmq-server switches to the rabbitmq user;
                // the script under /usr/lib runs the node as whoever we are.
                let mut command = Command::new("/usr/lib/rabbitmq/bin/rabbitmq-server");
                command
                    .env("HOME", &dir)
                    .env("RABBITMQ_MNESIA_BASE", dir.join("mnesia"))
                    .env("RABBITMQ_LOG_BASE", dir.join("log"))
                    .env("RABBITMQ_LOGS", "-")
                    .env("RABBITMQ_PID_FILE", dir.join("rabbit.pid"))
                    .env("RABBITMQ_ENABLED_PLUGINS_FILE", dir.join("enabled_plugins"))
                    .env("RABBITMQ_CONFIG_FILE", dir.join("rabbitmq"))
                    .env("RABBITMQ_ADVANCED_CONFIG_FILE", dir.join("advanced.config"))
                    .env("RABBITMQ_NODENAME", format!("rr-test-{port}@localhost"))
                    .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
                    .env("RABBITMQ_NODE_PORT", port.to_string())
                    .env("RABBITMQ_DIST_PORT", dist.to_string())
                    .env("ERL_EPMD_PORT", epmd.to_string())
                    // Its own group: the script runs the Erlang VM as a
                    // child, and a kill must reach both.
                    .process_group(0);
                command
            },
            "Server startup complete",
        ));
    }

    /// `amqp://guest:guest@127.0.0.1:PORT/` for rr's config.
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/", self.port)
    }

    /// Kills the node as a crash would (SIGKILL, no goodbye to clients).
    pub fn kill(&mut self) {
        if let Some(node) = self.node.take() {
            let group = nix::unistd::Pid::from_raw(node.pid() as i32);
            let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
            drop(node);
        }
    }

    /// Starts the node again on the same ports and database.
    pub fn restart(&mut self) {
        self.kill();
        self.boot();
    }
}

impl Drop for RabbitMq {
    fn drop(&mut self) {
        self.kill();
        // epmd daemonised itself out of the node's group. It refuses to
        // die while it still lists the node, which it drops only once it
        // sees the node's connection close: ask until it agrees (bounded).
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            let Ok(output) = Command::new("epmd")
                .arg("-kill")
                .env("ERL_EPMD_PORT", self.epmd_port.to_string())
                .output()
            else {
                return;
            };
            let said = String::from_utf8_lossy(&output.stdout).into_owned()
                + &String::from_utf8_lossy(&output.stderr);
            if !said.contains("not allowed") {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Whether this process runs as root (owner of `/proc/self`).
fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}
