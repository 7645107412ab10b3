//! Reading the runs of `tests/php/schedule.php` out of rr's log.

use std::collections::BTreeMap;

use super::{Event, Line, RrProcess};

/// Predicate: a `RUN` line of schedule `name`.
pub fn run_of(name: &'static str) -> impl Fn(&Line) -> bool {
    move |line| {
        line.event_named("RUN")
            .is_some_and(|e| e.get("schedule") == name)
    }
}

/// The `RUN` events of schedule `name`, in arrival order.
pub fn runs(rr: &RrProcess, name: &str) -> Vec<Event> {
    rr.events("RUN")
        .into_iter()
        .filter(|e| e.get("schedule") == name)
        .collect()
}

/// The planned time (unix ms) of a `RUN` event.
pub fn planned_of(event: &Event) -> i64 {
    event.get("planned").parse().expect("planned=")
}

/// The planned times of `events`.
pub fn planned(events: &[Event]) -> Vec<i64> {
    events.iter().map(planned_of).collect()
}

/// The counts on rr's `schedule stopped` line for `name`, after a clean stop.
pub fn stopped_counts(rr: &RrProcess, name: &str) -> BTreeMap<String, u64> {
    let line = rr
        .lines()
        .iter()
        .find(|l| {
            l.is("ticker", "schedule stopped") && l.field_str("schedule").as_deref() == Some(name)
        })
        .unwrap_or_else(|| panic!("no `schedule stopped` line for {name}\n{}", rr.recent()));
    [
        "started",
        "succeeded",
        "failed",
        "timed_out",
        "skipped",
        "queued",
        "replaced",
        "caught_up",
        "no_worker",
        "elsewhere",
    ]
    .iter()
    .map(|k| ((*k).to_owned(), line.field_u64(k).unwrap_or(0)))
    .collect()
}
