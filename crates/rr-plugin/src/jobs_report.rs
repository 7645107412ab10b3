//! What a jobs plugin tells the rest of rr about its pipelines
//! (RoadRunner's `JobsChecker`). The jobs plugin provides an
//! `Arc<dyn JobsReporter>`; the status plugin's `/jobs` endpoint reads it,
//! so neither reaches into the other.

use async_trait::async_trait;
use serde::Serialize;

/// The state of one jobs pipeline: RoadRunner's `jobs.State`, serialised
/// with the field names of its status plugin's `/jobs` report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PipelineState {
    /// The pipeline's name.
    pub pipeline: String,
    /// Its priority.
    pub priority: u64,
    /// True while it consumes (not paused).
    pub ready: bool,
    /// The broker's queue, tube or stream it uses.
    pub queue: String,
    /// Jobs waiting or running.
    pub active: i64,
    /// Jobs waiting for their delay.
    pub delayed: i64,
    /// Jobs a consumer holds.
    pub reserved: i64,
    /// The driver (`memory`, `amqp`, ...).
    pub driver: String,
    /// Why the state could not be read (the broker is down, ...), or empty.
    pub error_message: String,
}

/// Reports the state of every pipeline.
#[async_trait]
pub trait JobsReporter: Send + Sync {
    /// One entry per pipeline, in name order. A pipeline whose state cannot
    /// be read is still listed, with `error_message` saying why.
    async fn pipeline_states(&self) -> Vec<PipelineState>;
}
