//! End-to-end: the `jobs` plugin with the `memory` driver and real PHP
//! workers (`tests/php/jobs_worker.php` on the SDK's `Rr\Jobs\Consumer`),
//! jobs pushed from PHP (`tests/php/jobs_client.php` on `Rr\Jobs\Jobs`),
//! from a worker, and from Rust over protobuf RPC; replies ack, nack,
//! requeue with delay and headers, invalid JSON, crashes; priority order,
//! pause/resume (also through `rr jobs`), declare/destroy.

use crate::support;

use std::time::{Duration, Instant};

use support::jobs::{
    delivered_again_after_a_second, invalid_reply_auto_ack_and_delayed_push, invalid_reply_nacked,
    job_event, job_in_pipeline, job_named, job_payload, job_with_id, jobs, jobs_log,
    payloads_in_order, php_client, rust_push, yaml,
};
use support::{free_tcp_port, http_get, ok, run_rr, RrProcess, EVENTUALLY, START};

const COMMAND: Duration = Duration::from_secs(30);

fn start(workers: u32, consume: &str, pipelines: &str) -> (RrProcess, u16, tempfile::TempDir) {
    let dir = support::temp_dir();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).expect("state dir");
    let port = free_tcp_port();
    let mut rr = RrProcess::start(dir.path(), &yaml(port, &state, workers, consume, pipelines));
    ok(rr.wait_for(|l| l.is("jobs", "jobs started"), START));
    (rr, port, dir)
}

/// `rr workers` ends with RoadRunner's jobs table, and the status
/// plugin's `/jobs` lists every pipeline with its state and counts.
#[test]
fn rr_workers_and_status_jobs_show_the_pipelines() {
    require_php!();
    let dir = support::temp_dir();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).expect("state dir");
    let port = free_tcp_port();
    let status = free_tcp_port();
    let pipelines = "    main:\n      driver: memory\n    lane:\n      driver: memory\n      config:\n        priority: 10\n";
    let yaml = format!(
        "{}status:\n  address: 127.0.0.1:{status}\n",
        yaml(port, &state, 1, "main", pipelines)
    );
    let mut rr = RrProcess::start(dir.path(), &yaml);
    ok(rr.wait_for(|l| l.is("jobs", "jobs started"), START));
    // `lane` is not consumed, so its two jobs stay there.
    php_client(port, &["batch", "lane", "ack:a:0", "ack:b:0"]).expect("batch");

    let (code, body) = http_get(status, "/jobs").expect("GET /jobs");
    assert_eq!(code, 200, "{body}");
    let states: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let find = |name: &str| {
        states
            .as_array()
            .and_then(|a| a.iter().find(|s| s["pipeline"] == name))
            .cloned()
            .unwrap_or_else(|| panic!("{name} in {body}"))
    };
    let lane = find("lane");
    assert_eq!(
        (&lane["active"], &lane["ready"], &lane["priority"]),
        (&2.into(), &false.into(), &10.into()),
        "{lane}"
    );
    assert_eq!(
        (&lane["driver"], &lane["error_message"]),
        (&"memory".into(), &"".into())
    );
    assert_eq!(find("main")["ready"], true, "{body}");

    let workers = run_rr(dir.path(), &["workers", "-c", ".rr.yaml"], COMMAND);
    let text = String::from_utf8_lossy(&workers.stdout);
    assert!(
        workers.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&workers.stderr)
    );
    let jobs_part = text
        .split_once("Jobs of [jobs]:")
        .map(|(workers_part, jobs_part)| {
            assert!(workers_part.contains("Workers of [jobs]:"), "{text}");
            jobs_part
        })
        .unwrap_or_else(|| panic!("no jobs table in {text}"));
    let lane_row = jobs_part
        .lines()
        .find(|l| l.contains("| lane "))
        .unwrap_or_else(|| panic!("no lane row in {text}"));
    let cells: Vec<&str> = lane_row.split('|').map(str::trim).collect();
    assert_eq!(cells[..3], ["paused", "lane", "memory"], "{lane_row}");
    assert_eq!(cells[5], "2", "Active: {lane_row}");
    rr.stop_cleanly();
}

/// A pipeline whose broker is down does not break `rr workers` or
/// `/jobs`: the worker tables still print and the jobs table says what
/// failed, and `/jobs` lists the pipeline with its error.
#[test]
fn a_pipeline_whose_broker_is_down_is_reported_not_fatal() {
    require_php!();
    let dir = support::temp_dir();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).expect("state dir");
    let port = free_tcp_port();
    let status = free_tcp_port();
    // Nothing listens on `nobody`: beanstalkd is never started there.
    let nobody = free_tcp_port();
    let pipelines = "    down:\n      driver: beanstalk\n      config:\n        tube: down\n";
    let yaml = format!(
        "{}beanstalk:\n  addr: tcp://127.0.0.1:{nobody}\nstatus:\n  address: 127.0.0.1:{status}\n",
        yaml(port, &state, 1, "", pipelines)
    );
    let mut rr = RrProcess::start(dir.path(), &yaml);
    ok(rr.wait_for(|l| l.is("jobs", "jobs started"), START));

    let (code, body) = http_get(status, "/jobs").expect("GET /jobs");
    assert_eq!(code, 200, "{body}");
    let states: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let down = &states[0];
    assert_eq!(
        (&down["pipeline"], &down["driver"]),
        (&"down".into(), &"beanstalk".into()),
        "{body}"
    );
    assert_ne!(down["error_message"], "", "{body}");

    let workers = run_rr(dir.path(), &["workers", "-c", ".rr.yaml"], COMMAND);
    let text = String::from_utf8_lossy(&workers.stdout);
    assert!(
        workers.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&workers.stderr)
    );
    assert!(text.contains("Workers of [jobs]:"), "{text}");
    assert!(text.contains("Jobs of [jobs]:\nerror: "), "{text}");
    rr.stop_cleanly();
}

/// Push from Rust and PHP, then every reply kind: ack, empty, nack,
/// nack with redelivery after a delay, requeue with delay and headers,
/// invalid JSON, worker error and crash; a worker pushes a job itself.
#[test]
fn jobs_are_delivered_with_their_context_and_every_reply_is_honoured() {
    require_php!();
    let (mut rr, port, _dir) = start(
        2,
        "main",
        "    main:\n      driver: memory\n      config:\n        priority: 10\n        prefetch: 100\n",
    );

    // From Rust over protobuf: the context as RoadRunner's memory driver sends it.
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
    assert_eq!(job.get("name"), "ack");
    assert_eq!(job.get("pipeline"), "main");
    assert_eq!(job.get("driver"), "memory");
    assert_eq!(job.get("queue"), "-", "memory sends no queue");
    assert_eq!(job.get("payload"), "hello_world");
    assert_eq!(job.get("headers"), r#"{"x-trace":["t1"]}"#);
    ok(rr.wait_for(jobs_log("job was processed successfully", "r1"), EVENTUALLY));

    // From PHP: the client makes a UUID.
    let id = php_client(port, &["push", "main", "ack", "from-php"]).expect("php push");
    let id = id.as_str().expect("id").to_owned();
    assert_eq!(id.len(), 36, "uuid: {id}");
    ok(rr.wait_for(jobs_log("job was processed successfully", &id), EVENTUALLY));

    // An empty reply is an ack.
    rust_push(port, "main", "e1", "empty", "", &[]).expect("push");
    ok(rr.wait_for(jobs_log("job was processed successfully", "e1"), EVENTUALLY));

    // Nack without redelivery: dropped.
    rust_push(port, "main", "n1", "nack", "x", &[]).expect("push");
    let nacked = ok(rr.wait_for(jobs_log("job was nacked", "n1"), EVENTUALLY));
    assert_eq!(nacked.field_str("reason").as_deref(), Some("nope"));

    // Nack with redelivery after 1 s.
    rust_push(port, "main", "d1", "redeliver", "1", &[]).expect("push");
    delivered_again_after_a_second(&mut rr, "d1");
    ok(rr.wait_for(jobs_log("job was processed successfully", "d1"), EVENTUALLY));

    // Requeue after 1 s with a header added to the job's.
    rust_push(port, "main", "q1", "requeue", "1", &[("keep", "me")]).expect("push");
    let lines = delivered_again_after_a_second(&mut rr, "q1");
    let (a, b) = (lines[0].event().expect("e"), lines[1].event().expect("e"));
    assert_eq!(a.get("attempt"), "1");
    assert_eq!(b.get("attempt"), "2");
    assert_eq!(b.get("headers"), r#"{"attempt":["2"],"keep":["me"]}"#);
    ok(rr.wait_for(jobs_log("job was requeued", "q1"), EVENTUALLY));
    ok(rr.wait_for(jobs_log("job was processed successfully", "q1"), EVENTUALLY));

    // A reply that is not JSON: nacked, logged with the job id.
    rust_push(port, "main", "i1", "invalid", "x", &[]).expect("push");
    let invalid = invalid_reply_nacked(&mut rr, "i1");
    rr.check(
        invalid.text.contains("this is not json"),
        "the error quotes the reply",
    );

    // $worker->error(): nacked with the job id; the pool goes on.
    rust_push(port, "main", "w1", "error", "x", &[]).expect("push");
    ok(rr.wait_for(jobs_log("job failed, nacked", "w1"), EVENTUALLY));
    // A worker that dies on a job never answered it: the job is requeued
    // with the failure counted, and the next worker acks it. Nothing lost.
    rust_push(port, "main", "c1", "crash_once", "x", &[]).expect("push");
    ok(rr.wait_for(
        jobs_log("the job never got an answer from a worker; requeued", "c1"),
        EVENTUALLY,
    ));
    let redelivered = ok(rr.wait_for(job_with_id("c1"), EVENTUALLY));
    ok(rr.wait_for(jobs_log("job was processed successfully", "c1"), EVENTUALLY));
    rr.check(
        rr.count(job_with_id("c1")) == 2,
        format!("c1 delivered twice: {redelivered:?}"),
    );
    rust_push(port, "main", "after-crash", "ack", "x", &[]).expect("push");
    ok(rr.wait_for(
        jobs_log("job was processed successfully", "after-crash"),
        EVENTUALLY,
    ));

    // auto_ack: acked on receipt, so the worker's nack changes nothing.
    support::jobs::rust_push_job(
        port,
        rr_jobs::proto::Job {
            job: "nack".into(),
            id: "aa1".into(),
            payload: b"x".to_vec(),
            options: Some(rr_jobs::proto::Options {
                pipeline: "main".into(),
                auto_ack: true,
                ..Default::default()
            }),
            ..Default::default()
        },
    )
    .expect("push");
    ok(rr.wait_for(
        jobs_log("job was processed successfully", "aa1"),
        EVENTUALLY,
    ));
    rr.check(
        rr.count(jobs_log("job was nacked", "aa1")) == 0,
        "an auto-acked job's reply is ignored",
    );

    // A worker pushes a job through RPC while handling one.
    let inner = r#"{"pipeline":"main","name":"ack","payload":"inner","options":{"id":"inner-1","headers":{"from":"worker"}}}"#;
    rust_push(port, "main", "p1", "push", inner, &[]).expect("push");
    let job = job_event(&mut rr, "inner-1");
    assert_eq!(job.get("headers"), r#"{"from":["worker"]}"#);

    // Pushing errors are RoadRunner's.
    assert_eq!(
        rust_push(port, "nowhere", "z", "ack", "x", &[])
            .map_err(|e| e.contains("no such pipeline, requested: nowhere")),
        Err(true)
    );
    assert_eq!(
        rust_push(port, "main", "", "ack", "x", &[])
            .map_err(|e| e.contains("empty ID field not allowed")),
        Err(true)
    );

    rr.stop_cleanly();
    let stopped = rr
        .lines()
        .iter()
        .find(|l| l.is("jobs", "jobs stopped"))
        .cloned()
        .expect("a `jobs stopped` line");
    assert_eq!(
        stopped.field_u64("requeued"),
        Some(3),
        "redeliver + requeue + the crashed job"
    );
    assert_eq!(stopped.field_u64("failed"), Some(3), "nack, invalid, error");
}

/// A paused pipeline keeps its jobs and delivers them by priority on
/// resume; `rr jobs list|pause|resume`; delayed pushes; declare/destroy.
#[test]
fn priority_pause_resume_delay_and_declared_pipelines() {
    require_php!();
    let (mut rr, port, dir) = start(
        1,
        "main, dyn",
        "    main:\n      driver: memory\n    lane:\n      driver: memory\n      config:\n        priority: 10\n",
    );

    // `lane` is not in consume: paused. A batch waits there.
    let ids = php_client(
        port,
        &[
            "batch",
            "lane",
            "ack:p5:5",
            "ack:pdef:0",
            "ack:p1:1",
            "ack:p9:9",
            "ack:p3:3",
        ],
    )
    .expect("batch");
    assert_eq!(ids.as_array().map(Vec::len), Some(5));
    let stat = php_client(port, &["stat"]).expect("stat");
    let lane = stat
        .as_array()
        .and_then(|a| a.iter().find(|s| s["pipeline"] == "lane"))
        .cloned()
        .expect("lane in stat");
    assert_eq!(lane["active"], 5);
    assert_eq!(lane["ready"], false);
    assert_eq!(lane["driver"], "memory");

    let list = run_rr(dir.path(), &["jobs", "list", "-c", ".rr.yaml"], COMMAND);
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(
        list.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&list.stderr)
    );
    assert!(text.contains("paused | lane"), "{text}");
    assert!(text.contains("ready  | main"), "{text}");
    rr.check(jobs(&rr).is_empty(), "nothing runs while lane is paused");

    let resume = run_rr(
        dir.path(),
        &["jobs", "resume", "lane", "-c", ".rr.yaml"],
        COMMAND,
    );
    assert!(
        resume.status.success(),
        "{}",
        String::from_utf8_lossy(&resume.stderr)
    );
    assert!(String::from_utf8_lossy(&resume.stdout).contains("pipeline resumed: [lane]"));
    let order = payloads_in_order(&mut rr, 0, job_in_pipeline("lane"), 5);
    assert_eq!(
        order,
        ["p1", "p3", "p5", "p9", "pdef"],
        "lowest priority first; 0 = the pipeline's 10"
    );

    // Pause through the CLI: a push waits until a resume through PHP.
    let pause = run_rr(
        dir.path(),
        &["jobs", "pause", "lane", "-c", ".rr.yaml"],
        COMMAND,
    );
    assert!(
        pause.status.success(),
        "{}",
        String::from_utf8_lossy(&pause.stderr)
    );
    php_client(port, &["push", "lane", "ack", "held", "0", "0", "k=v"]).expect("push");
    let stat = php_client(port, &["stat"]).expect("stat");
    assert!(stat.to_string().contains(r#""active":1"#), "{stat}");
    let before = rr.mark();
    php_client(port, &["resume", "lane"]).expect("resume");
    let resumed =
        ok(rr.wait_for_line_after(before, |l| l.is("jobs", "pipeline was resumed"), EVENTUALLY));
    let held = ok(rr.wait_for(job_payload("held"), EVENTUALLY));
    rr.check(
        held.at >= resumed.at,
        "the held job ran only after the resume",
    );
    assert_eq!(held.event().expect("e").get("headers"), r#"{"k":["v"]}"#);

    // A delayed push arrives no earlier than its delay.
    let pushed = Instant::now();
    php_client(port, &["push", "main", "ack", "delayed", "0", "1"]).expect("push");
    let delayed = ok(rr.wait_for(job_payload("delayed"), EVENTUALLY));
    rr.check(
        delayed.at - pushed >= Duration::from_millis(950),
        format!("delayed job ran after {:?}", delayed.at - pushed),
    );

    // Declare (in consume: runs at once), use, refuse a duplicate, destroy.
    php_client(
        port,
        &["declare", "dyn", "memory", "priority=2", "prefetch=10"],
    )
    .expect("declare");
    assert_eq!(
        php_client(port, &["declare", "dyn", "memory"]),
        Err("pipeline already exists, name: dyn, driver: memory".to_owned())
    );
    assert_eq!(
        php_client(port, &["declare", "nodriver", ""]),
        Err("no associated driver with the pipeline, pipeline name: nodriver".to_owned())
    );
    php_client(port, &["push", "dyn", "ack", "on-dyn"]).expect("push");
    let job = ok(rr.wait_for(job_payload("on-dyn"), EVENTUALLY));
    assert_eq!(job.event().expect("e").get("pipeline"), "dyn");
    let list = php_client(port, &["list"]).expect("list");
    assert_eq!(list, serde_json::json!(["dyn", "lane", "main"]));
    assert_eq!(
        php_client(port, &["destroy", "dyn"]),
        Ok(serde_json::json!(["dyn"]))
    );
    assert_eq!(
        php_client(port, &["push", "dyn", "ack", "gone"]),
        Err("no such pipeline, requested: dyn".to_owned())
    );
    rr.stop_cleanly();
}

/// A pipeline without a driver stops rr at once, naming the key.
#[test]
fn a_pipeline_without_driver_is_named() {
    require_php!();
    let dir = support::temp_dir();
    let yaml = format!(
        "version: \"3\"\nserver:\n  command: {}\njobs:\n  pipelines:\n    broken:\n      config:\n        priority: 1\n",
        support::php_command("jobs_worker.php")
    );
    let mut rr = RrProcess::start(dir.path(), &yaml);
    rr.expect_quick_failure("a bad configuration is rejected before any worker starts");
    rr.check(
        rr.lines().iter().any(|l| {
            l.text.starts_with("error:") && l.text.contains("jobs.pipelines.broken.driver")
        }),
        "the error names jobs.pipelines.broken.driver",
    );
}

/// The beanstalk driver on a real beanstalkd: context with the tube,
/// ack deletes, requeue and redelivery with delay, pause/resume, a
/// declared beanstalk pipeline, and a foreign message with consume_all.
#[test]
fn beanstalk_pipelines_on_a_real_beanstalkd() {
    require_php!();
    require_service!("beanstalkd");
    let broker = support::service::beanstalkd();
    let dir = support::temp_dir();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).expect("state dir");
    let port = free_tcp_port();
    let mut config = yaml(
        port,
        &state,
        2,
        "tube, other",
        "    tube:\n      driver: beanstalk\n      config:\n        tube: rr-test\n        reserve_timeout: 1s\n        consume_all: true\n",
    );
    config.push_str(&format!(
        "beanstalk:\n  addr: tcp://127.0.0.1:{}\n  timeout: 10s\n",
        broker.port
    ));
    let mut rr = RrProcess::start(dir.path(), &config);
    ok(rr.wait_for(|l| l.is("jobs", "jobs started"), START));

    rust_push(port, "tube", "b1", "ack", "via beanstalk", &[("h", "1")]).expect("push");
    let job = job_event(&mut rr, "b1");
    assert_eq!(job.get("driver"), "beanstalk");
    assert_eq!(job.get("queue"), "rr-test");
    assert_eq!(job.get("pipeline"), "tube");
    assert_eq!(job.get("payload"), "via_beanstalk");
    assert_eq!(job.get("headers"), r#"{"h":["1"]}"#);
    ok(rr.wait_for(jobs_log("job was processed successfully", "b1"), EVENTUALLY));

    rust_push(port, "tube", "bq", "requeue", "1", &[]).expect("push");
    let lines = delivered_again_after_a_second(&mut rr, "bq");
    assert_eq!(lines[1].event().expect("e").get("attempt"), "2");

    rust_push(port, "tube", "bd", "redeliver", "1", &[]).expect("push");
    ok(rr.wait_for_lines_from(0, job_with_id("bd"), 2, EVENTUALLY));
    rust_push(port, "tube", "bn", "nack", "x", &[]).expect("push");
    ok(rr.wait_for(jobs_log("job was nacked", "bn"), EVENTUALLY));
    invalid_reply_auto_ack_and_delayed_push(&mut rr, port, "tube", "bt");

    // A message another producer put: consume_all takes it.
    let put = broker.exchange("use rr-test\r\nput 0 0 10 5\r\nhello\r\n", "INSERTED");
    assert!(put.contains("INSERTED"), "{put}");
    let foreign = ok(rr.wait_for(job_named("deduced_by_rr"), EVENTUALLY));
    assert_eq!(foreign.event().expect("e").get("payload"), "hello");

    // Paused: the job stays ready in the tube until the resume.
    php_client(port, &["pause", "tube"]).expect("pause");
    php_client(port, &["push", "tube", "ack", "held-in-tube"]).expect("push");
    let stat = php_client(port, &["stat"]).expect("stat");
    let tube = stat
        .as_array()
        .and_then(|a| a.iter().find(|s| s["pipeline"] == "tube"))
        .cloned()
        .expect("tube stat");
    assert_eq!(tube["queue"], "rr-test");
    assert_eq!(tube["ready"], false);
    assert_eq!(tube["active"], 1, "{stat}");
    let before = rr.mark();
    php_client(port, &["resume", "tube"]).expect("resume");
    let resumed =
        ok(rr.wait_for_line_after(before, |l| l.is("jobs", "pipeline was resumed"), EVENTUALLY));
    let held = ok(rr.wait_for(job_payload("held-in-tube"), EVENTUALLY));
    rr.check(held.at >= resumed.at, "the held job ran after the resume");

    // A beanstalk pipeline declared at run time (in consume: runs at once).
    php_client(
        port,
        &[
            "declare",
            "other",
            "beanstalk",
            "tube=rr-other",
            "reserve_timeout=1",
        ],
    )
    .expect("declare");
    php_client(port, &["push", "other", "ack", "on-other"]).expect("push");
    let job = ok(rr.wait_for(job_payload("on-other"), EVENTUALLY));
    assert_eq!(job.event().expect("e").get("queue"), "rr-other");
    ok(rr.wait_for_n(
        |l| l.is("jobs", "job was processed successfully"),
        6,
        EVENTUALLY,
    ));
    // Destroyed at run time: gone from the list, pushes refused.
    assert_eq!(
        php_client(port, &["destroy", "other"]),
        Ok(serde_json::json!(["other"]))
    );
    assert_eq!(
        php_client(port, &["push", "other", "ack", "gone"]),
        Err("no such pipeline, requested: other".to_owned())
    );
    rr.stop_cleanly();

    // Every job was settled: nothing is left ready, reserved or delayed
    // (an empty tube nobody watches is gone altogether).
    let stats = broker.exchange("stats-tube rr-test\r\n", "current-jobs-buried|NOT_FOUND");
    if stats.starts_with("NOT_FOUND") {
        return;
    }
    for key in [
        "current-jobs-ready: 0",
        "current-jobs-reserved: 0",
        "current-jobs-delayed: 0",
    ] {
        assert!(stats.contains(key), "{key} in {stats}");
    }
}

/// The PHP SDK's hand-written protobuf and rr's agree, both ways.
#[test]
fn the_php_sdk_and_rr_speak_the_same_jobs_v1_protobuf() {
    require_php!();
    use rr_jobs::proto::{PushRequest, Stat, Stats};
    let run = |args: &[&str]| {
        let output = std::process::Command::new("php")
            .arg(support::php_script("jobs_proto.php"))
            .args(args)
            .output()
            .expect("run php");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    };
    let hex = run(&["push"]);
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect();
    let job = PushRequest::decode(&bytes)
        .expect("decode")
        .job
        .expect("job");
    assert_eq!(job.id, "id-1");
    assert_eq!(job.job, "App\\Job");
    assert_eq!(job.payload, b"bin\x00\xff");
    assert_eq!(job.headers["a"], ["1", "2"]);
    assert_eq!(job.headers["b"], ["x"]);
    let options = job.options.expect("options");
    assert_eq!(
        (
            options.priority,
            options.pipeline.as_str(),
            options.delay,
            options.auto_ack
        ),
        (-3, "pipe", 7, true)
    );

    let stats = Stats {
        stats: vec![Stat {
            pipeline: "p".into(),
            driver: "memory".into(),
            queue: "p".into(),
            active: 300,
            delayed: 2,
            reserved: 0,
            ready: true,
            priority: 10,
        }],
    };
    let hex: String = stats.encode().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(run(&["stats", &hex]), r#"[["p",300,2,true,10]]"#);
}

/// 2000 jobs with mixed priorities through a small prefetch on two
/// workers: every job runs exactly once and the counters agree.
#[test]
fn no_job_is_lost_or_run_twice_under_load() {
    require_php!();
    let (mut rr, port, _dir) = start(
        2,
        "main",
        "    main:\n      driver: memory\n      config:\n        prefetch: 7\n",
    );
    let mut pushed = std::collections::BTreeSet::new();
    for batch in 0..4 {
        let specs: Vec<String> = (0..500)
            .map(|i| format!("ack:j{}:{}", batch * 500 + i, (i * 7919) % 13))
            .collect();
        let mut args = vec!["batch", "main"];
        args.extend(specs.iter().map(String::as_str));
        let ids = php_client(port, &args).expect("batch");
        assert_eq!(ids.as_array().map(Vec::len), Some(500));
        pushed.extend((0..500).map(|i| format!("j{}", batch * 500 + i)));
    }
    let lines = ok(rr.wait_for_n(
        |l| l.is("jobs", "job was processed successfully"),
        2000,
        EVENTUALLY,
    ));
    assert_eq!(lines.len(), 2000);
    rr.stop_cleanly();
    let payloads: Vec<String> = jobs(&rr)
        .iter()
        .map(|e| e.get("payload").to_owned())
        .collect();
    let ran: std::collections::BTreeSet<String> = payloads.iter().cloned().collect();
    assert_eq!(payloads.len(), 2000, "each job ran once");
    assert_eq!(ran, pushed);
    let stopped = rr
        .lines()
        .iter()
        .find(|l| l.is("jobs", "jobs stopped"))
        .cloned()
        .expect("a `jobs stopped` line");
    assert_eq!(stopped.field_u64("pushed"), Some(2000));
    assert_eq!(stopped.field_u64("ok"), Some(2000));
    assert_eq!(stopped.field_u64("failed"), Some(0));
}

/// Priority order among reserved jobs on one worker, then: beanstalkd goes
/// away mid-run and comes back on the same port: rr's
/// consumer re-dials (every second) and its producer on the next push, and
/// jobs pushed after the restart are consumed. The restarted beanstalkd
/// numbers jobs from 1 again, so the ack of the job before the restart
/// (id 1) must not be sent to it: it would delete the new job 1.
#[test]
fn beanstalk_priority_and_a_broker_restart() {
    require_php!();
    require_service!("beanstalkd");
    let broker = support::service::beanstalkd();
    let broker_port = broker.port;
    let dir = support::temp_dir();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).expect("state dir");
    let port = free_tcp_port();
    let mut config = yaml(
        port,
        &state,
        1,
        "tube",
        "    tube:\n      driver: beanstalk\n      config:\n        tube: rr-restart\n        reserve_timeout: 1s\n",
    );
    config.push_str(&format!(
        "beanstalk:\n  addr: tcp://127.0.0.1:{broker_port}\n  timeout: 5s\n"
    ));
    let mut rr = RrProcess::start(dir.path(), &config);
    ok(rr.wait_for(|l| l.is("jobs", "jobs started"), START));

    // Priority: while the one worker is busy, three jobs are reserved into
    // rr's queue; they run by rr priority, not by push order.
    rust_push(port, "tube", "busy", "slow", "300", &[]).expect("push");
    ok(rr.wait_for(job_with_id("busy"), EVENTUALLY));
    for (id, priority) in [("p5", 5), ("p1", 1), ("p3", 3)] {
        support::jobs::rust_push_job(
            port,
            rr_jobs::proto::Job {
                job: "ack".into(),
                id: id.into(),
                payload: b"x".to_vec(),
                options: Some(rr_jobs::proto::Options {
                    pipeline: "tube".into(),
                    priority,
                    ..Default::default()
                }),
                ..Default::default()
            },
        )
        .expect("push");
    }
    let order: Vec<String> = ok(rr.wait_for_n(
        |l| {
            l.event_named("JOB")
                .is_some_and(|e| e.get("id").starts_with('p'))
        },
        3,
        EVENTUALLY,
    ))
    .iter()
    .map(|l| l.event().expect("event").get("id").to_owned())
    .collect();
    assert_eq!(order, ["p1", "p3", "p5"], "run by priority");

    rust_push(port, "tube", "before", "ack", "x", &[]).expect("push");
    ok(rr.wait_for(
        jobs_log("job was processed successfully", "before"),
        EVENTUALLY,
    ));

    let lost = rr.mark();
    drop(broker);
    ok(rr.wait_for_line_after(
        lost,
        |l| l.is("jobs", "beanstalk connection failed; re-dialling"),
        EVENTUALLY,
    ));
    let _broker = support::service::beanstalkd_on(broker_port);
    // The producer's connection died with the broker: the first push may
    // fail on it, and the next one re-dials.
    if let Err(err) = rust_push(port, "tube", "after", "ack", "x", &[]) {
        let again = rust_push(port, "tube", "after", "ack", "x", &[]);
        rr.check(
            again.is_ok(),
            format!("a push after the restart: {err}, then {again:?}"),
        );
    }
    ok(rr.wait_for(
        jobs_log("job was processed successfully", "after"),
        EVENTUALLY,
    ));
    rr.stop_cleanly();
}

/// The example app's `.rr.jobs.yaml` as a user runs it, in place (RPC
/// moved to a free port): a job pushed from PHP reaches the example's jobs
/// dispatcher, and `rr jobs list` shows its pipeline.
#[test]
fn the_example_app_consumes_jobs() {
    require_php!();
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/ticker");
    let port = free_tcp_port();
    let listen = format!("rpc.listen=tcp://127.0.0.1:{port}");
    let args = ["-c", ".rr.jobs.yaml", "-o", listen.as_str()];
    let mut rr = RrProcess::spawn(&example, &[&["serve"], &args[..]].concat());
    ok(rr.wait_for(|l| l.is("jobs", "jobs started"), START));
    php_client(port, &["push", "demo", "greet", "hello-from-the-test"]).expect("push");
    ok(rr.wait_for(
        |l| l.text.contains("from pipeline demo: hello-from-the-test"),
        EVENTUALLY,
    ));
    let list = run_rr(&example, &[&["jobs", "list"], &args[..]].concat(), START);
    let table = String::from_utf8_lossy(&list.stdout);
    assert!(
        table
            .lines()
            .any(|l| l.contains("demo") && l.contains("memory")),
        "rr jobs list: {table}"
    );
}
