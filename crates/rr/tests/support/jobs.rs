//! Helpers for the jobs end-to-end tests: the config, the PHP producer
//! (`tests/php/jobs_client.php`), the Rust RPC producer, and reading the
//! `JOB` events of `tests/php/jobs_worker.php`.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use rr_jobs::proto::{Job, Options, PushRequest};
use rr_rpc::RpcClient;

use super::{php_command, php_script, Event, Line, RrProcess};

/// goridge's protobuf codec flag.
pub const CODEC_PROTO: u8 = 0x80;

/// A config: `jobs_worker.php` on `workers` workers (as many pollers, so
/// no job waits for a worker outside the priority queue), RPC on `port`, the
/// given `pipelines:` block (indented by four spaces) and `consume` list.
pub fn yaml(port: u16, state_dir: &Path, workers: u32, consume: &str, pipelines: &str) -> String {
    format!(
        "version: \"3\"\nserver:\n  command: {}\n  env:\n    JOBS_STATE_DIR: \"{}\"\nrpc:\n  listen: tcp://127.0.0.1:{port}\njobs:\n  num_pollers: {workers}\n  pool:\n    num_workers: {workers}\n    allocate_timeout: 5s\n    destroy_timeout: 5s\n  consume: [{consume}]\n  pipelines:\n{pipelines}",
        php_command("jobs_worker.php"),
        state_dir.display(),
    )
}

/// Runs `php jobs_client.php <address> args...`: `Ok(result JSON)` for
/// `OK ...`, `Err(message)` for `ERR ...`.
pub fn php_client(port: u16, args: &[&str]) -> Result<serde_json::Value, String> {
    let output = Command::new("php")
        .arg(php_script("jobs_client.php"))
        .arg(format!("tcp://127.0.0.1:{port}"))
        .args(args)
        .output()
        .expect("run php jobs_client.php");
    let stdout = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    if let Some(ok) = stdout.strip_prefix("OK ") {
        return Ok(serde_json::from_str(ok).expect("OK result is JSON"));
    }
    if let Some(err) = stdout.strip_prefix("ERR ") {
        return Err(err.to_owned());
    }
    panic!(
        "jobs_client.php {args:?}: unexpected output {stdout:?}, stderr {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Pushes a job over RPC from Rust (protobuf `jobs.Push`).
pub fn rust_push(
    port: u16,
    pipeline: &str,
    id: &str,
    name: &str,
    payload: &str,
    headers: &[(&str, &str)],
) -> Result<(), String> {
    rust_push_job(
        port,
        Job {
            job: name.into(),
            id: id.into(),
            payload: payload.as_bytes().to_vec(),
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), vec![(*v).to_owned()]))
                .collect(),
            options: Some(Options {
                pipeline: pipeline.into(),
                ..Options::default()
            }),
        },
    )
}

/// Pushes one `jobs.v1.Job` over RPC from Rust.
pub fn rust_push_job(port: u16, job: Job) -> Result<(), String> {
    let mut client = RpcClient::connect(&format!("tcp://127.0.0.1:{port}"), Duration::from_secs(5))
        .map_err(|e| e.to_string())?;
    let request = PushRequest { job: Some(job) };
    client
        .call_raw("jobs.Push", CODEC_PROTO, &request.encode())
        .map(drop)
        .map_err(|e| e.to_string())
}

/// Predicate: a `JOB` event with this id.
pub fn job_with_id(id: &str) -> impl Fn(&Line) -> bool {
    let id = id.to_owned();
    move |line| line.event_named("JOB").is_some_and(|e| e.get("id") == id)
}

/// Predicate: an rr `jobs` line with `message` about job `id`.
pub fn jobs_log(message: &'static str, id: &str) -> impl Fn(&Line) -> bool {
    let id = id.to_owned();
    move |line| line.is("jobs", message) && line.field_str("id").as_deref() == Some(id.as_str())
}

/// The `JOB` events so far.
pub fn jobs(rr: &RrProcess) -> Vec<Event> {
    rr.events("JOB")
}

/// Skips the test when `beanstalkd` is missing, unless `CI=true`, where
/// that fails it.
#[macro_export]
macro_rules! require_beanstalkd {
    () => {
        if !$crate::support::jobs::beanstalkd_available() {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("beanstalkd is not on PATH, and CI=true: run scripts/setup.sh");
            }
            eprintln!("SKIPPED: beanstalkd is not on PATH; install beanstalkd to run this test");
            return;
        }
    };
}

/// Whether `beanstalkd -v` runs.
pub fn beanstalkd_available() -> bool {
    Command::new("beanstalkd")
        .arg("-v")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A running `beanstalkd` (in-memory, no binlog), killed on drop.
pub struct Beanstalkd {
    child: std::process::Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

impl Beanstalkd {
    /// Starts one on a free loopback port and waits for its `bind` line.
    pub fn start() -> Beanstalkd {
        use std::io::{BufRead, BufReader};
        let port = super::free_tcp_port();
        // `-V` prints `bind ...` on stdout, which beanstalkd buffers when
        // it is a pipe: stdbuf (it execs, so the child is beanstalkd
        // itself) makes the line arrive at once.
        let mut child = Command::new("stdbuf")
            .args([
                "-o0",
                "beanstalkd",
                "-l",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-V",
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start beanstalkd: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let (ready_tx, ready) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.starts_with("bind ") {
                    let _ = ready_tx.send(());
                }
            }
        });
        let server = Beanstalkd { child, port };
        ready
            .recv_timeout(super::START)
            .unwrap_or_else(|_| panic!("beanstalkd on port {port} did not get ready"));
        server
    }

    /// Sends raw protocol text and returns what came back up to one of
    /// the `|`-separated markers in `until`.
    pub fn raw(&self, request: &str, until: &str) -> String {
        use std::io::{Read, Write};
        let mut stream =
            std::net::TcpStream::connect(("127.0.0.1", self.port)).expect("connect beanstalkd");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        stream.write_all(request.as_bytes()).expect("write");
        let mut reply = Vec::new();
        let mut buf = [0u8; 4096];
        while !until
            .split('|')
            .any(|m| String::from_utf8_lossy(&reply).contains(m))
        {
            let n = stream.read(&mut buf).expect("read beanstalkd");
            if n == 0 {
                break;
            }
            reply.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&reply).into_owned()
    }
}

impl Drop for Beanstalkd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
