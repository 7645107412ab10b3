//! The `beanstalk` driver: jobs live in a beanstalkd tube.
//!
//! ```yaml
//! beanstalk:                 # global section (required)
//!   addr: tcp://127.0.0.1:11300
//!   timeout: 30s             # connect/command bound, and each job's TTR
//! jobs:
//!   pipelines:
//!     mail:
//!       driver: beanstalk
//!       config:
//!         priority: 10       # the job's priority in rr's queue
//!         tube_priority: 0   # beanstalkd `put` priority
//!         tube: default
//!         reserve_timeout: 1s
//!         consume_all: false # take messages rr did not put (job name `deduced_by_rr`)
//!         prefetch: 10       # rr extension: reserved jobs not yet settled
//! ```
//!
//! A job is `put` as JSON `{"job","id","payload","headers","options":
//! {"priority","pipeline","delay","auto_ack"}}` (RoadRunner's item fields;
//! RoadRunner itself encodes them with Go's gob, which rr does not read).
//! One connection watches the tube and reserves while the pipeline runs;
//! beanstalkd only lets that connection delete what it reserved, so acks
//! queue behind a pending reserve (at most `reserve_timeout`). Ack and
//! nack delete; nack with redelivery and requeue put a copy (with the
//! delay and merged headers) and delete the original. A lost connection is
//! re-dialled every second; what it had reserved goes back to the tube.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rr_plugin::async_trait;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

use crate::backoff::Backoff;
use crate::driver::{Background, Driver, DriverError, PipelineSpec, Switch};
use crate::job::{Acknowledger, Delivery, Job};
use crate::proto::{Headers, Stat};
use crate::queue::JobQueue;

/// The driver's name.
pub const NAME: &str = "beanstalk";
/// Default global `addr`.
pub const DEFAULT_ADDR: &str = "tcp://127.0.0.1:11300";
/// Job name of messages rr did not put (with `consume_all`).
pub const DEDUCED: &str = "deduced_by_rr";

fn broker(message: impl Into<String>) -> DriverError {
    DriverError::Broker(message.into())
}

/// One beanstalkd connection.
struct Conn {
    stream: BufReader<TcpStream>,
}

impl Conn {
    async fn connect(addr: &str, timeout: Duration) -> Result<Conn, DriverError> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| broker(format!("beanstalk: connect to {addr}: timeout")))?
            .map_err(|e| broker(format!("beanstalk: connect to {addr}: {e}")))?;
        let _ = stream.set_nodelay(true);
        Ok(Conn {
            stream: BufReader::new(stream),
        })
    }

    async fn write(&mut self, request: &[u8]) -> Result<(), DriverError> {
        self.stream
            .get_mut()
            .write_all(request)
            .await
            .map_err(|e| broker(format!("beanstalk: {e}")))
    }

    async fn line(&mut self) -> Result<String, DriverError> {
        let mut reply = String::new();
        let read = self
            .stream
            .read_line(&mut reply)
            .await
            .map_err(|e| broker(format!("beanstalk: {e}")))?;
        if read == 0 {
            return Err(broker("beanstalk: connection closed"));
        }
        Ok(reply.trim_end().to_owned())
    }

    async fn send(&mut self, line: &str, data: Option<&[u8]>) -> Result<String, DriverError> {
        let mut request = Vec::with_capacity(line.len() + 4 + data.map_or(0, <[u8]>::len));
        request.extend_from_slice(line.as_bytes());
        request.extend_from_slice(b"\r\n");
        if let Some(data) = data {
            request.extend_from_slice(data);
            request.extend_from_slice(b"\r\n");
        }
        self.write(&request).await?;
        self.line().await
    }

    async fn body(&mut self, len: usize) -> Result<Vec<u8>, DriverError> {
        let mut data = vec![0; len + 2];
        self.stream
            .read_exact(&mut data)
            .await
            .map_err(|e| broker(format!("beanstalk: {e}")))?;
        data.truncate(len);
        Ok(data)
    }

    async fn expect(&mut self, line: &str, prefix: &str) -> Result<String, DriverError> {
        let reply = self.send(line, None).await?;
        if reply.starts_with(prefix) {
            Ok(reply)
        } else {
            Err(broker(format!("beanstalk: `{line}` answered {reply}")))
        }
    }

    async fn put(
        &mut self,
        priority: u32,
        delay: u64,
        ttr: u64,
        data: &[u8],
    ) -> Result<u64, DriverError> {
        let line = format!("put {priority} {delay} {ttr} {}", data.len());
        let reply = self.send(&line, Some(data)).await?;
        match reply.split_once(' ') {
            Some(("INSERTED", id)) => id
                .parse()
                .map_err(|_| broker(format!("beanstalk: put answered {reply}"))),
            _ => Err(broker(format!("beanstalk: put answered {reply}"))),
        }
    }

    /// Reads the answer to a `reserve-with-timeout` whose reply line is
    /// `reply`: `Some((id, body))`, or `None` when nothing came in time.
    async fn reserved(&mut self, reply: &str) -> Result<Option<(u64, Vec<u8>)>, DriverError> {
        let mut words = reply.split(' ');
        match (words.next(), words.next(), words.next()) {
            (Some("RESERVED"), Some(id), Some(len)) => {
                let (Ok(id), Ok(len)) = (id.parse(), len.parse()) else {
                    return Err(broker(format!("beanstalk: reserve answered {reply}")));
                };
                Ok(Some((id, self.body(len).await?)))
            }
            (Some("TIMED_OUT" | "DEADLINE_SOON"), _, _) => Ok(None),
            _ => Err(broker(format!("beanstalk: reserve answered {reply}"))),
        }
    }

    async fn stats_tube(&mut self, tube: &str) -> Result<HashMap<String, String>, DriverError> {
        let reply = self.send(&format!("stats-tube {tube}"), None).await?;
        if reply == "NOT_FOUND" {
            return Ok(HashMap::new());
        }
        let len = reply
            .strip_prefix("OK ")
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| broker(format!("beanstalk: stats-tube answered {reply}")))?;
        let body = self.body(len).await?;
        Ok(String::from_utf8_lossy(&body)
            .lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect())
    }
}

/// What rr puts into the tube.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Item {
    job: String,
    id: String,
    payload: String,
    #[serde(default)]
    headers: Option<Headers>,
    #[serde(default)]
    options: ItemOptions,
}

#[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
struct ItemOptions {
    priority: i64,
    pipeline: String,
    delay: i64,
    auto_ack: bool,
}

/// A settle for the consumer connection to send, tagged with the
/// connection generation that reserved the job: beanstalkd job ids are per
/// server, so after a re-dial (maybe to a restarted, empty beanstalkd) an
/// old id would name someone else's job.
enum Command {
    Delete { id: u64, generation: u64 },
    Bury { id: u64, generation: u64 },
}

impl Command {
    fn generation(&self) -> u64 {
        match self {
            Command::Delete { generation, .. } | Command::Bury { generation, .. } => *generation,
        }
    }
}

struct Settings {
    addr: String,
    timeout: Duration,
    ttr: u64,
    tube: String,
    tube_priority: u32,
    reserve_secs: u64,
    consume_all: bool,
}

struct Inner {
    name: String,
    priority: i64,
    settings: Settings,
    queue: Arc<JobQueue>,
    /// Producer connection (put, stats-tube).
    producer: tokio::sync::Mutex<Option<Conn>>,
    commands: mpsc::UnboundedSender<Command>,
    /// Run, pause and stop, as the listener sees them.
    switch: Switch,
    in_flight: Arc<Semaphore>,
    /// Each reserving connection's number; ids of older ones are void.
    generation: AtomicU64,
}

impl Inner {
    async fn produce<T>(
        &self,
        call: impl for<'c> FnOnce(
            &'c mut Conn,
        ) -> std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<T, DriverError>> + Send + 'c>,
        >,
    ) -> Result<T, DriverError> {
        let mut producer = self.producer.lock().await;
        if producer.is_none() {
            let mut conn = Conn::connect(&self.settings.addr, self.settings.timeout).await?;
            conn.expect(&format!("use {}", self.settings.tube), "USING")
                .await?;
            *producer = Some(conn);
        }
        let Some(conn) = producer.as_mut() else {
            return Err(broker("beanstalk: no connection"));
        };
        let result = tokio::time::timeout(self.settings.timeout, call(conn))
            .await
            .unwrap_or_else(|_| Err(broker("beanstalk: command timeout")));
        if result.is_err() {
            // A failed command may leave the stream mid-reply: re-dial next time.
            *producer = None;
        }
        result
    }

    async fn put(&self, job: &Job) -> Result<(), DriverError> {
        let payload = String::from_utf8(job.payload.to_vec())
            .map_err(|_| broker("beanstalk: the payload must be UTF-8 text"))?;
        let item = Item {
            job: job.name.clone(),
            id: job.id.clone(),
            payload,
            headers: (!job.headers.is_empty()).then(|| job.headers.clone()),
            options: ItemOptions {
                priority: job.priority,
                pipeline: job.pipeline.clone(),
                delay: job.delay,
                auto_ack: job.auto_ack,
            },
        };
        let body = serde_json::to_vec(&item).map_err(|e| broker(e.to_string()))?;
        let (priority, delay, ttr) = (
            self.settings.tube_priority,
            job.delay.max(0).unsigned_abs(),
            self.settings.ttr,
        );
        self.produce(move |conn| {
            Box::pin(async move { conn.put(priority, delay, ttr, &body).await })
        })
        .await
        .map(drop)
    }

    fn decode(&self, id: u64, body: &[u8], generation: u64) -> Option<Job> {
        match serde_json::from_slice::<Item>(body) {
            Ok(item) => Some(Job {
                id: item.id,
                name: item.job,
                payload: Bytes::from(item.payload),
                headers: item.headers.unwrap_or_default(),
                pipeline: self.name.clone(),
                priority: if item.options.priority == 0 {
                    self.priority
                } else {
                    item.options.priority
                },
                delay: 0,
                auto_ack: item.options.auto_ack,
            }),
            Err(_) if self.settings.consume_all => Some(Job {
                id: format!("beanstalk-{id}"),
                name: DEDUCED.to_owned(),
                payload: Bytes::copy_from_slice(body),
                headers: Headers::new(),
                pipeline: self.name.clone(),
                priority: self.priority,
                delay: 0,
                auto_ack: false,
            }),
            Err(err) => {
                tracing::error!(target: "jobs", pipeline = %self.name, beanstalk_id = id, error = %err, "beanstalk message is not an rr job (set consume_all to take it); it is buried");
                let _ = self.commands.send(Command::Bury { id, generation });
                None
            }
        }
    }

    async fn listen(self: Arc<Self>, mut commands: mpsc::UnboundedReceiver<Command>) {
        let mut failed = false;
        let mut backoff = Backoff::new();
        'dial: loop {
            if self.switch.is_stopped() {
                return;
            }
            let mut conn = match self.dial_consumer().await {
                Ok(conn) => {
                    backoff.reset();
                    if std::mem::take(&mut failed) {
                        tracing::info!(target: "jobs", pipeline = %self.name, "beanstalk consumer connected again");
                    }
                    conn
                }
                Err(err) => {
                    failed = true;
                    let wait = backoff.next_wait();
                    tracing::error!(target: "jobs", pipeline = %self.name, error = %err, retry_in = ?wait, "beanstalk consumer cannot connect; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = self.switch.changed() => {}
                    }
                    continue;
                }
            };
            let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
            let mut carried: Option<Command> = None;
            loop {
                // Settling commands and the next reserve go out in one
                // write: one round trip per job under load.
                let mut lines: Vec<String> = Vec::new();
                for command in carried
                    .take()
                    .into_iter()
                    .chain(std::iter::from_fn(|| commands.try_recv().ok()))
                {
                    if command.generation() == generation {
                        lines.push(line(command));
                    } else {
                        // The reservation died with its connection; beanstalkd
                        // has released the job already.
                        tracing::debug!(target: "jobs", pipeline = %self.name, command = %line(command), "dropping a settle for a reservation of a closed connection");
                    }
                }
                let stopped = self.switch.is_stopped();
                let permit = (!stopped && self.switch.is_consuming())
                    .then(|| Arc::clone(&self.in_flight).try_acquire_owned().ok())
                    .flatten();
                if lines.is_empty() && permit.is_none() {
                    if stopped {
                        return;
                    }
                    tokio::select! {
                        command = commands.recv() => {
                            let Some(command) = command else { return };
                            carried = Some(command);
                        }
                        () = self.switch.changed() => {}
                    }
                    continue;
                }
                let mut request = String::new();
                for l in &lines {
                    request.push_str(l);
                    request.push_str("\r\n");
                }
                if permit.is_some() {
                    request.push_str(&format!(
                        "reserve-with-timeout {}\r\n",
                        self.settings.reserve_secs
                    ));
                }
                let result = self
                    .exchange(&mut conn, &request, &lines, permit, generation)
                    .await;
                match result {
                    Ok(true) => {}
                    Ok(false) => return,
                    Err(err) => {
                        tracing::warn!(target: "jobs", pipeline = %self.name, error = %err, "beanstalk connection failed; re-dialling");
                        failed = true;
                        continue 'dial;
                    }
                }
            }
        }
    }

    /// Writes `request` (the `lines` and maybe a reserve), reads the
    /// answers and hands a reserved job on. `Ok(false)`: the queue closed.
    async fn exchange(
        self: &Arc<Self>,
        conn: &mut Conn,
        request: &str,
        lines: &[String],
        permit: Option<OwnedSemaphorePermit>,
        generation: u64,
    ) -> Result<bool, DriverError> {
        conn.write(request.as_bytes()).await?;
        for sent in lines {
            let reply = conn.line().await?;
            if reply != "DELETED" && reply != "BURIED" {
                // NOT_FOUND: the reservation expired (TTR) or was released.
                tracing::warn!(target: "jobs", command = %sent, reply = %reply, "beanstalk did not settle the job");
            }
        }
        let Some(permit) = permit else {
            return Ok(true);
        };
        let reply = conn.line().await?;
        let Some((id, body)) = conn.reserved(&reply).await? else {
            return Ok(true);
        };
        if !self.switch.is_consuming() || self.switch.is_stopped() {
            // Paused while the reserve was pending: hand it back.
            let release = format!("release {id} {} 0", self.settings.tube_priority);
            conn.expect(&release, "RELEASED").await?;
            return Ok(true);
        }
        let Some(job) = self.decode(id, &body, generation) else {
            return Ok(true);
        };
        let ticket = Ticket {
            inner: Arc::clone(self),
            id,
            generation,
            permit: Mutex::new(Some(permit)),
        };
        let delivery = Delivery {
            job,
            driver: NAME,
            queue: Some(self.settings.tube.clone()),
            ack: Arc::new(ticket),
        };
        Ok(self.queue.push(delivery).await.is_ok())
    }

    async fn dial_consumer(&self) -> Result<Conn, DriverError> {
        let mut conn = Conn::connect(&self.settings.addr, self.settings.timeout).await?;
        conn.expect(&format!("watch {}", self.settings.tube), "WATCHING")
            .await?;
        if self.settings.tube != "default" {
            conn.expect("ignore default", "WATCHING").await?;
        }
        Ok(conn)
    }
}

fn line(command: Command) -> String {
    match command {
        Command::Delete { id, .. } => format!("delete {id}"),
        Command::Bury { id, .. } => format!("bury {id} 0"),
    }
}

/// A reserved job's handle.
struct Ticket {
    inner: Arc<Inner>,
    id: u64,
    generation: u64,
    permit: Mutex<Option<OwnedSemaphorePermit>>,
}

impl Ticket {
    fn delete(&self) -> Result<(), DriverError> {
        self.inner.switch.check_open()?;
        if self.inner.generation.load(Ordering::Acquire) == self.generation {
            let _ = self.inner.commands.send(Command::Delete {
                id: self.id,
                generation: self.generation,
            });
            self.inner.switch.poke();
        }
        drop(self.permit.lock().unwrap_or_else(|p| p.into_inner()).take());
        Ok(())
    }
}

#[async_trait]
impl Acknowledger for Ticket {
    async fn ack(&self, _job: &Job) -> Result<(), DriverError> {
        self.delete()
    }

    async fn nack(&self, job: &Job, requeue: bool, delay: i64) -> Result<(), DriverError> {
        if requeue {
            let mut copy = job.clone();
            copy.delay = delay.max(0);
            self.inner.put(&copy).await?;
        }
        self.delete()
    }

    async fn requeue(&self, mut job: Job, headers: Headers, delay: i64) -> Result<(), DriverError> {
        job.headers.extend(headers);
        job.delay = delay.max(0);
        self.inner.put(&job).await?;
        self.delete()
    }

    fn is_stopped(&self) -> bool {
        self.inner.switch.is_stopped()
    }
}

/// A `beanstalk` pipeline.
pub struct BeanstalkDriver {
    inner: Arc<Inner>,
    listener: Background,
}

impl BeanstalkDriver {
    /// A paused pipeline from `spec` (no connection yet).
    pub fn new(spec: PipelineSpec) -> Result<Arc<BeanstalkDriver>, DriverError> {
        if spec.global.is_empty() {
            return Err(broker(
                "no global beanstalk configuration, global configuration should contain beanstalk addrs and timeout",
            ));
        }
        let global = PipelineSpec {
            name: "beanstalk (global section)".to_owned(),
            options: spec.global.clone(),
            global: serde_json::Map::new(),
            queue: Arc::clone(&spec.queue),
        };
        let addr = global.string("addr", DEFAULT_ADDR)?;
        let addr = addr
            .strip_prefix("tcp://")
            .ok_or_else(|| {
                broker(format!(
                    "invalid socket DSN (tcp://127.0.0.1:11300), provided: {addr}"
                ))
            })?
            .to_owned();
        let timeout = global.seconds("timeout", 30)?;
        let tube_priority = spec.int("tube_priority", 0)?;
        let tube_priority = u32::try_from(tube_priority).map_err(|_| DriverError::Option {
            pipeline: spec.name.clone(),
            key: "tube_priority".into(),
            message: format!("must be between 0 and 4294967295, got {tube_priority}"),
        })?;
        let prefetch = usize::try_from(spec.int("prefetch", 10)?.max(1)).unwrap_or(10);
        let settings = Settings {
            addr,
            timeout: Duration::from_secs(timeout),
            ttr: timeout,
            tube: spec.string("tube", "default")?,
            tube_priority,
            reserve_secs: spec.seconds("reserve_timeout", 1)?,
            consume_all: spec.bool("consume_all", false)?,
        };
        let (commands, receiver) = mpsc::unbounded_channel();
        let inner = Arc::new(Inner {
            name: spec.name.clone(),
            priority: spec.int("priority", 10)?,
            settings,
            queue: spec.queue,
            producer: tokio::sync::Mutex::new(None),
            commands,
            switch: Switch::default(),
            in_flight: Arc::new(Semaphore::new(prefetch)),
            generation: AtomicU64::new(0),
        });
        let listener = tokio::spawn(Arc::clone(&inner).listen(receiver));
        Ok(Arc::new(BeanstalkDriver {
            inner,
            listener: Background::new(listener),
        }))
    }
}

#[async_trait]
impl Driver for BeanstalkDriver {
    fn kind(&self) -> &'static str {
        NAME
    }

    fn priority(&self) -> i64 {
        self.inner.priority
    }

    async fn push(&self, job: Job) -> Result<(), DriverError> {
        self.inner.switch.check_open()?;
        self.inner.put(&job).await
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
        // Pending deletes are sent first; a reserve in progress ends within
        // reserve_timeout.
        let bound = Duration::from_secs(self.inner.settings.reserve_secs + 1);
        self.listener.finish(bound).await;
        Ok(())
    }

    async fn state(&self) -> Result<Stat, DriverError> {
        let tube = self.inner.settings.tube.clone();
        let stats = self
            .inner
            .produce(move |conn| Box::pin(async move { conn.stats_tube(&tube).await }))
            .await?;
        let number = |key: &str| stats.get(key).and_then(|v| v.parse().ok()).unwrap_or(0);
        Ok(Stat {
            pipeline: self.inner.name.clone(),
            driver: NAME.to_owned(),
            queue: self.inner.settings.tube.clone(),
            active: number("current-jobs-ready"),
            delayed: number("current-jobs-delayed"),
            reserved: number("current-jobs-reserved"),
            ready: self.inner.switch.is_ready(),
            priority: self.inner.priority.max(0).unsigned_abs(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_round_trip_with_roadrunners_field_names() {
        let item = Item {
            job: "App\\Mail".into(),
            id: "1".into(),
            payload: "{}".into(),
            headers: Some([("a".to_owned(), vec!["b".to_owned()])].into()),
            options: ItemOptions {
                priority: 3,
                pipeline: "p".into(),
                delay: 5,
                auto_ack: false,
            },
        };
        let json = serde_json::to_string(&item).expect("json");
        assert_eq!(
            json,
            r#"{"job":"App\\Mail","id":"1","payload":"{}","headers":{"a":["b"]},"options":{"priority":3,"pipeline":"p","delay":5,"auto_ack":false}}"#
        );
        assert_eq!(serde_json::from_str::<Item>(&json).expect("back"), item);
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
        let err = BeanstalkDriver::new(spec(serde_json::json!({}), serde_json::json!({})))
            .err()
            .expect("no global");
        assert!(err
            .to_string()
            .contains("no global beanstalk configuration"));
        let err = BeanstalkDriver::new(spec(
            serde_json::json!({"addr": "tcp://127.0.0.1:1"}),
            serde_json::json!({"tube_priority": -1}),
        ))
        .err()
        .expect("bad");
        assert!(err.to_string().contains("`tube_priority`"), "{err}");
        let err = BeanstalkDriver::new(spec(
            serde_json::json!({"addr": "127.0.0.1:1"}),
            serde_json::json!({}),
        ))
        .err()
        .expect("bad dsn");
        assert!(err.to_string().contains("invalid socket DSN"), "{err}");
        let ok = BeanstalkDriver::new(spec(
            serde_json::json!({"addr": "tcp://127.0.0.1:1", "timeout": "2s"}),
            serde_json::json!({"reserve_timeout": "500ms", "tube": "t"}),
        ))
        .expect("valid");
        assert_eq!(ok.inner.settings.reserve_secs, 1);
        assert_eq!(ok.inner.settings.ttr, 2);
        ok.stop().await.expect("stop");
    }
}
