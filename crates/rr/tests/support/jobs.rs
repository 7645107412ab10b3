//! Helpers for the jobs end-to-end tests: the config, the PHP producer
//! (`tests/php/jobs_client.php`), the Rust RPC producer, and reading the
//! `JOB` events of `tests/php/jobs_worker.php`.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use rr_jobs::proto::{Job, Options, PushRequest};
use rr_rpc::RpcClient;

use super::{php_command, php_script, Event, Line, RrProcess};

/// goridge's protobuf codec flag.
pub const CODEC_PROTO: u8 = 0x80;

/// A config: `jobs_worker.php` on `workers` workers (as many pollers, so
/// no job waits for a worker outside the priority queue), RPC on `port`, the
/// given `pipelines:` block (indented by four spaces) and `consume` list.
pub fn yaml(port: u16, state_dir: &Path, workers: u32, consume: &str, pipelines: &str) -> String {
    format!(
        "version: \"3\"\nserver:\n  command: {}\n  env:\n    JOBS_STATE_DIR: \"{}\"\nrpc:\n  listen: tcp://127.0.0.1:{port}\njobs:\n  num_pollers: {workers}\n  pool:\n    num_workers: {workers}\n    allocate_timeout: 5s\n    destroy_timeout: 5s\n  consume: [{consume}]\n  pipelines:\n{pipelines}",
        php_command("jobs_worker.php"),
        state_dir.display(),
    )
}

/// Runs `php jobs_client.php <address> args...`: `Ok(result JSON)` for
/// `OK ...`, `Err(message)` for `ERR ...`.
pub fn php_client(port: u16, args: &[&str]) -> Result<serde_json::Value, String> {
    let output = Command::new("php")
        .arg(php_script("jobs_client.php"))
        .arg(format!("tcp://127.0.0.1:{port}"))
        .args(args)
        .output()
        .expect("run php jobs_client.php");
    let stdout = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    if let Some(ok) = stdout.strip_prefix("OK ") {
        return Ok(serde_json::from_str(ok).expect("OK result is JSON"));
    }
    if let Some(err) = stdout.strip_prefix("ERR ") {
        return Err(err.to_owned());
    }
    panic!(
        "jobs_client.php {args:?}: unexpected output {stdout:?}, stderr {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Pushes a job over RPC from Rust (protobuf `jobs.Push`).
pub fn rust_push(
    port: u16,
    pipeline: &str,
    id: &str,
    name: &str,
    payload: &str,
    headers: &[(&str, &str)],
) -> Result<(), String> {
    rust_push_job(
        port,
        Job {
            job: name.into(),
            id: id.into(),
            payload: payload.as_bytes().to_vec(),
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), vec![(*v).to_owned()]))
                .collect(),
            options: Some(Options {
                pipeline: pipeline.into(),
                ..Options::default()
            }),
        },
    )
}

/// Pushes one `jobs.v1.Job` over RPC from Rust.
pub fn rust_push_job(port: u16, job: Job) -> Result<(), String> {
    let mut client = RpcClient::connect(&format!("tcp://127.0.0.1:{port}"), Duration::from_secs(5))
        .map_err(|e| e.to_string())?;
    let request = PushRequest { job: Some(job) };
    client
        .call_raw("jobs.Push", CODEC_PROTO, &request.encode())
        .map(drop)
        .map_err(|e| e.to_string())
}

/// Predicate: a `JOB` event with this id.
pub fn job_with_id(id: &str) -> impl Fn(&Line) -> bool {
    let id = id.to_owned();
    move |line| line.event_named("JOB").is_some_and(|e| e.get("id") == id)
}

/// Predicate: a `JOB` event of a job named `name` (`deduced_by_rr` for a
/// message another producer published).
pub fn job_named(name: &str) -> impl Fn(&Line) -> bool {
    let name = name.to_owned();
    move |line| {
        line.event_named("JOB")
            .is_some_and(|e| e.get("name") == name)
    }
}

/// Predicate: a `JOB` event of a job of `pipeline`.
pub fn job_in_pipeline(pipeline: &str) -> impl Fn(&Line) -> bool {
    let pipeline = pipeline.to_owned();
    move |line| {
        line.event_named("JOB")
            .is_some_and(|e| e.get("pipeline") == pipeline)
    }
}

/// Waits for `n` `JOB` lines matching `predicate` from log line `from` on
/// and returns their payloads in the order the worker got them.
pub fn payloads_in_order(
    rr: &mut RrProcess,
    from: usize,
    predicate: impl Fn(&Line) -> bool,
    n: usize,
) -> Vec<String> {
    super::ok(rr.wait_for_lines_from(from, predicate, n, super::EVENTUALLY))
        .iter()
        .map(|l| {
            l.event()
                .expect("a JOB line carries an event")
                .get("payload")
                .to_owned()
        })
        .collect()
}

/// Waits for the worker's first `JOB` event of job `id` and returns it.
pub fn job_event(rr: &mut RrProcess, id: &str) -> Event {
    super::ok(rr.wait_for(job_with_id(id), super::EVENTUALLY))
        .event()
        .expect("a JOB line carries an event")
}

/// Waits for rr to nack job `id` over a reply that is not JSON, checks the
/// line is an ERROR, and returns it.
pub fn invalid_reply_nacked(rr: &mut RrProcess, id: &str) -> Line {
    let invalid = super::ok(rr.wait_for(
        jobs_log("invalid worker reply, the job is nacked", id),
        super::EVENTUALLY,
    ));
    assert_eq!(invalid.level(), Some("ERROR"));
    invalid
}

/// Predicate: the worker's `JOB` event for a job with `payload` (spaces
/// as `_`, as jobs_worker.php logs it).
pub fn job_payload(payload: &str) -> impl Fn(&Line) -> bool {
    let payload = payload.to_owned();
    move |line| {
        line.event_named("JOB")
            .is_some_and(|e| e.get("payload") == payload)
    }
}

/// Predicate: an rr `jobs` line with `message` about job `id`.
pub fn jobs_log(message: &'static str, id: &str) -> impl Fn(&Line) -> bool {
    let id = id.to_owned();
    move |line| line.is("jobs", message) && line.field_str("id").as_deref() == Some(id.as_str())
}

/// The `JOB` events so far.
pub fn jobs(rr: &RrProcess) -> Vec<Event> {
    rr.events("JOB")
}

/// The `jobs.Stat` of `pipeline`, through the PHP client.
pub fn stat_of(port: u16, pipeline: &str) -> serde_json::Value {
    let stat = php_client(port, &["stat"]).expect("stat");
    stat.as_array()
        .and_then(|a| a.iter().find(|s| s["pipeline"] == pipeline))
        .cloned()
        .unwrap_or_else(|| panic!("no stat for {pipeline}: {stat}"))
}

/// Waits for job `id` to reach a worker twice, the second time at least
/// 0.9 s after the first (a requeue or redelivery with a 1 s delay), and
/// returns both `JOB` lines.
pub fn delivered_again_after_a_second(rr: &mut RrProcess, id: &str) -> Vec<Line> {
    let lines = super::ok(rr.wait_for_lines_from(0, job_with_id(id), 2, super::EVENTUALLY));
    let gap = lines[1].at - lines[0].at;
    rr.check(
        gap >= Duration::from_millis(900),
        format!("{id} delivered again after {gap:?}, expected >= 1s"),
    );
    lines
}

/// Three checks every driver must pass on `pipeline` (ids start with
/// `prefix`): a reply that is not JSON nacks the job with an ERROR naming
/// it; an auto-acked job is settled on receipt, so its worker's nack
/// changes nothing; a job pushed from PHP with a 1 s delay runs no sooner.
pub fn invalid_reply_auto_ack_and_delayed_push(
    rr: &mut RrProcess,
    port: u16,
    pipeline: &str,
    prefix: &str,
) {
    let invalid = format!("{prefix}-invalid");
    rust_push(port, pipeline, &invalid, "invalid", "x", &[]).expect("push");
    invalid_reply_nacked(rr, &invalid);

    let auto = format!("{prefix}-auto-ack");
    rust_push_job(
        port,
        Job {
            job: "nack".into(),
            id: auto.clone(),
            payload: b"x".to_vec(),
            options: Some(Options {
                pipeline: pipeline.into(),
                auto_ack: true,
                ..Default::default()
            }),
            ..Default::default()
        },
    )
    .expect("push");
    super::ok(rr.wait_for(
        jobs_log("job was processed successfully", &auto),
        super::EVENTUALLY,
    ));
    rr.check(
        rr.count(jobs_log("job was nacked", &auto)) == 0,
        "an auto-acked job's nack is ignored",
    );

    let delayed = format!("{prefix}-delayed");
    let before = rr.mark();
    let pushed = std::time::Instant::now();
    php_client(port, &["push", pipeline, "ack", &delayed, "0", "1"]).expect("delayed push");
    let ran = super::ok(rr.wait_for_line_after(before, job_payload(&delayed), super::EVENTUALLY));
    rr.check(
        ran.at.duration_since(pushed) >= Duration::from_millis(900),
        format!(
            "the delayed job ran after {:?}",
            ran.at.duration_since(pushed)
        ),
    );
}
