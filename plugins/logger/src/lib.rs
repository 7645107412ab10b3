//! The `logs` plugin: RoadRunner-shaped log lines.
//!
//! RoadRunner logs through zap; users grep and ship those lines, so the shapes
//! are kept: `development` prints `time  LEVEL  logger  message  {fields}`,
//! `production` prints one JSON object per line (`level`, `ts`, `logger`,
//! `msg`, fields), `raw` prints only the message (worker output passes
//! through untouched), `off` prints nothing. The logger of a line is the
//! tracing target (`server`, `ticker`, ...), and `channels.<name>.level` sets
//! a level per logger.

#![forbid(unsafe_code)]

mod format;

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};

use rr_config::ConfigError;
use rr_plugin::{async_trait, InitContext, Plugin, PluginError, Status};
use serde::Deserialize;
use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;

pub use format::{utc_time, Mode, UtcTime};
use format::{Format, LineLayer};

/// The `logs` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct LogsConfig {
    /// `development` (default), `production`, `raw`, or `off`/`none`.
    pub mode: String,
    /// Lowest level printed: `debug` (RoadRunner's default in every mode),
    /// `info`, `warn`, `error`, `panic`, `fatal`.
    pub level: String,
    /// `console` or `json`; the mode decides when absent.
    pub encoding: Option<String>,
    /// Where lines go: `stderr` (default), `stdout`, or file paths. A single
    /// string is one path (comma-separated for several), as in RoadRunner.
    pub output: Option<Vec<String>>,
    /// Accepted for compatibility; errors go to `output` as well.
    pub err_output: Option<Vec<String>>,
    /// Appended to every line; `\n` by default.
    pub line_ending: String,
    /// Per-logger settings, e.g. `channels.server.level: info`.
    pub channels: BTreeMap<String, ChannelConfig>,
}

impl Default for LogsConfig {
    fn default() -> Self {
        LogsConfig {
            mode: "development".into(),
            level: "debug".into(),
            encoding: None,
            output: None,
            err_output: None,
            line_ending: "\n".into(),
            channels: BTreeMap::new(),
        }
    }
}

/// A `logs.channels.<name>` entry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ChannelConfig {
    /// Level for this logger only.
    pub level: Option<String>,
}

/// The `logs` plugin. It is always enabled: without a `logs` section it
/// logs in development mode, as RoadRunner does.
#[derive(Debug, Default)]
pub struct LoggerPlugin;

#[async_trait]
impl Plugin for LoggerPlugin {
    fn name(&self) -> &'static str {
        "logs"
    }

    /// Heaviest of all, so it is initialised before anything that logs.
    fn weight(&self) -> u32 {
        1000
    }

    async fn init(&mut self, ctx: &mut InitContext<'_>) -> Result<Status, PluginError> {
        let config: LogsConfig = ctx.section()?;
        install(&config)?;
        Ok(Status::Enabled)
    }
}

/// Installs the global subscriber for `config`. A second call in the same
/// process (tests) keeps the first subscriber.
pub fn install(config: &LogsConfig) -> Result<(), ConfigError> {
    let mode = Mode::parse(&config.mode).map_err(|m| ConfigError::invalid("logs.mode", m))?;
    let level = parse_level(&config.level).map_err(|m| ConfigError::invalid("logs.level", m))?;
    let mut targets = Targets::new().with_default(level);
    for (name, channel) in &config.channels {
        if let Some(level) = &channel.level {
            let level = parse_level(level)
                .map_err(|m| ConfigError::invalid(format!("logs.channels.{name}.level"), m))?;
            targets = targets.with_target(name.clone(), level);
        }
    }
    let json = match config.encoding.as_deref() {
        None => mode == Mode::Production,
        Some("json") => true,
        Some("console") => false,
        Some(other) => {
            return Err(ConfigError::invalid(
                "logs.encoding",
                format!("unknown encoding {other:?}: expected console or json"),
            ))
        }
    };
    let outputs = config
        .output
        .as_ref()
        .cloned()
        .unwrap_or_else(|| vec!["stderr".to_owned()]);
    let mut sinks: Vec<Box<dyn Write + Send>> = Vec::new();
    let mut color = mode == Mode::Development;
    for output in &outputs {
        match output.as_str() {
            "stderr" => {
                color &= std::io::stderr().is_terminal();
                sinks.push(Box::new(std::io::stderr()));
            }
            "stdout" => {
                color &= std::io::stdout().is_terminal();
                sinks.push(Box::new(std::io::stdout()));
            }
            path => {
                color = false;
                let file = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| {
                        ConfigError::invalid(
                            "logs.output",
                            format!("cannot open log file {path:?}: {e}"),
                        )
                    })?;
                sinks.push(Box::new(file));
            }
        }
    }
    let format = Format {
        mode,
        json,
        color,
        line_ending: config.line_ending.clone(),
    };
    let layer = LineLayer::new(format, Arc::new(Mutex::new(sinks)));
    let subscriber = tracing_subscriber::registry().with(layer).with(targets);
    // Already installed (several containers in one test process): keep it.
    let _ = tracing::subscriber::set_global_default(subscriber);
    Ok(())
}

fn parse_level(level: &str) -> Result<LevelFilter, String> {
    Ok(match level.to_ascii_lowercase().as_str() {
        "debug" => LevelFilter::DEBUG,
        "info" => LevelFilter::INFO,
        "warn" | "warning" => LevelFilter::WARN,
        "error" | "dpanic" | "panic" | "fatal" => LevelFilter::ERROR,
        "trace" => LevelFilter::TRACE,
        "off" | "none" => LevelFilter::OFF,
        other => {
            return Err(format!(
                "unknown level {other:?}: expected debug, info, warn, error, panic or fatal"
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_parse_like_zap() {
        assert_eq!(parse_level("DEBUG"), Ok(LevelFilter::DEBUG));
        assert_eq!(parse_level("warning"), Ok(LevelFilter::WARN));
        assert!(parse_level("loud").expect_err("bad").contains("loud"));
    }
}
