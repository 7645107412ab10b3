//! RoadRunner's `kv.v1` protobuf messages (`roadrunner-server/api`,
//! `kv/v1/kv.proto`), encoded and decoded by hand: no build-time `protoc`.
//!
//! ```proto
//! message Request  { string storage = 1; repeated Item items = 2; }
//! message Item     { string key = 1; bytes value = 2; string timeout = 3; }
//! message Response { repeated Item items = 1; }
//! ```
//!
//! Encoding follows proto3: fields equal to their default (`""`, empty
//! bytes) are left out. Decoding accepts fields in any order, repeated
//! scalar fields (the last wins) and skips unknown fields of every wire type.
//!
//! The same messages in JSON (what Go's `net/rpc` JSON codec makes of the
//! generated structs): `{"storage": "...", "items": [{"key": "...",
//! "value": "<base64>", "timeout": "..."}]}`.

use serde::{Deserialize, Serialize};

/// `kv.v1.Item`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProtoItem {
    /// Field 1.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub key: String,
    /// Field 2 (base64 in JSON).
    #[serde(with = "base64_bytes", skip_serializing_if = "Vec::is_empty")]
    pub value: Vec<u8>,
    /// Field 3: an RFC 3339 time, or empty.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub timeout: String,
}

/// `kv.v1.Request`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Request {
    /// Field 1: the storage's name (`kv.<name>`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub storage: String,
    /// Field 2.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<ProtoItem>,
}

/// `kv.v1.Response`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Response {
    /// Field 1.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<ProtoItem>,
}

/// A malformed protobuf message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The input ends inside a field.
    #[error("proto: unexpected end of message")]
    Truncated,
    /// A varint longer than 10 bytes.
    #[error("proto: varint overflow")]
    VarintOverflow,
    /// A wire type protobuf does not define (or a group).
    #[error("proto: unsupported wire type {0}")]
    WireType(u8),
    /// A known field with the wrong wire type.
    #[error("proto: field {field} has wire type {wire}, expected 2 (length-delimited)")]
    FieldType {
        /// Field number.
        field: u64,
        /// Wire type found.
        wire: u8,
    },
    /// A `string` field that is not UTF-8.
    #[error("proto: field {0} is not valid UTF-8")]
    Utf8(u64),
    /// Field number 0.
    #[error("proto: illegal field number 0")]
    FieldZero,
}

impl Request {
    /// The message's protobuf bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        put_bytes(&mut out, 1, self.storage.as_bytes());
        for item in &self.items {
            put_message(&mut out, 2, &item.encode());
        }
        out
    }

    /// Decodes protobuf bytes.
    pub fn decode(mut input: &[u8]) -> Result<Request, DecodeError> {
        let mut request = Request::default();
        while let Some((field, data)) = next_field(&mut input)? {
            match field {
                1 => request.storage = utf8(field, data)?,
                2 => request.items.push(ProtoItem::decode(data)?),
                _ => {}
            }
        }
        Ok(request)
    }
}

impl ProtoItem {
    /// The message's protobuf bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.key.len() + self.value.len() + 8);
        put_bytes(&mut out, 1, self.key.as_bytes());
        put_bytes(&mut out, 2, &self.value);
        put_bytes(&mut out, 3, self.timeout.as_bytes());
        out
    }

    /// Decodes protobuf bytes.
    pub fn decode(mut input: &[u8]) -> Result<ProtoItem, DecodeError> {
        let mut item = ProtoItem::default();
        while let Some((field, data)) = next_field(&mut input)? {
            match field {
                1 => item.key = utf8(field, data)?,
                2 => item.value = data.to_vec(),
                3 => item.timeout = utf8(field, data)?,
                _ => {}
            }
        }
        Ok(item)
    }
}

impl Response {
    /// The message's protobuf bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for item in &self.items {
            put_message(&mut out, 1, &item.encode());
        }
        out
    }

    /// Decodes protobuf bytes.
    pub fn decode(mut input: &[u8]) -> Result<Response, DecodeError> {
        let mut response = Response::default();
        while let Some((field, data)) = next_field(&mut input)? {
            if field == 1 {
                response.items.push(ProtoItem::decode(data)?);
            }
        }
        Ok(response)
    }
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// A length-delimited field, left out when empty (proto3 default).
fn put_bytes(out: &mut Vec<u8>, field: u64, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    put_message(out, field, data);
}

/// A length-delimited field, always written (embedded messages).
fn put_message(out: &mut Vec<u8>, field: u64, data: &[u8]) {
    put_varint(out, (field << 3) | 2);
    put_varint(out, data.len() as u64);
    out.extend_from_slice(data);
}

fn varint(input: &mut &[u8]) -> Result<u64, DecodeError> {
    let mut value = 0u64;
    for i in 0..10 {
        let (&byte, rest) = input.split_first().ok_or(DecodeError::Truncated)?;
        *input = rest;
        value |= u64::from(byte & 0x7F) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(DecodeError::VarintOverflow)
}

fn take<'a>(input: &mut &'a [u8], n: u64) -> Result<&'a [u8], DecodeError> {
    let n = usize::try_from(n).map_err(|_| DecodeError::Truncated)?;
    if input.len() < n {
        return Err(DecodeError::Truncated);
    }
    let (head, rest) = input.split_at(n);
    *input = rest;
    Ok(head)
}

/// The next length-delimited field as (number, bytes); unknown fields of
/// other wire types are skipped, known ones must be length-delimited.
fn next_field<'a>(input: &mut &'a [u8]) -> Result<Option<(u64, &'a [u8])>, DecodeError> {
    loop {
        if input.is_empty() {
            return Ok(None);
        }
        let tag = varint(input)?;
        let field = tag >> 3;
        let wire = (tag & 7) as u8;
        if field == 0 {
            return Err(DecodeError::FieldZero);
        }
        let known = field <= 3;
        match wire {
            2 => {
                let len = varint(input)?;
                let data = take(input, len)?;
                return Ok(Some((field, data)));
            }
            _ if known => return Err(DecodeError::FieldType { field, wire }),
            0 => {
                varint(input)?;
            }
            1 => {
                take(input, 8)?;
            }
            5 => {
                take(input, 4)?;
            }
            other => return Err(DecodeError::WireType(other)),
        }
    }
}

fn utf8(field: u64, data: &[u8]) -> Result<String, DecodeError> {
    String::from_utf8(data.to_vec()).map_err(|_| DecodeError::Utf8(field))
}

/// Go's `encoding/json` form of `[]byte`: standard base64 with padding.
mod base64_bytes {
    use serde::{de, Deserialize, Deserializer, Serializer};

    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
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
        s.serialize_str(&out)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = Option::<String>::deserialize(d)?.unwrap_or_default();
        decode(&text).ok_or_else(|| de::Error::custom("illegal base64 data"))
    }

    pub fn decode(text: &str) -> Option<Vec<u8>> {
        let text = text.trim_end_matches('=');
        let mut out = Vec::with_capacity(text.len() * 3 / 4);
        let mut acc = 0u32;
        let mut bits = 0;
        for c in text.bytes() {
            let v = ALPHABET.iter().position(|&a| a == c)? as u32;
            acc = (acc << 6) | v;
            bits += 6;
            if bits >= 8 {
                bits -= 8;
                out.push((acc >> bits) as u8);
                acc &= (1 << bits) - 1;
            }
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn item() -> impl Strategy<Value = ProtoItem> {
        (
            ".{0,12}",
            proptest::collection::vec(any::<u8>(), 0..300),
            ".{0,30}",
        )
            .prop_map(|(key, value, timeout)| ProtoItem {
                key,
                value,
                timeout,
            })
    }

    fn request() -> impl Strategy<Value = Request> {
        (".{0,20}", proptest::collection::vec(item(), 0..6))
            .prop_map(|(storage, items)| Request { storage, items })
    }

    proptest! {
        #[test]
        fn requests_round_trip(req in request()) {
            prop_assert_eq!(Request::decode(&req.encode()).expect("must succeed"), req);
        }

        #[test]
        fn responses_round_trip(items in proptest::collection::vec(item(), 0..6)) {
            let resp = Response { items };
            prop_assert_eq!(Response::decode(&resp.encode()).expect("must succeed"), resp);
        }

        #[test]
        fn json_round_trips(req in request()) {
            let text = serde_json::to_vec(&req).expect("must succeed");
            prop_assert_eq!(serde_json::from_slice::<Request>(&text).expect("must succeed"), req);
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = Request::decode(&bytes);
            let _ = Response::decode(&bytes);
        }

        #[test]
        fn unknown_fields_are_skipped(req in request(), extra in any::<u64>()) {
            let mut bytes = req.encode();
            // field 9 varint, field 10 fixed64, field 11 fixed32, field 12 bytes
            bytes.extend([9 << 3]);
            put_varint(&mut bytes, extra);
            bytes.extend([(10 << 3) | 1, 1, 2, 3, 4, 5, 6, 7, 8]);
            bytes.extend([(11 << 3) | 5, 1, 2, 3, 4]);
            bytes.extend([(12 << 3) | 2, 2, b'h', b'i']);
            prop_assert_eq!(Request::decode(&bytes).expect("must succeed"), req);
        }
    }

    /// Bytes produced by the official PHP client (google/protobuf) for
    /// `new Request(['storage' => 'mem', 'items' => [new Item(['key' => 'a',
    /// 'value' => 'xy', 'timeout' => 'T'])]])`, written out by hand.
    #[test]
    fn decodes_a_known_message() {
        let bytes = [
            0x0a, 3, b'm', b'e', b'm', 0x12, 10, 0x0a, 1, b'a', 0x12, 2, b'x', b'y', 0x1a, 1, b'T',
        ];
        let req = Request::decode(&bytes).expect("must succeed");
        assert_eq!(req.storage, "mem");
        assert_eq!(
            req.items,
            vec![ProtoItem {
                key: "a".into(),
                value: b"xy".to_vec(),
                timeout: "T".into()
            }]
        );
        assert_eq!(req.encode(), bytes);
    }

    #[test]
    fn truncated_and_mistyped_fields_are_errors() {
        assert_eq!(
            Request::decode(&[0x0a, 5, b'a']),
            Err(DecodeError::Truncated)
        );
        assert_eq!(
            Request::decode(&[0x08, 1]),
            Err(DecodeError::FieldType { field: 1, wire: 0 })
        );
        assert_eq!(Request::decode(&[0x0a, 1, 0xff]), Err(DecodeError::Utf8(1)));
    }

    #[test]
    fn base64_matches_go() {
        let v = serde_json::to_string(&ProtoItem {
            value: b"hello!?".to_vec(),
            ..Default::default()
        })
        .expect("must succeed");
        assert_eq!(v, r#"{"value":"aGVsbG8hPw=="}"#);
        assert_eq!(
            base64_bytes::decode("aGVsbG8hPw==").expect("must succeed"),
            b"hello!?"
        );
    }
}
