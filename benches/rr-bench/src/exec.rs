//! The worker round trip: our pool against the limit harness.
//!
//! The limit harness is the least a server can do: one OS thread per PHP
//! worker, blocking writes and reads of goridge frames on its pipes, a
//! prebuilt request, reused buffers, no pool, no runtime, no locks. Our pool
//! is measured the way rr runs it: on lanes (one single-threaded runtime per
//! core, as `rr serve` installs them), with as many concurrent callers as
//! workers, spread over the lanes the way a plugin spreads its work. Both
//! drive the same PHP echo loop for the same window, back to back, three times;
//! the better round of each side counts, which damps the noise of a shared
//! machine.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use rr_goridge::frame::{encode_header, flags, Header, HEADER_LEN, MAX_HEADER_LEN};
use rr_pool::{Lanes, Payload, Pool, PoolConfig, Relay, WorkerCommand};

use crate::model::{percentile, ExecCell, Throughput};

/// Rounds per side and cell; the best one counts.
const ROUNDS: usize = 3;

/// Measures every `(workers, payload bytes)` cell.
pub fn run(echo: &Path, cells: &[(usize, usize)], window: Duration) -> Result<Vec<ExecCell>> {
    let runtime = lanes()?;
    let mut results = Vec::with_capacity(cells.len());
    for &(workers, payload) in cells {
        let mut limit = Throughput::default();
        let mut pool = Throughput::default();
        for _ in 0..ROUNDS {
            let l = limit_cell(echo, workers, payload, window)
                .with_context(|| format!("limit harness, {workers} workers, {payload} B"))?;
            let p = runtime
                .block_on(pool_cell(echo, workers, payload, window))
                .with_context(|| format!("pool, {workers} workers, {payload} B"))?;
            if l.ops_per_sec > limit.ops_per_sec {
                limit = l;
            }
            if p.ops_per_sec > pool.ops_per_sec {
                pool = p;
            }
        }
        eprintln!(
            "exec {workers} workers {payload:>6} B: limit {:>8.0}/s  pool {:>8.0}/s  ratio {:.2}",
            limit.ops_per_sec,
            pool.ops_per_sec,
            pool.ops_per_sec / limit.ops_per_sec.max(1.0)
        );
        results.push(ExecCell {
            workers,
            payload,
            limit,
            pool,
        });
    }
    Ok(results)
}

/// The lanes rr itself would run on (one per core); lane 0 is driven here.
pub fn lanes() -> Result<tokio::runtime::Runtime> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let lanes = std::env::var("RR_LANES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cores);
    Ok(Lanes::install(lanes)?)
}

/// Latencies of all callers, warm-up excluded, turned into a [`Throughput`].
fn summarize(mut latencies_us: Vec<u64>, window: Duration) -> Throughput {
    Throughput {
        ops_per_sec: latencies_us.len() as f64 / window.as_secs_f64(),
        p50_us: percentile(&mut latencies_us, 50.0),
        p99_us: percentile(&mut latencies_us, 99.0),
        samples: latencies_us.len(),
    }
}

/// The warm-up before each measured window.
fn warm_up(window: Duration) -> Duration {
    window / 4
}

fn echo_command(echo: &Path) -> Command {
    let mut command = Command::new("php");
    command
        .arg(echo)
        .env("RR_RELAY", "pipes")
        .env("RR_MODE", "bench")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    command
}

/// One worker process driven with blocking IO.
struct BareWorker {
    child: Child,
    stdin: ChildStdin,
    stdout: ChildStdout,
    header: [u8; HEADER_LEN],
    options: [u8; 40],
    reply: Vec<u8>,
}

impl BareWorker {
    fn start(echo: &Path) -> Result<BareWorker> {
        let mut child = echo_command(echo).spawn().context("spawning php")?;
        let stdin = child.stdin.take().context("stdin")?;
        let stdout = child.stdout.take().context("stdout")?;
        let mut worker = BareWorker {
            child,
            stdin,
            stdout,
            header: [0; HEADER_LEN],
            options: [0; 40],
            reply: Vec::with_capacity(128 * 1024),
        };
        let pid = format!(r#"{{"pid":{}}}"#, std::process::id());
        let mut frame = Vec::new();
        push_frame(
            &mut frame,
            flags::CONTROL | flags::CODEC_JSON,
            &[],
            pid.as_bytes(),
        )?;
        worker.stdin.write_all(&frame)?;
        let reply_flags = worker.read_reply()?;
        if reply_flags & flags::CONTROL == 0 {
            bail!("the worker did not answer the handshake");
        }
        Ok(worker)
    }

    /// Reads one frame into `self.reply` and returns its flags.
    fn read_reply(&mut self) -> Result<u8> {
        self.stdout.read_exact(&mut self.header)?;
        let header = Header::parse(&self.header)?;
        self.stdout
            .read_exact(&mut self.options[..4 * header.option_count])?;
        self.reply.resize(header.payload_len as usize, 0);
        self.stdout.read_exact(&mut self.reply)?;
        Ok(header.flags)
    }
}

impl Drop for BareWorker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn push_frame(out: &mut Vec<u8>, flags: u8, options: &[u32], payload: &[u8]) -> Result<()> {
    let mut header = [0u8; MAX_HEADER_LEN];
    let n = encode_header(&mut header, flags, 0, options, payload.len())?;
    out.extend_from_slice(&header[..n]);
    out.extend_from_slice(payload);
    Ok(())
}

/// One limit-harness measurement of `workers` × `payload` bytes.
pub fn limit_cell(
    echo: &Path,
    workers: usize,
    payload: usize,
    window: Duration,
) -> Result<Throughput> {
    let mut bare = Vec::with_capacity(workers);
    for _ in 0..workers {
        bare.push(BareWorker::start(echo)?);
    }
    let mut request = Vec::with_capacity(payload + MAX_HEADER_LEN);
    push_frame(&mut request, 0, &[0], &vec![b'x'; payload])?;
    let start = Instant::now() + warm_up(window);
    let end = start + window;
    let threads: Vec<_> = bare
        .into_iter()
        .map(|mut worker| {
            let request = request.clone();
            std::thread::spawn(move || -> Result<Vec<u64>> {
                let mut latencies = Vec::with_capacity(1 << 16);
                loop {
                    let began = Instant::now();
                    if began >= end {
                        break;
                    }
                    worker.stdin.write_all(&request)?;
                    worker.read_reply()?;
                    if began >= start {
                        latencies.push(began.elapsed().as_micros() as u64);
                    }
                }
                Ok(latencies)
            })
        })
        .collect();
    let mut all = Vec::new();
    for thread in threads {
        let latencies = thread
            .join()
            .map_err(|_| anyhow::anyhow!("a limit thread panicked"))??;
        all.extend(latencies);
    }
    Ok(summarize(all, window))
}

/// One measurement of our pool with `workers` × `payload` bytes.
pub async fn pool_cell(
    echo: &Path,
    workers: usize,
    payload: usize,
    window: Duration,
) -> Result<Throughput> {
    let command = WorkerCommand {
        argv: vec!["php".into(), echo.to_string_lossy().into_owned()],
        env: vec![
            ("RR_RELAY".into(), "pipes".into()),
            ("RR_MODE".into(), "bench".into()),
        ],
        ..WorkerCommand::default()
    };
    let config = PoolConfig {
        num_workers: workers as u64,
        ..PoolConfig::default()
    };
    let pool = Pool::start("bench", command, Relay::Pipes, config).await?;
    let start = tokio::time::Instant::now() + warm_up(window);
    let end = start + window;
    let lanes = Lanes::get().context("lanes are installed by run()")?;
    let mut callers = tokio::task::JoinSet::new();
    for caller in 0..workers {
        let pool = pool.clone();
        // Each caller its own body, as each limit thread has its own
        // request: a shared one would bounce its reference count between
        // the CPUs on every exec.
        let request = Payload::new(Bytes::new(), Bytes::from(vec![b'x'; payload]));
        callers.spawn_on(
            async move {
                let mut latencies = Vec::with_capacity(1 << 16);
                loop {
                    let began = tokio::time::Instant::now();
                    if began >= end {
                        break;
                    }
                    pool.exec(&request).await?;
                    if began >= start {
                        latencies.push(began.elapsed().as_micros() as u64);
                    }
                }
                Ok::<_, rr_pool::ExecError>(latencies)
            },
            &lanes.handle(caller),
        );
    }
    let mut all = Vec::new();
    while let Some(done) = callers.join_next().await {
        all.extend(done??);
    }
    pool.destroy().await;
    Ok(summarize(all, window))
}
