//! The `redis` driver: one Redis server through the `redis` crate's
//! reconnecting [`ConnectionManager`](redis::aio::ConnectionManager).
//! Expiries are set with `SET ... PX` and `PEXPIREAT`, read with `PTTL`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::IntoConnectionInfo;
use rr_config::StringOrList;
use rr_plugin::async_trait;
use serde::Deserialize;

use crate::storage::{effective_expiry, unix_ms, Clock, Item, KvError, Storage};

/// How long connecting may take when `dial_timeout` is not set.
pub const DEFAULT_DIAL_TIMEOUT: Duration = Duration::from_secs(5);

/// RoadRunner's redis driver options (`kv.<name>.config`). Pool sizes,
/// retries and idle settings are accepted and not used: one multiplexed
/// connection serves every call.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct RedisConfig {
    /// `host:port` (or `redis://...` URLs); default `127.0.0.1:6379`.
    pub addrs: StringOrList,
    /// Database number.
    pub db: i64,
    /// ACL user name.
    pub username: String,
    /// Password.
    pub password: String,
    /// Sentinel master name (not supported here).
    pub master_name: String,
    /// Connect timeout.
    #[serde(deserialize_with = "rr_config::duration::option_non_negative")]
    pub dial_timeout: Option<Duration>,
    /// Reply timeout.
    #[serde(deserialize_with = "rr_config::duration::option_non_negative")]
    pub read_timeout: Option<Duration>,
    /// TLS settings (not supported here).
    pub tls: Option<serde_json::Value>,
}

impl RedisConfig {
    /// Checks what this build supports; the message says what to change.
    pub fn validate(&self) -> Result<(), String> {
        if !self.master_name.is_empty() {
            return Err("redis sentinel (`master_name`) is not supported by rr's kv redis driver; use one address".into());
        }
        if self.addrs.len() > 1 {
            return Err(format!(
                "redis cluster ({} addresses in `addrs`) is not supported by rr's kv redis driver; use one address",
                self.addrs.len()
            ));
        }
        if self.tls.as_ref().is_some_and(|t| !t.is_null()) {
            return Err("`tls` is not supported by rr's kv redis driver".into());
        }
        Ok(())
    }

    fn addr(&self) -> String {
        self.addrs
            .first()
            .cloned()
            .unwrap_or_else(|| "127.0.0.1:6379".to_owned())
    }
}

/// A storage in one Redis database.
pub struct RedisStorage {
    client: redis::Client,
    addr: String,
    config: RedisConfig,
    connection: tokio::sync::Mutex<Option<ConnectionManager>>,
    clock: Clock,
}

fn backend(e: redis::RedisError) -> KvError {
    KvError::Backend(e.to_string())
}

impl RedisStorage {
    /// A storage for `config`; connects on first use (like go-redis), so a
    /// Redis that starts later is no start-up error.
    pub fn new(config: RedisConfig, clock: Clock) -> Result<RedisStorage, String> {
        config.validate()?;
        let addr = config.addr();
        let info = if addr.contains("://") {
            addr.as_str().into_connection_info()
        } else {
            let (host, port) = match addr.rsplit_once(':') {
                Some((host, port)) => (
                    host.trim_start_matches('[')
                        .trim_end_matches(']')
                        .to_owned(),
                    port.parse::<u16>()
                        .map_err(|_| format!("`{addr}` has no valid port"))?,
                ),
                None => (addr.clone(), 6379),
            };
            redis::ConnectionAddr::Tcp(host, port).into_connection_info()
        }
        .map_err(|e| format!("`{addr}`: {e}"))?;
        let mut settings = info.redis_settings().clone().set_db(config.db);
        if !config.username.is_empty() {
            settings = settings.set_username(&config.username);
        }
        if !config.password.is_empty() {
            settings = settings.set_password(&config.password);
        }
        let client = redis::Client::open(info.set_redis_settings(settings))
            .map_err(|e| format!("`{addr}`: {e}"))?;
        Ok(RedisStorage {
            client,
            addr,
            config,
            connection: tokio::sync::Mutex::new(None),
            clock,
        })
    }

    async fn connection(&self) -> Result<ConnectionManager, KvError> {
        let mut slot = self.connection.lock().await;
        if let Some(connection) = slot.as_ref() {
            return Ok(connection.clone());
        }
        let dial = self.config.dial_timeout.unwrap_or(DEFAULT_DIAL_TIMEOUT);
        let settings = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(dial))
            .set_response_timeout(self.config.read_timeout)
            .set_number_of_retries(1);
        let connection = tokio::time::timeout(
            dial * 2,
            self.client.get_connection_manager_with_config(settings),
        )
        .await
        .map_err(|_| {
            KvError::Backend(format!("redis at {}: no answer within {dial:?}", self.addr))
        })?
        .map_err(|e| KvError::Backend(format!("redis at {}: {e}", self.addr)))?;
        *slot = Some(connection.clone());
        Ok(connection)
    }
}

#[async_trait]
impl Storage for RedisStorage {
    fn op_prefix(&self) -> &'static str {
        "redis_driver"
    }

    async fn has(&self, keys: &[String]) -> Result<Vec<String>, KvError> {
        let mut pipe = redis::pipe();
        for key in keys {
            pipe.cmd("EXISTS").arg(key);
        }
        let found: Vec<i64> = pipe
            .query_async(&mut self.connection().await?)
            .await
            .map_err(backend)?;
        Ok(keys
            .iter()
            .zip(found)
            .filter(|(_, n)| *n > 0)
            .map(|(k, _)| k.clone())
            .collect())
    }

    async fn mget(&self, keys: &[String]) -> Result<Vec<(String, Vec<u8>)>, KvError> {
        let values: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
            .arg(keys)
            .query_async(&mut self.connection().await?)
            .await
            .map_err(backend)?;
        Ok(keys
            .iter()
            .zip(values)
            .filter_map(|(k, v)| v.map(|v| (k.clone(), v)))
            .collect())
    }

    async fn set(&self, items: Vec<Item>) -> Result<(), KvError> {
        let now = (self.clock)();
        let mut pipe = redis::pipe();
        pipe.atomic();
        for item in &items {
            let cmd = pipe.cmd("SET").arg(&item.key).arg(&item.value);
            if let Some(at) = effective_expiry(&item.key, item.expires, now) {
                cmd.arg("PX").arg((unix_ms(at) - unix_ms(now)).max(1));
            }
            cmd.ignore();
        }
        pipe.query_async::<()>(&mut self.connection().await?)
            .await
            .map_err(backend)
    }

    async fn mexpire(&self, items: Vec<Item>) -> Result<(), KvError> {
        let now = (self.clock)();
        let mut pipe = redis::pipe();
        for item in &items {
            match effective_expiry(&item.key, item.expires, now) {
                Some(at) => pipe.cmd("PEXPIREAT").arg(&item.key).arg(unix_ms(at)),
                None => pipe.cmd("PERSIST").arg(&item.key),
            }
            .ignore();
        }
        pipe.query_async::<()>(&mut self.connection().await?)
            .await
            .map_err(backend)
    }

    async fn ttl(&self, keys: &[String]) -> Result<Vec<(String, Option<DateTime<Utc>>)>, KvError> {
        let mut pipe = redis::pipe();
        for key in keys {
            pipe.cmd("PTTL").arg(key);
        }
        let ttls: Vec<i64> = pipe
            .query_async(&mut self.connection().await?)
            .await
            .map_err(backend)?;
        let now = (self.clock)();
        Ok(keys
            .iter()
            .zip(ttls)
            .filter_map(|(k, ms)| match ms {
                -2 => None,
                ms if ms < 0 => Some((k.clone(), None)),
                ms => Some((k.clone(), Some(now + chrono::Duration::milliseconds(ms)))),
            })
            .collect())
    }

    async fn delete(&self, keys: &[String]) -> Result<(), KvError> {
        redis::cmd("DEL")
            .arg(keys)
            .query_async::<()>(&mut self.connection().await?)
            .await
            .map_err(backend)
    }

    async fn clear(&self) -> Result<(), KvError> {
        redis::cmd("FLUSHDB")
            .query_async::<()>(&mut self.connection().await?)
            .await
            .map_err(backend)
    }

    async fn stop(&self) {
        self.connection.lock().await.take();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_sentinel_and_tls_are_refused_with_a_reason() {
        let mut c = RedisConfig {
            addrs: vec!["a:1".into(), "b:2".into()].into(),
            ..Default::default()
        };
        assert!(c.validate().expect_err("must fail").contains("cluster"));
        c.addrs = vec!["a:1".into()].into();
        c.master_name = "m".into();
        assert!(c.validate().expect_err("must fail").contains("sentinel"));
        c.master_name.clear();
        assert!(c.validate().is_ok());
    }

    #[test]
    fn a_bad_port_is_reported() {
        let c = RedisConfig {
            addrs: vec!["host:nope".into()].into(),
            ..Default::default()
        };
        let err = RedisStorage::new(c, crate::storage::system_clock())
            .err()
            .expect("must succeed");
        assert!(err.contains("no valid port"), "{err}");
    }
}
