//! Harness of the end-to-end tests: runs the real `rr` binary against the
//! PHP workers of `tests/php`, each test in its own temp dir with its own
//! `.rr.yaml`, and waits on log lines (never on sleeps).
//!
//! rr runs with the default `development` log mode, so every line on its
//! stderr is `time\tLEVEL\tlogger\tmessage\t{json fields}`; a worker's stderr
//! line is the message of a `server` line whose fields carry its `pid`.
//! [`Line`] parses that shape and [`Event`] parses the PHP workers'
//! `EVENT key=value ...` messages.

#![allow(dead_code)] // not every helper is used by the tests of every area

pub mod jobs;
pub mod schedules;
#[macro_use]
pub mod service;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// How many of the most recent lines a failure message shows.
const TAIL: usize = 60;

/// Bound for rr to start its workers.
pub const START: Duration = Duration::from_secs(20);
/// Bound for "eventually" on a loaded 2-core machine.
pub const EVENTUALLY: Duration = Duration::from_secs(15);

/// Unwraps a wait, panicking with its message (which carries the recent log).
pub fn ok<T>(result: Result<T, String>) -> T {
    result.unwrap_or_else(|e| panic!("{e}"))
}

/// rr's log line for a failed tick.
pub fn tick_failed(line: &Line) -> bool {
    line.is("ticker", "tick failed; ticking goes on")
}

/// Skips the test when `php` is missing, unless `CI=true`, where that fails it.
#[macro_export]
macro_rules! require_php {
    () => {
        if !$crate::support::php_available() {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("php is not on PATH, and CI=true: the end-to-end tests need php-cli");
            }
            eprintln!("SKIPPED: php is not on PATH; install php-cli to run this end-to-end test");
            return;
        }
    };
}

/// Whether `php -v` runs.
pub fn php_available() -> bool {
    Command::new("php")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Absolute path of a PHP worker in `tests/php`.
pub fn php_script(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/php")
        .join(name);
    path.canonicalize()
        .unwrap_or_else(|e| panic!("test worker {} not found: {e}", path.display()))
}

/// `php /abs/path/<name>` as a YAML flow list, for `server.command`.
pub fn php_command(name: &str) -> String {
    format!("[\"php\", \"{}\"]", php_script(name).display())
}

/// The command line rr shows in messages for [`php_command`].
pub fn php_command_display(name: &str) -> String {
    format!("php {}", php_script(name).display())
}

/// Seconds since the epoch, now.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A port that was free a moment ago (bound, read, released).
pub fn free_tcp_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A private temporary directory for one test (removed on drop).
pub fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("rr-e2e-")
        .tempdir()
        .expect("create a temp dir")
}

/// One line of rr's output, with the moment the test received it.
#[derive(Debug, Clone)]
pub struct Line {
    /// When the reader thread got it.
    pub at: Instant,
    /// The text, without the line ending.
    pub text: String,
    /// Whether rr wrote it to stderr (else stdout).
    pub stderr: bool,
}

impl Line {
    fn columns(&self) -> Vec<&str> {
        self.text.splitn(5, '\t').collect()
    }

    /// `DEBUG`, `INFO`, `WARN`, `ERROR` for a development-mode log line.
    pub fn level(&self) -> Option<&str> {
        self.columns().get(1).copied()
    }

    /// The logger (`server`, `ticker`, `rr`, ...).
    pub fn logger(&self) -> Option<&str> {
        self.columns().get(2).copied()
    }

    /// The message; for a worker's stderr line, exactly what PHP wrote.
    pub fn message(&self) -> Option<&str> {
        self.columns().get(3).copied()
    }

    /// The structured fields of a log line.
    pub fn fields(&self) -> serde_json::Map<String, serde_json::Value> {
        self.columns()
            .get(4)
            .and_then(|json| serde_json::from_str::<serde_json::Value>(json).ok())
            .and_then(|v| v.as_object().cloned())
            .unwrap_or_default()
    }

    /// A numeric field (`pid`, `tick`).
    pub fn field_u64(&self, name: &str) -> Option<u64> {
        self.fields().get(name).and_then(serde_json::Value::as_u64)
    }

    /// A field as text (strings unquoted).
    pub fn field_str(&self, name: &str) -> Option<String> {
        self.fields().get(name).map(|v| match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    }

    /// Whether this is rr's own line `logger` / `message`.
    pub fn is(&self, logger: &str, message: &str) -> bool {
        self.logger() == Some(logger) && self.message() == Some(message)
    }

    /// The worker event (`READY`, `TICK`, ...) this line carries, if any.
    pub fn event(&self) -> Option<Event> {
        if self.logger() != Some("server") {
            return None;
        }
        Event::parse(self.message()?)
    }

    /// The worker event named `name`, if this line is one.
    pub fn event_named(&self, name: &str) -> Option<Event> {
        self.event().filter(|e| e.name == name)
    }
}

/// A PHP test worker's `EVENT key=value ...` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// `READY`, `TICK`, `TICK_DONE`, `CRASH`, ...
    pub name: String,
    /// The `key=value` pairs.
    pub values: HashMap<String, String>,
}

impl Event {
    /// Parses `NAME k=v k=v`; `None` unless NAME is upper-case.
    pub fn parse(message: &str) -> Option<Event> {
        let mut words = message.split(' ');
        let name = words.next()?;
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_uppercase() || c == '_') {
            return None;
        }
        let values = words
            .filter_map(|w| w.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        Some(Event {
            name: name.to_owned(),
            values,
        })
    }

    /// A value as text ("" when absent).
    pub fn get(&self, key: &str) -> &str {
        self.values.get(key).map_or("", String::as_str)
    }

    /// A numeric value.
    pub fn num(&self, key: &str) -> Option<u64> {
        self.values.get(key)?.parse().ok()
    }

    /// The worker's pid.
    pub fn pid(&self) -> u32 {
        self.num("pid")
            .and_then(|p| u32::try_from(p).ok())
            .unwrap_or_else(|| panic!("event without pid: {self:?}"))
    }
}

/// Predicate: a worker event `name` (optionally more conditions with
/// [`Line::event_named`] in a closure).
pub fn event(name: &'static str) -> impl Fn(&Line) -> bool {
    move |line| line.event_named(name).is_some()
}

/// Predicate: a `TICK n=<n>` worker line.
pub fn tick(n: u64) -> impl Fn(&Line) -> bool {
    move |line| {
        line.event_named("TICK")
            .is_some_and(|e| e.num("n") == Some(n))
    }
}

/// A running `rr serve`. Dropping it SIGKILLs rr and any PHP worker it
/// logged that is still alive, so a failing test leaves nothing behind.
pub struct RrProcess {
    child: Child,
    lines: Vec<Line>,
    receiver: Receiver<Line>,
    /// Both output streams are closed: rr has exited (or closed them).
    closed: bool,
    status: Option<ExitStatus>,
    /// When the process was spawned.
    pub started: Instant,
    /// The test's directory (the config and any state live there).
    pub dir: PathBuf,
}

impl RrProcess {
    /// Writes `yaml` to `<dir>/.rr.yaml` and starts `rr serve` there.
    pub fn start(dir: &Path, yaml: &str) -> RrProcess {
        std::fs::write(dir.join(".rr.yaml"), yaml).expect("write .rr.yaml");
        RrProcess::spawn(dir, &["serve", "-c", ".rr.yaml"])
    }

    /// Starts the rr binary in `dir` with `args`, both outputs piped into the
    /// line log.
    pub fn spawn(dir: &Path, args: &[&str]) -> RrProcess {
        RrProcess::spawn_binary(Path::new(env!("CARGO_BIN_EXE_rr")), dir, args)
    }

    /// Like [`RrProcess::spawn`] with another rr binary (one `rr build` made).
    pub fn spawn_binary(binary: &Path, dir: &Path, args: &[&str]) -> RrProcess {
        let mut child = spawn_piped(binary, dir, args);
        let started = Instant::now();
        let (sender, receiver) = mpsc::channel();
        let stderr = child.stderr.take().expect("piped stderr");
        let stdout = child.stdout.take().expect("piped stdout");
        for (stream, output) in [
            ("stderr", Box::new(stderr) as Box<dyn Read + Send>),
            ("stdout", Box::new(stdout)),
        ] {
            let sender = sender.clone();
            std::thread::Builder::new()
                .name(format!("rr-{stream}"))
                .spawn(move || {
                    let mut reader = BufReader::new(output);
                    let mut buf = Vec::new();
                    loop {
                        buf.clear();
                        match reader.read_until(b'\n', &mut buf) {
                            Ok(0) | Err(_) => return,
                            Ok(_) => {
                                let text = String::from_utf8_lossy(&buf)
                                    .trim_end_matches(['\n', '\r'])
                                    .to_owned();
                                let line = Line {
                                    at: Instant::now(),
                                    text,
                                    stderr: stream == "stderr",
                                };
                                if sender.send(line).is_err() {
                                    return;
                                }
                            }
                        }
                    }
                })
                .expect("spawn a reader thread");
        }
        RrProcess {
            child,
            lines: Vec::new(),
            receiver,
            closed: false,
            status: None,
            started,
            dir: dir.to_owned(),
        }
    }

    /// rr's pid.
    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }

    /// Sends `signal` to rr.
    pub fn signal(&self, signal: Signal) {
        kill(self.pid(), signal).unwrap_or_else(|e| panic!("cannot send {signal} to rr: {e}"));
    }

    /// Takes every line received so far; waits at most until `deadline` for
    /// the next one. Returns false once the output is closed.
    fn pump(&mut self, deadline: Instant) -> bool {
        if self.closed {
            return false;
        }
        let wait = deadline.saturating_duration_since(Instant::now());
        match self.receiver.recv_timeout(wait) {
            Ok(line) => {
                self.lines.push(line);
                while let Ok(line) = self.receiver.try_recv() {
                    self.lines.push(line);
                }
                true
            }
            Err(RecvTimeoutError::Timeout) => true,
            Err(RecvTimeoutError::Disconnected) => {
                self.closed = true;
                false
            }
        }
    }

    /// Takes the lines already received, without waiting.
    pub fn drain(&mut self) {
        while let Ok(line) = self.receiver.try_recv() {
            self.lines.push(line);
        }
    }

    /// Every line so far (after [`RrProcess::drain`] or a wait).
    pub fn lines(&self) -> &[Line] {
        &self.lines
    }

    /// A position in the log, for [`RrProcess::wait_for_line_after`].
    pub fn mark(&mut self) -> usize {
        self.drain();
        self.lines.len()
    }

    /// The last lines, for failure messages.
    pub fn recent(&self) -> String {
        let start = self.lines.len().saturating_sub(TAIL);
        let mut text = format!(
            "--- rr output, last {} of {} lines ---\n",
            self.lines.len() - start,
            self.lines.len()
        );
        for line in &self.lines[start..] {
            text.push_str(&line.text);
            text.push('\n');
        }
        text
    }

    /// Waits until at least `n` lines at index `from` or later match.
    pub fn wait_for_lines_from(
        &mut self,
        from: usize,
        predicate: impl Fn(&Line) -> bool,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<Line>, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let found: Vec<Line> = self
                .lines
                .iter()
                .skip(from)
                .filter(|l| predicate(l))
                .take(n)
                .cloned()
                .collect();
            if found.len() >= n {
                return Ok(found);
            }
            if self.closed || Instant::now() >= deadline {
                let why = self.why_waiting_ended();
                return Err(format!(
                    "{why} after {:?} waiting for {n} matching line(s), saw {}\n{}",
                    timeout,
                    found.len(),
                    self.recent()
                ));
            }
            self.pump(deadline);
        }
    }

    /// Why a wait that is giving up ended: rr exited, or the time ran out.
    fn why_waiting_ended(&self) -> &'static str {
        if self.closed {
            "rr's output closed (rr exited)"
        } else {
            "timed out"
        }
    }

    /// Hands each line from index `from` on to `visit`, once and as it
    /// arrives, until `visit` returns true; returns the index after that
    /// line. For waits over thousands of lines, where rescanning the log on
    /// every arrival (as [`RrProcess::wait_for_lines_from`] does) would be
    /// quadratic. Fails after `timeout` or once rr's output closes.
    pub fn follow(
        &mut self,
        from: usize,
        timeout: Duration,
        mut visit: impl FnMut(&Line) -> bool,
    ) -> Result<usize, String> {
        let deadline = Instant::now() + timeout;
        let mut next = from;
        loop {
            while next < self.lines.len() {
                next += 1;
                if visit(&self.lines[next - 1]) {
                    return Ok(next);
                }
            }
            if self.closed || Instant::now() >= deadline {
                let why = self.why_waiting_ended();
                return Err(format!(
                    "{why} after {timeout:?} following the log\n{}",
                    self.recent()
                ));
            }
            self.pump(deadline);
        }
    }

    /// Waits for the first line (received at any time) matching `predicate`.
    pub fn wait_for_line(
        &mut self,
        predicate: impl Fn(&Line) -> bool,
        timeout: Duration,
    ) -> Result<String, String> {
        self.wait_for(predicate, timeout).map(|l| l.text)
    }

    /// Like [`RrProcess::wait_for_line`], returning the [`Line`].
    pub fn wait_for(
        &mut self,
        predicate: impl Fn(&Line) -> bool,
        timeout: Duration,
    ) -> Result<Line, String> {
        self.wait_for_lines_from(0, predicate, 1, timeout)
            .map(|mut v| v.remove(0))
    }

    /// Waits for the first matching line at index `from` or later.
    pub fn wait_for_line_after(
        &mut self,
        from: usize,
        predicate: impl Fn(&Line) -> bool,
        timeout: Duration,
    ) -> Result<Line, String> {
        self.wait_for_lines_from(from, predicate, 1, timeout)
            .map(|mut v| v.remove(0))
    }

    /// Waits until `n` lines (received at any time) match.
    pub fn wait_for_n_lines(
        &mut self,
        predicate: impl Fn(&Line) -> bool,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<String>, String> {
        self.wait_for_lines_from(0, predicate, n, timeout)
            .map(|v| v.into_iter().map(|l| l.text).collect())
    }

    /// Like [`RrProcess::wait_for_n_lines`], returning the [`Line`]s.
    pub fn wait_for_n(
        &mut self,
        predicate: impl Fn(&Line) -> bool,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<Line>, String> {
        self.wait_for_lines_from(0, predicate, n, timeout)
    }

    /// Waits for rr to exit: its output closes (the event), then it is reaped.
    /// Returns the status and when the exit was seen.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<(ExitStatus, Instant), String> {
        let deadline = Instant::now() + timeout;
        while !self.closed {
            if Instant::now() >= deadline {
                return Err(format!(
                    "rr did not exit within {timeout:?}\n{}",
                    self.recent()
                ));
            }
            self.pump(deadline);
        }
        let closed_at = Instant::now();
        // The output closes when rr exits; reaping follows at once. Bounded
        // anyway, in case rr closed its output and kept running.
        let reap_deadline = closed_at + Duration::from_secs(5);
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    self.status = Some(status);
                    return Ok((status, closed_at));
                }
                Ok(None) if Instant::now() < reap_deadline => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Ok(None) => {
                    return Err(format!(
                        "rr closed its output but did not exit\n{}",
                        self.recent()
                    ));
                }
                Err(e) => return Err(format!("waiting for rr failed: {e}")),
            }
        }
    }

    /// Lines matching `predicate` among those received so far (by a wait or
    /// [`RrProcess::drain`]).
    pub fn count(&self, predicate: impl Fn(&Line) -> bool) -> usize {
        self.lines.iter().filter(|l| predicate(l)).count()
    }

    /// Worker events named `name` among the lines received so far.
    pub fn events(&self, name: &str) -> Vec<Event> {
        self.lines
            .iter()
            .filter_map(|l| l.event_named(name))
            .collect()
    }

    /// Waits for a READY line from a worker not in `known` and returns its pid.
    pub fn wait_for_new_worker(&mut self, known: &[u32]) -> u32 {
        ok(self.wait_for(
            |l| {
                l.event_named("READY")
                    .is_some_and(|e| !known.contains(&e.pid()))
            },
            EVENTUALLY,
        ))
        .event()
        .expect("a READY line has an event")
        .pid()
    }

    /// Waits for the first `name` event line and returns its worker's pid.
    pub fn first_pid(&mut self, name: &'static str) -> u32 {
        ok(self.wait_for(event(name), START))
            .event()
            .expect("an event line has an event")
            .pid()
    }

    /// Asserts that rr refused to start: a non-zero exit within 5 s.
    pub fn expect_quick_failure(&mut self, why_fast: &str) {
        let (status, exited) = ok(self.wait_exit(Duration::from_secs(30)));
        let took = exited - self.started;
        self.check(
            status.code().is_some_and(|c| c != 0),
            format!("rr exited with {status}, expected a non-zero code"),
        );
        self.check(
            took < Duration::from_secs(5),
            format!("rr took {took:?} to fail; {why_fast}"),
        );
    }

    /// Sends SIGINT and asserts a clean exit with status 0.
    pub fn stop_cleanly(&mut self) {
        self.signal(Signal::SIGINT);
        let (status, _) = ok(self.wait_exit(Duration::from_secs(15)));
        self.check(
            status.code() == Some(0),
            format!("rr exited with {status}, expected 0"),
        );
    }

    /// Waits for a TICK line handled by worker `pid`.
    pub fn wait_for_tick_from(&mut self, pid: u32) {
        ok(self.wait_for(
            |l| l.event_named("TICK").is_some_and(|e| e.pid() == pid),
            EVENTUALLY,
        ));
    }

    /// Pids of every worker that logged READY so far, in order.
    pub fn ready_pids(&self) -> Vec<u32> {
        self.events("READY").iter().map(Event::pid).collect()
    }

    /// Fails with the recent log unless `condition` holds.
    pub fn check(&self, condition: bool, what: impl std::fmt::Display) {
        if !condition {
            panic!("{what}\n{}", self.recent());
        }
    }

    /// Every pid a worker line or a log field named, for clean-up.
    fn worker_pids_seen(&self) -> Vec<u32> {
        let mut pids: Vec<u32> = self
            .lines
            .iter()
            .filter_map(|l| l.field_u64("pid"))
            .filter_map(|p| u32::try_from(p).ok())
            .collect();
        pids.sort_unstable();
        pids.dedup();
        pids
    }
}

impl Drop for RrProcess {
    fn drop(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        // Workers die on EOF of their relay; a hung or sleeping one does not
        // read it. Kill what is still ours (checked by its command line).
        self.drain();
        for pid in self.worker_pids_seen() {
            if is_test_worker(pid) {
                let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
            }
        }
    }
}

/// Whether `pid` is a live (non-zombie) process running a `tests/php` script
/// (or the example plugins' workers).
pub fn is_test_worker(pid: u32) -> bool {
    let alive = match kill(Pid::from_raw(pid as i32), None) {
        Ok(()) => true,
        Err(Errno::ESRCH) => false,
        Err(_) => true, // EPERM: exists, not ours
    };
    if !alive {
        return false;
    }
    // A zombie has finished; in a container whose init does not reap,
    // it can linger, so it counts as gone.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next());
    if state == Some('Z') || state.is_none() {
        return false;
    }
    // The pid may have been reused by an unrelated process.
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let cmdline = String::from_utf8_lossy(&cmdline);
    cmdline.contains("tests/php/") || cmdline.contains("examples/plugins/")
}

/// Waits until none of `pids` is a live test worker (`kill(pid, 0)` gives
/// ESRCH, or it is a zombie / another program). Polls /proc: there is no
/// event for the death of a process that is not our child.
pub fn wait_gone(pids: &[u32], timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        let alive: Vec<u32> = pids
            .iter()
            .copied()
            .filter(|p| is_test_worker(*p))
            .collect();
        if alive.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "worker process(es) {alive:?} still alive after {timeout:?}"
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Resident memory of a process in KiB, from /proc.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Base RSS (KiB) of an idle `tests/php/ticker.php` worker: runs it directly
/// with a pipe relay, waits for its READY line, reads its RSS, kills it.
pub fn php_worker_base_rss_kib() -> u64 {
    let mut child = Command::new("php")
        .arg(php_script("ticker.php"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn php");
    let stderr = child.stderr.take().expect("stderr");
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if sender.send(line).is_err() {
                return;
            }
        }
    });
    let ready = loop {
        match receiver.recv_timeout(Duration::from_secs(20)) {
            Ok(line) if line.starts_with("READY ") => break Ok(line),
            Ok(_) => continue,
            Err(e) => break Err(e),
        }
    };
    let rss = rss_kib(child.id());
    let _ = child.kill();
    let _ = child.wait();
    ready.unwrap_or_else(|e| panic!("php ticker.php did not log READY on its own: {e}"));
    rss.expect("VmRSS of the php worker")
}

/// A `.rr.yaml` with a `server` section running `tests/php/<script>` with
/// `env`, and a `ticker` section; `ticker_extra` is inserted under `ticker:`
/// and `pool_extra` under `ticker.pool:` (both indented by the caller), and
/// `top_extra` appended at the top level.
pub struct Yaml<'a> {
    /// The worker script in tests/php.
    pub script: &'a str,
    /// `server.relay`; `None` leaves the default (pipes).
    pub relay: Option<&'a str>,
    /// `server.env` pairs.
    pub env: &'a [(&'a str, &'a str)],
    /// More `server:` lines, indented by two spaces.
    pub server_extra: &'a str,
    /// `ticker.interval`.
    pub interval: &'a str,
    /// `ticker.pool.num_workers`.
    pub num_workers: u32,
    /// `ticker.pool.allocate_timeout`.
    pub allocate_timeout: &'a str,
    /// More `ticker.pool:` lines, indented by four spaces.
    pub pool_extra: &'a str,
    /// More top-level sections.
    pub top_extra: &'a str,
}

impl Default for Yaml<'_> {
    fn default() -> Self {
        Yaml {
            script: "ticker.php",
            relay: None,
            env: &[],
            server_extra: "",
            interval: "100ms",
            num_workers: 2,
            allocate_timeout: "5s",
            pool_extra: "",
            top_extra: "",
        }
    }
}

impl Yaml<'_> {
    /// The configuration text.
    pub fn render(&self) -> String {
        let mut yaml = String::from("version: \"3\"\nserver:\n");
        yaml.push_str(&format!("  command: {}\n", php_command(self.script)));
        if let Some(relay) = self.relay {
            yaml.push_str(&format!("  relay: \"{relay}\"\n"));
        }
        if !self.env.is_empty() {
            yaml.push_str("  env:\n");
            for (key, value) in self.env {
                yaml.push_str(&format!("    {key}: \"{value}\"\n"));
            }
        }
        yaml.push_str(self.server_extra);
        yaml.push_str(&format!(
            "ticker:\n  interval: {}\n  pool:\n    num_workers: {}\n    allocate_timeout: {}\n    destroy_timeout: 5s\n",
            self.interval, self.num_workers, self.allocate_timeout
        ));
        yaml.push_str(self.pool_extra);
        yaml.push_str(self.top_extra);
        yaml
    }
}

/// `GET target` on `127.0.0.1:port` over a fresh HTTP/1.1 connection
/// (`Connection: close`, 10 s bound): the status code and the body.
pub fn http_get(port: u16, target: &str) -> Result<(u16, String), String> {
    use std::io::Write;
    let timeout = Duration::from_secs(10);
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = std::net::TcpStream::connect_timeout(&address, timeout)
        .map_err(|e| format!("connect to {address}: {e}"))?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    write!(
        stream,
        "GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| format!("send GET {target}: {e}"))?;
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .map_err(|e| format!("read the answer to GET {target}: {e}"))?;
    let response = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no header end in the answer to GET {target}: {response:?}"))?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("no status line in the answer to GET {target}: {head:?}"))?;
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return Err(format!(
            "chunked answer to GET {target} (not supported here)"
        ));
    }
    Ok((status, body.to_owned()))
}

/// The `rpc` section for [`Yaml::top_extra`]: listen on `127.0.0.1:port`.
pub fn rpc_section(port: u16) -> String {
    format!("rpc:\n  listen: tcp://127.0.0.1:{port}\n")
}

/// Starts an rr binary in `dir` with no stdin and both outputs piped.
fn spawn_piped(binary: &Path, dir: &Path, args: &[&str]) -> std::process::Child {
    Command::new(binary)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the rr binary")
}

/// Runs the rr binary in `dir` with `args` to completion (a management
/// command such as `rr reset`); SIGKILLs it and fails after `timeout`.
pub fn run_rr(dir: &Path, args: &[&str], timeout: Duration) -> std::process::Output {
    let child = spawn_piped(Path::new(env!("CARGO_BIN_EXE_rr")), dir, args);
    let pid = Pid::from_raw(child.id() as i32);
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = sender.send(child.wait_with_output());
    });
    match receiver.recv_timeout(timeout) {
        Ok(output) => output.expect("wait for the rr command"),
        Err(_) => {
            let _ = kill(pid, Signal::SIGKILL);
            panic!("`rr {}` did not finish within {timeout:?}", args.join(" "));
        }
    }
}
