//! Measurements that run the real server binary: start-up, memory and ticker
//! lateness.
//!
//! Every run gets its own temp dir and a generated `.rr.yaml` (production
//! JSON logs at debug level on stderr), spawns `<binary> serve`, and waits
//! on log lines with timeouts: a reader thread stamps each stderr line with
//! the moment it arrived, so "time to X" is spawn to the arrival of X's line.
//! Each run ends with SIGTERM (SIGKILL past a timeout), and any PHP worker
//! still alive afterwards is killed, so no process outlives its run.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{Map, Value};

use crate::model::{self, Drift, Lateness, Memory, Startup};

/// Bound for a server to start its workers (64 PHP processes on 2 busy cores).
pub(crate) const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound for a graceful stop after SIGTERM before SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound for the process to be reaped after SIGKILL.
const KILL_TIMEOUT: Duration = Duration::from_secs(5);
/// Log lines kept for error messages.
const TAIL: usize = 40;
/// Ticks at the start of the lateness run that are not counted.
const WARM_UP: Duration = Duration::from_millis(500);
/// The message rr logs once every plugin serves (all workers ready).
pub(crate) const RR_STARTED: &str = "rr server started";
/// Part of the message RoadRunner's http plugin logs once its pool is up.
const RR_GO_HTTP_STARTED: &str = "http server was started";

/// Start-up of rr (first tick, 64 workers ready) and, when given, RoadRunner
/// (64 http workers ready).
pub fn startup(rr: &Path, roadrunner: Option<&Path>, repo: &Path) -> Result<Vec<Startup>> {
    let began = Instant::now();
    let echo = echo_script(repo)?;
    let mut first_tick = Vec::new();
    for _ in 0..5 {
        let mut server = Server::spawn("rr", rr, &rr_yaml(&echo, Duration::from_millis(10), 2))?;
        let line = server.wait_for("the first `tick done`", START_TIMEOUT, |l| {
            l.msg() == "tick done"
        })?;
        first_tick.push(ms(line.at - server.spawned));
        server.stop()?;
    }
    let mut ready = Vec::new();
    for _ in 0..3 {
        let mut server = Server::spawn("rr", rr, &rr_yaml(&echo, Duration::from_secs(1), 64))?;
        let line = server.wait_for(RR_STARTED, START_TIMEOUT, |l| l.msg() == RR_STARTED)?;
        ready.push(ms(line.at - server.spawned));
        server.stop()?;
    }
    eprintln!("startup: rr first tick {first_tick:.1?} ms, 64 workers ready {ready:.1?} ms");
    let mut results = vec![Startup {
        server: "rr".to_owned(),
        first_tick_ms: Some(median(&mut first_tick)),
        ready_64_ms: median(&mut ready),
    }];
    if let Some(roadrunner) = roadrunner {
        // Untested here: no RoadRunner binary on the machine this was written on.
        let mut ready = Vec::new();
        for _ in 0..3 {
            let yaml = roadrunner_yaml(&echo, free_port()?, 64);
            let mut server = Server::spawn("RoadRunner", roadrunner, &yaml)?;
            let line = server.wait_for(RR_GO_HTTP_STARTED, START_TIMEOUT, |l| {
                l.msg().contains(RR_GO_HTTP_STARTED)
            })?;
            ready.push(ms(line.at - server.spawned));
            server.stop()?;
        }
        eprintln!("startup: RoadRunner 64 workers ready {ready:.1?} ms");
        results.push(Startup {
            server: "RoadRunner".to_owned(),
            first_tick_ms: None,
            ready_64_ms: median(&mut ready),
        });
    }
    eprintln!("startup: took {:.1} s", began.elapsed().as_secs_f64());
    Ok(results)
}

/// Resident memory of rr idle (2 workers, 1 s ticks) and under load (8
/// workers, 1 ms ticks), and of one PHP worker; RoadRunner idle when given.
pub fn memory(rr: &Path, roadrunner: Option<&Path>, repo: &Path) -> Result<Vec<Memory>> {
    let began = Instant::now();
    let echo = echo_script(repo)?;

    let mut server = Server::spawn("rr", rr, &rr_yaml(&echo, Duration::from_secs(1), 2))?;
    let started = server.wait_for(RR_STARTED, START_TIMEOUT, |l| l.msg() == RR_STARTED)?;
    server.pump_until(started.at + Duration::from_secs(3), |_| {})?;
    let idle_kib = server.max_rss_over(Duration::from_secs(2), Duration::from_millis(500))?;
    server.stop()?;

    let mut server = Server::spawn("rr", rr, &rr_yaml(&echo, Duration::from_millis(1), 8))?;
    server.wait_for(RR_STARTED, START_TIMEOUT, |l| l.msg() == RR_STARTED)?;
    let window = Instant::now();
    let mut load_kib = 0;
    let mut ticks = 0u64;
    let mut skipped = 0u64;
    let mut count = |line: &LogLine| {
        if line.msg() == "tick done" {
            ticks += 1;
        } else if line.msg().starts_with("ticks skipped") {
            skipped += line.u64("skipped").unwrap_or(0);
        }
    };
    while window.elapsed() < Duration::from_secs(3) {
        load_kib = load_kib.max(rss_kib(server.pid)?);
        server.pump_until(Instant::now() + Duration::from_millis(100), &mut count)?;
    }
    let per_worker_kib = server.median_worker_rss()?;
    let took = window.elapsed().as_secs_f64();
    server.stop()?;
    eprintln!(
        "memory: rr idle {idle_kib} KiB, load {load_kib} KiB ({:.0} ticks/s, {skipped} skipped), worker {per_worker_kib} KiB",
        ticks as f64 / took
    );
    let mut results = vec![Memory {
        server: "rr".to_owned(),
        idle_kib,
        load_kib,
        per_worker_kib,
    }];

    if let Some(roadrunner) = roadrunner {
        // Untested here: no RoadRunner binary on the machine this was written on.
        let yaml = roadrunner_yaml(&echo, free_port()?, 2);
        let mut server = Server::spawn("RoadRunner", roadrunner, &yaml)?;
        let started = server.wait_for(RR_GO_HTTP_STARTED, START_TIMEOUT, |l| {
            l.msg().contains(RR_GO_HTTP_STARTED)
        })?;
        server.pump_until(started.at + Duration::from_secs(3), |_| {})?;
        let idle_kib = server.max_rss_over(Duration::from_secs(2), Duration::from_millis(500))?;
        let per_worker_kib = server.median_worker_rss()?;
        server.stop()?;
        eprintln!("memory: RoadRunner idle {idle_kib} KiB, worker {per_worker_kib} KiB");
        results.push(Memory {
            server: "RoadRunner".to_owned(),
            idle_kib,
            // RoadRunner's only pool we can drive is the http one, and its
            // workers must speak PSR-7; the echo worker cannot serve a
            // request, so there is no load path: load is reported as idle.
            load_kib: idle_kib,
            per_worker_kib,
        });
    }
    eprintln!("memory: took {:.1} s", began.elapsed().as_secs_f64());
    Ok(results)
}

/// Lateness of rr's ticks at `interval` with 2 workers over `seconds`
/// seconds after start-up (the first 0.5 s are warm-up and not counted).
pub fn lateness(rr: &Path, repo: &Path, interval: Duration, seconds: u64) -> Result<Lateness> {
    let began = Instant::now();
    let echo = echo_script(repo)?;
    let mut server = Server::spawn("rr", rr, &rr_yaml(&echo, interval, 2))?;
    let started = server.wait_for(RR_STARTED, START_TIMEOUT, |l| l.msg() == RR_STARTED)?;
    // rr's own timestamps (ns since the epoch) place a line in the run; the
    // arrival time stands in when a line has none.
    let started_ts = started.u64("ts");
    let counted = |line: &LogLine| match (started_ts, line.u64("ts")) {
        (Some(start), Some(ts)) => ts.saturating_sub(start) >= WARM_UP.as_nanos() as u64,
        _ => line.at.saturating_duration_since(started.at) >= WARM_UP,
    };
    let mut series = Vec::new();
    let mut skipped = 0u64;
    server.pump_until(started.at + Duration::from_secs(seconds), |line| {
        if !counted(line) {
            return;
        }
        if line.msg() == "tick done" {
            if let Some(us) = line.u64("lateness_us") {
                series.push(us);
            }
        } else if line.msg().starts_with("ticks skipped") {
            skipped += line.u64("skipped").unwrap_or(0);
        }
    })?;
    server.stop()?;
    anyhow::ensure!(
        !series.is_empty(),
        "no `tick done` line with `lateness_us` in {seconds} s"
    );
    let mut sorted = series.clone();
    let result = Lateness {
        interval_ms: interval.as_millis() as u64,
        seconds,
        samples: series.len(),
        p50_us: model::percentile(&mut sorted, 50.0),
        p99_us: model::percentile(&mut sorted, 99.0),
        max_us: model::percentile(&mut sorted, 100.0),
        series_us: series,
        skipped,
    };
    eprintln!(
        "lateness: {} ticks, p50 {:.0} µs, p99 {:.0} µs, max {:.0} µs, {} skipped; took {:.1} s",
        result.samples,
        result.p50_us,
        result.p99_us,
        result.max_us,
        result.skipped,
        began.elapsed().as_secs_f64()
    );
    Ok(result)
}

/// A named schedule at `every` for `seconds`: how late each run starts
/// against its planned time, and whether that grows over the run (drift).
pub fn drift(rr: &Path, repo: &Path, every: Duration, seconds: u64) -> Result<Drift> {
    let echo = echo_script(repo)?;
    let yaml = format!(
        "version: '3'\n\
         server:\n  command: {command}\n\
         logs:\n  mode: production\n  level: debug\n\
         ticker:\n  pool:\n    num_workers: 2\n  schedules:\n    drift:\n      every: {every}\n",
        command = php_command(&echo),
        every = go_duration(every),
    );
    let mut server = Server::spawn("rr", rr, &yaml)?;
    let started = server.wait_for(RR_STARTED, START_TIMEOUT, |l| l.msg() == RR_STARTED)?;
    // (planned unix ms, lateness µs) of each run.
    let mut runs: Vec<(i64, u64)> = Vec::new();
    server.pump_until(started.at + Duration::from_secs(seconds), |line| {
        if line.msg() == "schedule run started" {
            let planned = line.fields.get("planned").and_then(Value::as_i64);
            if let (Some(planned), Some(us)) = (planned, line.u64("lateness_us")) {
                runs.push((planned, us));
            }
        }
    })?;
    server.stop()?;
    // The first second warms up (first execs on fresh workers).
    let warm = runs.first().map_or(0, |r| r.0) + 1000;
    runs.retain(|r| r.0 >= warm);
    anyhow::ensure!(
        runs.len() >= 10,
        "only {} schedule runs in {seconds} s",
        runs.len()
    );
    let step = every.as_millis() as i64;
    let first = runs[0].0;
    let on_grid = runs
        .iter()
        .enumerate()
        .all(|(k, (planned, _))| *planned == first + k as i64 * step);
    // Least-squares slope of lateness against the run's planned time.
    let points: Vec<(f64, f64)> = runs
        .iter()
        .map(|(p, us)| ((p - first) as f64 / 60_000.0, *us as f64))
        .collect();
    let n = points.len() as f64;
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
    let covariance: f64 = points.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum();
    let variance: f64 = points.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
    let slope = if variance > 0.0 {
        covariance / variance
    } else {
        0.0
    };
    let mut sorted: Vec<u64> = runs.iter().map(|r| r.1).collect();
    let result = Drift {
        every_ms: step as u64,
        seconds,
        runs: runs.len(),
        on_grid,
        p50_us: model::percentile(&mut sorted, 50.0),
        p99_us: model::percentile(&mut sorted, 99.0),
        max_us: model::percentile(&mut sorted, 100.0),
        slope_us_per_min: slope,
    };
    eprintln!(
        "drift: {} runs at {} ms, on grid {}, p50 {:.0} µs, p99 {:.0} µs, slope {:.2} µs/min",
        result.runs,
        result.every_ms,
        result.on_grid,
        result.p50_us,
        result.p99_us,
        result.slope_us_per_min
    );
    Ok(result)
}

/// `tests/php/echo.php`, absolute.
fn echo_script(repo: &Path) -> Result<PathBuf> {
    let path = repo.join("tests/php/echo.php");
    std::path::absolute(&path).with_context(|| format!("worker script {}", path.display()))
}

/// rr's configuration: the echo worker behind the ticker.
fn rr_yaml(echo: &Path, interval: Duration, workers: usize) -> String {
    format!(
        "version: '3'\n\
         server:\n  command: {command}\n\
         logs:\n  mode: production\n  level: debug\n\
         ticker:\n  interval: {interval}\n  pool:\n    num_workers: {workers}\n",
        command = php_command(echo),
        interval = go_duration(interval),
    )
}

/// RoadRunner's configuration: the echo worker behind the http plugin. The
/// worker answers the pid handshake, which is all start-up needs; it cannot
/// serve a request.
fn roadrunner_yaml(echo: &Path, port: u16, workers: usize) -> String {
    format!(
        "version: '3'\n\
         server:\n  command: {command}\n\
         logs:\n  mode: production\n  level: debug\n\
         http:\n  address: 127.0.0.1:{port}\n  pool:\n    num_workers: {workers}\n",
        command = php_command(echo),
    )
}

/// `php <script>` as a YAML double-quoted scalar (JSON strings are YAML).
pub(crate) fn php_command(echo: &Path) -> String {
    Value::String(format!("php {}", echo.display())).to_string()
}

/// A duration in Go syntax, whole milliseconds when it is some.
fn go_duration(d: Duration) -> String {
    if d.as_nanos().is_multiple_of(1_000_000) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}ns", d.as_nanos())
    }
}

/// A port that was free a moment ago.
pub fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("bind 127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The median of a few samples (the upper middle one for an even count).
fn median(samples: &mut [f64]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// One stderr line of the server, with the moment it arrived.
pub(crate) struct LogLine {
    pub(crate) at: Instant,
    pub(crate) text: String,
    pub(crate) fields: Map<String, Value>,
}

impl LogLine {
    fn parse(at: Instant, text: String) -> LogLine {
        let fields = match serde_json::from_str::<Value>(&text) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        };
        LogLine { at, text, fields }
    }

    /// The message (`msg`); empty for a line that is not a JSON log line.
    pub(crate) fn msg(&self) -> &str {
        self.fields.get("msg").and_then(Value::as_str).unwrap_or("")
    }

    pub(crate) fn u64(&self, key: &str) -> Option<u64> {
        self.fields.get(key).and_then(Value::as_u64)
    }
}

/// One running server process, its log, and its temp dir.
pub(crate) struct Server {
    name: &'static str,
    pub(crate) pid: u32,
    /// Just before the spawn.
    spawned: Instant,
    lines: Receiver<LogLine>,
    exited: Receiver<std::io::Result<ExitStatus>>,
    tail: VecDeque<String>,
    /// Worker pids seen during the run, killed at the end if still alive.
    workers: Vec<u32>,
    /// The waiter thread reported the exit: the pid may be reused now.
    reaped: bool,
    stopped: bool,
    _dir: tempfile::TempDir,
}

impl Server {
    /// Writes `yaml` to a fresh temp dir and runs `<binary> serve` there.
    pub(crate) fn spawn(name: &'static str, binary: &Path, yaml: &str) -> Result<Server> {
        let dir = tempfile::Builder::new()
            .prefix("rr-bench-")
            .tempdir()
            .context("create a temp dir")?;
        let config = dir.path().join(".rr.yaml");
        std::fs::write(&config, yaml).with_context(|| format!("write {}", config.display()))?;
        let spawned = Instant::now();
        let mut child = Command::new(binary)
            .arg("serve")
            .arg("-c")
            .arg(&config)
            .arg("-w")
            .arg(dir.path())
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot run {}", binary.display()))?;
        let pid = child.id();
        let stderr = child
            .stderr
            .take()
            .ok_or_else(|| anyhow!("no stderr pipe"))?;
        let (line_tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stderr);
            let mut buf = Vec::with_capacity(256);
            let mut receiving = true;
            loop {
                buf.clear();
                match reader.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                let at = Instant::now();
                if receiving {
                    let text = String::from_utf8_lossy(&buf).trim_end().to_owned();
                    // Once nobody listens, keep draining so the server never
                    // blocks on a full pipe.
                    receiving = line_tx.send(LogLine::parse(at, text)).is_ok();
                }
            }
        });
        let (exit_tx, exited) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = exit_tx.send(child.wait());
        });
        Ok(Server {
            name,
            pid,
            spawned,
            lines,
            exited,
            tail: VecDeque::with_capacity(TAIL),
            workers: Vec::new(),
            reaped: false,
            stopped: false,
            _dir: dir,
        })
    }

    /// The server's temp dir (its working directory and config's home).
    pub(crate) fn dir(&self) -> &Path {
        self._dir.path()
    }

    fn remember(&mut self, line: &LogLine) {
        if self.tail.len() == TAIL {
            self.tail.pop_front();
        }
        self.tail.push_back(line.text.clone());
    }

    fn tail_text(&self) -> String {
        self.tail.iter().map(|l| format!("  {l}\n")).collect()
    }

    /// The error for a server whose log ended (it exited) too early.
    fn died(&mut self, while_: &str) -> anyhow::Error {
        let status = match self.exited.recv_timeout(KILL_TIMEOUT) {
            Ok(Ok(status)) => {
                self.reaped = true;
                status.to_string()
            }
            Ok(Err(err)) => {
                self.reaped = true;
                format!("wait failed: {err}")
            }
            Err(_) => "still running, its stderr closed".to_owned(),
        };
        anyhow!(
            "{} exited {while_} ({status}); last log lines:\n{}",
            self.name,
            self.tail_text()
        )
    }

    /// Waits for the first line that matches, up to `timeout`.
    pub(crate) fn wait_for(
        &mut self,
        what: &str,
        timeout: Duration,
        matches: impl Fn(&LogLine) -> bool,
    ) -> Result<LogLine> {
        let deadline = Instant::now() + timeout;
        loop {
            match self
                .lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(line) => {
                    self.remember(&line);
                    if matches(&line) {
                        return Ok(line);
                    }
                }
                Err(RecvTimeoutError::Timeout) => bail!(
                    "{}: no {what} within {timeout:?}; last log lines:\n{}",
                    self.name,
                    self.tail_text()
                ),
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(self.died(&format!("before {what}")));
                }
            }
        }
    }

    /// Hands every line to `each` until `until`; the server must stay up.
    pub(crate) fn pump_until(
        &mut self,
        until: Instant,
        mut each: impl FnMut(&LogLine),
    ) -> Result<()> {
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(());
            }
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.remember(&line);
                    each(&line);
                }
                Err(RecvTimeoutError::Timeout) => return Ok(()),
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(self.died("during the measured window"))
                }
            }
        }
    }

    /// The largest VmRSS of the server over `window`, sampled every `every`.
    fn max_rss_over(&mut self, window: Duration, every: Duration) -> Result<u64> {
        let end = Instant::now() + window;
        let mut max = rss_kib(self.pid)?;
        while Instant::now() < end {
            self.pump_until((Instant::now() + every).min(end), |_| {})?;
            max = max.max(rss_kib(self.pid)?);
        }
        Ok(max)
    }

    /// The median VmRSS of the server's worker processes, now.
    fn median_worker_rss(&mut self) -> Result<u64> {
        let workers = children(self.pid);
        self.note_workers(&workers);
        let mut rss: Vec<u64> = workers
            .iter()
            .filter_map(|&pid| rss_kib(pid).ok())
            .collect();
        anyhow::ensure!(!rss.is_empty(), "{} has no worker processes", self.name);
        Ok(model::percentile(&mut rss, 50.0) as u64)
    }

    fn note_workers(&mut self, pids: &[u32]) {
        for &pid in pids {
            if !self.workers.contains(&pid) {
                self.workers.push(pid);
            }
        }
    }

    /// SIGTERM, a bounded wait, SIGKILL if needed; then kills any worker
    /// still alive. Idempotent.
    pub(crate) fn stop(&mut self) -> Result<()> {
        if self.stopped {
            return Ok(());
        }
        self.stopped = true;
        let mut result = Ok(());
        if !self.reaped && self.exited.try_recv().is_ok() {
            self.reaped = true;
        }
        if self.reaped {
            self.kill_workers();
            return result;
        }
        let workers = children(self.pid);
        self.note_workers(&workers);
        // Until `exited` reports, the waiter thread has not reaped the
        // process, so the pid cannot have been reused.
        signal(self.pid, "TERM");
        match self.exited.recv_timeout(STOP_TIMEOUT) {
            Ok(_) | Err(RecvTimeoutError::Disconnected) => {}
            Err(RecvTimeoutError::Timeout) => {
                signal(self.pid, "KILL");
                if self.exited.recv_timeout(KILL_TIMEOUT).is_err() {
                    result = Err(anyhow!("{} (pid {}) survived SIGKILL", self.name, self.pid));
                }
                eprintln!(
                    "warning: {} did not stop within {STOP_TIMEOUT:?} of SIGTERM; killed",
                    self.name
                );
            }
        }
        self.reaped = true;
        self.kill_workers();
        result
    }

    /// Kills every worker seen during the run that is still a live PHP process.
    fn kill_workers(&self) {
        for &pid in &self.workers {
            if is_php(pid) {
                eprintln!(
                    "warning: {} left worker {pid} behind; killing it",
                    self.name
                );
                signal(pid, "KILL");
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Err(err) = self.stop() {
            eprintln!("warning: {err}");
        }
    }
}

/// Sends a signal with kill(1) (the crate allows no unsafe code for libc).
pub(crate) fn signal(pid: u32, name: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// VmRSS of a process, KiB.
pub(crate) fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("read /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| anyhow!("no VmRSS in /proc/{pid}/status"))
}

/// The `(ppid, state)` of a process from `/proc/<pid>/stat`.
fn stat(pid: u32) -> Option<(u32, char)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid ...`; comm may hold spaces and parentheses.
    let mut rest = stat[stat.rfind(')')? + 1..].split_whitespace();
    let state = rest.next()?.chars().next()?;
    let ppid = rest.next()?.parse().ok()?;
    Some((ppid, state))
}

/// Live child processes of `parent`, from a scan of /proc.
pub(crate) fn children(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| matches!(stat(pid), Some((ppid, state)) if ppid == parent && state != 'Z'))
        .collect()
}

/// Whether `pid` is a live (not zombie) PHP process.
pub(crate) fn is_php(pid: u32) -> bool {
    let alive = matches!(stat(pid), Some((_, state)) if state != 'Z' && state != 'X');
    alive
        && std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmd| {
            cmd.split(|&b| b == 0)
                .next()
                .is_some_and(|argv0| argv0.ends_with(b"php"))
        })
}
