//! The `endure` section (plugin container settings).

use std::time::Duration;

use serde::Deserialize;

/// Settings of the plugin container, from the top-level `endure` section.
///
/// RoadRunner's CLI reads this section from the raw file: no env expansion,
/// no `-o` overrides and no includes apply to it, and [`crate::Config::endure`]
/// behaves the same way.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct EndureConfig {
    /// How long each plugin may take to stop (`grace_period`, default 30s).
    #[serde(deserialize_with = "crate::duration::non_negative")]
    pub grace_period: Duration,
    /// Print the plugin dependency graph (DOT) at start-up (`print_graph`, default false).
    pub print_graph: bool,
    /// Container log level (`log_level`, default `error`): `debug`, `info`,
    /// `warn`/`warning` or `error`. RoadRunner prints a warning and uses
    /// `error` for anything else; see [`EndureConfig::effective_log_level`].
    pub log_level: String,
    /// systemd watchdog interval in seconds (`watchdog_sec`, default 0 = off).
    pub watchdog_sec: u64,
}

impl Default for EndureConfig {
    fn default() -> Self {
        EndureConfig {
            grace_period: Duration::from_secs(30),
            print_graph: false,
            log_level: "error".to_owned(),
            watchdog_sec: 0,
        }
    }
}

impl EndureConfig {
    /// The log level to use and whether `log_level` was recognised: one of
    /// `debug`, `info`, `warn` (also for `warning`) or `error`
    /// (case-insensitive); anything else gives `("error", false)`, and the
    /// caller should then warn, as RoadRunner does.
    pub fn effective_log_level(&self) -> (&'static str, bool) {
        match self.log_level.to_ascii_lowercase().as_str() {
            "debug" => ("debug", true),
            "info" => ("info", true),
            "warn" | "warning" => ("warn", true),
            "error" => ("error", true),
            _ => ("error", false),
        }
    }
}
