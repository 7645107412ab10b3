//! The goridge frame: a 12-byte header, up to ten `u32` options, then the payload.
//!
//! Layout (all integers little-endian), as RoadRunner's goridge v3 writes it:
//!
//! | bytes | meaning |
//! |---|---|
//! | 0 | `version << 4 \| HL`; version is 1, HL is the header length in 32-bit words (3 = no options) |
//! | 1 | flags ([`flags`]) |
//! | 2..6 | payload length (`u32`), options not included |
//! | 6..10 | CRC32 (IEEE) of bytes 0..6 only |
//! | 10 | stream flags ([`stream`]) |
//! | 11 | reserved, zero |
//! | 12.. | `HL - 3` options (`u32` each) |
//!
//! This module is pure: it never does IO, so it can be property-tested and fuzzed.

use bytes::{Buf, Bytes, BytesMut};
use thiserror::Error;

/// Length of the fixed part of every header.
pub const HEADER_LEN: usize = 12;
/// Most options one frame can carry (RoadRunner's `OptionsMaxSize` is 40 bytes).
pub const MAX_OPTIONS: usize = 10;
/// The only protocol version goridge has.
pub const VERSION: u8 = 1;
/// Largest header: the fixed part plus every option.
pub const MAX_HEADER_LEN: usize = HEADER_LEN + 4 * MAX_OPTIONS;

/// Bits of header byte 1.
pub mod flags {
    /// A control frame: handshake (`{"pid":N}`) or stop (`{"stop":true}`).
    pub const CONTROL: u8 = 0x01;
    /// The payload is raw bytes.
    pub const CODEC_RAW: u8 = 0x04;
    /// The payload is JSON.
    pub const CODEC_JSON: u8 = 0x08;
    /// The payload is msgpack.
    pub const CODEC_MSGPACK: u8 = 0x10;
    /// The payload is Go gob (RoadRunner's RPC fallback codec).
    pub const CODEC_GOB: u8 = 0x20;
    /// The payload is an error message.
    pub const ERROR: u8 = 0x40;
    /// The payload is protobuf.
    pub const CODEC_PROTO: u8 = 0x80;
}

/// Bits of header byte 10, used by streamed responses.
pub mod stream {
    /// More frames of the same response follow.
    pub const STREAM: u8 = 0x01;
    /// The server asks the worker to stop streaming.
    pub const STOP: u8 = 0x02;
    /// A worker in stream mode asks for a sign of life.
    pub const PING: u8 = 0x04;
    /// The server's answer to [`PING`].
    pub const PONG: u8 = 0x08;
}

/// Why bytes could not be read as a frame.
#[derive(Debug, Error)]
pub enum FrameError {
    /// The header checksum did not match: almost always a PHP script that wrote
    /// to STDOUT while the relay is `pipes`. The text is RoadRunner's, so users
    /// can search for it.
    #[error("validation failed on the message sent to STDOUT, see: https://docs.roadrunner.dev/error-codes/stdout-crc, invalid message: {0}")]
    Crc(String),
    /// The checksum matched but the version nibble was not 1.
    #[error("unsupported goridge protocol version {0}, expected 1")]
    Version(u8),
    /// The checksum matched but the header length was outside 3..=13 words.
    #[error("invalid header length of {0} words, expected 3 to 13")]
    HeaderLength(u8),
    /// The frame announced a payload larger than the reader accepts.
    #[error("frame payload of {len} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Announced payload length.
        len: u32,
        /// The reader's limit.
        limit: u32,
    },
    /// More than [`MAX_OPTIONS`] options were given to the encoder.
    #[error("a frame carries at most 10 options, got {0}")]
    TooManyOptions(usize),
    /// A payload longer than `u32::MAX` bytes was given to the encoder.
    #[error("a frame payload is at most 4 GiB, got {0} bytes")]
    PayloadTooLong(usize),
    /// The peer closed the stream between two frames.
    #[error("relay closed by the worker")]
    Closed,
    /// The peer closed the stream in the middle of a frame.
    #[error("relay closed in the middle of a frame ({got} of {expected} bytes read)")]
    Truncated {
        /// Bytes of the frame that arrived.
        got: usize,
        /// Bytes the frame needed.
        expected: usize,
    },
    /// PHP could not open the worker script; the text is PHP's own message.
    #[error("worker script not found: {0}")]
    FileNotFound(String),
    /// Reading from or writing to the relay failed.
    #[error("relay IO error: {0}")]
    Io(#[from] std::io::Error),
}

/// The options of one frame: at most [`MAX_OPTIONS`] `u32` words, stored inline.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    len: u8,
    words: [u32; MAX_OPTIONS],
}

impl Options {
    /// Options from a slice; fails with more than [`MAX_OPTIONS`] words.
    pub fn from_slice(words: &[u32]) -> Result<Self, FrameError> {
        if words.len() > MAX_OPTIONS {
            return Err(FrameError::TooManyOptions(words.len()));
        }
        let mut options = Options::default();
        options.words[..words.len()].copy_from_slice(words);
        options.len = words.len() as u8;
        Ok(options)
    }

    /// The options as a slice.
    pub fn as_slice(&self) -> &[u32] {
        &self.words[..usize::from(self.len)]
    }

    /// Number of options.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// True when the frame has no options.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

/// The decoded fixed header of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Byte 1: [`flags`].
    pub flags: u8,
    /// Byte 10: [`stream`] flags.
    pub stream: u8,
    /// How many option words follow the fixed header.
    pub option_count: usize,
    /// Payload length, options not included.
    pub payload_len: u32,
}

impl Header {
    /// Parses and validates the fixed 12 header bytes (checksum first, so a
    /// stray text on STDOUT is reported as such and not as a bad version).
    pub fn parse(bytes: &[u8; HEADER_LEN]) -> Result<Header, FrameError> {
        let stored_crc = u32::from_le_bytes([bytes[6], bytes[7], bytes[8], bytes[9]]);
        if crc32fast::hash(&bytes[..6]) != stored_crc {
            return Err(FrameError::Crc(String::from_utf8_lossy(bytes).into_owned()));
        }
        let version = bytes[0] >> 4;
        if version != VERSION {
            return Err(FrameError::Version(version));
        }
        let words = bytes[0] & 0x0f;
        if !(3..=13).contains(&words) {
            return Err(FrameError::HeaderLength(words));
        }
        Ok(Header {
            flags: bytes[1],
            stream: bytes[10],
            option_count: usize::from(words - 3),
            payload_len: u32::from_le_bytes([bytes[2], bytes[3], bytes[4], bytes[5]]),
        })
    }

    /// Bytes the whole header takes, options included.
    pub fn len(&self) -> usize {
        HEADER_LEN + 4 * self.option_count
    }

    /// Always false: a header is never empty. Present for API symmetry with `len`.
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// Writes a header with `options` into `out` and returns the bytes written.
///
/// `out` must hold at least [`MAX_HEADER_LEN`] bytes.
pub fn encode_header(
    out: &mut [u8; MAX_HEADER_LEN],
    flags: u8,
    stream: u8,
    options: &[u32],
    payload_len: usize,
) -> Result<usize, FrameError> {
    if options.len() > MAX_OPTIONS {
        return Err(FrameError::TooManyOptions(options.len()));
    }
    let payload_len =
        u32::try_from(payload_len).map_err(|_| FrameError::PayloadTooLong(payload_len))?;
    out[0] = (VERSION << 4) | (3 + options.len() as u8);
    out[1] = flags;
    out[2..6].copy_from_slice(&payload_len.to_le_bytes());
    let crc = crc32fast::hash(&out[..6]);
    out[6..10].copy_from_slice(&crc.to_le_bytes());
    out[10] = stream;
    out[11] = 0;
    for (i, word) in options.iter().enumerate() {
        let at = HEADER_LEN + 4 * i;
        out[at..at + 4].copy_from_slice(&word.to_le_bytes());
    }
    Ok(HEADER_LEN + 4 * options.len())
}

/// One whole frame.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Frame {
    /// Header byte 1: [`flags`].
    pub flags: u8,
    /// Header byte 10: [`stream`] flags.
    pub stream: u8,
    /// The option words.
    pub options: Options,
    /// The payload bytes (options not included).
    pub payload: Bytes,
}

impl Frame {
    /// A frame with the given flags, options and payload and no stream flags.
    pub fn new(flags: u8, options: &[u32], payload: impl Into<Bytes>) -> Result<Frame, FrameError> {
        Ok(Frame {
            flags,
            stream: 0,
            options: Options::from_slice(options)?,
            payload: payload.into(),
        })
    }

    /// True when the CONTROL flag is set.
    pub fn is_control(&self) -> bool {
        self.flags & flags::CONTROL != 0
    }

    /// True when the ERROR flag is set.
    pub fn is_error(&self) -> bool {
        self.flags & flags::ERROR != 0
    }

    /// Appends the encoded frame to `dst`.
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), FrameError> {
        let mut header = [0u8; MAX_HEADER_LEN];
        let n = encode_header(
            &mut header,
            self.flags,
            self.stream,
            self.options.as_slice(),
            self.payload.len(),
        )?;
        dst.reserve(n + self.payload.len());
        dst.extend_from_slice(&header[..n]);
        dst.extend_from_slice(&self.payload);
        Ok(())
    }

    /// Decodes one frame from the front of `src`.
    ///
    /// Returns `Ok(None)` when `src` does not hold a whole frame yet (nothing is
    /// consumed then), and an error as soon as the header is known to be bad or
    /// announces more than `max_payload` bytes. The payload is split off `src`
    /// without copying.
    pub fn decode(src: &mut BytesMut, max_payload: u32) -> Result<Option<Frame>, FrameError> {
        let Some(header) = peek_header(src)? else {
            return Ok(None);
        };
        if header.payload_len > max_payload {
            return Err(FrameError::TooLarge {
                len: header.payload_len,
                limit: max_payload,
            });
        }
        let total = header.len() + header.payload_len as usize;
        if src.len() < total {
            return Ok(None);
        }
        let mut options = Options {
            len: header.option_count as u8,
            ..Options::default()
        };
        for (i, word) in options.words[..header.option_count].iter_mut().enumerate() {
            let at = HEADER_LEN + 4 * i;
            *word = u32::from_le_bytes([src[at], src[at + 1], src[at + 2], src[at + 3]]);
        }
        src.advance(header.len());
        let payload = src.split_to(header.payload_len as usize).freeze();
        Ok(Some(Frame {
            flags: header.flags,
            stream: header.stream,
            options,
            payload,
        }))
    }
}

/// Parses the header at the front of `src` if all 12 bytes are there.
pub fn peek_header(src: &[u8]) -> Result<Option<Header>, FrameError> {
    let Some(fixed) = src.get(..HEADER_LEN) else {
        return Ok(None);
    };
    let mut bytes = [0u8; HEADER_LEN];
    bytes.copy_from_slice(fixed);
    Header::parse(&bytes).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A header taken byte for byte from RoadRunner's documentation of the
    /// handshake: CONTROL|JSON, no options, payload `{"pid":1}`.
    #[test]
    fn control_frame_matches_the_reference_layout() {
        let frame = Frame::new(flags::CONTROL | flags::CODEC_JSON, &[], &b"{\"pid\":1}"[..])
            .expect("valid frame");
        let mut buf = BytesMut::new();
        frame.encode(&mut buf).expect("encodes");
        assert_eq!(buf[0], 0x13, "version 1, three header words");
        assert_eq!(buf[1], 0x09);
        assert_eq!(&buf[2..6], &9u32.to_le_bytes());
        assert_eq!(&buf[6..10], &crc32fast::hash(&buf[..6]).to_le_bytes());
        assert_eq!(&buf[10..12], &[0, 0]);
        assert_eq!(&buf[12..], b"{\"pid\":1}");
    }

    #[test]
    fn one_option_sets_four_header_words() {
        let frame = Frame::new(0, &[5], &b"ctx..body"[..]).expect("valid frame");
        let mut buf = BytesMut::new();
        frame.encode(&mut buf).expect("encodes");
        assert_eq!(buf[0], 0x14);
        assert_eq!(&buf[12..16], &5u32.to_le_bytes());
        assert_eq!(
            &buf[2..6],
            &9u32.to_le_bytes(),
            "options are not in the length"
        );
    }

    #[test]
    fn decode_waits_for_a_whole_frame_and_consumes_nothing_before() {
        let frame = Frame::new(flags::CODEC_RAW, &[1, 2], &b"hello"[..]).expect("valid");
        let mut full = BytesMut::new();
        frame.encode(&mut full).expect("encodes");
        for cut in 0..full.len() {
            let mut partial = BytesMut::from(&full[..cut]);
            assert!(Frame::decode(&mut partial, u32::MAX)
                .expect("no error")
                .is_none());
            assert_eq!(partial.len(), cut);
        }
        let decoded = Frame::decode(&mut full, u32::MAX)
            .expect("ok")
            .expect("whole");
        assert_eq!(decoded, frame);
        assert!(full.is_empty());
    }

    #[test]
    fn stray_stdout_text_is_reported_with_roadrunners_message() {
        let mut buf = BytesMut::from(&b"hello from a careless echo\n"[..]);
        let err = Frame::decode(&mut buf, u32::MAX).expect_err("not a frame");
        let text = err.to_string();
        assert!(text.starts_with("validation failed on the message sent to STDOUT"));
        assert!(text.contains("hello from a"), "{text}");
    }

    #[test]
    fn oversized_payload_is_refused_before_it_arrives() {
        let mut header = [0u8; MAX_HEADER_LEN];
        let n = encode_header(&mut header, 0, 0, &[0], u32::MAX as usize).expect("header");
        let mut buf = BytesMut::from(&header[..n]);
        match Frame::decode(&mut buf, 1 << 20) {
            Err(FrameError::TooLarge { len, limit }) => {
                assert_eq!(len, u32::MAX);
                assert_eq!(limit, 1 << 20);
            }
            other => panic!("expected TooLarge, got {other:?}"),
        }
    }

    #[test]
    fn bad_version_with_valid_crc_is_named() {
        let mut header = [0u8; MAX_HEADER_LEN];
        encode_header(&mut header, 0, 0, &[], 0).expect("header");
        header[0] = 0x23;
        let crc = crc32fast::hash(&header[..6]);
        header[6..10].copy_from_slice(&crc.to_le_bytes());
        let mut buf = BytesMut::from(&header[..HEADER_LEN]);
        assert!(matches!(
            Frame::decode(&mut buf, u32::MAX),
            Err(FrameError::Version(2))
        ));
    }

    #[test]
    fn eleven_options_are_refused() {
        assert!(matches!(
            Frame::new(0, &[0; 11], Bytes::new()),
            Err(FrameError::TooManyOptions(11))
        ));
    }
}
