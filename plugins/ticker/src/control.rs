//! The `schedules` RPC service: list schedules with their status and
//! counts, trigger one now, pause and resume (JSON codec).
//!
//! - `schedules.List` (any body) → `[{name, spec, timezone, overlap,
//!   max_concurrent, catch_up, paused, next_run, last_run, last_result, counts}]`,
//!   times in unix milliseconds or `null`.
//! - `schedules.Trigger` (body: name) → `true` when a run started now,
//!   `false` when the overlap policy skipped (or queued) it.
//! - `schedules.Pause` / `schedules.Resume` (body: name) → `true`.
//!
//! An unknown name answers the error `unknown schedule: <name>`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rr_plugin::{async_trait, RpcService};
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};

use crate::plan::{unix_ms, Timing};
use crate::runner::{CatchUp, Control, Overlap, ScheduleStats};
use crate::Schedule;

/// goridge's JSON codec flag.
const CODEC_JSON: u8 = 0x08;
/// Bound for a schedule's loop to answer a command.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// One schedule as the service sees it.
pub struct Entry {
    name: Arc<str>,
    timing: Timing,
    overlap: Overlap,
    catch_up: CatchUp,
    stats: Arc<ScheduleStats>,
    control: mpsc::UnboundedSender<Control>,
}

impl Entry {
    /// `schedule`'s entry, commanding its loop through `control`.
    pub fn new(
        schedule: &Schedule,
        stats: Arc<ScheduleStats>,
        control: mpsc::UnboundedSender<Control>,
    ) -> Entry {
        Entry {
            name: Arc::clone(&schedule.spec.name),
            timing: schedule.spec.timing.clone(),
            overlap: schedule.spec.overlap,
            catch_up: schedule.spec.catch_up,
            stats,
            control,
        }
    }

    fn describe(&self) -> Value {
        let status = self.stats.status();
        let (spec, timezone) = match &self.timing {
            Timing::Every(every) => (format!("every {}", go_duration(*every)), Value::Null),
            Timing::Cron { cron, timezone } => (
                format!("cron {}", cron.as_str()),
                Value::String(timezone.name().to_owned()),
            ),
        };
        let (overlap, max_concurrent) = match self.overlap {
            Overlap::Skip => ("skip", Value::Null),
            Overlap::Queue => ("queue", Value::Null),
            Overlap::Replace => ("replace", Value::Null),
            Overlap::Allow(max) => ("allow", json!(max)),
        };
        let catch_up = match self.catch_up {
            CatchUp::None => json!("none"),
            CatchUp::Last => json!("last"),
            CatchUp::All(limit) => json!(format!("all (up to {limit})")),
        };
        let s = &self.stats;
        json!({
            "name": &*self.name,
            "spec": spec,
            "timezone": timezone,
            "overlap": overlap,
            "max_concurrent": max_concurrent,
            "catch_up": catch_up,
            "paused": status.paused,
            "next_run": status.next_run.map(unix_ms),
            "last_run": status.last_run.map(unix_ms),
            "last_result": status.last_result,
            "counts": {
                "started": s.started(),
                "succeeded": s.succeeded(),
                "failed": s.failed(),
                "timed_out": s.timed_out(),
                "skipped": s.skipped(),
                "queued": s.queued(),
                "replaced": s.replaced(),
                "caught_up": s.caught_up(),
                "no_worker": s.no_worker(),
                "elsewhere": s.elsewhere(),
            },
        })
    }

    async fn command<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Control,
    ) -> Result<T, String> {
        let (reply, answer) = oneshot::channel();
        let not_running = || {
            format!(
                "schedule {} is not running (is the ticker serving?)",
                self.name
            )
        };
        self.control.send(make(reply)).map_err(|_| not_running())?;
        match tokio::time::timeout(ANSWER_TIMEOUT, answer).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(_)) => Err(not_running()),
            Err(_) => Err(format!(
                "schedule {} did not answer within {ANSWER_TIMEOUT:?}",
                self.name
            )),
        }
    }
}

/// The `schedules` service.
pub struct SchedulesService {
    entries: Vec<Entry>,
}

impl SchedulesService {
    /// A service over these schedules.
    pub fn new(entries: Vec<Entry>) -> SchedulesService {
        SchedulesService { entries }
    }

    fn find(&self, body: &[u8]) -> Result<&Entry, String> {
        let name: String = serde_json::from_slice(body)
            .map_err(|e| format!("the body must be a schedule name as a JSON string: {e}"))?;
        self.entries
            .iter()
            .find(|e| *e.name == *name)
            .ok_or_else(|| format!("unknown schedule: {name}"))
    }

    /// Handles `method` with a JSON `body`; the JSON reply.
    pub async fn call_json(&self, method: &str, body: &[u8]) -> Result<Value, String> {
        match method {
            "List" => Ok(Value::Array(
                self.entries.iter().map(Entry::describe).collect(),
            )),
            "Trigger" => {
                let entry = self.find(body)?;
                Ok(Value::Bool(entry.command(Control::Trigger).await?))
            }
            "Pause" => {
                let entry = self.find(body)?;
                entry.command(Control::Pause).await?;
                Ok(Value::Bool(true))
            }
            "Resume" => {
                let entry = self.find(body)?;
                entry.command(Control::Resume).await?;
                Ok(Value::Bool(true))
            }
            _ => Err(format!("rpc: can't find method schedules.{method}")),
        }
    }
}

#[async_trait]
impl RpcService for SchedulesService {
    async fn call(&self, method: &str, codec: u8, body: Bytes) -> Result<Bytes, String> {
        if codec & CODEC_JSON == 0 {
            return Err(format!(
                "codec 0x{codec:02x} is not supported by the schedules service; use JSON"
            ));
        }
        let value = self.call_json(method, &body).await?;
        serde_json::to_vec(&value)
            .map(Bytes::from)
            .map_err(|e| e.to_string())
    }
}

/// A duration as Go prints it, shortened: `1h30m`, `30s`, `1.5s`, `100ms`.
pub fn go_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return format!("{}µs", d.as_micros());
    }
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let (h, m) = (ms / 3_600_000, ms / 60_000 % 60);
    let s = ms % 60_000;
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 {
        if s.is_multiple_of(1000) {
            out.push_str(&format!("{}s", s / 1000));
        } else {
            out.push_str(&format!("{}s", s as f64 / 1000.0));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_go() {
        assert_eq!(go_duration(Duration::from_millis(100)), "100ms");
        assert_eq!(go_duration(Duration::from_secs(30)), "30s");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(go_duration(Duration::from_secs(5400)), "1h30m");
        assert_eq!(go_duration(Duration::from_secs(3600)), "1h");
    }
}
