//! The `jobs` section, with RoadRunner's keys and defaults.
//!
//! ```yaml
//! jobs:
//!   num_pollers: 0        # 0: pool.num_workers + 2 (RoadRunner always uses that)
//!   timeout: 60           # seconds, per push/pause/resume/destroy/stat call
//!   pipeline_size: 1000000
//!   pool: { num_workers: 2 }
//!   consume: [ "emails" ]
//!   pipelines:
//!     emails:
//!       driver: memory
//!       config: { priority: 10, prefetch: 100000 }
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use rr_config::ConfigError;
use rr_pool::PoolConfig;
use serde::Deserialize;
use serde_json::{Map, Value};

/// Default `timeout` in seconds.
pub const DEFAULT_TIMEOUT_SECS: u64 = 60;
/// Default `pipeline_size`.
pub const DEFAULT_PIPELINE_SIZE: u64 = 1_000_000;

/// The `jobs` section as read.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct JobsConfig {
    /// Pollers executing jobs; 0 means `pool.num_workers + 2`.
    pub num_pollers: u64,
    /// Seconds for each push/pause/resume/destroy/stat call (0: the default).
    pub timeout: u64,
    /// Capacity of the priority queue; 0 means the default.
    pub pipeline_size: u64,
    /// The jobs pool.
    pub pool: PoolConfig,
    /// Pipelines started at boot.
    pub consume: Vec<String>,
    /// name → pipeline, read by [`JobsConfig::pipelines`].
    pub pipelines: BTreeMap<String, Value>,
}

impl Default for JobsConfig {
    fn default() -> Self {
        JobsConfig {
            num_pollers: 0,
            timeout: DEFAULT_TIMEOUT_SECS,
            pipeline_size: DEFAULT_PIPELINE_SIZE,
            pool: PoolConfig::default(),
            consume: Vec::new(),
            pipelines: BTreeMap::new(),
        }
    }
}

/// One configured pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineConfig {
    /// Its name.
    pub name: String,
    /// `driver`.
    pub driver: String,
    /// `config` (or, in the old flat form, the other keys).
    pub options: Map<String, Value>,
}

impl JobsConfig {
    /// The call timeout.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(if self.timeout == 0 {
            DEFAULT_TIMEOUT_SECS
        } else {
            self.timeout
        })
    }

    /// The queue capacity.
    pub fn pipeline_size(&self) -> usize {
        let size = if self.pipeline_size == 0 {
            DEFAULT_PIPELINE_SIZE
        } else {
            self.pipeline_size
        };
        usize::try_from(size).unwrap_or(usize::MAX)
    }

    /// Pollers to run.
    pub fn pollers(&self) -> usize {
        let n = if self.num_pollers == 0 {
            self.pool.effective_num_workers() + 2
        } else {
            self.num_pollers
        };
        usize::try_from(n).unwrap_or(usize::MAX)
    }

    /// The pipelines, checked: each must be a map with a string `driver`.
    pub fn pipelines(&self) -> Result<Vec<PipelineConfig>, ConfigError> {
        self.pipelines
            .iter()
            .map(|(name, value)| {
                let key = format!("jobs.pipelines.{name}");
                let Value::Object(map) = value else {
                    return Err(ConfigError::invalid(
                        key,
                        "a pipeline must be a map with `driver` and `config`",
                    ));
                };
                let driver = match map.get("driver") {
                    Some(Value::String(d)) if !d.trim().is_empty() => d.trim().to_owned(),
                    Some(Value::String(_)) | None | Some(Value::Null) => {
                        return Err(ConfigError::missing(
                            format!("{key}.driver"),
                            format!(
                                "no associated driver with the pipeline, pipeline name: {name}"
                            ),
                        ))
                    }
                    Some(other) => {
                        return Err(ConfigError::invalid(
                            format!("{key}.driver"),
                            format!("{other} is not a driver name"),
                        ))
                    }
                };
                let options = match map.get("config") {
                    Some(Value::Object(config)) => config.clone(),
                    None | Some(Value::Null) => map
                        .iter()
                        .filter(|(k, _)| k.as_str() != "driver")
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                    Some(other) => {
                        return Err(ConfigError::invalid(
                            format!("{key}.config"),
                            format!("{other} is not a map of driver options"),
                        ))
                    }
                };
                Ok(PipelineConfig {
                    name: name.clone(),
                    driver,
                    options,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(yaml: &str) -> Result<JobsConfig, ConfigError> {
        rr_config::Config::from_yaml_str_with_env(yaml, &[], &|_| None)?.section("jobs")
    }

    #[test]
    fn defaults_are_roadrunners() {
        let config = section("version: '3'\njobs:\n  pool:\n    num_workers: 3\n").expect("valid");
        assert_eq!(config.timeout(), Duration::from_secs(60));
        assert_eq!(config.pipeline_size(), 1_000_000);
        assert_eq!(config.pollers(), 5);
        assert!(config.pipelines().expect("none").is_empty());
    }

    #[test]
    fn both_pipeline_forms_read() {
        let config = section(
            "version: '3'\njobs:\n  consume: [a]\n  pipelines:\n    a:\n      driver: memory\n      config:\n        priority: 3\n    b:\n      driver: memory\n      prefetch: 7\n",
        )
        .expect("valid");
        let pipelines = config.pipelines().expect("valid");
        assert_eq!(pipelines[0].options["priority"], 3);
        assert_eq!(pipelines[1].options["prefetch"], 7);
        assert!(!pipelines[1].options.contains_key("driver"));
    }

    #[test]
    fn errors_name_the_key() {
        let err = section("version: '3'\njobs:\n  timeout: soon\n").expect_err("bad");
        assert!(err.to_string().contains("`jobs.timeout`"), "{err}");
        let err = section("version: '3'\njobs:\n  pipeline_size: -1\n").expect_err("bad");
        assert!(err.to_string().contains("`jobs.pipeline_size`"), "{err}");
        let config =
            section("version: '3'\njobs:\n  pipelines:\n    a:\n      config: {}\n").expect("read");
        let err = config.pipelines().expect_err("no driver");
        assert!(
            err.to_string().contains("`jobs.pipelines.a.driver`"),
            "{err}"
        );
        let config = section("version: '3'\njobs:\n  pipelines:\n    a: 5\n").expect("read");
        let err = config.pipelines().expect_err("not a map");
        assert!(err.to_string().contains("`jobs.pipelines.a`"), "{err}");
    }
}
