//! End-to-end: the `amqp` jobs driver on a real RabbitMQ node (one per
//! file: start-up takes seconds) with real PHP workers
//! (`tests/php/jobs_worker.php`): push from PHP and Rust, ack, nack,
//! requeue and redelivery with a delay, an invalid reply, priority order
//! through `x-max-priority`, pause/resume, declare/destroy, dead-lettering,
//! a foreign message, and the broker crashing and coming back mid-run.

use crate::support;

use lapin::options::{BasicPublishOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use support::jobs::{
    delivered_again_after_a_second, invalid_reply_auto_ack_and_delayed_push, job_event,
    job_in_pipeline, job_named, job_payload, jobs_log, payloads_in_order, php_client, rust_push,
    stat_of, yaml,
};
use support::service::RabbitMq;
use support::{free_tcp_port, ok, RrProcess, EVENTUALLY, START};

/// A pipeline block: queue and routing key `name`, plus `extra` lines.
fn pipeline(name: &str, extra: &str) -> String {
    format!(
        "    {name}:\n      driver: amqp\n      config:\n        queue: rr-{name}\n        routing_key: rr-{name}\n{extra}"
    )
}

/// Publishes `body` with `headers` to the default exchange for `queue`, as
/// a producer other than rr would.
fn publish_foreign(url: &str, queue: &str, body: &[u8], headers: FieldTable) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let url = format!("{url}%2f");
        let connection = Connection::connect(&url, ConnectionProperties::default())
            .await
            .expect("connect");
        let channel = connection.create_channel().await.expect("channel");
        channel
            .basic_publish(
                "".into(),
                queue.into(),
                BasicPublishOptions::default(),
                body,
                BasicProperties::default().with_headers(headers),
            )
            .await
            .expect("publish")
            .await
            .expect("confirm");
        // Declaring it passively proves the queue exists (rr made it).
        channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("queue exists");
        let _ = connection.close(200, "done".into()).await;
    });
}

/// A push's result, with rr's log when it failed.
fn sent(rr: &mut RrProcess, result: Result<(), String>) {
    if let Err(err) = result {
        rr.drain();
        panic!("push failed: {err}\n{}", rr.recent());
    }
}

#[test]
fn amqp_pipelines_on_a_real_rabbitmq() {
    require_php!();
    require_service!("rabbitmq-server");
    let dir = support::temp_dir();
    let rabbit_dir = dir.path().join("rabbit");
    std::fs::create_dir(&rabbit_dir).expect("rabbit dir");
    let mut rabbit = RabbitMq::start(&rabbit_dir);
    let state = dir.path().join("state");
    std::fs::create_dir(&state).expect("state dir");
    let port = free_tcp_port();
    let pipelines = [
        pipeline("main", "        prefetch: 10\n"),
        // Not consumed at start: jobs wait in the queue until the resume,
        // then come one at a time (prefetch 1) in the broker's order.
        pipeline(
            "prio",
            "        prefetch: 1\n        queue_headers:\n          x-max-priority: 10\n",
        ),
        pipeline(
            "dl",
            "        queue_headers:\n          x-dead-letter-exchange: amqp.default\n          x-dead-letter-routing-key: rr-dead\n",
        ),
        pipeline("dead", ""),
    ]
    .concat();
    let mut config = yaml(port, &state, 2, "main, dl, dead, other", &pipelines);
    config.push_str(&format!("amqp:\n  addr: {}\n", rabbit.url()));
    let mut rr = RrProcess::start(dir.path(), &config);
    ok(rr.wait_for(|l| l.is("jobs", "jobs started"), START));

    // From Rust over protobuf: context with the queue, headers kept.
    sent(
        &mut rr,
        rust_push(port, "main", "a1", "ack", "via amqp", &[("h", "1")]),
    );
    let job = job_event(&mut rr, "a1");
    assert_eq!(job.get("driver"), "amqp");
    assert_eq!(job.get("queue"), "rr-main");
    assert_eq!(job.get("pipeline"), "main");
    assert_eq!(job.get("payload"), "via_amqp");
    assert_eq!(job.get("headers"), r#"{"h":["1"]}"#);
    ok(rr.wait_for(jobs_log("job was processed successfully", "a1"), EVENTUALLY));

    // From PHP.
    php_client(port, &["push", "main", "ack", "from-php"]).expect("push");
    ok(rr.wait_for(job_payload("from-php"), EVENTUALLY));

    // Requeue after 1 s with a header, and a nack with redelivery after 1 s:
    // both go through the delay queue.
    sent(&mut rr, rust_push(port, "main", "aq", "requeue", "1", &[]));
    sent(
        &mut rr,
        rust_push(port, "main", "ad", "redeliver", "1", &[]),
    );
    let requeued = delivered_again_after_a_second(&mut rr, "aq");
    assert_eq!(requeued[1].event().expect("e").get("attempt"), "2");
    delivered_again_after_a_second(&mut rr, "ad");
    ok(rr.wait_for(jobs_log("job was processed successfully", "ad"), EVENTUALLY));

    // A plain nack drops it (no requeue_on_fail); an invalid reply nacks
    // with a logged error.
    sent(&mut rr, rust_push(port, "main", "an", "nack", "x", &[]));
    ok(rr.wait_for(jobs_log("job was nacked", "an"), EVENTUALLY));
    invalid_reply_auto_ack_and_delayed_push(&mut rr, port, "main", "a");

    // Dead-lettering: a nacked job of `dl` reaches `dead` with its id.
    sent(
        &mut rr,
        rust_push(port, "dl", "d1", "nack", "to-the-dead", &[]),
    );
    let dead = ok(rr.wait_for(
        |l| {
            l.event_named("JOB")
                .is_some_and(|e| e.get("id") == "d1" && e.get("pipeline") == "dead")
        },
        EVENTUALLY,
    ));
    assert_eq!(dead.event().expect("e").get("queue"), "rr-dead");

    // A message another producer published: generated id, `deduced_by_rr`,
    // its AMQP headers as job headers.
    let mut headers = FieldTable::default();
    headers.insert("x-custom".into(), AMQPValue::LongInt(5));
    publish_foreign(&rabbit.url(), "rr-main", b"hello", headers);
    let foreign = ok(rr.wait_for(job_named("deduced_by_rr"), EVENTUALLY))
        .event()
        .expect("e");
    assert_eq!(foreign.get("payload"), "hello");
    assert_eq!(foreign.get("headers"), r#"{"x-custom":["5"]}"#);
    assert_eq!(foreign.get("id").len(), 36, "a generated UUID");

    // Priority: four jobs wait in the paused `prio`; the broker hands them
    // out lowest rr priority first.
    for (payload, priority) in [("p5", "5"), ("p1", "1"), ("p9", "9"), ("p3", "3")] {
        php_client(port, &["push", "prio", "ack", payload, priority]).expect("push");
    }
    let held = stat_of(port, "prio");
    assert_eq!(held["ready"], false);
    assert_eq!(held["active"], 4, "{held}");
    let before = rr.mark();
    php_client(port, &["resume", "prio"]).expect("resume");
    let order = payloads_in_order(&mut rr, before, job_in_pipeline("prio"), 4);
    assert_eq!(order, ["p1", "p3", "p5", "p9"]);

    // Pause: the job stays in the queue until the resume.
    php_client(port, &["pause", "main"]).expect("pause");
    php_client(port, &["push", "main", "ack", "held-in-queue"]).expect("push");
    let paused = stat_of(port, "main");
    assert_eq!(paused["ready"], false);
    assert_eq!(paused["queue"], "rr-main");
    assert_eq!(paused["active"], 1, "{paused}");
    let before = rr.mark();
    php_client(port, &["resume", "main"]).expect("resume");
    let resumed =
        ok(rr.wait_for_line_after(before, |l| l.is("jobs", "pipeline was resumed"), EVENTUALLY));
    let held = ok(rr.wait_for(job_payload("held-in-queue"), EVENTUALLY));
    rr.check(held.at >= resumed.at, "the held job ran after the resume");

    // Declared at run time (in consume: runs at once), then destroyed.
    php_client(
        port,
        &[
            "declare",
            "other",
            "amqp",
            "queue=rr-other",
            "routing_key=rr-other",
            "prefetch=5",
        ],
    )
    .expect("declare");
    php_client(port, &["push", "other", "ack", "on-other"]).expect("push");
    let job = ok(rr.wait_for(job_payload("on-other"), EVENTUALLY));
    assert_eq!(job.event().expect("e").get("queue"), "rr-other");
    php_client(port, &["destroy", "other"]).expect("destroy");
    let list = php_client(port, &["list"]).expect("list");
    assert!(
        !list.as_array().expect("list").iter().any(|p| p == "other"),
        "{list}"
    );

    // The broker crashes and comes back: rr re-dials, re-declares, and
    // later jobs are consumed.
    let before = rr.mark();
    rabbit.kill();
    ok(rr.wait_for_line_after(
        before,
        |l| l.is("jobs", "amqp connection lost; re-dialling"),
        EVENTUALLY,
    ));
    rabbit.restart();
    ok(rr.wait_for_line_after(
        before,
        |l| {
            l.is("jobs", "amqp connection restored")
                && l.field_str("pipeline").as_deref() == Some("main")
        },
        START,
    ));
    sent(
        &mut rr,
        rust_push(port, "main", "after", "ack", "after-restart", &[]),
    );
    ok(rr.wait_for(
        jobs_log("job was processed successfully", "after"),
        EVENTUALLY,
    ));
    rr.stop_cleanly();
}
