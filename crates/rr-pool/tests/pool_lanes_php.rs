//! The pool on lanes, as `rr serve` runs it: every worker on its own lane,
//! callers on every lane, round trips inline on the caller's lane or handed
//! to the worker's. One test, because lanes are installed once per process.

mod common;

use std::collections::HashSet;

use common::{body, config, php_available, pool, reply_text};
use rr_pool::{current_lane, ExecError, Lanes, Pool};

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
        let pool = pool(config(3)).await;
        let lanes = Lanes::get().expect("installed");
        assert!(lanes.count() >= 3, "one lane per worker");

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
    });
}
