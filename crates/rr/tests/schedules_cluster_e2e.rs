//! End-to-end: one fire per cluster. Two `rr` instances with the same
//! schedule and a real `redis-server` (started here on a free port) run
//! each planned time exactly once in total; when one is killed the other
//! takes over within one interval.

use crate::support;

use std::collections::BTreeMap;

use nix::sys::signal::Signal;
use support::schedules::{planned_of, runs};
use support::service::Service;
use support::{now_ms, ok, php_command, Line, RrProcess, EVENTUALLY, START};

const PERIOD_MS: i64 = 200;

fn yaml(redis: &Service) -> String {
    format!(
        "version: \"3\"\nserver:\n  command: {}\nticker:\n  cluster:\n    redis:\n      addrs: [\"{}\"]\n    prefix: rr-test\n  pool:\n    num_workers: 1\n    allocate_timeout: 5s\n    destroy_timeout: 5s\n  schedules:\n    beat:\n      every: {PERIOD_MS}ms\n",
        php_command("schedule.php"),
        redis.addr()
    )
}

/// Predicate: this instance dealt with a planned time of `beat` (ran it,
/// or saw another instance's claim).
fn dealt_with(line: &Line) -> bool {
    line.event_named("RUN")
        .is_some_and(|e| e.get("schedule") == "beat")
        || line.is("ticker", "schedule run claimed by another instance")
}

#[test]
fn two_instances_run_each_planned_time_once_and_one_takes_over() {
    require_php!();
    require_service!("redis-server");
    let dir = support::temp_dir();
    let redis = support::service::redis(dir.path());
    let (dir_a, dir_b) = (support::temp_dir(), support::temp_dir());
    let mut a = RrProcess::start(dir_a.path(), &yaml(&redis));
    let mut b = RrProcess::start(dir_b.path(), &yaml(&redis));
    ok(b.wait_for(|l| l.is("ticker", "schedule started"), START));
    // Both are in: 18 planned times pass with both deciding each one.
    ok(b.wait_for_n(dealt_with, 18, EVENTUALLY));
    a.signal(Signal::SIGKILL);
    let killed = now_ms();
    ok(a.wait_exit(EVENTUALLY));
    ok(b.wait_for_n(
        |l| {
            l.event_named("RUN")
                .is_some_and(|e| planned_of(&e) > killed)
        },
        15,
        EVENTUALLY,
    ));
    b.stop_cleanly();

    // planned ms -> (instance, fence)
    let mut seen: BTreeMap<i64, Vec<(&str, u64)>> = BTreeMap::new();
    for (instance, rr) in [("a", &a), ("b", &b)] {
        for run in runs(rr, "beat") {
            let fence = run.get("fence").parse().expect("fence=");
            seen.entry(planned_of(&run))
                .or_default()
                .push((instance, fence));
        }
    }
    let twice: Vec<_> = seen.iter().filter(|(_, r)| r.len() > 1).collect();
    b.check(
        twice.is_empty(),
        format!("planned times run twice: {twice:?}"),
    );
    b.check(
        seen.len() >= 30,
        format!("at least 30 planned executions: {}", seen.len()),
    );
    let (first, last) = (
        *seen.keys().next().expect("runs"),
        *seen.keys().last().expect("runs"),
    );
    let slots = (last - first) / PERIOD_MS + 1;
    let missing: Vec<i64> = (0..slots)
        .map(|k| first + k * PERIOD_MS)
        .filter(|p| !seen.contains_key(p))
        .collect();
    // A run that the killed instance had claimed (and maybe run) leaves
    // no line: its rr died with its log. At most that one is missing.
    b.check(
        missing.len() <= 1 && missing.iter().all(|p| (p - killed).abs() <= 2 * PERIOD_MS),
        format!(
            "every slot from {first} to {last} ran once; missing {missing:?} (killed at {killed})"
        ),
    );
    let ran_by_a = seen.values().filter(|r| r[0].0 == "a").count();
    let ran_by_b = seen.values().filter(|r| r[0].0 == "b").count();
    b.check(
        ran_by_a > 0 && ran_by_b > 0,
        format!("both ran some: a {ran_by_a}, b {ran_by_b}"),
    );
    let takeover = seen
        .iter()
        .find(|(p, r)| **p > killed && r[0].0 == "b")
        .map(|(p, _)| *p);
    b.check(
        takeover.is_some_and(|p| p - killed <= PERIOD_MS + 50),
        format!("b takes over within one interval of the kill at {killed}: {takeover:?}"),
    );
    let fences: Vec<u64> = seen.values().map(|r| r[0].1).collect();
    b.check(
        fences.windows(2).all(|w| w[1] > w[0]),
        format!("fencing tokens grow with the planned time: {fences:?}"),
    );
}
