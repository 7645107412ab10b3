//! How frames reach a worker: its own pipes, or a socket it connects to.
//!
//! With `tcp://` and `unix://` relays the server listens and every worker
//! connects on its own. The listener does the PID handshake on each new
//! connection and parks it under the PID the worker reported; the spawner
//! then claims the connection of the process it started. A PID that does not
//! match (a wrapper such as `sh -c php ...`) is never claimed, exactly as in
//! RoadRunner.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rr_goridge::{FrameReader, FrameWriter};
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::oneshot;

use crate::protocol;

/// The read half of any relay.
pub type BoxRead = Box<dyn AsyncRead + Send + Unpin>;
/// The write half of any relay.
pub type BoxWrite = Box<dyn AsyncWrite + Send + Unpin>;

/// A connected relay, after the handshake.
pub(crate) struct Connection {
    pub(crate) reader: FrameReader<BoxRead>,
    pub(crate) writer: FrameWriter<BoxWrite>,
}

/// Where workers exchange frames with the server (`server.relay`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayAddress {
    /// The worker's STDIN and STDOUT (the default).
    Pipes,
    /// A TCP address the server listens on, `host:port`.
    Tcp(String),
    /// A Unix socket path the server listens on.
    Unix(PathBuf),
}

/// A `server.relay` value that is not a relay.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("unknown relay {0:?}: expected `pipes`, `tcp://host:port` or `unix://path`")]
pub struct RelayAddressError(pub String);

impl RelayAddress {
    /// Parses `pipes`, `tcp://host:port` or `unix://path`.
    pub fn parse(dsn: &str) -> Result<RelayAddress, RelayAddressError> {
        let invalid = || RelayAddressError(dsn.to_owned());
        if dsn == "pipes" || dsn.is_empty() {
            return Ok(RelayAddress::Pipes);
        }
        let (scheme, rest) = dsn.split_once("://").ok_or_else(invalid)?;
        match scheme {
            "tcp" => {
                // PHP's DSN parser needs a host, so `tcp://:7000` would never connect.
                let (host, port) = rest.rsplit_once(':').ok_or_else(invalid)?;
                if host.is_empty() || port.parse::<u16>().is_err() {
                    return Err(invalid());
                }
                Ok(RelayAddress::Tcp(rest.to_owned()))
            }
            "unix" if !rest.is_empty() => Ok(RelayAddress::Unix(PathBuf::from(rest))),
            _ => Err(invalid()),
        }
    }

    /// True for `pipes`.
    pub fn is_pipes(&self) -> bool {
        matches!(self, RelayAddress::Pipes)
    }
}

impl fmt::Display for RelayAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RelayAddress::Pipes => f.write_str("pipes"),
            RelayAddress::Tcp(addr) => write!(f, "tcp://{addr}"),
            RelayAddress::Unix(path) => write!(f, "unix://{}", path.display()),
        }
    }
}

#[derive(Default)]
struct Rendezvous {
    /// Connections whose worker reported a PID nobody has claimed yet.
    parked: HashMap<u32, Connection>,
    /// Spawners waiting for the connection of the PID they started.
    waiting: HashMap<u32, oneshot::Sender<Connection>>,
}

/// The listener behind a `tcp://` or `unix://` relay, shared by every pool.
pub struct SocketRelay {
    address: RelayAddress,
    rendezvous: Mutex<Rendezvous>,
    accept_task: tokio::task::JoinHandle<()>,
}

impl fmt::Debug for SocketRelay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SocketRelay")
            .field("address", &self.address)
            .finish()
    }
}

impl SocketRelay {
    /// Binds the listener and starts accepting worker connections. A stale
    /// Unix socket file is removed first.
    pub async fn bind(
        address: RelayAddress,
        handshake_timeout: Duration,
    ) -> std::io::Result<Arc<SocketRelay>> {
        enum Listener {
            Tcp(TcpListener),
            Unix(UnixListener),
        }
        let listener = match &address {
            RelayAddress::Tcp(addr) => Listener::Tcp(TcpListener::bind(addr).await?),
            RelayAddress::Unix(path) => {
                if path.exists() {
                    std::fs::remove_file(path)?;
                }
                Listener::Unix(UnixListener::bind(path)?)
            }
            RelayAddress::Pipes => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "pipes need no listener",
                ))
            }
        };
        Ok(Arc::new_cyclic(|weak: &std::sync::Weak<SocketRelay>| {
            let weak = weak.clone();
            let accept_task = tokio::spawn(async move {
                loop {
                    let accepted: std::io::Result<(BoxRead, BoxWrite)> = match &listener {
                        Listener::Tcp(l) => l.accept().await.map(|(s, _)| {
                            let _ = s.set_nodelay(true);
                            let (r, w) = s.into_split();
                            (Box::new(r) as BoxRead, Box::new(w) as BoxWrite)
                        }),
                        Listener::Unix(l) => l.accept().await.map(|(s, _)| {
                            let (r, w) = s.into_split();
                            (Box::new(r) as BoxRead, Box::new(w) as BoxWrite)
                        }),
                    };
                    let Some(relay) = weak.upgrade() else { return };
                    match accepted {
                        // One bad connection must not end the accept loop
                        // (RoadRunner's does; see protocol notes, gotcha 7).
                        Ok((reader, writer)) => {
                            tokio::spawn(relay.handshake(reader, writer, handshake_timeout));
                        }
                        Err(err) => {
                            tracing::warn!(target: "server", error = %err, "accepting a worker connection failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
            });
            SocketRelay {
                address,
                rendezvous: Mutex::new(Rendezvous::default()),
                accept_task,
            }
        }))
    }

    /// The address workers connect to.
    pub fn address(&self) -> &RelayAddress {
        &self.address
    }

    async fn handshake(self: Arc<Self>, reader: BoxRead, writer: BoxWrite, timeout: Duration) {
        let mut connection = Connection {
            reader: FrameReader::new(reader),
            writer: FrameWriter::new(writer),
        };
        let pid = match tokio::time::timeout(timeout, protocol::handshake(&mut connection)).await {
            Ok(Ok(pid)) => pid,
            Ok(Err(err)) => {
                tracing::warn!(target: "server", relay = %self.address, error = %err, "worker connection failed the handshake");
                return;
            }
            Err(_) => {
                tracing::warn!(target: "server", relay = %self.address, "worker connection did not answer the handshake in time");
                return;
            }
        };
        let mut rendezvous = self.lock();
        match rendezvous.waiting.remove(&pid) {
            Some(waiter) => {
                let _ = waiter.send(connection);
            }
            None => {
                rendezvous.parked.insert(pid, connection);
            }
        }
    }

    /// Waits for the connection of the worker process `pid`.
    pub(crate) async fn claim(&self, pid: u32) -> Option<Connection> {
        let receiver = {
            let mut rendezvous = self.lock();
            if let Some(connection) = rendezvous.parked.remove(&pid) {
                return Some(connection);
            }
            let (sender, receiver) = oneshot::channel();
            rendezvous.waiting.insert(pid, sender);
            receiver
        };
        receiver.await.ok()
    }

    /// Gives up waiting for `pid` (its process died or timed out).
    pub(crate) fn forget(&self, pid: u32) {
        let mut rendezvous = self.lock();
        rendezvous.waiting.remove(&pid);
        rendezvous.parked.remove(&pid);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Rendezvous> {
        // The maps stay consistent even if a holder panicked: every critical
        // section is a single insert or remove.
        self.rendezvous
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for SocketRelay {
    fn drop(&mut self) {
        self.accept_task.abort();
        if let RelayAddress::Unix(path) = &self.address {
            let _ = std::fs::remove_file(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_addresses_parse_like_roadrunner() {
        assert_eq!(RelayAddress::parse("pipes"), Ok(RelayAddress::Pipes));
        assert_eq!(
            RelayAddress::parse("tcp://127.0.0.1:7000"),
            Ok(RelayAddress::Tcp("127.0.0.1:7000".into()))
        );
        assert_eq!(
            RelayAddress::parse("unix://rr.sock"),
            Ok(RelayAddress::Unix("rr.sock".into()))
        );
        assert_eq!(
            RelayAddress::parse("unix:///tmp/rr.sock"),
            Ok(RelayAddress::Unix("/tmp/rr.sock".into()))
        );
        for bad in [
            "tcp://:7000",
            "tcp://localhost",
            "udp://1.2.3.4:5",
            "unix://",
            "stdin",
        ] {
            let err = RelayAddress::parse(bad).expect_err(bad);
            assert!(err.to_string().contains(bad), "{err}");
        }
    }
}
