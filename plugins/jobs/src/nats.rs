//! The `nats` driver: jobs live in a NATS JetStream stream.
//!
//! ```yaml
//! nats:                        # global section (required)
//!   addr: nats://127.0.0.1:4222
//! jobs:
//!   pipelines:
//!     mail:
//!       driver: nats
//!       config:
//!         priority: 10             # the job's priority in rr's queue
//!         subject: default         # where jobs are published
//!         stream: default-stream   # created (file storage) when missing
//!         prefetch: 10             # unacknowledged messages at a time
//!         ack_wait: 30s            # redelivery timeout of a silent consumer
//!         deliver_new: false       # a new consumer skips older messages
//!         delete_after_ack: false  # remove acked messages from the stream
//!         delete_stream_on_stop: false
//!         consume_all: false       # take messages rr did not publish
//!         rate_limit: 1000         # accepted, not applied (see below)
//! ```
//!
//! A job is published as RoadRunner's JSON item `{"job","id","payload"
//! (base64, Go's []byte),"options":{"priority","pipeline","delay",
//! "auto_ack"}}`, plus rr's own `headers` and `options.not_before` (unix
//! milliseconds), which RoadRunner ignores. Messages without `headers` take
//! their NATS headers as job headers.
//!
//! Consuming uses one durable pull consumer per pipeline (`rr-<pipeline>`,
//! explicit acks, `max_ack_pending` = `prefetch`), so the position in the
//! stream survives an rr or broker restart and several rr instances share
//! the work. RoadRunner creates a fresh consumer on every run instead.
//!
//! Settling: ack acks (and deletes with `delete_after_ack`); nack terminates
//! the message; nack with redelivery naks it with the delay; requeue
//! publishes a copy with the merged headers and the delay, then acks and
//! deletes the original. A job that is not due yet (`not_before`) is naked
//! with the remaining delay without reaching a worker, so delays live in
//! the broker (RoadRunner rejects delays on nats) but hold a `prefetch`
//! slot while they wait. A running job is kept alive with "in progress"
//! signals every `ack_wait / 2`, so only a lost consumer causes redelivery;
//! redeliveries are unlimited (RoadRunner sets `max_deliver: 1`, which makes
//! nack-with-redelivery drop the job).
//!
//! Priority is metadata, as in RoadRunner: the broker delivers in stream
//! order, and rr's queue orders only what was prefetched. `rate_limit`
//! applies to push consumers only, so the pull consumer ignores it.
//!
//! The client reconnects by itself (every second) when the broker goes
//! away; the consumer is pulled again once it is back.

use std::future::IntoFuture as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::jetstream::{self, consumer, stream, AckKind};
use bytes::Bytes;
use futures_util::StreamExt;
use rr_plugin::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;
use tokio::task::JoinHandle;

use crate::backoff::Backoff;
use crate::driver::{Background, Driver, DriverError, PipelineSpec, Switch};
use crate::job::{Acknowledger, Delivery, Job};
use crate::proto::{Headers, Stat};
use crate::queue::JobQueue;

/// The driver's name.
pub const NAME: &str = "nats";
/// Default global `addr`.
pub const DEFAULT_ADDR: &str = "nats://127.0.0.1:4222";
/// Job name of messages rr did not publish (with `consume_all`).
pub const DEDUCED: &str = "deduced_by_rr";
/// Bound on one broker request (publish, ack, stream and consumer calls).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

fn broker(message: impl std::fmt::Display) -> DriverError {
    DriverError::Broker(format!("nats: {message}"))
}

/// Runs a broker call within [`REQUEST_TIMEOUT`].
async fn bounded<T, E: std::fmt::Display>(
    what: &str,
    call: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, DriverError> {
    match tokio::time::timeout(REQUEST_TIMEOUT, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => Err(broker(format!("{what}: {err}"))),
        Err(_) => Err(broker(format!("{what}: timeout"))),
    }
}

/// Go's `[]byte` in JSON: base64 text, or `null`.
mod base64_bytes {
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = Option::<String>::deserialize(deserializer)?;
        match text {
            None => Ok(Vec::new()),
            Some(text) => base64::engine::general_purpose::STANDARD
                .decode(text.as_bytes())
                .map_err(serde::de::Error::custom),
        }
    }
}

/// What rr publishes (RoadRunner's nats item, plus `headers` and
/// `options.not_before`).
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Item {
    job: String,
    id: String,
    #[serde(with = "base64_bytes", default)]
    payload: Vec<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    headers: Option<Headers>,
    #[serde(default)]
    options: Option<ItemOptions>,
}

#[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
struct ItemOptions {
    priority: i64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pipeline: String,
    #[serde(skip_serializing_if = "is_zero")]
    delay: i64,
    auto_ack: bool,
    /// Not delivered before this time (unix milliseconds).
    #[serde(skip_serializing_if = "Option::is_none")]
    not_before: Option<u64>,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A JetStream consumer name from a pipeline name (no dots, wildcards,
/// separators or whitespace).
fn consumer_name(pipeline: &str) -> String {
    let safe: String = pipeline
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("rr-{safe}")
}

struct Settings {
    addr: String,
    subject: String,
    stream: String,
    prefetch: usize,
    ack_wait: Duration,
    deliver_new: bool,
    delete_after_ack: bool,
    delete_stream_on_stop: bool,
    consume_all: bool,
}

struct Inner {
    name: String,
    priority: i64,
    settings: Settings,
    queue: Arc<JobQueue>,
    /// The connection, made on first use (it reconnects by itself).
    context: OnceCell<jetstream::Context>,
    /// The stream, once created or found; cleared when it fails.
    stream: tokio::sync::Mutex<Option<stream::Stream>>,
    /// Run, pause and stop, as the listener sees them.
    switch: Switch,
}

impl Inner {
    async fn context(&self) -> Result<&jetstream::Context, DriverError> {
        self.context
            .get_or_try_init(|| async {
                let name = self.name.clone();
                let client = async_nats::ConnectOptions::new()
                    .name(format!("rr jobs {}", self.name))
                    .no_echo()
                    // rr starts even when the broker is down; pushes fail
                    // and the consumer retries until it is up.
                    .retry_on_initial_connect()
                    .connection_timeout(REQUEST_TIMEOUT)
                    .request_timeout(Some(REQUEST_TIMEOUT))
                    .reconnect_delay_callback(|attempts| {
                        if attempts <= 1 {
                            Duration::ZERO
                        } else {
                            Backoff::for_attempt(attempts - 1)
                        }
                    })
                    .event_callback(move |event| {
                        let name = name.clone();
                        async move {
                            match event {
                                async_nats::Event::Connected => {
                                    tracing::info!(target: "jobs", pipeline = %name, "nats connected")
                                }
                                async_nats::Event::Disconnected => {
                                    tracing::warn!(target: "jobs", pipeline = %name, "nats connection lost, reconnecting")
                                }
                                other => {
                                    tracing::warn!(target: "jobs", pipeline = %name, event = %other, "nats event")
                                }
                            }
                        }
                    })
                    .connect(self.settings.addr.as_str())
                    .await
                    .map_err(|e| broker(format!("connect to {}: {e}", self.settings.addr)))?;
                let mut context = jetstream::new(client);
                context.set_timeout(REQUEST_TIMEOUT);
                Ok(context)
            })
            .await
    }

    /// The stream, created when missing (RoadRunner: `CreateOrUpdateStream`
    /// with the one subject).
    async fn stream(&self) -> Result<stream::Stream, DriverError> {
        let mut cached = self.stream.lock().await;
        if let Some(stream) = cached.as_ref() {
            return Ok(stream.clone());
        }
        let context = self.context().await?;
        let config = stream::Config {
            name: self.settings.stream.clone(),
            subjects: vec![self.settings.subject.clone()],
            ..Default::default()
        };
        let stream = bounded(
            &format!("stream {}", self.settings.stream),
            context.get_or_create_stream(config),
        )
        .await?;
        *cached = Some(stream.clone());
        Ok(stream)
    }

    async fn forget_stream(&self) {
        *self.stream.lock().await = None;
    }

    /// Publishes `job`, due after `job.delay` seconds.
    async fn publish(&self, job: &Job) -> Result<(), DriverError> {
        let delay = job.delay.max(0);
        let item = Item {
            job: job.name.clone(),
            id: job.id.clone(),
            payload: job.payload.to_vec(),
            headers: (!job.headers.is_empty()).then(|| job.headers.clone()),
            options: Some(ItemOptions {
                priority: job.priority,
                pipeline: job.pipeline.clone(),
                delay,
                auto_ack: job.auto_ack,
                not_before: (delay > 0)
                    .then(|| now_ms().saturating_add(delay.unsigned_abs().saturating_mul(1000))),
            }),
        };
        let body = serde_json::to_vec(&item).map_err(broker)?;
        // The stream must exist, or the publish has no responder.
        self.stream().await?;
        let context = self.context().await?;
        let result = async {
            let ack = bounded(
                "publish",
                context.publish(self.settings.subject.clone(), Bytes::from(body)),
            )
            .await?;
            bounded("publish ack", ack.into_future()).await
        }
        .await;
        if result.is_err() {
            // The stream may be gone (a broker that lost its store).
            self.forget_stream().await;
        }
        result.map(drop)
    }

    async fn subscribe(&self) -> Result<consumer::pull::Stream, DriverError> {
        let stream = self.stream().await?;
        let name = consumer_name(&self.name);
        let config = consumer::pull::Config {
            durable_name: Some(name.clone()),
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait: self.settings.ack_wait,
            max_ack_pending: i64::try_from(self.settings.prefetch).unwrap_or(i64::MAX),
            max_deliver: -1,
            deliver_policy: if self.settings.deliver_new {
                consumer::DeliverPolicy::New
            } else {
                consumer::DeliverPolicy::All
            },
            ..Default::default()
        };
        let consumer: consumer::PullConsumer = bounded(
            &format!("consumer {name}"),
            stream.get_or_create_consumer(&name, config),
        )
        .await?;
        bounded(
            "pull",
            consumer
                .stream()
                .max_messages_per_batch(self.settings.prefetch)
                .heartbeat(Duration::from_secs(5))
                .expires(Duration::from_secs(15))
                .messages(),
        )
        .await
    }

    /// Waits for `wait` or a pause/resume/stop.
    async fn pause(&self, wait: Duration) {
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = self.switch.changed() => {}
        }
    }

    async fn listen(self: Arc<Self>) {
        let mut backoff = Backoff::new();
        loop {
            if self.switch.is_stopped() {
                return;
            }
            if !self.switch.is_consuming() {
                self.switch.changed().await;
                continue;
            }
            let mut messages = match self.subscribe().await {
                Ok(messages) => messages,
                Err(err) => {
                    let wait = backoff.next_wait();
                    tracing::error!(target: "jobs", pipeline = %self.name, error = %err, retry_in = ?wait, "nats consumer cannot start; retrying");
                    self.forget_stream().await;
                    self.pause(wait).await;
                    continue;
                }
            };
            backoff.reset();
            tracing::debug!(target: "jobs", pipeline = %self.name, "nats consumer started");
            loop {
                tokio::select! {
                    () = self.switch.changed() => {
                        if !self.switch.is_consuming() || self.switch.is_stopped() {
                            // Dropping the pull stream stops delivery; what
                            // it had prefetched is redelivered after ack_wait.
                            break;
                        }
                    }
                    next = messages.next() => match next {
                        None => {
                            tracing::warn!(target: "jobs", pipeline = %self.name, "nats consumer ended; restarting it");
                            break;
                        }
                        Some(Err(err)) => {
                            use consumer::pull::MessagesErrorKind as Kind;
                            match err.kind() {
                                // The client reconnects and pulls again.
                                Kind::MissingHeartbeat | Kind::Pull | Kind::Other => {
                                    tracing::warn!(target: "jobs", pipeline = %self.name, error = %err, "nats consumer error");
                                }
                                Kind::ConsumerDeleted | Kind::NoResponders | Kind::PushBasedConsumer => {
                                    let wait = backoff.next_wait();
                                    tracing::warn!(target: "jobs", pipeline = %self.name, error = %err, retry_in = ?wait, "nats consumer lost; recreating it");
                                    self.forget_stream().await;
                                    self.pause(wait).await;
                                    break;
                                }
                            }
                        }
                        Some(Ok(message)) => {
                            if !self.deliver(message).await {
                                // The plugin's queue closed: shutting down.
                                return;
                            }
                        }
                    }
                }
            }
        }
    }

    fn decode(
        &self,
        parsed: Result<Item, serde_json::Error>,
        message: &async_nats::Message,
        seq: u64,
    ) -> Option<Job> {
        match parsed {
            Ok(item) => {
                let options = item.options.unwrap_or_default();
                let headers = item.headers.unwrap_or_else(|| nats_headers(message));
                Some(Job {
                    id: item.id,
                    name: item.job,
                    payload: Bytes::from(item.payload),
                    headers,
                    pipeline: self.name.clone(),
                    priority: if options.priority == 0 {
                        self.priority
                    } else {
                        options.priority
                    },
                    delay: 0,
                    auto_ack: options.auto_ack,
                })
            }
            Err(_) if self.settings.consume_all => Some(Job {
                id: format!("nats-{}-{seq}", self.settings.stream),
                name: DEDUCED.to_owned(),
                payload: message.payload.clone(),
                headers: nats_headers(message),
                pipeline: self.name.clone(),
                priority: self.priority,
                delay: 0,
                auto_ack: false,
            }),
            Err(err) => {
                tracing::error!(target: "jobs", pipeline = %self.name, sequence = seq, error = %err, "nats message is not an rr job (set consume_all to take it); it is terminated");
                None
            }
        }
    }

    /// Hands one message to the plugin's queue; `false` when the queue is
    /// closed.
    async fn deliver(self: &Arc<Self>, message: jetstream::Message) -> bool {
        let seq = message.info().map(|i| i.stream_sequence).unwrap_or(0);
        let (message, acker) = message.split();
        let parsed = serde_json::from_slice::<Item>(&message.payload);
        let not_before = parsed
            .as_ref()
            .ok()
            .and_then(|item| item.options.as_ref())
            .and_then(|options| options.not_before);
        if let Some(due) = not_before {
            let now = now_ms();
            if due > now {
                // Not due: back to the broker until it is.
                let wait = Duration::from_millis(due - now);
                if let Err(err) = acker.ack_with(AckKind::Nak(Some(wait))).await {
                    tracing::warn!(target: "jobs", pipeline = %self.name, error = %err, "nats: cannot delay a message");
                }
                return true;
            }
        }
        let Some(job) = self.decode(parsed, &message, seq) else {
            if let Err(err) = acker.ack_with(AckKind::Term).await {
                tracing::warn!(target: "jobs", pipeline = %self.name, error = %err, "nats: cannot terminate a message");
            }
            return true;
        };
        let acker = Arc::new(acker);
        let keepalive = tokio::spawn(keep_alive(
            Arc::clone(self),
            Arc::clone(&acker),
            self.settings.ack_wait,
        ));
        let ticket = Ticket {
            inner: Arc::clone(self),
            acker,
            seq,
            keepalive: Mutex::new(Some(keepalive)),
        };
        let delivery = Delivery {
            job,
            driver: NAME,
            queue: Some(self.settings.stream.clone()),
            ack: Arc::new(ticket),
        };
        self.queue.push(delivery).await.is_ok()
    }
}

/// Job headers from a message's NATS headers.
fn nats_headers(message: &async_nats::Message) -> Headers {
    let mut headers = Headers::new();
    if let Some(map) = &message.headers {
        for (name, values) in map.iter() {
            headers.insert(
                name.to_string(),
                values.iter().map(|v| v.as_str().to_owned()).collect(),
            );
        }
    }
    headers
}

/// Tells the broker every `ack_wait / 2` that the job is still being worked
/// on, so a long job is not redelivered while it runs.
async fn keep_alive(inner: Arc<Inner>, acker: Arc<jetstream::message::Acker>, ack_wait: Duration) {
    let period = (ack_wait / 2).max(Duration::from_millis(500));
    loop {
        tokio::time::sleep(period).await;
        if inner.switch.is_stopped() {
            return;
        }
        if let Err(err) = acker.ack_with(AckKind::Progress).await {
            tracing::debug!(target: "jobs", pipeline = %inner.name, error = %err, "nats: in-progress signal failed");
        }
    }
}

/// A delivered message's handle.
struct Ticket {
    inner: Arc<Inner>,
    acker: Arc<jetstream::message::Acker>,
    seq: u64,
    keepalive: Mutex<Option<JoinHandle<()>>>,
}

impl Ticket {
    /// Ends the in-progress pings: the job is settled or gone.
    fn stop_keepalive(&self) {
        if let Some(keepalive) = self
            .keepalive
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            keepalive.abort();
        }
    }

    fn settle(&self) -> Result<(), DriverError> {
        self.stop_keepalive();
        self.inner.switch.check_open()?;
        Ok(())
    }

    async fn send(&self, kind: AckKind, what: &str) -> Result<(), DriverError> {
        // A confirmed ack: a lost one would redeliver a finished job.
        bounded(what, self.acker.double_ack_with(kind)).await
    }

    async fn done(&self) -> Result<(), DriverError> {
        self.send(AckKind::Ack, "ack").await?;
        if self.inner.settings.delete_after_ack {
            self.delete().await?;
        }
        Ok(())
    }

    async fn delete(&self) -> Result<(), DriverError> {
        let stream = self.inner.stream().await?;
        bounded("delete message", stream.delete_message(self.seq))
            .await
            .map(drop)
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.stop_keepalive();
    }
}

#[async_trait]
impl Acknowledger for Ticket {
    async fn ack(&self, _job: &Job) -> Result<(), DriverError> {
        self.settle()?;
        self.done().await
    }

    async fn nack(&self, _job: &Job, requeue: bool, delay: i64) -> Result<(), DriverError> {
        self.settle()?;
        if !requeue {
            return self.send(AckKind::Term, "term").await;
        }
        let delay = (delay > 0).then(|| Duration::from_secs(delay.unsigned_abs()));
        self.send(AckKind::Nak(delay), "nak").await
    }

    async fn requeue(&self, mut job: Job, headers: Headers, delay: i64) -> Result<(), DriverError> {
        self.settle()?;
        job.headers.extend(headers);
        job.delay = delay.max(0);
        if let Err(err) = self.inner.publish(&job).await {
            // The original comes back instead (RoadRunner does the same).
            let _ = self.send(AckKind::Nak(None), "nak").await;
            return Err(err);
        }
        self.send(AckKind::Ack, "ack").await?;
        // The copy replaces it (RoadRunner deletes it too).
        if let Err(err) = self.delete().await {
            tracing::debug!(target: "jobs", pipeline = %self.inner.name, error = %err, "nats: cannot delete a requeued message");
        }
        Ok(())
    }

    fn is_stopped(&self) -> bool {
        self.inner.switch.is_stopped()
    }
}

/// A `nats` pipeline.
pub struct NatsDriver {
    inner: Arc<Inner>,
    listener: Background,
}

impl NatsDriver {
    /// A paused pipeline from `spec` (it connects on first use).
    pub fn new(spec: PipelineSpec) -> Result<Arc<NatsDriver>, DriverError> {
        if spec.global.is_empty() {
            return Err(broker(
                "no global nats configuration, global configuration should contain NATS URL",
            ));
        }
        let global = PipelineSpec {
            name: "nats (global section)".to_owned(),
            options: spec.global.clone(),
            global: serde_json::Map::new(),
            queue: Arc::clone(&spec.queue),
        };
        let addr = global.string("addr", DEFAULT_ADDR)?;
        let prefetch = spec.int("prefetch", 10)?;
        let prefetch = usize::try_from(prefetch)
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| DriverError::Option {
                pipeline: spec.name.clone(),
                key: "prefetch".into(),
                message: format!("must be at least 1, got {prefetch}"),
            })?;
        let subject = spec.string("subject", "default")?;
        let stream = spec.string("stream", "default-stream")?;
        if stream.contains(['.', '*', '>', ' ', '/', '\\']) {
            return Err(DriverError::Option {
                pipeline: spec.name.clone(),
                key: "stream".into(),
                message: format!(
                    "{stream:?}: a stream name has no dots, wildcards, spaces or slashes"
                ),
            });
        }
        // Validated for RoadRunner configs; see the module docs.
        spec.int("rate_limit", 1000)?;
        let settings = Settings {
            addr,
            subject,
            stream,
            prefetch,
            ack_wait: Duration::from_secs(spec.seconds("ack_wait", 30)?),
            deliver_new: spec.bool("deliver_new", false)?,
            delete_after_ack: spec.bool("delete_after_ack", false)?,
            delete_stream_on_stop: spec.bool("delete_stream_on_stop", false)?,
            consume_all: spec.bool("consume_all", false)?,
        };
        let inner = Arc::new(Inner {
            name: spec.name.clone(),
            priority: spec.int("priority", 10)?,
            settings,
            queue: spec.queue,
            context: OnceCell::new(),
            stream: tokio::sync::Mutex::new(None),
            switch: Switch::default(),
        });
        let listener = tokio::spawn(Arc::clone(&inner).listen());
        Ok(Arc::new(NatsDriver {
            inner,
            listener: Background::new(listener),
        }))
    }
}

#[async_trait]
impl Driver for NatsDriver {
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
        Ok(())
    }

    async fn stop(&self) -> Result<(), DriverError> {
        self.inner.switch.stop();
        self.listener.finish(Duration::from_secs(2)).await;
        let Some(context) = self.inner.context.get() else {
            return Ok(());
        };
        if self.inner.settings.delete_stream_on_stop {
            bounded(
                &format!("delete stream {}", self.inner.settings.stream),
                context.delete_stream(&self.inner.settings.stream),
            )
            .await?;
        }
        Ok(())
    }

    async fn state(&self) -> Result<Stat, DriverError> {
        let stream = self.inner.stream().await?;
        let name = consumer_name(&self.inner.name);
        let (active, reserved) = match stream.consumer_info(&name).await {
            Ok(info) => (
                i64::try_from(info.num_pending).unwrap_or(i64::MAX),
                i64::try_from(info.num_ack_pending).unwrap_or(i64::MAX),
            ),
            // No consumer yet (never run): everything in the stream waits.
            Err(_) => {
                let mut stream = stream;
                let info = bounded("stream info", stream.info()).await?;
                (i64::try_from(info.state.messages).unwrap_or(i64::MAX), 0)
            }
        };
        Ok(Stat {
            pipeline: self.inner.name.clone(),
            driver: NAME.to_owned(),
            queue: self.inner.settings.subject.clone(),
            active,
            delayed: 0,
            reserved,
            ready: self.inner.switch.is_ready(),
            priority: self.inner.priority.max(0).unsigned_abs(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_use_roadrunners_layout() {
        let item = Item {
            job: "App\\Mail".into(),
            id: "1".into(),
            payload: b"{}".to_vec(),
            headers: None,
            options: Some(ItemOptions {
                priority: 3,
                pipeline: "p".into(),
                delay: 0,
                auto_ack: false,
                not_before: None,
            }),
        };
        let json = serde_json::to_string(&item).expect("json");
        assert_eq!(
            json,
            r#"{"job":"App\\Mail","id":"1","payload":"e30=","options":{"priority":3,"pipeline":"p","auto_ack":false}}"#
        );
        assert_eq!(serde_json::from_str::<Item>(&json).expect("back"), item);
        // RoadRunner's own message, with its `Queue` field and no headers.
        let go = r#"{"job":"j","id":"2","payload":"aGk=","options":{"priority":0,"auto_ack":true,"Queue":""}}"#;
        let item = serde_json::from_str::<Item>(go).expect("go item");
        assert_eq!(item.payload, b"hi");
        assert!(item.options.expect("options").auto_ack);
        let null = r#"{"job":"j","id":"3","payload":null,"options":null}"#;
        assert!(serde_json::from_str::<Item>(null)
            .expect("nulls")
            .payload
            .is_empty());
    }

    #[test]
    fn consumer_names_are_valid() {
        assert_eq!(consumer_name("a.b c*>"), "rr-a_b_c__");
        assert_eq!(consumer_name("mail-1_x"), "rr-mail-1_x");
    }

    #[tokio::test]
    async fn options_are_checked() {
        let queue = Arc::new(JobQueue::new(1));
        let spec = |global: serde_json::Value, options: serde_json::Value| PipelineSpec {
            name: "p".into(),
            options: options.as_object().cloned().unwrap_or_default(),
            global: global.as_object().cloned().unwrap_or_default(),
            queue: Arc::clone(&queue),
        };
        let err = NatsDriver::new(spec(serde_json::json!({}), serde_json::json!({})))
            .err()
            .expect("no global");
        assert!(err.to_string().contains("no global nats configuration"));
        let global = serde_json::json!({"addr": "nats://127.0.0.1:1"});
        let err = NatsDriver::new(spec(global.clone(), serde_json::json!({"prefetch": 0})))
            .err()
            .expect("bad prefetch");
        assert!(err.to_string().contains("`prefetch`"), "{err}");
        let err = NatsDriver::new(spec(global.clone(), serde_json::json!({"stream": "a.b"})))
            .err()
            .expect("bad stream");
        assert!(err.to_string().contains("`stream`"), "{err}");
        let ok = NatsDriver::new(spec(
            global,
            serde_json::json!({"ack_wait": "2s", "deliver_new": "true", "priority": "3"}),
        ))
        .expect("valid");
        assert_eq!(ok.inner.settings.ack_wait, Duration::from_secs(2));
        assert!(ok.inner.settings.deliver_new);
        assert_eq!(ok.priority(), 3);
        assert_eq!(ok.inner.settings.subject, "default");
        assert_eq!(ok.inner.settings.stream, "default-stream");
        ok.stop().await.expect("stop");
    }
}
