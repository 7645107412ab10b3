//! End-to-end: the `jobs` plugin with the durable `boltdb` driver and real
//! PHP workers (`tests/php/jobs_worker.php`): pushes from Rust and PHP,
//! every reply kind, priority, pause/resume, declare/destroy, `jobs.Stat`
//! from the file, and jobs surviving a SIGKILL of rr (at-least-once).

use crate::support;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use support::jobs::{
    delivered_again_after_a_second, invalid_reply_auto_ack_and_delayed_push, job_event,
    job_in_pipeline, job_payload, job_with_id, jobs_log, php_client, rust_push, stat_of, yaml,
};
use support::{free_tcp_port, ok, RrProcess, EVENTUALLY, START};

/// rr in `dir` with `pipelines`, its state directory `dir/state`.
fn start_in(dir: &Path, port: u16, workers: u32, consume: &str, pipelines: &str) -> RrProcess {
    let state = dir.join("state");
    std::fs::create_dir_all(&state).expect("state dir");
    let mut rr = RrProcess::start(dir, &yaml(port, &state, workers, consume, pipelines));
    ok(rr.wait_for(|l| l.is("jobs", "jobs started"), START));
    rr
}

/// Pushes from Rust and PHP, then ack, nack, redelivery and requeue with a
/// delay, invalid JSON; priority order on resume; a delayed push;
/// declare/destroy of a boltdb pipeline; `jobs.Stat` counts. One worker,
/// so the order jobs reach it is the order the pipeline hands them out.
#[test]
fn boltdb_pipelines_deliver_settle_and_count_from_the_file() {
    require_php!();
    let dir = support::temp_dir();
    let port = free_tcp_port();
    let mut rr = start_in(
        dir.path(),
        port,
        1,
        "main",
        "    main:\n      driver: boltdb\n      config:\n        prefetch: 100\n    lane:\n      driver: boltdb\n      config:\n        file: lane.db\n        priority: 10\n        permissions: \"0600\"\n",
    );
    // The default file, relative to rr's working directory.
    assert!(dir.path().join("rr.db").exists(), "main uses rr.db");

    rust_push(
        port,
        "main",
        "r1",
        "ack",
        "hello world",
        &[("x-trace", "t1")],
    )
    .expect("push");
    let job = job_event(&mut rr, "r1");
    assert_eq!(job.get("driver"), "boltdb");
    assert_eq!(job.get("pipeline"), "main");
    assert_eq!(job.get("payload"), "hello_world");
    assert_eq!(job.get("headers"), r#"{"x-trace":["t1"]}"#);
    ok(rr.wait_for(jobs_log("job was processed successfully", "r1"), EVENTUALLY));

    let id = php_client(port, &["push", "main", "ack", "from-php"]).expect("php push");
    let id = id.as_str().expect("id").to_owned();
    ok(rr.wait_for(jobs_log("job was processed successfully", &id), EVENTUALLY));

    rust_push(port, "main", "n1", "nack", "x", &[]).expect("push");
    ok(rr.wait_for(jobs_log("job was nacked", "n1"), EVENTUALLY));

    rust_push(port, "main", "d1", "redeliver", "1", &[]).expect("push");
    delivered_again_after_a_second(&mut rr, "d1");
    ok(rr.wait_for(jobs_log("job was processed successfully", "d1"), EVENTUALLY));

    rust_push(port, "main", "q1", "requeue", "1", &[("keep", "me")]).expect("push");
    let lines = delivered_again_after_a_second(&mut rr, "q1");
    let again = lines[1].event().expect("e");
    assert_eq!(again.get("attempt"), "2");
    assert_eq!(again.get("headers"), r#"{"attempt":["2"],"keep":["me"]}"#);
    ok(rr.wait_for(jobs_log("job was processed successfully", "q1"), EVENTUALLY));

    invalid_reply_auto_ack_and_delayed_push(&mut rr, port, "main", "b");

    // A worker dies on a job: the core requeues it through the driver
    // (out of `processing`, back into the file) and the next worker acks it.
    rust_push(port, "main", "c1", "crash_once", "x", &[]).expect("push");
    ok(rr.wait_for(
        jobs_log("the job never got an answer from a worker; requeued", "c1"),
        EVENTUALLY,
    ));
    ok(rr.wait_for(jobs_log("job was processed successfully", "c1"), EVENTUALLY));
    rr.check(rr.count(job_with_id("c1")) == 2, "c1 delivered twice");

    // Every job of main is settled: nothing left in the file.
    let main = stat_of(port, "main");
    assert_eq!(
        (
            &main["active"],
            &main["delayed"],
            &main["driver"],
            &main["ready"]
        ),
        (
            &serde_json::json!(0),
            &serde_json::json!(0),
            &serde_json::json!("boltdb"),
            &serde_json::json!(true)
        ),
        "{main}"
    );

    // lane is not consumed: a batch and a delayed job wait in its file.
    php_client(
        port,
        &[
            "batch",
            "lane",
            "ack:p5:5",
            "ack:pdef:0",
            "ack:p1:1",
            "ack:p3:3",
        ],
    )
    .expect("batch");
    php_client(port, &["push", "lane", "ack", "later", "0", "1"]).expect("delayed push");
    let lane = stat_of(port, "lane");
    assert_eq!(
        (&lane["active"], &lane["delayed"], &lane["ready"]),
        (
            &serde_json::json!(4),
            &serde_json::json!(1),
            &serde_json::json!(false)
        ),
        "{lane}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("lane.db"))
            .expect("lane.db")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "permissions: \"0600\"");
    }
    let resumed = Instant::now();
    php_client(port, &["resume", "lane"]).expect("resume");
    let lines = ok(rr.wait_for_lines_from(0, job_in_pipeline("lane"), 5, EVENTUALLY));
    let order: Vec<String> = lines
        .iter()
        .map(|l| l.event().expect("e").get("payload").to_owned())
        .collect();
    assert_eq!(
        order[..4],
        ["p1", "p3", "p5", "pdef"],
        "lowest priority first"
    );
    assert_eq!(order[4], "later");
    rr.check(
        lines[4].at - resumed >= Duration::from_millis(500),
        "the delayed job waited for its second",
    );

    // Pause keeps new pushes in the file.
    php_client(port, &["pause", "lane"]).expect("pause");
    php_client(port, &["push", "lane", "ack", "held"]).expect("push");
    assert_eq!(stat_of(port, "lane")["active"], 1);
    let before = rr.mark();
    php_client(port, &["resume", "lane"]).expect("resume");
    let held = ok(rr.wait_for_line_after(before, job_payload("held"), EVENTUALLY));
    rr.check(held.event().is_some(), "held ran after resume");

    // Declare a boltdb pipeline on its own file, use it, destroy it.
    php_client(
        port,
        &["declare", "dyn", "boltdb", "file=dyn.db", "priority=2"],
    )
    .expect("declare");
    php_client(port, &["resume", "dyn"]).expect("resume");
    php_client(port, &["push", "dyn", "ack", "on-dyn"]).expect("push");
    let job = ok(rr.wait_for(job_payload("on-dyn"), EVENTUALLY));
    assert_eq!(job.event().expect("e").get("driver"), "boltdb");
    assert!(dir.path().join("dyn.db").exists());
    assert_eq!(
        php_client(port, &["destroy", "dyn"]),
        Ok(serde_json::json!(["dyn"]))
    );
    assert_eq!(
        php_client(port, &["push", "dyn", "ack", "gone"]),
        Err("no such pipeline, requested: dyn".to_owned())
    );
    // The destroyed pipeline closed its file: declaring it again works.
    php_client(port, &["declare", "dyn", "boltdb", "file=dyn.db"]).expect("declare again");
    rr.stop_cleanly();
}

/// Pushed jobs survive a SIGKILL of rr in the middle of consumption; the
/// restarted rr delivers every job not acknowledged, those that were with
/// a worker included. Nothing is lost; duplicates are reported.
#[test]
fn jobs_survive_a_sigkill_and_are_processed_after_restart() {
    require_php!();
    const N: usize = 24;
    let dir = support::temp_dir();
    let pipelines = "    slow:\n      driver: boltdb\n      config:\n        file: slow.db\n        prefetch: 4\n";
    let port = free_tcp_port();
    let mut rr = start_in(dir.path(), port, 2, "slow", pipelines);
    let ids: Vec<String> = (0..N).map(|i| format!("k{i:02}")).collect();
    for id in &ids {
        rust_push(port, "slow", id, "slow", "150", &[]).expect("push");
    }
    // Some jobs done, some with workers: kill rr without a chance to settle.
    ok(rr.wait_for_n(
        |l| l.is("jobs", "job was processed successfully"),
        3,
        EVENTUALLY,
    ));
    rr.signal(Signal::SIGKILL);
    ok(rr.wait_exit(EVENTUALLY));
    let done_before: BTreeSet<String> = rr
        .lines()
        .iter()
        .filter(|l| l.is("jobs", "job was processed successfully"))
        .filter_map(|l| l.field_str("id"))
        .collect();
    let started_before: BTreeSet<String> = rr
        .events("JOB")
        .iter()
        .map(|e| e.get("id").to_owned())
        .collect();
    assert!(done_before.len() < N, "rr was killed mid-consumption");
    // Dropping kills the old workers still sleeping on their job.
    drop(rr);

    let port = free_tcp_port();
    let mut rr = start_in(dir.path(), port, 2, "slow", pipelines);
    let missing: Vec<&String> = ids.iter().filter(|id| !done_before.contains(*id)).collect();
    let deadline = Instant::now() + EVENTUALLY;
    for id in &missing {
        let left = deadline.saturating_duration_since(Instant::now());
        ok(rr.wait_for(jobs_log("job was processed successfully", id), left));
    }
    let done_after: BTreeSet<String> = rr
        .lines()
        .iter()
        .filter(|l| l.is("jobs", "job was processed successfully"))
        .filter_map(|l| l.field_str("id"))
        .collect();
    let all: BTreeSet<String> = done_before.union(&done_after).cloned().collect();
    assert_eq!(all.len(), N, "every job processed, none lost");
    let duplicates: Vec<&String> = done_before.intersection(&done_after).collect();
    let redelivered: Vec<&String> = started_before
        .iter()
        .filter(|id| !done_before.contains(*id))
        .collect();
    eprintln!(
        "boltdb restart: {} done before the kill, {} in flight at the kill (delivered again), {} processed twice: {duplicates:?}",
        done_before.len(),
        redelivered.len(),
        duplicates.len()
    );
    assert!(
        rr.count(|l| l.is(
            "jobs",
            "boltdb: jobs unsettled by the previous run are ready again"
        )) == 1
            || redelivered.is_empty(),
        "the in-flight jobs were recovered from `processing`"
    );
    let stat = stat_of(port, "slow");
    assert_eq!(
        (&stat["active"], &stat["delayed"]),
        (&serde_json::json!(0), &serde_json::json!(0)),
        "{stat}"
    );
    rr.stop_cleanly();
}
