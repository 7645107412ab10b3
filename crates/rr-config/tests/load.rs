//! `Config::load` on real files: reading, dotenv, includes.

use std::fs;
use std::path::{Path, PathBuf};

use rr_config::{Config, ConfigError, LoadOptions};
use serde_json::json;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    if let Err(e) = fs::write(&path, text) {
        panic!("write {}: {e}", path.display());
    }
    path
}

fn tempdir() -> tempfile::TempDir {
    match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => panic!("tempdir: {e}"),
    }
}

fn load(opts: &LoadOptions) -> Config {
    match Config::load(opts) {
        Ok(c) => c,
        Err(e) => panic!("should load: {e}"),
    }
}

fn load_err(opts: &LoadOptions) -> ConfigError {
    match Config::load(opts) {
        Ok(c) => panic!("should fail: {:?}", c.tree()),
        Err(e) => e,
    }
}

#[test]
fn loads_the_design_document_file() {
    let dir = tempdir();
    let path = write(
        dir.path(),
        ".rr.yaml",
        "version: '2.7'\nserver:\n  command: php app.php\nticker:\n  interval: 1s\n  pool:\n    num_workers: 2\n",
    );
    let cfg = load(&LoadOptions::new(&path));
    assert_eq!(cfg.version(), "2.7");
    assert_eq!(cfg.path(), Some(path.as_path()));
    assert_eq!(cfg.get("ticker.pool.num_workers"), Some(&json!(2)));
}

#[test]
fn missing_file_names_the_path() {
    let dir = tempdir();
    let path = dir.path().join("nope.yaml");
    let e = load_err(&LoadOptions::new(&path));
    let text = e.to_string();
    assert!(
        text.starts_with(&format!(
            "cannot read configuration file \"{}\": ",
            path.display()
        )),
        "{text}"
    );
    assert!(matches!(e, ConfigError::Read { .. }));
}

#[test]
fn yaml_and_empty_errors_name_the_file() {
    let dir = tempdir();
    let path = write(
        dir.path(),
        "bad.yaml",
        "version: '3'\nserver:\n  command: [x\n",
    );
    let text = load_err(&LoadOptions::new(&path)).to_string();
    assert!(
        text.starts_with(&format!("invalid YAML in \"{}\" at line ", path.display())),
        "{text}"
    );
    let path = write(dir.path(), "empty.yaml", "");
    assert_eq!(
        load_err(&LoadOptions::new(&path)).to_string(),
        format!("configuration file is empty in \"{}\"", path.display())
    );
}

#[test]
fn dotenv_file_feeds_expansion_without_overriding() {
    let dir = tempdir();
    std::env::set_var("RR_CONFIG_T_PRESET", "from-process");
    let env = write(
        dir.path(),
        ".env",
        "RR_CONFIG_T_WORKERS=5\nRR_CONFIG_T_PRESET=from-file\n",
    );
    let path = write(
        dir.path(),
        ".rr.yaml",
        "version: '3'\npool:\n  num_workers: ${RR_CONFIG_T_WORKERS:-1}\n  name: $RR_CONFIG_T_PRESET\n",
    );
    let opts = LoadOptions {
        path,
        overrides: vec!["pool.extra=$RR_CONFIG_T_WORKERS".into()],
        dotenv: Some(env),
    };
    let cfg = load(&opts);
    assert_eq!(cfg.get("pool.num_workers"), Some(&json!(5)));
    assert_eq!(cfg.get("pool.name"), Some(&json!("from-process")));
    assert_eq!(cfg.get("pool.extra"), Some(&json!(5)));
}

#[test]
fn missing_dotenv_file_is_an_error() {
    let dir = tempdir();
    let path = write(dir.path(), ".rr.yaml", "version: '3'\n");
    let env = dir.path().join("missing.env");
    let opts = LoadOptions {
        path,
        overrides: vec![],
        dotenv: Some(env.clone()),
    };
    let text = load_err(&opts).to_string();
    assert!(
        text.starts_with(&format!("cannot load dotenv file \"{}\": ", env.display())),
        "{text}"
    );
}

#[test]
fn includes_replace_top_level_keys_later_files_win() {
    let dir = tempdir();
    fs::create_dir(dir.path().join("conf")).ok();
    write(
        dir.path(),
        "conf/a.yaml",
        "version: '3'\nhttp:\n  address: a:80\nlogs:\n  level: info\n",
    );
    write(
        dir.path(),
        "conf/b.yaml",
        "Version: '3'\nLOGS:\n  Mode: ${RR_CONFIG_T_MODE:-production}\n",
    );
    let path = write(
        dir.path(),
        ".rr.yaml",
        "version: '3'\ninclude: [conf/a.yaml, conf/b.yaml]\nhttp:\n  address: root:80\n  pool:\n    num_workers: 2\nlogs:\n  level: debug\nserver:\n  command: php app.php\n",
    );
    let opts = LoadOptions {
        path,
        // Includes are applied after -o (RoadRunner's order): `http` comes from a.yaml.
        overrides: vec!["http.address=flag:80".into(), "server.relay=pipes".into()],
        dotenv: None,
    };
    let cfg = load(&opts);
    // Whole sections are replaced, not merged.
    assert_eq!(cfg.get("http"), Some(&json!({"address": "a:80"})));
    assert_eq!(cfg.get("logs"), Some(&json!({"mode": "production"})));
    // Sections no include touches keep root values and overrides.
    assert_eq!(
        cfg.get("server"),
        Some(&json!({"command": "php app.php", "relay": "pipes"}))
    );
}

#[test]
fn include_as_single_string_and_absolute_path() {
    let dir = tempdir();
    let inc = write(
        dir.path(),
        "inc.yaml",
        "version: '3'\nrpc:\n  listen: tcp://127.0.0.1:6001\n",
    );
    let path = write(
        dir.path(),
        ".rr.yaml",
        &format!("version: '3'\ninclude: {}\n", inc.display()),
    );
    let cfg = load(&LoadOptions::new(&path));
    assert_eq!(cfg.get("rpc.listen"), Some(&json!("tcp://127.0.0.1:6001")));
}

#[test]
fn include_errors() {
    let dir = tempdir();
    write(dir.path(), "v27.yaml", "version: '2.7'\nrpc: {}\n");
    write(dir.path(), "noversion.yaml", "rpc: {}\n");
    write(dir.path(), "intversion.yaml", "version: 3\n");
    let root = |include: &str| {
        let path = write(
            dir.path(),
            ".rr.yaml",
            &format!("version: '3'\ninclude: [{include}]\n"),
        );
        load_err(&LoadOptions::new(path))
    };

    let e = root("v27.yaml");
    assert_eq!(
        e.to_string(),
        "version in included file must be the same as in root"
    );
    assert!(
        matches!(&e, ConfigError::IncludeVersionMismatch { path } if path.ends_with("v27.yaml"))
    );

    assert_eq!(
        root("noversion.yaml").to_string(),
        format!(
            "in included file \"{}\": rr configuration file should contain a version e.g: version: 3",
            dir.path().join("noversion.yaml").display()
        )
    );
    assert!(root("intversion.yaml")
        .to_string()
        .ends_with("version should be a string: `version: \"3\"`, actual type is: int"));

    let e = root("missing.yaml");
    assert!(
        e.to_string().starts_with(&format!(
            "cannot read configuration file \"{}\"",
            dir.path().join("missing.yaml").display()
        )),
        "{e}"
    );
}
