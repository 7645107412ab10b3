//! The `rpc` plugin: goridge RPC on rpc.listen, with the informer and resetter services, and the RPC client the CLI uses.
#![forbid(unsafe_code)]

use rr_plugin::{async_trait, InitContext, Plugin, PluginError, Status};

/// The `rpc` plugin (being built: disabled for now).
#[derive(Debug, Default)]
pub struct RpcPlugin;

#[async_trait]
impl Plugin for RpcPlugin {
    fn name(&self) -> &'static str {
        "rpc"
    }

    fn weight(&self) -> u32 {
        100
    }

    async fn init(&mut self, _ctx: &mut InitContext<'_>) -> Result<Status, PluginError> {
        Ok(Status::Disabled)
    }
}
