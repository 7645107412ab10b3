//! The goridge frame protocol, as RoadRunner speaks it to PHP workers and RPC clients.
//!
//! [`frame`] is the pure codec (no IO, property-tested and fuzzed); [`io`] moves
//! frames over any tokio byte stream with reusable buffers. What the frames
//! *mean* (handshake, payloads, stop) belongs to the worker layer, not here.
#![forbid(unsafe_code)]

pub mod frame;
pub mod io;

pub use frame::{flags, stream, Frame, FrameError, Header, Options};
pub use io::{FrameReader, FrameWriter, DEFAULT_MAX_PAYLOAD};
