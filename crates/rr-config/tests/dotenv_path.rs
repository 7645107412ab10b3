//! `DOTENV_PATH` wins over `--dotenv`. Its own test binary: it sets a process-wide variable.

use std::fs;

use rr_config::{Config, LoadOptions};
use serde_json::json;

#[test]
fn dotenv_path_env_overrides_the_flag() {
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => panic!("tempdir: {e}"),
    };
    let flag_env = dir.path().join("flag.env");
    let env_env = dir.path().join("env.env");
    let config = dir.path().join(".rr.yaml");
    for (path, text) in [
        (&flag_env, "RR_CONFIG_T_SOURCE=flag\n"),
        (&env_env, "RR_CONFIG_T_SOURCE=env\n"),
        (&config, "version: '3'\nsource: $RR_CONFIG_T_SOURCE\n"),
    ] {
        if let Err(e) = fs::write(path, text) {
            panic!("write: {e}");
        }
    }
    std::env::set_var("DOTENV_PATH", &env_env);
    let opts = LoadOptions {
        path: config,
        overrides: vec![],
        dotenv: Some(flag_env),
    };
    let cfg = match Config::load(&opts) {
        Ok(c) => c,
        Err(e) => panic!("load: {e}"),
    };
    assert_eq!(cfg.get("source"), Some(&json!("env")));
}
