//! End-to-end: controlling named schedules over RPC (`schedules.List`,
//! `Trigger`, `Pause`, `Resume`) and with `rr schedules`, with real PHP
//! workers (`tests/php/schedule.php`) and the RPC server on a free port.

use crate::support;

use std::time::Duration;

use rr_rpc::{RpcClient, RpcClientError};
use serde_json::Value;
use support::schedules::{planned_of, runs};
use support::{
    free_tcp_port, now_ms, ok, php_command, rpc_section, run_rr, Line, RrProcess, EVENTUALLY, START,
};

/// Bound for one management command.
const COMMAND: Duration = Duration::from_secs(30);

/// `rr serve` running `schedule.php` with these `schedules:` (indented by
/// four spaces) and RPC on a free port; returns once every plugin is up.
fn start(dir: &std::path::Path, schedules: &str) -> (RrProcess, RpcClient) {
    let port = free_tcp_port();
    let yaml = format!(
        "version: \"3\"\nserver:\n  command: {}\nticker:\n  pool:\n    num_workers: 2\n    allocate_timeout: 5s\n    destroy_timeout: 5s\n  schedules:\n{schedules}{}",
        php_command("schedule.php"),
        rpc_section(port)
    );
    let mut rr = RrProcess::start(dir, &yaml);
    ok(rr.wait_for(|l| l.is("rpc", "RPC plugin started"), START));
    ok(rr.wait_for(|l| l.is("rr", "rr server started"), START));
    let client = RpcClient::connect(&format!("tcp://127.0.0.1:{port}"), COMMAND)
        .unwrap_or_else(|e| panic!("connect to rr's RPC: {e}"));
    (rr, client)
}

/// Predicate: a `RUN` line of schedule `name` planned after `after` (unix ms).
fn run_of(name: &'static str, after: i64) -> impl Fn(&Line) -> bool {
    move |line| {
        line.event_named("RUN")
            .is_some_and(|e| e.get("schedule") == name && planned_of(&e) > after)
    }
}

/// `schedules.List`, as a name → entry lookup.
fn list(client: &mut RpcClient) -> Vec<Value> {
    let reply = client
        .call_json("schedules.List", &true)
        .unwrap_or_else(|e| panic!("schedules.List: {e}"));
    reply.as_array().expect("a list").clone()
}

fn entry(client: &mut RpcClient, name: &str) -> Value {
    list(client)
        .into_iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in schedules.List"))
}

fn call(client: &mut RpcClient, method: &str, name: &str) -> Result<Value, String> {
    client
        .call_json(&format!("schedules.{method}"), &name)
        .map_err(|e| match e {
            RpcClientError::Remote { message, .. } => message,
            other => panic!("schedules.{method}({name}): {other}"),
        })
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `schedules.List` shows every configured schedule with its spec and a
/// next run; `Trigger` on a cron that is never due in the test runs it
/// exactly once, and its result and counts show in the list; unknown names
/// are errors; `rr schedules list|trigger` do the same from the shell.
#[test]
fn list_shows_the_schedules_and_trigger_runs_one_now() {
    require_php!();
    let dir = support::temp_dir();
    let (mut rr, mut client) = start(
        dir.path(),
        "    nightly:\n      cron: \"0 0 1 1 *\"\n    beat:\n      every: 200ms\n",
    );
    let now = now_ms();
    let all = list(&mut client);
    let names: Vec<&str> = all.iter().filter_map(|e| e["name"].as_str()).collect();
    rr.check(names == ["beat", "nightly"], format!("names {names:?}"));
    let nightly = entry(&mut client, "nightly");
    rr.check(
        nightly["spec"] == "cron 0 0 1 1 *"
            && nightly["timezone"] == "UTC"
            && nightly["overlap"] == "skip"
            && nightly["paused"] == false
            && nightly["last_run"].is_null()
            && nightly["last_result"].is_null()
            && nightly["next_run"].as_i64().is_some_and(|t| t > now),
        format!("nightly before any run: {nightly}"),
    );
    let beat = entry(&mut client, "beat");
    rr.check(
        beat["spec"] == "every 200ms"
            && beat["timezone"].is_null()
            && beat["next_run"]
                .as_i64()
                .is_some_and(|t| t > now - 50 && t <= now + 1000),
        format!("beat: {beat}"),
    );

    // Trigger: exactly one RUN of nightly, planned "now".
    let before = now_ms();
    let started = call(&mut client, "Trigger", "nightly").expect("Trigger");
    rr.check(
        started == Value::Bool(true),
        format!("Trigger replied {started}"),
    );
    let run = ok(rr.wait_for(run_of("nightly", 0), EVENTUALLY));
    let at = planned_of(&run.event().expect("RUN"));
    rr.check(
        at >= before - 50 && at <= now_ms() + 50,
        format!("the triggered run was planned at {at}, triggered at {before}"),
    );
    // A later event: a beat run planned well after the triggered one.
    ok(rr.wait_for(run_of("beat", at + 400), EVENTUALLY));
    rr.check(
        runs(&rr, "nightly").len() == 1,
        "exactly one nightly RUN per trigger",
    );
    // Its result lands once the worker has answered.
    let deadline = std::time::Instant::now() + EVENTUALLY;
    let nightly = loop {
        let nightly = entry(&mut client, "nightly");
        if nightly["last_result"] == "ok" || std::time::Instant::now() > deadline {
            break nightly;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    rr.check(
        nightly["last_result"] == "ok"
            && nightly["last_run"]
                .as_i64()
                .is_some_and(|t| t >= before - 50)
            && nightly["counts"]["started"] == 1
            && nightly["counts"]["succeeded"] == 1
            && nightly["counts"]["failed"] == 0,
        format!("nightly after the trigger: {nightly}"),
    );

    for method in ["Trigger", "Pause", "Resume"] {
        let err = call(&mut client, method, "nope").expect_err("unknown name");
        rr.check(
            err.contains("unknown schedule: nope"),
            format!("{method}(nope) answered {err:?}"),
        );
    }

    // The same from the shell.
    let output = run_rr(dir.path(), &["schedules", "-c", ".rr.yaml"], COMMAND);
    let stdout = text(&output.stdout);
    rr.check(
        output.status.success()
            && stdout.starts_with("NAME ")
            && stdout.contains("| SPEC ")
            && stdout.contains("| RUNS")
            && stdout.lines().any(|l| {
                l.starts_with("nightly ")
                    && l.contains("cron 0 0 1 1 * (UTC)")
                    && l.contains("| ok ")
            })
            && stdout.lines().any(|l| {
                l.starts_with("beat ") && l.contains("every 200ms") && l.contains("active")
            }),
        format!(
            "rr schedules: {}\nstdout: {stdout}\nstderr: {}",
            output.status,
            text(&output.stderr)
        ),
    );
    let output = run_rr(
        dir.path(),
        &["schedules", "trigger", "nope", "-c", ".rr.yaml"],
        COMMAND,
    );
    rr.check(
        !output.status.success() && text(&output.stderr).contains("unknown schedule: nope"),
        format!(
            "rr schedules trigger nope: {}\nstderr: {}",
            output.status,
            text(&output.stderr)
        ),
    );
    let mark = rr.mark();
    let output = run_rr(
        dir.path(),
        &["schedules", "trigger", "nightly", "-c", ".rr.yaml"],
        COMMAND,
    );
    rr.check(
        output.status.success() && text(&output.stdout).contains("schedule triggered: [nightly]"),
        format!("rr schedules trigger nightly: {}", text(&output.stdout)),
    );
    ok(rr.wait_for_line_after(mark, run_of("nightly", at), EVENTUALLY));
    rr.stop_cleanly();
}

/// `Pause` stops a schedule's runs: while a second schedule runs on past
/// the paused one's next planned times (by a margin), no run of it planned
/// after the pause arrives; `Resume` brings them back on the same
/// absolute timeline, the passed times counted as skipped. A schedule with
/// `catch_up: all` and `catch_up_limit: 2` paused alongside runs its two
/// latest missed times at once on `Resume`.
#[test]
fn pause_stops_runs_and_resume_brings_them_back_on_the_timeline() {
    require_php!();
    let dir = support::temp_dir();
    let (mut rr, mut client) = start(
        dir.path(),
        "    beat:\n      every: 200ms\n    probe:\n      every: 100ms\n    backfill:\n      every: 200ms\n      catch_up: all\n      catch_up_limit: 2\n",
    );
    ok(rr.wait_for_n(run_of("beat", 0), 2, START));
    ok(rr.wait_for(run_of("backfill", 0), START));
    let backfill_paused = call(&mut client, "Pause", "backfill").expect("Pause");
    rr.check(backfill_paused == Value::Bool(true), "Pause backfill");

    let paused = call(&mut client, "Pause", "beat").expect("Pause");
    let paused_at = now_ms();
    rr.check(
        paused == Value::Bool(true),
        format!("Pause replied {paused}"),
    );
    let beat = entry(&mut client, "beat");
    rr.check(
        beat["paused"] == true && beat["next_run"].is_null(),
        format!("beat while paused: {beat}"),
    );
    // Two of beat's periods and a margin pass, measured by probe's plan.
    ok(rr.wait_for(run_of("probe", paused_at + 2 * 200 + 150), EVENTUALLY));
    let late: Vec<i64> = runs(&rr, "beat")
        .iter()
        .map(planned_of)
        .filter(|p| *p > paused_at)
        .collect();
    rr.check(
        late.is_empty(),
        format!("beat runs planned after the pause at {paused_at}: {late:?}"),
    );
    let list_text = run_rr(
        dir.path(),
        &["schedules", "list", "-c", ".rr.yaml"],
        COMMAND,
    );
    let stdout = text(&list_text.stdout);
    rr.check(
        stdout
            .lines()
            .any(|l| l.starts_with("beat ") && l.contains("| paused |")),
        format!("rr schedules list while paused: {stdout}"),
    );

    let resumed_from = now_ms();
    call(&mut client, "Resume", "backfill").expect("Resume backfill");
    let resumed = call(&mut client, "Resume", "beat").expect("Resume");
    rr.check(
        resumed == Value::Bool(true),
        format!("Resume replied {resumed}"),
    );
    let beat = entry(&mut client, "beat");
    rr.check(
        beat["paused"] == false
            && beat["next_run"].as_i64().is_some_and(|t| t > resumed_from)
            && beat["counts"]["skipped"].as_u64().is_some_and(|n| n >= 2),
        format!("beat after resume: {beat}"),
    );
    ok(rr.wait_for_n(run_of("beat", resumed_from), 2, EVENTUALLY));
    // backfill: its two latest missed times ran at resume, then its timeline.
    let backfill: Vec<(i64, i64)> = runs(&rr, "backfill")
        .iter()
        .map(|e| (planned_of(e), e.get("started").parse().expect("started=")))
        .collect();
    let caught: Vec<&(i64, i64)> = backfill
        .iter()
        .filter(|(p, s)| *p > paused_at && *p <= resumed_from && *s >= resumed_from)
        .collect();
    rr.check(
        caught.len() == 2 && caught[1].0 - caught[0].0 == 200,
        format!("backfill should catch up its two latest missed times: {backfill:?} (paused {paused_at}, resumed {resumed_from})"),
    );
    let entry_backfill = entry(&mut client, "backfill");
    rr.check(
        entry_backfill["counts"]["caught_up"] == 2 && entry_backfill["catch_up"] == "all (up to 2)",
        format!("backfill after resume: {entry_backfill}"),
    );
    let all: Vec<i64> = runs(&rr, "beat").iter().map(planned_of).collect();
    let first = all[0];
    rr.check(
        all.iter().all(|p| (p - first) % 200 == 0),
        format!("beat's planned times left its 200 ms timeline: {all:?}"),
    );
    rr.stop_cleanly();
}
