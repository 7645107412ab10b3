//! The `status` plugin: /health and /ready probes per plugin.
#![forbid(unsafe_code)]

use rr_plugin::{async_trait, InitContext, Plugin, PluginError, Status};

/// The `status` plugin (being built: disabled for now).
#[derive(Debug, Default)]
pub struct StatusPlugin;

#[async_trait]
impl Plugin for StatusPlugin {
    fn name(&self) -> &'static str {
        "status"
    }

    fn weight(&self) -> u32 {
        1
    }

    async fn init(&mut self, _ctx: &mut InitContext<'_>) -> Result<Status, PluginError> {
        Ok(Status::Disabled)
    }
}
