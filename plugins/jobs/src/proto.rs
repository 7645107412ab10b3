//! RoadRunner's `jobs.v1` protobuf messages (`roadrunner-server/api`,
//! `jobs/v1/jobs.proto`), encoded and decoded by hand: no build-time protoc.
//!
//! Decoding skips unknown fields, accepts fields in any order and lets the
//! last occurrence of a scalar win, as protobuf requires.

use std::collections::BTreeMap;

use thiserror::Error;

/// Why a message could not be decoded.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ProtoError {
    /// The buffer ended inside a field.
    #[error("protobuf: unexpected end of message")]
    Truncated,
    /// A varint longer than 10 bytes.
    #[error("protobuf: varint overflow")]
    VarintOverflow,
    /// A wire type this decoder does not know (groups, or garbage).
    #[error("protobuf: unsupported wire type {0}")]
    WireType(u8),
    /// A string field that is not UTF-8.
    #[error("protobuf: field {0} is not valid UTF-8")]
    Utf8(u32),
    /// A field with the wrong wire type for its declared type.
    #[error("protobuf: field {field} has wire type {wire}, expected {expected}")]
    WrongType {
        /// The field number.
        field: u32,
        /// The wire type found.
        wire: u8,
        /// The wire type expected.
        expected: u8,
    },
}

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const FIXED32: u8 = 5;

/// Appends protobuf fields to a buffer.
#[derive(Debug, Default)]
struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
    }

    fn key(&mut self, field: u32, wire: u8) {
        self.varint(u64::from(field) << 3 | u64::from(wire));
    }

    /// An int64/uint64/bool/int32 field (int32 negatives sign-extend to 10 bytes); zero is omitted.
    fn uint(&mut self, field: u32, v: u64) {
        if v != 0 {
            self.key(field, VARINT);
            self.varint(v);
        }
    }

    fn bytes(&mut self, field: u32, v: &[u8]) {
        if !v.is_empty() {
            self.bytes_always(field, v);
        }
    }

    fn bytes_always(&mut self, field: u32, v: &[u8]) {
        self.key(field, LEN);
        self.varint(v.len() as u64);
        self.buf.extend_from_slice(v);
    }
}

/// One decoded field.
enum Value<'a> {
    Varint(u64),
    Len(&'a [u8]),
    Other,
}

/// Iterates over the fields of a message.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, ProtoError> {
        let mut value = 0u64;
        for i in 0..10 {
            let (&byte, rest) = self.buf.split_first().ok_or(ProtoError::Truncated)?;
            self.buf = rest;
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(ProtoError::VarintOverflow)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ProtoError> {
        if self.buf.len() < n {
            return Err(ProtoError::Truncated);
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn next(&mut self) -> Result<Option<(u32, u8, Value<'a>)>, ProtoError> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let field = (key >> 3) as u32;
        let wire = (key & 7) as u8;
        let value = match wire {
            VARINT => Value::Varint(self.varint()?),
            FIXED64 => {
                self.take(8)?;
                Value::Other
            }
            LEN => {
                let len = usize::try_from(self.varint()?).map_err(|_| ProtoError::Truncated)?;
                Value::Len(self.take(len)?)
            }
            FIXED32 => {
                self.take(4)?;
                Value::Other
            }
            other => return Err(ProtoError::WireType(other)),
        };
        Ok(Some((field, wire, value)))
    }
}

fn fields(
    buf: &[u8],
    mut each: impl FnMut(u32, u8, Value<'_>) -> Result<(), ProtoError>,
) -> Result<(), ProtoError> {
    let mut reader = Reader { buf };
    while let Some((field, wire, value)) = reader.next()? {
        each(field, wire, value)?;
    }
    Ok(())
}

fn want_len(field: u32, wire: u8, value: Value<'_>) -> Result<&[u8], ProtoError> {
    match value {
        Value::Len(bytes) => Ok(bytes),
        _ => Err(ProtoError::WrongType {
            field,
            wire,
            expected: LEN,
        }),
    }
}

fn want_varint(field: u32, wire: u8, value: Value<'_>) -> Result<u64, ProtoError> {
    match value {
        Value::Varint(v) => Ok(v),
        _ => Err(ProtoError::WrongType {
            field,
            wire,
            expected: VARINT,
        }),
    }
}

fn want_str(field: u32, wire: u8, value: Value<'_>) -> Result<String, ProtoError> {
    let bytes = want_len(field, wire, value)?;
    String::from_utf8(bytes.to_vec()).map_err(|_| ProtoError::Utf8(field))
}

/// `jobs.v1.Options`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// 1: priority; 0 means the pipeline's.
    pub priority: i64,
    /// 2: the pipeline to push to.
    pub pipeline: String,
    /// 3: delay in seconds.
    pub delay: i64,
    /// 6: ack on receipt, before the worker runs.
    pub auto_ack: bool,
    /// 7: kafka topic.
    pub topic: String,
    /// 8: kafka metadata.
    pub metadata: String,
    /// 9: kafka offset.
    pub offset: i64,
    /// 10: kafka partition.
    pub partition: i32,
}

impl Options {
    fn write(&self, w: &mut Writer) {
        w.uint(1, self.priority as u64);
        w.bytes(2, self.pipeline.as_bytes());
        w.uint(3, self.delay as u64);
        w.uint(6, u64::from(self.auto_ack));
        w.bytes(7, self.topic.as_bytes());
        w.bytes(8, self.metadata.as_bytes());
        w.uint(9, self.offset as u64);
        w.uint(10, i64::from(self.partition) as u64);
    }

    fn decode(buf: &[u8]) -> Result<Options, ProtoError> {
        let mut o = Options::default();
        fields(buf, |field, wire, value| {
            match field {
                1 => o.priority = want_varint(field, wire, value)? as i64,
                2 => o.pipeline = want_str(field, wire, value)?,
                3 => o.delay = want_varint(field, wire, value)? as i64,
                6 => o.auto_ack = want_varint(field, wire, value)? != 0,
                7 => o.topic = want_str(field, wire, value)?,
                8 => o.metadata = want_str(field, wire, value)?,
                9 => o.offset = want_varint(field, wire, value)? as i64,
                10 => o.partition = want_varint(field, wire, value)? as i32,
                _ => {}
            }
            Ok(())
        })?;
        Ok(o)
    }
}

/// Headers: name → values (`map<string, HeaderValue>`).
pub type Headers = BTreeMap<String, Vec<String>>;

/// `jobs.v1.Job`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Job {
    /// 1: the job name (usually a PHP class).
    pub job: String,
    /// 2: the id (the PHP client makes a UUID v4).
    pub id: String,
    /// 3: the payload.
    pub payload: Vec<u8>,
    /// 4: headers.
    pub headers: Headers,
    /// 5: options; absent is `None`.
    pub options: Option<Options>,
}

impl Job {
    fn write(&self, w: &mut Writer) {
        w.bytes(1, self.job.as_bytes());
        w.bytes(2, self.id.as_bytes());
        w.bytes(3, &self.payload);
        for (name, values) in &self.headers {
            let mut value = Writer::default();
            for v in values {
                value.bytes_always(1, v.as_bytes());
            }
            let mut entry = Writer::default();
            entry.bytes_always(1, name.as_bytes());
            entry.bytes_always(2, &value.buf);
            w.bytes_always(4, &entry.buf);
        }
        if let Some(options) = &self.options {
            let mut o = Writer::default();
            options.write(&mut o);
            w.bytes_always(5, &o.buf);
        }
    }

    fn decode(buf: &[u8]) -> Result<Job, ProtoError> {
        let mut job = Job::default();
        fields(buf, |field, wire, value| {
            match field {
                1 => job.job = want_str(field, wire, value)?,
                2 => job.id = want_str(field, wire, value)?,
                3 => job.payload = want_len(field, wire, value)?.to_vec(),
                4 => {
                    let entry = want_len(field, wire, value)?;
                    let (mut name, mut values) = (String::new(), Vec::new());
                    fields(entry, |field, wire, value| {
                        match field {
                            1 => name = want_str(field, wire, value)?,
                            2 => {
                                values.clear();
                                fields(want_len(field, wire, value)?, |field, wire, value| {
                                    if field == 1 {
                                        values.push(want_str(field, wire, value)?);
                                    }
                                    Ok(())
                                })?;
                            }
                            _ => {}
                        }
                        Ok(())
                    })?;
                    job.headers.insert(name, values);
                }
                5 => job.options = Some(Options::decode(want_len(field, wire, value)?)?),
                _ => {}
            }
            Ok(())
        })?;
        Ok(job)
    }
}

/// `jobs.v1.PushRequest`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PushRequest {
    /// 1: the job; absent is `None` ("job is required").
    pub job: Option<Job>,
}

impl PushRequest {
    /// The wire form.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        if let Some(job) = &self.job {
            let mut j = Writer::default();
            job.write(&mut j);
            w.bytes_always(1, &j.buf);
        }
        w.buf
    }

    /// Reads the wire form.
    pub fn decode(buf: &[u8]) -> Result<PushRequest, ProtoError> {
        let mut request = PushRequest::default();
        fields(buf, |field, wire, value| {
            if field == 1 {
                request.job = Some(Job::decode(want_len(field, wire, value)?)?);
            }
            Ok(())
        })?;
        Ok(request)
    }
}

/// `jobs.v1.PushBatchRequest`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PushBatchRequest {
    /// 1: the jobs.
    pub jobs: Vec<Job>,
}

impl PushBatchRequest {
    /// The wire form.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        for job in &self.jobs {
            let mut j = Writer::default();
            job.write(&mut j);
            w.bytes_always(1, &j.buf);
        }
        w.buf
    }

    /// Reads the wire form.
    pub fn decode(buf: &[u8]) -> Result<PushBatchRequest, ProtoError> {
        let mut request = PushBatchRequest::default();
        fields(buf, |field, wire, value| {
            if field == 1 {
                request
                    .jobs
                    .push(Job::decode(want_len(field, wire, value)?)?);
            }
            Ok(())
        })?;
        Ok(request)
    }
}

/// `jobs.v1.Pipelines`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pipelines {
    /// 1: pipeline names.
    pub pipelines: Vec<String>,
}

impl Pipelines {
    /// The wire form.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        for p in &self.pipelines {
            w.bytes_always(1, p.as_bytes());
        }
        w.buf
    }

    /// Reads the wire form.
    pub fn decode(buf: &[u8]) -> Result<Pipelines, ProtoError> {
        let mut out = Pipelines::default();
        fields(buf, |field, wire, value| {
            if field == 1 {
                out.pipelines.push(want_str(field, wire, value)?);
            }
            Ok(())
        })?;
        Ok(out)
    }
}

/// `jobs.v1.DeclareRequest`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeclareRequest {
    /// 1: the pipeline's options as strings (`driver`, `name`, `priority`, ...).
    pub pipeline: BTreeMap<String, String>,
}

impl DeclareRequest {
    /// The wire form.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        for (k, v) in &self.pipeline {
            let mut entry = Writer::default();
            entry.bytes_always(1, k.as_bytes());
            entry.bytes_always(2, v.as_bytes());
            w.bytes_always(1, &entry.buf);
        }
        w.buf
    }

    /// Reads the wire form.
    pub fn decode(buf: &[u8]) -> Result<DeclareRequest, ProtoError> {
        let mut out = DeclareRequest::default();
        fields(buf, |field, wire, value| {
            if field == 1 {
                let (mut k, mut v) = (String::new(), String::new());
                fields(want_len(field, wire, value)?, |field, wire, value| {
                    match field {
                        1 => k = want_str(field, wire, value)?,
                        2 => v = want_str(field, wire, value)?,
                        _ => {}
                    }
                    Ok(())
                })?;
                out.pipeline.insert(k, v);
            }
            Ok(())
        })?;
        Ok(out)
    }
}

/// `jobs.v1.Stat`: one pipeline's state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stat {
    /// 1: pipeline name.
    pub pipeline: String,
    /// 2: driver name.
    pub driver: String,
    /// 3: queue (broker queue, tube, ...).
    pub queue: String,
    /// 4: jobs waiting or running.
    pub active: i64,
    /// 5: delayed jobs.
    pub delayed: i64,
    /// 6: reserved jobs.
    pub reserved: i64,
    /// 7: whether the pipeline consumes.
    pub ready: bool,
    /// 8: pipeline priority.
    pub priority: u64,
}

impl Stat {
    fn write(&self, w: &mut Writer) {
        w.bytes(1, self.pipeline.as_bytes());
        w.bytes(2, self.driver.as_bytes());
        w.bytes(3, self.queue.as_bytes());
        w.uint(4, self.active as u64);
        w.uint(5, self.delayed as u64);
        w.uint(6, self.reserved as u64);
        w.uint(7, u64::from(self.ready));
        w.uint(8, self.priority);
    }

    fn decode(buf: &[u8]) -> Result<Stat, ProtoError> {
        let mut s = Stat::default();
        fields(buf, |field, wire, value| {
            match field {
                1 => s.pipeline = want_str(field, wire, value)?,
                2 => s.driver = want_str(field, wire, value)?,
                3 => s.queue = want_str(field, wire, value)?,
                4 => s.active = want_varint(field, wire, value)? as i64,
                5 => s.delayed = want_varint(field, wire, value)? as i64,
                6 => s.reserved = want_varint(field, wire, value)? as i64,
                7 => s.ready = want_varint(field, wire, value)? != 0,
                8 => s.priority = want_varint(field, wire, value)?,
                _ => {}
            }
            Ok(())
        })?;
        Ok(s)
    }
}

/// `jobs.v1.Stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// 1: one entry per pipeline.
    pub stats: Vec<Stat>,
}

impl Stats {
    /// The wire form.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        for s in &self.stats {
            let mut one = Writer::default();
            s.write(&mut one);
            w.bytes_always(1, &one.buf);
        }
        w.buf
    }

    /// Reads the wire form.
    pub fn decode(buf: &[u8]) -> Result<Stats, ProtoError> {
        let mut out = Stats::default();
        fields(buf, |field, wire, value| {
            if field == 1 {
                out.stats.push(Stat::decode(want_len(field, wire, value)?)?);
            }
            Ok(())
        })?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn options() -> impl Strategy<Value = Options> {
        (
            any::<i64>(),
            ".{0,8}",
            any::<i64>(),
            any::<bool>(),
            ".{0,4}",
            ".{0,4}",
            any::<i64>(),
            any::<i32>(),
        )
            .prop_map(
                |(priority, pipeline, delay, auto_ack, topic, metadata, offset, partition)| {
                    Options {
                        priority,
                        pipeline,
                        delay,
                        auto_ack,
                        topic,
                        metadata,
                        offset,
                        partition,
                    }
                },
            )
    }

    fn job() -> impl Strategy<Value = Job> {
        (
            ".{0,12}",
            ".{0,12}",
            proptest::collection::vec(any::<u8>(), 0..64),
            proptest::collection::btree_map(
                ".{0,6}",
                proptest::collection::vec(".{0,6}", 0..3),
                0..4,
            ),
            proptest::option::of(options()),
        )
            .prop_map(|(job, id, payload, headers, options)| Job {
                job,
                id,
                payload,
                headers,
                options,
            })
    }

    proptest! {
        #[test]
        fn push_batches_round_trip(jobs in proptest::collection::vec(job(), 0..4)) {
            let batch = PushBatchRequest { jobs };
            prop_assert_eq!(PushBatchRequest::decode(&batch.encode()), Ok(batch.clone()));
            for job in batch.jobs {
                let push = PushRequest { job: Some(job) };
                prop_assert_eq!(PushRequest::decode(&push.encode()), Ok(push));
            }
        }

        #[test]
        fn stats_and_declares_round_trip(
            names in proptest::collection::vec(".{0,8}", 0..4),
            map in proptest::collection::btree_map(".{0,8}", ".{0,8}", 0..5),
            active in any::<i64>(), priority in any::<u64>(), ready in any::<bool>(),
        ) {
            let stats = Stats { stats: names.iter().map(|n| Stat {
                pipeline: n.clone(), driver: "memory".into(), queue: n.clone(),
                active, delayed: -active, reserved: 1, ready, priority,
            }).collect() };
            prop_assert_eq!(Stats::decode(&stats.encode()), Ok(stats));
            let pipelines = Pipelines { pipelines: names };
            prop_assert_eq!(Pipelines::decode(&pipelines.encode()), Ok(pipelines));
            let declare = DeclareRequest { pipeline: map };
            prop_assert_eq!(DeclareRequest::decode(&declare.encode()), Ok(declare));
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = PushBatchRequest::decode(&bytes);
            let _ = Stats::decode(&bytes);
            let _ = DeclareRequest::decode(&bytes);
        }
    }

    #[test]
    fn matches_protoc_bytes() {
        // protoc --encode=jobs.v1.PushRequest: job{job:"a" id:"1" payload:"x"
        // options{priority:-1 pipeline:"p"}}
        let push = PushRequest {
            job: Some(Job {
                job: "a".into(),
                id: "1".into(),
                payload: b"x".to_vec(),
                headers: Headers::new(),
                options: Some(Options {
                    priority: -1,
                    pipeline: "p".into(),
                    ..Options::default()
                }),
            }),
        };
        let mut expected = vec![
            0x0a, 25, 0x0a, 1, b'a', 0x12, 1, b'1', 0x1a, 1, b'x', 0x2a, 14,
        ];
        expected.extend([
            0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
        ]);
        expected.extend([0x12, 1, b'p']);
        assert_eq!(push.encode(), expected);
        assert_eq!(PushRequest::decode(&expected), Ok(push));
        // unknown fields (a fixed32 and a fixed64) are skipped
        let mut with_unknown = vec![0x7d, 1, 2, 3, 4, 0x79, 0, 0, 0, 0, 0, 0, 0, 0];
        with_unknown.extend(&expected);
        assert!(PushRequest::decode(&with_unknown).is_ok());
        assert_eq!(
            PushRequest::decode(&[0x0a, 5, 0]),
            Err(ProtoError::Truncated)
        );
    }
}
