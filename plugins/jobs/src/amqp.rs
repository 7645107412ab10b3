//! The `amqp` driver: jobs live in a RabbitMQ (AMQP 0.9.1) queue.
//!
//! ```yaml
//! amqp:                          # global section
//!   addr: amqp://guest:guest@127.0.0.1:5672/
//! jobs:
//!   pipelines:
//!     mail:
//!       driver: amqp
//!       config:
//!         priority: 10           # the job's priority in rr's queue
//!         prefetch: 10           # basic.qos: unacked deliveries at once
//!         queue: mail
//!         exchange: amqp.default
//!         exchange_type: direct  # direct | fanout | topic | headers
//!         routing_key: mail      # required unless fanout
//!         exclusive: false
//!         durable: false         # the queue
//!         exchange_durable: false
//!         exchange_auto_delete: false
//!         queue_auto_delete: false
//!         delete_queue_on_stop: false
//!         multiple_ack: false
//!         requeue_on_fail: false # a failed job goes back to the queue
//!         queue_headers: {}      # queue arguments: x-max-priority, x-dead-letter-exchange, ...
//!         consumer_id: roadrunner-<uuid>
//!         redial_timeout: 60     # seconds without a broker before rr logs it as down
//! ```
//!
//! A job is published with its body as the payload and its metadata in
//! AMQP headers (`rr_id`, `rr_job`, `rr_pipeline`, `rr_headers` as JSON
//! bytes, `rr_delay`, `rr_priority`, `rr_auto_ack`), as RoadRunner does, so
//! both can share a queue. A message without them (another producer's)
//! gets a generated id and the job name `deduced_by_rr`; its AMQP headers
//! become the job's headers. A delayed job waits in a queue
//! `delayed-<ms>.<exchange>.<queue>` whose messages expire after the delay
//! and are dead-lettered to the pipeline's exchange and routing key.
//!
//! rr extension: when `queue_headers` sets `x-max-priority`, a job is
//! published with the AMQP priority `x-max-priority - priority` (clamped),
//! so the broker hands out lower rr priorities first, as rr's own queue does.
//!
//! A lost connection is re-dialled with exponential backoff ([`Backoff`]: 100 ms up to
//! 5 s), forever; the exchange and queue are declared again and consuming
//! resumes if the pipeline was running. Deliveries of the lost connection
//! cannot be settled any more: the broker hands them out again.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions,
    BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions, ExchangeDeclareOptions,
    QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, ByteArray, FieldTable, LongString, ShortString};
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, Consumer,
    ExchangeKind,
};
use rr_plugin::async_trait;
use serde_json::{Map, Value};
use tokio::sync::watch;

use crate::backoff::Backoff;
use crate::driver::{Background, Driver, DriverError, PipelineSpec, Switch};
use crate::job::{Acknowledger, Delivery, Job};
use crate::proto::{Headers, Stat};
use crate::queue::JobQueue;

/// The driver's name.
pub const NAME: &str = "amqp";
/// Default global `addr`.
pub const DEFAULT_ADDR: &str = "amqp://guest:guest@127.0.0.1:5672/";
/// Job name of messages rr did not publish.
pub const DEDUCED: &str = "deduced_by_rr";

/// Header: the job id.
pub const RR_ID: &str = "rr_id";
/// Header: the job name.
pub const RR_JOB: &str = "rr_job";
/// Header: the pipeline.
pub const RR_PIPELINE: &str = "rr_pipeline";
/// Header: the job's own headers as JSON bytes.
pub const RR_HEADERS: &str = "rr_headers";
/// Header: the delay in seconds.
pub const RR_DELAY: &str = "rr_delay";
/// Header: the job priority.
pub const RR_PRIORITY: &str = "rr_priority";
/// Header: ack on receipt.
pub const RR_AUTO_ACK: &str = "rr_auto_ack";

/// How long a push waits for a connection while the broker is away.
const PUSH_WAIT: Duration = Duration::from_secs(30);
/// A bound on connecting and declaring.
const DIAL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a pause waits for the broker to confirm the consumer's cancel.
const PAUSE_WAIT: Duration = Duration::from_secs(5);

fn broker(message: impl Into<String>) -> DriverError {
    DriverError::Broker(message.into())
}

fn amqp_error(what: &str, err: &lapin::Error) -> DriverError {
    broker(format!("amqp: {what}: {err}"))
}

/// What a pipeline's options say.
#[derive(Debug, Clone)]
struct Settings {
    addr: lapin::uri::AMQPUri,
    prefetch: u16,
    queue: String,
    exchange: String,
    exchange_type: ExchangeKind,
    routing_key: String,
    exclusive: bool,
    durable: bool,
    exchange_durable: bool,
    exchange_auto_delete: bool,
    /// Declare the exchange (v2 `exchange.declare`; v1 always does).
    exchange_declare: bool,
    queue_auto_delete: bool,
    /// Declare and bind the queue (v2 `queue.declare`; v1 always does).
    queue_declare: bool,
    delete_queue_on_stop: bool,
    multiple_ack: bool,
    requeue_on_fail: bool,
    queue_headers: FieldTable,
    /// `x-max-priority` of `queue_headers`, if set.
    max_priority: Option<u8>,
    consumer_id: String,
    redial_timeout: Duration,
}

fn option_error(spec: &PipelineSpec, key: &str, message: impl Into<String>) -> DriverError {
    DriverError::Option {
        pipeline: spec.name.clone(),
        key: key.to_owned(),
        message: message.into(),
    }
}

/// A random UUID v4 in its text form (for consumer tags and foreign
/// messages' ids).
fn uuid() -> String {
    let a = fastrand::u64(..);
    let b = fastrand::u64(..);
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0x0fff,
        0x8000 | (b >> 48) & 0x3fff,
        b & 0xffff_ffff_ffff
    )
}

/// A JSON value as an AMQP table value (for `queue_headers`); integers stay
/// integers because RabbitMQ rejects `x-max-priority` and friends otherwise.
fn to_amqp(value: &Value) -> AMQPValue {
    match value {
        Value::Null => AMQPValue::Void,
        Value::Bool(b) => AMQPValue::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => AMQPValue::LongLongInt(i),
            None => AMQPValue::Double(n.as_f64().unwrap_or_default()),
        },
        Value::String(s) => AMQPValue::LongString(LongString::from(s.as_str())),
        Value::Array(items) => {
            AMQPValue::FieldArray(items.iter().map(to_amqp).collect::<Vec<_>>().into())
        }
        Value::Object(map) => AMQPValue::FieldTable(to_table(map)),
    }
}

fn to_table(map: &Map<String, Value>) -> FieldTable {
    let mut table = FieldTable::default();
    for (k, v) in map {
        table.insert(ShortString::from(k.as_str()), to_amqp(v));
    }
    table
}

/// An AMQP integer of any width.
fn as_int(value: &AMQPValue) -> Option<i64> {
    match value {
        AMQPValue::ShortShortInt(v) => Some(i64::from(*v)),
        AMQPValue::ShortShortUInt(v) => Some(i64::from(*v)),
        AMQPValue::ShortInt(v) => Some(i64::from(*v)),
        AMQPValue::ShortUInt(v) => Some(i64::from(*v)),
        AMQPValue::LongInt(v) => Some(i64::from(*v)),
        AMQPValue::LongUInt(v) => Some(i64::from(*v)),
        AMQPValue::LongLongInt(v) => Some(*v),
        _ => None,
    }
}

fn as_text(value: &AMQPValue) -> Option<String> {
    match value {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        AMQPValue::ByteArray(b) => Some(String::from_utf8_lossy(b.as_slice()).into_owned()),
        _ => None,
    }
}

/// A foreign header's values as text: numbers, booleans, decimals and
/// timestamps stringified, arrays flattened, nested tables merged in.
fn stringify(headers: &mut Headers, key: &str, value: &AMQPValue) {
    let text = match value {
        AMQPValue::Boolean(b) => {
            // One value, like RoadRunner: a bool replaces what was there.
            headers.insert(key.to_owned(), vec![b.to_string()]);
            return;
        }
        AMQPValue::Float(f) => format!("{f:.5}"),
        AMQPValue::Double(f) => format!("{f:.5}"),
        AMQPValue::DecimalValue(d) => {
            let scale = i32::from(d.scale);
            format!(
                "{:.*}",
                usize::from(d.scale),
                f64::from(d.value) / 10f64.powi(scale)
            )
        }
        AMQPValue::Timestamp(t) => t.to_string(),
        AMQPValue::FieldArray(items) => {
            for item in items.as_slice() {
                stringify(headers, key, item);
            }
            return;
        }
        AMQPValue::FieldTable(table) => {
            for (k, v) in table.inner() {
                stringify(headers, k.as_str(), v);
            }
            return;
        }
        AMQPValue::Void => return,
        other => match as_int(other)
            .map(|i| i.to_string())
            .or_else(|| as_text(other))
        {
            Some(text) => text,
            None => return,
        },
    };
    headers.entry(key.to_owned()).or_default().push(text);
}

/// RoadRunner v6's `version: 2` pipeline config (nested `exchange` and
/// `queue` maps) as the flat v1 keys the rest of the driver reads.
fn flatten_v2(options: &Map<String, Value>) -> Map<String, Value> {
    const EXCHANGE: &[(&str, &str)] = &[
        ("name", "exchange"),
        ("type", "exchange_type"),
        ("durable", "exchange_durable"),
        ("auto_delete", "exchange_auto_delete"),
        ("declare", "exchange_declare"),
    ];
    const QUEUE: &[(&str, &str)] = &[
        ("name", "queue"),
        ("routing_key", "routing_key"),
        ("durable", "durable"),
        ("auto_delete", "queue_auto_delete"),
        ("exclusive", "exclusive"),
        ("delete_on_stop", "delete_queue_on_stop"),
        ("multiple_ack", "multiple_ack"),
        ("requeue_on_fail", "requeue_on_fail"),
        ("consumer_id", "consumer_id"),
        ("headers", "queue_headers"),
        ("declare", "queue_declare"),
    ];
    let mut flat: Map<String, Value> = options
        .iter()
        .filter(|(k, _)| *k != "exchange" && *k != "queue")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (section, keys) in [("exchange", EXCHANGE), ("queue", QUEUE)] {
        if let Some(Value::Object(nested)) = options.get(section) {
            for (from, to) in keys {
                if let Some(v) = nested.get(*from) {
                    flat.insert((*to).to_owned(), v.clone());
                }
            }
        }
    }
    flat
}

impl Settings {
    fn from_spec(spec: &PipelineSpec) -> Result<Settings, DriverError> {
        if spec.int("version", 1)? == 2 {
            let flat = PipelineSpec {
                name: spec.name.clone(),
                options: flatten_v2(&spec.options),
                global: spec.global.clone(),
                queue: Arc::clone(&spec.queue),
            };
            return Settings::parse(&flat);
        }
        Settings::parse(spec)
    }

    fn parse(spec: &PipelineSpec) -> Result<Settings, DriverError> {
        let global = PipelineSpec {
            name: "amqp (global section)".to_owned(),
            options: spec.global.clone(),
            global: Map::new(),
            queue: Arc::clone(&spec.queue),
        };
        let addr = global.string("addr", DEFAULT_ADDR)?;
        if !addr.starts_with("amqp://") {
            return Err(broker(format!(
                "amqp: addr must be amqp://user:password@host:port/vhost (TLS is not in this build), got {addr}"
            )));
        }
        if global.options.get("tls").is_some_and(|t| !t.is_null()) {
            // Better refused than a silently plain-text connection.
            return Err(broker(
                "amqp: amqp.tls is set, but this build has no TLS for AMQP",
            ));
        }
        let mut addr: lapin::uri::AMQPUri = addr
            .parse()
            .map_err(|e| broker(format!("amqp: addr: {e}")))?;
        if addr.vhost.is_empty() {
            // `amqp://host/` means the default vhost, as in RoadRunner's
            // client; lapin would ask for a vhost named "".
            addr.vhost = "/".to_owned();
        }
        let exchange_type = match spec.string("exchange_type", "direct")?.as_str() {
            "direct" => ExchangeKind::Direct,
            "fanout" => ExchangeKind::Fanout,
            "topic" => ExchangeKind::Topic,
            "headers" => ExchangeKind::Headers,
            other => {
                return Err(option_error(
                    spec,
                    "exchange_type",
                    format!("unknown exchange type {other:?} (direct, fanout, topic, headers)"),
                ))
            }
        };
        let routing_key = spec.string("routing_key", "")?;
        if routing_key.is_empty() && exchange_type != ExchangeKind::Fanout {
            return Err(option_error(
                spec,
                "routing_key",
                "empty routing key, consider adding the routing key name to the AMQP configuration",
            ));
        }
        let prefetch = spec.int("prefetch", 10)?;
        let prefetch = u16::try_from(prefetch).map_err(|_| {
            option_error(
                spec,
                "prefetch",
                format!("must be between 0 and 65535, got {prefetch}"),
            )
        })?;
        // From YAML a map; from jobs.Declare a JSON text.
        let queue_headers = match spec.options.get("queue_headers") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(map)) => map.clone(),
            Some(Value::String(s)) if s.trim().is_empty() => Map::new(),
            Some(Value::String(s)) => serde_json::from_str(s).map_err(|e| {
                option_error(spec, "queue_headers", format!("not a JSON object: {e}"))
            })?,
            Some(other) => {
                return Err(option_error(
                    spec,
                    "queue_headers",
                    format!("{other} is not a map"),
                ))
            }
        };
        let max_priority = match queue_headers.get("x-max-priority") {
            None => None,
            Some(v) => {
                let n = v
                    .as_i64()
                    .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()));
                match n.and_then(|n| u8::try_from(n).ok()) {
                    Some(n) => Some(n),
                    None => {
                        return Err(option_error(
                            spec,
                            "queue_headers",
                            format!("x-max-priority must be between 0 and 255, got {v}"),
                        ))
                    }
                }
            }
        };
        let mut table_source = queue_headers;
        if let Some(n) = max_priority {
            // Declare's strings must reach RabbitMQ as an integer.
            table_source.insert("x-max-priority".into(), Value::from(n));
        }
        Ok(Settings {
            addr,
            prefetch,
            queue: spec.string("queue", "")?,
            exchange: spec.string("exchange", "amqp.default")?,
            exchange_type,
            routing_key,
            exclusive: spec.bool("exclusive", false)?,
            durable: spec.bool("durable", false)?,
            exchange_durable: spec.bool("exchange_durable", false)?,
            exchange_auto_delete: spec.bool("exchange_auto_delete", false)?,
            exchange_declare: spec.bool("exchange_declare", true)?,
            queue_auto_delete: spec.bool("queue_auto_delete", false)?,
            queue_declare: spec.bool("queue_declare", true)?,
            delete_queue_on_stop: spec.bool("delete_queue_on_stop", false)?,
            multiple_ack: spec.bool("multiple_ack", false)?,
            requeue_on_fail: spec.bool("requeue_on_fail", false)?,
            queue_headers: to_table(&table_source),
            max_priority,
            consumer_id: spec.string("consumer_id", &format!("roadrunner-{}", uuid()))?,
            redial_timeout: Duration::from_secs(spec.seconds("redial_timeout", 60)?),
        })
    }

    /// The AMQP message priority for rr priority `priority`.
    fn amqp_priority(&self, priority: i64) -> Option<u8> {
        let max = self.max_priority?;
        let inverted = i64::from(max)
            .saturating_sub(priority)
            .clamp(0, i64::from(max));
        u8::try_from(inverted).ok()
    }
}

/// One live connection with its channels.
struct Session {
    connection: Connection,
    /// Publishes in confirm mode.
    publisher: Channel,
    /// Consumes and settles deliveries.
    consumer: Channel,
    generation: u64,
}

struct Inner {
    name: String,
    priority: i64,
    settings: Settings,
    queue: Arc<JobQueue>,
    /// The current session; `None` while (re)connecting.
    session: watch::Sender<Option<Arc<Session>>>,
    /// Run, pause and stop, as the listener sees them.
    switch: Switch,
    /// Whether the broker is sending to our consumer (pause waits for
    /// `false`, so nothing pushed after a pause is consumed).
    active: watch::Sender<bool>,
    /// A publish failed on this generation: the supervisor re-dials.
    broken: AtomicU64,
    delayed: AtomicI64,
}

impl Inner {
    /// The current session, waiting (bounded) while the broker is away.
    async fn session(&self) -> Result<Arc<Session>, DriverError> {
        let mut rx = self.session.subscribe();
        let wait = rx.wait_for(|s| s.is_some() || self.switch.is_stopped());
        let session = tokio::time::timeout(PUSH_WAIT, wait)
            .await
            .map_err(|_| broker("amqp: no connection to the broker"))?
            .map_err(|_| broker("amqp: the pipeline is gone"))?
            .clone();
        session.ok_or(DriverError::Stopped)
    }

    fn headers(&self, job: &Job) -> Result<FieldTable, DriverError> {
        let json = serde_json::to_vec(&job.headers).map_err(|e| broker(e.to_string()))?;
        let mut table = FieldTable::default();
        table.insert(RR_ID.into(), AMQPValue::LongString(job.id.as_str().into()));
        table.insert(
            RR_JOB.into(),
            AMQPValue::LongString(job.name.as_str().into()),
        );
        table.insert(
            RR_PIPELINE.into(),
            AMQPValue::LongString(job.pipeline.as_str().into()),
        );
        table.insert(
            RR_HEADERS.into(),
            AMQPValue::ByteArray(ByteArray::from(json)),
        );
        table.insert(RR_DELAY.into(), AMQPValue::LongLongInt(job.delay.max(0)));
        table.insert(RR_PRIORITY.into(), AMQPValue::LongLongInt(job.priority));
        table.insert(RR_AUTO_ACK.into(), AMQPValue::Boolean(job.auto_ack));
        Ok(table)
    }

    /// Publishes `job` (to the delay queue when it has a delay) and waits
    /// for the broker's confirm.
    async fn publish(&self, job: &Job) -> Result<(), DriverError> {
        let session = self.session().await?;
        let result = self.publish_on(&session, job).await;
        if result.is_err() && !session.publisher.status().connected() {
            // The channel (or the connection) is gone: have it re-made.
            self.broken.store(session.generation, Ordering::Release);
            self.switch.poke();
        }
        result
    }

    async fn publish_on(&self, session: &Session, job: &Job) -> Result<(), DriverError> {
        let s = &self.settings;
        let mut properties = BasicProperties::default()
            .with_headers(self.headers(job)?)
            .with_content_type("application/octet-stream".into())
            .with_delivery_mode(2)
            .with_timestamp(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or_default(),
            );
        if let Some(p) = s.amqp_priority(job.priority) {
            properties = properties.with_priority(p);
        }
        let (exchange, routing_key) = if job.delay > 0 {
            let ms = job.delay.saturating_mul(1000);
            let name = format!("delayed-{ms}.{}.{}", s.exchange, s.queue);
            let mut args = FieldTable::default();
            args.insert(
                "x-dead-letter-exchange".into(),
                AMQPValue::LongString(s.exchange.as_str().into()),
            );
            args.insert(
                "x-dead-letter-routing-key".into(),
                AMQPValue::LongString(s.routing_key.as_str().into()),
            );
            args.insert("x-message-ttl".into(), AMQPValue::LongLongInt(ms));
            // Gone when unused for twice the delay.
            args.insert("x-expires".into(), AMQPValue::LongLongInt(ms * 2));
            session
                .publisher
                .queue_declare(
                    name.as_str().into(),
                    QueueDeclareOptions {
                        durable: true,
                        ..QueueDeclareOptions::default()
                    },
                    args,
                )
                .await
                .map_err(|e| amqp_error("declare the delay queue", &e))?;
            // The default exchange reaches every queue by its name.
            (String::new(), name)
        } else {
            (s.exchange.clone(), s.routing_key.clone())
        };
        let confirm = session
            .publisher
            .basic_publish(
                exchange.as_str().into(),
                routing_key.as_str().into(),
                BasicPublishOptions::default(),
                &job.payload,
                properties,
            )
            .await
            .map_err(|e| amqp_error("publish", &e))?
            .await
            .map_err(|e| amqp_error("publisher confirm", &e))?;
        match confirm {
            Confirmation::Nack(_) => Err(broker("amqp: the broker refused the message (nack)")),
            Confirmation::Ack(_) | Confirmation::NotRequested => {
                if job.delay > 0 {
                    self.delayed.fetch_add(1, Ordering::Relaxed);
                }
                Ok(())
            }
        }
    }

    /// A delivery as a job (RoadRunner's headers, or a foreign message).
    fn decode(&self, properties: &BasicProperties, body: Vec<u8>, redelivered: bool) -> Job {
        let empty = FieldTable::default();
        let table = properties.headers().as_ref().unwrap_or(&empty);
        let get = |key: &str| table.inner().get(key);
        let mut headers = Headers::new();
        for (k, v) in table.inner() {
            if !k.as_str().starts_with("rr_") {
                stringify(&mut headers, k.as_str(), v);
            }
        }
        if let Some(json) = get(RR_HEADERS).and_then(as_text) {
            match serde_json::from_str::<Option<Headers>>(&json) {
                Ok(own) => headers.extend(own.unwrap_or_default()),
                Err(err) => {
                    tracing::warn!(target: "jobs", pipeline = %self.name, error = %err, "amqp: rr_headers is not JSON; ignored");
                }
            }
        }
        let id = get(RR_ID).and_then(as_text).unwrap_or_else(uuid);
        let name = get(RR_JOB)
            .and_then(as_text)
            .unwrap_or_else(|| DEDUCED.to_owned());
        let delay = get(RR_DELAY).and_then(as_int).unwrap_or(0);
        if delay > 0 && !redelivered {
            // It came out of the delay queue (once).
            self.delayed.fetch_sub(1, Ordering::Relaxed);
        }
        let priority = get(RR_PRIORITY)
            .and_then(as_int)
            .filter(|p| *p != 0)
            .unwrap_or(self.priority);
        let auto_ack = matches!(get(RR_AUTO_ACK), Some(AMQPValue::Boolean(true)));
        Job {
            id,
            name,
            payload: Bytes::from(body),
            headers,
            pipeline: self.name.clone(),
            priority,
            delay: 0,
            auto_ack,
        }
    }

    /// Dials and declares the exchange, the queue and its binding.
    async fn dial(&self, generation: u64) -> Result<Session, DriverError> {
        let s = &self.settings;
        let connection = Connection::connect_uri(
            s.addr.clone(),
            ConnectionProperties::default()
                .with_connection_name(format!("rr jobs {}", self.name).into()),
        )
        .await
        .map_err(|e| amqp_error("connect", &e))?;
        let publisher = connection
            .create_channel()
            .await
            .map_err(|e| amqp_error("open a channel", &e))?;
        if s.exchange_declare {
            publisher
                .exchange_declare(
                    s.exchange.as_str().into(),
                    s.exchange_type.clone(),
                    ExchangeDeclareOptions {
                        durable: s.exchange_durable,
                        auto_delete: s.exchange_auto_delete,
                        ..ExchangeDeclareOptions::default()
                    },
                    FieldTable::default(),
                )
                .await
                .map_err(|e| amqp_error("declare the exchange", &e))?;
        }
        if s.queue_declare && !s.queue.is_empty() {
            publisher
                .queue_declare(
                    s.queue.as_str().into(),
                    QueueDeclareOptions {
                        durable: s.durable,
                        exclusive: s.exclusive,
                        auto_delete: s.queue_auto_delete,
                        ..QueueDeclareOptions::default()
                    },
                    s.queue_headers.clone(),
                )
                .await
                .map_err(|e| amqp_error("declare the queue", &e))?;
            publisher
                .queue_bind(
                    s.queue.as_str().into(),
                    s.exchange.as_str().into(),
                    s.routing_key.as_str().into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
                .map_err(|e| amqp_error("bind the queue", &e))?;
        }
        publisher
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| amqp_error("confirm mode", &e))?;
        let consumer = connection
            .create_channel()
            .await
            .map_err(|e| amqp_error("open a channel", &e))?;
        consumer
            .basic_qos(s.prefetch, BasicQosOptions::default())
            .await
            .map_err(|e| amqp_error("set the prefetch", &e))?;
        Ok(Session {
            connection,
            publisher,
            consumer,
            generation,
        })
    }

    /// Keeps a session up and consumes while the pipeline runs.
    async fn supervise(self: Arc<Self>) {
        let mut backoff = Backoff::new();
        let mut generation = 0;
        let mut down_since: Option<Instant> = None;
        let mut reported_down = false;
        loop {
            if self.switch.is_stopped() {
                return;
            }
            generation += 1;
            // A black-holed address would otherwise hold the dial for the
            // system's TCP timeout (minutes) instead of backing off.
            let dialled = tokio::time::timeout(DIAL_TIMEOUT, self.dial(generation))
                .await
                .unwrap_or_else(|_| Err(broker(format!("amqp: dial: timeout ({DIAL_TIMEOUT:?})"))));
            let session = match dialled {
                Ok(session) => Arc::new(session),
                Err(err) => {
                    let since = *down_since.get_or_insert_with(Instant::now);
                    let wait = backoff.next_wait();
                    if !reported_down && since.elapsed() >= self.settings.redial_timeout {
                        reported_down = true;
                        tracing::error!(target: "jobs", pipeline = %self.name, error = %err, timeout = ?self.settings.redial_timeout, "amqp broker unreachable for redial_timeout; still retrying");
                    } else {
                        tracing::warn!(target: "jobs", pipeline = %self.name, error = %err, retry_in = ?wait, "amqp: cannot connect; retrying");
                    }
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = self.switch.changed() => {}
                    }
                    continue;
                }
            };
            if down_since.take().is_some() {
                tracing::info!(target: "jobs", pipeline = %self.name, "amqp connection restored");
            } else {
                tracing::debug!(target: "jobs", pipeline = %self.name, "amqp connected");
            }
            backoff.reset();
            reported_down = false;
            self.session.send_replace(Some(Arc::clone(&session)));
            let lost = Arc::clone(&self).serve(&session).await;
            self.session.send_replace(None);
            self.active.send_replace(false);
            match lost {
                None => {
                    // Stopped.
                    self.shutdown(&session).await;
                    return;
                }
                Some(err) => {
                    down_since = Some(Instant::now());
                    tracing::warn!(target: "jobs", pipeline = %self.name, error = %err, "amqp connection lost; re-dialling");
                    let _ = session.connection.close(320, "re-dialling".into()).await;
                }
            }
        }
    }

    /// Consumes on `session` while wanted; returns why the session ended
    /// (`None`: the pipeline stopped).
    async fn serve(self: Arc<Self>, session: &Arc<Session>) -> Option<String> {
        let mut events = session.connection.events_listener();
        let mut consumer: Option<Consumer> = None;
        // basic.cancel was sent: the stream still yields what the broker
        // had already delivered, then ends. Dropping it earlier would
        // strand those deliveries unacked on the channel.
        let mut cancelled = false;
        let mut health = tokio::time::interval(Duration::from_secs(1));
        loop {
            if self.broken.load(Ordering::Acquire) == session.generation {
                return Some("a publish found the channel closed".to_owned());
            }
            let stopped = self.switch.is_stopped();
            let want = !stopped && self.switch.is_consuming();
            if want && consumer.is_none() {
                match session
                    .consumer
                    .basic_consume(
                        self.settings.queue.as_str().into(),
                        self.settings.consumer_id.as_str().into(),
                        BasicConsumeOptions {
                            exclusive: self.settings.exclusive,
                            ..BasicConsumeOptions::default()
                        },
                        FieldTable::default(),
                    )
                    .await
                {
                    Ok(c) => {
                        consumer = Some(c);
                        self.active.send_replace(true);
                    }
                    Err(err) => return Some(format!("consume: {err}")),
                }
            } else if !want && consumer.is_some() && !cancelled {
                // Cancelling keeps the channel: deliveries rr already holds
                // can still be acked on it.
                if let Err(err) = session
                    .consumer
                    .basic_cancel(
                        self.settings.consumer_id.as_str().into(),
                        BasicCancelOptions::default(),
                    )
                    .await
                {
                    return Some(format!("cancel the consumer: {err}"));
                }
                cancelled = true;
                self.active.send_replace(false);
            }
            if stopped {
                return None;
            }
            let next = async {
                match consumer.as_mut() {
                    Some(c) => c.next().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                delivery = next => match delivery {
                    Some(Ok(delivery)) => {
                        let job = self.decode(&delivery.properties, delivery.data, delivery.redelivered);
                        let ticket = Ticket {
                            inner: Arc::clone(&self),
                            acker: delivery.acker,
                        };
                        let delivery = Delivery {
                            job,
                            driver: NAME,
                            queue: Some(self.settings.queue.clone()),
                            ack: Arc::new(ticket),
                        };
                        if self.queue.push(delivery).await.is_err() {
                            // The plugin is shutting down.
                            return None;
                        }
                    }
                    Some(Err(err)) => return Some(format!("consumer: {err}")),
                    None if cancelled => {
                        // Drained after our cancel; a resume consumes anew.
                        consumer = None;
                        cancelled = false;
                    }
                    None => return Some("the broker cancelled the consumer".to_owned()),
                },
                event = events.next() => match event {
                    Some(lapin::Event::Error(err)) => return Some(err.to_string()),
                    Some(_) => {}
                    None => return Some("the connection is gone".to_owned()),
                },
                () = self.switch.changed() => {}
                _ = health.tick() => {
                    if !session.connection.status().connected() {
                        return Some("the connection is closed".to_owned());
                    }
                }
            }
        }
    }

    async fn shutdown(&self, session: &Session) {
        if self.settings.delete_queue_on_stop && !self.settings.queue.is_empty() {
            if let Err(err) = session
                .publisher
                .queue_delete(
                    self.settings.queue.as_str().into(),
                    QueueDeleteOptions::default(),
                )
                .await
            {
                tracing::warn!(target: "jobs", pipeline = %self.name, error = %err, "amqp: cannot delete the queue on stop");
            }
        }
        let _ = session
            .connection
            .close(200, "pipeline stopped".into())
            .await;
    }
}

/// A delivery's handle.
struct Ticket {
    inner: Arc<Inner>,
    acker: lapin::Acker,
}

impl Ticket {
    fn check(&self) -> Result<(), DriverError> {
        if self.inner.switch.is_stopped() {
            Err(DriverError::Stopped)
        } else {
            Ok(())
        }
    }

    async fn ack_now(&self) -> Result<(), DriverError> {
        self.acker
            .ack(BasicAckOptions {
                multiple: self.inner.settings.multiple_ack,
            })
            .await
            .map(drop)
            .map_err(|e| amqp_error("ack", &e))
    }

    async fn nack_now(&self, requeue: bool) -> Result<(), DriverError> {
        self.acker
            .nack(BasicNackOptions {
                multiple: false,
                requeue,
            })
            .await
            .map(drop)
            .map_err(|e| amqp_error("nack", &e))
    }
}

#[async_trait]
impl Acknowledger for Ticket {
    async fn ack(&self, _job: &Job) -> Result<(), DriverError> {
        self.check()?;
        self.ack_now().await
    }

    async fn nack(&self, job: &Job, requeue: bool, delay: i64) -> Result<(), DriverError> {
        self.check()?;
        match (requeue, delay > 0) {
            // A delay needs a copy through the delay queue.
            (true, true) => self.requeue(job.clone(), Headers::new(), delay).await,
            (true, false) => self.nack_now(true).await,
            // A failed job: back to the queue only with requeue_on_fail,
            // else dropped or dead-lettered by the broker.
            (false, _) => self.nack_now(self.inner.settings.requeue_on_fail).await,
        }
    }

    async fn requeue(&self, mut job: Job, headers: Headers, delay: i64) -> Result<(), DriverError> {
        self.check()?;
        job.headers.extend(headers);
        job.delay = delay.max(0);
        if let Err(err) = self.inner.publish(&job).await {
            // Not lost: the broker hands the original out again.
            let _ = self.nack_now(true).await;
            return Err(err);
        }
        self.ack_now().await
    }

    fn is_stopped(&self) -> bool {
        self.inner.switch.is_stopped()
    }
}

/// An `amqp` pipeline.
pub struct AmqpDriver {
    inner: Arc<Inner>,
    supervisor: Background,
}

impl AmqpDriver {
    /// A paused pipeline from `spec`; it connects in the background.
    pub fn new(spec: PipelineSpec) -> Result<Arc<AmqpDriver>, DriverError> {
        let settings = Settings::from_spec(&spec)?;
        let (session, _) = watch::channel(None);
        let (active, _) = watch::channel(false);
        let inner = Arc::new(Inner {
            name: spec.name.clone(),
            priority: spec.int("priority", 10)?,
            settings,
            queue: spec.queue,
            session,
            active,
            switch: Switch::default(),
            broken: AtomicU64::new(0),
            delayed: AtomicI64::new(0),
        });
        let supervisor = tokio::spawn(Arc::clone(&inner).supervise());
        Ok(Arc::new(AmqpDriver {
            inner,
            supervisor: Background::new(supervisor),
        }))
    }
}

#[async_trait]
impl Driver for AmqpDriver {
    fn kind(&self) -> &'static str {
        NAME
    }

    fn priority(&self) -> i64 {
        self.inner.priority
    }

    async fn push(&self, job: Job) -> Result<(), DriverError> {
        self.inner.switch.check_open()?;
        self.inner.publish(&job).await
    }

    async fn run(&self) -> Result<(), DriverError> {
        self.inner.switch.run();
        Ok(())
    }

    async fn pause(&self) -> Result<(), DriverError> {
        self.inner.switch.pause();
        // Return once the broker confirmed the cancel, so a job pushed
        // after the pause waits in the queue. Bounded: the supervisor may
        // be waiting for room in rr's queue.
        let mut active = self.inner.active.subscribe();
        if tokio::time::timeout(PAUSE_WAIT, active.wait_for(|a| !*a))
            .await
            .is_err()
        {
            tracing::warn!(target: "jobs", pipeline = %self.inner.name, "amqp: the consumer is not cancelled yet; the pause takes effect shortly");
        }
        Ok(())
    }

    async fn stop(&self) -> Result<(), DriverError> {
        self.inner.switch.stop();
        self.supervisor.finish(Duration::from_secs(5)).await;
        Ok(())
    }

    async fn state(&self) -> Result<Stat, DriverError> {
        let s = &self.inner.settings;
        let mut active = 0;
        let current = self.inner.session.borrow().clone();
        if let (Some(session), false) = (current, s.queue.is_empty()) {
            // A passive declare of a missing queue closes its channel: use
            // a throwaway one.
            let channel = session
                .connection
                .create_channel()
                .await
                .map_err(|e| amqp_error("open a channel", &e))?;
            let queue = channel
                .queue_declare(
                    s.queue.as_str().into(),
                    QueueDeclareOptions {
                        passive: true,
                        ..QueueDeclareOptions::default()
                    },
                    FieldTable::default(),
                )
                .await
                .map_err(|e| amqp_error("inspect the queue", &e))?;
            active = u64::from(queue.message_count());
            let _ = channel.close(200, "stat done".into()).await;
        }
        Ok(Stat {
            pipeline: self.inner.name.clone(),
            driver: NAME.to_owned(),
            queue: s.queue.clone(),
            active: active.try_into().unwrap_or(i64::MAX),
            delayed: self.inner.delayed.load(Ordering::Relaxed).max(0),
            reserved: 0,
            ready: self.inner.switch.is_ready(),
            priority: self.inner.priority.max(0).unsigned_abs(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(global: Value, options: Value) -> PipelineSpec {
        PipelineSpec {
            name: "p".into(),
            options: options.as_object().cloned().unwrap_or_default(),
            global: global.as_object().cloned().unwrap_or_default(),
            queue: Arc::new(JobQueue::new(1)),
        }
    }

    #[test]
    fn options_are_checked() {
        let err = Settings::from_spec(&spec(serde_json::json!({}), serde_json::json!({})))
            .expect_err("no routing key");
        assert!(err.to_string().contains("empty routing key"), "{err}");
        let fanout = Settings::from_spec(&spec(
            serde_json::json!({}),
            serde_json::json!({"exchange_type": "fanout"}),
        ))
        .expect("fanout needs no routing key");
        assert_eq!(fanout.addr.vhost, "/");
        assert_eq!(fanout.addr.authority.port, 5672);
        assert_eq!(fanout.exchange, "amqp.default");
        assert_eq!(fanout.prefetch, 10);
        assert!(fanout.consumer_id.starts_with("roadrunner-"));
        assert_eq!(fanout.redial_timeout, Duration::from_secs(60));
        let err = Settings::from_spec(&spec(
            serde_json::json!({}),
            serde_json::json!({"exchange_type": "x", "routing_key": "k"}),
        ))
        .expect_err("bad type");
        assert!(err.to_string().contains("`exchange_type`"), "{err}");
        let err = Settings::from_spec(&spec(
            serde_json::json!({"addr": "amqps://h"}),
            serde_json::json!({"routing_key": "k"}),
        ))
        .expect_err("tls");
        assert!(err.to_string().contains("amqp://"), "{err}");
        let err = Settings::from_spec(&spec(
            serde_json::json!({"tls": {"cert": "c"}}),
            serde_json::json!({"routing_key": "k"}),
        ))
        .expect_err("tls section");
        assert!(err.to_string().contains("no TLS"), "{err}");
        // jobs.Declare gives strings.
        let declared = Settings::from_spec(&spec(
            serde_json::json!({}),
            serde_json::json!({"routing_key": "k", "prefetch": "3", "durable": "true",
                "queue_headers": "{\"x-max-priority\": \"10\", \"x-dead-letter-exchange\": \"dlx\"}"}),
        ))
        .expect("declare strings");
        assert_eq!(declared.prefetch, 3);
        assert!(declared.durable);
        assert_eq!(declared.max_priority, Some(10));
        assert_eq!(
            declared.queue_headers.inner().get("x-max-priority"),
            Some(&AMQPValue::LongLongInt(10))
        );
        let err = Settings::from_spec(&spec(
            serde_json::json!({}),
            serde_json::json!({"routing_key": "k", "queue_headers": {"x-max-priority": 300}}),
        ))
        .expect_err("too big");
        assert!(err.to_string().contains("x-max-priority"), "{err}");
    }

    #[test]
    fn version_2_nests_exchange_and_queue() {
        let v2 = Settings::from_spec(&spec(
            serde_json::json!({}),
            serde_json::json!({"version": 2, "prefetch": 4,
                "exchange": {"name": "ex", "type": "topic", "durable": true, "declare": false},
                "queue": {"name": "q", "routing_key": "k.#", "delete_on_stop": true,
                    "requeue_on_fail": true, "headers": {"x-max-priority": 5}}}),
        ))
        .expect("v2");
        assert_eq!(
            (
                v2.exchange.as_str(),
                v2.queue.as_str(),
                v2.routing_key.as_str()
            ),
            ("ex", "q", "k.#")
        );
        assert_eq!(v2.exchange_type, ExchangeKind::Topic);
        assert!(v2.exchange_durable && !v2.exchange_declare && v2.queue_declare);
        assert!(v2.delete_queue_on_stop && v2.requeue_on_fail);
        assert_eq!((v2.prefetch, v2.max_priority), (4, Some(5)));
    }

    #[test]
    fn lower_rr_priorities_become_higher_amqp_priorities() {
        let settings = Settings::from_spec(&spec(
            serde_json::json!({}),
            serde_json::json!({"routing_key": "k", "queue_headers": {"x-max-priority": 10}}),
        ))
        .expect("valid");
        assert_eq!(settings.amqp_priority(1), Some(9));
        assert_eq!(settings.amqp_priority(9), Some(1));
        assert_eq!(settings.amqp_priority(-5), Some(10));
        assert_eq!(settings.amqp_priority(50), Some(0));
        let plain = Settings::from_spec(&spec(
            serde_json::json!({}),
            serde_json::json!({"routing_key": "k"}),
        ))
        .expect("valid");
        assert_eq!(plain.amqp_priority(1), None);
    }

    #[test]
    fn foreign_headers_are_stringified() {
        let mut headers = Headers::new();
        stringify(&mut headers, "n", &AMQPValue::LongInt(-3));
        stringify(&mut headers, "f", &AMQPValue::Double(1.5));
        stringify(&mut headers, "b", &AMQPValue::Boolean(true));
        stringify(&mut headers, "s", &AMQPValue::LongString("x".into()));
        stringify(
            &mut headers,
            "a",
            &AMQPValue::FieldArray(
                vec![AMQPValue::ShortUInt(1), AMQPValue::LongString("y".into())].into(),
            ),
        );
        assert_eq!(headers["n"], ["-3"]);
        assert_eq!(headers["f"], ["1.50000"]);
        assert_eq!(headers["b"], ["true"]);
        assert_eq!(headers["s"], ["x"]);
        assert_eq!(headers["a"], ["1", "y"]);
    }

    #[test]
    fn uuids_look_like_v4() {
        let id = uuid();
        assert_eq!(id.len(), 36, "{id}");
        assert_eq!(id.as_bytes()[14], b'4');
        assert_eq!(id.split('-').count(), 5);
    }

    #[tokio::test]
    async fn headers_round_trip() {
        let driver = AmqpDriver::new(spec(
            serde_json::json!({"addr": "amqp://guest:guest@127.0.0.1:1/"}),
            serde_json::json!({"routing_key": "k", "queue": "q", "priority": 4}),
        ))
        .expect("valid");
        let job = Job {
            id: "id-1".into(),
            name: "App\\Mail".into(),
            payload: Bytes::from_static(b"body"),
            headers: [("h".to_owned(), vec!["v".to_owned()])].into(),
            pipeline: "p".into(),
            priority: 3,
            delay: 0,
            auto_ack: true,
        };
        let table = driver.inner.headers(&job).expect("headers");
        let properties = BasicProperties::default().with_headers(table);
        let back = driver.inner.decode(&properties, b"body".to_vec(), false);
        assert_eq!(back, job);
        let foreign = driver
            .inner
            .decode(&BasicProperties::default(), b"x".to_vec(), false);
        assert_eq!(foreign.name, DEDUCED);
        assert_eq!(foreign.priority, 4);
        assert_eq!(foreign.id.len(), 36);
        driver.stop().await.expect("stop");
    }
}
