//! End-to-end: the `jobs` plugin's `nats` driver on a real nats-server
//! with JetStream (started per test on a free port with its own store) and
//! real PHP workers (`tests/php/jobs_worker.php`): pushes from PHP and
//! Rust, every reply kind, a foreign message, delays, priority among prefetched jobs,
//! pause/resume, declare/destroy, and going on after a broker restart.

use crate::support;

use std::path::Path;
use std::time::Duration;

use support::jobs::{
    delivered_again_after_a_second, invalid_reply_auto_ack_and_delayed_push, job_event, job_named,
    job_payload, jobs_log, payloads_in_order, php_client, rust_push, stat_of, yaml,
};
use support::service::{nats, Service};
use support::{free_tcp_port, ok, RrProcess, EVENTUALLY, START};

/// rr with one worker (and one poller, so jobs prefetched while it is busy
/// wait in the priority queue), the nats global section and `pipelines`.
fn start_rr(
    broker: &Service,
    consume: &str,
    pipelines: &str,
) -> (RrProcess, u16, tempfile::TempDir) {
    let dir = support::temp_dir();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).expect("state dir");
    let port = free_tcp_port();
    let mut config = yaml(port, &state, 1, consume, pipelines);
    config.push_str(&format!("nats:\n  addr: nats://{}\n", broker.addr()));
    let mut rr = RrProcess::start(dir.path(), &config);
    ok(rr.wait_for(|l| l.is("jobs", "jobs started"), START));
    (rr, port, dir)
}

fn store(dir: &Path) -> std::path::PathBuf {
    let store = dir.join("nats");
    std::fs::create_dir_all(&store).expect("nats store dir");
    store
}

/// The durable consumer's info (`$JS.API.CONSUMER.INFO`), asked over the
/// raw NATS protocol so the test needs no client of its own.
fn consumer_info(broker: &Service, stream: &str, consumer: &str) -> serde_json::Value {
    use std::io::{Read, Write};
    let mut socket = std::net::TcpStream::connect(broker.addr()).expect("connect to nats");
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("read timeout");
    let request = format!(
        "CONNECT {{\"verbose\":false}}\r\nSUB reply 1\r\nPUB $JS.API.CONSUMER.INFO.{stream}.{consumer} reply 0\r\n\r\n"
    );
    socket.write_all(request.as_bytes()).expect("write");
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&received).into_owned();
        // `MSG reply 1 <len>\r\n<json>\r\n`
        if let Some(at) = text.find("MSG reply ") {
            let rest = &text[at..];
            if let Some((header, body)) = rest.split_once("\r\n") {
                let len: usize = header
                    .rsplit(' ')
                    .next()
                    .and_then(|n| n.parse().ok())
                    .expect("MSG length");
                if body.len() >= len {
                    return serde_json::from_str(&body[..len]).expect("consumer info JSON");
                }
            }
        }
        let n = socket.read(&mut buf).expect("read consumer info");
        assert!(n > 0, "nats closed the connection: {text}");
        received.extend_from_slice(&buf[..n]);
    }
}

/// Context, ack, nack, redelivery and requeue with delay, an invalid reply,
/// a delayed push, priority, pause/resume and a declared pipeline.
#[test]
fn nats_pipelines_on_a_real_nats_server() {
    require_php!();
    require_service!("nats-server");
    let broker_dir = support::temp_dir();
    let broker = nats(0, &store(broker_dir.path()));
    let (mut rr, port, _dir) = start_rr(
        &broker,
        "main, dyn",
        "    main:\n      driver: nats\n      config:\n        subject: rr.main\n        stream: rr-main\n        prefetch: 10\n        ack_wait: 5s\n        consume_all: true\n",
    );

    // From Rust: RoadRunner's context, the stream as the queue.
    rust_push(port, "main", "r1", "ack", "via nats", &[("h", "1")]).expect("push");
    let job = job_event(&mut rr, "r1");
    assert_eq!(job.get("driver"), "nats");
    assert_eq!(job.get("queue"), "rr-main");
    assert_eq!(job.get("pipeline"), "main");
    assert_eq!(job.get("payload"), "via_nats");
    assert_eq!(job.get("headers"), r#"{"h":["1"]}"#);
    ok(rr.wait_for(jobs_log("job was processed successfully", "r1"), EVENTUALLY));

    // From PHP.
    let id = php_client(port, &["push", "main", "ack", "from-php"]).expect("php push");
    let id = id.as_str().expect("id").to_owned();
    ok(rr.wait_for(jobs_log("job was processed successfully", &id), EVENTUALLY));

    // Nack: terminated, not seen again.
    rust_push(port, "main", "n1", "nack", "x", &[]).expect("push");
    ok(rr.wait_for(jobs_log("job was nacked", "n1"), EVENTUALLY));

    // Nack with redelivery after 1 s (a JetStream nak with delay).
    rust_push(port, "main", "d1", "redeliver", "1", &[]).expect("push");
    delivered_again_after_a_second(&mut rr, "d1");
    ok(rr.wait_for(jobs_log("job was processed successfully", "d1"), EVENTUALLY));

    // Requeue after 1 s with a header added.
    rust_push(port, "main", "q1", "requeue", "1", &[("keep", "me")]).expect("push");
    let lines = delivered_again_after_a_second(&mut rr, "q1");
    let second = lines[1].event().expect("event");
    assert_eq!(second.get("attempt"), "2");
    assert_eq!(second.get("headers"), r#"{"attempt":["2"],"keep":["me"]}"#);
    ok(rr.wait_for(jobs_log("job was processed successfully", "q1"), EVENTUALLY));

    // A reply that is not JSON, auto_ack, and a delayed push from PHP (1 s,
    // it waits in the broker).
    invalid_reply_auto_ack_and_delayed_push(&mut rr, port, "main", "n");

    // A message another producer published: consume_all takes it.
    let published = broker.exchange("CONNECT {}\r\nPUB rr.main 5\r\nhello\r\nPING\r\n", "PONG");
    assert!(published.contains("PONG"), "{published}");
    let foreign = ok(rr.wait_for(job_named("deduced_by_rr"), EVENTUALLY))
        .event()
        .expect("event");
    assert_eq!(foreign.get("payload"), "hello");
    assert!(
        foreign.get("id").starts_with("nats-rr-main-"),
        "{}",
        foreign.get("id")
    );

    // Paused: jobs stay in the stream. On resume the slow job takes the one
    // worker while the others are prefetched and then run by priority.
    php_client(port, &["pause", "main"]).expect("pause");
    php_client(port, &["push", "main", "slow", "800", "1"]).expect("push slow");
    php_client(port, &["batch", "main", "ack:p5:5", "ack:p1:1", "ack:p3:3"]).expect("batch");
    let stat = stat_of(port, "main");
    assert_eq!(stat["driver"], "nats");
    assert_eq!(stat["ready"], false);
    assert_eq!(stat["active"], 4, "{stat}");
    let before = rr.mark();
    php_client(port, &["resume", "main"]).expect("resume");
    let order = payloads_in_order(
        &mut rr,
        before,
        |l| {
            l.event_named("JOB")
                .is_some_and(|e| e.get("name") == "ack" && e.get("payload").starts_with('p'))
        },
        3,
    );
    assert_eq!(order, ["p1", "p3", "p5"], "priority among prefetched jobs");

    // A pipeline declared at run time (in consume: runs at once), destroyed.
    php_client(
        port,
        &[
            "declare",
            "dyn",
            "nats",
            "subject=rr.dyn",
            "stream=rr-dyn",
            "delete_stream_on_stop=true",
        ],
    )
    .expect("declare");
    php_client(port, &["push", "dyn", "ack", "on-dyn"]).expect("push");
    let job = ok(rr.wait_for(job_payload("on-dyn"), EVENTUALLY));
    assert_eq!(job.event().expect("e").get("queue"), "rr-dyn");
    let destroyed = php_client(port, &["destroy", "dyn"]).expect("destroy");
    assert_eq!(destroyed, serde_json::json!(["dyn"]));
    let err = php_client(port, &["push", "dyn", "ack", "gone"]).expect_err("destroyed");
    assert!(err.contains("no such pipeline"), "{err}");

    rr.stop_cleanly();
    let stopped = rr
        .lines()
        .iter()
        .find(|l| l.is("jobs", "jobs stopped"))
        .cloned()
        .expect("a `jobs stopped` line");
    assert_eq!(
        stopped.field_u64("requeued"),
        Some(2),
        "redeliver + requeue"
    );
    assert_eq!(stopped.field_u64("failed"), Some(2), "nack, invalid");

    // Every message was settled with the broker: none waits, none is
    // pending an ack (acks are confirmed before rr stops).
    let info = consumer_info(&broker, "rr-main", "rr-main");
    assert_eq!(info["num_pending"], 0, "{info}");
    assert_eq!(info["num_ack_pending"], 0, "{info}");
}

/// The broker is killed and started again on the same port and store: rr
/// reconnects, and jobs pushed afterwards are consumed.
#[test]
fn rr_goes_on_after_nats_restarts() {
    require_php!();
    require_service!("nats-server");
    let broker_dir = support::temp_dir();
    let store = store(broker_dir.path());
    let broker = nats(0, &store);
    let broker_port = broker.port;
    let (mut rr, port, _dir) = start_rr(
        &broker,
        "main",
        "    main:\n      driver: nats\n      config:\n        subject: rr.restart\n        stream: rr-restart\n",
    );
    rust_push(port, "main", "before", "ack", "x", &[]).expect("push");
    ok(rr.wait_for(
        jobs_log("job was processed successfully", "before"),
        EVENTUALLY,
    ));

    let lost = rr.mark();
    drop(broker);
    ok(rr.wait_for_line_after(
        lost,
        |l| l.is("jobs", "nats connection lost, reconnecting"),
        EVENTUALLY,
    ));
    let back = rr.mark();
    let _broker = nats(broker_port, &store);
    ok(rr.wait_for_line_after(back, |l| l.is("jobs", "nats connected"), EVENTUALLY));

    for id in ["after-1", "after-2"] {
        rust_push(port, "main", id, "ack", "x", &[]).expect("push after the restart");
    }
    for id in ["after-1", "after-2"] {
        ok(rr.wait_for(jobs_log("job was processed successfully", id), EVENTUALLY));
    }
    rr.stop_cleanly();
}
