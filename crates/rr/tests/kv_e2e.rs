//! End-to-end: the `kv` plugin with its four drivers (memory, a real
//! redis-server, a real memcached, the durable boltdb-compatible file),
//! driven over goridge RPC by a real PHP script using the SDK's
//! `Rr\Kv\Client`; then a restart that must keep the durable storage's keys.

use crate::support;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use support::{free_tcp_port, ok, php_script, rpc_section, Line, RrProcess, START};

/// Bound for the PHP client's whole run (its own waits are ≤ 10 s each).
const PHP_RUN: Duration = Duration::from_secs(90);

fn started(line: &Line) -> bool {
    line.is("rr", "rr server started")
}

fn config(rpc_port: u16, redis: &str, memcached: &str) -> String {
    format!(
        r#"version: "3"
{rpc}
kv:
  mem:
    driver: memory
    config: {{}}
  redis:
    driver: redis
    config:
      addrs: ["{redis}"]
  mc:
    driver: memcached
  bolt:
    driver: boltdb
    config:
      file: kv.db
      permissions: 0600
      interval: 1
# memcached's options come from the top-level section named like the storage.
mc:
  addr: ["{memcached}"]
"#,
        rpc = rpc_section(rpc_port),
    )
}

/// Runs `tests/php/kv_client.php` with `args`, bounded by [`PHP_RUN`].
fn php(dir: &Path, args: &[&str]) -> Output {
    let mut child = Command::new("php")
        .arg(php_script("kv_client.php"))
        .args(args)
        .current_dir(dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start php");
    let deadline = std::time::Instant::now() + PHP_RUN;
    loop {
        if child.try_wait().expect("poll php").is_some() {
            return child.wait_with_output().expect("php output");
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("kv_client.php did not finish within {PHP_RUN:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Asserts the PHP run ended with `DONE passed=<checks> failed=0`.
fn assert_passed(output: &Output, rr: &RrProcess, checks: usize) {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!("{stdout}");
    assert!(
        output.status.success() && stdout.contains(&format!("DONE passed={checks} failed=0")),
        "kv_client.php failed ({}):\n{stdout}\n{stderr}\nrr:\n{}",
        output.status,
        rr.recent()
    );
}

#[test]
fn php_client_drives_every_driver_and_the_durable_one_survives_a_restart() {
    require_php!();
    require_service!("redis-server");
    require_service!("memcached");
    let dir = support::temp_dir();
    let redis = support::service::redis(dir.path());
    let memcached = support::service::memcached();
    let port = free_tcp_port();
    let yaml = config(port, &redis.addr(), &memcached.addr());
    let address = format!("tcp://127.0.0.1:{port}");

    let mut rr = RrProcess::start(dir.path(), &yaml);
    ok(rr.wait_for(started, START));
    let output = php(
        dir.path(),
        &["suite", &address, "mem", "redis", "mc", "bolt"],
    );
    // 8 checks per storage, then 3 about storage names and keys.
    assert_passed(&output, &rr, 4 * 8 + 3);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("ok   mc: TTL"), "{stdout}");
    rr.stop_cleanly();

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("kv.db"))
            .expect("kv.db exists")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "kv.db mode {mode:o}");
    }

    let mut rr = RrProcess::start(dir.path(), &yaml);
    ok(rr.wait_for(started, START));
    let output = php(dir.path(), &["persist", &address, "bolt", "redis"]);
    assert_passed(&output, &rr, 2);
    rr.stop_cleanly();
}

#[test]
fn the_sdk_protobuf_codec_passes_its_self_test() {
    require_php!();
    let output = Command::new("php")
        .arg(php_script("kv_selftest.php"))
        .output()
        .expect("run php");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("failed=0"),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn a_storage_without_driver_stops_start_up_with_roadrunners_text() {
    let dir = support::temp_dir();
    let yaml = format!(
        "version: \"3\"\n{}kv:\n  cache:\n    config: {{}}\n",
        rpc_section(free_tcp_port())
    );
    let mut rr = RrProcess::start(dir.path(), &yaml);
    let (status, _) = ok(rr.wait_exit(START));
    assert!(!status.success());
    assert!(
        rr.lines().iter().any(|l| l
            .text
            .contains("could not find mandatory driver field in the cache storage")),
        "{}",
        rr.recent()
    );
}

#[test]
fn an_unknown_driver_stops_start_up() {
    let dir = support::temp_dir();
    let yaml = format!(
        "version: \"3\"\n{}kv:\n  cache:\n    driver: etcd\n",
        rpc_section(free_tcp_port())
    );
    let mut rr = RrProcess::start(dir.path(), &yaml);
    let (status, _) = ok(rr.wait_exit(START));
    assert!(!status.success());
    assert!(
        rr.lines()
            .iter()
            .any(|l| l.text.contains("no such constructor was registered: etcd")),
        "{}",
        rr.recent()
    );
}
