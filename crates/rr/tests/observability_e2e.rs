//! End-to-end: the `status` and `metrics` plugins over HTTP against the
//! real rr binary and PHP ticker workers.

use crate::support;

use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use prometheus_parse::{Scrape, Value};
use support::{event, http_get, ok, php_script, tick, RrProcess, Yaml, EVENTUALLY, START};

/// Polls `GET target` until it answers `status` (there is no log line for a
/// probe's answer changing); returns the body.
fn wait_for_status(rr: &RrProcess, port: u16, target: &str, status: u16) -> String {
    let deadline = Instant::now() + EVENTUALLY;
    loop {
        let answer = http_get(port, target);
        match &answer {
            Ok((code, body)) if *code == status => return body.clone(),
            _ if Instant::now() >= deadline => {
                rr.check(
                    false,
                    format!("GET {target} still answers {answer:?}, expected {status}"),
                );
            }
            _ => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// `/health` and `/ready` answer 200 while the ticker has workers, and the
/// configured `unavailable_status_code` (501) once it has none.
///
/// How the workers go away for good: `server.command` runs the worker
/// through `sh -c 'test -f <dir>/allow && exec php tests/php/ticker.php'`.
/// After start-up the test removes `allow` and SIGKILLs both workers (pids
/// from their READY lines); every replacement then exits before the
/// handshake, and the pool retries each second for `allocate_timeout`
/// (20 s) with no live worker — the window in which the probes are checked.
#[test]
fn health_and_ready_follow_the_tickers_workers() {
    require_php!();
    let dir = support::temp_dir();
    let allow = dir.path().join("allow");
    std::fs::write(&allow, "").expect("write the allow marker");
    let port = support::free_tcp_port();
    let script = format!(
        "test -f {} && exec php {}",
        allow.display(),
        php_script("ticker.php").display()
    );
    let yaml = format!(
        "version: \"3\"\nserver:\n  command: [\"sh\", \"-c\", \"{script}\"]\n\
         ticker:\n  interval: 100ms\n  pool:\n    num_workers: 2\n    allocate_timeout: 20s\n    destroy_timeout: 5s\n\
         status:\n  address: 127.0.0.1:{port}\n  unavailable_status_code: 501\n"
    );
    let mut rr = RrProcess::start(dir.path(), &yaml);
    ok(rr.wait_for_n_lines(event("READY"), 2, START));
    ok(rr.wait_for(|l| l.is("status", "status probes listening"), START));
    let pids = rr.ready_pids();
    // The ticker logs this right before it publishes its pool; until then
    // it has no workers to report, so the first answer is awaited.
    ok(rr.wait_for(|l| l.is("ticker", "ticker started"), START));
    let body = wait_for_status(&rr, port, "/health?plugin=ticker", 200);
    rr.check(
        body == r#"[{"plugin_name":"ticker","error_message":"","status_code":200}]"#,
        format!("/health while running: {body}"),
    );
    wait_for_status(&rr, port, "/ready?plugin=ticker", 200);
    // RoadRunner skips names that are not plugins with the probe.
    let (code, body) = ok(http_get(port, "/health?plugin=nope"));
    rr.check(
        code == 200 && body == "[]",
        format!("/health?plugin=nope: {code} {body}"),
    );
    let (code, _) = ok(http_get(port, "/nope"));
    rr.check(code == 404, format!("/nope answered {code}"));

    std::fs::remove_file(&allow).expect("remove the allow marker");
    for pid in &pids {
        let _ = kill(Pid::from_raw(*pid as i32), Signal::SIGKILL);
    }
    ok(rr.wait_for(
        |l| l.message() == Some("failed to start a replacement worker, retrying in 1s"),
        EVENTUALLY,
    ));
    let body = wait_for_status(&rr, port, "/health?plugin=ticker", 501);
    rr.check(
        body == r#"[{"plugin_name":"ticker","error_message":"internal server error, see logs","status_code":501}]"#,
        format!("/health without workers: {body}"),
    );
    let (code, body) = ok(http_get(port, "/ready?plugin=ticker"));
    rr.check(
        code == 501,
        format!("/ready without workers: {code} {body}"),
    );
}

fn plain(scrape: &Scrape, metric: &str, label: Option<(&str, &str)>) -> Option<f64> {
    scrape
        .samples
        .iter()
        .find(|s| s.metric == metric && label.is_none_or(|(k, v)| s.labels.get(k) == Some(v)))
        .and_then(|s| match s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => Some(v),
            _ => None,
        })
}

/// `/metrics` parses with a Prometheus text parser; the ticker's sent-ticks
/// counter matches the TICK lines PHP logged (a tick is counted when its
/// execution ends, so the TICK count before the scrape is at most one more,
/// and PHP has logged at least as many ticks as counted); the histograms
/// are consistent; other paths answer 404.
#[test]
fn metrics_match_the_ticks_php_logged() {
    require_php!();
    let dir = support::temp_dir();
    let port = support::free_tcp_port();
    let yaml = Yaml {
        top_extra: &format!("metrics:\n  address: 127.0.0.1:{port}\n"),
        ..Yaml::default()
    }
    .render();
    let mut rr = RrProcess::start(dir.path(), &yaml);
    ok(rr.wait_for(|l| l.is("metrics", "metrics listening"), START));
    ok(rr.wait_for(tick(5), START));

    rr.drain();
    let before = rr.events("TICK").len() as f64;
    let (code, text) = ok(http_get(port, "/metrics"));
    rr.check(code == 200, format!("/metrics answered {code}: {text}"));
    let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("parse");

    let sent = plain(&scrape, "rr_ticker_ticks_sent_total", None)
        .unwrap_or_else(|| panic!("no rr_ticker_ticks_sent_total in\n{text}"));
    rr.check(
        sent >= 5.0 && before <= sent + 1.0,
        format!("{before} TICK lines before the scrape, counter {sent}"),
    );
    // PHP logged every counted tick (tick numbers start at 0).
    ok(rr.wait_for(tick(sent as u64 - 1), EVENTUALLY));

    rr.check(
        plain(&scrape, "rr_workers_total", Some(("plugin", "ticker"))) == Some(2.0),
        format!("rr_workers_total\n{text}"),
    );
    let execs: f64 = scrape
        .samples
        .iter()
        .filter(|s| s.metric == "rr_worker_execs_total")
        .filter_map(|s| match s.value {
            Value::Counter(v) => Some(v),
            _ => None,
        })
        .sum();
    rr.check(
        execs >= sent - 1.0 && execs <= sent + 1.0,
        format!("worker execs {execs} vs {sent} ticks\n{text}"),
    );
    for name in [
        "rr_ticker_tick_duration_seconds",
        "rr_ticker_tick_lateness_seconds",
    ] {
        let buckets = scrape
            .samples
            .iter()
            .find_map(|s| match &s.value {
                Value::Histogram(h) if s.metric == name => Some(h.clone()),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no histogram {name} in\n{text}"));
        let count = plain(&scrape, &format!("{name}_count"), None).expect("_count");
        let inf = buckets.last().expect("buckets");
        rr.check(
            inf.less_than == f64::INFINITY && inf.count == count,
            format!("{name}: +Inf bucket {inf:?} vs _count {count}"),
        );
        rr.check(
            buckets.windows(2).all(|w| w[0].count <= w[1].count),
            format!("{name}: buckets not cumulative {buckets:?}"),
        );
        rr.check(
            count >= sent && count <= sent + 1.0,
            format!("{name}: _count {count} vs {sent} ticks"),
        );
    }

    let (code, _) = ok(http_get(port, "/nope"));
    rr.check(code == 404, format!("/nope answered {code}"));
    rr.stop_cleanly();
}
