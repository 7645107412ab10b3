//! The `kv` plugin: named key-value storages for PHP, reached over RPC
//! (`kv.Has`, `kv.Set`, `kv.MGet`, `kv.MExpire`, `kv.TTL`, `kv.Delete`,
//! `kv.Clear` with RoadRunner's `kv.v1` protobuf messages).
//!
//! ```yaml
//! rpc:
//!   listen: tcp://127.0.0.1:6001
//! kv:
//!   local:
//!     driver: memory
//!   cache:
//!     driver: redis
//!     config: { addrs: ["127.0.0.1:6379"] }
//!   sessions:
//!     driver: memcached
//!     config: { addr: ["127.0.0.1:11211"] }
//!   durable:
//!     driver: boltdb
//!     config: { file: "rr.db", permissions: 0644, interval: 60 }
//! ```
//!
//! RoadRunner's rules: every storage needs `driver`; its options come from
//! `kv.<name>.config`, else from a top-level section named like the
//! storage, else the driver's defaults (with a warning). See `docs/kv.md`.
#![forbid(unsafe_code)]

pub mod durable;
pub mod memcached;
pub mod memory;
pub mod proto;
pub mod redis_store;
pub mod service;
pub mod storage;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rr_config::{Config, ConfigError};
use rr_plugin::{async_trait, InitContext, Plugin, PluginError, RpcRegistry, ServiceKey, Status};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

pub use service::{KvService, Storages};
pub use storage::{Clock, Item, KvError, Storage};

/// The drivers this build has, as RoadRunner lists its constructors.
pub const DRIVERS: [&str; 4] = ["boltdb", "memcached", "memory", "redis"];

/// `kv.<name>.config` of the `boltdb` driver (a redb file here).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct BoltConfig {
    /// The file (default `rr.db`, relative to the working directory).
    pub file: String,
    /// Mode of a new file: an integer written in octal (`0644`, `644`) or
    /// a string (`"0644"`); default `0755` like RoadRunner.
    pub permissions: Option<Value>,
    /// Expired-key sweep period: seconds (RoadRunner) or a Go duration
    /// (`500ms`); default 60 s.
    pub interval: Option<Value>,
}

/// RoadRunner's default mode of a new boltdb file.
pub const DEFAULT_PERMISSIONS: u32 = 0o755;
/// RoadRunner's default sweep period.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);

impl BoltConfig {
    /// The file's path.
    pub fn path(&self) -> PathBuf {
        if self.file.is_empty() {
            PathBuf::from("rr.db")
        } else {
            PathBuf::from(&self.file)
        }
    }

    /// The mode, read as RoadRunner users write it. YAML `0644` may reach
    /// us as 644 or as 420: a number above 0o777 is read as octal digits.
    pub fn mode(&self, key: &str) -> Result<u32, ConfigError> {
        let bad = |what: &Value| {
            ConfigError::invalid(
                format!("{key}.permissions"),
                format!("{what} is not a file mode (write it in octal, e.g. 0644)"),
            )
        };
        let digits = match &self.permissions {
            None | Some(Value::Null) => return Ok(DEFAULT_PERMISSIONS),
            Some(Value::Number(n)) => match n.as_u64() {
                Some(n) if n <= 0o777 => return Ok(n as u32),
                Some(n) => n.to_string(),
                None => return Err(bad(&Value::Number(n.clone()))),
            },
            Some(Value::String(s)) => s.trim().trim_start_matches("0o").to_owned(),
            Some(other) => return Err(bad(other)),
        };
        u32::from_str_radix(&digits, 8)
            .ok()
            .filter(|m| *m <= 0o7777)
            .ok_or_else(|| bad(self.permissions.as_ref().unwrap_or(&Value::Null)))
    }

    /// The sweep period.
    pub fn sweep_interval(&self, key: &str) -> Result<Duration, ConfigError> {
        let bad = |message: String| ConfigError::invalid(format!("{key}.interval"), message);
        match &self.interval {
            None | Some(Value::Null) => Ok(DEFAULT_INTERVAL),
            Some(Value::Number(n)) => match n.as_u64() {
                Some(0) => Ok(DEFAULT_INTERVAL),
                Some(secs) => Ok(Duration::from_secs(secs)),
                None => Err(bad(format!("{n} is not a whole number of seconds"))),
            },
            Some(Value::String(s)) => {
                if let Ok(secs) = s.trim().parse::<u64>() {
                    return Ok(if secs == 0 {
                        DEFAULT_INTERVAL
                    } else {
                        Duration::from_secs(secs)
                    });
                }
                let d = rr_config::duration::parse_go_duration(s)
                    .map_err(|e| bad(e.to_string()))?
                    .to_std()
                    .ok_or_else(|| bad("must not be negative".into()))?;
                Ok(if d.is_zero() { DEFAULT_INTERVAL } else { d })
            }
            Some(other) => Err(bad(format!("{other} is not seconds or a duration"))),
        }
    }
}

/// One storage as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageSpec {
    /// `kv.<name>`.
    pub name: String,
    /// The driver.
    pub driver: String,
    /// Where its options are: `kv.<name>.config`, `<name>`, or `None` for
    /// the driver's defaults.
    pub config_key: Option<String>,
}

/// Reads the storages of the `kv` section with RoadRunner's rules.
/// Entries that are not maps, or whose `driver` is not a string, are
/// skipped with a warning, like RoadRunner does.
pub fn storage_specs(config: &Config) -> Result<Vec<StorageSpec>, ConfigError> {
    let Some(Value::Object(section)) = config.get("kv") else {
        return Ok(Vec::new());
    };
    let mut names: Vec<&String> = section.keys().collect();
    names.sort();
    let mut specs = Vec::new();
    for name in names {
        let entry = match &section[name] {
            Value::Null => continue,
            Value::Object(entry) => entry,
            _ => {
                tracing::warn!(target: "kv", storage = %name, "wrong type detected in the configuration, please, check yaml indentation");
                continue;
            }
        };
        let driver = match entry.get("driver") {
            None => {
                return Err(ConfigError::missing(
                    format!("kv.{name}.driver"),
                    format!("could not find mandatory driver field in the {name} storage"),
                ))
            }
            Some(Value::String(driver)) => driver.clone(),
            Some(other) => {
                tracing::warn!(target: "kv", storage = %name, driver = %other, "driver field is not a string, skipping storage");
                continue;
            }
        };
        if !DRIVERS.contains(&driver.as_str()) {
            return Err(ConfigError::invalid(
                format!("kv.{name}.driver"),
                format!(
                    "no such constructor was registered: {driver}, registered: [{}]",
                    DRIVERS.join(" ")
                ),
            ));
        }
        let local = format!("kv.{name}.config");
        let config_key = if config.has(&local) {
            Some(local)
        } else if config.has(name) {
            Some(name.clone())
        } else {
            if driver != "memory" {
                tracing::warn!(target: "kv", local = %local, global = %name, "can't find local or global configuration, this section will be skipped");
            }
            None
        };
        specs.push(StorageSpec {
            name: name.clone(),
            driver,
            config_key,
        });
    }
    Ok(specs)
}

fn options<T: DeserializeOwned + Default>(
    config: &Config,
    spec: &StorageSpec,
) -> Result<T, ConfigError> {
    match &spec.config_key {
        Some(key) => config.section(key),
        None => Ok(T::default()),
    }
}

/// Opens the storage `spec` describes.
pub fn open_storage(
    config: &Config,
    spec: &StorageSpec,
    clock: Clock,
) -> Result<Arc<dyn Storage>, ConfigError> {
    let key = spec
        .config_key
        .clone()
        .unwrap_or_else(|| format!("kv.{}.config", spec.name));
    Ok(match spec.driver.as_str() {
        "memory" => Arc::new(memory::MemoryStorage::new(clock)),
        "redis" => {
            let options: redis_store::RedisConfig = options(config, spec)?;
            Arc::new(
                redis_store::RedisStorage::new(options, clock)
                    .map_err(|m| ConfigError::invalid(key, m))?,
            )
        }
        "memcached" => Arc::new(memcached::MemcachedStorage::new(
            options(config, spec)?,
            clock,
        )),
        _ => {
            let options: BoltConfig = options(config, spec)?;
            let path = options.path();
            Arc::new(
                durable::DurableStorage::open(
                    &path,
                    options.mode(&key)?,
                    options.sweep_interval(&key)?,
                    clock,
                )
                .map_err(|e| ConfigError::invalid(format!("{key}.file"), e.to_string()))?,
            )
        }
    })
}

/// The `kv` plugin.
#[derive(Default)]
pub struct KvPlugin {
    storages: Mutex<Arc<Storages>>,
}

impl KvPlugin {
    /// The storages opened by `init`.
    pub fn storages(&self) -> Arc<Storages> {
        Arc::clone(&self.storages.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

#[async_trait]
impl Plugin for KvPlugin {
    fn name(&self) -> &'static str {
        "kv"
    }

    fn weight(&self) -> u32 {
        10
    }

    fn requires(&self) -> Vec<ServiceKey> {
        vec![ServiceKey::of::<Arc<dyn RpcRegistry>>()]
    }

    async fn init(&mut self, ctx: &mut InitContext<'_>) -> Result<Status, PluginError> {
        if !ctx.is_configured() {
            return Ok(Status::Disabled);
        }
        let specs = storage_specs(ctx.config())?;
        let clock = storage::system_clock();
        let mut storages: Storages = HashMap::new();
        for spec in &specs {
            match open_storage(ctx.config(), spec, Arc::clone(&clock)) {
                Ok(storage) => {
                    tracing::debug!(target: "kv", storage = %spec.name, driver = %spec.driver, "storage ready");
                    storages.insert(spec.name.clone(), storage);
                }
                Err(err) => {
                    for storage in storages.values() {
                        storage.stop().await;
                    }
                    return Err(err.into());
                }
            }
        }
        let storages = Arc::new(storages);
        match ctx.optional::<Arc<dyn RpcRegistry>>() {
            Some(registry) => {
                registry.register("kv", Arc::new(KvService::new(Arc::clone(&storages))))
            }
            None => {
                tracing::warn!(target: "kv", "no `rpc` section: the kv storages cannot be reached")
            }
        }
        *self.storages.lock().unwrap_or_else(|p| p.into_inner()) = storages;
        Ok(Status::Enabled)
    }

    async fn stop(&self) -> Result<(), PluginError> {
        let storages = self.storages();
        for storage in storages.values() {
            storage.stop().await;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(yaml: &str) -> Config {
        Config::from_yaml_str(yaml, &[]).expect("must succeed")
    }

    #[test]
    fn a_storage_without_driver_is_roadrunners_error() {
        let c = config("version: '3'\nkv:\n  cache:\n    config: {}\n");
        let err = storage_specs(&c).expect_err("must fail").to_string();
        assert!(err.contains("kv.cache.driver"), "{err}");
        assert!(
            err.contains("could not find mandatory driver field in the cache storage"),
            "{err}"
        );
    }

    #[test]
    fn an_unknown_driver_lists_the_registered_ones() {
        let c = config("version: '3'\nkv:\n  c:\n    driver: etcd\n");
        let err = storage_specs(&c).expect_err("must fail").to_string();
        assert!(
            err.contains("no such constructor was registered: etcd, registered: [boltdb memcached memory redis]"),
            "{err}"
        );
    }

    #[test]
    fn options_come_from_config_then_a_global_section_then_defaults() {
        let c = config(
            "version: '3'\nkv:\n  a:\n    driver: memory\n    config: {}\n  memcached:\n    driver: memcached\n  r:\n    driver: redis\n  bad: 5\nmemcached:\n  addr: [\"h:1\"]\n",
        );
        let specs = storage_specs(&c).expect("must succeed");
        let keys: Vec<_> = specs
            .iter()
            .map(|s| (s.name.as_str(), s.config_key.as_deref()))
            .collect();
        assert_eq!(
            keys,
            vec![
                ("a", Some("kv.a.config")),
                ("memcached", Some("memcached")),
                ("r", None)
            ]
        );
    }

    #[test]
    fn bolt_modes_and_intervals() {
        let c = config(
            "version: '3'\nkv:\n  b:\n    driver: boltdb\n    config:\n      permissions: 0644\n      interval: 1\n  d:\n    driver: boltdb\n    config:\n      permissions: \"0600\"\n      interval: 250ms\n",
        );
        let b: BoltConfig = c.section("kv.b.config").expect("must succeed");
        assert_eq!(b.mode("k").expect("must succeed"), 0o644);
        assert_eq!(
            b.sweep_interval("k").expect("must succeed"),
            Duration::from_secs(1)
        );
        let d: BoltConfig = c.section("kv.d.config").expect("must succeed");
        assert_eq!(d.mode("k").expect("must succeed"), 0o600);
        assert_eq!(
            d.sweep_interval("k").expect("must succeed"),
            Duration::from_millis(250)
        );
        assert_eq!(d.path(), PathBuf::from("rr.db"));
        let e = BoltConfig {
            permissions: Some(Value::String("rw".into())),
            ..Default::default()
        };
        assert!(e
            .mode("kv.e.config")
            .expect_err("must fail")
            .to_string()
            .contains("kv.e.config.permissions"));
    }
}
