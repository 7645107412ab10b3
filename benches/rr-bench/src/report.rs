//! Renders one bench run as BENCHMARKS.md and PNG plots.
//!
//! Only the sections that were measured appear (`--only exec` gives a report
//! with the exec table and its two plots and nothing else). Plots are linked
//! relative to the markdown file.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, Context, Result};
use plotters::prelude::*;

use crate::model::{ExecCell, Lateness, Memory, Report, Startup};

/// Plot size, pixels.
const SIZE: (u32, u32) = (1000, 600);
/// Target from the issue: rr idle resident memory, MiB.
const IDLE_TARGET_MIB: f64 = 15.0;
/// Target from the issue: ticker lateness p99, ms.
const LATENESS_TARGET_MS: f64 = 2.0;

const LIMIT_COLOR: RGBColor = RGBColor(70, 110, 180);
const POOL_COLOR: RGBColor = RGBColor(230, 140, 40);
const PASS_COLOR: RGBColor = RGBColor(60, 160, 90);
const FAIL_COLOR: RGBColor = RGBColor(210, 60, 50);
const NEUTRAL_COLOR: RGBColor = RGBColor(150, 150, 150);

/// Writes `markdown` (overwriting it) and the plots of the measured sections
/// into `plots_dir`.
pub fn write(report: &Report, markdown: &Path, plots_dir: &Path) -> Result<()> {
    let mut plots = Vec::new();
    if !report.exec.is_empty() || report.lateness.is_some() {
        std::fs::create_dir_all(plots_dir)
            .with_context(|| format!("create {}", plots_dir.display()))?;
    }
    if !report.exec.is_empty() {
        let name = "exec_throughput.png";
        plot_exec_throughput(&report.exec, &plots_dir.join(name)).context(name)?;
        plots.push(Plot {
            link: plot_link(markdown, plots_dir, name),
            caption: "Round trips per second per cell, limit harness vs. our pool",
        });
        let name = "exec_ratio.png";
        plot_exec_ratio(&report.exec, &plots_dir.join(name)).context(name)?;
        plots.push(Plot {
            link: plot_link(markdown, plots_dir, name),
            caption: "Pool throughput as a fraction of the limit, with the targets",
        });
    }
    if let Some(lateness) = &report.lateness {
        let name = "ticker_lateness.png";
        plot_lateness(lateness, &plots_dir.join(name)).context(name)?;
        plots.push(Plot {
            link: plot_link(markdown, plots_dir, name),
            caption: "Lateness of every tick, with its p99",
        });
    }
    let text = render(report, &plots, &utc_now());
    if let Some(dir) = markdown.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    std::fs::write(markdown, text).with_context(|| format!("write {}", markdown.display()))
}

/// A plot written for the report.
struct Plot {
    /// Relative to the markdown file.
    link: String,
    caption: &'static str,
}

/// The markdown text of a report.
fn render(report: &Report, plots: &[Plot], date: &str) -> String {
    let mut md = String::new();
    md.push_str("# rr benchmarks\n\n");
    md.push_str(
        "Written by `rr-bench` (`benches/rr-bench`) in one run. The headline is the worker round \
         trip. The *limit harness* drives the PHP echo worker (`tests/php/echo.php`) with one OS \
         thread per worker doing blocking goridge writes and reads on the worker's pipes: no pool, \
         no async runtime, as fast as that worker can be driven. *Our pool* drives the same worker \
         through `rr_pool::Pool::exec` on lanes, as `rr serve` runs it (one single-threaded \
         runtime per worker), from N concurrent callers spread over the lanes. Both run for the \
         same window, back to back, best of 3 rounds, in every cell (workers × payload). The \
         machine is shared and noisy, so the \
         ratio pool / limit is the headline, not the absolute ops/s. The other sections run the \
         real `rr` binary (`rr serve` in a temp dir with a generated `.rr.yaml`, production JSON \
         logs on stderr) and time its log lines: start-up, resident memory, ticker lateness.\n\n",
    );
    let _ = writeln!(md, "- Environment: {}", report.environment);
    let _ = writeln!(md, "- Date: {date}");
    md.push_str("- Re-run: `./scripts/bench.sh`\n- Why the pool is shaped as it is, and where the rest of the gap goes: [docs/performance.md](docs/performance.md)\n\n");

    if !report.exec.is_empty() {
        render_exec(&mut md, &report.exec);
    }
    if !report.startup.is_empty() {
        render_startup(&mut md, &report.startup);
    }
    if !report.memory.is_empty() {
        render_memory(&mut md, &report.memory);
    }
    if let Some(lateness) = &report.lateness {
        render_lateness(&mut md, lateness);
    }
    if let Some(drift) = &report.drift {
        render_drift(&mut md, drift);
    }
    if !report.http.is_empty() {
        render_http(&mut md, &report.http);
    }
    if !report.jobs.is_empty() {
        render_jobs(&mut md, &report.jobs);
    }
    let measured_servers = !report.startup.is_empty() || !report.memory.is_empty();
    if let Some(note) = report
        .roadrunner_note
        .as_deref()
        .filter(|_| measured_servers)
    {
        md.push_str("## RoadRunner\n\n");
        let _ = writeln!(md, "{note}.");
        let measured_roadrunner = report.startup.iter().any(|s| s.server == "RoadRunner")
            || report.memory.iter().any(|m| m.server == "RoadRunner");
        md.push_str(if measured_roadrunner {
            "\nRoadRunner is measured only where the figure applies: start-up to 64 workers ready \
             (its `http` plugin with the echo worker, which answers the pid handshake; the time \
             runs to its \"http server was started\" log line) and idle memory with 2 http \
             workers. It has no load figure here: its only pool we can drive is the http one, and \
             that needs a PSR-7 worker, so its load column repeats idle.\n\n"
        } else {
            "\nSet `RR_BENCH_ROADRUNNER` to a RoadRunner binary to measure its start-up and idle \
             memory beside rr's.\n\n"
        });
    }
    if !plots.is_empty() {
        md.push_str("## Plots\n\n");
        for plot in plots {
            let _ = writeln!(md, "![{}]({})\n", plot.caption, plot.link);
        }
    }
    md
}

/// The ratio an exec cell must reach (from the issue), if it has a target.
fn exec_target(cell: &ExecCell) -> Option<f64> {
    if cell.workers != 2 && cell.workers != 8 {
        return None;
    }
    match cell.payload {
        p if p <= 4096 => Some(0.9),
        p if p >= 65536 => Some(0.8),
        _ => None,
    }
}

fn render_exec(md: &mut String, cells: &[ExecCell]) {
    md.push_str("## Worker round trip: our pool against the pipe's limit\n\n");
    md.push_str(
        "| workers | payload | limit ops/s | pool ops/s | **ratio** | limit p50 / p99 µs | pool p50 / p99 µs | target |\n\
         |---:|---:|---:|---:|---:|---:|---:|:---:|\n",
    );
    for cell in cells {
        let target = match exec_target(cell) {
            Some(t) => format!("≥ {t:.1} {}", mark(cell.ratio() >= t)),
            None => "—".to_owned(),
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | **{:.2}** | {:.0} / {:.0} | {:.0} / {:.0} | {target} |",
            cell.workers,
            payload_label(cell.payload),
            thousands(cell.limit.ops_per_sec),
            thousands(cell.pool.ops_per_sec),
            cell.ratio(),
            cell.limit.p50_us,
            cell.limit.p99_us,
            cell.pool.p50_us,
            cell.pool.p99_us,
        );
    }
    let targeted: Vec<&ExecCell> = cells.iter().filter(|c| exec_target(c).is_some()).collect();
    let failing: Vec<String> = targeted
        .iter()
        .filter(|c| exec_target(c).is_some_and(|t| c.ratio() < t))
        .map(|c| {
            format!(
                "{} workers × {} ({:.2})",
                c.workers,
                payload_label(c.payload),
                c.ratio()
            )
        })
        .collect();
    let fewest = cells
        .iter()
        .flat_map(|c| [c.limit.samples, c.pool.samples])
        .min()
        .unwrap_or(0);
    let _ = writeln!(
        md,
        "\nThe percentiles come from every round trip of the window (at least {} per side and cell).",
        thousands(fewest as f64)
    );
    md.push_str(
        "\nTargets (from the issue): ratio ≥ 0.9 at 2 and 8 workers for 16 B and 4 KiB payloads, \
         ≥ 0.8 at 64 KiB; the 1-worker cells have none. ",
    );
    if targeted.is_empty() {
        md.push_str("No measured cell has a target.\n\n");
    } else if failing.is_empty() {
        let _ = writeln!(md, "✅ All {} hold.\n", targeted.len());
    } else {
        let _ = writeln!(
            md,
            "❌ {} of {} hold; below target: {}.\n",
            targeted.len() - failing.len(),
            targeted.len(),
            failing.join(", ")
        );
    }
}

fn render_startup(md: &mut String, rows: &[Startup]) {
    md.push_str("## Start-up\n\n");
    md.push_str("| server | first tick ms | 64 workers ready ms |\n|---|---:|---:|\n");
    for row in rows {
        let first = row
            .first_tick_ms
            .map_or_else(|| "—".to_owned(), |ms| format!("{ms:.0}"));
        let _ = writeln!(md, "| {} | {first} | {:.0} |", row.server, row.ready_64_ms);
    }
    md.push_str(
        "\nFrom spawning `serve` to the first `tick done` log line (ticker at 10ms, 2 workers; \
         median of 5 runs), and to \"rr server started\", logged once every plugin serves, with a \
         64-worker ticker pool (median of 3 runs).\n\n",
    );
}

fn render_memory(md: &mut String, rows: &[Memory]) {
    md.push_str("## Memory\n\n");
    md.push_str("| server | idle MiB | under load MiB | per worker MiB |\n|---|---:|---:|---:|\n");
    for row in rows {
        let _ = writeln!(
            md,
            "| {} | {:.1} | {:.1} | {:.1} |",
            row.server,
            mib(row.idle_kib),
            mib(row.load_kib),
            mib(row.per_worker_kib)
        );
    }
    md.push_str(
        "\nResident set (VmRSS) of the server process alone. Idle: ticker at 1s with 2 workers, the \
         largest of 5 samples over 2 s starting 3 s after \"rr server started\". Under load: ticker \
         at 1ms with 8 workers (at most 1000 executions a second through the pool, one at a time; \
         a slot already past when a tick ends is skipped), the largest of samples every 100 ms \
         over 3 s. Per worker: the median VmRSS of the PHP worker processes (the 8 of the \
         load run).\n\n",
    );
    if let Some(rr) = rows.iter().find(|r| r.server == "rr") {
        let idle = mib(rr.idle_kib);
        let _ = writeln!(
            md,
            "Target: rr idle < {IDLE_TARGET_MIB:.0} MiB: {} ({idle:.1} MiB).\n",
            mark(idle < IDLE_TARGET_MIB)
        );
    }
}

fn render_lateness(md: &mut String, l: &Lateness) {
    md.push_str("## Ticker lateness\n\n");
    md.push_str(
        "| interval | window | ticks | p50 ms | p99 ms | max ms | skipped |\n|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let _ = writeln!(
        md,
        "| {} ms | {} s | {} | {:.3} | {:.3} | {:.3} | {} |",
        l.interval_ms,
        l.seconds,
        l.samples,
        l.p50_us / 1000.0,
        l.p99_us / 1000.0,
        l.max_us / 1000.0,
        l.skipped
    );
    let p99_ms = l.p99_us / 1000.0;
    let _ = writeln!(
        md,
        "\nHow late each tick started against its plan (`lateness_us` of rr's `tick done` debug \
         line), 2 workers, over the window after \"rr server started\" minus 0.5 s of warm-up; \
         skipped = planned ticks that fell due while the previous one still ran.\n\n\
         Target: p99 < {LATENESS_TARGET_MS:.0} ms: {} ({p99_ms:.3} ms).\n",
        mark(p99_ms < LATENESS_TARGET_MS)
    );
}

/// Targets from the HTTP issue: at least this many times php-fpm's req/s,
/// at an equal or lower p99.
const HTTP_TARGET_RATIO: f64 = 2.0;

fn render_http(md: &mut String, cells: &[crate::model::HttpCell]) {
    md.push_str("## HTTP: rr against nginx + php-fpm\n\n");
    md.push_str("| server | endpoint | req/s | p50 ms | p99 ms | errors | req/s vs php-fpm | target (≥ 2×, p99 ≤ php-fpm's) | req/s of each round |\n|---|---|---:|---:|---:|---:|---:|:-:|---|\n");
    for cell in cells {
        let fpm = cells
            .iter()
            .find(|c| c.server == "nginx + php-fpm" && c.endpoint == cell.endpoint);
        let (ratio, target) = match fpm {
            Some(fpm) if cell.server != fpm.server => {
                let ratio = cell.requests_per_sec / fpm.requests_per_sec.max(1.0);
                (
                    format!("{ratio:.2}×"),
                    mark(ratio >= HTTP_TARGET_RATIO && cell.p99_ms <= fpm.p99_ms).to_owned(),
                )
            }
            _ => ("1.00×".to_owned(), "".to_owned()),
        };
        let rounds = cell
            .rounds
            .iter()
            .map(|rps| format!("{rps:.0}"))
            .collect::<Vec<_>>()
            .join(" · ");
        let _ = writeln!(
            md,
            "| {} | `{}` | {:.0} | {:.2} | {:.2} | {} | {ratio} | {target} | {rounds} |",
            cell.server,
            cell.endpoint,
            cell.requests_per_sec,
            cell.p50_ms,
            cell.p99_ms,
            cell.errors
        );
    }
    md.push_str(
        "\nThe same app (`benches/http/app.php`: `/hello` is \"Hello, world!\", `/json` a 4 KiB JSON \
         document) with the same number of PHP workers (rr's `http.pool.num_workers`, php-fpm's \
         `pm = static` children behind nginx over a unix socket, the stock setup: one FastCGI connection per request, since a kept-alive one would pin a child), loaded by `wrk \
         -t2 -c32 --latency`, one server at a time on the same machine (wrk shares its cores). \
         The servers take turns in interleaved rounds (rr, php-fpm, rr, php-fpm, ...), each window \
         after a 1 s warm-up; req/s, p50 and p99 are each the median over the rounds, so one slow \
         spell of the shared machine does not decide a ratio. php-fpm runs with Debian's default OPcache; rr's workers are \
         long-lived PHP processes.\n\n",
    );
}

fn render_jobs(md: &mut String, cells: &[crate::model::JobsCell]) {
    md.push_str("## Jobs: end to end through rr, against the broker client alone\n\n");
    md.push_str("| driver | through | jobs | seconds | jobs/s | vs the broker client alone |\n|---|---|---:|---:|---:|---:|\n");
    for cell in cells {
        let raw = cells
            .iter()
            .find(|c| c.driver == cell.driver && c.through != "rr");
        let ratio = match raw {
            Some(raw) if raw.jobs_per_sec > 0.0 => {
                format!("{:.2}×", cell.jobs_per_sec / raw.jobs_per_sec)
            }
            _ => "–".to_owned(),
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:.2} | {} | {ratio} |",
            cell.driver,
            cell.through,
            cell.jobs,
            cell.seconds,
            thousands(cell.jobs_per_sec),
        );
    }
    md.push_str(
        "\nrr runs with a `bench` pipeline consumed by PHP workers (`benches/jobs/worker.php`, \
         which acks every job and logs nothing; `jobs.pool.num_workers` and `num_pollers` as for \
         HTTP); a producer thread pushes the jobs over RPC (`jobs.PushBatch`, 1,000 a call) and the \
         clock runs from the first push to the last `job was processed successfully` line of rr's \
         debug log. The amqp driver talks to a RabbitMQ node the bench starts in a temp dir on \
         free loopback ports (no plugins, transient queue); the yardstick on the same node is \
         lapin alone: one channel publishing with confirms (as rr's driver does) while another \
         with the same prefetch (100) consumes and acks, no rr and no PHP. The memory driver has \
         no broker to compare with. No RoadRunner jobs row: it needs its own jobs worker setup, \
         not measured here.\n\n",
    );
}

fn render_drift(md: &mut String, d: &crate::model::Drift) {
    md.push_str("## Schedule drift\n\n");
    md.push_str(
        "| every | window | runs | on the grid | p50 ms | p99 ms | max ms | trend µs/min | extrapolated to 10 min |\n|---:|---:|---:|:-:|---:|---:|---:|---:|---:|\n",
    );
    let ten_minutes_ms = d.slope_us_per_min * 10.0 / 1000.0;
    let _ = writeln!(
        md,
        "| {} ms | {} s | {} | {} | {:.3} | {:.3} | {:.3} | {:+.2} | {:+.3} ms |",
        d.every_ms,
        d.seconds,
        d.runs,
        mark(d.on_grid),
        d.p50_us / 1000.0,
        d.p99_us / 1000.0,
        d.max_us / 1000.0,
        d.slope_us_per_min,
        ten_minutes_ms,
    );
    let _ = writeln!(
        md,
        "\nA named schedule (`ticker.schedules.drift.every: {} ms`, 2 workers) on the absolute \
         timeline: lateness = start minus planned time (`lateness_us` of rr's `schedule run \
         started` debug line). \"On the grid\": every planned time is exactly the first plus k \
         periods, so nothing accumulates in the plan; the trend is the least-squares slope of \
         lateness over the run, extrapolated linearly to 10 minutes (the run is shorter).\n",
        d.every_ms
    );
}

fn mark(ok: bool) -> &'static str {
    if ok {
        "✅"
    } else {
        "❌"
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// `16 B`, `4 KiB`, `64 KiB`.
fn payload_label(bytes: usize) -> String {
    if bytes >= 1024 && bytes.is_multiple_of(1024) {
        format!("{} KiB", bytes / 1024)
    } else {
        format!("{bytes} B")
    }
}

/// A whole number with thousands separators: `48,213`.
fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The link to a plot from the markdown file: relative when the plots live
/// under the markdown's directory, absolute otherwise.
fn plot_link(markdown: &Path, plots_dir: &Path, name: &str) -> String {
    let plots = std::path::absolute(plots_dir).unwrap_or_else(|_| plots_dir.to_path_buf());
    let base: Option<PathBuf> = std::path::absolute(markdown)
        .ok()
        .and_then(|m| m.parent().map(Path::to_path_buf));
    let dir = base
        .and_then(|b| plots.strip_prefix(&b).ok().map(Path::to_path_buf))
        .unwrap_or(plots);
    let parts: Vec<String> = dir
        .join(name)
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let joined = parts.join("/");
    // An absolute path's first component is "/" itself.
    if let Some(rest) = joined.strip_prefix("//") {
        return format!("/{rest}");
    }
    joined
}

/// Now, as `YYYY-MM-DD HH:MM UTC`.
pub(crate) fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    utc_date(secs)
}

fn utc_date(unix_secs: u64) -> String {
    let t = rr_logger::utc_time(unix_secs);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02} UTC",
        t.year, t.month, t.day, t.hour, t.minute
    )
}

/// The legend box every plot uses: upper right, on a light background.
fn draw_legend<'a, DB, CT>(chart: &mut ChartContext<'a, DB, CT>, font_size: u32) -> Result<()>
where
    DB: DrawingBackend + 'a,
    CT: CoordTranslate,
{
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font(("sans-serif", font_size))
        .draw()
        .map_err(plot_err)
}

fn plot_err<E: std::fmt::Display>(err: E) -> anyhow::Error {
    anyhow!("plot: {err}")
}

/// `1w 16 B` under each group of bars.
fn cell_label(cell: &ExecCell) -> String {
    format!("{}w {}", cell.workers, payload_label(cell.payload))
}

/// Axis numbers: `12k`, `1.5M`.
fn short_number(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.0}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

/// Width of one cell on the x axis of the exec plots (integer coordinates:
/// plotters formats no custom key points on a float axis).
const CELL: i32 = 100;

/// The centre of cell `i` on the x axis.
fn cell_centre(i: usize) -> i32 {
    i as i32 * CELL + CELL / 2
}

/// The label of the cell centred at `x`.
fn label_at(cells: &[ExecCell], x: i32) -> String {
    if x < 0 || x % CELL != CELL / 2 {
        return String::new();
    }
    cells
        .get((x / CELL) as usize)
        .map(cell_label)
        .unwrap_or_default()
}

/// One side of the throughput plot: legend, colour, bar offset, value.
type Side = (&'static str, RGBColor, i32, fn(&ExecCell) -> f64);

fn plot_exec_throughput(cells: &[ExecCell], path: &Path) -> Result<()> {
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let n = cells.len();
    let top = cells
        .iter()
        .map(|c| c.limit.ops_per_sec.max(c.pool.ops_per_sec))
        .fold(1.0, f64::max)
        * 1.25;
    let keys: Vec<i32> = (0..n).map(cell_centre).collect();
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Worker round trip: round trips per second",
            ("sans-serif", 30),
        )
        .margin(20)
        .x_label_area_size(70)
        .y_label_area_size(90)
        .build_cartesian_2d((0..n as i32 * CELL).with_key_points(keys), 0.0..top)
        .map_err(plot_err)?;
    let label = |x: &i32| label_at(cells, *x);
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_label_formatter(&label)
        .y_label_formatter(&|y| short_number(*y))
        .x_desc("workers, payload")
        .y_desc("round trips / s")
        .label_style(("sans-serif", 18))
        .axis_desc_style(("sans-serif", 20))
        .draw()
        .map_err(plot_err)?;
    let sides: [Side; 2] = [
        (
            "limit harness (threads, blocking pipes)",
            LIMIT_COLOR,
            -CELL * 2 / 5,
            |c| c.limit.ops_per_sec,
        ),
        ("our pool (Pool::exec on tokio)", POOL_COLOR, 1, |c| {
            c.pool.ops_per_sec
        }),
    ];
    for (name, color, offset, value) in sides {
        chart
            .draw_series(cells.iter().enumerate().map(|(i, c)| {
                let x = cell_centre(i) + offset;
                Rectangle::new([(x, 0.0), (x + CELL * 2 / 5 - 1, value(c))], color.filled())
            }))
            .map_err(plot_err)?
            .label(name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 7), (x + 16, y + 7)], color.filled()));
    }
    draw_legend(&mut chart, 18)?;
    root.present().map_err(plot_err)?;
    Ok(())
}

fn plot_exec_ratio(cells: &[ExecCell], path: &Path) -> Result<()> {
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let n = cells.len();
    // The top third stays free for the legend.
    let top = (cells.iter().map(ExecCell::ratio).fold(1.0, f64::max) + 0.12) / 0.68;
    let keys: Vec<i32> = (0..n).map(cell_centre).collect();
    let mut chart = ChartBuilder::on(&root)
        .caption("Pool throughput / limit throughput", ("sans-serif", 30))
        .margin(20)
        .x_label_area_size(70)
        .y_label_area_size(70)
        .build_cartesian_2d((0..n as i32 * CELL).with_key_points(keys), 0.0..top)
        .map_err(plot_err)?;
    let label = |x: &i32| label_at(cells, *x);
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_label_formatter(&label)
        .y_label_formatter(&|y| format!("{y:.1}"))
        .x_desc("workers, payload")
        .y_desc("ratio (pool / limit)")
        .label_style(("sans-serif", 18))
        .axis_desc_style(("sans-serif", 20))
        .draw()
        .map_err(plot_err)?;
    // Target lines first: the bars and their labels cover them.
    for (target, name) in [
        (0.9, "target 0.9 (16 B, 4 KiB)"),
        (0.8, "target 0.8 (64 KiB)"),
    ] {
        let style = if target > 0.85 {
            BLACK
        } else {
            RGBColor(120, 120, 120)
        };
        chart
            .draw_series(DashedLineSeries::new(
                [(0, target), (n as i32 * CELL, target)],
                10,
                6,
                style.stroke_width(2),
            ))
            .map_err(plot_err)?
            .label(name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], style.stroke_width(2)));
    }
    chart
        .draw_series(cells.iter().enumerate().map(|(i, c)| {
            let color = match exec_target(c) {
                Some(t) if c.ratio() >= t => PASS_COLOR,
                Some(_) => FAIL_COLOR,
                None => NEUTRAL_COLOR,
            };
            let x = cell_centre(i);
            Rectangle::new(
                [(x - CELL * 3 / 10, 0.0), (x + CELL * 3 / 10, c.ratio())],
                color.filled(),
            )
        }))
        .map_err(plot_err)?;
    chart
        .draw_series(cells.iter().enumerate().map(|(i, c)| {
            // Inside the bar, clear of the target lines; above a short one.
            let (y, color) = if c.ratio() > top * 0.12 {
                (c.ratio() - top * 0.02, WHITE)
            } else {
                (c.ratio() + top * 0.05, BLACK)
            };
            Text::new(
                format!("{:.2}", c.ratio()),
                (cell_centre(i) - CELL / 6, y),
                ("sans-serif", 18).into_font().color(&color),
            )
        }))
        .map_err(plot_err)?;
    for (name, color) in [
        ("meets its target", PASS_COLOR),
        ("below its target", FAIL_COLOR),
        ("no target (1 worker)", NEUTRAL_COLOR),
    ] {
        chart
            .draw_series(std::iter::empty::<Rectangle<(i32, f64)>>())
            .map_err(plot_err)?
            .label(name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 7), (x + 16, y + 7)], color.filled()));
    }
    draw_legend(&mut chart, 16)?;
    root.present().map_err(plot_err)?;
    Ok(())
}

fn plot_lateness(l: &Lateness, path: &Path) -> Result<()> {
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    // Tick k of the window fell due about 0.5 s (warm-up) + k intervals
    // after start-up (skipped ticks make this approximate).
    let step = l.interval_ms as f64 / 1000.0;
    let at = |k: usize| 0.5 + k as f64 * step;
    let end = at(l.series_us.len().max(1));
    let max_ms = l.series_us.iter().copied().max().unwrap_or(0) as f64 / 1000.0;
    let p99 = l.p99_us / 1000.0;
    // A few outliers would squash everything else to the axis: the scale
    // stops at 3× the p99 (and shows the target), outliers are drawn at the
    // top edge and counted in the legend.
    let cap = (p99 * 3.0).max(LATENESS_TARGET_MS * 1.25);
    let top = if max_ms <= cap {
        max_ms.max(0.1) * 1.1
    } else {
        cap
    };
    let above = l
        .series_us
        .iter()
        .filter(|&&us| us as f64 / 1000.0 > top)
        .count();
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("Ticker lateness, {} ms interval, 2 workers", l.interval_ms),
            ("sans-serif", 30),
        )
        .margin(20)
        .x_label_area_size(60)
        .y_label_area_size(80)
        .build_cartesian_2d(0.0..end, 0.0..top)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc("seconds after start-up (≈ tick × interval)")
        .y_desc("lateness (ms)")
        .y_label_formatter(&|y| {
            if top > 5.0 {
                format!("{y:.1}")
            } else {
                format!("{y:.2}")
            }
        })
        .x_label_formatter(&|x| format!("{x:.0}"))
        .label_style(("sans-serif", 18))
        .axis_desc_style(("sans-serif", 20))
        .draw()
        .map_err(plot_err)?;
    chart
        .draw_series(LineSeries::new(
            l.series_us
                .iter()
                .enumerate()
                .map(|(k, &us)| (at(k), (us as f64 / 1000.0).min(top))),
            LIMIT_COLOR.stroke_width(1),
        ))
        .map_err(plot_err)?
        .label(if above == 0 {
            "lateness of each tick".to_owned()
        } else {
            format!("lateness of each tick ({above} above the scale, max {max_ms:.1} ms)")
        })
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], LIMIT_COLOR.stroke_width(2)));
    chart
        .draw_series(LineSeries::new(
            [(0.0, p99), (end, p99)],
            FAIL_COLOR.stroke_width(2),
        ))
        .map_err(plot_err)?
        .label(format!("p99 = {p99:.3} ms"))
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], FAIL_COLOR.stroke_width(2)));
    if LATENESS_TARGET_MS <= top {
        chart
            .draw_series(DashedLineSeries::new(
                [(0.0, LATENESS_TARGET_MS), (end, LATENESS_TARGET_MS)],
                10,
                6,
                BLACK.stroke_width(2),
            ))
            .map_err(plot_err)?
            .label(format!("target p99 < {LATENESS_TARGET_MS:.0} ms"))
            .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLACK.stroke_width(2)));
    }
    draw_legend(&mut chart, 18)?;
    root.present().map_err(plot_err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Throughput;

    fn cell(workers: usize, payload: usize, limit: f64, pool: f64) -> ExecCell {
        let side = |ops| Throughput {
            ops_per_sec: ops,
            p50_us: 40.0,
            p99_us: 90.0,
            samples: 1000,
        };
        ExecCell {
            workers,
            payload,
            limit: side(limit),
            pool: side(pool),
        }
    }

    #[test]
    fn dates_are_civil_utc() {
        assert_eq!(utc_date(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc_date(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(utc_date(1_700_000_000), "2023-11-14 22:13 UTC");
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(thousands(48_213.4), "48,213");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(1_000_000.0), "1,000,000");
        assert_eq!(payload_label(16), "16 B");
        assert_eq!(payload_label(65536), "64 KiB");
    }

    #[test]
    fn targets_follow_the_issue() {
        assert_eq!(exec_target(&cell(1, 16, 1.0, 1.0)), None);
        assert_eq!(exec_target(&cell(2, 4096, 1.0, 1.0)), Some(0.9));
        assert_eq!(exec_target(&cell(8, 65536, 1.0, 1.0)), Some(0.8));
    }

    #[test]
    fn missing_sections_are_left_out() {
        let report = Report {
            exec: vec![cell(2, 16, 100.0, 95.0), cell(8, 65536, 100.0, 70.0)],
            roadrunner_note: Some("RR_BENCH_ROADRUNNER not set: no RoadRunner column".to_owned()),
            environment: "2 cores".to_owned(),
            ..Report::default()
        };
        let md = render(&report, &[], "2024-01-01 00:00 UTC");
        assert!(md.contains("| 2 | 16 B | 100 | 95 | **0.95** |"));
        assert!(md.contains("1 of 2 hold; below target: 8 workers × 64 KiB (0.70)"));
        for absent in [
            "## Start-up",
            "## Memory",
            "## Ticker lateness",
            "## RoadRunner",
            "## Plots",
        ] {
            assert!(!md.contains(absent), "{absent} should be left out");
        }
    }

    #[test]
    fn a_full_report_writes_every_plot() {
        let dir = tempfile::tempdir().expect("temp dir");
        let exec = [1, 2, 8]
            .into_iter()
            .flat_map(|w| [16, 4096, 65536].map(|p| (w, p)))
            .map(|(w, p)| {
                cell(
                    w,
                    p,
                    40_000.0 / (1.0 + p as f64 / 8192.0),
                    36_000.0 / (1.0 + p as f64 / 7000.0),
                )
            })
            .collect();
        let series: Vec<u64> = (0..2000)
            .map(|k| 400 + (k * 37 % 900))
            .chain([25_000])
            .collect();
        let report = Report {
            exec,
            lateness: Some(Lateness {
                interval_ms: 10,
                seconds: 20,
                samples: series.len(),
                p50_us: 850.0,
                p99_us: 1290.0,
                max_us: 25_000.0,
                series_us: series,
                skipped: 1,
            }),
            environment: "2 cores".to_owned(),
            ..Report::default()
        };
        let markdown = dir.path().join("BENCHMARKS.md");
        let plots = dir.path().join("docs/benchmarks");
        write(&report, &markdown, &plots).expect("report written");
        let md = std::fs::read_to_string(&markdown).expect("markdown");
        for name in [
            "exec_throughput.png",
            "exec_ratio.png",
            "ticker_lateness.png",
        ] {
            assert!(
                plots.join(name).metadata().expect("plot written").len() > 10_000,
                "{name}"
            );
            assert!(
                md.contains(&format!("(docs/benchmarks/{name})")),
                "{name} linked"
            );
        }
    }

    #[test]
    fn plot_links_are_relative_to_the_markdown() {
        assert_eq!(
            plot_link(
                Path::new("BENCHMARKS.md"),
                Path::new("docs/benchmarks"),
                "a.png"
            ),
            "docs/benchmarks/a.png"
        );
        assert_eq!(
            plot_link(Path::new("/x/y/B.md"), Path::new("/z/plots"), "a.png"),
            "/z/plots/a.png"
        );
    }
}
