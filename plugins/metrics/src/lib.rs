//! The `metrics` plugin: Prometheus text on metrics.address, pool and plugin metrics, and the metrics RPC service.
#![forbid(unsafe_code)]

use rr_plugin::{async_trait, InitContext, Plugin, PluginError, Status};

/// The `metrics` plugin (being built: disabled for now).
#[derive(Debug, Default)]
pub struct MetricsPlugin;

#[async_trait]
impl Plugin for MetricsPlugin {
    fn name(&self) -> &'static str {
        "metrics"
    }

    fn weight(&self) -> u32 {
        1
    }

    async fn init(&mut self, _ctx: &mut InitContext<'_>) -> Result<Status, PluginError> {
        Ok(Status::Disabled)
    }
}
