//! The soak: mixed load on one real `rr` for minutes, with `rr reset` every
//! 30 s and PHP workers killed at random, and what it cost.
//!
//! One `rr` serves `benches/soak/app.php` in three pools: HTTP (4 workers,
//! loaded by 4 keep-alive clients on loopback; every 20th request pushes a
//! job through RPC), the ticker (100 ms, 2 workers) and jobs (a memory
//! pipeline, 2 workers). Errors are sorted into *expected* (the direct
//! result of a kill this soak made: the request, tick or job that was on
//! the killed worker) and *unexpected* (anything else). Every job whose push
//! was answered must be consumed at least once; duplicates are counted.
//! rr's resident memory is sampled every second; growth is the last 10% of
//! the run against the 10% after warm-up.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::server::{self, LogLine, Server, RR_STARTED, START_TIMEOUT};

/// How often the whole server is reset.
const RESET_EVERY: Duration = Duration::from_secs(30);
/// Random pause between two worker kills: 3 s plus up to this much.
const KILL_JITTER_MS: u64 = 4000;
/// How long the jobs pushed during the run get to be consumed afterwards.
const DRAIN: Duration = Duration::from_secs(30);
/// HTTP clients (keep-alive connections).
const CLIENTS: usize = 4;
/// Every n-th request of a client pushes a job.
const PUSH_EVERY: u64 = 20;
/// Messages rr logs at warn/error level as the direct result of a kill.
const KILL_EFFECTS: &[&str] = &[
    "worker failed and is killed; a new one will be started",
    "the job never got an answer from a worker; requeued",
];

/// What one soak measured.
#[derive(Debug, Default)]
pub struct Soak {
    /// Length of the load phase.
    pub seconds: u64,
    /// HTTP replies with status 200.
    pub http_ok: u64,
    /// HTTP 5xx replies explained by a kill of an HTTP worker.
    pub http_expected: u64,
    /// HTTP failures beyond that: other statuses, 5xx past the kills,
    /// broken connections.
    pub http_unexpected: u64,
    /// Ticks that ran.
    pub ticks: u64,
    /// Jobs whose push was answered with 200.
    pub jobs_pushed: u64,
    /// Pushed jobs consumed (at least once).
    pub jobs_consumed: u64,
    /// Pushed jobs never consumed.
    pub jobs_lost: u64,
    /// Jobs consumed more than once (at-least-once after a kill).
    pub jobs_duplicated: u64,
    /// Worker kills by pool (RR_MODE).
    pub kills: BTreeMap<String, u64>,
    /// `rr reset` runs that succeeded.
    pub resets_ok: u64,
    /// `rr reset` runs that failed (unexpected).
    pub resets_failed: u64,
    /// rr warn/error log lines explained by a kill.
    pub log_expected: u64,
    /// Every other rr warn/error log line (the first few are kept).
    pub log_unexpected: u64,
    /// The first unexpected lines, for the report.
    pub unexpected_samples: Vec<String>,
    /// rr's resident memory after warm-up and at the end, KiB (medians).
    pub rss_start_kib: u64,
    /// See `rss_start_kib`.
    pub rss_end_kib: u64,
}

impl Soak {
    /// Every unexpected error of the run.
    pub fn unexpected(&self) -> u64 {
        self.http_unexpected + self.jobs_lost + self.resets_failed + self.log_unexpected
    }

    /// rr's memory growth from after warm-up to the end, percent.
    pub fn rss_growth_percent(&self) -> f64 {
        if self.rss_start_kib == 0 {
            return 0.0;
        }
        (self.rss_end_kib as f64 / self.rss_start_kib as f64 - 1.0) * 100.0
    }
}

/// Counters the HTTP clients share.
#[derive(Default)]
struct HttpCounts {
    ok: AtomicU64,
    server_errors: AtomicU64,
    other: AtomicU64,
    broken: AtomicU64,
    pushed: Mutex<HashSet<String>>,
}

/// Runs the soak for `seconds` against the rr binary `rr`.
pub fn run(rr: &Path, repo: &Path, seconds: u64) -> Result<Soak> {
    let app = std::path::absolute(repo.join("benches/soak/app.php"))?;
    let http_port = server::free_port()?;
    let rpc_port = server::free_port()?;
    let yaml = format!(
        "version: '3'\n\
         server:\n  command: {command}\n\
         logs:\n  mode: production\n  level: info\n  channels:\n    ticker:\n      level: debug\n\
         rpc:\n  listen: tcp://127.0.0.1:{rpc_port}\n\
         http:\n  address: 127.0.0.1:{http_port}\n  pool:\n    num_workers: 4\n    allocate_timeout: 10s\n    destroy_timeout: 5s\n\
         ticker:\n  interval: 100ms\n  pool:\n    num_workers: 2\n    destroy_timeout: 5s\n\
         jobs:\n  consume: [soak]\n  pool:\n    num_workers: 2\n    destroy_timeout: 5s\n  \
         pipelines:\n    soak:\n      driver: memory\n      config:\n        prefetch: 100\n",
        command = server::php_command(&app),
    );
    let mut rr_server = Server::spawn("rr", rr, &yaml)?;
    rr_server.wait_for(RR_STARTED, START_TIMEOUT, |l| l.msg() == RR_STARTED)?;
    eprintln!("soak: {seconds} s of load, reset every {RESET_EVERY:?}, random kills");

    let stop = Arc::new(AtomicBool::new(false));
    let counts = Arc::new(HttpCounts::default());
    let next_job = Arc::new(AtomicU64::new(0));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (stop, counts, next_job) = (stop.clone(), counts.clone(), next_job.clone());
            std::thread::spawn(move || http_client(http_port, &stop, &counts, &next_job))
        })
        .collect();

    let mut soak = Soak {
        seconds,
        ..Soak::default()
    };
    let mut killed: HashMap<u32, String> = HashMap::new();
    let mut consumed: HashMap<String, u64> = HashMap::new();
    let mut rss = Vec::new();
    let began = Instant::now();
    let end = began + Duration::from_secs(seconds);
    let mut next_reset = began + RESET_EVERY;
    let mut random = Lcg(0x5eed_1234_abcd_ef01);
    let mut next_kill = began + kill_pause(&mut random);
    let mut next_sample = began;
    while Instant::now() < end {
        let until = [end, next_reset, next_kill, next_sample]
            .into_iter()
            .min()
            .unwrap_or(end);
        rr_server.pump_until(until, |line| {
            classify(line, &killed, &mut consumed, &mut soak);
        })?;
        let now = Instant::now();
        if now >= next_sample {
            rss.push(server::rss_kib(rr_server.pid)?);
            next_sample += Duration::from_secs(1);
        }
        if now >= next_kill {
            if let Some((pid, mode)) = kill_a_worker(rr_server.pid, &mut random) {
                *soak.kills.entry(mode.clone()).or_default() += 1;
                killed.insert(pid, mode);
            }
            next_kill = now + kill_pause(&mut random);
        }
        if now >= next_reset {
            let reset = Command::new(rr)
                .args(["reset", "-c", ".rr.yaml"])
                .current_dir(rr_server.dir())
                .output()
                .context("run rr reset")?;
            if reset.status.success() {
                soak.resets_ok += 1;
            } else {
                soak.resets_failed += 1;
                soak.unexpected_samples.push(format!(
                    "rr reset: {}",
                    String::from_utf8_lossy(&reset.stderr).trim()
                ));
            }
            next_reset = now + RESET_EVERY;
        }
    }
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        let _ = client.join();
    }

    // Every answered push must be consumed; give the queue time to drain.
    let pushed = counts
        .pushed
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let drain_end = Instant::now() + DRAIN;
    while Instant::now() < drain_end && !pushed.iter().all(|id| consumed.contains_key(id)) {
        let until = (Instant::now() + Duration::from_millis(200)).min(drain_end);
        rr_server.pump_until(until, |line| {
            classify(line, &killed, &mut consumed, &mut soak);
        })?;
    }
    rr_server.stop()?;

    let http_kills = soak.kills.get("http").copied().unwrap_or(0);
    let server_errors = counts.server_errors.load(Ordering::Relaxed);
    soak.http_ok = counts.ok.load(Ordering::Relaxed);
    // A kill fails at most the one request its worker was running.
    soak.http_expected = server_errors.min(http_kills);
    soak.http_unexpected = server_errors - soak.http_expected
        + counts.other.load(Ordering::Relaxed)
        + counts.broken.load(Ordering::Relaxed);
    soak.jobs_pushed = pushed.len() as u64;
    soak.jobs_consumed = pushed
        .iter()
        .filter(|id| consumed.contains_key(*id))
        .count() as u64;
    soak.jobs_lost = soak.jobs_pushed - soak.jobs_consumed;
    soak.jobs_duplicated = consumed.values().filter(|&&n| n > 1).count() as u64;
    let tenth = (rss.len() / 10).max(1);
    let warm = rss.len().min(tenth * 2);
    soak.rss_start_kib = median(&rss[tenth.min(warm)..warm]);
    soak.rss_end_kib = median(&rss[rss.len().saturating_sub(tenth)..]);
    eprintln!(
        "soak: {} HTTP ok, {} ticks, {} jobs consumed of {} pushed, kills {:?}, {} unexpected; rr {} → {} KiB",
        soak.http_ok,
        soak.ticks,
        soak.jobs_consumed,
        soak.jobs_pushed,
        soak.kills,
        soak.unexpected(),
        soak.rss_start_kib,
        soak.rss_end_kib
    );
    Ok(soak)
}

/// Sorts one rr log line into the soak's counters.
fn classify(
    line: &LogLine,
    killed: &HashMap<u32, String>,
    consumed: &mut HashMap<String, u64>,
    soak: &mut Soak,
) {
    let msg = line.msg();
    if let Some(id) = msg.strip_prefix("SOAK_JOB id=") {
        *consumed.entry(id.trim().to_owned()).or_default() += 1;
        return;
    }
    if msg == "tick done" {
        soak.ticks += 1;
    }
    let level = line
        .fields
        .get("level")
        .and_then(|v| v.as_str())
        .unwrap_or("");
    if level != "warn" && level != "error" {
        return;
    }
    let about_a_killed_worker = line
        .u64("pid")
        .is_some_and(|pid| killed.contains_key(&(pid as u32)))
        || killed
            .keys()
            .any(|pid| line.text.contains(&format!("pid {pid}")));
    if about_a_killed_worker || KILL_EFFECTS.contains(&msg) {
        soak.log_expected += 1;
    } else {
        soak.log_unexpected += 1;
        if soak.unexpected_samples.len() < 10 {
            soak.unexpected_samples.push(line.text.clone());
        }
    }
}

/// SIGKILLs one random PHP worker of `rr_pid`; returns its pid and pool.
fn kill_a_worker(rr_pid: u32, random: &mut Lcg) -> Option<(u32, String)> {
    let workers: Vec<u32> = server::children(rr_pid)
        .into_iter()
        .filter(|&pid| server::is_php(pid))
        .collect();
    if workers.is_empty() {
        return None;
    }
    let pid = workers[(random.next() % workers.len() as u64) as usize];
    let mode = std::fs::read(format!("/proc/{pid}/environ"))
        .ok()
        .and_then(|env| {
            env.split(|&b| b == 0).find_map(|kv| {
                kv.strip_prefix(b"RR_MODE=")
                    .map(|m| String::from_utf8_lossy(m).into_owned())
            })
        })
        .unwrap_or_else(|| "unknown".to_owned());
    server::signal(pid, "KILL");
    Some((pid, mode))
}

fn kill_pause(random: &mut Lcg) -> Duration {
    Duration::from_millis(3000 + random.next() % KILL_JITTER_MS)
}

/// One HTTP client: keep-alive GETs until `stop`, reconnecting after a
/// broken connection (counted).
fn http_client(port: u16, stop: &AtomicBool, counts: &HttpCounts, next_job: &AtomicU64) {
    let mut connection: Option<BufReader<TcpStream>> = None;
    let mut sent = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let reader = match &mut connection {
            Some(reader) => reader,
            None => match TcpStream::connect(("127.0.0.1", port)) {
                Ok(stream) => {
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
                    connection.insert(BufReader::new(stream))
                }
                Err(_) => {
                    counts.broken.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
            },
        };
        sent += 1;
        let job = sent
            .is_multiple_of(PUSH_EVERY)
            .then(|| next_job.fetch_add(1, Ordering::Relaxed));
        let path = match job {
            Some(n) => format!("/push?id={n}"),
            None => "/hello".to_owned(),
        };
        match round_trip(reader, &path) {
            Ok(200) => {
                counts.ok.fetch_add(1, Ordering::Relaxed);
                if let Some(n) = job {
                    counts
                        .pushed
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(format!("soak-{n}"));
                }
            }
            Ok(status) if status >= 500 => {
                counts.server_errors.fetch_add(1, Ordering::Relaxed);
            }
            Ok(_) => {
                counts.other.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                counts.broken.fetch_add(1, Ordering::Relaxed);
                connection = None;
            }
        }
    }
}

/// One keep-alive `GET path`; returns the status after reading the body.
fn round_trip(reader: &mut BufReader<TcpStream>, path: &str) -> std::io::Result<u16> {
    let request = format!("GET {path} HTTP/1.1\r\nHost: soak\r\n\r\n");
    reader.get_mut().write_all(request.as_bytes())?;
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
    let mut length = 0usize;
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    Ok(status)
}

fn median(samples: &[u64]) -> u64 {
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    sorted.get(sorted.len() / 2).copied().unwrap_or(0)
}

/// A small deterministic generator: the same kill pattern every run.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
}

/// Writes the soak's report to `out` (RELIABILITY.md).
pub fn write(soak: &Soak, out: &Path, took: Duration) -> Result<()> {
    let growth = soak.rss_growth_percent();
    let kills: u64 = soak.kills.values().sum();
    let kills_by_pool = soak
        .kills
        .iter()
        .map(|(mode, n)| format!("{mode} {n}"))
        .collect::<Vec<_>>()
        .join(", ");
    let verdict = |ok: bool| if ok { "✅" } else { "❌" };
    let mut text = format!(
        "# rr reliability: the soak\n\n\
         Written by `./scripts/soak.sh` (`rr-bench --only soak`). One real `rr` serves \
         `benches/soak/app.php` in three pools: HTTP (4 workers, loaded by {CLIENTS} keep-alive \
         clients on loopback; every {PUSH_EVERY}th request pushes a job over RPC from PHP), the \
         ticker (100 ms, 2 workers) and jobs (memory pipeline, 2 workers). `rr reset` runs every \
         {reset} s and a random PHP worker is SIGKILLed every 3 to 7 s. Errors are *expected* \
         when they are the direct result of a kill (the request, tick or job on the killed \
         worker, and rr's log lines naming it); everything else is *unexpected*. Every job \
         whose push was answered must be consumed. Memory is rr's own VmRSS, sampled every \
         second: the median of the 10% after the first 10% (warm-up) against the median of the \
         last 10%.\n\n\
         - Date: {date}; the run took {took:.0} s ({load} s of load, then up to {drain} s for queued jobs)\n\
         - Re-run: `./scripts/soak.sh [seconds]` (600 by default)\n\
         - The fault and security tests, and proof that each fails without its fix: \
         [docs/fault-proof.md](docs/fault-proof.md) (`./scripts/fault-proof.sh`)\n\n\
         | what | count |\n|---|---:|\n\
         | HTTP requests served (200) | {http_ok} |\n\
         | HTTP errors, expected (5xx for a request on a killed worker) | {http_expected} |\n\
         | HTTP errors, unexpected (other statuses, 5xx past the kills, broken connections) | {http_unexpected} |\n\
         | ticks run | {ticks} |\n\
         | jobs pushed (answered) / consumed | {pushed} / {consumed} |\n\
         | jobs lost | {lost} |\n\
         | jobs consumed twice (at-least-once after a kill) | {dups} |\n\
         | workers killed | {kills} ({kills_by_pool}) |\n\
         | `rr reset` ok / failed | {resets_ok} / {resets_failed} |\n\
         | rr warn/error lines, expected / unexpected | {log_expected} / {log_unexpected} |\n\
         | rr RSS after warm-up → end | {rss_start:.1} → {rss_end:.1} MiB ({growth:+.1}%) |\n\n\
         Targets (issue 9): zero unexpected errors {v1} ({unexpected}); rr's memory grows at most \
         10% after warm-up {v2} ({growth:+.1}%).\n",
        reset = RESET_EVERY.as_secs(),
        date = crate::report::utc_now(),
        took = took.as_secs_f64(),
        load = soak.seconds,
        drain = DRAIN.as_secs(),
        http_ok = soak.http_ok,
        http_expected = soak.http_expected,
        http_unexpected = soak.http_unexpected,
        ticks = soak.ticks,
        pushed = soak.jobs_pushed,
        consumed = soak.jobs_consumed,
        lost = soak.jobs_lost,
        dups = soak.jobs_duplicated,
        resets_ok = soak.resets_ok,
        resets_failed = soak.resets_failed,
        log_expected = soak.log_expected,
        log_unexpected = soak.log_unexpected,
        rss_start = soak.rss_start_kib as f64 / 1024.0,
        rss_end = soak.rss_end_kib as f64 / 1024.0,
        unexpected = soak.unexpected(),
        v1 = verdict(soak.unexpected() == 0),
        v2 = verdict(growth <= 10.0),
    );
    if !soak.unexpected_samples.is_empty() {
        text.push_str("\nUnexpected, first lines:\n\n```\n");
        for sample in &soak.unexpected_samples {
            text.push_str(sample);
            text.push('\n');
        }
        text.push_str("```\n");
    }
    std::fs::write(out, text).with_context(|| format!("write {}", out.display()))
}
