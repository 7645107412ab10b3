//! Helpers shared by the pool's integration tests.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use rr_pool::{ExecError, Payload, Pool, PoolConfig, Relay, RelayAddress, WorkerCommand};

/// True when PHP is there; without it, fail under CI and skip elsewhere.
pub fn php_available() -> bool {
    let found = std::process::Command::new("php")
        .arg("-v")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "php is required in CI (run ./scripts/setup.sh)"
        );
        eprintln!("skipping: php is not installed (run ./scripts/setup.sh)");
    }
    found
}

pub fn worker_script() -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/php/commands.php");
    path.to_string_lossy().into_owned()
}

pub fn command(relay: &RelayAddress) -> WorkerCommand {
    WorkerCommand {
        argv: vec!["php".into(), worker_script()],
        env: vec![("RR_RELAY".into(), relay.to_string())],
        ..WorkerCommand::default()
    }
}

pub fn config(workers: u64) -> PoolConfig {
    PoolConfig {
        num_workers: workers,
        allocate_timeout: Duration::from_secs(10),
        destroy_timeout: Duration::from_secs(5),
        ..PoolConfig::default()
    }
}

pub async fn pool(config: PoolConfig) -> Pool {
    Pool::start("test", command(&RelayAddress::Pipes), Relay::Pipes, config)
        .await
        .expect("pool starts")
}

pub fn body(text: &str) -> Payload {
    Payload::new(&b"{\"k\":1}"[..], text.to_owned())
}

pub async fn reply_text(pool: &Pool, text: &str) -> Result<String, ExecError> {
    let reply = pool.exec(&body(text)).await?;
    Ok(String::from_utf8_lossy(&reply.body).into_owned())
}
