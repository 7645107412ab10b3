//! The management commands: `rr reset`, `rr workers` and `rr stop`
//! (RoadRunner's `internal/cli/{reset,workers,stop}`), `rr schedules` and
//! `rr jobs`.

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use rr_config::{Config, LoadOptions};
use rr_rpc::services::WorkerState;
use rr_rpc::RpcClient;

use crate::{enter_work_dir, enter_work_dir_unchecked, Cli};

/// Bound for reaching the RPC server.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Bound for one informer call.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound for one reset: a pool waits up to its `reset_timeout` (60 s by
/// default) for busy workers, then restarts them.
const RESET_TIMEOUT: Duration = Duration::from_secs(600);

/// RoadRunner's message when the configuration has no `rpc` section.
const RPC_MISSING: &str = "rpc service not specified in the configuration. Tip: add\n\n  rpc:\n    listen: tcp://127.0.0.1:6001\n\nto the configuration (the same address `rr serve` uses)";

/// Reads the configuration the way `rr serve` does (`-c`, `-w`, `-o`,
/// `--dotenv`) and connects to its `rpc.listen`.
fn connect(cli: &Cli) -> Result<RpcClient> {
    let path = enter_work_dir(cli)?;
    let config = Config::load(&LoadOptions {
        path,
        overrides: cli.overrides.clone(),
        dotenv: cli.dotenv.clone(),
    })?;
    if !config.has("rpc") {
        bail!("{RPC_MISSING}");
    }
    // Like RoadRunner's CLI, the server's default address is not assumed:
    // the client needs `rpc.listen` (or `-o rpc.listen=...`).
    let listen = config
        .get("rpc.listen")
        .and_then(|v| v.as_str())
        .filter(|s| s.contains("://"))
        .ok_or_else(|| {
            anyhow!("invalid socket DSN at `rpc.listen` (tcp://:6001, unix://file.sock): set rpc.listen to the address rr serve listens on")
        })?;
    let client = RpcClient::connect(listen, CONNECT_TIMEOUT)?;
    Ok(client)
}

/// `rr reset [plugin ...]`.
pub(crate) fn reset(cli: &Cli, plugins: &[String]) -> Result<ExitCode> {
    let mut client = connect(cli)?;
    let plugins = if plugins.is_empty() {
        client.resettable()?
    } else {
        plugins.to_vec()
    };
    client.set_call_timeout(Some(RESET_TIMEOUT))?;
    let mut failed = 0;
    for plugin in &plugins {
        println!("resetting plugin: [{plugin}]");
        match client.reset(plugin) {
            Ok(_) => println!("plugin reset: [{plugin}]"),
            Err(err) => {
                eprintln!("error: reset of [{plugin}] failed: {err}");
                failed += 1;
            }
        }
    }
    // RoadRunner exits 0 even when a reset failed (it checks the wrong
    // error variable); we deliberately exit 1 so scripts can notice.
    if failed > 0 {
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// goridge's codec flag for protobuf payloads.
const CODEC_PROTO: u8 = 0x80;

/// `rr workers [-i] [plugin ...]`.
pub(crate) fn workers(cli: &Cli, plugins: &[String], interactive: bool) -> Result<ExitCode> {
    let mut client = connect(cli)?;
    client.set_call_timeout(Some(CALL_TIMEOUT))?;
    if !interactive {
        print!("{}", render_workers(&mut client, plugins)?);
        return Ok(ExitCode::SUCCESS);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start a runtime")?;
    runtime.block_on(async {
        let mut stop = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("cannot listen for SIGTERM")?;
        loop {
            let text = render_workers(&mut client, plugins)?;
            // Cursor home, clear screen, then the fresh table.
            print!("\x1b[H\x1b[2J{text}");
            let _ = std::io::stdout().flush();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break,
                _ = stop.recv() => break,
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// One `Workers of [name]:` block per plugin.
fn render_workers(client: &mut RpcClient, plugins: &[String]) -> Result<String> {
    let plugins = if plugins.is_empty() {
        client.plugins_with_workers()?
    } else {
        plugins.to_vec()
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut text = String::new();
    for plugin in &plugins {
        let workers = client.workers(plugin)?;
        text.push_str(&format!("Workers of [{plugin}]:\n"));
        if workers.is_empty() {
            text.push_str("(no workers)\n\n");
            continue;
        }
        text.push_str(&table(&workers, now));
        text.push('\n');
    }
    // RoadRunner's `rr workers` ends with the jobs pipelines. A broker
    // that cannot answer gets an error line there, as in RoadRunner, and
    // the worker tables above still print.
    if plugins.iter().any(|p| p == "jobs") {
        match jobs_stat(client) {
            Ok(stats) if stats.stats.is_empty() => {}
            Ok(stats) => {
                text.push_str("Jobs of [jobs]:\n");
                text.push_str(&jobs_table(&stats));
                text.push('\n');
            }
            Err(e) => text.push_str(&format!("Jobs of [jobs]:\nerror: {e:#}\n\n")),
        }
    }
    Ok(text)
}

/// `jobs.Stat` with the `jobs.v1` protobuf messages.
fn jobs_stat(client: &mut RpcClient) -> Result<rr_jobs::proto::Stats> {
    let reply = client.call_raw("jobs.Stat", CODEC_PROTO, &[])?;
    rr_jobs::proto::Stats::decode(&reply).map_err(|e| anyhow!("jobs.Stat: {e}"))
}

/// `PID | Status | Execs | Memory | Created`, columns aligned.
fn table(workers: &[WorkerState], now_nanos: u128) -> String {
    let header = ["PID", "Status", "Execs", "Memory", "Created"].map(str::to_owned);
    let rows: Vec<[String; 5]> = workers
        .iter()
        .map(|w| {
            [
                w.pid.to_string(),
                w.status_str.clone(),
                w.num_execs.to_string(),
                human_bytes(w.memory_usage),
                ago(now_nanos.saturating_sub(u128::from(w.created))),
            ]
        })
        .collect();
    render_table(&header, &rows)
}

/// A `|`-separated table with a rule under the header, columns padded to
/// their widest cell.
fn render_table<const N: usize>(header: &[String; N], rows: &[[String; N]]) -> String {
    let mut widths = header.clone().map(|h| h.chars().count());
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: &[String; N]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        format!("{}\n", padded.join(" | ").trim_end())
    };
    let mut text = line(header);
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    text.push_str(&format!("{}\n", rule.join("-+-")));
    for row in rows {
        text.push_str(&line(row));
    }
    text
}

/// Bytes in SI units like go-humanize's `Bytes` (`21 MB`, `4.2 kB`).
fn human_bytes(bytes: u64) -> String {
    if bytes < 10 {
        return format!("{bytes} B");
    }
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let exp = ((bytes as f64).log10() / 3.0).floor() as usize;
    let exp = exp.min(UNITS.len() - 1);
    let value = bytes as f64 / 1000f64.powi(exp as i32);
    if value < 10.0 {
        format!("{value:.1} {}", UNITS[exp])
    } else {
        format!("{value:.0} {}", UNITS[exp])
    }
}

/// A relative time: `5s ago`, `3m ago`, `2h ago`, `4d ago`.
fn ago(nanos: u128) -> String {
    let secs = (nanos / 1_000_000_000) as u64;
    match secs {
        0..=59 => format!("{secs}s ago"),
        60..=3599 => format!("{}m ago", secs / 60),
        3600..=86_399 => format!("{}h ago", secs / 3600),
        _ => format!("{}d ago", secs / 86_400),
    }
}

/// `rr schedules [list]`: one table row per schedule.
pub(crate) fn schedules_list(cli: &Cli) -> Result<ExitCode> {
    let mut client = connect(cli)?;
    client.set_call_timeout(Some(CALL_TIMEOUT))?;
    let list = client.call_json("schedules.List", &true)?;
    let schedules = list
        .as_array()
        .ok_or_else(|| anyhow!("schedules.List did not answer a list: {list}"))?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    print!("{}", schedules_table(schedules, now));
    Ok(ExitCode::SUCCESS)
}

/// `rr schedules trigger|pause|resume NAME`.
pub(crate) fn schedules_command(cli: &Cli, method: &str, name: &str) -> Result<ExitCode> {
    let mut client = connect(cli)?;
    client.set_call_timeout(Some(CALL_TIMEOUT))?;
    let reply = client.call_json(&format!("schedules.{method}"), &name)?;
    match (method, reply.as_bool()) {
        ("Trigger", Some(true)) => println!("schedule triggered: [{name}]"),
        ("Trigger", _) => {
            println!(
                "schedule not started: [{name}] (its overlap policy skipped or queued the run)"
            );
        }
        ("Pause", _) => println!("schedule paused: [{name}]"),
        _ => println!("schedule resumed: [{name}]"),
    }
    Ok(ExitCode::SUCCESS)
}

/// `NAME | SPEC | STATE | NEXT | LAST | RESULT | RUNS`, columns aligned.
fn schedules_table(schedules: &[serde_json::Value], now_ms: i64) -> String {
    let header = ["NAME", "SPEC", "STATE", "NEXT", "LAST", "RESULT", "RUNS"].map(str::to_owned);
    let text = |v: &serde_json::Value| v.as_str().unwrap_or("-").to_owned();
    let rows: Vec<[String; 7]> = schedules
        .iter()
        .map(|s| {
            let mut spec = text(&s["spec"]);
            if let Some(tz) = s["timezone"].as_str() {
                spec.push_str(&format!(" ({tz})"));
            }
            let state = if s["paused"].as_bool() == Some(true) {
                "paused"
            } else {
                "active"
            };
            let counts = &s["counts"];
            let count = |k: &str| counts[k].as_u64().unwrap_or(0);
            let mut runs = format!("{} ok, {} failed", count("succeeded"), count("failed"));
            if count("skipped") > 0 {
                runs.push_str(&format!(", {} skipped", count("skipped")));
            }
            [
                text(&s["name"]),
                spec,
                state.to_owned(),
                s["next_run"]
                    .as_i64()
                    .map_or_else(|| "-".to_owned(), |t| relative(t - now_ms)),
                s["last_run"]
                    .as_i64()
                    .map_or_else(|| "-".to_owned(), |t| relative(t - now_ms)),
                text(&s["last_result"]),
                runs,
            ]
        })
        .collect();
    render_table(&header, &rows)
}

/// A time relative to now: `in 3s` ahead, `2s ago` behind.
fn relative(delta_ms: i64) -> String {
    let span = |secs: u64| match secs {
        0..=59 => format!("{secs}s"),
        60..=3599 => format!("{}m", secs / 60),
        3600..=86_399 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86_400),
    };
    if delta_ms >= 0 {
        format!("in {}", span(delta_ms.unsigned_abs().div_ceil(1000)))
    } else {
        format!("{} ago", span(delta_ms.unsigned_abs() / 1000))
    }
}

/// `rr jobs ...` (RoadRunner spells these `rr jobs --list|--pause|--resume`).
#[derive(Debug, clap::Subcommand)]
pub(crate) enum JobsAction {
    /// Show every pipeline: state, driver, queue, active, delayed, reserved.
    List,
    /// Stop consuming the named pipelines (pushing still works).
    Pause {
        /// Pipeline names (also comma-separated).
        #[arg(required = true)]
        pipelines: Vec<String>,
    },
    /// Consume the named pipelines again.
    Resume {
        /// Pipeline names (also comma-separated).
        #[arg(required = true)]
        pipelines: Vec<String>,
    },
}

/// `rr jobs [list|pause|resume ...]`: `jobs.Stat`, `jobs.Pause` and
/// `jobs.Resume` with the `jobs.v1` protobuf messages.
pub(crate) fn jobs(cli: &Cli, action: Option<&JobsAction>) -> Result<ExitCode> {
    use rr_jobs::proto::Pipelines;
    let mut client = connect(cli)?;
    client.set_call_timeout(Some(CALL_TIMEOUT))?;
    let names = |pipelines: &[String]| Pipelines {
        pipelines: pipelines
            .iter()
            .flat_map(|p| p.split(','))
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect(),
    };
    match action {
        None | Some(JobsAction::List) => {
            print!("{}", jobs_table(&jobs_stat(&mut client)?));
        }
        Some(JobsAction::Pause { pipelines }) => {
            let names = names(pipelines);
            client.call_raw("jobs.Pause", CODEC_PROTO, &names.encode())?;
            for name in &names.pipelines {
                println!("pipeline paused: [{name}]");
            }
        }
        Some(JobsAction::Resume { pipelines }) => {
            let names = names(pipelines);
            client.call_raw("jobs.Resume", CODEC_PROTO, &names.encode())?;
            for name in &names.pipelines {
                println!("pipeline resumed: [{name}]");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// RoadRunner's jobs table: `Status | Pipeline | Driver | Queue | Priority |
/// Active | Delayed | Reserved`.
fn jobs_table(stats: &rr_jobs::proto::Stats) -> String {
    let header = [
        "Status", "Pipeline", "Driver", "Queue", "Priority", "Active", "Delayed", "Reserved",
    ]
    .map(str::to_owned);
    let rows: Vec<[String; 8]> = stats
        .stats
        .iter()
        .map(|s| {
            [
                if s.ready { "ready" } else { "paused" }.to_owned(),
                s.pipeline.clone(),
                s.driver.clone(),
                s.queue.clone(),
                s.priority.to_string(),
                s.active.to_string(),
                s.delayed.to_string(),
                s.reserved.to_string(),
            ]
        })
        .collect();
    render_table(&header, &rows)
}

/// `rr stop [-f]`: SIGTERM to the pid in `.pid`; with `-f` a second one
/// after 1 s, which makes rr exit at once.
pub(crate) fn stop(cli: &Cli, force: bool) -> Result<ExitCode> {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;

    enter_work_dir_unchecked(cli)?;
    let text = std::fs::read_to_string(".pid").map_err(|err| {
        anyhow!("cannot read .pid: {err}, to create a .pid file, you must run RR with the following options: './rr serve -p'")
    })?;
    let pid: i32 = text
        .trim()
        .parse()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| anyhow!(".pid does not hold a process id: {:?}", text.trim()))?;
    kill(Pid::from_raw(pid), Signal::SIGTERM)
        .with_context(|| format!("cannot send SIGTERM to rr (pid {pid})"))?;
    if force {
        std::thread::sleep(Duration::from_secs(1));
        // It may be gone already: that is what we wanted.
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_and_times_read_like_humans_write_them() {
        assert_eq!(human_bytes(5), "5 B");
        assert_eq!(human_bytes(4200), "4.2 kB");
        assert_eq!(human_bytes(21_000_000), "21 MB");
        assert_eq!(ago(5_000_000_000), "5s ago");
        assert_eq!(ago(125_000_000_000), "2m ago");
        assert_eq!(ago(7_200_000_000_000), "2h ago");
    }

    #[test]
    fn schedules_table_shows_state_and_relative_times() {
        let list = serde_json::json!([
            {"name": "beat", "spec": "every 30s", "timezone": null, "paused": false,
             "next_run": 13_000, "last_run": 8_000, "last_result": "ok",
             "counts": {"started": 3, "succeeded": 3, "failed": 0, "skipped": 0}},
            {"name": "nightly", "spec": "cron 0 0 * * *", "timezone": "UTC", "paused": true,
             "next_run": null, "last_run": null, "last_result": null,
             "counts": {"started": 0, "succeeded": 0, "failed": 0, "skipped": 2}},
        ]);
        let text = schedules_table(list.as_array().expect("list"), 10_000);
        assert_eq!(
            text,
            "NAME    | SPEC                 | STATE  | NEXT  | LAST   | RESULT | RUNS\n\
             --------+----------------------+--------+-------+--------+--------+--------------------------\n\
             beat    | every 30s            | active | in 3s | 2s ago | ok     | 3 ok, 0 failed\n\
             nightly | cron 0 0 * * * (UTC) | paused | -     | -      | -      | 0 ok, 0 failed, 2 skipped\n"
        );
        assert_eq!(relative(-125_000), "2m ago");
        assert_eq!(relative(500), "in 1s");
    }

    #[test]
    fn jobs_table_shows_each_pipeline() {
        let stats = rr_jobs::proto::Stats {
            stats: vec![rr_jobs::proto::Stat {
                pipeline: "emails".into(),
                driver: "memory".into(),
                queue: "emails".into(),
                active: 2,
                delayed: 1,
                reserved: 0,
                ready: true,
                priority: 10,
            }],
        };
        assert_eq!(
            jobs_table(&stats),
            "Status | Pipeline | Driver | Queue  | Priority | Active | Delayed | Reserved\n\
             -------+----------+--------+--------+----------+--------+---------+---------\n\
             ready  | emails   | memory | emails | 10       | 2      | 1       | 0\n"
        );
    }

    #[test]
    fn table_aligns_columns() {
        let worker = WorkerState {
            pid: 1234,
            status: 1,
            num_execs: 7,
            created: 1_000_000_000,
            memory_usage: 21_000_000,
            cpu_percent: 0.0,
            command: String::new(),
            status_str: "ready".into(),
        };
        let text = table(&[worker], 6_000_000_000);
        assert_eq!(
            text,
            "PID  | Status | Execs | Memory | Created\n-----+--------+-------+--------+--------\n1234 | ready  | 7     | 21 MB  | 5s ago\n"
        );
    }
}
