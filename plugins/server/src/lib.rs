//! The `server` plugin: how PHP workers are started.
//!
//! It reads `server.command`, `env`, `relay`, `user` and `on_init`, and
//! provides the [`WorkerServer`] service through which other plugins start
//! their pools. Every worker gets, on top of rr's own environment,
//! `RR_RELAY`, `RR_RPC` (when `rpc.listen` is set), the `server.env` keys
//! upper-cased, `RR_VERSION`, and the pool owner's variables (`RR_MODE`),
//! in that order, as RoadRunner does.

#![forbid(unsafe_code)]

mod on_init;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rr_config::duration::option_non_negative;
use rr_config::{ConfigError, StringOrList};
use rr_plugin::{
    async_trait, InitContext, Plugin, PluginError, ServeContext, ServiceKey, Status, WorkerServer,
};
use rr_pool::{Pool, PoolConfig, PoolError, Relay, RelayAddress, SocketRelay, WorkerCommand};
use serde::Deserialize;
use tokio::sync::OnceCell;

pub use on_init::OnInitConfig;

/// The RoadRunner release whose wire protocol and config this server
/// follows; workers see it as `RR_VERSION`, which PHP packages consult.
pub const RR_COMPATIBLE_VERSION: &str = "2025.1.15";

/// The `server` section.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ServerConfig {
    /// The worker command, e.g. `php app.php` (required).
    pub command: Option<StringOrList>,
    /// Run workers as this user (its uid and primary gid); rr must be root.
    pub user: String,
    /// Accepted for compatibility; RoadRunner takes the group from `user`.
    pub group: String,
    /// Extra worker environment; keys are upper-cased.
    pub env: BTreeMap<String, serde_json::Value>,
    /// `pipes` (default), `tcp://host:port` or `unix://path`.
    pub relay: String,
    /// Bound for a worker's start-up and handshake. RoadRunner 2024.1 dropped
    /// it in favour of `pool.allocate_timeout`; when set, the smaller wins.
    #[serde(default, deserialize_with = "option_non_negative")]
    pub relay_timeout: Option<Duration>,
    /// A command run once before any worker starts.
    pub on_init: Option<OnInitConfig>,
}

/// The `server` plugin.
#[derive(Default)]
pub struct ServerPlugin {
    factory: Option<Arc<PoolFactory>>,
}

#[async_trait]
impl Plugin for ServerPlugin {
    fn name(&self) -> &'static str {
        "server"
    }

    fn provides(&self) -> Vec<ServiceKey> {
        vec![ServiceKey::of::<Arc<dyn WorkerServer>>()]
    }

    async fn init(&mut self, ctx: &mut InitContext<'_>) -> Result<Status, PluginError> {
        if !ctx.is_configured() {
            return Ok(Status::Disabled);
        }
        let config: ServerConfig = ctx.section()?;
        let rpc_listen = ctx
            .config()
            .get("rpc.listen")
            .and_then(|v| v.as_str())
            .map(str::to_owned)
            .or_else(|| {
                ctx.config()
                    .has("rpc")
                    .then(|| "tcp://127.0.0.1:6001".to_owned())
            });
        let factory = Arc::new(PoolFactory::from_config(config, rpc_listen)?);
        ctx.provide::<Arc<dyn WorkerServer>>(Arc::clone(&factory) as Arc<dyn WorkerServer>);
        self.factory = Some(factory);
        Ok(Status::Enabled)
    }

    async fn serve(&self, _ctx: ServeContext) -> Result<(), PluginError> {
        if let Some(factory) = &self.factory {
            factory.prepare().await?;
        }
        Ok(())
    }
}

/// Starts pools with the server's command, environment and relay.
pub struct PoolFactory {
    command: Vec<String>,
    env: Vec<(String, String)>,
    relay_address: RelayAddress,
    relay: OnceCell<Relay>,
    user: Option<(u32, u32)>,
    start_timeout: Option<Duration>,
    on_init: Option<OnInitConfig>,
}

impl PoolFactory {
    /// Validates the section and builds the factory.
    pub fn from_config(
        config: ServerConfig,
        rpc_listen: Option<String>,
    ) -> Result<PoolFactory, ConfigError> {
        let command = config
            .command
            .map(StringOrList::into_inner)
            .unwrap_or_default();
        if command.is_empty() {
            return Err(ConfigError::missing(
                "server.command",
                "command should not be empty",
            ));
        }
        let relay_address = RelayAddress::parse(&config.relay)
            .map_err(|e| ConfigError::invalid("server.relay", e.to_string()))?;
        let user = resolve_user(&config.user)?;
        if let Some(on_init) = &config.on_init {
            on_init.validate()?;
        }
        let mut env = vec![("RR_RELAY".to_owned(), relay_address.to_string())];
        if let Some(listen) = rpc_listen {
            env.push(("RR_RPC".to_owned(), listen));
        }
        for (key, value) in config.env {
            let value = match value {
                serde_json::Value::String(s) => s,
                serde_json::Value::Null => String::new(),
                other => other.to_string(),
            };
            env.push((key.to_ascii_uppercase(), value));
        }
        env.push(("RR_VERSION".to_owned(), RR_COMPATIBLE_VERSION.to_owned()));
        Ok(PoolFactory {
            command,
            env,
            relay_address,
            relay: OnceCell::new(),
            user,
            start_timeout: config.relay_timeout.filter(|d| !d.is_zero()),
            on_init: config.on_init,
        })
    }

    /// Runs `on_init` and binds the socket relay, once, before the first worker.
    async fn prepare(&self) -> Result<&Relay, PluginError> {
        self.relay
            .get_or_try_init(|| async {
                if let Some(on_init) = &self.on_init {
                    on_init.run(self.user).await?;
                }
                if self.relay_address.is_pipes() {
                    return Ok(Relay::Pipes);
                }
                let handshake_timeout = self.start_timeout.unwrap_or(Duration::from_secs(60));
                let listener = SocketRelay::bind(self.relay_address.clone(), handshake_timeout)
                    .await
                    .map_err(|e| {
                        ConfigError::invalid(
                            "server.relay",
                            format!("cannot listen on {}: {e}", self.relay_address),
                        )
                    })?;
                Ok(Relay::Socket(listener))
            })
            .await
    }
}

#[async_trait]
impl WorkerServer for PoolFactory {
    async fn new_pool(
        &self,
        name: &str,
        config: &PoolConfig,
        env: &[(String, String)],
    ) -> Result<Pool, PoolError> {
        let relay = self.prepare().await.map_err(|e| PoolError::Spawn {
            command: self.command.join(" "),
            source: std::io::Error::other(e.to_string()),
        })?;
        let argv = config
            .command
            .as_ref()
            .map(|c| c.0.clone())
            .filter(|c| !c.is_empty())
            .unwrap_or_else(|| self.command.clone());
        let mut worker_env = self.env.clone();
        worker_env.extend(env.iter().map(|(k, v)| (k.to_ascii_uppercase(), v.clone())));
        let command = WorkerCommand {
            argv,
            env: worker_env,
            cwd: None,
            user: self.user,
            start_timeout: self.start_timeout,
        };
        Pool::start(name, command, relay.clone(), config.clone()).await
    }
}

/// `server.user` → (uid, primary gid). Needs rr to run as root.
fn resolve_user(name: &str) -> Result<Option<(u32, u32)>, ConfigError> {
    if name.is_empty() {
        return Ok(None);
    }
    let user = nix::unistd::User::from_name(name)
        .map_err(|e| {
            ConfigError::invalid("server.user", format!("cannot look up user {name:?}: {e}"))
        })?
        .ok_or_else(|| ConfigError::invalid("server.user", format!("no such user {name:?}")))?;
    if !nix::unistd::Uid::effective().is_root() {
        return Err(ConfigError::invalid(
            "server.user",
            format!("running workers as {name:?} needs rr to run as root"),
        ));
    }
    Ok(Some((user.uid.as_raw(), user.gid.as_raw())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn factory(yaml: &str) -> Result<PoolFactory, ConfigError> {
        let config = rr_config::Config::from_yaml_str_with_env(yaml, &[], &|_| None)?;
        PoolFactory::from_config(config.section("server")?, None)
    }

    #[test]
    fn missing_command_names_the_key() {
        let err = factory("version: '3'\nserver:\n  relay: pipes\n")
            .err()
            .expect("fails");
        assert_eq!(
            err.to_string(),
            "missing value at `server.command`: command should not be empty"
        );
    }

    #[test]
    fn unknown_relay_scheme_names_the_key() {
        let err =
            factory("version: '3'\nserver:\n  command: php a.php\n  relay: udp://1.2.3.4:5\n")
                .err()
                .expect("fails");
        let text = err.to_string();
        assert!(
            text.starts_with("invalid value at `server.relay`"),
            "{text}"
        );
        assert!(text.contains("udp://1.2.3.4:5"), "{text}");
    }

    #[test]
    fn worker_env_is_built_in_roadrunners_order() {
        let factory = factory(
            "version: '3'\nserver:\n  command: php a.php\n  env:\n    app_env: prod\n    workers: 3\n",
        )
        .expect("valid");
        let keys: Vec<&str> = factory.env.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["RR_RELAY", "APP_ENV", "WORKERS", "RR_VERSION"]);
        assert_eq!(factory.env[2].1, "3");
        assert_eq!(factory.command, ["php", "a.php"]);
    }
}
