//! The `ticker.schedules` section: named schedules, read and checked into
//! [`ScheduleSpec`]s plus their payloads.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rr_config::duration::option_non_negative;
use rr_config::ConfigError;
use serde::Deserialize;

use crate::plan::{parse_cron, parse_timezone, Timing};
use crate::runner::{CatchUp, Overlap, ScheduleSpec};

/// `catch_up_limit` when absent.
pub const DEFAULT_CATCH_UP_LIMIT: usize = 10;

/// One entry of `ticker.schedules`, as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScheduleConfig {
    /// A 5- or 6-field cron expression or a macro (`@hourly`).
    pub cron: Option<String>,
    /// IANA time zone of `cron`; UTC when absent.
    pub timezone: Option<String>,
    /// A fixed interval, the alternative to `cron`.
    #[serde(deserialize_with = "option_non_negative")]
    pub every: Option<Duration>,
    /// `skip` (default), `queue`, `allow` or `replace`.
    pub overlap: Option<String>,
    /// How many runs `overlap: allow` lets run at once (default 1).
    pub max_concurrent: Option<usize>,
    /// Random delay in `[0, jitter)` added to each planned time.
    #[serde(deserialize_with = "option_non_negative")]
    pub jitter: Option<Duration>,
    /// One run's bound.
    #[serde(deserialize_with = "option_non_negative")]
    pub timeout: Option<Duration>,
    /// Run once at start.
    pub run_on_start: bool,
    /// `none` (default), `last` or `all`: runs missed while paused that
    /// `Resume` runs.
    pub catch_up: Option<String>,
    /// How many missed runs `catch_up: all` runs at most (default 10).
    pub catch_up_limit: Option<usize>,
    /// The payload body; `{"schedule": NAME}` when absent.
    pub body: Option<String>,
    /// Extra payload context keys.
    pub context: serde_json::Map<String, serde_json::Value>,
    /// How long a due run waits for a free worker before it counts as
    /// `no_worker` (default: the pool's `allocate_timeout`).
    #[serde(deserialize_with = "option_non_negative")]
    pub worker_wait: Option<Duration>,
}

/// A checked schedule: its loop's spec and its payload.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// Timing and policies.
    pub spec: ScheduleSpec,
    /// The payload body.
    pub body: Arc<str>,
    /// Extra context keys.
    pub context: Arc<serde_json::Map<String, serde_json::Value>>,
    /// How long a due run waits for a free worker; `None` is the pool's
    /// `allocate_timeout`.
    pub worker_wait: Option<Duration>,
}

/// Checks every schedule; errors name the key, e.g.
/// `ticker.schedules.report.cron`.
pub fn build(schedules: &BTreeMap<String, ScheduleConfig>) -> Result<Vec<Schedule>, ConfigError> {
    schedules
        .iter()
        .map(|(name, config)| build_one(name, config))
        .collect()
}

fn build_one(name: &str, c: &ScheduleConfig) -> Result<Schedule, ConfigError> {
    let key = |field: &str| format!("ticker.schedules.{name}.{field}");
    if name.trim().is_empty() {
        return Err(ConfigError::invalid(
            "ticker.schedules",
            "a schedule needs a non-empty name",
        ));
    }
    let timing = match (&c.cron, c.every) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::invalid(
                key("every"),
                "set either `cron` or `every`, not both",
            ))
        }
        (None, None) => {
            return Err(ConfigError::missing(
                format!("ticker.schedules.{name}"),
                "a schedule needs `cron` or `every`",
            ))
        }
        (None, Some(every)) => {
            if c.timezone.is_some() {
                return Err(ConfigError::invalid(
                    key("timezone"),
                    "a time zone applies to `cron` only",
                ));
            }
            if every.is_zero() {
                return Err(ConfigError::invalid(key("every"), "must be above zero"));
            }
            Timing::Every(every)
        }
        (Some(expression), None) => {
            let cron = parse_cron(expression).map_err(|e| ConfigError::invalid(key("cron"), e))?;
            let timezone = match &c.timezone {
                Some(tz) => {
                    parse_timezone(tz).map_err(|e| ConfigError::invalid(key("timezone"), e))?
                }
                None => chrono_tz::UTC,
            };
            Timing::Cron {
                cron: Box::new(cron),
                timezone,
            }
        }
    };
    let overlap = match c.overlap.as_deref().map(str::trim) {
        None | Some("skip") => Overlap::Skip,
        Some("queue") => Overlap::Queue,
        Some("replace") => Overlap::Replace,
        Some("allow") => Overlap::Allow(c.max_concurrent.unwrap_or(1)),
        Some(other) => {
            return Err(ConfigError::invalid(
                key("overlap"),
                format!("{other:?}: expected skip, queue, allow or replace"),
            ))
        }
    };
    match (overlap, c.max_concurrent) {
        (Overlap::Allow(0), _) => {
            return Err(ConfigError::invalid(
                key("max_concurrent"),
                "must be at least 1",
            ))
        }
        (Overlap::Allow(_), _) | (_, None) => {}
        (_, Some(_)) => {
            return Err(ConfigError::invalid(
                key("max_concurrent"),
                "applies to `overlap: allow` only",
            ))
        }
    }
    let catch_up = match c.catch_up.as_deref().map(str::trim) {
        None | Some("none") => CatchUp::None,
        Some("last") => CatchUp::Last,
        Some("all") => CatchUp::All(c.catch_up_limit.unwrap_or(DEFAULT_CATCH_UP_LIMIT)),
        Some(other) => {
            return Err(ConfigError::invalid(
                key("catch_up"),
                format!("{other:?}: expected none, last or all"),
            ))
        }
    };
    match (catch_up, c.catch_up_limit) {
        (CatchUp::All(0), _) => {
            return Err(ConfigError::invalid(
                key("catch_up_limit"),
                "must be at least 1",
            ))
        }
        (CatchUp::All(_), _) | (_, None) => {}
        (_, Some(_)) => {
            return Err(ConfigError::invalid(
                key("catch_up_limit"),
                "applies to `catch_up: all` only",
            ))
        }
    }
    if c.worker_wait.is_some_and(|t| t.is_zero()) {
        return Err(ConfigError::invalid(
            key("worker_wait"),
            "must be above zero",
        ));
    }
    if c.timeout.is_some_and(|t| t.is_zero()) {
        return Err(ConfigError::invalid(key("timeout"), "must be above zero"));
    }
    let body = c
        .body
        .clone()
        .unwrap_or_else(|| serde_json::json!({ "schedule": name }).to_string());
    if body.is_empty() {
        return Err(ConfigError::invalid(key("body"), "must not be empty"));
    }
    Ok(Schedule {
        spec: ScheduleSpec {
            name: Arc::from(name),
            timing,
            overlap,
            jitter: c.jitter.unwrap_or_default(),
            timeout: c.timeout,
            run_on_start: c.run_on_start,
            catch_up,
            align_to_epoch: false,
        },
        body: Arc::from(body),
        context: Arc::new(c.context.clone()),
        worker_wait: c.worker_wait,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TickerConfig;

    fn read(yaml: &str) -> Result<Vec<Schedule>, ConfigError> {
        let config: TickerConfig = rr_config::Config::from_yaml_str_with_env(
            &format!("version: '3'\nticker:\n  schedules:\n{yaml}"),
            &[],
            &|_| None,
        )?
        .section("ticker")?;
        build(&config.schedules)
    }

    #[test]
    fn a_full_schedule_reads() {
        let schedules = read(
            "    report:\n      cron: \"0 */5 * * * *\"\n      timezone: Europe/Berlin\n      overlap: allow\n      max_concurrent: 2\n      jitter: 2s\n      timeout: 10s\n      run_on_start: true\n      catch_up: all\n      catch_up_limit: 3\n      body: '{\"kind\":\"report\"}'\n      context: { team: \"ops\", n: 3 }\n    beat:\n      every: 30s\n",
        )
        .expect("valid");
        assert_eq!(schedules.len(), 2);
        let beat = &schedules[0];
        assert_eq!(&*beat.spec.name, "beat");
        assert!(matches!(beat.spec.timing, Timing::Every(d) if d == Duration::from_secs(30)));
        assert_eq!(beat.spec.overlap, Overlap::Skip);
        assert_eq!(&*beat.body, r#"{"schedule":"beat"}"#);
        let report = &schedules[1];
        assert_eq!(report.spec.overlap, Overlap::Allow(2));
        assert_eq!(report.spec.jitter, Duration::from_secs(2));
        assert_eq!(report.spec.timeout, Some(Duration::from_secs(10)));
        assert!(report.spec.run_on_start);
        assert_eq!(report.spec.catch_up, CatchUp::All(3));
        assert_eq!(beat.spec.catch_up, CatchUp::None);
        assert_eq!(&*report.body, r#"{"kind":"report"}"#);
        assert_eq!(report.context["team"], "ops");
        assert_eq!(report.context["n"], 3);
    }

    #[test]
    fn mistakes_name_the_key() {
        for (yaml, key) in [
            (
                "    r:\n      cron: \"61 * * * *\"\n",
                "ticker.schedules.r.cron",
            ),
            (
                "    r:\n      cron: \"@every 5s\"\n",
                "ticker.schedules.r.cron",
            ),
            (
                "    r:\n      cron: \"@daily\"\n      timezone: Nowhere/City\n",
                "ticker.schedules.r.timezone",
            ),
            ("    r:\n      every: 5 s\n", "ticker.schedules.r.every"),
            ("    r:\n      every: 0s\n", "ticker.schedules.r.every"),
            (
                "    r:\n      every: 1s\n      cron: \"@daily\"\n",
                "ticker.schedules.r.every",
            ),
            ("    r:\n      jitter: 1s\n", "ticker.schedules.r"),
            (
                "    r:\n      every: 1s\n      overlap: sometimes\n",
                "ticker.schedules.r.overlap",
            ),
            (
                "    r:\n      every: 1s\n      overlap: allow\n      max_concurrent: 0\n",
                "ticker.schedules.r.max_concurrent",
            ),
            (
                "    r:\n      every: 1s\n      max_concurrent: 2\n",
                "ticker.schedules.r.max_concurrent",
            ),
            (
                "    r:\n      every: 1s\n      timezone: UTC\n",
                "ticker.schedules.r.timezone",
            ),
            (
                "    r:\n      every: 1s\n      jitter: -1s\n",
                "ticker.schedules.r.jitter",
            ),
            (
                "    r:\n      every: 1s\n      timeout: abc\n",
                "ticker.schedules.r.timeout",
            ),
            (
                "    r:\n      every: 1s\n      catch_up: some\n",
                "ticker.schedules.r.catch_up",
            ),
            (
                "    r:\n      every: 1s\n      catch_up: last\n      catch_up_limit: 2\n",
                "ticker.schedules.r.catch_up_limit",
            ),
            (
                "    r:\n      every: 1s\n      catch_up: all\n      catch_up_limit: 0\n",
                "ticker.schedules.r.catch_up_limit",
            ),
        ] {
            let err = read(yaml).expect_err(yaml).to_string();
            assert!(err.contains(&format!("`{key}`")), "{yaml} gave {err}");
        }
    }
}
