//! The service through which plugins get worker pools.

use async_trait::async_trait;
use rr_pool::{Pool, PoolConfig, PoolError};

/// Starts worker pools for plugins; the `server` plugin provides it.
///
/// A plugin takes it in `init` with
/// `ctx.require::<std::sync::Arc<dyn WorkerServer>>()` and calls
/// [`new_pool`](WorkerServer::new_pool) in `serve`.
#[async_trait]
pub trait WorkerServer: Send + Sync {
    /// Starts a pool named after the plugin (`name` is used in logs). `env`
    /// is added to every worker's environment; by convention it holds
    /// `RR_MODE=<plugin>` so the PHP side can pick its dispatcher. The
    /// pool's own `command` overrides `server.command` when set.
    async fn new_pool(
        &self,
        name: &str,
        config: &PoolConfig,
        env: &[(String, String)],
    ) -> Result<Pool, PoolError>;
}
