//! End-to-end: workers that break the goridge protocol (`tests/php/faults.php`)
//! on a real `rr`: a reply with a bad CRC, a header announcing 4 GiB, a pipe
//! closed mid-frame, a worker that ignores the stop command, and a command
//! that is not executable. Each time the bad worker is named in the log, it
//! is killed and replaced, and the other schedule on the same pool keeps
//! succeeding.

use crate::support;

use std::time::{Duration, Instant};

use support::schedules::stopped_counts;
use support::{ok, php_command, Line, RrProcess, EVENTUALLY, START};

/// `faults.php` on a ticker pool of 2: schedule `bad` sends `fault` once a
/// second, `good` sends "ok" every 100 ms.
fn yaml(fault: &str, extra_env: &str) -> String {
    format!(
        "version: \"3\"\nserver:\n  command: {}\n  env:\n    X: \"1\"\n{extra_env}ticker:\n  pool:\n    num_workers: 2\n    allocate_timeout: 5s\n    destroy_timeout: 1s\n  schedules:\n    bad:\n      every: 1s\n      run_on_start: true\n      body: {fault}\n    good:\n      every: 100ms\n      body: ok\n",
        php_command("faults.php")
    )
}

/// Predicate: rr killed a worker for breaking the protocol.
fn killed(line: &Line) -> bool {
    line.is(
        "server",
        "worker failed and is killed; a new one will be started",
    )
}

/// Predicate: a run of `good` started.
fn good_run(line: &Line) -> bool {
    line.is("ticker", "schedule run started")
        && line.field_str("schedule").as_deref() == Some("good")
}

/// Runs `fault` and checks: the faulty worker's pid is in the kill line,
/// the error names what was wrong, a new worker takes its place, and
/// `good` keeps succeeding.
fn the_faulty_worker_is_named_killed_and_replaced(fault: &str, error_names: &[&str]) {
    let dir = support::temp_dir();
    let mut rr = RrProcess::start(dir.path(), &yaml(fault, ""));
    let faulty = ok(rr.wait_for(|l| l.event_named("FAULT").is_some(), START))
        .event()
        .map(|e| e.pid())
        .expect("FAULT pid");
    let line = ok(rr.wait_for(killed, EVENTUALLY));
    let error = line.field_str("error").unwrap_or_default();
    rr.check(
        line.field_u64("pid") == Some(u64::from(faulty)),
        format!("{fault}: the kill line names pid {faulty}: {line:?}"),
    );
    rr.check(
        error_names.iter().all(|n| error.contains(n)),
        format!("{fault}: the error names what was wrong ({error_names:?}): {error:?}"),
    );
    rr.wait_for_new_worker(&[faulty]);
    // `good` runs on after the kill, on the pool's workers.
    let mark = rr.mark();
    ok(rr.wait_for_lines_from(mark, good_run, 3, EVENTUALLY));
    rr.stop_cleanly();
    let good = stopped_counts(&rr, "good");
    rr.check(
        good["failed"] == 0 && good["succeeded"] >= 3,
        format!("{fault}: good keeps succeeding: {good:?}"),
    );
    let bad = stopped_counts(&rr, "bad");
    rr.check(
        bad["failed"] >= 1,
        format!("{fault}: the bad run failed: {bad:?}"),
    );
}

#[test]
fn a_reply_with_a_bad_crc() {
    require_php!();
    // A header that fails its CRC is, as in RoadRunner, stray output on
    // the worker's STDOUT: the stdout-crc error, with the bytes.
    the_faulty_worker_is_named_killed_and_replaced("crc", &["stdout-crc"]);
}

#[test]
fn a_reply_header_announcing_4_gib() {
    require_php!();
    the_faulty_worker_is_named_killed_and_replaced("huge", &["4294967295"]);
}

#[test]
fn a_pipe_closed_mid_frame() {
    require_php!();
    the_faulty_worker_is_named_killed_and_replaced("half", &["in the middle of a frame"]);
}

/// A worker that ignores the stop command is killed once
/// `destroy_timeout` (1 s) has passed, and rr exits.
#[test]
fn a_worker_ignoring_stop_is_killed_after_destroy_timeout() {
    require_php!();
    let dir = support::temp_dir();
    let mut rr = RrProcess::start(dir.path(), &yaml("ok", "    FAULT_IGNORE_STOP: \"1\"\n"));
    ok(rr.wait_for_n(good_run, 3, START));
    let asked = Instant::now();
    rr.signal(nix::sys::signal::Signal::SIGINT);
    let (status, _) = ok(rr.wait_exit(Duration::from_secs(15)));
    let took = asked.elapsed();
    rr.check(status.success(), format!("rr exits cleanly: {status:?}"));
    rr.check(
        rr.lines().iter().any(|l| {
            l.is(
                "server",
                "worker doesn't respond on stop command, killing process",
            )
        }),
        "the worker that ignored the stop command is named and killed",
    );
    // destroy_timeout (1 s) and some slack; a worker that is left alone
    // would hold rr for at least 5 s more.
    rr.check(
        took < Duration::from_secs(4),
        format!("bounded by destroy_timeout: took {took:?}"),
    );
    let ignoring: Vec<u32> = rr.events("IGNORING_STOP").iter().map(|e| e.pid()).collect();
    rr.check(!ignoring.is_empty(), "the workers ignored the stop command");
    for pid in ignoring {
        rr.check(
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), None).is_err(),
            format!("worker {pid} is gone"),
        );
    }
}

/// A command that exists but is not executable fails the start with the
/// command and the reason.
#[test]
fn a_command_that_is_not_executable_is_named() {
    let dir = support::temp_dir();
    let script = dir.path().join("worker.sh");
    std::fs::write(&script, "#!/bin/sh\nexit 0\n").expect("write");
    let yaml = format!(
        "version: \"3\"\nserver:\n  command: {}\nticker:\n  interval: 1s\n  pool:\n    num_workers: 1\n",
        script.display()
    );
    let mut rr = RrProcess::start(dir.path(), &yaml);
    let (status, _) = ok(rr.wait_exit(START));
    let error = rr.recent();
    rr.check(
        !status.success()
            && error.contains("worker.sh")
            && error.to_lowercase().contains("permission denied"),
        "the start fails naming the command and `permission denied`",
    );
}
