//! End-to-end: ticks reach workers over each relay (`pipes`, `tcp://`,
//! `unix://`), and rr stops cleanly afterwards.

use crate::support;

use std::time::Duration;

use support::{event, ok, Line, RrProcess, Yaml};

/// Runs echo.php workers over `relay` (`None` = the default pipes) and
/// checks that they were told this relay and that ticks make round trips.
fn ticks_flow_over(relay: Option<&str>, expected_relay: &str) {
    let dir = support::temp_dir();
    let yaml = Yaml {
        script: "echo.php",
        relay,
        ..Yaml::default()
    };
    let mut rr = RrProcess::start(dir.path(), &yaml.render());
    let ready = ok(rr.wait_for_n(event("READY"), 2, Duration::from_secs(20)));
    for line in &ready {
        let e = line.event().expect("READY");
        rr.check(
            e.get("relay") == expected_relay,
            format!(
                "worker relay is {:?}, expected {expected_relay:?}",
                e.get("relay")
            ),
        );
    }
    // A tick is "done" only when the worker's reply came back over the relay.
    let done = |l: &Line| l.is("ticker", "tick done");
    let ticks = ok(rr.wait_for_n(done, 5, Duration::from_secs(15)));
    let numbers: Vec<u64> = ticks.iter().filter_map(|l| l.field_u64("tick")).collect();
    rr.check(
        numbers == [0, 1, 2, 3, 4],
        format!("ticks 0..=4 should complete in order, got {numbers:?}"),
    );
    rr.check(
        rr.count(|l| l.is("ticker", "tick failed; ticking goes on")) == 0,
        "no tick may fail",
    );

    rr.stop_cleanly();
    rr.check(
        rr.events("STOPPED").len() == 2,
        "both workers should stop on request",
    );
}

/// Acceptance 9: the default pipes relay.
#[test]
fn ticks_flow_over_pipes() {
    require_php!();
    ticks_flow_over(None, "pipes");
}

/// Acceptance 9: a TCP relay on a free port.
#[test]
fn ticks_flow_over_tcp() {
    require_php!();
    let address = format!("tcp://127.0.0.1:{}", support::free_tcp_port());
    ticks_flow_over(Some(&address), &address);
}

/// Acceptance 9: a Unix socket relay inside the test's directory.
#[test]
fn ticks_flow_over_a_unix_socket() {
    require_php!();
    let dir = support::temp_dir();
    let address = format!("unix://{}", dir.path().join("rr.sock").display());
    ticks_flow_over(Some(&address), &address);
}
