//! One fire per cluster (`ticker.cluster`): several `rr` instances with the
//! same schedules each run every planned time only once in total.
//!
//! Before a planned run starts, the instance claims it in a shared store;
//! only the one whose claim succeeds runs it. The claim names the planned
//! time itself (`<prefix>:<schedule>:<planned ms>`), so instances agree
//! without electing a leader: whoever comes first wins, and when one dies
//! the others simply win the next planned times. Each won claim also takes
//! the next value of a per-schedule counter, a fencing token the PHP side
//! receives as `fence` and can hand to the systems it writes to, so a
//! stale run (a paused VM waking up) can be refused there.
//!
//! Redis is the engine: one atomic script (`SET NX PX` then `INCR`), no
//! consensus of our own, and it is already in most PHP stacks. Another
//! engine (NATS JetStream KV, whose create-if-absent gives the same claim
//! and whose revision the fence) fits behind [`RunClaims`].

use std::sync::Arc;
use std::time::Duration;

use rr_plugin::async_trait;
use serde::Deserialize;

use rr_config::StringOrList;

/// How long one claim may take before the run is given up.
const CLAIM_TIMEOUT: Duration = Duration::from_secs(2);

/// A store in which instances claim planned runs.
#[async_trait]
pub trait RunClaims: Send + Sync + std::fmt::Debug {
    /// Claims `schedule`'s run planned at `planned_ms` (unix ms) for this
    /// instance, keeping the claim for `ttl`. `Some(fence)` when this
    /// instance won (the fence grows with every claim of the schedule),
    /// `None` when another one has it.
    async fn claim(
        &self,
        schedule: &str,
        planned_ms: i64,
        ttl: Duration,
    ) -> Result<Option<u64>, ClaimError>;
}

/// A claim that could not be decided.
#[derive(Debug, thiserror::Error)]
#[error("cluster claim failed: {0}")]
pub struct ClaimError(pub String);

/// The `ticker.cluster` section.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct ClusterConfig {
    /// The Redis server that holds the claims.
    pub redis: Option<RedisConfig>,
    /// Prefix of every key; instances share claims only with the same one.
    pub prefix: Option<String>,
    /// This instance's name in the claims (for `GET` on a claim key);
    /// default `<hostname>:<pid>`.
    pub instance: Option<String>,
}

/// `ticker.cluster.redis`, with the keys of RoadRunner's Redis sections.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct RedisConfig {
    /// `host:port` addresses; the first one is used (single node).
    pub addrs: StringOrList,
    /// ACL user name.
    pub username: String,
    /// Password.
    pub password: String,
    /// Database number.
    pub db: i64,
}

/// The default key prefix.
pub const DEFAULT_PREFIX: &str = "rr:ticker";

impl ClusterConfig {
    /// Whether a cluster store is configured at all.
    pub fn is_enabled(&self) -> bool {
        self.redis.is_some()
    }
}

/// Claims in Redis.
pub struct RedisClaims {
    connection: redis::aio::ConnectionManager,
    script: redis::Script,
    prefix: String,
    instance: String,
}

impl std::fmt::Debug for RedisClaims {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisClaims")
            .field("prefix", &self.prefix)
            .field("instance", &self.instance)
            .finish()
    }
}

/// Wins the claim only when nobody holds it, and then takes the next fence.
const CLAIM_SCRIPT: &str = r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return redis.call('INCR', KEYS[2])
end
return 0
";

impl RedisClaims {
    /// Connects to the configured Redis (failing start when it cannot be
    /// reached: a cluster member that cannot claim would run nothing).
    pub async fn connect(config: &ClusterConfig) -> Result<Arc<dyn RunClaims>, ClaimError> {
        let redis = config.redis.clone().unwrap_or_default();
        let Some(addr) = redis.addrs.0.first().cloned() else {
            return Err(ClaimError(
                "`ticker.cluster.redis.addrs` names no server".into(),
            ));
        };
        let (host, port) = match addr.rsplit_once(':') {
            Some((host, port)) => (
                host.trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_owned(),
                port.parse::<u16>().map_err(|_| {
                    ClaimError(format!(
                        "`ticker.cluster.redis.addrs`: `{addr}` has no valid port"
                    ))
                })?,
            ),
            None => (addr.clone(), 6379),
        };
        use redis::IntoConnectionInfo;
        let mut settings = redis::RedisConnectionInfo::default().set_db(redis.db);
        if !redis.username.is_empty() {
            settings = settings.set_username(&redis.username);
        }
        if !redis.password.is_empty() {
            settings = settings.set_password(&redis.password);
        }
        let info = redis::ConnectionAddr::Tcp(host, port)
            .into_connection_info()
            .map_err(|e| ClaimError(e.to_string()))?
            .set_redis_settings(settings);
        let client = redis::Client::open(info).map_err(|e| ClaimError(e.to_string()))?;
        let connection = tokio::time::timeout(CLAIM_TIMEOUT, client.get_connection_manager())
            .await
            .map_err(|_| ClaimError(format!("no answer from redis at {addr}")))?
            .map_err(|e| ClaimError(format!("redis at {addr}: {e}")))?;
        let instance = config.instance.clone().unwrap_or_else(default_instance);
        Ok(Arc::new(RedisClaims {
            connection,
            script: redis::Script::new(CLAIM_SCRIPT),
            prefix: config
                .prefix
                .clone()
                .unwrap_or_else(|| DEFAULT_PREFIX.to_owned()),
            instance,
        }))
    }
}

fn default_instance() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".to_owned());
    format!("{host}:{}", std::process::id())
}

#[async_trait]
impl RunClaims for RedisClaims {
    async fn claim(
        &self,
        schedule: &str,
        planned_ms: i64,
        ttl: Duration,
    ) -> Result<Option<u64>, ClaimError> {
        let mut connection = self.connection.clone();
        let claim_key = format!("{}:{schedule}:{planned_ms}", self.prefix);
        let fence_key = format!("{}:{schedule}:fence", self.prefix);
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut invocation = self.script.key(claim_key);
        invocation.key(fence_key).arg(&self.instance).arg(ttl_ms);
        let fence: u64 =
            tokio::time::timeout(CLAIM_TIMEOUT, invocation.invoke_async(&mut connection))
                .await
                .map_err(|_| ClaimError(format!("no answer from redis within {CLAIM_TIMEOUT:?}")))?
                .map_err(|e| ClaimError(e.to_string()))?;
        Ok((fence > 0).then_some(fence))
    }
}
