//! The [`Plugin`] trait and what the container hands a plugin in each phase.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use rr_config::Config;
use rr_pool::WorkerInfo;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

use crate::error::PluginError;
use crate::management::{Health, MetricFamily};

/// What `init` decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// The plugin takes part in serve, stop and reset.
    Enabled,
    /// The plugin is off (usually: its config section is absent). Not an error.
    Disabled,
}

/// A component of the server: `server`, `logs`, `ticker`, or your own.
///
/// The container calls `init` once for every registered plugin, in
/// dependency order (providers of a service before the plugins that
/// [`require`](InitContext::require) it); then `serve` for every enabled
/// plugin in the same order; on shutdown `stop` in reverse order. `reset`
/// is for `rr reset`.
///
/// A minimal plugin:
///
/// ```
/// use async_trait::async_trait;
/// use rr_plugin::{InitContext, Plugin, PluginError, ServeContext, Status};
///
/// #[derive(Default)]
/// struct Hello { greeting: String }
///
/// #[async_trait]
/// impl Plugin for Hello {
///     fn name(&self) -> &'static str { "hello" }
///
///     async fn init(&mut self, ctx: &mut InitContext<'_>) -> Result<Status, PluginError> {
///         if !ctx.is_configured() {
///             return Ok(Status::Disabled);
///         }
///         self.greeting = ctx.config().get("hello.greeting")
///             .and_then(|v| v.as_str()).unwrap_or("hi").to_owned();
///         Ok(Status::Enabled)
///     }
///
///     async fn serve(&self, _ctx: ServeContext) -> Result<(), PluginError> {
///         tracing::info!("{}", self.greeting);
///         Ok(())
///     }
/// }
/// ```
#[async_trait]
pub trait Plugin: Send + Sync + 'static {
    /// The plugin's name, which is also its config section.
    fn name(&self) -> &'static str;

    /// Order among plugins that do not depend on each other: heavier serves first.
    fn weight(&self) -> u32 {
        1
    }

    /// Services this plugin asks for in `init`; the container initialises
    /// their providers first. List them with [`ServiceKey::of`].
    fn requires(&self) -> Vec<ServiceKey> {
        Vec::new()
    }

    /// Services this plugin offers in `init` with [`InitContext::provide`].
    fn provides(&self) -> Vec<ServiceKey> {
        Vec::new()
    }

    /// Reads configuration, takes services, and decides whether the plugin runs.
    async fn init(&mut self, ctx: &mut InitContext<'_>) -> Result<Status, PluginError>;

    /// Starts the plugin's work. Long-running work goes into tasks the plugin
    /// owns; report a later fatal error through [`ServeContext::fail`]. An
    /// error returned here stops the server's start-up.
    async fn serve(&self, _ctx: ServeContext) -> Result<(), PluginError> {
        Ok(())
    }

    /// Finishes in-flight work and releases everything. The container bounds
    /// it by the grace period.
    async fn stop(&self) -> Result<(), PluginError> {
        Ok(())
    }

    /// True when the plugin supports `rr reset`.
    fn can_reset(&self) -> bool {
        false
    }

    /// Replaces the plugin's workers (`rr reset`).
    async fn reset(&self) -> Result<(), PluginError> {
        Err(PluginError::NotSupported {
            plugin: self.name(),
            what: "reset",
        })
    }

    /// The plugin's workers, when it has a pool (`rr workers`).
    fn workers(&self) -> Option<Vec<WorkerInfo>> {
        None
    }

    /// Starts one more worker (`informer.AddWorker`).
    async fn add_worker(&self) -> Result<(), PluginError> {
        Err(PluginError::NotSupported {
            plugin: self.name(),
            what: "workers management",
        })
    }

    /// Stops one worker for good (`informer.RemoveWorker`); `false` when
    /// only one is left, which is never removed.
    async fn remove_worker(&self) -> Result<bool, PluginError> {
        Err(PluginError::NotSupported {
            plugin: self.name(),
            what: "workers management",
        })
    }

    /// Liveness for `/health?plugin=<name>`; `None` when not supported.
    async fn health(&self) -> Option<Health> {
        None
    }

    /// Readiness for `/ready?plugin=<name>`; `None` when not supported.
    async fn ready(&self) -> Option<Health> {
        None
    }

    /// Metrics of the plugin beyond its pool's (which the metrics plugin
    /// derives from [`workers`](Plugin::workers)).
    fn metrics(&self) -> Vec<MetricFamily> {
        Vec::new()
    }
}

/// Identifies a service by its Rust type, e.g. `ServiceKey::of::<Arc<dyn WorkerServer>>()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ServiceKey {
    pub(crate) id: TypeId,
    name: &'static str,
}

impl ServiceKey {
    /// The key of service type `T`.
    pub fn of<T: Any>() -> ServiceKey {
        ServiceKey {
            id: TypeId::of::<T>(),
            name: std::any::type_name::<T>(),
        }
    }

    /// The type's name without module paths, for messages
    /// (`Arc<dyn WorkerServer>`).
    pub fn type_name(&self) -> String {
        short_type_name(self.name)
    }
}

/// `alloc::sync::Arc<dyn rr_plugin::server::WorkerServer>` →
/// `Arc<dyn WorkerServer>`: keeps the last segment of every path.
fn short_type_name(full: &str) -> String {
    let mut short = String::with_capacity(full.len());
    let mut segment = String::new();
    for c in full.chars() {
        if c.is_alphanumeric() || c == '_' || c == ':' {
            segment.push(c);
        } else {
            short.push_str(segment.rsplit("::").next().unwrap_or_default());
            segment.clear();
            short.push(c);
        }
    }
    short.push_str(segment.rsplit("::").next().unwrap_or_default());
    short
}

/// Services offered by plugins, keyed by type.
#[derive(Default)]
pub(crate) struct Services {
    offered: HashMap<TypeId, (&'static str, Box<dyn Any + Send + Sync>)>,
    /// Services whose provider is registered but disabled, with its name.
    pub(crate) unavailable: HashMap<TypeId, &'static str>,
    /// Every registered provider of each service, for messages.
    pub(crate) providers: HashMap<TypeId, &'static str>,
}

impl Services {
    /// Offers a service the container itself provides.
    pub(crate) fn offer_builtin<T: Any + Clone + Send + Sync>(&mut self, value: T) {
        let key = ServiceKey::of::<T>();
        self.offered.insert(key.id, ("container", Box::new(value)));
    }
}

/// What `init` gets: the configuration and the services of plugins
/// initialised before.
pub struct InitContext<'a> {
    pub(crate) plugin: &'static str,
    pub(crate) config: &'a Config,
    pub(crate) services: &'a mut Services,
}

impl InitContext<'_> {
    /// The whole configuration.
    pub fn config(&self) -> &Config {
        self.config
    }

    /// True when the configuration has this plugin's section.
    pub fn is_configured(&self) -> bool {
        self.config.has(self.plugin)
    }

    /// This plugin's section as `T` (defaults when absent); errors name the key.
    pub fn section<T: DeserializeOwned>(&self) -> Result<T, PluginError> {
        self.config.section(self.plugin).map_err(PluginError::from)
    }

    /// A service another plugin provides. Fails with a message naming the
    /// provider and why it is missing.
    pub fn require<T: Any + Clone + Send + Sync>(&self) -> Result<T, PluginError> {
        let key = ServiceKey::of::<T>();
        if let Some((_, value)) = self.services.offered.get(&key.id) {
            if let Some(value) = value.downcast_ref::<T>() {
                return Ok(value.clone());
            }
        }
        let reason = match (
            self.services.unavailable.get(&key.id),
            self.services.providers.get(&key.id),
        ) {
            (Some(provider), _) => format!(
                "its provider, the `{provider}` plugin, is disabled (is the `{provider}` section missing from the configuration?)"
            ),
            (None, Some(provider)) => format!(
                "the `{provider}` plugin provides it but was not initialised before; declare it in `requires()`"
            ),
            (None, None) => "no registered plugin provides it".to_owned(),
        };
        Err(PluginError::MissingService {
            plugin: self.plugin,
            service: key.type_name(),
            reason,
        })
    }

    /// A service another plugin may provide, or `None` when no enabled
    /// plugin does (for services a plugin can do without, such as RPC).
    pub fn optional<T: Any + Clone + Send + Sync>(&self) -> Option<T> {
        let key = ServiceKey::of::<T>();
        self.services
            .offered
            .get(&key.id)
            .and_then(|(_, value)| value.downcast_ref::<T>())
            .cloned()
    }

    /// Offers a service to plugins initialised after this one.
    pub fn provide<T: Any + Clone + Send + Sync>(&mut self, value: T) {
        let key = ServiceKey::of::<T>();
        self.services
            .offered
            .insert(key.id, (self.plugin, Box::new(value)));
    }
}

/// What `serve` gets: a way to report a fatal error later on.
#[derive(Debug, Clone)]
pub struct ServeContext {
    pub(crate) plugin: &'static str,
    pub(crate) failures: mpsc::UnboundedSender<(&'static str, PluginError)>,
}

impl ServeContext {
    /// Reports an error that must stop the server.
    pub fn fail(&self, error: PluginError) {
        let _ = self.failures.send((self.plugin, error));
    }

    /// The plugin's name.
    pub fn plugin(&self) -> &'static str {
        self.plugin
    }
}

/// A plugin after `init`, shared between the container and request paths.
pub type SharedPlugin = Arc<dyn Plugin>;

#[cfg(test)]
mod tests {
    #[test]
    fn type_names_lose_their_module_paths() {
        assert_eq!(
            super::short_type_name("alloc::sync::Arc<dyn rr_plugin::server::WorkerServer>"),
            "Arc<dyn WorkerServer>"
        );
        assert_eq!(super::short_type_name("u32"), "u32");
    }
}
