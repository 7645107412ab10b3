//! Pipeline tests on YAML strings (file loading is in `tests/load.rs`).

use std::collections::HashMap;
use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

use crate::{Config, ConfigError, StringOrList};

const DESIGN_DOC: &str = "version: '2.7'
server:
  command: php app.php
ticker:
  interval: 1s
  pool:
    num_workers: 2
";

fn env(name: &str) -> Option<String> {
    match name {
        "WORKERS" => Some("6".into()),
        "HOST" => Some("127.0.0.1".into()),
        "EMPTY" => Some(String::new()),
        "RATIO" => Some("0.5".into()),
        "FLAG" => Some("true".into()),
        "WORD" => Some("yes".into()),
        "BIG" => Some("99999999999999999999999".into()),
        "V" => Some("3".into()),
        _ => None,
    }
}

fn load(yaml: &str, overrides: &[&str]) -> Result<Config, ConfigError> {
    let overrides: Vec<String> = overrides.iter().map(|s| (*s).to_owned()).collect();
    Config::from_yaml_str_with_env(yaml, &overrides, &env)
}

fn ok(yaml: &str, overrides: &[&str]) -> Config {
    match load(yaml, overrides) {
        Ok(c) => c,
        Err(e) => panic!("config should load: {e}"),
    }
}

fn err(yaml: &str, overrides: &[&str]) -> String {
    match load(yaml, overrides) {
        Ok(c) => panic!("config should fail: {:?}", c.tree()),
        Err(e) => e.to_string(),
    }
}

#[derive(Deserialize, Debug, PartialEq)]
#[serde(default)]
struct Pool {
    num_workers: u32,
    max_jobs: u64,
    #[serde(deserialize_with = "crate::duration::non_negative")]
    allocate_timeout: Duration,
}

impl Default for Pool {
    fn default() -> Self {
        Pool {
            num_workers: 0,
            max_jobs: 0,
            allocate_timeout: Duration::from_secs(60),
        }
    }
}

#[derive(Deserialize, Debug, PartialEq)]
#[serde(default)]
struct Ticker {
    #[serde(deserialize_with = "crate::duration::non_negative")]
    interval: Duration,
    pool: Pool,
}

impl Default for Ticker {
    fn default() -> Self {
        Ticker {
            interval: Duration::from_secs(1),
            pool: Pool::default(),
        }
    }
}

#[derive(Deserialize, Debug, PartialEq)]
struct Server {
    command: StringOrList,
    #[serde(default)]
    env: HashMap<String, String>,
    #[serde(default = "pipes")]
    relay: String,
}

fn pipes() -> String {
    "pipes".into()
}

#[test]
fn design_document_file_loads() {
    let cfg = ok(DESIGN_DOC, &[]);
    assert_eq!(cfg.version(), "2.7");
    assert_eq!(
        cfg.deprecation_notices(),
        ["configuration version \"2.7\" is deprecated, please update to version: \"3\""]
    );
    assert!(cfg.has("server") && cfg.has("ticker") && cfg.has("ticker.pool.num_workers"));
    assert!(!cfg.has("http") && !cfg.has("server.relay"));
    let server: Server = cfg.section("server").expect("server");
    assert_eq!(server.command.0, ["php", "app.php"]);
    assert_eq!(server.relay, "pipes");
    let ticker: Ticker = cfg.section("ticker").expect("ticker");
    assert_eq!(ticker.interval, Duration::from_secs(1));
    assert_eq!(ticker.pool.num_workers, 2);
    assert_eq!(ticker.pool.allocate_timeout, Duration::from_secs(60));
    assert_eq!(cfg.get("ticker.interval"), Some(&json!("1s")));
    assert!(cfg.path().is_none());
}

#[test]
fn version_3_loads_without_notice() {
    for yaml in ["version: '3'\n", "version: \"3\"\n", "version: !!str 3\n"] {
        let cfg = ok(yaml, &[]);
        assert_eq!(cfg.version(), "3");
        assert!(cfg.deprecation_notices().is_empty());
    }
    assert_eq!(ok("version: '2.10'\n", &[]).version(), "2.10");
}

#[test]
fn version_errors() {
    assert_eq!(
        err("server:\n  command: x\n", &[]),
        "rr configuration file should contain a version e.g: version: 3"
    );
    assert_eq!(
        err("version:\n", &[]),
        "rr configuration file should contain a version e.g: version: 3"
    );
    assert_eq!(
        err("version: 3\n", &[]),
        "version should be a string: `version: \"3\"`, actual type is: int"
    );
    assert_eq!(
        err("version: 2.7\n", &[]),
        "version should be a string: `version: \"3\"`, actual type is: float"
    );
    assert_eq!(
        err("version: true\n", &[]),
        "version should be a string: `version: \"3\"`, actual type is: bool"
    );
    assert_eq!(
        err("version: [3]\n", &[]),
        "version should be a string: `version: \"3\"`, actual type is: list"
    );
    assert_eq!(
        err("version: {a: 1}\n", &[]),
        "version should be a string: `version: \"3\"`, actual type is: map"
    );
    for bad in ["'4'", "'2'", "'2.'", "'2.x'", "'3.0'", "''", "' 3'", "'v3'"] {
        let version = bad.trim_matches('\'');
        assert_eq!(
            err(&format!("version: {bad}\n"), &[]),
            format!(
                "unsupported configuration version \"{version}\": supported versions are \"3\" and \"2.7\" (2.x)"
            )
        );
    }
}

#[test]
fn version_is_expanded_but_stays_a_string() {
    assert_eq!(ok("version: ${V}\n", &[]).version(), "3");
    assert_eq!(ok("version: ${NOPE:-3}\n", &[]).version(), "3");
    // `-o version=3` is a string, as in RoadRunner.
    assert_eq!(ok("version: '2.7'\n", &["version=3"]).version(), "3");
    assert_eq!(
        err("version: '3'\n", &["version=4"]),
        "unsupported configuration version \"4\": supported versions are \"3\" and \"2.7\" (2.x)"
    );
}

#[test]
fn empty_and_malformed_files() {
    assert_eq!(err("", &[]), "configuration file is empty");
    assert_eq!(err("  \n\n", &[]), "configuration file is empty");
    assert_eq!(
        err("# just a comment\n", &[]),
        "configuration file is empty"
    );
    assert_eq!(
        err("version: '3'\nserver: [a, b\n", &[]),
        "invalid YAML at line 2, column 9: unclosed bracket '['"
    );
    match load("version: '3'\nserver: [a, b\n", &[]) {
        Err(ConfigError::Yaml { line, column, .. }) => assert_eq!((line, column), (2, 9)),
        other => panic!("unexpected {other:?}"),
    }
    assert!(err("a: 1\na: 2\n", &[]).contains("duplicate mapping key"));
    assert_eq!(
        err("- a\n- b\n", &[]),
        "configuration file must contain a map of keys at the top level, found a list"
    );
}

#[test]
fn yaml_1_2_booleans() {
    let cfg = ok(
        "version: '3'\na: yes\nb: no\nc: on\nd: off\ne: y\nf: true\ng: False\nh: TRUE\n",
        &[],
    );
    let tree = cfg.tree();
    assert_eq!(tree["a"], json!("yes"));
    assert_eq!(tree["b"], json!("no"));
    assert_eq!(tree["c"], json!("on"));
    assert_eq!(tree["d"], json!("off"));
    assert_eq!(tree["e"], json!("y"));
    assert_eq!(tree["f"], json!(true));
    assert_eq!(tree["g"], json!(false));
    assert_eq!(tree["h"], json!(true));
}

#[test]
fn other_yaml_scalars_follow_go_yaml_v3() {
    let cfg = ok(
        "version: '3'\noctal: 0755\nhex: 0x1F\nunder: 1_000\ninf: .inf\nnull1: ~\nnull2: null\nfloat: 1.5\n",
        &[],
    );
    let tree = cfg.tree();
    assert_eq!(tree["octal"], json!(493));
    assert_eq!(tree["hex"], json!(31));
    assert_eq!(tree["under"], json!(1000));
    assert_eq!(tree["inf"], json!(".inf"));
    assert_eq!(tree["null1"], json!(null));
    assert_eq!(tree["null2"], json!(null));
    assert_eq!(tree["float"], json!(1.5));
}

#[test]
fn anchors_and_merge_keys() {
    let cfg = ok(
        "version: '3'\nbase: &pool {num_workers: 3, max_jobs: 10}\nhttp:\n  pool:\n    <<: *pool\n    max_jobs: 20\n",
        &[],
    );
    let pool: Pool = cfg.section("http.pool").expect("pool");
    assert_eq!((pool.num_workers, pool.max_jobs), (3, 20));
}

#[test]
fn keys_are_case_insensitive() {
    let cfg = ok(
        "Version: '3'\nTicker:\n  Interval: 5s\n  POOL:\n    Num_Workers: 3\n",
        &[],
    );
    assert!(cfg.has("ticker") && cfg.has("TICKER.pool") && cfg.has("Ticker.Pool.NUM_WORKERS"));
    assert_eq!(cfg.get("ticker.pool.num_workers"), Some(&json!(3)));
    let ticker: Ticker = cfg.section("TICKER").expect("ticker");
    assert_eq!(ticker.interval, Duration::from_secs(5));
    assert_eq!(ticker.pool.num_workers, 3);
    // Values keep their case.
    let cfg = ok("version: '3'\nserver:\n  command: PHP App.php\n", &[]);
    assert_eq!(cfg.get("server.command"), Some(&json!("PHP App.php")));
}

#[test]
fn env_expansion() {
    let cfg = ok(
        "version: '3'
a: $HOST
b: ${HOST}:8080
c: ${UNSET:-fallback}
d: ${EMPTY:-fallback}
e: ${UNSET}
f: 'price: 5$'
g: [$HOST, '${UNSET:-x}', 3]
h: {i: [{j: $HOST}]}
k: tcp://${HOST}:${PORT:-6001}
",
        &[],
    );
    let t = cfg.tree();
    assert_eq!(t["a"], json!("127.0.0.1"));
    assert_eq!(t["b"], json!("127.0.0.1:8080"));
    assert_eq!(t["c"], json!("fallback"));
    assert_eq!(t["d"], json!("fallback"));
    assert_eq!(t["e"], json!(""));
    assert_eq!(t["f"], json!("price: 5$"));
    assert_eq!(t["g"], json!(["127.0.0.1", "x", 3]));
    assert_eq!(t["h"], json!({"i": [{"j": "127.0.0.1"}]}));
    assert_eq!(t["k"], json!("tcp://127.0.0.1:6001"));
}

#[test]
fn env_expansion_retypes_changed_scalars() {
    let cfg = ok(
        "version: '3'
workers: ${WORKERS:-4}
default_workers: ${UNSET:-4}
ratio: $RATIO
flag: ${FLAG}
word: ${WORD}
big: ${BIG}
neg: ${UNSET:--1}
quoted_literal: '4'
in_text: ${WORKERS} workers
list: [$WORKERS, '${FLAG}']
",
        &[],
    );
    let t = cfg.tree();
    assert_eq!(t["workers"], json!(6));
    assert_eq!(t["default_workers"], json!(4));
    assert_eq!(t["ratio"], json!(0.5));
    assert_eq!(t["flag"], json!(true));
    assert_eq!(t["word"], json!("yes"));
    assert_eq!(t["big"], json!("99999999999999999999999"));
    assert_eq!(t["neg"], json!(-1));
    assert_eq!(
        t["quoted_literal"],
        json!("4"),
        "not changed by expansion: stays a string"
    );
    assert_eq!(t["in_text"], json!("6 workers"));
    assert_eq!(t["list"], json!([6, true]));

    let cfg = ok(
        "version: '3'\nticker:\n  pool:\n    num_workers: ${WORKERS:-4}\n",
        &[],
    );
    let ticker: Ticker = cfg.section("ticker").expect("ticker");
    assert_eq!(ticker.pool.num_workers, 6);
}

#[test]
fn retyped_numbers_still_fit_string_fields() {
    // `env` maps are strings in RoadRunner; weak decoding turns numbers back into text.
    let cfg = ok(
        "version: '3'\nserver:\n  command: [php, app.php]\n  env:\n    WORKERS: ${WORKERS}\n    DEBUG: true\n    RATIO: 0.5\n",
        &[],
    );
    let server: Server = cfg.section("server").expect("server");
    assert_eq!(server.env.get("workers").map(String::as_str), Some("6"));
    assert_eq!(server.env.get("debug").map(String::as_str), Some("1"));
    assert_eq!(server.env.get("ratio").map(String::as_str), Some("0.5"));
}

#[test]
fn overrides() {
    let cfg = ok(
        DESIGN_DOC,
        &[
            "ticker.pool.num_workers=4",
            "ticker.interval=500ms",
            "server.command=\"php other.php\"",
            "http.address=127.0.0.1:8080",
            "Logs.Level=debug",
            "rpc.listen=tcp://${HOST}:6001",
        ],
    );
    assert_eq!(cfg.get("ticker.pool.num_workers"), Some(&json!(4)));
    assert_eq!(cfg.get("ticker.interval"), Some(&json!("500ms")));
    assert_eq!(cfg.get("server.command"), Some(&json!("php other.php")));
    assert_eq!(cfg.get("http"), Some(&json!({"address": "127.0.0.1:8080"})));
    assert_eq!(cfg.get("logs.level"), Some(&json!("debug")));
    assert_eq!(cfg.get("rpc.listen"), Some(&json!("tcp://127.0.0.1:6001")));
    let ticker: Ticker = cfg.section("ticker").expect("ticker");
    assert_eq!(ticker.interval, Duration::from_millis(500));
    assert_eq!(ticker.pool.num_workers, 4);
    // Other keys of the touched sections survive.
    assert_eq!(
        cfg.get("server"),
        Some(&json!({"command": "php other.php"}))
    );

    // A scalar in the way is replaced by a map; later flags win.
    let cfg = ok(DESIGN_DOC, &["server.command.x=1", "a=1", "a=2"]);
    assert_eq!(cfg.get("server.command"), Some(&json!({"x": 1})));
    assert_eq!(cfg.get("a"), Some(&json!(2)));
}

#[test]
fn override_errors() {
    assert_eq!(
        err(DESIGN_DOC, &["ticker.interval"]),
        "invalid flag `ticker.interval`"
    );
    assert_eq!(err(DESIGN_DOC, &["=1s"]), "key should not be empty");
    assert_eq!(
        err(DESIGN_DOC, &["ticker.interval="]),
        "value should not be empty"
    );
}

#[test]
fn section_present_but_empty() {
    let cfg = ok("version: '3'\nticker:\nhttp: {}\n", &[]);
    assert!(cfg.has("ticker"));
    assert!(cfg.has("http"));
    assert_eq!(cfg.get("ticker"), Some(&json!(null)));
    assert_eq!(
        cfg.section::<Ticker>("ticker").expect("defaults"),
        Ticker::default()
    );
    assert_eq!(
        cfg.section::<Ticker>("http").expect("defaults"),
        Ticker::default()
    );
    assert_eq!(
        cfg.section::<Ticker>("absent").expect("defaults"),
        Ticker::default()
    );
    // A null key inside a section keeps the default too.
    let cfg = ok("version: '3'\nticker:\n  interval:\n  pool:\n", &[]);
    assert_eq!(
        cfg.section::<Ticker>("ticker").expect("defaults"),
        Ticker::default()
    );
}

#[test]
fn typed_section_errors_name_the_full_key() {
    let cfg = ok("version: '3'\nticker:\n  interval: abc\n", &[]);
    let e = cfg.section::<Ticker>("ticker").err().map(|e| e.to_string());
    assert_eq!(
        e.as_deref(),
        Some("invalid value at `ticker.interval`: invalid duration \"abc\": expected a Go duration such as 500ms, 1s, 1m30s or 1h")
    );

    let cfg = ok(
        "version: '3'\nticker:\n  pool:\n    num_workers: many\n",
        &[],
    );
    match cfg.section::<Ticker>("ticker") {
        Err(ConfigError::Invalid { key, message }) => {
            assert_eq!(key, "ticker.pool.num_workers");
            assert_eq!(message, "invalid type: string \"many\", expected u32");
        }
        other => panic!("unexpected {other:?}"),
    }
    // Reading the nested section directly names the same path.
    let e = cfg
        .section::<Pool>("ticker.pool")
        .err()
        .and_then(|e| e.key().map(str::to_owned));
    assert_eq!(e.as_deref(), Some("ticker.pool.num_workers"));

    let cfg = ok("version: '3'\nticker:\n  pool:\n    num_workers: -1\n", &[]);
    let e = cfg.section::<Ticker>("ticker").err().map(|e| e.to_string());
    assert_eq!(
        e.as_deref(),
        Some(
            "invalid value at `ticker.pool.num_workers`: invalid value: integer `-1`, expected u32"
        )
    );

    let cfg = ok("version: '3'\nticker: 5\n", &[]);
    let e = cfg.section::<Ticker>("ticker").err().map(|e| e.to_string());
    assert_eq!(
        e.as_deref(),
        Some("invalid value at `ticker`: invalid type: integer `5`, expected struct Ticker")
    );

    let cfg = ok("version: '3'\nserver:\n  relay: pipes\n", &[]);
    let e = cfg.section::<Server>("server").err().map(|e| e.to_string());
    assert_eq!(
        e.as_deref(),
        Some("missing value at `server.command`: this key is required")
    );

    let cfg = ok(
        "version: '3'\nlist:\n  - {interval: 1s}\n  - {interval: x}\n",
        &[],
    );
    let e = cfg
        .section::<Vec<Ticker>>("list")
        .err()
        .and_then(|e| e.key().map(str::to_owned));
    assert_eq!(e.as_deref(), Some("list[1].interval"));
}

#[test]
fn weakly_typed_values_like_roadrunner() {
    let cfg = ok(
        "version: '3'\nticker:\n  interval: '2s'\n  pool:\n    num_workers: '3'\n    max_jobs: ''\n",
        &[],
    );
    let ticker: Ticker = cfg.section("ticker").expect("ticker");
    assert_eq!(ticker.pool.num_workers, 3);
    assert_eq!(ticker.pool.max_jobs, 0);
    assert_eq!(ticker.interval, Duration::from_secs(2));
}

#[test]
fn integer_durations_are_nanoseconds_and_reported() {
    let cfg = ok("version: '3'\nhttp:\n  pool:\n    allocate_timeout: 60\n    reset_timeout: 0\n    destroy_timeout: 5s\n", &[]);
    let pool: Pool = cfg.section("http.pool").expect("pool");
    assert_eq!(pool.allocate_timeout, Duration::from_nanos(60));
    let warnings = cfg.integer_duration_warnings(
        "http.pool",
        &[
            "allocate_timeout",
            "reset_timeout",
            "destroy_timeout",
            "supervisor.ttl",
        ],
    );
    assert_eq!(warnings.len(), 1);
    assert!(warnings[0].starts_with("`http.pool.allocate_timeout: 60` is read as 60 nanoseconds"));
}

#[test]
fn endure_section_is_read_raw() {
    let cfg = ok(DESIGN_DOC, &[]);
    assert_eq!(
        cfg.endure().expect("defaults"),
        crate::EndureConfig::default()
    );
    assert_eq!(
        cfg.endure().expect("defaults").grace_period,
        Duration::from_secs(30)
    );
    assert_eq!(cfg.endure().expect("defaults").log_level, "error");

    let cfg = ok(
        "version: '3'\nendure:\n  grace_period: 5s\n  print_graph: true\n  log_level: ${LEVEL:-debug}\n",
        &["endure.grace_period=10s"],
    );
    let endure = cfg.endure().expect("endure");
    assert_eq!(
        endure.grace_period,
        Duration::from_secs(5),
        "-o does not apply"
    );
    assert!(endure.print_graph);
    assert_eq!(endure.log_level, "${LEVEL:-debug}", "no env expansion");
    assert_eq!(endure.effective_log_level(), ("error", false));

    let cfg = ok("version: '3'\nendure:\n  grace_period: soon\n", &[]);
    let e = cfg.endure().err().map(|e| e.to_string());
    assert_eq!(
        e.as_deref(),
        Some("invalid value at `endure.grace_period`: invalid duration \"soon\": expected a Go duration such as 500ms, 1s, 1m30s or 1h")
    );
}

#[test]
fn include_type_errors() {
    assert_eq!(
        err("version: '3'\ninclude: {a: b}\n", &[]),
        "include should be a string or a list of strings"
    );
    assert_eq!(
        err("version: '3'\ninclude: [[a]]\n", &[]),
        "include should be a string or a list of strings"
    );
    assert!(ok("version: '3'\ninclude: []\n", &[]).has("include"));
    assert!(ok("version: '3'\ninclude:\n", &[]).has("include"));
}

#[test]
fn process_env_is_used_by_from_yaml_str() {
    std::env::set_var("RR_CONFIG_TEST_PROCESS_ENV", "42");
    let cfg = Config::from_yaml_str("version: '3'\na: $RR_CONFIG_TEST_PROCESS_ENV\n", &[])
        .expect("loads");
    assert_eq!(cfg.get("a"), Some(&json!(42)));
}

#[test]
fn get_and_has_edge_cases() {
    let cfg = ok(DESIGN_DOC, &[]);
    assert!(cfg.has(""));
    assert_eq!(cfg.get(""), Some(cfg.tree()));
    assert!(!cfg.has("server.command.x"));
    assert!(!cfg.has("ticker..pool"));
    assert!(!cfg.has("."));
}
