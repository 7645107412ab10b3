//! End-to-end: named schedules (`ticker.schedules`) with real PHP workers
//! (`tests/php/schedule.php`): names and payloads in the context, the
//! absolute timeline, overlap policies under a slow worker, run_on_start,
//! and configuration errors naming the key.

use crate::support;

use nix::sys::signal::Signal;
use support::schedules::{planned, run_of, runs, stopped_counts};
use support::{ok, php_command, RrProcess, EVENTUALLY, START};

/// A config running `schedule.php` on a ticker pool of `workers` with the
/// given `schedules:` block (indented by four spaces).
fn yaml(workers: u32, sleep_ms: u32, schedules: &str) -> String {
    format!(
        "version: \"3\"\nserver:\n  command: {}\n  env:\n    SCHEDULE_SLEEP_MS: \"{sleep_ms}\"\nticker:\n  pool:\n    num_workers: {workers}\n    allocate_timeout: 5s\n    destroy_timeout: 5s\n  schedules:\n{schedules}",
        php_command("schedule.php")
    )
}

/// Two `every` schedules run side by side, each with its name, planned
/// and start times in the context, on an absolute timeline (consecutive
/// planned times exactly one period apart); the legacy tick is off.
#[test]
fn two_every_schedules_arrive_with_their_names_in_the_context() {
    require_php!();
    let dir = support::temp_dir();
    let mut rr = RrProcess::start(
        dir.path(),
        &yaml(
            2,
            0,
            "    fast:\n      every: 200ms\n    slow:\n      every: 300ms\n      body: '{\"kind\": \"report\"}'\n      context: { team: ops }\n",
        ),
    );
    ok(rr.wait_for_n(run_of("fast"), 6, START));
    ok(rr.wait_for_n(run_of("slow"), 4, EVENTUALLY));
    rr.stop_cleanly();

    for (name, period) in [("fast", 200), ("slow", 300)] {
        let events = runs(&rr, name);
        let planned = planned(&events);
        for pair in planned.windows(2) {
            let step = pair[1] - pair[0];
            rr.check(
                step > 0 && step % period == 0,
                format!("{name}: planned times {planned:?} are not on a {period} ms grid"),
            );
        }
        let exact = planned.windows(2).filter(|p| p[1] - p[0] == period).count();
        rr.check(
            exact * 2 >= planned.len(),
            format!("{name}: most steps should be one period: {planned:?}"),
        );
        for e in &events {
            let p: i64 = e.get("planned").parse().expect("planned");
            let s: i64 = e.get("started").parse().expect("started");
            rr.check(
                s >= p && s - p < 1000,
                format!("{name}: started={s} planned={p}"),
            );
        }
    }
    let fast = runs(&rr, "fast");
    rr.check(
        fast.iter()
            .all(|e| e.get("body") == r#"{"schedule":"fast"}"# && e.get("extra") == "none"),
        "fast gets the default body and no extra context",
    );
    let slow = runs(&rr, "slow");
    rr.check(
        slow.iter().all(|e| {
            e.get("body") == r#"{"kind":"report"}"# && e.get("extra") == r#"{"team":"ops"}"#
        }),
        "slow gets its body and extra context",
    );
    rr.check(
        runs(&rr, "none").is_empty(),
        "with schedules and no `interval`, the legacy tick does not run",
    );
    rr.check(
        rr.events("READY").iter().all(|e| e.get("mode") == "ticker"),
        "schedule workers run with RR_MODE=ticker",
    );
}

/// A 500 ms run every 100 ms under `skip`, `queue` and `allow` (3 at
/// once), side by side on a pool big enough for all of them.
#[test]
fn overlap_policies_under_a_slow_worker() {
    require_php!();
    let dir = support::temp_dir();
    let mut rr = RrProcess::start(
        dir.path(),
        &yaml(
            6,
            500,
            "    skip:\n      every: 100ms\n    queue:\n      every: 100ms\n      overlap: queue\n    allow:\n      every: 100ms\n      overlap: allow\n      max_concurrent: 3\n",
        ),
    );
    ok(rr.wait_for_n(run_of("skip"), 4, START));
    // Every run of the last `skip` one has ended.
    let last = runs(&rr, "skip").last().cloned().expect("a run");
    ok(rr.wait_for(
        |l| {
            l.event_named("RUN_DONE").is_some_and(|e| {
                e.get("schedule") == "skip" && e.get("planned") == last.get("planned")
            })
        },
        EVENTUALLY,
    ));
    rr.stop_cleanly();

    // skip: one at a time; the runs due meanwhile are dropped, so planned
    // times are at least 500 ms apart.
    let skip = planned(&runs(&rr, "skip"));
    rr.check(
        skip.windows(2)
            .all(|p| p[1] - p[0] >= 500 && (p[1] - p[0]) % 100 == 0),
        format!("skip: planned {skip:?}"),
    );
    let counts = stopped_counts(&rr, "skip");
    rr.check(
        counts["skipped"] >= 4 * (counts["started"] - 1) && counts["queued"] == 0,
        format!("skip: counts {counts:?}"),
    );

    // queue: the run due right after the first is held and starts when
    // the first ends, so runs follow back to back.
    let queue = runs(&rr, "queue");
    let queue_planned = planned(&queue);
    rr.check(
        queue_planned.len() >= 3 && queue_planned[1] - queue_planned[0] == 100,
        format!("queue: the second run is the next slot: {queue_planned:?}"),
    );
    let started: Vec<i64> = queue
        .iter()
        .map(|e| e.get("started").parse().expect("started"))
        .collect();
    rr.check(
        started
            .windows(2)
            .all(|s| s[1] - s[0] >= 500 && s[1] - s[0] < 800),
        format!("queue: runs start back to back: {started:?}"),
    );
    let counts = stopped_counts(&rr, "queue");
    rr.check(
        counts["queued"] >= 2 && counts["skipped"] >= 2,
        format!("queue: counts {counts:?}"),
    );

    // allow 3: three in flight at once, never more.
    let mut in_flight = 0i32;
    let mut most = 0;
    for line in rr.lines() {
        match line.event() {
            Some(e) if e.name == "RUN" && e.get("schedule") == "allow" => in_flight += 1,
            Some(e) if e.name == "RUN_DONE" && e.get("schedule") == "allow" => in_flight -= 1,
            _ => continue,
        }
        most = most.max(in_flight);
    }
    rr.check(
        most == 3,
        format!("allow: at most {most} runs in flight, expected 3"),
    );
    let allow = runs(&rr, "allow").len();
    rr.check(
        allow >= 2 * skip.len(),
        format!("allow ran {allow} times, skip {}", skip.len()),
    );
    rr.check(
        stopped_counts(&rr, "allow")["failed"] == 0,
        "allow: no run failed",
    );
}

/// `run_on_start` fires at once, even for an hourly cron in a time zone
/// whose next occurrence is far away.
#[test]
fn run_on_start_fires_immediately() {
    require_php!();
    let dir = support::temp_dir();
    let mut rr = RrProcess::start(
        dir.path(),
        &yaml(
            1,
            0,
            "    hourly:\n      cron: \"@hourly\"\n      timezone: Europe/Berlin\n      run_on_start: true\n",
        ),
    );
    let line = ok(rr.wait_for(run_of("hourly"), START));
    let run = line.event().expect("RUN");
    let p: i64 = run.get("planned").parse().expect("planned");
    let s: i64 = run.get("started").parse().expect("started");
    rr.check(s >= p && s - p < 1000, format!("started={s} planned={p}"));
    rr.signal(Signal::SIGINT);
    let (status, _) = ok(rr.wait_exit(EVENTUALLY));
    rr.check(status.code() == Some(0), format!("rr exited with {status}"));
    let counts = stopped_counts(&rr, "hourly");
    rr.check(counts["started"] == 1, format!("counts {counts:?}"));
}

/// A bad cron expression stops rr at start with an error naming the key.
#[test]
fn a_bad_cron_expression_is_named() {
    let dir = support::temp_dir();
    let mut rr = RrProcess::start(
        dir.path(),
        &yaml(1, 0, "    report:\n      cron: \"61 * * * *\"\n"),
    );
    rr.expect_quick_failure("a bad schedule is rejected before any worker starts");
    rr.check(
        rr.lines().iter().any(|l| {
            l.text.starts_with("error:") && l.text.contains("ticker.schedules.report.cron")
        }),
        "the error names ticker.schedules.report.cron",
    );
}
