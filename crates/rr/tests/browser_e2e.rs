//! End-to-end in a real browser: headless Chromium submits a multipart form
//! (text fields and two files) to `tests/php/http_form_upload.php` through
//! `rr serve`'s http plugin, driven over the DevTools protocol by
//! `tests/browser/form_upload.php`; every field and file must arrive intact
//! and the uploads' temp files must be gone afterwards.

use std::path::Path;
use std::process::Command;

/// Debian's `chromium` (installed by scripts/setup.sh).
const CHROMIUM: &str = "/usr/bin/chromium";

#[test]
fn chromium_submits_a_multipart_form_with_two_files() {
    require_php!();
    if !Path::new(CHROMIUM).exists() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{CHROMIUM} is missing, and CI=true: run scripts/setup.sh");
        }
        eprintln!("SKIPPED: no {CHROMIUM}; install the chromium package to run this test");
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let output = Command::new("php")
        .arg(root.join("tests/browser/form_upload.php"))
        .env("RR_BIN", env!("CARGO_BIN_EXE_rr"))
        .env("CHROMIUM", CHROMIUM)
        .current_dir(&root)
        .output()
        .unwrap_or_else(|e| panic!("cannot run php: {e}"));
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success() && report.contains(" passed, 0 failed"),
        "the browser test failed ({:?}):\n{report}",
        output.status
    );
}
