//! The codec of an RPC body, chosen by the request's flags as RoadRunner's
//! goridge server codec does, and the encodings of the built-in services.

use bytes::Bytes;
use rr_goridge::flags;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// The codec a request's flags select.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// Protobuf (0x80).
    Proto,
    /// JSON (0x08): what PHP clients send.
    Json,
    /// Raw bytes (0x04).
    Raw,
    /// Msgpack (0x10).
    Msgpack,
    /// Go gob (0x20), also assumed when no codec bit is set.
    Gob,
}

impl Codec {
    /// RoadRunner's precedence: Proto > JSON > Raw > Msgpack > Gob; no codec
    /// bit at all means gob.
    pub fn from_flags(frame_flags: u8) -> Codec {
        if frame_flags & flags::CODEC_PROTO != 0 {
            Codec::Proto
        } else if frame_flags & flags::CODEC_JSON != 0 {
            Codec::Json
        } else if frame_flags & flags::CODEC_RAW != 0 {
            Codec::Raw
        } else if frame_flags & flags::CODEC_MSGPACK != 0 {
            Codec::Msgpack
        } else {
            Codec::Gob
        }
    }

    /// The codec's flag bit.
    pub fn flag(self) -> u8 {
        match self {
            Codec::Proto => flags::CODEC_PROTO,
            Codec::Json => flags::CODEC_JSON,
            Codec::Raw => flags::CODEC_RAW,
            Codec::Msgpack => flags::CODEC_MSGPACK,
            Codec::Gob => flags::CODEC_GOB,
        }
    }

    /// Its name in messages.
    pub fn name(self) -> &'static str {
        match self {
            Codec::Proto => "proto",
            Codec::Json => "json",
            Codec::Raw => "raw",
            Codec::Msgpack => "msgpack",
            Codec::Gob => "gob",
        }
    }
}

/// The message for a codec a service does not speak.
pub fn unsupported(codec: Codec, service: &str) -> String {
    if codec == Codec::Gob {
        return "gob codec is not supported; use JSON".to_owned();
    }
    format!(
        "{} codec (0x{:02x}) is not supported by the {service} service; use JSON",
        codec.name(),
        codec.flag()
    )
}

/// A built-in method's result before encoding.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// A value (Go: anything but `[]byte`).
    Value(Value),
    /// Bytes (Go `[]byte`): raw with the raw codec, base64 in JSON like Go's
    /// `encoding/json`.
    Bytes(Vec<u8>),
}

impl Reply {
    /// Encodes the reply in `codec` (JSON or raw).
    pub fn encode(&self, codec: Codec, service: &str) -> Result<Bytes, String> {
        match (codec, self) {
            (Codec::Json, Reply::Value(value)) => serde_json::to_vec(value)
                .map(Bytes::from)
                .map_err(|e| e.to_string()),
            (Codec::Json, Reply::Bytes(bytes)) => Ok(Bytes::from(format!("\"{}\"", base64(bytes)))),
            (Codec::Raw, Reply::Bytes(bytes)) => Ok(Bytes::from(bytes.clone())),
            // Go's goridge codec: a raw reply must be []byte.
            (Codec::Raw, Reply::Value(_)) => Err("unknown Raw payload type".to_owned()),
            (other, _) => Err(unsupported(other, service)),
        }
    }
}

/// Decodes a request argument: JSON into `T`; raw bytes as a UTF-8 string
/// (the only argument type with a raw form), via `T`'s JSON string form.
pub fn decode_arg<T: DeserializeOwned>(codec: Codec, body: &[u8]) -> Result<T, String> {
    match codec {
        Codec::Json => serde_json::from_slice(body).map_err(|e| format!("json decode: {e}")),
        Codec::Raw => {
            let text = std::str::from_utf8(body).map_err(|e| format!("raw decode: {e}"))?;
            serde_json::from_value(Value::String(text.to_owned()))
                .map_err(|_| "unknown Raw payload type".to_owned())
        }
        other => Err(unsupported(other, "this")),
    }
}

/// Standard base64 with padding (Go's `encoding/json` form of `[]byte`).
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_follows_roadrunner() {
        assert_eq!(Codec::from_flags(0x88), Codec::Proto);
        assert_eq!(Codec::from_flags(0x0c), Codec::Json);
        assert_eq!(Codec::from_flags(0x14), Codec::Raw);
        assert_eq!(Codec::from_flags(0x10), Codec::Msgpack);
        assert_eq!(Codec::from_flags(0x20), Codec::Gob);
        assert_eq!(Codec::from_flags(0x00), Codec::Gob);
    }

    #[test]
    fn base64_matches_go() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"{\"a\":1}"), "eyJhIjoxfQ==");
    }

    #[test]
    fn raw_replies_must_be_bytes() {
        assert_eq!(
            Reply::Value(Value::Bool(true)).encode(Codec::Raw, "x"),
            Err("unknown Raw payload type".to_owned())
        );
        assert_eq!(
            Reply::Bytes(b"ab".to_vec()).encode(Codec::Json, "x"),
            Ok(Bytes::from_static(b"\"YWI=\""))
        );
    }
}
