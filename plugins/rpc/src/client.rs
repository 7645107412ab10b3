//! A blocking goridge RPC client with the JSON codec, as the PHP client
//! speaks it; `rr reset` and `rr workers` use it.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rr_goridge::frame::{encode_header, MAX_HEADER_LEN};
use rr_goridge::{flags, Frame, FrameError};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use thiserror::Error;

use crate::services::WorkerState;
use crate::ListenAddr;

/// Replies larger than this are refused.
const MAX_REPLY_PAYLOAD: u32 = 256 << 20;

/// Why a call failed.
#[derive(Debug, Error)]
pub enum RpcClientError {
    /// The address is not a valid DSN.
    #[error("invalid RPC address: {0}")]
    Address(String),
    /// Nothing answers at the address.
    #[error("cannot connect to the RPC server at {addr} (is rr serve running with an `rpc` section?): {source}")]
    Connect {
        /// The DSN.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// Reading or writing failed (includes timeouts).
    #[error("RPC connection to {addr} failed: {source}")]
    Io {
        /// The DSN.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// The server's reply was not a valid goridge RPC frame.
    #[error("invalid RPC reply from {addr}: {message}")]
    Protocol {
        /// The DSN.
        addr: String,
        /// What was wrong.
        message: String,
    },
    /// The server answered with an error.
    #[error("{method}: {message}")]
    Remote {
        /// The method called.
        method: String,
        /// The server's message.
        message: String,
    },
}

/// The connected socket.
enum Socket {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Socket {
    fn set_timeout(&self, timeout: Option<Duration>) -> std::io::Result<()> {
        match self {
            Socket::Tcp(s) => {
                s.set_read_timeout(timeout)?;
                s.set_write_timeout(timeout)
            }
            Socket::Unix(s) => {
                s.set_read_timeout(timeout)?;
                s.set_write_timeout(timeout)
            }
        }
    }
}

impl Read for Socket {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Socket::Tcp(s) => s.read(buf),
            Socket::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Socket {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Socket::Tcp(s) => s.write(buf),
            Socket::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Socket::Tcp(s) => s.flush(),
            Socket::Unix(s) => s.flush(),
        }
    }
}

/// A connection to an rr (or RoadRunner) RPC server.
pub struct RpcClient {
    stream: Socket,
    addr: String,
    seq: u32,
    buf: BytesMut,
}

impl std::fmt::Debug for RpcClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcClient")
            .field("addr", &self.addr)
            .field("seq", &self.seq)
            .finish()
    }
}

impl RpcClient {
    /// Connects to `dsn` (`tcp://host:port` or `unix://path`) within
    /// `timeout`; calls time out after `timeout` too, until
    /// [`set_call_timeout`](RpcClient::set_call_timeout) changes it.
    pub fn connect(dsn: &str, timeout: Duration) -> Result<RpcClient, RpcClientError> {
        let addr = ListenAddr::parse(dsn).map_err(RpcClientError::Address)?;
        let name = addr.to_string();
        let connect_error = |source| RpcClientError::Connect {
            addr: name.clone(),
            source,
        };
        let stream = match &addr {
            ListenAddr::Tcp(host_port) => {
                let mut last = None;
                let mut connected = None;
                for socket in host_port.to_socket_addrs().map_err(connect_error)? {
                    match TcpStream::connect_timeout(&socket, timeout) {
                        Ok(stream) => {
                            connected = Some(stream);
                            break;
                        }
                        Err(err) => last = Some(err),
                    }
                }
                let stream = connected.ok_or_else(|| {
                    connect_error(last.unwrap_or_else(|| {
                        std::io::Error::new(std::io::ErrorKind::NotFound, "no address resolved")
                    }))
                })?;
                let _ = stream.set_nodelay(true);
                Socket::Tcp(stream)
            }
            ListenAddr::Unix(path) => {
                Socket::Unix(UnixStream::connect(path).map_err(connect_error)?)
            }
        };
        stream.set_timeout(Some(timeout)).map_err(connect_error)?;
        Ok(RpcClient {
            stream,
            addr: name,
            seq: 1,
            buf: BytesMut::new(),
        })
    }

    /// The server's address.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Bounds each later call by `timeout` (`None`: wait forever).
    pub fn set_call_timeout(&mut self, timeout: Option<Duration>) -> Result<(), RpcClientError> {
        self.stream
            .set_timeout(timeout)
            .map_err(|source| self.io(source))
    }

    /// Calls `method` with `arg` encoded as JSON and decodes the JSON reply.
    pub fn call_json(
        &mut self,
        method: &str,
        arg: &impl Serialize,
    ) -> Result<Value, RpcClientError> {
        let body = serde_json::to_vec(arg).map_err(|e| RpcClientError::Protocol {
            addr: self.addr.clone(),
            message: format!("cannot encode the argument: {e}"),
        })?;
        let reply = self.call_raw(method, flags::CODEC_JSON, &body)?;
        serde_json::from_slice(&reply).map_err(|e| RpcClientError::Protocol {
            addr: self.addr.clone(),
            message: format!("reply of {method} is not JSON: {e}"),
        })
    }

    /// Calls `method` with `body` in codec `codec` (a flag) and returns the
    /// reply body (the method name stripped).
    pub fn call_raw(
        &mut self,
        method: &str,
        codec: u8,
        body: &[u8],
    ) -> Result<Bytes, RpcClientError> {
        let seq = self.seq;
        self.seq = self.seq.wrapping_add(1).max(1);
        let mut header = [0u8; MAX_HEADER_LEN];
        let header_len = encode_header(
            &mut header,
            codec,
            0,
            &[seq, method.len() as u32],
            method.len() + body.len(),
        )
        .map_err(|e| self.protocol(e.to_string()))?;
        let mut request = Vec::with_capacity(header_len + method.len() + body.len());
        request.extend_from_slice(&header[..header_len]);
        request.extend_from_slice(method.as_bytes());
        request.extend_from_slice(body);
        self.stream
            .write_all(&request)
            .map_err(|source| self.io(source))?;
        self.stream.flush().map_err(|source| self.io(source))?;

        let frame = self.read_frame()?;
        let options = frame.options.as_slice();
        let [reply_seq, method_len] = *options else {
            return Err(self.protocol(format!(
                "expected 2 options (seq, method length), got {}",
                options.len()
            )));
        };
        if reply_seq != seq {
            return Err(self.protocol(format!(
                "sequence mismatch: sent {seq}, reply has {reply_seq}"
            )));
        }
        let method_len = (method_len as usize).min(frame.payload.len());
        let reply = frame.payload.slice(method_len..);
        if frame.flags & flags::ERROR != 0 {
            return Err(RpcClientError::Remote {
                method: method.to_owned(),
                message: String::from_utf8_lossy(&reply).into_owned(),
            });
        }
        Ok(reply)
    }

    /// `resetter.List`: the plugins that can reset.
    pub fn resettable(&mut self) -> Result<Vec<String>, RpcClientError> {
        self.call_typed("resetter.List", &true)
    }

    /// `resetter.Reset`: replaces the workers of `plugin`.
    pub fn reset(&mut self, plugin: &str) -> Result<bool, RpcClientError> {
        self.call_typed("resetter.Reset", &plugin)
    }

    /// `informer.List`: the plugins that have workers.
    pub fn plugins_with_workers(&mut self) -> Result<Vec<String>, RpcClientError> {
        self.call_typed("informer.List", &true)
    }

    /// `informer.Workers`: the workers of `plugin` (none for an unknown one).
    pub fn workers(&mut self, plugin: &str) -> Result<Vec<WorkerState>, RpcClientError> {
        #[derive(serde::Deserialize)]
        struct List {
            workers: Option<Vec<WorkerState>>,
        }
        let list: List = self.call_typed("informer.Workers", &plugin)?;
        Ok(list.workers.unwrap_or_default())
    }

    /// Calls `method` with JSON and decodes the reply into `T`.
    pub fn call_typed<T: DeserializeOwned>(
        &mut self,
        method: &str,
        arg: &impl Serialize,
    ) -> Result<T, RpcClientError> {
        let value = self.call_json(method, arg)?;
        serde_json::from_value(value)
            .map_err(|e| self.protocol(format!("unexpected reply of {method}: {e}")))
    }

    fn read_frame(&mut self) -> Result<Frame, RpcClientError> {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match Frame::decode(&mut self.buf, MAX_REPLY_PAYLOAD) {
                Ok(Some(frame)) => return Ok(frame),
                Ok(None) => {}
                Err(err) => return Err(self.protocol(err.to_string())),
            }
            let n = self
                .stream
                .read(&mut chunk)
                .map_err(|source| self.io(source))?;
            if n == 0 {
                return Err(self.protocol(FrameError::Closed.to_string().replace(
                    "relay closed by the worker",
                    "the server closed the connection",
                )));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    fn io(&self, source: std::io::Error) -> RpcClientError {
        RpcClientError::Io {
            addr: self.addr.clone(),
            source,
        }
    }

    fn protocol(&self, message: String) -> RpcClientError {
        RpcClientError::Protocol {
            addr: self.addr.clone(),
            message,
        }
    }
}
