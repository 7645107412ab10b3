//! `server.on_init`: a command run once before the first worker starts.

use crate::support;

use support::{event, ok, RrProcess, Yaml, EVENTUALLY, START};

fn on_init(command: &str, exit_on_error: bool) -> String {
    format!(
        "  on_init:\n    command: [\"sh\", \"-c\", \"{command}\"]\n    exec_timeout: 10s\n    exit_on_error: {exit_on_error}\n"
    )
}

#[test]
fn on_init_runs_before_the_first_worker_and_its_output_is_logged() {
    require_php!();
    let dir = support::temp_dir();
    let marker = dir.path().join("on-init-marker");
    let server_extra = on_init(
        &format!("echo ON_INIT_RAN; touch {}", marker.display()),
        true,
    );
    let yaml = Yaml {
        server_extra: &server_extra,
        ..Yaml::default()
    };
    let mut rr = RrProcess::start(dir.path(), &yaml.render());
    ok(rr.wait_for(event("READY"), START));
    let position = |needle: &str| {
        rr.lines()
            .iter()
            .position(|l| l.message().is_some_and(|m| m.contains(needle)))
    };
    let (ran, ready) = (position("ON_INIT_RAN"), position("READY"));
    rr.check(
        matches!((ran, ready), (Some(r), Some(w)) if r < w),
        format!("on_init output (line {ran:?}) must come before the first READY (line {ready:?})"),
    );
    rr.check(marker.exists(), "on_init's side effect is there");
    rr.stop_cleanly();
}

#[test]
fn a_failing_on_init_with_exit_on_error_stops_rr_before_any_worker() {
    require_php!();
    let dir = support::temp_dir();
    let server_extra = on_init("echo migration failed >&2; exit 7", true);
    let yaml = Yaml {
        server_extra: &server_extra,
        ..Yaml::default()
    };
    let mut rr = RrProcess::start(dir.path(), &yaml.render());
    rr.expect_quick_failure("a failed on_init is reported at once");
    rr.check(rr.count(event("READY")) == 0, "no worker may start");
    rr.check(
        rr.lines().iter().any(|l| {
            l.text.contains("error:") && l.text.contains("on_init was finished with errors")
        }),
        "the error line names on_init",
    );
}

#[test]
fn a_failing_on_init_without_exit_on_error_is_logged_and_workers_start() {
    require_php!();
    let dir = support::temp_dir();
    let server_extra = on_init("exit 3", false);
    let yaml = Yaml {
        server_extra: &server_extra,
        ..Yaml::default()
    };
    let mut rr = RrProcess::start(dir.path(), &yaml.render());
    ok(rr.wait_for(
        |l| {
            l.message()
                .is_some_and(|m| m.contains("on_init was finished with errors"))
        },
        EVENTUALLY,
    ));
    ok(rr.wait_for(event("READY"), START));
    rr.stop_cleanly();
}
