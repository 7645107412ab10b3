//! The pool against real PHP workers (tests/php/commands.php): what a plugin
//! relies on when it calls `exec`, `reset` and `destroy`.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{body, command, config, php_available, pool, reply_text};
use rr_pool::{
    ExecError, Payload, Pool, PoolConfig, Relay, RelayAddress, SocketRelay, SupervisorConfig,
};

#[tokio::test]
async fn a_round_trip_returns_body_and_context() {
    if !php_available() {
        return;
    }
    let pool = pool(config(1)).await;
    let reply = pool.exec(&body("echo:hello")).await.expect("exec");
    assert_eq!(&reply.body[..], b"hello");
    assert_eq!(&reply.context[..], b"{\"k\":1}");
    assert!(matches!(
        pool.exec(&Payload::default()).await,
        Err(ExecError::EmptyPayload)
    ));
    pool.destroy().await;
}

#[tokio::test]
async fn an_error_reply_fails_that_exec_only_and_the_worker_stays() {
    if !php_available() {
        return;
    }
    let pool = pool(config(1)).await;
    let before = reply_text(&pool, "pid").await.expect("pid");
    match pool.exec(&body("error:bad input")).await {
        Err(ExecError::Worker { message, .. }) => assert_eq!(message, "bad input"),
        other => panic!("expected a worker error, got {other:?}"),
    }
    assert_eq!(
        reply_text(&pool, "pid").await.expect("pid"),
        before,
        "same worker"
    );
    pool.destroy().await;
}

#[tokio::test]
async fn a_worker_that_dies_mid_exec_fails_that_exec_and_is_replaced() {
    if !php_available() {
        return;
    }
    let pool = pool(config(1)).await;
    let before = reply_text(&pool, "pid").await.expect("pid");
    assert!(matches!(
        pool.exec(&body("crash")).await,
        Err(ExecError::Protocol { .. })
    ));
    let after = reply_text(&pool, "pid")
        .await
        .expect("a replacement serves");
    assert_ne!(after, before);
    pool.destroy().await;
}

#[tokio::test]
async fn reset_under_load_replaces_every_worker_and_loses_no_exec() {
    if !php_available() {
        return;
    }
    let pool = pool(config(2)).await;
    let old: Vec<u32> = pool.workers().iter().map(|w| w.pid).collect();
    let load = {
        let pool = pool.clone();
        tokio::spawn(async move {
            let mut runs = tokio::task::JoinSet::new();
            for _ in 0..4 {
                let pool = pool.clone();
                runs.spawn(async move {
                    for _ in 0..15 {
                        reply_text(&pool, "sleep:20").await?;
                    }
                    Ok::<(), ExecError>(())
                });
            }
            let mut results = Vec::new();
            while let Some(done) = runs.join_next().await {
                results.push(done.expect("task"));
            }
            results
        })
    };
    pool.reset().await.expect("first reset");
    pool.reset().await.expect("second reset");
    for result in load.await.expect("load") {
        result.expect("no exec fails during a reset");
    }
    let new: Vec<u32> = pool.workers().iter().map(|w| w.pid).collect();
    assert_eq!(new.len(), 2);
    assert!(
        new.iter().all(|pid| !old.contains(pid)),
        "old {old:?}, new {new:?}"
    );
    pool.destroy().await;
}

#[tokio::test]
async fn a_worker_asking_to_stop_hands_the_payload_to_another() {
    if !php_available() {
        return;
    }
    let marker = tempfile::tempdir().expect("tempdir");
    let marker = marker.path().join("stopped-once");
    let pool = pool(config(2)).await;
    let reply = reply_text(&pool, &format!("stop:{}", marker.display()))
        .await
        .expect("served by another worker");
    assert!(reply.starts_with("handled by "), "{reply}");
    // A worker that always stops must not spin the pool forever.
    assert!(matches!(
        pool.exec(&body("stop-always")).await,
        Err(ExecError::StopLoop(10))
    ));
    assert!(
        reply_text(&pool, "pid").await.is_ok(),
        "the pool still serves"
    );
    pool.destroy().await;
}

/// Starts a `sleep:MS` exec and returns once it holds a worker.
async fn occupy(pool: &Pool, millis: u64) -> tokio::task::JoinHandle<Result<String, ExecError>> {
    let busy = {
        let pool = pool.clone();
        tokio::spawn(async move { reply_text(&pool, &format!("sleep:{millis}")).await })
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while !pool
        .workers()
        .iter()
        .any(|w| w.status == rr_pool::WorkerStatus::Working)
    {
        assert!(Instant::now() < deadline, "the slow exec never started");
        tokio::task::yield_now().await;
    }
    busy
}

#[tokio::test]
async fn a_full_queue_fails_at_once() {
    if !php_available() {
        return;
    }
    let pool = pool(PoolConfig {
        max_queue_size: 1,
        ..config(1)
    })
    .await;
    let busy = occupy(&pool, 1500).await;
    assert!(matches!(
        pool.exec(&body("pid")).await,
        Err(ExecError::QueueFull)
    ));
    busy.await.expect("task").expect("the slow exec completes");
    pool.destroy().await;
}

#[tokio::test]
async fn waiting_for_a_free_worker_ends_at_the_allocate_timeout() {
    if !php_available() {
        return;
    }
    let pool = pool(PoolConfig {
        allocate_timeout: Duration::from_millis(300),
        ..config(1)
    })
    .await;
    let busy = occupy(&pool, 1000).await;
    let started = Instant::now();
    assert!(matches!(
        pool.exec(&body("pid")).await,
        Err(ExecError::NoFreeWorkers(_))
    ));
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(290) && waited < Duration::from_millis(900),
        "waited {waited:?}"
    );
    busy.await.expect("task").expect("slow exec");
    pool.destroy().await;
}

#[tokio::test]
async fn destroy_lets_in_flight_execs_finish_then_refuses_new_ones() {
    if !php_available() {
        return;
    }
    let pool = pool(config(1)).await;
    let pids: Vec<u32> = pool.workers().iter().map(|w| w.pid).collect();
    let in_flight = occupy(&pool, 400).await;
    pool.destroy().await;
    in_flight
        .await
        .expect("task")
        .expect("the in-flight exec completed");
    assert!(matches!(
        pool.exec(&body("pid")).await,
        Err(ExecError::Stopped)
    ));
    for pid in pids {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "worker {pid} is gone"
        );
    }
}

#[tokio::test]
async fn exec_ttl_kills_a_hung_worker_and_the_pool_recovers() {
    if !php_available() {
        return;
    }
    let pool = pool(PoolConfig {
        supervisor: Some(SupervisorConfig {
            exec_ttl: Some(Duration::from_millis(200)),
            ..SupervisorConfig::default()
        }),
        ..config(1)
    })
    .await;
    let before = reply_text(&pool, "pid").await.expect("pid");
    assert!(matches!(
        pool.exec(&body("sleep:5000")).await,
        Err(ExecError::ExecTtl { .. })
    ));
    let after = reply_text(&pool, "pid").await.expect("replacement");
    assert_ne!(before, after);
    pool.destroy().await;
}

#[tokio::test]
async fn debug_pools_use_a_fresh_worker_for_every_exec() {
    if !php_available() {
        return;
    }
    let pool = pool(PoolConfig {
        debug: true,
        ..config(4)
    })
    .await;
    assert!(pool.workers().is_empty(), "nothing is pre-spawned");
    let first = reply_text(&pool, "pid").await.expect("first");
    let second = reply_text(&pool, "pid").await.expect("second");
    assert_ne!(first, second);
    pool.destroy().await;
}

#[tokio::test]
async fn workers_attach_over_a_unix_socket_relay() {
    if !php_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let address = RelayAddress::Unix(dir.path().join("relay.sock"));
    let listener: Arc<SocketRelay> = SocketRelay::bind(address.clone(), Duration::from_secs(10))
        .await
        .expect("listens");
    let pool = Pool::start(
        "test",
        command(&address),
        Relay::Socket(listener),
        config(2),
    )
    .await
    .expect("pool over unix socket");
    assert_eq!(
        reply_text(&pool, "echo:over a socket").await.expect("exec"),
        "over a socket"
    );
    pool.destroy().await;
}

/// The frames of a streamed reply, as text; the error, if the stream failed.
async fn collect(mut rest: rr_pool::ReplyStream) -> (Vec<String>, Option<ExecError>) {
    let mut frames = Vec::new();
    while let Some(frame) = rest.next().await {
        match frame {
            Ok(frame) => frames.push(String::from_utf8_lossy(&frame.body).into_owned()),
            Err(e) => return (frames, Some(e)),
        }
    }
    (frames, None)
}

#[tokio::test]
async fn exec_stream_yields_every_frame_and_keeps_the_worker_until_the_end() {
    if !php_available() {
        return;
    }
    let pool = pool(config(1)).await;
    let pid = reply_text(&pool, "pid").await.expect("pid");
    let streamed = pool.exec_stream(&body("stream:3")).await.expect("stream");
    assert_eq!(&streamed.first.body[..], b"chunk 0");
    assert_eq!(&streamed.first.context[..], b"{\"k\":1}");
    let rest = streamed.rest.expect("more frames follow");
    assert_eq!(rest.pid().to_string(), pid);
    let (frames, error) = collect(rest).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(frames, ["chunk 1", "chunk 2", "done"]);
    // A reply without STREAM has no rest, and the worker is the same.
    let plain = pool.exec_stream(&body("pid")).await.expect("plain");
    assert!(plain.rest.is_none());
    assert_eq!(String::from_utf8_lossy(&plain.first.body), pid);
    pool.destroy().await;
}

#[tokio::test]
async fn plain_exec_refuses_a_streamed_reply_and_replaces_the_worker() {
    if !php_available() {
        return;
    }
    let pool = pool(config(1)).await;
    let before = reply_text(&pool, "pid").await.expect("pid");
    assert!(matches!(
        pool.exec(&body("stream:2")).await,
        Err(ExecError::Protocol {
            source: rr_pool::protocol::ProtocolError::Stream,
            ..
        })
    ));
    let after = reply_text(&pool, "pid").await.expect("replacement");
    assert_ne!(before, after);
    pool.destroy().await;
}

#[tokio::test]
async fn dropping_a_stream_stops_it_and_the_worker_serves_again() {
    if !php_available() {
        return;
    }
    let pool = pool(config(1)).await;
    let pid = reply_text(&pool, "pid").await.expect("pid");
    let streamed = pool
        .exec_stream(&body("stream-until-stop"))
        .await
        .expect("stream");
    let mut rest = streamed.rest.expect("more frames follow");
    let second = rest.next().await.expect("a frame").expect("no error");
    assert_eq!(&second.body[..], b"chunk 1");
    // The only worker stays leased while its stream goes on.
    assert!(matches!(
        pool.exec_within(&body("pid"), Duration::from_millis(50))
            .await,
        Err(ExecError::NoFreeWorkers(_))
    ));
    rest.stop();
    // The next exec waits for the drained worker: the same one.
    let again = tokio::time::timeout(Duration::from_secs(10), reply_text(&pool, "pid"))
        .await
        .expect("the worker comes back after the stop")
        .expect("pid");
    assert_eq!(again, pid);
    pool.destroy().await;
}

#[tokio::test]
async fn a_worker_that_ignores_the_stream_stop_is_killed_after_stream_timeout() {
    if !php_available() {
        return;
    }
    let pool = pool(PoolConfig {
        stream_timeout: Duration::from_millis(300),
        ..config(1)
    })
    .await;
    let pid = reply_text(&pool, "pid").await.expect("pid");
    let streamed = pool
        .exec_stream(&body("stream-forever"))
        .await
        .expect("stream");
    let stopped = tokio::time::Instant::now();
    drop(streamed);
    let after = tokio::time::timeout(Duration::from_secs(10), reply_text(&pool, "pid"))
        .await
        .expect("a replacement serves")
        .expect("pid");
    assert_ne!(after, pid);
    assert!(stopped.elapsed() >= Duration::from_millis(300));
    pool.destroy().await;
}
