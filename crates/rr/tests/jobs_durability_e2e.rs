//! End-to-end durability of the jobs plugin on real brokers (beanstalkd,
//! RabbitMQ, NATS JetStream): 10,000 jobs pushed while PHP workers are
//! SIGKILLed at random and rr itself is sent SIGTERM once and started
//! again on the same queue. Afterwards every job was processed
//! successfully or is still in the broker: nothing is lost. While the
//! second rr drains the backlog, the broker itself is killed and started
//! again on its store: rr reconnects (with backoff) and goes on. Delivery
//! is at-least-once, so duplicates are counted and printed, not failed on.

use crate::support;

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use rr_jobs::proto::{Job, Options, PushBatchRequest};
use rr_rpc::RpcClient;
use support::jobs::{yaml, CODEC_PROTO};
use support::service::{RabbitMq, Service};
use support::{free_tcp_port, ok, Line, RrProcess, START};

const JOBS: usize = 10_000;
/// Jobs per `jobs.PushBatch` call: large enough to push fast, small
/// enough that one call stays well under the RPC timeout while beanstalkd
/// takes a `put` per job.
const BATCH: usize = 500;
const WORKERS: u32 = 4;
const TUBE: &str = "rr-durability";
/// Worker kills in the first and in the second rr. Each kill can cost the
/// job the worker held one failure of its budget (`MAX_WORKER_FAILURES`),
/// so a handful spread over 10,000 jobs never exhausts one job's budget.
const KILLS_FIRST: usize = 8;
const KILLS_SECOND: usize = 4;
/// A kill every this many successful jobs: the kills spread over the run.
const KILL_EVERY: usize = 400;
/// The first rr gets SIGTERM once it has processed this many jobs.
const TERM_AFTER: usize = 4_000;
/// The second rr has processed this many jobs when the broker restarts.
const RESTART_AFTER: usize = 1_000;
/// Bound for each rr's share of the run on a loaded 2-core machine.
const RUN: Duration = Duration::from_secs(40);

/// What the test saw across both rr processes.
#[derive(Default)]
struct Tally {
    /// Successful runs per job id.
    ok: HashMap<String, u32>,
    /// Jobs requeued because their worker died before answering.
    requeued_after_kill: usize,
    /// Jobs nacked for good (worker-failure budget spent, requeue failed).
    given_up: Vec<String>,
}

impl Tally {
    /// Counts `line` if it settles a job; true when it was a success.
    fn see(&mut self, line: &Line) -> bool {
        if line.is("jobs", "job was processed successfully") {
            if let Some(id) = line.field_str("id") {
                *self.ok.entry(id).or_default() += 1;
                return true;
            }
        } else if line.is(
            "jobs",
            "the job never got an answer from a worker; requeued",
        ) {
            self.requeued_after_kill += 1;
        } else if line.is("jobs", "job failed, nacked") || line.is("jobs", "job requeue failed") {
            self.given_up.push(line.text.clone());
        }
        false
    }

    /// Ids processed successfully more than once, and the extra runs.
    fn duplicates(&self) -> (usize, u32) {
        let twice = self.ok.values().filter(|n| **n > 1).count();
        let extra = self.ok.values().map(|n| n - 1).sum();
        (twice, extra)
    }
}

/// A tiny xorshift generator: which worker dies is random per run (the
/// seed is printed to replay it), without a dependency for it.
struct Random(u64);

impl Random {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

fn job_id(i: usize) -> String {
    format!("d{i}")
}

/// Pushes every job through `jobs.PushBatch`, each `work_ms` of work.
fn push_all(port: u16, work_ms: &'static [u8]) {
    let mut client =
        RpcClient::connect(&format!("tcp://127.0.0.1:{port}"), Duration::from_secs(30))
            .expect("connect to rr's RPC");
    for start in (0..JOBS).step_by(BATCH) {
        let jobs = (start..(start + BATCH).min(JOBS))
            .map(|i| Job {
                job: "slow".into(),
                id: job_id(i),
                payload: work_ms.to_vec(),
                headers: Default::default(),
                options: Some(Options {
                    pipeline: "durable".into(),
                    ..Options::default()
                }),
            })
            .collect();
        client
            .call_raw(
                "jobs.PushBatch",
                CODEC_PROTO,
                &PushBatchRequest { jobs }.encode(),
            )
            .unwrap_or_else(|e| panic!("PushBatch from {start}: {e}"));
    }
}

/// Pids of rr's PHP workers: its children running `jobs_worker.php`.
fn workers_of(rr: Pid) -> Vec<Pid> {
    let parent = rr.as_raw().to_string();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // `pid (comm) state ppid ...`: comm may hold spaces, so split after ')'.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1));
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            ppid == Some(parent.as_str())
                && String::from_utf8_lossy(&cmdline).contains("jobs_worker.php")
        })
        .map(Pid::from_raw)
        .collect()
}

/// SIGKILLs one of rr's workers at random; false when none was there (all
/// being replaced at that moment).
fn kill_a_worker(rr: &RrProcess, random: &mut Random) -> bool {
    let workers = workers_of(rr.pid());
    if workers.is_empty() {
        return false;
    }
    kill(workers[random.below(workers.len())], Signal::SIGKILL).is_ok()
}

/// Follows `rr`'s log from `from`, tallying, killing a worker every
/// [`KILL_EVERY`] successes up to `kills` times, until `done` says so.
/// Returns where it stopped and how many workers it killed.
fn consume(
    rr: &mut RrProcess,
    from: usize,
    tally: &mut Tally,
    random: &mut Random,
    kills: usize,
    done: impl Fn(&Tally, usize) -> bool,
) -> Result<(usize, usize), String> {
    let mut successes = 0;
    let mut killed = 0;
    let mut pending_kill = false;
    // The visitor cannot borrow rr (follow holds it), so kills are decided
    // in it and carried out between follow calls.
    let mut at = from;
    let deadline = Instant::now() + RUN;
    loop {
        if pending_kill {
            if kill_a_worker(rr, random) {
                killed += 1;
            }
            pending_kill = false;
        }
        if done(tally, successes) {
            return Ok((at, killed));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        at = rr.follow(at, left, |line| {
            if tally.see(line) {
                successes += 1;
                if killed < kills && successes % KILL_EVERY == 0 {
                    pending_kill = true;
                    return true;
                }
            }
            done(tally, successes)
        })?;
    }
}

/// The ids of the jobs left in `tube` (ready, delayed or buried), deleting
/// them: asked once rr is stopped, so nothing is reserved.
fn drain_tube(port: u16, tube: &str) -> Vec<String> {
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to beanstalkd");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("read timeout");
    let mut writer = stream.try_clone().expect("clone the stream");
    let mut reader = BufReader::new(stream);
    let mut ask = |reader: &mut BufReader<TcpStream>, command: &str| -> String {
        writer
            .write_all(format!("{command}\r\n").as_bytes())
            .expect("write to beanstalkd");
        let mut line = String::new();
        reader.read_line(&mut line).expect("read from beanstalkd");
        line.trim_end().to_owned()
    };
    assert!(ask(&mut reader, &format!("use {tube}")).starts_with("USING"));
    let mut ids = Vec::new();
    for peek in ["peek-ready", "peek-delayed", "peek-buried"] {
        loop {
            let reply = ask(&mut reader, peek);
            let Some(found) = reply.strip_prefix("FOUND ") else {
                assert_eq!(reply, "NOT_FOUND", "{peek}");
                break;
            };
            let mut parts = found.split(' ');
            let id = parts.next().expect("job id").to_owned();
            let size: usize = parts.next().and_then(|s| s.parse().ok()).expect("size");
            let mut body = vec![0; size + 2];
            reader.read_exact(&mut body).expect("job body");
            let item: serde_json::Value =
                serde_json::from_slice(&body[..size]).expect("rr puts JSON items");
            ids.push(item["id"].as_str().unwrap_or_default().to_owned());
            assert_eq!(ask(&mut reader, &format!("delete {id}")), "DELETED");
        }
    }
    ids
}

/// A broker the scenario runs on, with its store, so that it can be
/// killed and started again without losing what it held.
enum Broker {
    Beanstalk {
        broker: Option<Service>,
        port: u16,
        binlog: tempfile::TempDir,
    },
    Nats {
        broker: Option<Service>,
        port: u16,
        store: tempfile::TempDir,
    },
    Amqp {
        rabbit: RabbitMq,
        _files: tempfile::TempDir,
    },
}

impl Broker {
    /// beanstalkd with a binlog in a temp dir.
    fn beanstalkd() -> Broker {
        let binlog = support::temp_dir();
        let port = free_tcp_port();
        let broker = support::service::beanstalkd_persistent(port, binlog.path());
        Broker::Beanstalk {
            broker: Some(broker),
            port,
            binlog,
        }
    }

    /// A RabbitMQ node of the test's own.
    fn rabbitmq() -> Broker {
        let files = support::temp_dir();
        let rabbit = RabbitMq::start(files.path());
        Broker::Amqp {
            rabbit,
            _files: files,
        }
    }

    /// nats-server with JetStream, its store in a temp dir.
    fn nats() -> Broker {
        let store = support::temp_dir();
        let port = free_tcp_port();
        let broker = support::service::nats(port, store.path());
        Broker::Nats {
            broker: Some(broker),
            port,
            store,
        }
    }

    /// The `durable` pipeline and the driver's global section.
    fn config(&self) -> (String, String) {
        match self {
            Broker::Beanstalk { port, .. } => (
                format!("    durable:\n      driver: beanstalk\n      config:\n        tube: {TUBE}\n        reserve_timeout: 1s\n        prefetch: 20\n"),
                format!("beanstalk:\n  addr: tcp://127.0.0.1:{port}\n  timeout: 10s\n"),
            ),
            // ack_wait bounds how long the jobs prefetched by the first rr
            // wait before the broker hands them to the second.
            Broker::Nats { port, .. } => (
                "    durable:\n      driver: nats\n      config:\n        subject: rr.durable\n        stream: rr-durable\n        prefetch: 20\n        ack_wait: 5s\n".to_owned(),
                format!("nats:\n  addr: nats://127.0.0.1:{port}\n"),
            ),
            // A durable queue and exchange: they (and the persistent,
            // confirmed messages in them) outlive a broker restart.
            Broker::Amqp { rabbit, .. } => (
                "    durable:\n      driver: amqp\n      config:\n        queue: rr-durable\n        routing_key: rr-durable\n        prefetch: 20\n        durable: true\n        exchange_durable: true\n".to_owned(),
                format!("amqp:\n  addr: {}\n", rabbit.url()),
            ),
        }
    }

    /// What is left in the broker after the run, as text for the report,
    /// and the ids of the jobs still queued. Only beanstalkd is asked; on
    /// the others the second rr must run every job (the test fails if it
    /// does not), so nothing may be left.
    fn leftover(&self) -> (String, HashSet<String>) {
        match self {
            Broker::Beanstalk {
                broker: Some(broker),
                ..
            } => {
                let counts = tube_counts(broker, TUBE);
                (counts, drain_tube(broker.port, TUBE).into_iter().collect())
            }
            Broker::Beanstalk { broker: None, .. } => ("not running".to_owned(), HashSet::new()),
            Broker::Nats { .. } | Broker::Amqp { .. } => ("not counted".to_owned(), HashSet::new()),
        }
    }
}

impl Broker {
    /// Milliseconds of work per job: enough that consuming is slower than
    /// pushing, so the SIGTERM lands with thousands of jobs still queued
    /// (RabbitMQ and NATS take pushes faster than beanstalkd does).
    fn work_ms(&self) -> &'static [u8] {
        match self {
            Broker::Beanstalk { .. } => b"1",
            Broker::Nats { .. } | Broker::Amqp { .. } => b"4",
        }
    }

    /// Kills the broker as a crash would and starts it again on the same
    /// port and store.
    fn restart(&mut self) {
        match self {
            Broker::Beanstalk {
                broker,
                port,
                binlog,
            } => {
                drop(broker.take());
                *broker = Some(support::service::beanstalkd_persistent(
                    *port,
                    binlog.path(),
                ));
            }
            Broker::Nats {
                broker,
                port,
                store,
            } => {
                drop(broker.take());
                *broker = Some(support::service::nats(*port, store.path()));
            }
            Broker::Amqp { rabbit, .. } => rabbit.restart(),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Broker::Beanstalk { .. } => "beanstalkd",
            Broker::Nats { .. } => "NATS JetStream",
            Broker::Amqp { .. } => "RabbitMQ",
        }
    }
}

/// `current-jobs-*` counts of `tube` from beanstalkd's `stats-tube`.
fn tube_counts(broker: &Service, tube: &str) -> String {
    let stats = broker.exchange(
        &format!("stats-tube {tube}\r\n"),
        "pause-time-left|NOT_FOUND",
    );
    stats
        .lines()
        .filter(|l| l.starts_with("current-jobs-"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn start_rr(dir: &Path, broker: &Broker) -> (RrProcess, u16) {
    let state = dir.join("state");
    std::fs::create_dir_all(&state).expect("state dir");
    let port = free_tcp_port();
    let (pipeline, global) = broker.config();
    let mut config = yaml(port, &state, WORKERS, "durable", &pipeline);
    config.push_str(&global);
    let mut rr = RrProcess::start(dir, &config);
    ok(rr.wait_for(|l| l.is("jobs", "jobs started"), START));
    (rr, port)
}

/// Acceptance: 10,000 jobs pushed while workers are killed at random and
/// rr is sent SIGTERM and restarted once; afterwards every job was
/// acknowledged or is still in the broker. Duplicates are reported.
#[test]
fn no_job_is_lost_across_worker_kills_and_an_rr_restart() {
    require_php!();
    require_service!("beanstalkd");
    nothing_is_lost(Broker::beanstalkd());
}

/// The same on RabbitMQ: a durable queue, unacked deliveries of the
/// stopped rr handed out again when its connection closes.
#[test]
fn no_job_is_lost_on_rabbitmq() {
    require_php!();
    require_service!("rabbitmq-server");
    nothing_is_lost(Broker::rabbitmq());
}

/// The same on NATS JetStream.
#[test]
fn no_job_is_lost_on_nats_jetstream() {
    require_php!();
    require_service!("nats-server");
    nothing_is_lost(Broker::nats());
}

fn nothing_is_lost(mut broker: Broker) {
    let began = Instant::now();
    let dir = support::temp_dir();
    let seed = support::now_ms().unsigned_abs() | 1;
    let mut random = Random(seed);
    let mut tally = Tally::default();

    let (mut first, port) = start_rr(dir.path(), &broker);
    // Pushed from a thread, so the kills below land while jobs are both
    // pushed and consumed, in real time rather than on a backlog.
    let pushed = std::sync::Arc::new(std::sync::Mutex::new(None));
    let producer = {
        let pushed = std::sync::Arc::clone(&pushed);
        let work_ms = broker.work_ms();
        std::thread::spawn(move || {
            push_all(port, work_ms);
            *pushed.lock().expect("pushed") = Some(began.elapsed());
        })
    };
    // The SIGTERM waits for the last push: a batch cut off by it would
    // leave jobs whose push failed, which no broker promises to keep.
    let (at, killed_first) = ok(consume(
        &mut first,
        0,
        &mut tally,
        &mut random,
        KILLS_FIRST,
        |_, successes| successes >= TERM_AFTER && pushed.lock().expect("pushed").is_some(),
    ));
    producer.join().expect("the producer thread");
    let pushed_in = pushed.lock().expect("pushed").unwrap_or_default();

    // SIGTERM mid-run: rr stops consuming, settles what it can and exits;
    // what it had reserved goes back to the tube when its connection closes.
    first.signal(Signal::SIGTERM);
    let (status, _) = ok(first.wait_exit(Duration::from_secs(30)));
    // Whatever it settled while stopping counts too.
    let lines = first.lines().len();
    for line in &first.lines()[at..lines] {
        tally.see(line);
    }
    first.check(
        status.code() == Some(0),
        format!("rr exited with {status} after SIGTERM, expected 0"),
    );
    let after_first = tally.ok.len();
    // Which duplicates came from a kill inside one rr and which from the
    // restart (a job settled just before the SIGTERM whose delete never
    // reached beanstalkd runs again in the second rr).
    let (twice_in_first, _) = tally.duplicates();
    let ran_in_first: HashSet<String> = tally.ok.keys().cloned().collect();
    let stopped_at = began.elapsed();
    drop(first);

    let (mut second, _) = start_rr(dir.path(), &broker);
    let all_ran = |tally: &Tally, _: usize| tally.ok.len() >= JOBS;
    // Part of the backlog, then the broker dies and comes back: rr must
    // reconnect and drain the rest.
    let finished = consume(
        &mut second,
        0,
        &mut tally,
        &mut random,
        KILLS_SECOND,
        |tally, successes| successes >= RESTART_AFTER || all_ran(tally, successes),
    )
    .and_then(|(at, killed)| {
        let restarted_at = began.elapsed();
        broker.restart();
        println!("{}: broker restarted at {restarted_at:?}", broker.name());
        consume(&mut second, at, &mut tally, &mut random, 0, all_ran).map(|(at, _)| (at, killed))
    });
    let (at, killed_second) = match &finished {
        Ok((at, killed)) => (*at, *killed),
        Err(_) => (second.lines().len(), 0),
    };
    second.signal(Signal::SIGTERM);
    ok(second.wait_exit(Duration::from_secs(30)));
    // Copies still reserved when the last id ran (redeliveries) run while
    // rr stops: they are duplicates too.
    let lines = second.lines().len();
    for line in &second.lines()[at..lines] {
        tally.see(line);
    }
    drop(second);

    // What never ran must still be in the broker.
    let (left_counts, still_queued) = broker.leftover();
    let lost: Vec<String> = (0..JOBS)
        .map(job_id)
        .filter(|id| !tally.ok.contains_key(id) && !still_queued.contains(id))
        .collect();
    let (twice, extra) = tally.duplicates();
    let again_in_second = tally
        .ok
        .iter()
        .filter(|(id, n)| **n > 1 && ran_in_first.contains(*id))
        .count()
        - twice_in_first;
    println!(
        "jobs durability on {} (seed {seed}): {JOBS} pushed in {pushed_in:?}; {after_first} ran before the SIGTERM at {stopped_at:?}; \
         {} ran in all, {} still queued, {} lost; workers killed {killed_first}+{killed_second}, \
         {} jobs requeued after a kill; duplicates: {twice} jobs ran more than once ({extra} extra runs; {twice_in_first} within the first rr, {again_in_second} again after the rr restart, \
         {} in the second rr, mostly redelivered by the restarted broker); \
         left in the broker: {left_counts}; took {:?}",
        broker.name(),
        tally.ok.len(),
        still_queued.len(),
        lost.len(),
        tally.requeued_after_kill,
        twice.saturating_sub(twice_in_first + again_in_second),
        began.elapsed(),
    );
    assert!(
        lost.is_empty(),
        "{} jobs lost (neither processed nor in the tube), e.g. {:?}; given up: {:?}",
        lost.len(),
        &lost[..lost.len().min(10)],
        tally.given_up
    );
    assert!(
        tally.given_up.is_empty(),
        "jobs were dropped: {:?}",
        tally.given_up
    );
    assert!(killed_first > 0, "no worker was killed in the first rr");
    assert!(
        tally.requeued_after_kill > 0,
        "no kill hit a worker with a job: the test did not test that"
    );
    if let Err(e) = finished {
        panic!("the second rr did not run every job within {RUN:?}: {e}");
    }
}
