//! When a named schedule runs: cron expressions (in a time zone) and fixed
//! `every` intervals, plus jitter, as pure functions of UTC instants so they
//! can be tested on any date, and a [`Timeline`] mapping UTC onto the
//! monotonic clock (real, or a controllable one for tests).

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;
use tokio::time::Instant;

/// How a schedule's planned times follow each other.
#[derive(Debug, Clone)]
pub enum Timing {
    /// `start + k * every`.
    Every(Duration),
    /// The occurrences of a cron expression, in a time zone.
    Cron {
        /// The parsed expression.
        cron: Box<Cron>,
        /// Where its wall-clock fields are read.
        timezone: Tz,
    },
}

impl Timing {
    /// `every 1s` or `cron 0 * * * * (Europe/Berlin)`: how logs and the
    /// saved state name a timing.
    pub fn describe(&self) -> String {
        match self {
            Timing::Every(every) => format!("every {}", crate::control::go_duration(*every)),
            Timing::Cron { cron, timezone } => format!("cron {} ({timezone})", cron.as_str()),
        }
    }

    /// The gap between the planned times that follow `after` (a cron
    /// expression's gaps vary; this one stands for "about one period").
    pub fn period_after(&self, after: DateTime<Utc>) -> Duration {
        match self {
            Timing::Every(every) => *every,
            Timing::Cron { .. } => next_after(self, after)
                .and_then(|first| Some((first, next_after(self, first)?)))
                .and_then(|(first, second)| (second - first).to_std().ok())
                .unwrap_or(Duration::from_secs(3600)),
        }
    }
}

/// Parses a cron expression: 5 fields (minute first), 6 fields (seconds
/// first), or a macro (`@yearly`, `@annually`, `@monthly`, `@weekly`,
/// `@daily`, `@midnight`, `@hourly`). `@every` is not cron; use `every:`.
pub fn parse_cron(expression: &str) -> Result<Cron, String> {
    let trimmed = expression.trim();
    if trimmed.to_ascii_lowercase().starts_with("@every") {
        return Err("`@every` is not a cron expression; use the `every:` key".to_owned());
    }
    let fields = trimmed.split_whitespace().count();
    if !trimmed.starts_with('@') && !(5..=6).contains(&fields) {
        return Err(format!(
            "{fields} fields in {trimmed:?}: expected 5 (minute hour day month weekday), 6 (seconds first) or a macro such as @hourly"
        ));
    }
    trimmed
        .parse::<Cron>()
        .map_err(|e| format!("{trimmed:?} is not a valid cron expression: {e}"))
}

/// Parses an IANA time zone name (`Europe/Berlin`, `UTC`).
pub fn parse_timezone(name: &str) -> Result<Tz, String> {
    name.trim().parse::<Tz>().map_err(|_| {
        format!("{name:?} is not a known IANA time zone (such as UTC or Europe/Berlin)")
    })
}

/// The first planned time strictly after `after`: the next cron occurrence
/// in the schedule's time zone (a wall time skipped by a DST change runs at
/// the first instant after the gap; a wall time repeated by one runs once),
/// or `after + every`. `None` when a cron expression has no further
/// occurrence.
pub fn next_after(timing: &Timing, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    match timing {
        Timing::Every(every) => {
            let step = chrono::Duration::from_std(*every).ok()?;
            after.checked_add_signed(step)
        }
        Timing::Cron { cron, timezone } => {
            let local = timezone.from_utc_datetime(&after.naive_utc());
            cron.find_next_occurrence(&local, false)
                .ok()
                .map(|t| t.with_timezone(&Utc))
        }
    }
}

/// A random delay in `[0, jitter)`; zero when `jitter` is zero.
pub fn jitter_delay(jitter: Duration) -> Duration {
    let nanos = u64::try_from(jitter.as_nanos()).unwrap_or(u64::MAX);
    if nanos == 0 {
        return Duration::ZERO;
    }
    Duration::from_nanos(fastrand::u64(0..nanos))
}

/// Maps UTC times onto the monotonic clock from one anchor, so planned
/// times never drift with the wall clock's adjustments once started. A test
/// anchors it at any date and drives it with tokio's paused clock.
#[derive(Debug, Clone, Copy)]
pub struct Timeline {
    instant: Instant,
    utc: DateTime<Utc>,
}

impl Timeline {
    /// Anchored at the real current time.
    pub fn now() -> Timeline {
        Timeline::starting_at(Utc::now())
    }

    /// Anchored so that the current (possibly paused) instant is `utc`.
    pub fn starting_at(utc: DateTime<Utc>) -> Timeline {
        Timeline {
            instant: Instant::now(),
            utc,
        }
    }

    /// The current UTC time on this timeline.
    pub fn now_utc(&self) -> DateTime<Utc> {
        let elapsed = Instant::now().saturating_duration_since(self.instant);
        self.utc + chrono::Duration::from_std(elapsed).unwrap_or(chrono::Duration::MAX)
    }

    /// The monotonic instant of `utc` (the anchor for times before it).
    pub fn instant_of(&self, utc: DateTime<Utc>) -> Instant {
        let offset = (utc - self.utc).to_std().unwrap_or(Duration::ZERO);
        self.instant + offset
    }
}

/// Unix milliseconds of `t`.
pub fn unix_ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("rfc3339")
            .with_timezone(&Utc)
    }

    fn cron(expr: &str, tz: &str) -> Timing {
        Timing::Cron {
            cron: Box::new(parse_cron(expr).expect(expr)),
            timezone: parse_timezone(tz).expect(tz),
        }
    }

    fn occurrences(timing: &Timing, from: &str, n: usize) -> Vec<DateTime<Utc>> {
        let mut t = utc(from);
        (0..n)
            .map(|_| {
                t = next_after(timing, t).expect("next");
                t
            })
            .collect()
    }

    #[test]
    fn five_and_six_field_expressions_and_macros_parse() {
        for ok in [
            "*/5 * * * *",
            "0 */5 * * * *",
            "30 2 * * *",
            "@hourly",
            "@daily",
            "@weekly",
            "@monthly",
            "@yearly",
        ] {
            parse_cron(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in [
            "",
            "* * * *",
            "61 * * * *",
            "@every 5s",
            "* * * * * * * *",
            "x",
        ] {
            assert!(parse_cron(bad).is_err(), "{bad} parsed");
        }
    }

    #[test]
    fn five_fields_start_with_minutes_six_with_seconds() {
        let five = cron("*/15 * * * *", "UTC");
        assert_eq!(
            occurrences(&five, "2026-01-01T00:00:00Z", 2),
            [utc("2026-01-01T00:15:00Z"), utc("2026-01-01T00:30:00Z")]
        );
        let six = cron("*/15 * * * * *", "UTC");
        assert_eq!(
            occurrences(&six, "2026-01-01T00:00:00Z", 2),
            [utc("2026-01-01T00:00:15Z"), utc("2026-01-01T00:00:30Z")]
        );
        let hourly = cron("@hourly", "UTC");
        assert_eq!(
            occurrences(&hourly, "2026-01-01T00:00:00Z", 1),
            [utc("2026-01-01T01:00:00Z")]
        );
    }

    #[test]
    fn the_timezone_is_checked() {
        assert!(parse_timezone("Europe/Berlin").is_ok());
        assert!(parse_timezone("UTC").is_ok());
        assert!(parse_timezone("Mars/Olympus").is_err());
    }

    #[test]
    fn spring_forward_runs_a_skipped_wall_time_once_after_the_gap() {
        // Berlin 2026-03-29: 02:00 CET jumps to 03:00 CEST (01:00 UTC).
        let job = cron("30 2 * * *", "Europe/Berlin");
        assert_eq!(
            occurrences(&job, "2026-03-27T12:00:00Z", 3),
            [
                utc("2026-03-28T01:30:00Z"), // 02:30 CET
                utc("2026-03-29T01:00:00Z"), // 02:30 does not exist: 03:00 CEST
                utc("2026-03-30T00:30:00Z"), // 02:30 CEST
            ]
        );
    }

    #[test]
    fn fall_back_runs_a_repeated_wall_time_once() {
        // Berlin 2026-10-25: 03:00 CEST falls back to 02:00 CET (01:00 UTC);
        // 02:30 happens twice, at 00:30 and 01:30 UTC.
        let job = cron("30 2 * * *", "Europe/Berlin");
        let runs = occurrences(&job, "2026-10-23T12:00:00Z", 3);
        assert_eq!(
            runs,
            [
                utc("2026-10-24T00:30:00Z"), // 02:30 CEST
                utc("2026-10-25T00:30:00Z"), // the first 02:30 only
                utc("2026-10-26T01:30:00Z"), // 02:30 CET
            ]
        );
    }

    #[test]
    fn hourly_jobs_follow_real_hours_across_dst() {
        // Every hour is one real hour apart, even through both changes.
        let job = cron("0 * * * *", "Europe/Berlin");
        for day in ["2026-03-28T22:00:00Z", "2026-10-24T22:00:00Z"] {
            let runs = occurrences(&job, day, 6);
            for pair in runs.windows(2) {
                assert_eq!(pair[1] - pair[0], chrono::Duration::hours(1), "{runs:?}");
            }
        }
    }

    #[test]
    fn every_adds_the_interval_to_the_previous_planned_time() {
        let every = Timing::Every(Duration::from_millis(250));
        assert_eq!(
            occurrences(&every, "2026-01-01T00:00:00Z", 4)
                .last()
                .copied(),
            Some(utc("2026-01-01T00:00:01Z"))
        );
    }

    #[test]
    fn jitter_stays_in_its_bounds() {
        assert_eq!(jitter_delay(Duration::ZERO), Duration::ZERO);
        let bound = Duration::from_millis(20);
        let samples: Vec<Duration> = (0..10_000).map(|_| jitter_delay(bound)).collect();
        assert!(samples.iter().all(|d| *d < bound));
        // Spread over the range, not stuck at one end.
        assert!(samples.iter().any(|d| *d < Duration::from_millis(2)));
        assert!(samples.iter().any(|d| *d > Duration::from_millis(18)));
        assert_eq!(
            jitter_delay(Duration::from_nanos(1)),
            Duration::ZERO,
            "[0, 1ns) holds only zero"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_timeline_follows_the_monotonic_clock_from_its_anchor() {
        let timeline = Timeline::starting_at(utc("2026-03-29T00:59:00Z"));
        let at = timeline.instant_of(utc("2026-03-29T01:00:00Z"));
        assert_eq!(at - Instant::now(), Duration::from_secs(60));
        tokio::time::sleep(Duration::from_secs(90)).await;
        assert_eq!(timeline.now_utc(), utc("2026-03-29T01:00:30Z"));
    }
}
