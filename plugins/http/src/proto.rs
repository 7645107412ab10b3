//! The `http.v1` protobuf messages (roadrunner-server/api
//! `http/v1/http.proto`), encoded and decoded by hand: they are small and
//! fixed, and this avoids a protoc step at build time.
//!
//! ```text
//! message Request  { string remote_addr = 1; string protocol = 2; string method = 3;
//!                    string uri = 4; map<string, HeaderValue> header = 5;
//!                    map<string, HeaderValue> cookies = 6; string raw_query = 7;
//!                    bool parsed = 8; bytes uploads = 9;
//!                    map<string, HeaderValue> attributes = 10; }
//! message Response { int64 status = 1; map<string, HeaderValue> headers = 2; }
//! message HeaderValue { repeated bytes value = 1; }
//! ```

use thiserror::Error;

/// A `map<string, HeaderValue>`: names with their values, in order.
pub type HeaderMap = Vec<(String, Vec<Vec<u8>>)>;

/// `http.v1.Request`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    /// Client IP without port.
    pub remote_addr: String,
    /// `HTTP/1.1`, `HTTP/2.0`, ...
    pub protocol: String,
    /// The method as received.
    pub method: String,
    /// Absolute URI: scheme, host, path and query.
    pub uri: String,
    /// Request headers in Go canonical form, without `Host`.
    pub header: HeaderMap,
    /// One value per cookie name.
    pub cookies: HeaderMap,
    /// The undecoded query string.
    pub raw_query: String,
    /// Whether the body is a JSON form tree.
    pub parsed: bool,
    /// JSON of the uploads tree (multipart only).
    pub uploads: Vec<u8>,
    /// PSR-7 attributes set by middlewares.
    pub attributes: HeaderMap,
}

/// `http.v1.Response`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Response {
    /// HTTP status.
    pub status: i64,
    /// Response headers with every value.
    pub headers: HeaderMap,
}

/// A message that is not valid protobuf for its type.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// The input ended inside a field.
    #[error("truncated protobuf message")]
    Truncated,
    /// A varint longer than 10 bytes.
    #[error("malformed varint")]
    Varint,
    /// A wire type this message cannot contain (groups, or 6/7).
    #[error("unsupported wire type {0}")]
    WireType(u8),
    /// A known field with the wrong wire type.
    #[error("field {field} has wire type {wire}, expected {expected}")]
    FieldType {
        /// The field number.
        field: u64,
        /// The wire type found.
        wire: u8,
        /// The wire type expected.
        expected: u8,
    },
    /// A string field that is not UTF-8.
    #[error("field {0} is not valid UTF-8")]
    Utf8(u64),
}

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const FIXED32: u8 = 5;

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn put_key(out: &mut Vec<u8>, field: u32, wire: u8) {
    put_varint(out, (u64::from(field) << 3) | u64::from(wire));
}

fn put_bytes(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    put_key(out, field, LEN);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// proto3 leaves default (empty) scalars out.
fn put_string(out: &mut Vec<u8>, field: u32, value: &str) {
    if !value.is_empty() {
        put_bytes(out, field, value.as_bytes());
    }
}

fn put_map(out: &mut Vec<u8>, field: u32, map: &HeaderMap) {
    let mut entry = Vec::new();
    let mut value = Vec::new();
    for (name, values) in map {
        value.clear();
        for v in values {
            put_bytes(&mut value, 1, v);
        }
        entry.clear();
        put_bytes(&mut entry, 1, name.as_bytes());
        put_bytes(&mut entry, 2, &value);
        put_bytes(out, field, &entry);
    }
}

impl Request {
    /// The wire bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        put_string(&mut out, 1, &self.remote_addr);
        put_string(&mut out, 2, &self.protocol);
        put_string(&mut out, 3, &self.method);
        put_string(&mut out, 4, &self.uri);
        put_map(&mut out, 5, &self.header);
        put_map(&mut out, 6, &self.cookies);
        put_string(&mut out, 7, &self.raw_query);
        if self.parsed {
            put_key(&mut out, 8, VARINT);
            put_varint(&mut out, 1);
        }
        if !self.uploads.is_empty() {
            put_bytes(&mut out, 9, &self.uploads);
        }
        put_map(&mut out, 10, &self.attributes);
        out
    }

    /// Parses wire bytes (used by tests and tools; the server only encodes).
    pub fn decode(mut input: &[u8]) -> Result<Request, DecodeError> {
        let mut request = Request::default();
        while !input.is_empty() {
            let (field, value) = next_field(&mut input)?;
            match (field, value) {
                (1, Field::Len(b)) => request.remote_addr = utf8(1, b)?,
                (2, Field::Len(b)) => request.protocol = utf8(2, b)?,
                (3, Field::Len(b)) => request.method = utf8(3, b)?,
                (4, Field::Len(b)) => request.uri = utf8(4, b)?,
                (5, Field::Len(b)) => map_entry(&mut request.header, b)?,
                (6, Field::Len(b)) => map_entry(&mut request.cookies, b)?,
                (7, Field::Len(b)) => request.raw_query = utf8(7, b)?,
                (8, Field::Varint(v)) => request.parsed = v != 0,
                (9, Field::Len(b)) => request.uploads = b.to_vec(),
                (10, Field::Len(b)) => map_entry(&mut request.attributes, b)?,
                (1..=7 | 9 | 10, other) => return Err(wrong_type(field, &other, LEN)),
                (8, other) => return Err(wrong_type(field, &other, VARINT)),
                _ => {}
            }
        }
        Ok(request)
    }
}

impl Response {
    /// The wire bytes (for tests and tools; the server only decodes).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if self.status != 0 {
            put_key(&mut out, 1, VARINT);
            put_varint(&mut out, self.status as u64);
        }
        put_map(&mut out, 2, &self.headers);
        out
    }

    /// Parses a worker's reply context.
    pub fn decode(mut input: &[u8]) -> Result<Response, DecodeError> {
        let mut response = Response::default();
        while !input.is_empty() {
            let (field, value) = next_field(&mut input)?;
            match (field, value) {
                // int64 is two's complement in a varint.
                (1, Field::Varint(v)) => response.status = v as i64,
                (2, Field::Len(b)) => map_entry(&mut response.headers, b)?,
                (1, other) => return Err(wrong_type(1, &other, VARINT)),
                (2, other) => return Err(wrong_type(2, &other, LEN)),
                _ => {}
            }
        }
        Ok(response)
    }
}

enum Field<'a> {
    Varint(u64),
    Len(&'a [u8]),
    Fixed,
}

fn wrong_type(field: u64, found: &Field<'_>, expected: u8) -> DecodeError {
    let wire = match found {
        Field::Varint(_) => VARINT,
        Field::Len(_) => LEN,
        Field::Fixed => FIXED64,
    };
    DecodeError::FieldType {
        field,
        wire,
        expected,
    }
}

fn utf8(field: u64, bytes: &[u8]) -> Result<String, DecodeError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| DecodeError::Utf8(field))
}

fn varint(input: &mut &[u8]) -> Result<u64, DecodeError> {
    let mut value = 0u64;
    for i in 0..10 {
        let (&byte, rest) = input.split_first().ok_or(DecodeError::Truncated)?;
        *input = rest;
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(DecodeError::Varint)
}

fn take<'a>(input: &mut &'a [u8], n: usize) -> Result<&'a [u8], DecodeError> {
    if input.len() < n {
        return Err(DecodeError::Truncated);
    }
    let (head, rest) = input.split_at(n);
    *input = rest;
    Ok(head)
}

fn next_field<'a>(input: &mut &'a [u8]) -> Result<(u64, Field<'a>), DecodeError> {
    let key = varint(input)?;
    let wire = (key & 7) as u8;
    let field = key >> 3;
    let value = match wire {
        VARINT => Field::Varint(varint(input)?),
        LEN => {
            let len = usize::try_from(varint(input)?).map_err(|_| DecodeError::Truncated)?;
            Field::Len(take(input, len)?)
        }
        FIXED64 => {
            take(input, 8)?;
            Field::Fixed
        }
        FIXED32 => {
            take(input, 4)?;
            Field::Fixed
        }
        other => return Err(DecodeError::WireType(other)),
    };
    Ok((field, value))
}

/// Adds one map entry; a repeated key replaces the earlier one (protobuf
/// map semantics).
fn map_entry(map: &mut HeaderMap, mut entry: &[u8]) -> Result<(), DecodeError> {
    let mut name = String::new();
    let mut values = Vec::new();
    while !entry.is_empty() {
        match next_field(&mut entry)? {
            (1, Field::Len(b)) => name = utf8(1, b)?,
            (2, Field::Len(mut value)) => {
                while !value.is_empty() {
                    if let (1, Field::Len(v)) = next_field(&mut value)? {
                        values.push(v.to_vec());
                    }
                }
            }
            _ => {}
        }
    }
    match map.iter_mut().find(|(n, _)| *n == name) {
        Some(slot) => slot.1 = values,
        None => map.push((name, values)),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_round_trips() {
        let request = Request {
            remote_addr: "127.0.0.1".into(),
            protocol: "HTTP/1.1".into(),
            method: "POST".into(),
            uri: "http://localhost:8080/a?b=1".into(),
            header: vec![
                ("Content-Type".into(), vec![b"text/plain".to_vec()]),
                ("X-Multi".into(), vec![b"1".to_vec(), b"2".to_vec()]),
            ],
            cookies: vec![("sid".into(), vec![b"abc def".to_vec()])],
            raw_query: "b=1".into(),
            parsed: true,
            uploads: br#"{"f":{}}"#.to_vec(),
            attributes: vec![],
        };
        assert_eq!(Request::decode(&request.encode()), Ok(request));
        assert_eq!(
            Request::decode(&Request::default().encode()),
            Ok(Request::default())
        );
    }

    /// Bytes protoc produces for `Response{status: 201, headers: {"X": ["a", "b"]}}`.
    #[test]
    fn response_decodes_protoc_bytes() {
        let wire = [
            0x08, 0xc9, 0x01, // status = 201
            0x12, 0x0b, // headers entry, 11 bytes
            0x0a, 0x01, b'X', // key "X"
            0x12, 0x06, 0x0a, 0x01, b'a', 0x0a, 0x01, b'b', // HeaderValue ["a", "b"]
        ];
        let response = Response::decode(&wire).expect("valid");
        assert_eq!(response.status, 201);
        assert_eq!(
            response.headers,
            vec![("X".to_owned(), vec![b"a".to_vec(), b"b".to_vec()])]
        );
        assert_eq!(response.encode(), wire);
    }

    #[test]
    fn negative_status_and_unknown_fields() {
        let mut wire = Response {
            status: -1,
            headers: vec![],
        }
        .encode();
        // unknown field 7 (fixed32) is skipped
        wire.extend_from_slice(&[0x3d, 1, 2, 3, 4]);
        assert_eq!(Response::decode(&wire).expect("valid").status, -1);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert_eq!(Response::decode(&[0x08]), Err(DecodeError::Truncated));
        assert_eq!(
            Response::decode(&[0x12, 0x05, 1]),
            Err(DecodeError::Truncated)
        );
        assert_eq!(Response::decode(&[0x0b]), Err(DecodeError::WireType(3)));
        assert!(matches!(
            Response::decode(&[0x0a, 0x00]),
            Err(DecodeError::FieldType { field: 1, .. })
        ));
        assert_eq!(Response::decode(&[0xff; 11]), Err(DecodeError::Varint));
    }

    proptest::proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            let _ = Response::decode(&bytes);
            let _ = Request::decode(&bytes);
        }
    }
}
