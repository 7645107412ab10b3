//! Loading pipeline and the [`Config`] tree.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::duration::is_integer_nanos;
use crate::endure::EndureConfig;
use crate::error::ConfigError;
use crate::expand::{expand, process_env};
use crate::overrides::parse_override;
use crate::tree::{self, expand_env, lowercase_keys, type_name};
use crate::weak::Weak;

const VERSION_KEY: &str = "version";
const INCLUDE_KEY: &str = "include";
const ENDURE_KEY: &str = "endure";

/// What [`Config::load`] reads.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// The configuration file (`-c`, default `.rr.yaml`).
    pub path: PathBuf,
    /// `-o key.path=value` overrides, in command-line order.
    pub overrides: Vec<String>,
    /// `--dotenv` file; the `DOTENV_PATH` environment variable wins over it.
    pub dotenv: Option<PathBuf>,
}

impl LoadOptions {
    /// Options for `path` without overrides or dotenv file.
    pub fn new(path: impl Into<PathBuf>) -> LoadOptions {
        LoadOptions {
            path: path.into(),
            ..LoadOptions::default()
        }
    }
}

/// A loaded configuration: the tree after env expansion, overrides and
/// includes, with every map key lower-cased.
///
/// Plugins ask [`Config::has`] whether their top-level key is present (that
/// is how RoadRunner enables a plugin) and read their settings with
/// [`Config::section`].
#[derive(Clone, Debug)]
pub struct Config {
    tree: Value,
    version: String,
    path: Option<PathBuf>,
    notices: Vec<String>,
    raw_endure: Option<Value>,
}

impl Config {
    /// Loads `opts.path` the way RoadRunner does:
    ///
    /// 1. the dotenv file (`DOTENV_PATH`, else `opts.dotenv`) is loaded into the
    ///    process environment; variables already set are not overridden;
    /// 2. the YAML is parsed (YAML 1.2 scalars: `yes`/`on` stay strings);
    /// 3. map keys are lower-cased;
    /// 4. `$NAME`, `${NAME}`, `${NAME:-default}` are expanded in string values;
    /// 5. `-o` overrides are applied;
    /// 6. `version` is checked;
    /// 7. `include` files are merged: each top-level key of an included file
    ///    replaces the root's. Includes come *after* the overrides, as in
    ///    RoadRunner, so an included file wins over `-o` for the same section.
    pub fn load(opts: &LoadOptions) -> Result<Config, ConfigError> {
        let dotenv = std::env::var_os("DOTENV_PATH")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| opts.dotenv.clone());
        if let Some(path) = dotenv {
            dotenvy::from_path(&path).map_err(|e| ConfigError::Dotenv {
                message: e.to_string(),
                path,
            })?;
        }
        let text = read_file(&opts.path)?;
        build(&text, Some(&opts.path), &opts.overrides, &process_env)
    }

    /// Runs the pipeline (steps 2–7 of [`Config::load`]) on a YAML string,
    /// expanding variables from the process environment. Relative `include`
    /// paths are resolved against the current directory.
    pub fn from_yaml_str(yaml: &str, overrides: &[String]) -> Result<Config, ConfigError> {
        build(yaml, None, overrides, &process_env)
    }

    /// Like [`Config::from_yaml_str`], with variables looked up in `env`
    /// (`None` = unset), for deterministic tests.
    pub fn from_yaml_str_with_env(
        yaml: &str,
        overrides: &[String],
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        build(yaml, None, overrides, env)
    }

    /// The `version` value (`"3"`, or a deprecated `"2.x"`).
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The file this configuration was loaded from, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Notices the binary should log (e.g. a deprecated `version: "2.7"`).
    /// The library never prints.
    pub fn deprecation_notices(&self) -> &[String] {
        &self.notices
    }

    /// Whether a dotted key (case-insensitive) is present, e.g. `"ticker"` or
    /// `"server.relay"`. A key whose value is `null` (`ticker:` with nothing
    /// under it) or an empty map is present. `""` is the root and always present.
    pub fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// The value at a dotted key (case-insensitive); `""` is the whole tree.
    pub fn get(&self, key: &str) -> Option<&Value> {
        tree::lookup(&self.tree, &tree::segments(key))
    }

    /// Deserializes the section at `key` into `T`.
    ///
    /// An absent key or a `null` value reads as an empty map, so a
    /// `#[serde(default)]` struct gets its defaults. Decoding is weakly typed
    /// like RoadRunner's (`"4"` fits an integer, `8080` fits a string, a
    /// string fits a list by splitting on commas, `null` map values are
    /// skipped so defaults apply); see [weak decoding](crate#weak-decoding).
    /// Errors name the full key path:
    /// ``invalid value at `ticker.pool.num_workers`: invalid type: string "x", expected u32``,
    /// and a missing required field is reported as
    /// ``missing value at `server.command`: this key is required``.
    pub fn section<T: DeserializeOwned>(&self, key: &str) -> Result<T, ConfigError> {
        let empty = Value::Object(Map::new());
        let value = match self.get(key) {
            None | Some(Value::Null) => &empty,
            Some(v) => v,
        };
        serde_path_to_error::deserialize(Weak(value)).map_err(|err| {
            let path = err.path().to_string();
            let full = join_key(key, &path);
            let message = err.into_inner().to_string();
            match missing_field(&message) {
                Some(field) => ConfigError::Missing {
                    key: join_key(&full, field),
                    message: "this key is required".to_owned(),
                },
                None => ConfigError::Invalid { key: full, message },
            }
        })
    }

    /// The whole tree (a JSON object; keys lower-cased).
    pub fn tree(&self) -> &Value {
        &self.tree
    }

    /// The `endure` section. Like RoadRunner's CLI, it is taken from the file
    /// as written: no env expansion, `-o` overrides or includes apply.
    pub fn endure(&self) -> Result<EndureConfig, ConfigError> {
        match &self.raw_endure {
            None | Some(Value::Null) => Ok(EndureConfig::default()),
            Some(v) => {
                serde_path_to_error::deserialize(Weak(v)).map_err(|err| ConfigError::Invalid {
                    key: join_key(ENDURE_KEY, &err.path().to_string()),
                    message: err.into_inner().to_string(),
                })
            }
        }
    }

    /// Warnings for duration keys under `key` written as bare integers, which
    /// RoadRunner reads as **nanoseconds** (`allocate_timeout: 60` is 60 ns).
    /// `fields` are dotted paths relative to `key`, e.g.
    /// `config.integer_duration_warnings("http.pool", &["allocate_timeout", "supervisor.ttl"])`.
    /// Zero is not reported.
    pub fn integer_duration_warnings(&self, key: &str, fields: &[&str]) -> Vec<String> {
        fields
            .iter()
            .filter_map(|field| {
                let full = join_key(key, field);
                let value = self.get(&full)?;
                if !is_integer_nanos(value) || value.as_u64() == Some(0) {
                    return None;
                }
                Some(format!(
                    "`{full}: {value}` is read as {value} nanoseconds; add a unit (e.g. {value}s or {value}ms) if that is not what you meant"
                ))
            })
            .collect()
    }
}

/// Joins a section key and a serde path (`.` = the section itself; `[0]` = an index).
fn join_key(key: &str, path: &str) -> String {
    if path.is_empty() || path == "." {
        key.to_owned()
    } else if key.is_empty() {
        path.to_owned()
    } else if path.starts_with('[') {
        format!("{key}{path}")
    } else {
        format!("{key}.{path}")
    }
}

/// Extracts `x` from serde's "missing field `x`" message.
fn missing_field(message: &str) -> Option<&str> {
    message.strip_prefix("missing field `")?.strip_suffix('`')
}

fn read_file(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })
}

/// The pipeline after reading the file (steps 2–7 of [`Config::load`]).
fn build(
    yaml: &str,
    file: Option<&Path>,
    overrides: &[String],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let mut root = parse_yaml(yaml, file)?;
    let raw_endure = root.get(ENDURE_KEY).cloned();
    expand_document(&mut root, env);

    for flag in overrides {
        let o = parse_override(flag, env)?;
        tree::set(&mut root, &o.segments, o.value);
    }

    let version = check_version(root.get(VERSION_KEY))?;
    let mut notices = Vec::new();
    if version != "3" {
        notices.push(format!(
            "configuration version \"{version}\" is deprecated, please update to version: \"3\""
        ));
    }

    let base = file.and_then(Path::parent).unwrap_or(Path::new(""));
    for name in include_list(root.get(INCLUDE_KEY))? {
        let path = base.join(&name);
        let included = load_included(&path, &version, env)?;
        // Top-level keys replace the root's whole value (viper `Set`): no deep merge.
        root.extend(included);
    }

    Ok(Config {
        tree: Value::Object(root),
        version,
        path: file.map(Path::to_owned),
        notices,
        raw_endure,
    })
}

/// Parses YAML into a lower-cased map. Empty or comment-only input is
/// [`ConfigError::Empty`]; a non-map document is [`ConfigError::NotAMap`].
fn parse_yaml(yaml: &str, file: Option<&Path>) -> Result<Map<String, Value>, ConfigError> {
    let file_buf = || file.map(Path::to_owned);
    if yaml.trim().is_empty() {
        return Err(ConfigError::Empty { file: file_buf() });
    }
    let mut options = serde_saphyr::options::Options::default();
    // YAML 1.2 core booleans only (Go yaml.v3): `yes`, `on`, `off`, `y` stay strings.
    options.strict_booleans = true;
    // yaml.v3 resolves `0755` with Go's base-0 ParseInt, i.e. as octal.
    options.legacy_octal_numbers = true;
    // `.inf`/`.nan` cannot live in a JSON tree: keep them as strings.
    options.non_finite_float_policy = serde_saphyr::options::NonFiniteFloatPolicy::AsString;
    // Our error message carries the position; no multi-line source snippet.
    options.with_snippet = false;

    let value: Value = serde_saphyr::from_str_with_options(yaml, options).map_err(|e| {
        let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
        let mut message = e.to_string();
        let suffix = format!(" at line {line}, column {column}");
        if let Some(stripped) = message.strip_suffix(&suffix) {
            message = stripped.to_owned();
        }
        ConfigError::Yaml {
            file: file_buf(),
            line,
            column,
            message,
        }
    })?;
    match lowercase_keys(value) {
        Value::Object(map) => Ok(map),
        Value::Null => Err(ConfigError::Empty { file: file_buf() }),
        other => Err(ConfigError::NotAMap {
            file: file_buf(),
            found: type_name(&other),
        }),
    }
}

/// Env-expands a document. `version` is expanded but never re-typed (it must
/// stay a string; RoadRunner keeps it one).
fn expand_document(root: &mut Map<String, Value>, env: &dyn Fn(&str) -> Option<String>) {
    let version = root.remove(VERSION_KEY);
    for value in root.values_mut() {
        expand_env(value, env);
    }
    if let Some(mut version) = version {
        if let Value::String(s) = &version {
            if let Some(expanded) = expand(s, env) {
                version = Value::String(expanded);
            }
        }
        root.insert(VERSION_KEY.to_owned(), version);
    }
}

/// Validates the root `version`. Accepted: `"3"` and `"2.<digits>"`.
///
/// Deliberate difference: RoadRunner accepts any string here.
fn check_version(value: Option<&Value>) -> Result<String, ConfigError> {
    let version = string_version(value)?;
    let is_2x = version
        .strip_prefix("2.")
        .is_some_and(|minor| !minor.is_empty() && minor.bytes().all(|c| c.is_ascii_digit()));
    if version == "3" || is_2x {
        Ok(version)
    } else {
        Err(ConfigError::UnsupportedVersion(version))
    }
}

/// `version` must be present and a YAML string.
fn string_version(value: Option<&Value>) -> Result<String, ConfigError> {
    match value {
        None | Some(Value::Null) => Err(ConfigError::MissingVersion),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(ConfigError::VersionNotString {
            actual: type_name(other),
        }),
    }
}

/// Reads `include` as a list of file names: a list of strings, or a single
/// string (split on commas like any string read as a list).
fn include_list(value: Option<&Value>) -> Result<Vec<String>, ConfigError> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    let names = Vec::<String>::deserialize(Weak(value)).map_err(|_| ConfigError::InvalidInclude)?;
    if value
        .as_array()
        .is_some_and(|items| items.iter().any(|v| !v.is_string()))
    {
        return Err(ConfigError::InvalidInclude);
    }
    Ok(names.into_iter().filter(|n| !n.trim().is_empty()).collect())
}

/// Reads an included file: parsed, lower-cased and env-expanded (no `-o`,
/// and its own `include` key is not followed, as in RoadRunner). Its string
/// `version` must equal the root's.
fn load_included(
    path: &Path,
    root_version: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Map<String, Value>, ConfigError> {
    let text = read_file(path)?;
    let mut map = parse_yaml(&text, Some(path))?;
    expand_document(&mut map, env);
    let version = string_version(map.get(VERSION_KEY)).map_err(|e| ConfigError::Included {
        path: path.to_owned(),
        source: Box::new(e),
    })?;
    if version != root_version {
        return Err(ConfigError::IncludeVersionMismatch {
            path: path.to_owned(),
        });
    }
    Ok(map)
}
