//! The `rpc` plugin: goridge RPC on `rpc.listen`, with the `rpc`, `informer`
//! and `resetter` services, and the RPC client the CLI uses.
//!
//! Wire format (RoadRunner's goridge RPC codec): a request frame has exactly
//! two options `[seq, method_len]`, its payload is `"Service.Method" ++ body`
//! and its flags carry the body's codec. The reply echoes both options and
//! the method name; an error reply adds the `ERROR` flag and carries the
//! message after the method name.
//!
//! ```yaml
//! rpc:
//!   listen: tcp://127.0.0.1:6001   # default; or unix:///path/rr.sock
//! ```
#![forbid(unsafe_code)]

pub mod client;
pub mod codec;
pub mod listen;
mod server;
pub mod services;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use rr_plugin::{
    async_trait, InitContext, Plugin, PluginDirectory, PluginError, RpcRegistry, RpcService,
    ServeContext, ServiceKey, Status,
};
use serde::Deserialize;
use tokio::task::JoinHandle;

pub use client::{RpcClient, RpcClientError};
pub use listen::{ListenAddr, DEFAULT_LISTEN};

/// The largest request payload the server reads (method name + body).
pub const MAX_REQUEST_PAYLOAD: u32 = 16 << 20;

/// The `rpc` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct RpcConfig {
    /// `tcp://host:port` or `unix://path`.
    pub listen: String,
}

impl Default for RpcConfig {
    fn default() -> Self {
        RpcConfig {
            listen: DEFAULT_LISTEN.to_owned(),
        }
    }
}

/// The services callable over RPC, by name.
#[derive(Default)]
pub struct Registry {
    services: RwLock<HashMap<String, Arc<dyn RpcService>>>,
}

impl Registry {
    /// The service registered as `name`.
    pub fn get(&self, name: &str) -> Option<Arc<dyn RpcService>> {
        self.services
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    /// Names of the registered services, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .services
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect();
        names.sort();
        names
    }
}

impl RpcRegistry for Registry {
    fn register(&self, name: &str, service: Arc<dyn RpcService>) {
        self.services
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_owned(), service);
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("services", &self.names())
            .finish()
    }
}

struct Running {
    accept: JoinHandle<()>,
    addr: ListenAddr,
}

/// The `rpc` plugin.
#[derive(Default)]
pub struct RpcPlugin {
    listen: Option<ListenAddr>,
    registry: Arc<Registry>,
    running: Mutex<Option<Running>>,
}

impl RpcPlugin {
    /// The registry of this plugin's services.
    pub fn registry(&self) -> Arc<Registry> {
        Arc::clone(&self.registry)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Running>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl Plugin for RpcPlugin {
    fn name(&self) -> &'static str {
        "rpc"
    }

    fn weight(&self) -> u32 {
        100
    }

    fn requires(&self) -> Vec<ServiceKey> {
        vec![ServiceKey::of::<Arc<PluginDirectory>>()]
    }

    fn provides(&self) -> Vec<ServiceKey> {
        vec![ServiceKey::of::<Arc<dyn RpcRegistry>>()]
    }

    async fn init(&mut self, ctx: &mut InitContext<'_>) -> Result<Status, PluginError> {
        if !ctx.is_configured() {
            return Ok(Status::Disabled);
        }
        let config: RpcConfig = ctx.section()?;
        let listen = ListenAddr::parse(&config.listen)
            .map_err(|message| rr_config::ConfigError::invalid("rpc.listen", message))?;
        let directory = ctx.require::<Arc<PluginDirectory>>()?;
        services::register_builtin(
            self.registry.as_ref(),
            directory,
            ctx.config().tree().clone(),
        );
        let registry: Arc<dyn RpcRegistry> = self.registry.clone();
        ctx.provide(registry);
        self.listen = Some(listen);
        Ok(Status::Enabled)
    }

    async fn serve(&self, _ctx: ServeContext) -> Result<(), PluginError> {
        let addr = self
            .listen
            .clone()
            .ok_or_else(|| PluginError::other("rpc served before init"))?;
        let listener = server::Listener::bind(&addr)
            .await
            .map_err(|e| PluginError::other(format!("rpc: cannot listen on {addr}: {e}")))?;
        tracing::info!(target: "rpc", address = %addr, "RPC plugin started");
        if let listen::ListenAddr::Tcp(tcp) = &addr {
            rr_plugin::warn_if_exposed("rpc", "rpc.listen", tcp);
        }
        let registry = Arc::clone(&self.registry);
        let accept = tokio::spawn(server::accept_loop(listener, registry));
        *self.lock() = Some(Running { accept, addr });
        Ok(())
    }

    async fn stop(&self) -> Result<(), PluginError> {
        let Some(running) = self.lock().take() else {
            return Ok(());
        };
        // Aborting the accept loop drops its set of connection tasks,
        // which closes every connection.
        running.accept.abort();
        let _ = running.accept.await;
        if let ListenAddr::Unix(path) = &running.addr {
            let _ = std::fs::remove_file(path);
        }
        tracing::debug!(target: "rpc", "RPC plugin stopped");
        Ok(())
    }
}
