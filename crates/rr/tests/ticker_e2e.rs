//! End-to-end: the ticker plugin with real PHP workers — timing, numbering,
//! worker environment, `max_jobs` recycling and graceful stops.

use crate::support;

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use support::{
    event, ok, tick, tick_failed, unix_now, wait_gone, Line, RrProcess, Yaml, EVENTUALLY, START,
};

/// Acceptance 1: 2 workers, `interval: 100ms`. Over a measured window of 3 s
/// the number of ticks is window/interval ± 15 % (the ticker plans ticks on
/// an absolute timeline, so only skipped slots on an overloaded machine or
/// the receive-time jitter of the log lines can move the count; 15 % of 30
/// is 4.5 ticks). Tick numbers are consecutive from 0; `last=` is 0 for tick
/// 0 and a unix time close to now after it.
#[test]
fn ticks_arrive_at_the_interval_numbered_from_zero_with_last_tick() {
    require_php!();
    let dir = support::temp_dir();
    let mut rr = RrProcess::start(dir.path(), &Yaml::default().render());

    let first = ok(rr.wait_for(tick(0), START));
    let window_start = first.at;
    // Deliberately let time pass: this is the measured window.
    std::thread::sleep(Duration::from_secs(3));
    let window_end = Instant::now();
    rr.drain();

    let window = window_end - window_start;
    let expected = window.as_secs_f64() / 0.1;
    let in_window = rr
        .lines()
        .iter()
        .filter(|l| l.event_named("TICK").is_some() && l.at > window_start && l.at <= window_end)
        .count() as f64;
    rr.check(
        (in_window - expected).abs() <= expected * 0.15,
        format!("{in_window} ticks in {window:?}, expected {expected:.1} ± 15 %"),
    );

    let ticks = rr.events("TICK");
    let mut numbers: Vec<u64> = ticks.iter().map(|e| e.num("n").expect("n=")).collect();
    numbers.sort_unstable();
    let consecutive: Vec<u64> = (0..numbers.len() as u64).collect();
    rr.check(
        numbers == consecutive,
        format!("tick numbers are not 0,1,2,... without gaps or repeats: {numbers:?}"),
    );

    let now = unix_now();
    for e in &ticks {
        let n = e.num("n").expect("n=");
        let last = e.get("last");
        if n == 0 {
            rr.check(
                last == "0" || last == "none",
                format!("tick 0 has last={last}, expected 0"),
            );
        } else {
            let last: u64 = last
                .parse()
                .unwrap_or_else(|_| panic!("tick {n}: last={last} is not a number"));
            rr.check(
                last <= now && last + 10 >= now,
                format!("tick {n}: last={last} is not a unix time close to now ({now})"),
            );
        }
    }

    // Both workers started, and every tick went to one of them. (One tick
    // at a time needs one worker: the caller's own lane's worker is taken
    // first, so a serial ticker does not rotate like RoadRunner's FIFO.)
    let ready: HashSet<u32> = rr.ready_pids().into_iter().collect();
    let serving: HashSet<u32> = ticks.iter().map(|e| e.pid()).collect();
    rr.check(
        ready.len() == 2 && !serving.is_empty() && serving.is_subset(&ready),
        format!(
            "ticks should come from the 2 started workers: READY {ready:?}, ticks from {serving:?}"
        ),
    );
    rr.check(rr.count(tick_failed) == 0, "no tick may fail");
}

/// Acceptance 2: workers see `RR_MODE=ticker` and the `server.env` variables
/// (keys upper-cased).
#[test]
fn workers_run_in_ticker_mode_with_the_server_env() {
    require_php!();
    let dir = support::temp_dir();
    let yaml = Yaml {
        env: &[("app_env", "e2e-testing")],
        ..Yaml::default()
    };
    let mut rr = RrProcess::start(dir.path(), &yaml.render());
    let ready = ok(rr.wait_for_n(event("READY"), 2, START));
    for line in &ready {
        let e = line.event().expect("READY event");
        rr.check(
            e.get("mode") == "ticker",
            format!("worker mode is {:?}, expected ticker", e.get("mode")),
        );
        rr.check(
            e.get("app_env") == "e2e-testing",
            format!(
                "server.env app_env did not reach the worker: app_env={:?}",
                e.get("app_env")
            ),
        );
    }
}

/// Acceptance 5: `max_jobs: 2` recycles workers: new READY pids keep coming,
/// no worker runs more than 2 ticks (the 0–14 % jitter of 2 rounds down to
/// 0), ticks keep flowing and none fails.
#[test]
fn max_jobs_recycles_workers_without_failing_ticks() {
    require_php!();
    let dir = support::temp_dir();
    let yaml = Yaml {
        pool_extra: "    max_jobs: 2\n",
        ..Yaml::default()
    };
    let mut rr = RrProcess::start(dir.path(), &yaml.render());
    // 2 initial workers + at least 4 replacements.
    ok(rr.wait_for_n(event("READY"), 6, EVENTUALLY));
    ok(rr.wait_for(tick(14), EVENTUALLY));

    let ready = rr.ready_pids();
    let distinct: HashSet<u32> = ready.iter().copied().collect();
    rr.check(
        distinct.len() == ready.len(),
        format!("READY pids repeat: {ready:?}"),
    );
    let mut per_worker: BTreeMap<u32, u32> = BTreeMap::new();
    for e in rr.events("TICK") {
        *per_worker.entry(e.pid()).or_default() += 1;
    }
    rr.check(
        per_worker.values().all(|n| *n <= 2),
        format!("a worker ran more than max_jobs=2 ticks: {per_worker:?}"),
    );
    rr.check(rr.count(tick_failed) == 0, "recycling must not fail ticks");
}

/// Acceptance 8: SIGTERM while a 1.5 s tick runs: the tick completes (the
/// worker reaches TICK_DONE after rr got the signal, rr logs it done), no new
/// tick starts, and rr exits 0 within the grace period.
#[test]
fn sigterm_during_a_slow_tick_lets_it_complete_and_exits_zero() {
    require_php!();
    let dir = support::temp_dir();
    let grace = Duration::from_secs(10);
    let yaml = Yaml {
        env: &[("TICK_SLEEP_MS", "1500")],
        num_workers: 1,
        top_extra: "endure:\n  grace_period: 10s\n",
        ..Yaml::default()
    };
    let mut rr = RrProcess::start(dir.path(), &yaml.render());
    ok(rr.wait_for(tick(0), START));
    rr.signal(Signal::SIGTERM);
    let signalled = Instant::now();

    let (status, exited) = ok(rr.wait_exit(grace + Duration::from_secs(5)));
    rr.check(
        status.code() == Some(0),
        format!("rr exited with {status}, expected 0"),
    );
    rr.check(
        exited - signalled < grace,
        format!(
            "rr took {:?} to stop, grace is {grace:?}",
            exited - signalled
        ),
    );

    let lines = rr.lines();
    let position = |pred: &dyn Fn(&Line) -> bool| lines.iter().position(pred);
    let stop = position(&|l| {
        l.logger() == Some("rr")
            && l.message()
                .is_some_and(|m| m.starts_with("stop signal received"))
    });
    let done = position(&|l| {
        l.event_named("TICK_DONE")
            .is_some_and(|e| e.num("n") == Some(0))
    });
    let rr_done = position(&|l| l.is("ticker", "tick done") && l.field_u64("tick") == Some(0));
    rr.check(stop.is_some(), "rr did not log the stop signal");
    rr.check(
        done.is_some(),
        "the worker did not finish tick 0 (no TICK_DONE n=0)",
    );
    rr.check(
        stop < done,
        "TICK_DONE n=0 came before the stop signal: the signal did not arrive mid-tick",
    );
    rr.check(rr_done.is_some(), "rr did not log tick 0 as done");
    rr.check(rr.count(tick(1)) == 0, "a new tick started after SIGTERM");
    rr.check(rr.count(tick_failed) == 0, "the in-flight tick failed");
    rr.check(
        rr.count(|l| l.is("rr", "rr server stopped")) == 1,
        "rr did not log a clean stop",
    );
}

/// Acceptance 12: SIGINT stops rr cleanly (exit 0) and no worker process
/// survives it.
#[test]
fn sigint_exits_zero_and_leaves_no_workers_behind() {
    require_php!();
    let dir = support::temp_dir();
    let mut rr = RrProcess::start(dir.path(), &Yaml::default().render());
    ok(rr.wait_for_n(event("READY"), 2, START));
    ok(rr.wait_for(tick(1), EVENTUALLY));
    let pids = rr.ready_pids();

    rr.stop_cleanly();
    rr.check(
        rr.count(|l| l.is("rr", "rr server stopped")) == 1,
        "rr did not log a clean stop",
    );
    rr.check(
        rr.events("STOPPED").len() == pids.len(),
        "every worker should get the stop request and log STOPPED",
    );
    if let Err(e) = wait_gone(&pids, Duration::from_secs(5)) {
        panic!("{e}\n{}", rr.recent());
    }
}
