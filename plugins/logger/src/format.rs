//! Turning tracing events into RoadRunner-shaped lines.

use std::fmt::Write as _;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::Layer;

/// The `logs.mode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Human-readable console lines (the default).
    Development,
    /// One JSON object per line.
    Production,
    /// The message only.
    Raw,
    /// Nothing.
    Off,
}

impl Mode {
    /// Parses a mode name, case-insensitively.
    pub fn parse(mode: &str) -> Result<Mode, String> {
        Ok(match mode.to_ascii_lowercase().as_str() {
            "" | "development" => Mode::Development,
            "production" => Mode::Production,
            "raw" => Mode::Raw,
            "off" | "none" => Mode::Off,
            other => {
                return Err(format!(
                    "unknown mode {other:?}: expected development, production, raw or off"
                ))
            }
        })
    }
}

/// How lines are shaped.
#[derive(Debug, Clone)]
pub(crate) struct Format {
    pub(crate) mode: Mode,
    pub(crate) json: bool,
    pub(crate) color: bool,
    pub(crate) line_ending: String,
}

/// A tracing layer that writes one line per event.
pub(crate) struct LineLayer {
    format: Format,
    sinks: Arc<Mutex<Vec<Box<dyn Write + Send>>>>,
}

impl LineLayer {
    pub(crate) fn new(format: Format, sinks: Arc<Mutex<Vec<Box<dyn Write + Send>>>>) -> Self {
        LineLayer { format, sinks }
    }
}

#[derive(Default)]
struct Fields {
    message: String,
    pairs: Vec<(&'static str, serde_json::Value)>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            self.pairs.push((field.name(), value.into()));
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.pairs.push((field.name(), value.into()));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.pairs.push((field.name(), value.into()));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.pairs.push((field.name(), value.into()));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.pairs.push((field.name(), value.into()));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            self.pairs.push((field.name(), format!("{value:?}").into()));
        }
    }
}

impl<S: Subscriber> Layer<S> for LineLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if self.format.mode == Mode::Off {
            return;
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        let meta = event.metadata();
        let line = render(
            &self.format,
            *meta.level(),
            meta.target(),
            fields,
            SystemTime::now(),
        );
        let mut sinks = self.sinks.lock().unwrap_or_else(|p| p.into_inner());
        for sink in sinks.iter_mut() {
            let _ = sink.write_all(line.as_bytes());
        }
    }
}

fn level_name(level: Level) -> &'static str {
    match level {
        Level::ERROR => "error",
        Level::WARN => "warn",
        Level::INFO => "info",
        Level::DEBUG | Level::TRACE => "debug",
    }
}

fn render(format: &Format, level: Level, logger: &str, fields: Fields, now: SystemTime) -> String {
    let mut line = String::with_capacity(128);
    let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    if format.mode == Mode::Raw {
        line.push_str(&fields.message);
    } else if format.json {
        let mut object = serde_json::Map::new();
        object.insert("level".into(), level_name(level).into());
        object.insert("ts".into(), (since_epoch.as_nanos() as u64).into());
        object.insert("logger".into(), logger.into());
        object.insert("msg".into(), fields.message.into());
        for (key, value) in fields.pairs {
            object.insert(key.into(), value);
        }
        line.push_str(&serde_json::Value::Object(object).to_string());
    } else {
        let level_text = level_name(level).to_ascii_uppercase();
        let level_text = if format.color {
            let color = match level {
                Level::ERROR => "31",
                Level::WARN => "33",
                Level::INFO => "34",
                _ => "35",
            };
            format!("\x1b[{color}m{level_text}\x1b[0m")
        } else {
            level_text
        };
        let _ = write!(
            line,
            "{}\t{level_text}\t{logger}\t{}",
            iso8601(since_epoch),
            fields.message
        );
        if !fields.pairs.is_empty() {
            let object: serde_json::Map<String, serde_json::Value> = fields
                .pairs
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect();
            let _ = write!(line, "\t{}", serde_json::Value::Object(object));
        }
    }
    line.push_str(&format.line_ending);
    line
}

/// A UTC calendar date and time of day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UtcTime {
    /// Year, e.g. 2026.
    pub year: i64,
    /// Month, 1..=12.
    pub month: i64,
    /// Day of the month, 1..=31.
    pub day: i64,
    /// Hour, 0..=23.
    pub hour: u64,
    /// Minute, 0..=59.
    pub minute: u64,
    /// Second, 0..=59.
    pub second: u64,
}

/// The UTC calendar time of `unix_secs` (Howard Hinnant's civil_from_days;
/// no time-zone database needed).
pub fn utc_time(unix_secs: u64) -> UtcTime {
    let days = (unix_secs / 86_400) as i64;
    let rem = unix_secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    UtcTime {
        year: yoe + era * 400 + i64::from(month <= 2),
        month,
        day,
        hour: rem / 3600,
        minute: rem % 3600 / 60,
        second: rem % 60,
    }
}

/// `2026-11-23T14:17:00.123Z` for a time since the epoch.
fn iso8601(since_epoch: std::time::Duration) -> String {
    let t = utc_time(since_epoch.as_secs());
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year,
        t.month,
        t.day,
        t.hour,
        t.minute,
        t.second,
        since_epoch.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn fields(message: &str, pairs: Vec<(&'static str, serde_json::Value)>) -> Fields {
        Fields {
            message: message.into(),
            pairs,
        }
    }

    fn format(mode: Mode, json: bool) -> Format {
        Format {
            mode,
            json,
            color: false,
            line_ending: "\n".into(),
        }
    }

    #[test]
    fn iso8601_matches_known_instants() {
        assert_eq!(iso8601(Duration::ZERO), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            iso8601(Duration::from_millis(1_795_443_420_123)),
            "2026-11-23T14:17:00.123Z"
        );
        assert_eq!(
            iso8601(Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00.000Z"
        );
    }

    #[test]
    fn development_lines_are_tab_separated_with_json_fields() {
        let line = render(
            &format(Mode::Development, false),
            Level::INFO,
            "ticker",
            fields("tick sent", vec![("tick", 3.into())]),
            UNIX_EPOCH,
        );
        assert_eq!(
            line,
            "1970-01-01T00:00:00.000Z\tINFO\tticker\ttick sent\t{\"tick\":3}\n"
        );
    }

    #[test]
    fn production_lines_are_json_objects() {
        let line = render(
            &format(Mode::Production, true),
            Level::WARN,
            "server",
            fields("worker exited", vec![("pid", 42.into())]),
            UNIX_EPOCH + Duration::from_nanos(5),
        );
        let value: serde_json::Value = serde_json::from_str(&line).expect("json line");
        assert_eq!(value["level"], "warn");
        assert_eq!(value["ts"], 5);
        assert_eq!(value["logger"], "server");
        assert_eq!(value["msg"], "worker exited");
        assert_eq!(value["pid"], 42);
    }

    #[test]
    fn raw_lines_are_the_message_only() {
        let line = render(
            &format(Mode::Raw, false),
            Level::INFO,
            "server",
            fields("TICK n=1", vec![("pid", 42.into())]),
            UNIX_EPOCH,
        );
        assert_eq!(line, "TICK n=1\n");
    }
}
