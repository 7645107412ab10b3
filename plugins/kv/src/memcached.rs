//! The `memcached` driver: a small client for memcached's text protocol
//! (`get`, `set`, `touch`, `delete`, `flush_all`). With several servers in
//! `addr`, a key goes to `addr[crc32(key) % n]` like gomemcache's server
//! list, and `Clear` flushes them all. Memcached cannot report a key's
//! expiry, so `TTL` is an error (RoadRunner's text).

use std::time::Duration;

use chrono::{DateTime, Utc};
use rr_config::StringOrList;
use rr_plugin::async_trait;
use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufStream};
use tokio::net::TcpStream;

use crate::storage::{effective_expiry, Clock, Item, KvError, Storage};

/// The server when `addr` is empty.
pub const DEFAULT_ADDR: &str = "127.0.0.1:11211";
/// Bound for one exchange with a server (connecting included).
pub const IO_TIMEOUT: Duration = Duration::from_secs(2);
/// RoadRunner's answer to `kv.TTL` on memcached.
pub const TTL_UNSUPPORTED: &str =
    "not valid request for memcached, see https://github.com/memcached/memcached/issues/239";
/// gomemcache's text for a key memcached cannot hold.
pub const MALFORMED_KEY: &str = "malformed: key is too long or contains invalid characters";

/// `kv.<name>.config` of the memcached driver.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct MemcachedConfig {
    /// `host:port` of each server (default `127.0.0.1:11211`).
    pub addr: StringOrList,
}

struct Server {
    addr: String,
    connection: tokio::sync::Mutex<Option<BufStream<TcpStream>>>,
}

/// A storage on one or more memcached servers.
pub struct MemcachedStorage {
    servers: Vec<Server>,
    clock: Clock,
}

fn io_error(addr: &str, e: impl std::fmt::Display) -> KvError {
    KvError::Backend(format!("memcache: {addr}: {e}"))
}

/// Memcached keys: 1..=250 bytes, no spaces or control characters.
fn check_key(key: &str) -> Result<(), KvError> {
    if key.len() > 250 || key.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(KvError::Backend(MALFORMED_KEY.to_owned()));
    }
    Ok(())
}

impl MemcachedStorage {
    /// A storage on `config`'s servers; connects on first use.
    pub fn new(config: MemcachedConfig, clock: Clock) -> MemcachedStorage {
        let mut addrs: Vec<String> = config.addr.0;
        if addrs.is_empty() {
            addrs.push(DEFAULT_ADDR.to_owned());
        }
        MemcachedStorage {
            servers: addrs
                .into_iter()
                .map(|addr| Server {
                    addr,
                    connection: tokio::sync::Mutex::new(None),
                })
                .collect(),
            clock,
        }
    }

    fn server_for(&self, key: &str) -> usize {
        let n = self.servers.len().max(1);
        (crc32fast::hash(key.as_bytes()) as usize) % n
    }

    /// Memcached's exptime for an expiry: absolute unix seconds, 0 = never.
    fn exptime(&self, key: &str, expires: Option<DateTime<Utc>>) -> i64 {
        effective_expiry(key, expires, (self.clock)()).map_or(0, |at| {
            let secs = at.timestamp();
            if at.timestamp_subsec_nanos() > 0 {
                secs + 1
            } else {
                secs
            }
        })
    }

    /// Sends `request` to server `index` and reads the reply with `read`;
    /// a broken connection is dropped and the exchange tried once more on
    /// a new one.
    async fn exchange<T>(
        &self,
        index: usize,
        request: &[u8],
        read: impl for<'a> Fn(&'a mut BufStream<TcpStream>) -> ReplyFuture<'a, T>,
    ) -> Result<T, KvError> {
        let server = self
            .servers
            .get(index)
            .ok_or_else(|| KvError::Backend("memcache: no servers configured".into()))?;
        let mut slot = server.connection.lock().await;
        let mut last = None;
        for _ in 0..2 {
            let stream = match slot.as_mut() {
                Some(stream) => stream,
                None => {
                    let tcp = tokio::time::timeout(IO_TIMEOUT, TcpStream::connect(&server.addr))
                        .await
                        .map_err(|_| io_error(&server.addr, "connect timeout"))?
                        .map_err(|e| io_error(&server.addr, e))?;
                    let _ = tcp.set_nodelay(true);
                    slot.insert(BufStream::new(tcp))
                }
            };
            let attempt = tokio::time::timeout(IO_TIMEOUT, async {
                stream.write_all(request).await?;
                stream.flush().await?;
                read(stream).await
            })
            .await;
            match attempt {
                Ok(Ok(Ok(value))) => return Ok(value),
                // The server answered with an error: the connection is fine.
                Ok(Ok(Err(message))) => return Err(io_error(&server.addr, message)),
                Ok(Err(e)) => {
                    *slot = None;
                    last = Some(io_error(&server.addr, e));
                }
                Err(_) => {
                    *slot = None;
                    return Err(io_error(&server.addr, "i/o timeout"));
                }
            }
        }
        Err(last.unwrap_or_else(|| io_error(&server.addr, "connection failed")))
    }

    /// `get k1 k2 ...` on every server holding some of `keys`.
    async fn get_multi(&self, keys: &[String]) -> Result<Vec<(String, Vec<u8>)>, KvError> {
        let mut by_server: Vec<Vec<&str>> = vec![Vec::new(); self.servers.len()];
        for key in keys {
            check_key(key)?;
            by_server[self.server_for(key)].push(key);
        }
        let mut found = std::collections::HashMap::new();
        for (index, server_keys) in by_server.iter().enumerate() {
            if server_keys.is_empty() {
                continue;
            }
            let request = format!("get {}\r\n", server_keys.join(" "));
            let values = self
                .exchange(index, request.as_bytes(), |s| Box::pin(read_values(s)))
                .await?;
            found.extend(values);
        }
        Ok(keys
            .iter()
            .filter_map(|k| found.get(k).map(|v: &Vec<u8>| (k.clone(), v.clone())))
            .collect())
    }
}

/// What reading a reply yields: an I/O error, or the server's error text, or a value.
type Reply<T> = std::io::Result<Result<T, String>>;
/// A boxed reply reader.
type ReplyFuture<'a, T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Reply<T>> + Send + 'a>>;

async fn read_line(stream: &mut BufStream<TcpStream>) -> std::io::Result<String> {
    let mut line = String::new();
    if stream.read_line(&mut line).await? == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

/// An error line (`ERROR`, `CLIENT_ERROR ...`, `SERVER_ERROR ...`) as text.
fn server_error(line: &str) -> Option<String> {
    (line == "ERROR" || line.starts_with("CLIENT_ERROR") || line.starts_with("SERVER_ERROR"))
        .then(|| line.to_owned())
}

async fn read_values(stream: &mut BufStream<TcpStream>) -> Reply<Vec<(String, Vec<u8>)>> {
    let mut values = Vec::new();
    loop {
        let line = read_line(stream).await?;
        if line == "END" {
            return Ok(Ok(values));
        }
        if let Some(error) = server_error(&line) {
            return Ok(Err(error));
        }
        let parts: Vec<&str> = line.split(' ').collect();
        let (Some(&"VALUE"), Some(key), Some(len)) = (parts.first(), parts.get(1), parts.get(3))
        else {
            return Err(std::io::Error::other(format!("unexpected reply {line:?}")));
        };
        let len: usize = len
            .parse()
            .map_err(|_| std::io::Error::other(format!("unexpected reply {line:?}")))?;
        let mut data = vec![0; len + 2];
        stream.read_exact(&mut data).await?;
        data.truncate(len);
        values.push(((*key).to_owned(), data));
    }
}

/// Reads one status line; `Ok(Ok(line))` for anything but an error.
async fn read_status(stream: &mut BufStream<TcpStream>) -> Reply<String> {
    let line = read_line(stream).await?;
    Ok(match server_error(&line) {
        Some(error) => Err(error),
        None => Ok(line),
    })
}

fn expect(line: &str, wanted: &[&str]) -> Result<(), KvError> {
    if wanted.contains(&line) {
        Ok(())
    } else {
        Err(KvError::Backend(format!(
            "memcache: unexpected reply {line:?}"
        )))
    }
}

#[async_trait]
impl Storage for MemcachedStorage {
    fn op_prefix(&self) -> &'static str {
        "memcached_plugin"
    }

    async fn has(&self, keys: &[String]) -> Result<Vec<String>, KvError> {
        Ok(self
            .get_multi(keys)
            .await?
            .into_iter()
            .map(|(k, _)| k)
            .collect())
    }

    async fn mget(&self, keys: &[String]) -> Result<Vec<(String, Vec<u8>)>, KvError> {
        self.get_multi(keys).await
    }

    async fn set(&self, items: Vec<Item>) -> Result<(), KvError> {
        for item in &items {
            check_key(&item.key)?;
            let mut request = format!(
                "set {} 0 {} {}\r\n",
                item.key,
                self.exptime(&item.key, item.expires),
                item.value.len()
            )
            .into_bytes();
            request.extend_from_slice(&item.value);
            request.extend_from_slice(b"\r\n");
            let line = self
                .exchange(self.server_for(&item.key), &request, |s| {
                    Box::pin(read_status(s))
                })
                .await?;
            expect(&line, &["STORED"])?;
        }
        Ok(())
    }

    async fn mexpire(&self, items: Vec<Item>) -> Result<(), KvError> {
        for item in &items {
            check_key(&item.key)?;
            let request = format!(
                "touch {} {}\r\n",
                item.key,
                self.exptime(&item.key, item.expires)
            );
            let line = self
                .exchange(self.server_for(&item.key), request.as_bytes(), |s| {
                    Box::pin(read_status(s))
                })
                .await?;
            expect(&line, &["TOUCHED", "NOT_FOUND"])?;
        }
        Ok(())
    }

    async fn ttl(&self, _keys: &[String]) -> Result<Vec<(String, Option<DateTime<Utc>>)>, KvError> {
        Err(KvError::Unsupported(TTL_UNSUPPORTED.to_owned()))
    }

    async fn delete(&self, keys: &[String]) -> Result<(), KvError> {
        for key in keys {
            check_key(key)?;
            let request = format!("delete {key}\r\n");
            let line = self
                .exchange(self.server_for(key), request.as_bytes(), |s| {
                    Box::pin(read_status(s))
                })
                .await?;
            expect(&line, &["DELETED", "NOT_FOUND"])?;
        }
        Ok(())
    }

    async fn clear(&self) -> Result<(), KvError> {
        for index in 0..self.servers.len() {
            let line = self
                .exchange(index, b"flush_all\r\n", |s| Box::pin(read_status(s)))
                .await?;
            expect(&line, &["OK"])?;
        }
        Ok(())
    }

    async fn stop(&self) {
        for server in &self.servers {
            server.connection.lock().await.take();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_memcached_cannot_hold_are_refused() {
        assert!(check_key("ok:key").is_ok());
        assert_eq!(
            check_key("has space").expect_err("must fail").to_string(),
            MALFORMED_KEY
        );
        assert!(check_key(&"x".repeat(251)).is_err());
    }

    #[test]
    fn keys_spread_over_servers_like_gomemcache() {
        let s = MemcachedStorage::new(
            MemcachedConfig {
                addr: vec!["a:1".into(), "b:2".into(), "c:3".into()].into(),
            },
            crate::storage::system_clock(),
        );
        // crc32("foo") = 0x8c736521 → % 3 = 2
        assert_eq!(s.server_for("foo"), (0x8c73_6521_u32 % 3) as usize);
    }

    #[tokio::test]
    async fn an_unreachable_server_is_a_backend_error() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("must succeed");
            l.local_addr().expect("must succeed").port()
        };
        let s = MemcachedStorage::new(
            MemcachedConfig {
                addr: vec![format!("127.0.0.1:{port}")].into(),
            },
            crate::storage::system_clock(),
        );
        let err = s
            .has(&["k".into()])
            .await
            .expect_err("must fail")
            .to_string();
        assert!(err.starts_with("memcache: 127.0.0.1:"), "{err}");
        assert_eq!(
            s.ttl(&["k".into()])
                .await
                .expect_err("must fail")
                .to_string(),
            TTL_UNSUPPORTED
        );
    }
}
