//! `rpc.listen` addresses: `tcp://host:port` and `unix://path`.

use std::fmt;
use std::path::PathBuf;

/// RoadRunner's default for `rpc.listen` when the `rpc` section exists.
pub const DEFAULT_LISTEN: &str = "tcp://127.0.0.1:6001";

/// Where the RPC server listens and the client connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    /// `host:port`; an empty host (`tcp://:6001`) means every interface.
    Tcp(String),
    /// A Unix socket path.
    Unix(PathBuf),
}

impl ListenAddr {
    /// Parses a DSN; the error is a message for `rpc.listen`.
    pub fn parse(dsn: &str) -> Result<ListenAddr, String> {
        let hint =
            "expected tcp://host:port or unix://path (e.g. tcp://127.0.0.1:6001, unix://rr.sock)";
        let Some((scheme, rest)) = dsn.split_once("://") else {
            return Err(format!("invalid socket DSN {dsn:?}: {hint}"));
        };
        match scheme {
            "tcp" => {
                let Some((host, port)) = rest.rsplit_once(':') else {
                    return Err(format!("invalid socket DSN {dsn:?}: missing port; {hint}"));
                };
                if port.parse::<u16>().is_err() {
                    return Err(format!(
                        "invalid socket DSN {dsn:?}: bad port {port:?}; {hint}"
                    ));
                }
                let host = if host.is_empty() { "0.0.0.0" } else { host };
                Ok(ListenAddr::Tcp(format!("{host}:{port}")))
            }
            "unix" if !rest.is_empty() => Ok(ListenAddr::Unix(PathBuf::from(rest))),
            _ => Err(format!("invalid socket DSN {dsn:?}: {hint}")),
        }
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenAddr::Tcp(addr) => write!(f, "tcp://{addr}"),
            ListenAddr::Unix(path) => write!(f, "unix://{}", path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tcp_and_unix() {
        assert_eq!(
            ListenAddr::parse("tcp://127.0.0.1:6001"),
            Ok(ListenAddr::Tcp("127.0.0.1:6001".into()))
        );
        assert_eq!(
            ListenAddr::parse("tcp://:6001"),
            Ok(ListenAddr::Tcp("0.0.0.0:6001".into()))
        );
        assert_eq!(
            ListenAddr::parse("unix:///tmp/rr.sock"),
            Ok(ListenAddr::Unix("/tmp/rr.sock".into()))
        );
        assert_eq!(
            ListenAddr::parse("unix://rr.sock"),
            Ok(ListenAddr::Unix("rr.sock".into()))
        );
        for bad in [
            "127.0.0.1:6001",
            "http://x:1",
            "tcp://host",
            "tcp://h:99999",
            "unix://",
        ] {
            assert!(ListenAddr::parse(bad).is_err(), "{bad}");
        }
    }
}
