//! End-to-end: `rr build -c plugins.toml -o DIR` (the custom-plugin builder).
//!
//! The error cases are fast: they fail before anything is compiled (the API
//! check runs `cargo metadata` only). `slow_a_custom_binary_runs_the_out_of_tree_plugin`
//! is the slow one: it compiles a release binary with `logs`, `server` and
//! the out-of-tree `heartbeat` example. It uses this workspace's target
//! directory as the build cache, so with a warm `cargo build --release -p rr`
//! it only compiles the example and the generated `main` and links (about
//! 30 s on 2 cores); from a cold cache it compiles rr's dependencies in
//! release mode once (a few minutes).

use crate::support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use support::{ok, RrProcess, EVENTUALLY, START};

/// Bound for the failing builds (cargo metadata, a git clone that cannot
/// happen).
const QUICK: Duration = Duration::from_secs(60);
/// Bound for a release build with a warm cache (a cold one may need more:
/// see the module's doc).
const BUILD: Duration = Duration::from_secs(900);

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the repository root")
}

/// This test run's target directory (the build cache of `rr build`).
fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("CARGO_TARGET_TMPDIR is target/tmp")
        .to_owned()
}

/// Writes `toml` to `<dir>/plugins.toml` and runs `rr build -c plugins.toml -o out` there.
fn rr_build(dir: &Path, toml: &str, timeout: Duration) -> Output {
    std::fs::write(dir.join("plugins.toml"), toml).expect("write plugins.toml");
    let child = Command::new(env!("CARGO_BIN_EXE_rr"))
        .args(["build", "-c", "plugins.toml", "-o", "out"])
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", target_dir())
        // An unreachable source fails at once instead of after retries.
        .env("CARGO_NET_RETRY", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn rr build");
    let pid = child.id();
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = sender.send(child.wait_with_output());
    });
    match receiver.recv_timeout(timeout) {
        Ok(output) => output.expect("wait for rr build"),
        Err(_) => {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
            panic!("rr build did not finish within {timeout:?}");
        }
    }
}

/// The one `error:` line of a failed `rr build`.
fn build_error(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "rr build should have failed:\n{stderr}"
    );
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert!(
        !errors.is_empty(),
        "no `error:` line in rr build's output:\n{stderr}"
    );
    // cargo's own `error:` lines come first; rr's summary is the last one.
    errors[errors.len() - 1].to_owned()
}

#[test]
fn an_unknown_built_in_is_named_with_the_known_ones() {
    let dir = support::temp_dir();
    let error = build_error(&rr_build(
        dir.path(),
        "[plugins]\nlogs = {}\ngrpc = {}\n",
        QUICK,
    ));
    assert!(error.contains("unknown plugin `grpc`"), "{error}");
    assert!(
        error.contains("logs, rpc, metrics, status, server, ticker"),
        "{error}"
    );
    assert!(!dir.path().join("out/rr").exists());
}

#[test]
fn a_third_party_plugin_without_crate_and_type_is_refused() {
    let dir = support::temp_dir();
    let error = build_error(&rr_build(
        dir.path(),
        "[plugins]\nhb = { version = \"1\" }\n",
        QUICK,
    ));
    assert!(
        error.contains("plugin hb: a third-party plugin needs `crate`"),
        "{error}"
    );
}

#[test]
fn a_missing_path_is_named_relative_to_the_toml_file() {
    let dir = support::temp_dir();
    let error = build_error(&rr_build(
        dir.path(),
        "[plugins]\nhb = { path = \"plugins/nowhere\", crate = \"rr-hb\", type = \"Hb\" }\n",
        QUICK,
    ));
    let expected = format!(
        "plugin hb: path {} does not exist",
        dir.path().join("plugins/nowhere").display()
    );
    assert!(error.contains(&expected), "{error}\nexpected: {expected}");
}

#[test]
fn a_plugin_built_against_another_plugin_api_is_refused_before_compiling() {
    let dir = support::temp_dir();
    let fixture = repo().join("crates/rr/tests/fixtures/old-api-plugin");
    let output = rr_build(
        dir.path(),
        &format!(
            "[plugins]\nlogs = {{}}\nold = {{ path = {:?}, crate = \"rr-old-api\", type = \"OldPlugin\" }}\n",
            fixture.display().to_string()
        ),
        QUICK,
    );
    let error = build_error(&output);
    assert_eq!(
        error,
        format!(
            "error: plugin old is built against rr-plugin 0.99.0, this rr provides {}",
            env!("CARGO_PKG_VERSION")
        )
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("Compiling"),
        "nothing may be compiled:\n{stderr}"
    );
}

#[test]
fn an_unreachable_git_source_is_summarised_in_one_line() {
    let dir = support::temp_dir();
    let error = build_error(&rr_build(
        dir.path(),
        "[plugins]\nhb = { git = \"file:///nonexistent/rr-hb.git\", tag = \"v1\", crate = \"rr-hb\", type = \"Hb\" }\n",
        QUICK,
    ));
    assert!(
        error.starts_with("error: cannot resolve the plugins: plugin hb ("),
        "{error}"
    );
    assert!(error.contains("/nonexistent/rr-hb.git"), "{error}");
}

/// Slow (a release build; see the module's doc): the acceptance journey.
#[test]
fn slow_a_custom_binary_runs_the_out_of_tree_plugin() {
    require_php!();
    let dir = support::temp_dir();
    let heartbeat = repo().join("examples/plugins/heartbeat");
    let output = rr_build(
        dir.path(),
        &format!(
            "[rr]\nversion = \"2026.11.0-e2e\"\n[build]\nargs = [\"--locked\"]\n[plugins]\nlogs = {{}}\nserver = {{}}\nheartbeat = {{ path = {:?}, crate = \"rr-heartbeat\", type = \"HeartbeatPlugin\" }}\n",
            heartbeat.display().to_string()
        ),
        BUILD,
    );
    assert!(
        output.status.success(),
        "rr build failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let binary = dir.path().join("out/rr");

    let version = Command::new(&binary)
        .arg("--version")
        .output()
        .expect("run the built binary");
    let version = String::from_utf8_lossy(&version.stdout);
    assert!(
        version.starts_with("rr 2026.11.0-e2e ")
            && version.contains("plugins: logs, server, heartbeat,"),
        "{version}"
    );
    // rr build smoke-tests the binary and prints the same line.
    assert_eq!(String::from_utf8_lossy(&output.stdout), version);

    let worker = heartbeat.join("worker.php");
    std::fs::write(
        dir.path().join(".rr.yaml"),
        format!(
            "version: '3'\nserver:\n  command: [\"php\", {:?}]\nheartbeat:\n  interval: 100ms\n  message: from-e2e\n  pool:\n    num_workers: 1\n",
            worker.display().to_string()
        ),
    )
    .expect("write .rr.yaml");
    let mut rr = RrProcess::spawn_binary(&binary, dir.path(), &["serve", "-c", ".rr.yaml"]);
    ok(rr.wait_for_line(|l| l.is("rr", "rr server started"), START));
    let beats = ok(rr.wait_for_n(support::event("HEARTBEAT"), 3, EVENTUALLY));
    for (n, line) in (1..).zip(&beats) {
        let beat = line.event().expect("a HEARTBEAT event");
        rr.check(
            beat.num("n") == Some(n) && beat.get("message") == "from-e2e",
            format!("beat {n} should say message=from-e2e: {}", line.text),
        );
    }
    rr.stop_cleanly();
    ok(rr.wait_for_line(|l| l.is("heartbeat", "heartbeat stopped"), EVENTUALLY));
}

/// docs/custom-plugin.md builds `src/lib.rs` from `cat > src/lib.rs` and
/// `cat >> src/lib.rs` heredocs; together they must be the example plugin,
/// which the slow test builds and runs.
#[test]
fn the_tutorial_writes_the_example_plugin_verbatim() {
    let tutorial =
        std::fs::read_to_string(repo().join("docs/custom-plugin.md")).expect("the tutorial");
    let mut written = String::new();
    let mut lines = tutorial.lines();
    while let Some(line) = lines.next() {
        if line == "cat > src/lib.rs <<'EOF'" {
            written.clear();
        } else if line != "cat >> src/lib.rs <<'EOF'" {
            continue;
        }
        for line in lines.by_ref().take_while(|l| *l != "EOF") {
            written.push_str(line);
            written.push('\n');
        }
    }
    let example = std::fs::read_to_string(repo().join("examples/plugins/heartbeat/src/lib.rs"))
        .expect("the example plugin");
    assert!(!written.is_empty(), "no src/lib.rs heredoc in the tutorial");
    assert!(
        written == example,
        "docs/custom-plugin.md and examples/plugins/heartbeat/src/lib.rs differ"
    );
}
