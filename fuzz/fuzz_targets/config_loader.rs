//! Arbitrary bytes through the whole rr-config pipeline (parse, lower-case,
//! env expansion, `-o` overrides, version check) and typed section decoding.
//! Must never panic; errors are fine.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rr_config::{Config, StringOrList};

/// A fixed environment so runs are reproducible.
fn env(name: &str) -> Option<String> {
    match name {
        "HOST" => Some("127.0.0.1".into()),
        "PORT" => Some("8080".into()),
        "WORKERS" => Some("4".into()),
        "EMPTY" => Some(String::new()),
        "DOLLAR" => Some("$HOST".into()),
        _ => None,
    }
}

#[derive(serde::Deserialize, Debug, Default)]
#[serde(default)]
#[allow(dead_code)]
struct Pool {
    num_workers: u32,
    max_jobs: u64,
    #[serde(deserialize_with = "rr_config::duration::non_negative")]
    allocate_timeout: std::time::Duration,
    #[serde(deserialize_with = "rr_config::duration::option_non_negative")]
    ttl: Option<std::time::Duration>,
    command: Option<StringOrList>,
    env: std::collections::HashMap<String, String>,
    debug: bool,
    ratio: f64,
    list: Vec<String>,
}

fuzz_target!(|data: &[u8]| {
    let Ok(yaml) = std::str::from_utf8(data) else {
        return;
    };
    // Keep `include` out: it reads files (`/dev/zero` would never end).
    // Keys are lower-cased, and escapes or `!!binary` could spell the key too.
    if yaml.to_lowercase().contains("include") || yaml.contains('\\') || yaml.contains("binary") {
        return;
    }
    let overrides = [
        "ticker.pool.num_workers=${WORKERS:-2}".to_owned(),
        "server.command=\"php app.php\"".to_owned(),
        "http.address=${HOST}:$PORT".to_owned(),
    ];
    for overrides in [&overrides[..], &[]] {
        if let Ok(cfg) = Config::from_yaml_str_with_env(yaml, overrides, &env) {
            let _ = cfg.version();
            let _ = cfg.has("ticker.pool");
            let _ = cfg.section::<Pool>("ticker.pool");
            let _ = cfg.section::<Pool>("");
            let _ = cfg.section::<StringOrList>("server.command");
            let _ = cfg.section::<serde_json::Value>("http");
            let _ = cfg.endure();
            let _ = cfg.integer_duration_warnings("ticker.pool", &["allocate_timeout", "ttl"]);
        }
    }
});
