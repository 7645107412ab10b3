//! `rr-bench`: measures rr side by side, in one run, and writes BENCHMARKS.md.
//!
//! Sections: the worker round trip through our pool against the limit
//! harness (the same PHP echo loop driven by bare blocking pipes), start-up,
//! memory, and ticker lateness. Machines here are shared and noisy, so the
//! headline numbers are ratios measured back to back. A RoadRunner binary
//! given in `RR_BENCH_ROADRUNNER` is measured beside rr where the figure
//! applies; nothing here builds one.

mod exec;
mod http;
mod jobs;
mod model;
mod report;
mod server;
mod soak;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::{Parser, ValueEnum};

/// Measure rr and write BENCHMARKS.md.
#[derive(Debug, Parser)]
struct Args {
    /// The rr binary to measure (build it with `cargo build --release -p rr`).
    #[arg(long, default_value = "target/release/rr")]
    rr: PathBuf,
    /// Only these sections (repeatable); all but `soak` by default. `soak`
    /// writes RELIABILITY.md instead of BENCHMARKS.md.
    #[arg(long, value_enum)]
    only: Vec<Section>,
    /// Short windows, for a smoke run (numbers are noisier).
    #[arg(long)]
    quick: bool,
    /// Only these exec cells, as `WORKERSxBYTES` (repeatable, e.g.
    /// `--exec-cell 2x16`); all nine by default.
    #[arg(long, value_parser = parse_cell)]
    exec_cell: Vec<(usize, usize)>,
    /// Length of the ticker lateness run, seconds.
    #[arg(long, default_value_t = 60)]
    lateness_seconds: u64,
    /// Length of each HTTP load window, seconds.
    #[arg(long, default_value_t = 5)]
    http_seconds: u64,
    /// Interleaved rounds of HTTP windows per server and endpoint; each
    /// cell reports the median.
    #[arg(long, default_value_t = 3)]
    http_rounds: usize,
    /// PHP workers of each HTTP server (rr's pool, php-fpm's static children).
    #[arg(long, default_value_t = 4)]
    http_workers: usize,
    /// Jobs pushed through each jobs path.
    #[arg(long, default_value_t = 20_000)]
    jobs: usize,
    /// Length of the soak's load phase, seconds.
    #[arg(long, default_value_t = 600)]
    soak_seconds: u64,
    /// Where the soak's report goes.
    #[arg(long, default_value = "RELIABILITY.md")]
    soak_out: PathBuf,
    /// Length of the schedule drift run (`every: 100ms`), seconds.
    #[arg(long, default_value_t = 60)]
    drift_seconds: u64,
    /// Where the report goes.
    #[arg(long, default_value = "BENCHMARKS.md")]
    out: PathBuf,
    /// Where the plots go.
    #[arg(long, default_value = "docs/benchmarks")]
    plots: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Section {
    Exec,
    Startup,
    Memory,
    Lateness,
    Drift,
    Http,
    /// Jobs/s through rr (memory, amqp) against the broker client alone.
    Jobs,
    /// Minutes of mixed load with resets and kills (not in the default run).
    Soak,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let wanted =
        |s: Section| args.only.contains(&s) || (args.only.is_empty() && s != Section::Soak);
    let repo = std::env::current_dir()?;
    let echo = repo.join("tests/php/echo.php");
    anyhow::ensure!(
        echo.is_file(),
        "run rr-bench from the repository root ({} not found)",
        echo.display()
    );
    let roadrunner = std::env::var_os("RR_BENCH_ROADRUNNER").map(PathBuf::from);
    let started = Instant::now();
    if args.only == [Section::Soak] {
        let rr = std::path::absolute(&args.rr)?;
        let result = soak::run(&rr, &repo, args.soak_seconds).context("soak")?;
        soak::write(&result, &args.soak_out, started.elapsed())?;
        println!("wrote {}", args.soak_out.display());
        anyhow::ensure!(
            result.unexpected() == 0,
            "the soak saw {} unexpected errors",
            result.unexpected()
        );
        return Ok(());
    }
    anyhow::ensure!(
        !args.only.contains(&Section::Soak),
        "run the soak on its own: --only soak"
    );
    let mut report = model::Report::default();

    if wanted(Section::Exec) {
        let window = if args.quick {
            Duration::from_millis(500)
        } else {
            Duration::from_secs(2)
        };
        let cells: Vec<(usize, usize)> = if args.exec_cell.is_empty() {
            [1, 2, 8]
                .into_iter()
                .flat_map(|w| [16, 4096, 65536].map(|p| (w, p)))
                .collect()
        } else {
            args.exec_cell.clone()
        };
        report.exec = exec::run(&echo, &cells, window).context("exec section")?;
    }
    let rr = std::path::absolute(&args.rr)?;
    if wanted(Section::Startup) {
        report.startup =
            server::startup(&rr, roadrunner.as_deref(), &repo).context("startup section")?;
    }
    if wanted(Section::Memory) {
        report.memory =
            server::memory(&rr, roadrunner.as_deref(), &repo).context("memory section")?;
    }
    if wanted(Section::Lateness) {
        let seconds = if args.quick { 5 } else { args.lateness_seconds };
        report.lateness = Some(
            server::lateness(&rr, &repo, Duration::from_millis(10), seconds)
                .context("lateness section")?,
        );
    }
    if wanted(Section::Drift) {
        let seconds = if args.quick { 5 } else { args.drift_seconds };
        report.drift = Some(
            server::drift(&rr, &repo, Duration::from_millis(100), seconds)
                .context("drift section")?,
        );
    }
    if wanted(Section::Http) {
        let seconds = if args.quick { 2 } else { args.http_seconds };
        report.http = http::run(
            &rr,
            roadrunner.as_deref(),
            &repo,
            seconds,
            if args.quick {
                1
            } else {
                args.http_rounds.max(1)
            },
            args.http_workers,
        )
        .context("http section")?;
    }
    if wanted(Section::Jobs) {
        let jobs = if args.quick { 2_000 } else { args.jobs };
        report.jobs = jobs::run(&rr, &repo, jobs, args.http_workers).context("jobs section")?;
    }
    report.roadrunner_note = match &roadrunner {
        Some(path) => Some(format!("RoadRunner binary: {}", path.display())),
        None => Some("RR_BENCH_ROADRUNNER not set: no RoadRunner column".to_owned()),
    };
    report.environment = format!(
        "{} cores, run took {:.0} s{}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        started.elapsed().as_secs_f64(),
        if args.quick {
            ", --quick (short windows)"
        } else {
            ""
        }
    );
    report::write(&report, &args.out, &args.plots)?;
    println!(
        "wrote {} and plots in {}",
        args.out.display(),
        args.plots.display()
    );
    Ok(())
}

/// Parses an exec cell `WORKERSxBYTES`, e.g. `2x16`.
fn parse_cell(text: &str) -> Result<(usize, usize), String> {
    let (workers, bytes) = text
        .split_once('x')
        .ok_or_else(|| format!("exec cell {text:?} is not WORKERSxBYTES, e.g. 2x16"))?;
    let number = |part: &str| {
        part.parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("exec cell {text:?}: {part:?} is not a positive number"))
    };
    Ok((number(workers)?, number(bytes)?))
}
