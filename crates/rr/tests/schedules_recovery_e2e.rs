//! End-to-end: what schedules do when things go wrong, with real PHP
//! workers (`tests/php/schedule.php`): catch-up after a restart of `rr`
//! (the saved watermark) and after a saturated pool (`worker_wait`), the
//! `replace` and `timeout` policies, jitter bounds, and cron across both
//! daylight-saving changes on a rehearsed clock.

use crate::support;

use std::time::Duration;

use rr_rpc::RpcClient;
use support::schedules::{planned, planned_of, run_of, runs, stopped_counts};
use support::{free_tcp_port, now_ms, ok, php_command, rpc_section, RrProcess, EVENTUALLY, START};

/// A config running `schedule.php` on a ticker pool of `workers`, with
/// `extra` ticker keys (indented by two spaces) and `schedules` (by four).
fn yaml(workers: u32, extra: &str, schedules: &str) -> String {
    format!(
        "version: \"3\"\nserver:\n  command: {}\nticker:\n{extra}  pool:\n    num_workers: {workers}\n    allocate_timeout: 5s\n    destroy_timeout: 5s\n  schedules:\n{schedules}",
        php_command("schedule.php")
    )
}

/// With `state_file`, a restarted `rr` runs the latest planned times it
/// missed while down (`catch_up: all`, up to the limit), never one that
/// already ran, and goes on on the same absolute timeline.
#[test]
fn a_restart_catches_up_the_runs_missed_while_down() {
    require_php!();
    let dir = support::temp_dir();
    let config = yaml(
        1,
        "  state_file: state.json\n",
        "    beat:\n      every: 200ms\n      catch_up: all\n      catch_up_limit: 3\n",
    );
    let mut first = RrProcess::start(dir.path(), &config);
    ok(first.wait_for_n(run_of("beat"), 2, START));
    first.stop_cleanly();
    let before = planned(&runs(&first, "beat"));
    let last = *before.last().expect("runs before the restart");
    first.check(
        dir.path().join("state.json").exists(),
        "state.json written at stop",
    );

    // The scenario itself: rr stays down for about six planned times.
    std::thread::sleep(Duration::from_millis(1200));
    let restarted_at = now_ms();
    let mut second = RrProcess::start(dir.path(), &config);
    ok(second.wait_for_n(run_of("beat"), 5, START));
    second.stop_cleanly();
    let after = planned(&runs(&second, "beat"));
    let caught: Vec<i64> = after
        .iter()
        .copied()
        .filter(|p| *p < restarted_at)
        .collect();
    second.check(
        caught.len() == 3 && caught.windows(2).all(|w| w[1] - w[0] == 200),
        format!("the latest 3 missed times run first: {after:?} (restart at {restarted_at})"),
    );
    second.check(
        after.iter().all(|p| *p > last && (p - last) % 200 == 0),
        format!("after {last}, on the same 200 ms grid, none twice: {after:?}"),
    );
    let counts = stopped_counts(&second, "beat");
    second.check(
        counts["caught_up"] == 3 && counts["skipped"] >= 2 && counts["failed"] == 0,
        format!("counts {counts:?}"),
    );
}

/// One worker, held for 1.1 s by another schedule: `beat` finds no free
/// worker within its 100 ms `worker_wait`, which counts as `no_worker`
/// (not failed), and with `catch_up: last` its latest missed time runs as
/// soon as the worker is free.
#[test]
fn a_saturated_pool_is_waited_out_and_caught_up() {
    require_php!();
    let dir = support::temp_dir();
    let mut rr = RrProcess::start(
        dir.path(),
        &yaml(
            1,
            "",
            "    hog:\n      every: 1h\n      run_on_start: true\n      context: { sleep_ms: 1100 }\n    beat:\n      every: 200ms\n      worker_wait: 100ms\n      catch_up: last\n",
        ),
    );
    ok(rr.wait_for(
        |l| {
            l.event_named("RUN_DONE")
                .is_some_and(|e| e.get("schedule") == "hog")
        },
        START,
    ));
    let hog_done = now_ms();
    ok(rr.wait_for_n(run_of("beat"), 3, EVENTUALLY));
    rr.stop_cleanly();
    // A planned time that fell due while the worker was held runs once it
    // is free: the latest one (`catch_up: last`), late.
    let beat = runs(&rr, "beat");
    let first = planned_of(&beat[0]);
    rr.check(
        first < hog_done && hog_done - first <= 250,
        format!("the first beat run is the latest time missed while saturated: planned {first}, worker free at {hog_done}"),
    );
    rr.check(
        rr.lines()
            .iter()
            .any(|l| l.is("ticker", "schedule run found no free worker")),
        "the wait for a worker is logged",
    );
    let counts = stopped_counts(&rr, "beat");
    rr.check(
        counts["no_worker"] >= 1
            && counts["skipped"] >= 2
            && counts["caught_up"] >= 1
            && counts["failed"] == 0,
        format!("counts {counts:?}"),
    );
}

/// `replace` cancels the running run (its worker is killed and replaced),
/// `timeout` fails a run that takes too long, and jitter delays each run
/// by less than its bound without moving the plan.
#[test]
fn replace_timeout_and_jitter_with_real_workers() {
    require_php!();
    let dir = support::temp_dir();
    let mut rr = RrProcess::start(
        dir.path(),
        &yaml(
            6,
            "",
            "    repl:\n      every: 300ms\n      overlap: replace\n      context: { sleep_ms: 2000 }\n    slow:\n      every: 300ms\n      timeout: 100ms\n      context: { sleep_ms: 2000 }\n    jit:\n      every: 200ms\n      jitter: 150ms\n",
        ),
    );
    ok(rr.wait_for_n(run_of("repl"), 4, START));
    ok(rr.wait_for_n(run_of("slow"), 3, EVENTUALLY));
    ok(rr.wait_for_n(run_of("jit"), 6, EVENTUALLY));
    rr.stop_cleanly();

    let repl = stopped_counts(&rr, "repl");
    rr.check(
        repl["replaced"] >= 3 && repl["failed"] == 0,
        format!("replace: {repl:?}"),
    );
    let slow = stopped_counts(&rr, "slow");
    rr.check(
        slow["timed_out"] >= 2 && slow["failed"] == slow["timed_out"] && slow["succeeded"] == 0,
        format!("timeout: {slow:?}"),
    );
    let jit = runs(&rr, "jit");
    let delays: Vec<i64> = jit
        .iter()
        .map(|e| e.get("started").parse::<i64>().expect("started") - planned_of(e))
        .collect();
    rr.check(
        delays.iter().all(|d| (0..150 + 50).contains(d)) && delays.iter().any(|d| *d >= 5),
        format!("jitter delays within [0, 150 ms) (+50 ms of slack): {delays:?}"),
    );
    let plan = planned(&jit);
    rr.check(
        plan.windows(2).all(|w| w[1] - w[0] == 200),
        format!("the plan stays on its 200 ms grid: {plan:?}"),
    );
}

/// Cron `30 2 * * *` in Europe/Berlin on a clock rehearsed just before
/// each change of 2026: spring-forward skips 02:30, so it runs once at the
/// first instant after the gap (01:00 UTC); fall-back repeats 02:30, so it
/// runs once, at the first occurrence (00:30 UTC), and the next run is the
/// following day's.
#[test]
fn cron_across_both_dst_changes_on_a_rehearsed_clock() {
    require_php!();
    for (from, expected, next) in [
        (
            "2026-03-29T00:59:59Z",
            1_774_746_000_000_i64,
            1_774_830_600_000_i64,
        ),
        ("2026-10-25T00:29:59Z", 1_792_888_200_000, 1_792_978_200_000),
    ] {
        let dir = support::temp_dir();
        let port = free_tcp_port();
        let config = format!(
            "{}{}",
            yaml(
                1,
                &format!("  rehearse_from: \"{from}\"\n"),
                "    nightly:\n      cron: \"30 2 * * *\"\n      timezone: Europe/Berlin\n",
            ),
            rpc_section(port)
        );
        let mut rr = RrProcess::start(dir.path(), &config);
        ok(rr.wait_for(run_of("nightly"), START));
        let run = &runs(&rr, "nightly")[0];
        rr.check(
            planned_of(run) == expected,
            format!("{from}: planned {} (expected {expected})", planned_of(run)),
        );
        let mut client = RpcClient::connect(&format!("tcp://127.0.0.1:{port}"), START)
            .unwrap_or_else(|e| panic!("connect to rr's RPC: {e}"));
        let list = client
            .call_json("schedules.List", &true)
            .unwrap_or_else(|e| panic!("schedules.List: {e}"));
        let next_run = list[0]["next_run"].as_i64();
        rr.check(
            next_run == Some(next),
            format!("{from}: next run {next_run:?} (expected {next})"),
        );
        rr.stop_cleanly();
    }
}
