//! End-to-end: invalid configurations stop `rr serve` at once, with a
//! non-zero exit code and an `error:` line naming the key.

use crate::support;

use support::{php_command, RrProcess};

/// Starts rr on `yaml` and checks that it fails within 5 s with an
/// `error:` line containing `needle`. No worker may be needed for this.
fn fails_fast_naming(yaml: &str, needle: &str) {
    let dir = support::temp_dir();
    let mut rr = RrProcess::start(dir.path(), yaml);
    rr.expect_quick_failure("a bad configuration is rejected before any worker starts");
    let errors: Vec<&str> = rr
        .lines()
        .iter()
        .filter(|l| l.stderr)
        .map(|l| l.text.as_str())
        .filter(|t| t.starts_with("error:"))
        .collect();
    rr.check(
        errors.len() == 1,
        format!("expected exactly one line starting with `error:`, got {errors:?}"),
    );
    rr.check(
        errors[0].contains(needle),
        format!("the error should name {needle}"),
    );
}

/// Acceptance 10: no `server.command`.
#[test]
fn a_missing_server_command_is_named() {
    fails_fast_naming(
        "version: \"3\"\nserver:\n  relay: pipes\nticker:\n  interval: 100ms\n",
        "server.command",
    );
}

/// Acceptance 10: a duration that is not one.
#[test]
fn a_bad_ticker_interval_is_named() {
    let yaml = format!(
        "version: \"3\"\nserver:\n  command: {}\nticker:\n  interval: abc\n",
        php_command("ticker.php")
    );
    fails_fast_naming(&yaml, "ticker.interval");
}

/// Acceptance 10: a relay scheme rr does not know.
#[test]
fn an_unknown_relay_scheme_is_named() {
    let yaml = format!(
        "version: \"3\"\nserver:\n  command: {}\n  relay: udp://x:1\nticker:\n  interval: 100ms\n",
        php_command("ticker.php")
    );
    fails_fast_naming(&yaml, "server.relay");
}

/// Acceptance 10: no `version`.
#[test]
fn a_missing_version_is_named() {
    let yaml = format!(
        "server:\n  command: {}\nticker:\n  interval: 100ms\n",
        php_command("ticker.php")
    );
    fails_fast_naming(&yaml, "version");
}
