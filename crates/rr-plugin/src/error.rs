//! Errors of plugins and of the container.

use thiserror::Error;

/// An error a plugin reports from one of its lifecycle methods.
#[derive(Debug, Error)]
pub enum PluginError {
    /// A configuration value is missing or invalid (the message names the key).
    #[error(transparent)]
    Config(#[from] rr_config::ConfigError),
    /// A service the plugin needs is not available.
    #[error("plugin `{plugin}` needs the service {service}, but {reason}")]
    MissingService {
        /// The plugin asking.
        plugin: &'static str,
        /// The service's type.
        service: String,
        /// Why it is not there.
        reason: String,
    },
    /// Starting, resetting or stopping a worker pool failed.
    #[error(transparent)]
    Pool(#[from] rr_pool::PoolError),
    /// Taking a worker out of a pool failed.
    #[error(transparent)]
    Exec(#[from] rr_pool::ExecError),
    /// The plugin does not support an operation.
    #[error("plugin `{plugin}` does not support {what}")]
    NotSupported {
        /// The plugin.
        plugin: &'static str,
        /// The operation.
        what: &'static str,
    },
    /// Anything else, described by the plugin.
    #[error("{0}")]
    Other(String),
}

impl PluginError {
    /// An error with a plugin-provided message.
    pub fn other(message: impl Into<String>) -> PluginError {
        PluginError::Other(message.into())
    }
}

/// An error of the container, naming the plugin and the phase.
#[derive(Debug, Error)]
pub enum ContainerError {
    /// Two registered plugins have the same name.
    #[error("plugin `{0}` is registered twice")]
    Duplicate(&'static str),
    /// Plugins require each other in a circle.
    #[error("plugins depend on each other in a cycle: {0}")]
    Cycle(String),
    /// A plugin's `init` failed.
    #[error("{plugin}: {source}")]
    Init {
        /// The plugin.
        plugin: &'static str,
        /// Its error.
        #[source]
        source: PluginError,
    },
    /// Every plugin is disabled.
    #[error("All plugins are disabled, nothing to serve")]
    NothingToServe,
    /// A plugin's `serve` failed.
    #[error("serve error from the plugin `{plugin}`, stopping execution: {source}")]
    Serve {
        /// The plugin.
        plugin: &'static str,
        /// Its error.
        #[source]
        source: PluginError,
    },
    /// One or more plugins failed to stop in time or with an error.
    #[error("stopping failed: {0}")]
    Stop(String),
    /// No enabled plugin of that name.
    #[error("no such plugin: {0}")]
    UnknownPlugin(String),
    /// A plugin's `reset` failed.
    #[error("{plugin}: reset failed: {source}")]
    Reset {
        /// The plugin.
        plugin: String,
        /// Its error.
        #[source]
        source: PluginError,
    },
}
