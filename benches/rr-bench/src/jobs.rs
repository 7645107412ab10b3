//! Jobs section: jobs per second end to end through the real `rr` binary
//! (push over RPC `jobs.PushBatch`, until the last "job was processed
//! successfully" log line), on the memory driver and on the amqp driver
//! with a RabbitMQ node the bench starts itself; the yardstick for amqp is
//! the raw broker client alone (lapin publishing with confirms, consuming
//! and acking the same number of messages, no rr, no PHP).

use std::cell::Cell;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use rr_jobs::proto::{Job, Options, PushBatchRequest};
use rr_rpc::RpcClient;

use crate::model::JobsCell;
use crate::server::{free_port, php_command, Server, RR_STARTED, START_TIMEOUT};

/// goridge's protobuf codec flag (what the PHP SDK sends for jobs calls).
const CODEC_PROTO: u8 = 0x80;
/// Jobs per `jobs.PushBatch` call.
const BATCH: usize = 1000;
/// Bound for one run to finish, on 2 busy cores.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);
/// Bound for RabbitMQ to boot (an Erlang VM: seconds, more when loaded).
const RABBIT_START: Duration = Duration::from_secs(60);
/// Unacked deliveries at once, for rr's amqp pipeline and the raw consumer alike.
const PREFETCH: u16 = 100;

/// Runs the section: `jobs` jobs through rr on memory, then on amqp and
/// through lapin alone. Without rabbitmq-server, the amqp rows are left out.
pub fn run(rr: &Path, repo: &Path, jobs: usize, workers: usize) -> Result<Vec<JobsCell>> {
    let worker = std::path::absolute(repo.join("benches/jobs/worker.php"))
        .context("benches/jobs/worker.php")?;
    let mut cells = Vec::new();
    let memory = "    bench:\n      driver: memory\n      config:\n        prefetch: 10000\n";
    cells.push(through_rr(
        rr, &worker, "memory", memory, "", jobs, workers,
    )?);
    if !Path::new(RABBIT_SERVER).is_file() {
        eprintln!("jobs: {RABBIT_SERVER} not found, no amqp rows");
        return Ok(cells);
    }
    let dir = tempfile::Builder::new()
        .prefix("rr-bench-rabbit-")
        .tempdir()
        .context("create a temp dir")?;
    let rabbit = Rabbit::start(dir.path())?;
    let raw = raw_amqp(&rabbit.url(), jobs).context("lapin alone")?;
    let amqp = format!(
        "    bench:\n      driver: amqp\n      config:\n        queue: rr-bench\n        routing_key: rr-bench\n        exchange: amqp.default\n        exchange_type: direct\n        prefetch: {PREFETCH}\n"
    );
    let global = format!("amqp:\n  addr: {}\n", rabbit.url());
    let through = through_rr(rr, &worker, "amqp", &amqp, &global, jobs, workers)?;
    cells.push(through);
    cells.push(raw);
    Ok(cells)
}

/// Pushes `jobs` jobs into rr's `bench` pipeline and times them until the
/// last is acked.
fn through_rr(
    rr: &Path,
    worker: &Path,
    driver: &str,
    pipeline: &str,
    global: &str,
    jobs: usize,
    workers: usize,
) -> Result<JobsCell> {
    let port = free_port()?;
    let yaml = format!(
        "version: '3'\n\
         server:\n  command: {command}\n\
         logs:\n  mode: production\n  level: debug\n\
         rpc:\n  listen: tcp://127.0.0.1:{port}\n\
         jobs:\n  num_pollers: {workers}\n  pool:\n    num_workers: {workers}\n  consume: [bench]\n  pipelines:\n{pipeline}{global}",
        command = php_command(worker),
    );
    let mut server = Server::spawn("rr", rr, &yaml)?;
    server.wait_for("start-up", START_TIMEOUT, |l| l.msg() == RR_STARTED)?;
    // Pushing runs on its own thread, as a producer would, so consuming
    // overlaps it; the clock runs from the first push to the last ack.
    let began = Instant::now();
    let producer = std::thread::spawn(move || push(port, jobs));
    let acked = Cell::new(0usize);
    let waited = server.wait_for("every job acked", RUN_TIMEOUT, |l| {
        if l.msg() == "job was processed successfully" {
            acked.set(acked.get() + 1);
        }
        acked.get() >= jobs
    });
    let elapsed = began.elapsed();
    producer
        .join()
        .map_err(|_| anyhow!("the producer thread panicked"))??;
    waited.with_context(|| format!("{} of {jobs} acked", acked.get()))?;
    server.stop()?;
    let cell = JobsCell::new(driver, "rr", jobs, elapsed);
    eprintln!(
        "jobs: {driver} through rr: {jobs} in {:.2} s, {:.0} jobs/s",
        cell.seconds, cell.jobs_per_sec
    );
    Ok(cell)
}

/// `jobs.PushBatch` of `jobs` jobs in batches of [`BATCH`].
fn push(port: u16, jobs: usize) -> Result<()> {
    let mut client =
        RpcClient::connect(&format!("tcp://127.0.0.1:{port}"), Duration::from_secs(30))
            .map_err(|e| anyhow!("connect to rr's RPC: {e}"))?;
    for start in (0..jobs).step_by(BATCH) {
        let batch = (start..(start + BATCH).min(jobs))
            .map(|i| Job {
                job: "bench".into(),
                id: format!("b{i}"),
                payload: b"{}".to_vec(),
                headers: Default::default(),
                options: Some(Options {
                    pipeline: "bench".into(),
                    ..Options::default()
                }),
            })
            .collect();
        client
            .call_raw(
                "jobs.PushBatch",
                CODEC_PROTO,
                &PushBatchRequest { jobs: batch }.encode(),
            )
            .map_err(|e| anyhow!("PushBatch from job {start}: {e}"))?;
    }
    Ok(())
}

/// The yardstick: lapin alone publishes `jobs` messages with publisher
/// confirms (as rr's amqp driver publishes) while a consumer with the same
/// prefetch acks each; timed from the first publish to the last ack.
fn raw_amqp(url: &str, jobs: usize) -> Result<JobsCell> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("tokio runtime")?;
    let elapsed = runtime.block_on(async {
        let url = format!("{url}%2f");
        let connection = Connection::connect(&url, ConnectionProperties::default()).await?;
        let publisher = connection.create_channel().await?;
        publisher
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        publisher
            .queue_declare(
                "raw-bench".into(),
                QueueDeclareOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let consumer_channel = connection.create_channel().await?;
        consumer_channel
            .basic_qos(PREFETCH, BasicQosOptions::default())
            .await?;
        let mut consumer = consumer_channel
            .basic_consume(
                "raw-bench".into(),
                "raw-bench".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let began = Instant::now();
        let publishing = tokio::spawn(async move {
            let mut confirms = Vec::with_capacity(jobs);
            for _ in 0..jobs {
                confirms.push(
                    publisher
                        .basic_publish(
                            "".into(),
                            "raw-bench".into(),
                            BasicPublishOptions::default(),
                            b"{}",
                            BasicProperties::default(),
                        )
                        .await?,
                );
            }
            for confirm in confirms {
                confirm.await?;
            }
            Ok::<_, lapin::Error>(())
        });
        let mut acked = 0;
        while acked < jobs {
            let delivery = tokio::time::timeout(RUN_TIMEOUT, consumer.next())
                .await
                .map_err(|_| anyhow!("no delivery within {RUN_TIMEOUT:?} ({acked} acked)"))?
                .ok_or_else(|| anyhow!("the consumer ended after {acked} acks"))??;
            delivery.ack(BasicAckOptions::default()).await?;
            acked += 1;
        }
        let elapsed = began.elapsed();
        publishing.await??;
        let _ = connection.close(200, "done".into()).await;
        Ok::<_, anyhow::Error>(elapsed)
    })?;
    let cell = JobsCell::new("amqp", "lapin alone", jobs, elapsed);
    eprintln!(
        "jobs: amqp, lapin alone: {jobs} in {:.2} s, {:.0} msgs/s",
        cell.seconds, cell.jobs_per_sec
    );
    Ok(cell)
}

/// The script that runs a node as the calling user (`/usr/sbin/rabbitmq-server`
/// switches to the rabbitmq user).
const RABBIT_SERVER: &str = "/usr/lib/rabbitmq/bin/rabbitmq-server";

/// A RabbitMQ node of the bench's own: database, logs, cookie and ports
/// (AMQP, distribution, epmd) private to it, no plugins; killed with its
/// epmd on drop.
struct Rabbit {
    child: Child,
    port: u16,
    epmd_port: u16,
}

impl Rabbit {
    fn start(dir: &Path) -> Result<Rabbit> {
        use std::os::unix::process::CommandExt;
        let (port, dist, epmd_port) = (free_port()?, free_port()?, free_port()?);
        std::fs::write(dir.join("enabled_plugins"), "[].\n").context("enabled_plugins")?;
        let file = |name: &str| -> PathBuf { dir.join(name) };
        let mut child = Command::new(RABBIT_SERVER)
            .env("HOME", dir)
            .env("RABBITMQ_MNESIA_BASE", file("mnesia"))
            .env("RABBITMQ_LOG_BASE", file("log"))
            .env("RABBITMQ_LOGS", "-")
            .env("RABBITMQ_PID_FILE", file("rabbit.pid"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", file("enabled_plugins"))
            .env("RABBITMQ_CONFIG_FILE", file("rabbitmq"))
            .env("RABBITMQ_ADVANCED_CONFIG_FILE", file("advanced.config"))
            .env("RABBITMQ_NODENAME", format!("rr-bench-{port}@localhost"))
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", port.to_string())
            .env("RABBITMQ_DIST_PORT", dist.to_string())
            .env("ERL_EPMD_PORT", epmd_port.to_string())
            // Its own group: the script runs the Erlang VM as a child, and
            // the kill on drop must reach both.
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("run {RABBIT_SERVER}"))?;
        let (ready_tx, ready) = mpsc::channel();
        let outputs: [Box<dyn Read + Send>; 2] = [
            Box::new(
                child
                    .stdout
                    .take()
                    .ok_or_else(|| anyhow!("no stdout pipe"))?,
            ),
            Box::new(
                child
                    .stderr
                    .take()
                    .ok_or_else(|| anyhow!("no stderr pipe"))?,
            ),
        ];
        for output in outputs {
            let ready_tx = ready_tx.clone();
            // Keeps reading after the ready line, so the node never blocks
            // on a full pipe.
            std::thread::spawn(move || {
                for line in BufReader::new(output).lines().map_while(Result::ok) {
                    if line.contains("Server startup complete") {
                        let _ = ready_tx.send(());
                    }
                }
            });
        }
        let rabbit = Rabbit {
            child,
            port,
            epmd_port,
        };
        let began = Instant::now();
        if ready.recv_timeout(RABBIT_START).is_err() {
            bail!("RabbitMQ did not start within {RABBIT_START:?}");
        }
        eprintln!(
            "jobs: RabbitMQ up in {:.1} s on port {port}",
            began.elapsed().as_secs_f64()
        );
        Ok(rabbit)
    }

    fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/", self.port)
    }
}

impl Drop for Rabbit {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.child.wait();
        // epmd daemonised itself out of the node's group and refuses to die
        // while it still lists the node: ask until it agrees (bounded).
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            let Ok(output) = Command::new("epmd")
                .arg("-kill")
                .env("ERL_EPMD_PORT", self.epmd_port.to_string())
                .output()
            else {
                return;
            };
            let said = String::from_utf8_lossy(&output.stdout).into_owned()
                + &String::from_utf8_lossy(&output.stderr);
            if !said.contains("not allowed") {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
