//! What every driver implements, the items they store, and the clock and
//! time formats they share.

use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use rr_plugin::async_trait;

/// The time source of a storage; tests substitute a controllable one.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// The wall clock.
pub fn system_clock() -> Clock {
    Arc::new(Utc::now)
}

/// One key to write, with its value and optional absolute expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// The key.
    pub key: String,
    /// The value (opaque bytes; PHP serializes).
    pub value: Vec<u8>,
    /// When the key expires; `None` keeps it until deleted.
    pub expires: Option<DateTime<Utc>>,
}

/// What a storage operation can fail with. The texts of the first four are
/// RoadRunner's (`roadrunner-server/errors` kinds and the drivers' own).
#[derive(Debug, thiserror::Error)]
pub enum KvError {
    /// An operation on keys got none.
    #[error("should provide at least 1 key")]
    NoKeys,
    /// A key is empty or whitespace.
    #[error("key can't be empty string")]
    EmptyKey,
    /// `MExpire` without a timeout or a key.
    #[error("should set timeout and at least one key")]
    NoTimeout,
    /// A timeout that is not RFC 3339.
    #[error("parsing time {input:?} as RFC 3339: {message}")]
    BadTimeout {
        /// The text received.
        input: String,
        /// What is wrong with it.
        message: String,
    },
    /// The driver cannot do this at all.
    #[error("{0}")]
    Unsupported(String),
    /// The backing service or file failed.
    #[error("{0}")]
    Backend(String),
}

/// A named storage (`kv.<name>`), whatever its driver.
///
/// Callers validate keys first (see [`check_keys`]); expired keys are never
/// returned by `has`, `mget` or `ttl`.
#[async_trait]
pub trait Storage: Send + Sync {
    /// The prefix of RoadRunner's operation names for this driver, e.g.
    /// `in_memory_plugin` (errors read `in_memory_plugin_has: ...`).
    fn op_prefix(&self) -> &'static str;

    /// The keys among `keys` that exist.
    async fn has(&self, keys: &[String]) -> Result<Vec<String>, KvError>;

    /// The existing keys among `keys`, with their values.
    async fn mget(&self, keys: &[String]) -> Result<Vec<(String, Vec<u8>)>, KvError>;

    /// Writes `items`, replacing values and expiries.
    async fn set(&self, items: Vec<Item>) -> Result<(), KvError>;

    /// Changes the expiry of existing keys (missing keys are left alone);
    /// the items' values are ignored.
    async fn mexpire(&self, items: Vec<Item>) -> Result<(), KvError>;

    /// The expiry of each existing key among `keys` (`None`: no expiry).
    async fn ttl(&self, keys: &[String]) -> Result<Vec<(String, Option<DateTime<Utc>>)>, KvError>;

    /// Removes `keys` (missing keys are no error).
    async fn delete(&self, keys: &[String]) -> Result<(), KvError>;

    /// Removes every key.
    async fn clear(&self) -> Result<(), KvError>;

    /// Releases connections, files and background tasks.
    async fn stop(&self) {}
}

/// RoadRunner's checks for operations on keys: at least one, none empty.
pub fn check_keys(keys: &[String]) -> Result<(), KvError> {
    if keys.is_empty() {
        return Err(KvError::NoKeys);
    }
    if keys.iter().any(|k| k.trim().is_empty()) {
        return Err(KvError::EmptyKey);
    }
    Ok(())
}

/// Parses an RFC 3339 timeout; `""` means none.
pub fn parse_timeout(text: &str) -> Result<Option<DateTime<Utc>>, KvError> {
    if text.is_empty() {
        return Ok(None);
    }
    DateTime::parse_from_rfc3339(text)
        .map(|t| Some(t.with_timezone(&Utc)))
        .map_err(|e| KvError::BadTimeout {
            input: text.to_owned(),
            message: e.to_string(),
        })
}

/// Formats an expiry the way RoadRunner does (Go's `time.RFC3339`: whole
/// seconds), in UTC with `Z`.
pub fn format_timeout(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// RoadRunner's rule for an expiry that is not in the future: the key is
/// stored without one (the memory and redis drivers log "incorrect TTL
/// time, saving without it"). Returns the expiry to keep.
pub fn effective_expiry(
    key: &str,
    expires: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    match expires {
        Some(at) if at <= now => {
            tracing::warn!(target: "kv", key, "incorrect TTL time, saving without it");
            None
        }
        other => other,
    }
}

/// Unix milliseconds of `at`.
pub fn unix_ms(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

/// The time at unix milliseconds `ms`.
pub fn from_unix_ms(ms: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_parse_and_format_like_go_rfc3339() {
        let at = parse_timeout("2030-01-02T03:04:05+02:00")
            .expect("must succeed")
            .expect("must succeed");
        assert_eq!(format_timeout(at), "2030-01-02T01:04:05Z");
        assert!(parse_timeout("").expect("must succeed").is_none());
        let err = parse_timeout("tomorrow")
            .expect_err("must fail")
            .to_string();
        assert!(err.starts_with("parsing time \"tomorrow\""), "{err}");
    }

    #[test]
    fn key_checks_use_roadrunner_texts() {
        assert_eq!(
            check_keys(&[]).expect_err("must fail").to_string(),
            "should provide at least 1 key"
        );
        assert_eq!(
            check_keys(&["a".into(), " ".into()])
                .expect_err("must fail")
                .to_string(),
            "key can't be empty string"
        );
        assert!(check_keys(&["a".into()]).is_ok());
    }
}
