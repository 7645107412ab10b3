//! End-to-end: what rr does for security beyond the HTTP checks in
//! `http_e2e.rs`: workers drop to `server.user` when rr runs as root, and
//! secrets handed to workers through `server.env` never show up in rr's own
//! output, even at debug level and through worker crashes, error replies
//! and resets.

use crate::support;

use support::{ok, php_command, RrProcess, EVENTUALLY, START};

/// Whether this test can switch users: it runs as root and `nobody` exists.
fn can_switch_to_nobody() -> Option<nix::unistd::User> {
    if !nix::unistd::Uid::effective().is_root() {
        return None;
    }
    nix::unistd::User::from_name("nobody").ok().flatten()
}

/// As root with `server.user: nobody`, every worker runs with nobody's uid
/// and primary gid and without root's supplementary groups, so business code
/// never holds root; rr itself stays root (it binds and supervises).
#[test]
fn workers_drop_to_server_user() {
    require_php!();
    let Some(nobody) = can_switch_to_nobody() else {
        eprintln!("SKIPPED: needs root and a `nobody` user");
        return;
    };
    let dir = support::temp_dir();
    // nobody must be able to read the worker script's directories.
    let yaml = format!(
        "version: \"3\"\nserver:\n  command: {}\n  user: nobody\nticker:\n  interval: 1s\n  pool:\n    num_workers: 2\n    destroy_timeout: 5s\n",
        php_command("identity.php")
    );
    let mut rr = RrProcess::start(dir.path(), &yaml);
    let lines = ok(rr.wait_for_n(|l| l.event_named("IDENTITY").is_some(), 2, START));
    for line in lines {
        let event = line.event().expect("IDENTITY event");
        rr.check(
            event.get("uid") == nobody.uid.to_string(),
            format!("worker uid is nobody's ({}): {line:?}", nobody.uid),
        );
        rr.check(
            event.get("gid") == nobody.gid.to_string(),
            format!("worker gid is nobody's ({}): {line:?}", nobody.gid),
        );
        rr.check(
            !event.get("groups").split(',').any(|g| g == "0"),
            format!("worker kept root's group: {line:?}"),
        );
    }
    rr.stop_cleanly();
}

/// A secret in `server.env` reaches the worker but never rr's log: debug
/// level, a worker that crashes, one that answers with an error, and a
/// reset through RPC.
#[test]
fn secrets_in_server_env_stay_out_of_the_log() {
    require_php!();
    const SECRET: &str = "s3cr3t-7f9c2a-never-log-me";
    let dir = support::temp_dir();
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).expect("mkdir");
    let rpc = support::free_tcp_port();
    let yaml = format!(
        "version: \"3\"\nlogs:\n  level: debug\nrpc:\n  listen: tcp://127.0.0.1:{rpc}\nserver:\n  command: {command}\n  env:\n    db_password: {SECRET}\n    tick_crash_on: \"2\"\n    tick_error_on: \"4\"\n    tick_state_dir: {state}\nticker:\n  interval: 100ms\n  pool:\n    num_workers: 1\n    destroy_timeout: 5s\n",
        command = php_command("ticker.php"),
        state = state.display(),
    );
    let mut rr = RrProcess::start(dir.path(), &yaml);
    ok(rr.wait_for(|l| l.event_named("CRASH").is_some(), START));
    ok(rr.wait_for(|l| l.event_named("ERROR").is_some(), EVENTUALLY));
    let reset = support::run_rr(dir.path(), &["reset", "-c", ".rr.yaml"], EVENTUALLY);
    rr.check(reset.status.success(), format!("rr reset: {reset:?}"));
    ok(rr.wait_for(|l| l.event_named("TICK_DONE").is_some(), EVENTUALLY));
    rr.stop_cleanly();
    let leaked: Vec<_> = rr
        .lines()
        .iter()
        .filter(|l| l.text.contains(SECRET))
        .map(|l| l.text.clone())
        .collect();
    assert!(
        leaked.is_empty(),
        "the secret is in rr's output: {leaked:#?}"
    );
    let reset_output = format!(
        "{}{}",
        String::from_utf8_lossy(&reset.stdout),
        String::from_utf8_lossy(&reset.stderr)
    );
    assert!(!reset_output.contains(SECRET), "{reset_output}");
}
