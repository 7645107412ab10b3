//! The services the `rpc` plugin registers itself: `rpc`, `informer` and
//! `resetter` (RoadRunner's rpc, informer and resetter plugins).

use std::sync::Arc;
use std::time::UNIX_EPOCH;

use bytes::Bytes;
use rr_plugin::{async_trait, PluginDirectory, PluginError, RpcRegistry, RpcService};
use rr_pool::WorkerInfo;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::codec::{decode_arg, unsupported, Codec, Reply};

/// Go net/rpc's text for a method a service does not have.
pub fn unknown_method(service: &str, method: &str) -> String {
    format!("rpc: can't find method {service}.{method}")
}

/// Registers `rpc`, `informer` and `resetter` in `registry`.
pub fn register_builtin(
    registry: &dyn RpcRegistry,
    directory: Arc<PluginDirectory>,
    config: Value,
) {
    registry.register("rpc", Arc::new(RpcCore { config }));
    registry.register(
        "informer",
        Arc::new(Informer {
            directory: Arc::clone(&directory),
        }),
    );
    registry.register("resetter", Arc::new(Resetter { directory }));
}

/// What every built-in method does first: the method must exist, and the
/// codec must be JSON or raw.
fn check(service: &str, methods: &[&str], method: &str, codec: u8) -> Result<Codec, String> {
    if !methods.contains(&method) {
        return Err(unknown_method(service, method));
    }
    match Codec::from_flags(codec) {
        codec @ (Codec::Json | Codec::Raw) => Ok(codec),
        other => Err(unsupported(other, service)),
    }
}

/// `rpc.Version` and `rpc.Config`.
struct RpcCore {
    config: Value,
}

#[async_trait]
impl RpcService for RpcCore {
    async fn call(&self, method: &str, codec: u8, _body: Bytes) -> Result<Bytes, String> {
        let codec = check("rpc", &["Version", "Config"], method, codec)?;
        let reply = match method {
            // RoadRunner's Version replies a string, so raw gets the text.
            "Version" if codec == Codec::Raw => {
                Reply::Bytes(env!("CARGO_PKG_VERSION").as_bytes().to_vec())
            }
            "Version" => Reply::Value(Value::String(env!("CARGO_PKG_VERSION").to_owned())),
            // RoadRunner replies []byte: raw bytes, or base64 in JSON.
            _ => Reply::Bytes(serde_json::to_vec(&self.config).map_err(|e| e.to_string())?),
        };
        reply.encode(codec, "rpc")
    }
}

/// One worker as RoadRunner's informer reports it (`process.State`), the
/// shape PHP's `Spiral\RoadRunner\WorkerPool` reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerState {
    /// Process id.
    pub pid: u32,
    /// RoadRunner's state number.
    pub status: u8,
    /// Payloads executed.
    #[serde(rename = "numExecs")]
    pub num_execs: u64,
    /// Start time, unix nanoseconds.
    pub created: u64,
    /// Resident memory in bytes.
    #[serde(rename = "memoryUsage")]
    pub memory_usage: u64,
    /// CPU use in percent (not measured yet: 0).
    #[serde(rename = "CPUPercent")]
    pub cpu_percent: f64,
    /// The command (RoadRunner's service plugin only; empty here).
    #[serde(default)]
    pub command: String,
    /// The state's name.
    #[serde(rename = "statusStr")]
    pub status_str: String,
}

impl From<&WorkerInfo> for WorkerState {
    fn from(worker: &WorkerInfo) -> WorkerState {
        WorkerState {
            pid: worker.pid,
            status: worker.status as u8,
            num_execs: worker.num_execs,
            created: worker
                .created
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
            memory_usage: worker.memory_bytes,
            cpu_percent: 0.0,
            command: String::new(),
            status_str: worker.status.as_str().to_owned(),
        }
    }
}

/// `informer.List`, `informer.Workers`, `informer.Jobs`,
/// `informer.AddWorker`, `informer.RemoveWorker`.
struct Informer {
    directory: Arc<PluginDirectory>,
}

#[async_trait]
impl RpcService for Informer {
    async fn call(&self, method: &str, codec: u8, body: Bytes) -> Result<Bytes, String> {
        let methods = ["List", "Workers", "Jobs", "AddWorker", "RemoveWorker"];
        let codec = check("informer", &methods, method, codec)?;
        let value = match method {
            "List" => {
                let names: Vec<&str> = self
                    .directory
                    .all()
                    .iter()
                    .filter(|p| p.workers().is_some())
                    .map(|p| p.name())
                    .collect();
                json!(names)
            }
            "Workers" => {
                let name: String = decode_arg(codec, &body)?;
                // An unknown plugin is no error in RoadRunner: an empty list.
                let workers: Vec<WorkerState> = self
                    .directory
                    .find(&name)
                    .and_then(|p| p.workers())
                    .unwrap_or_default()
                    .iter()
                    .map(WorkerState::from)
                    .collect();
                json!({ "workers": workers })
            }
            // No plugin here has jobs; RoadRunner answers an empty list then.
            "Jobs" => {
                let _: String = decode_arg(codec, &body)?;
                json!([])
            }
            // AddWorker / RemoveWorker. RoadRunner's wording for a plugin
            // (or a name) that cannot manage workers.
            _ => {
                let name: String = decode_arg(codec, &body)?;
                let unsupported = || format!("plugin {name} does not support workers management");
                let plugin = self.directory.find(&name).ok_or_else(unsupported)?;
                let result = if method == "AddWorker" {
                    plugin.add_worker().await.map(|()| true)
                } else {
                    plugin.remove_worker().await
                };
                match result {
                    Ok(done) => json!(done),
                    Err(PluginError::NotSupported { .. }) => return Err(unsupported()),
                    Err(err) => return Err(err.to_string()),
                }
            }
        };
        Reply::Value(value).encode(codec, "informer")
    }
}

/// `resetter.List` and `resetter.Reset`.
struct Resetter {
    directory: Arc<PluginDirectory>,
}

#[async_trait]
impl RpcService for Resetter {
    async fn call(&self, method: &str, codec: u8, body: Bytes) -> Result<Bytes, String> {
        let codec = check("resetter", &["List", "Reset"], method, codec)?;
        let value = match method {
            "List" => {
                let names: Vec<&str> = self
                    .directory
                    .all()
                    .iter()
                    .filter(|p| p.can_reset())
                    .map(|p| p.name())
                    .collect();
                json!(names)
            }
            _ => {
                let name: String = decode_arg(codec, &body)?;
                let plugin = self
                    .directory
                    .find(&name)
                    .filter(|p| p.can_reset())
                    .ok_or_else(|| format!("no such plugin: {name}"))?;
                tracing::info!(target: "rpc", plugin = %name, "resetting plugin");
                plugin.reset().await.map_err(|e| e.to_string())?;
                tracing::info!(target: "rpc", plugin = %name, "plugin reset");
                Value::Bool(true)
            }
        };
        Reply::Value(value).encode(codec, "resetter")
    }
}
