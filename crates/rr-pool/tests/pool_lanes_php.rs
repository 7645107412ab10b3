//! The pool on lanes, as `rr serve` runs it: workers on the lanes of the
//! cores (several on one lane) or each on its own lane, callers on every
//! lane, round trips inline on the caller's lane or handed to the worker's.
//! One test, because lanes are installed once per process.

mod common;

use std::collections::HashSet;

use common::{body, config, php_available, pool, reply_text};
use rr_pool::{current_lane, ExecError, LanePlacement, Lanes, Pool, PoolConfig};

/// Runs `execs` commands from a caller on each lane; returns every reply.
async fn from_every_lane(
    pool: &Pool,
    command: &'static str,
    execs: usize,
) -> Vec<Result<String, ExecError>> {
    let lanes = Lanes::get().expect("installed");
    let mut callers = tokio::task::JoinSet::new();
    for lane in 0..lanes.count() {
        let pool = pool.clone();
        callers.spawn_on(
            async move {
                assert_eq!(current_lane(), Some(lane), "the caller runs on its lane");
                let mut replies = Vec::new();
                for _ in 0..execs {
                    replies.push(reply_text(&pool, command).await);
                }
                replies
            },
            &lanes.handle(lane),
        );
    }
    let mut all = Vec::new();
    while let Some(done) = callers.join_next().await {
        all.extend(done.expect("caller task"));
    }
    all
}

#[test]
fn the_pool_serves_from_every_lane_through_reset_crash_and_destroy() {
    if !php_available() {
        return;
    }
    let runtime = Lanes::install(2).expect("lanes");
    runtime.block_on(async {
        // Three workers on two cores: two share lane 0.
        let shared = pool(config(3)).await;
        assert_eq!(shared.lanes(), 2, "the lanes of the cores");
        assert_eq!(Lanes::get().expect("installed").count(), 2, "no lane added");
        serve_through_reset_crash_and_destroy(shared).await;

        let own = pool(PoolConfig {
            lanes: LanePlacement::PerWorker,
            ..config(3)
        })
        .await;
        assert_eq!(own.lanes(), 3, "a lane per worker");
        assert!(Lanes::get().expect("installed").count() >= 3, "lanes added");
        serve_through_reset_crash_and_destroy(own).await;
    });
}

/// Serves from every lane, loses nothing through a reset under load, fails
/// only the crashed execs, and leaves no process behind after a destroy.
async fn serve_through_reset_crash_and_destroy(pool: Pool) {
    let lanes = Lanes::get().expect("installed");

    // Every caller, local or remote to a worker, gets its answer.
    let replies = from_every_lane(&pool, "pid", 20).await;
    let pids: HashSet<String> = replies.into_iter().map(|r| r.expect("exec")).collect();
    let started: HashSet<String> = pool.workers().iter().map(|w| w.pid.to_string()).collect();
    assert!(pids.is_subset(&started), "{pids:?} within {started:?}");
    assert!(
        pids.len() >= 2,
        "callers on several lanes use several workers: {pids:?}"
    );

    // A reset under load from every lane loses nothing.
    let load = {
        let pool = pool.clone();
        tokio::spawn(async move { from_every_lane(&pool, "sleep:5", 20).await })
    };
    pool.reset().await.expect("reset");
    for reply in load.await.expect("load") {
        reply.expect("no exec fails during a reset");
    }
    let after: HashSet<String> = pool.workers().iter().map(|w| w.pid.to_string()).collect();
    assert!(after.is_disjoint(&started), "every worker was replaced");

    // A crash fails that exec only; the pool goes on, on every lane.
    let crashed = from_every_lane(&pool, "crash", 1).await;
    assert!(crashed
        .iter()
        .all(|r| matches!(r, Err(ExecError::Protocol { .. }))));
    for reply in from_every_lane(&pool, "echo:still here", 5).await {
        assert_eq!(reply.expect("served after the crashes"), "still here");
    }

    // Destroy from a lane other than the workers' leaves nothing behind.
    let pids: Vec<u32> = pool.workers().iter().map(|w| w.pid).collect();
    let destroyer = pool.clone();
    lanes
        .run_on(1, async move { destroyer.destroy().await })
        .await
        .expect("lane 1 runs");
    // destroy() returns once every worker has exited and been reaped.
    for pid in pids {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "worker {pid} is gone"
        );
    }
    assert!(matches!(
        pool.exec(&body("pid")).await,
        Err(ExecError::Stopped)
    ));
}
