//! End-to-end: the `rpc` plugin and the management commands that use it
//! (`rr reset`, `rr workers`, `rr stop`), with real PHP workers and the real
//! binary, plus a goridge RPC port fed with garbage.

use crate::support;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use rr_rpc::{RpcClient, RpcClientError};
use support::{
    event, free_tcp_port, ok, rpc_section, run_rr, tick, tick_failed, wait_gone, Line, RrProcess,
    Yaml, EVENTUALLY, START,
};

/// Bound for one management command.
const COMMAND: Duration = Duration::from_secs(30);

/// rr's log line when the RPC listener is up.
fn rpc_started(line: &Line) -> bool {
    line.is("rpc", "RPC plugin started")
}

/// `rr serve` with the default ticker (2 workers, 100 ms) and an `rpc`
/// section on a free port; returns once the listener, both workers and
/// every plugin are up.
fn start_with_rpc(dir: &std::path::Path, extra_args: &[&str]) -> (RrProcess, u16) {
    start_with_rpc_and_env(dir, extra_args, &[])
}

/// [`start_with_rpc`] with `server.env` pairs for `ticker.php`.
fn start_with_rpc_and_env(
    dir: &std::path::Path,
    extra_args: &[&str],
    env: &[(&str, &str)],
) -> (RrProcess, u16) {
    let port = free_tcp_port();
    let rpc = rpc_section(port);
    let yaml = Yaml {
        top_extra: &rpc,
        env,
        ..Yaml::default()
    };
    std::fs::write(dir.join(".rr.yaml"), yaml.render()).expect("write .rr.yaml");
    let mut args = vec!["serve", "-c", ".rr.yaml"];
    args.extend_from_slice(extra_args);
    let mut rr = RrProcess::spawn(dir, &args);
    ok(rr.wait_for(rpc_started, START));
    ok(rr.wait_for_n(event("READY"), 2, START));
    // Every plugin has served (the ticker holds its pool) after this line.
    ok(rr.wait_for(|l| l.is("rr", "rr server started"), START));
    (rr, port)
}

/// A goridge header, built here by hand from the protocol description
/// (version 1, HL words, flags, LE length, CRC32 of bytes 0..6, options).
fn goridge_header(flags: u8, options: &[u32], payload_len: u32) -> Vec<u8> {
    let mut out = vec![0x10 | (3 + options.len() as u8), flags];
    out.extend_from_slice(&payload_len.to_le_bytes());
    let crc = crc32(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&[0, 0]);
    for option in options {
        out.extend_from_slice(&option.to_le_bytes());
    }
    out
}

/// CRC32 (IEEE), as PHP's `crc32()`.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for byte in bytes {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `rr reset` during a 100 ms ticking run replaces both ticker workers (two
/// new READY pids, the old processes gone), no tick fails, and tick numbers
/// stay consecutive across the reset.
#[test]
fn reset_replaces_every_ticker_worker_without_failed_or_missing_ticks() {
    require_php!();
    let dir = support::temp_dir();
    // Ticks take 150 ms and come every 100 ms, so at least one worker is
    // always busy: the reset meets a tick in flight and must let it finish.
    let (mut rr, _) = start_with_rpc_and_env(dir.path(), &[], &[("TICK_SLEEP_MS", "150")]);
    let old = rr.ready_pids();
    ok(rr.wait_for(support::tick(3), START));

    let output = run_rr(dir.path(), &["reset", "-c", ".rr.yaml"], COMMAND);
    let stdout = text(&output.stdout);
    rr.check(
        output.status.success(),
        format!(
            "rr reset failed: {}\nstdout: {stdout}\nstderr: {}",
            output.status,
            text(&output.stderr)
        ),
    );
    rr.check(
        stdout.contains("resetting plugin: [ticker]") && stdout.contains("plugin reset: [ticker]"),
        format!("rr reset printed {stdout:?}"),
    );

    // The reset has returned, so both new workers have been started.
    let new: Vec<u32> = ok(rr.wait_for_n(
        |l| {
            l.event_named("READY")
                .is_some_and(|e| !old.contains(&e.pid()))
        },
        2,
        EVENTUALLY,
    ))
    .iter()
    .map(|l| l.event().expect("READY").pid())
    .collect();
    if let Err(e) = wait_gone(&old, EVENTUALLY) {
        rr.check(false, e);
    }
    // Ticking goes on, on the new workers.
    ok(rr.wait_for(
        |l| {
            l.event_named("TICK")
                .is_some_and(|e| new.contains(&e.pid()))
        },
        EVENTUALLY,
    ));
    let mark = rr.mark();
    ok(rr.wait_for_line_after(mark, event("TICK"), EVENTUALLY));

    let numbers: Vec<u64> = rr
        .events("TICK")
        .iter()
        .map(|e| e.num("n").expect("n="))
        .collect();
    let mut sorted = numbers.clone();
    sorted.sort_unstable();
    rr.check(
        sorted == (0..sorted.len() as u64).collect::<Vec<_>>(),
        format!("tick numbers are not consecutive across the reset: {numbers:?}"),
    );
    rr.check(
        rr.count(tick_failed) == 0,
        "no tick may fail during a reset",
    );
    let ticks_after: BTreeSet<u32> = rr
        .events("TICK")
        .iter()
        .skip_while(|e| old.contains(&e.pid()))
        .map(|e| e.pid())
        .collect();
    rr.check(
        ticks_after.iter().all(|p| !old.contains(p)),
        format!("an old worker {old:?} ticked after a new one started: {ticks_after:?}"),
    );
    rr.stop_cleanly();
}

/// `rr workers` lists exactly the pids of the live workers.
#[test]
fn workers_lists_exactly_the_live_ready_pids() {
    require_php!();
    let dir = support::temp_dir();
    let (mut rr, _) = start_with_rpc(dir.path(), &[]);
    let ready: BTreeSet<u32> = rr.ready_pids().into_iter().collect();

    let output = run_rr(dir.path(), &["workers", "-c", ".rr.yaml"], COMMAND);
    let stdout = text(&output.stdout);
    rr.check(
        output.status.success(),
        format!(
            "rr workers failed: {}\n{}",
            output.status,
            text(&output.stderr)
        ),
    );
    rr.check(
        stdout.starts_with("Workers of [ticker]:\nPID "),
        format!("rr workers printed {stdout:?}"),
    );
    let listed: BTreeSet<u32> = stdout
        .lines()
        .filter_map(|l| l.split(" | ").next()?.trim().parse().ok())
        .collect();
    rr.check(
        listed == ready,
        format!("rr workers listed {listed:?}, the READY workers are {ready:?}\n{stdout}"),
    );
    rr.stop_cleanly();
}

/// `informer.AddWorker` starts a worker that serves; `RemoveWorker` stops
/// one for good and never the last (RoadRunner's informer).
#[test]
fn workers_can_be_added_and_removed_over_rpc() {
    require_php!();
    let dir = support::temp_dir();
    let (mut rr, port) = start_with_rpc(dir.path(), &[]);
    let initial = rr.ready_pids();
    let dsn = format!("tcp://127.0.0.1:{port}");
    let mut client = RpcClient::connect(&dsn, COMMAND).expect("connect");
    let listed = |client: &mut RpcClient| -> BTreeSet<u64> {
        let reply = client
            .call_json("informer.Workers", &"ticker")
            .expect("informer.Workers");
        reply["workers"]
            .as_array()
            .map(|w| w.iter().filter_map(|w| w["pid"].as_u64()).collect())
            .unwrap_or_default()
    };

    let added = client
        .call_json("informer.AddWorker", &"ticker")
        .expect("AddWorker");
    rr.check(
        added == serde_json::json!(true),
        format!("AddWorker answered {added}"),
    );
    let new_worker = rr.wait_for_new_worker(&initial);
    rr.check(
        listed(&mut client).len() == 3,
        "three workers after AddWorker",
    );
    rr.check(
        listed(&mut client).contains(&u64::from(new_worker)),
        "the new worker is listed",
    );

    for expected in [true, true, false] {
        let removed = client
            .call_json("informer.RemoveWorker", &"ticker")
            .expect("RemoveWorker");
        rr.check(
            removed == serde_json::json!(expected),
            format!("RemoveWorker answered {removed}, expected {expected}"),
        );
    }
    rr.check(listed(&mut client).len() == 1, "the last worker stays");
    let unknown = client.call_json("informer.AddWorker", &"nope");
    rr.check(
        matches!(&unknown, Err(RpcClientError::Remote { message, .. })
            if message.contains("plugin nope does not support workers management")),
        format!("AddWorker for an unknown plugin: {unknown:?}"),
    );
    ok(rr.wait_for(tick(3), EVENTUALLY));
    rr.check(
        rr.count(tick_failed) == 0,
        "no tick fails while workers come and go",
    );
    rr.stop_cleanly();
}

/// `rr stop` reads the `.pid` that `rr serve -p` wrote and rr exits with 0.
#[test]
fn stop_ends_a_server_started_with_a_pid_file() {
    require_php!();
    let dir = support::temp_dir();
    let (mut rr, _) = start_with_rpc(dir.path(), &["-p"]);
    let pid = std::fs::read_to_string(dir.path().join(".pid")).expect("rr serve -p wrote .pid");
    rr.check(
        pid == rr.pid().to_string(),
        format!(".pid holds {pid:?}, rr is {}", rr.pid()),
    );
    let output = run_rr(dir.path(), &["stop", "-c", ".rr.yaml"], COMMAND);
    rr.check(
        output.status.success(),
        format!(
            "rr stop failed: {}\n{}",
            output.status,
            text(&output.stderr)
        ),
    );
    let (status, _) = ok(rr.wait_exit(Duration::from_secs(15)));
    rr.check(
        status.code() == Some(0),
        format!("rr exited with {status} after rr stop, expected 0"),
    );
    rr.check(!dir.path().join(".pid").exists(), "rr left its .pid behind");
}

/// Without a running server or an `rpc` section, the commands fail with one
/// clear line and exit 1; `rr stop` without `.pid` gives RoadRunner's hint.
#[test]
fn management_commands_fail_clearly_without_a_server() {
    let dir = support::temp_dir();
    let port = free_tcp_port();
    std::fs::write(
        dir.path().join(".rr.yaml"),
        format!("version: \"3\"\n{}", rpc_section(port)),
    )
    .expect("write .rr.yaml");
    std::fs::write(dir.path().join("no-rpc.yaml"), "version: \"3\"\n").expect("write");
    let cases: [(&[&str], String); 4] = [
        (
            &["workers", "-c", ".rr.yaml"],
            format!("cannot connect to the RPC server at tcp://127.0.0.1:{port}"),
        ),
        (
            &["reset", "-c", ".rr.yaml"],
            format!("cannot connect to the RPC server at tcp://127.0.0.1:{port}"),
        ),
        (
            &["reset", "-c", "no-rpc.yaml"],
            "rpc service not specified in the configuration".to_owned(),
        ),
        (
            &["stop", "-c", ".rr.yaml"],
            "to create a .pid file, you must run RR with the following options: './rr serve -p'"
                .to_owned(),
        ),
    ];
    for (args, expected) in cases {
        let output = run_rr(dir.path(), args, COMMAND);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "rr {args:?}: {stderr}");
        assert!(stderr.contains(&expected), "rr {args:?}: {stderr:?}");
    }
}

/// Random bytes, a wrong CRC, a header announcing 4 GiB and a frame with one
/// option: each affects only its own connection, and a well-formed
/// `informer.List` on a new connection still answers. An unknown method
/// gets an error reply on a connection that keeps working.
#[test]
fn rpc_port_survives_garbage() {
    require_php!();
    let dir = support::temp_dir();
    let (mut rr, port) = start_with_rpc(dir.path(), &[]);
    let dsn = format!("tcp://127.0.0.1:{port}");
    let timeout = Duration::from_secs(10);
    let open = || {
        let s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the RPC port");
        s.set_read_timeout(Some(timeout)).expect("read timeout");
        s
    };
    let list = || {
        let mut client = RpcClient::connect(&dsn, timeout).expect("connect");
        client.plugins_with_workers()
    };

    // An idle connection stays open while the others are served.
    let _idle = open();
    let header = |flags: u8, options: &[u32], len: u32| goridge_header(flags, options, len);
    let mut bad_crc = header(0x08, &[1, 13], 13);
    bad_crc[6] ^= 0x5a;
    bad_crc.extend_from_slice(b"informer.List");
    let huge = header(0x08, &[1, 13], u32::MAX);
    let random: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    for (what, bytes) in [
        ("random bytes", random),
        ("a wrong CRC", bad_crc),
        ("a 4 GiB header", huge),
    ] {
        let mut s = open();
        let _ = s.write_all(&bytes);
        // The server closes the connection (EOF or reset), without a hang.
        let mut rest = Vec::new();
        let closed = s.read_to_end(&mut rest);
        rr.check(
            !matches!(&closed, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut),
            format!("after {what} the server neither answered nor closed"),
        );
        let plugins = list();
        rr.check(
            matches!(&plugins, Ok(p) if p == &["ticker".to_owned()]),
            format!("informer.List after {what}: {plugins:?}"),
        );
    }

    // One option: RoadRunner's error text in an error reply.
    let mut s = open();
    let mut frame = header(0x08, &[7], 4);
    frame.extend_from_slice(b"true");
    s.write_all(&frame).expect("write");
    let expected = b"should be 2 options. SEQ_ID and METHOD_LEN";
    let mut reply = vec![0u8; 20 + expected.len()];
    s.read_exact(&mut reply)
        .expect("an error reply to a 1-option frame");
    rr.check(
        reply[1] & 0x40 != 0 && &reply[20..] == expected,
        format!("1-option reply: {:?}", text(&reply)),
    );
    rr.check(list().is_ok(), "informer.List after a 1-option frame");

    // Unknown method: an error reply, and the same connection goes on.
    let mut client = RpcClient::connect(&dsn, timeout).expect("connect");
    match client.call_json("informer.Nope", &true) {
        Err(RpcClientError::Remote { message, .. }) => rr.check(
            message == "rpc: can't find method informer.Nope",
            format!("unknown method message: {message}"),
        ),
        other => rr.check(false, format!("unknown method: {other:?}")),
    }
    let plugins = client.plugins_with_workers();
    rr.check(
        matches!(&plugins, Ok(p) if p == &["ticker".to_owned()]),
        format!("informer.List on the same connection: {plugins:?}"),
    );
    rr.check(rr.count(tick_failed) == 0, "no tick may fail");
    rr.stop_cleanly();
}

/// RPC binds loopback by default and says nothing; bound to every
/// interface, it warns that it has no authentication.
#[test]
fn an_rpc_listener_beyond_loopback_is_warned_about() {
    require_php!();
    let exposed = |line: &Line| {
        line.is("rr", "`rpc.listen` is reachable from other machines and has no authentication; bind it to 127.0.0.1 (the default) or firewall it")
    };
    let dir = support::temp_dir();
    let (mut rr, _) = start_with_rpc(dir.path(), &[]);
    rr.stop_cleanly();
    rr.check(
        !rr.lines().iter().any(exposed),
        "no warning for a loopback listener",
    );

    let dir = support::temp_dir();
    let port = free_tcp_port();
    let rpc = format!("rpc:\n  listen: tcp://0.0.0.0:{port}\n");
    let yaml = Yaml {
        top_extra: &rpc,
        ..Yaml::default()
    };
    let mut rr = RrProcess::start(dir.path(), &yaml.render());
    ok(rr.wait_for(exposed, START));
    rr.stop_cleanly();
}
