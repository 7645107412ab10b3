//! HTTP side by side: rr's http plugin against nginx + php-fpm
//! (`pm = static`) and, when `RR_BENCH_ROADRUNNER` names a binary,
//! RoadRunner, with the same PHP app (`benches/http/app.php`), the same
//! number of PHP workers, and the same load tool (`wrk`) on the same
//! machine, one server at a time.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::model::HttpCell;
use crate::server::free_port;

/// The endpoints measured: hello world and a 4 KiB JSON document.
pub const ENDPOINTS: [&str; 2] = ["/hello", "/json"];

/// wrk's connections and threads.
const CONNECTIONS: u32 = 32;
const THREADS: u32 = 2;

/// Measures every server on every endpoint in `rounds` interleaved rounds
/// (rr, php-fpm, [RoadRunner], rr, php-fpm, ...) of `seconds` each, every
/// window after a 1 s warm-up, with `workers` PHP workers per server. The
/// cell reported is the median of its rounds: on a shared 2-core machine a
/// single window swings by 10 %, and interleaving spreads any slow spell of
/// the machine over every server instead of landing on one.
pub fn run(
    rr: &Path,
    roadrunner: Option<&Path>,
    repo: &Path,
    seconds: u64,
    rounds: usize,
    workers: usize,
) -> Result<Vec<HttpCell>> {
    for tool in ["wrk", "nginx", "php-fpm8.2"] {
        which(tool).with_context(|| {
            format!("{tool} is missing: scripts/bench.sh installs nginx, php8.2-fpm and wrk")
        })?;
    }
    let app = std::path::absolute(repo.join("benches/http/app.php"))?;
    // (name, binary for an rr-compatible server, or None for nginx + php-fpm)
    let mut servers: Vec<(&str, Option<&Path>)> = vec![("rr", Some(rr)), ("nginx + php-fpm", None)];
    if let Some(roadrunner) = roadrunner {
        servers.push(("RoadRunner", Some(roadrunner)));
    }
    // Every server runs for the whole section; the ones not under load sit
    // idle (their PHP workers block on a read).
    let mut started = Vec::new();
    for (name, binary) in servers {
        let dir = tempfile::tempdir()?;
        let port = free_port()?;
        let server = match binary {
            Some(binary) => start_rr(binary, dir.path(), &app, port, workers),
            None => start_fpm(dir.path(), &app, port, workers),
        }
        .with_context(|| format!("starting {name}"))?;
        wait_listening(port, Duration::from_secs(20))
            .with_context(|| format!("{name} did not listen"))?;
        for endpoint in ENDPOINTS {
            check_once(&format!("http://127.0.0.1:{port}{endpoint}"))
                .with_context(|| format!("{name} {endpoint}"))?;
        }
        started.push((name, port, server, dir));
    }
    let mut samples: Vec<Vec<HttpCell>> = vec![Vec::new(); started.len() * ENDPOINTS.len()];
    for round in 1..=rounds {
        for (s, (name, port, _, _)) in started.iter().enumerate() {
            for (e, endpoint) in ENDPOINTS.into_iter().enumerate() {
                let url = format!("http://127.0.0.1:{port}{endpoint}");
                wrk(&url, 1)?;
                let mut cell = wrk(&url, seconds)?;
                cell.server = (*name).to_owned();
                cell.endpoint = endpoint;
                eprintln!(
                    "http round {round}/{rounds} {name:>16} {endpoint:<6}: {:>8.0} req/s  p50 {:.2} ms  p99 {:.2} ms  errors {}",
                    cell.requests_per_sec, cell.p50_ms, cell.p99_ms, cell.errors
                );
                samples[s * ENDPOINTS.len() + e].push(cell);
            }
        }
    }
    drop(started);
    Ok(samples.into_iter().filter_map(median_cell).collect())
}

/// One cell out of its rounds: the median of each figure on its own (so a
/// p99 is not taken from the round that happened to have the median
/// throughput), every round's errors, and every round's req/s.
fn median_cell(rounds: Vec<HttpCell>) -> Option<HttpCell> {
    let first = rounds.first()?;
    let median = |figure: fn(&HttpCell) -> f64| {
        let mut values: Vec<f64> = rounds.iter().map(figure).collect();
        values.sort_by(f64::total_cmp);
        let mid = values.len() / 2;
        if values.len() % 2 == 1 {
            values[mid]
        } else {
            (values[mid - 1] + values[mid]) / 2.0
        }
    };
    Some(HttpCell {
        server: first.server.clone(),
        endpoint: first.endpoint,
        requests_per_sec: median(|c| c.requests_per_sec),
        p50_ms: median(|c| c.p50_ms),
        p99_ms: median(|c| c.p99_ms),
        errors: rounds.iter().map(|c| c.errors).sum(),
        rounds: rounds.iter().map(|c| c.requests_per_sec).collect(),
    })
}

/// Processes of one server, killed on drop.
struct Running {
    children: Vec<Child>,
}

impl Drop for Running {
    fn drop(&mut self) {
        for child in &mut self.children {
            // SIGTERM first so php-fpm and nginx take their workers along.
            let _ = Command::new("kill").arg(child.id().to_string()).status();
        }
        for child in &mut self.children {
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn start_rr(binary: &Path, dir: &Path, app: &Path, port: u16, workers: usize) -> Result<Running> {
    let yaml = format!(
        "version: '3'\n\
         server:\n  command: php {app}\n\
         logs:\n  mode: production\n  level: error\n\
         http:\n  address: 127.0.0.1:{port}\n  pool:\n    num_workers: {workers}\n",
        app = app.display()
    );
    let config = dir.join(".rr.yaml");
    std::fs::write(&config, yaml)?;
    let child = Command::new(binary)
        .arg("serve")
        .arg("-c")
        .arg(&config)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("spawn {}", binary.display()))?;
    Ok(Running {
        children: vec![child],
    })
}

fn start_fpm(dir: &Path, app: &Path, port: u16, workers: usize) -> Result<Running> {
    let socket = dir.join("fpm.sock");
    let fpm_conf = dir.join("php-fpm.conf");
    std::fs::write(
        &fpm_conf,
        format!(
            "[global]\nerror_log = {log}\ndaemonize = no\n\n[www]\nuser = root\ngroup = root\nlisten = {socket}\nlisten.mode = 0666\npm = static\npm.max_children = {workers}\npm.max_requests = 0\nlisten.backlog = 4096\n",
            log = dir.join("fpm.log").display(),
            socket = socket.display(),
        ),
    )?;
    let fpm = Command::new("php-fpm8.2")
        .args(["-R", "-F", "-y"])
        .arg(&fpm_conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("spawn php-fpm8.2")?;
    let nginx_conf = dir.join("nginx.conf");
    std::fs::write(
        &nginx_conf,
        format!(
            "worker_processes auto;\ndaemon off;\npid {dir}/nginx.pid;\nerror_log {dir}/nginx-error.log;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n  access_log off;\n\
               server {{\n    listen 127.0.0.1:{port};\n\
                 location / {{\n      include /etc/nginx/fastcgi_params;\n\
                   fastcgi_param SCRIPT_FILENAME {app};\n      fastcgi_pass unix:{socket};\n    }}\n  }}\n}}\n",
            dir = dir.display(),
            socket = socket.display(),
            app = app.display(),
        ),
    )?;
    let nginx = Command::new("nginx")
        .arg("-c")
        .arg(&nginx_conf)
        .arg("-p")
        .arg(dir)
        .arg("-e")
        .arg(dir.join("nginx-error.log"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("spawn nginx")?;
    Ok(Running {
        children: vec![nginx, fpm],
    })
}

/// One request must answer 200 before the load starts.
fn check_once(url: &str) -> Result<()> {
    let output = Command::new("wrk")
        .args(["-t1", "-c1", "-d1s", url])
        .output()
        .context("run wrk")?;
    let text = String::from_utf8_lossy(&output.stdout);
    if text.contains("Non-2xx") || !text.contains("Requests/sec") {
        bail!("a check request did not get 200:\n{text}");
    }
    Ok(())
}

/// One wrk run of `seconds`.
fn wrk(url: &str, seconds: u64) -> Result<HttpCell> {
    let output = Command::new("wrk")
        .arg(format!("-t{THREADS}"))
        .arg(format!("-c{CONNECTIONS}"))
        .arg(format!("-d{seconds}s"))
        .arg("--latency")
        .arg(url)
        .output()
        .context("run wrk")?;
    parse_wrk(&String::from_utf8_lossy(&output.stdout))
}

/// Reads requests/s, the 50th and 99th latency percentiles and the error
/// counts out of wrk's `--latency` report.
pub fn parse_wrk(text: &str) -> Result<HttpCell> {
    let mut cell = HttpCell::default();
    let mut seen_rps = false;
    for line in text.lines().map(str::trim) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields.as_slice() {
            ["Requests/sec:", value] => {
                cell.requests_per_sec = value.parse()?;
                seen_rps = true;
            }
            ["50%", value] => cell.p50_ms = duration_ms(value)?,
            ["99%", value] => cell.p99_ms = duration_ms(value)?,
            ["Non-2xx", "or", "3xx", "responses:", count] => cell.errors += count.parse::<u64>()?,
            ["Socket", "errors:", rest @ ..] => {
                cell.errors += rest
                    .iter()
                    .filter_map(|f| f.trim_end_matches(',').parse::<u64>().ok())
                    .sum::<u64>();
            }
            _ => {}
        }
    }
    if !seen_rps {
        bail!("no Requests/sec in wrk's output:\n{text}");
    }
    Ok(cell)
}

fn duration_ms(value: &str) -> Result<f64> {
    let split = value
        .find(|c: char| c.is_ascii_alphabetic())
        .context("a duration with a unit")?;
    let (number, unit) = value.split_at(split);
    let number: f64 = number.parse()?;
    Ok(match unit {
        "us" => number / 1000.0,
        "ms" => number,
        "s" => number * 1000.0,
        "m" => number * 60_000.0,
        other => bail!("unknown unit {other:?} in {value:?}"),
    })
}

fn wait_listening(port: u16, limit: Duration) -> Result<()> {
    let deadline = Instant::now() + limit;
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            bail!("nothing listens on 127.0.0.1:{port} after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

fn which(tool: &str) -> Result<PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join(tool))
        .find(|candidate| candidate.is_file())
        .with_context(|| format!("{tool} not on PATH"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrk_reports_are_read() {
        let report = "Running 10s test @ http://127.0.0.1:8080/hello
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   711.32us  300.12us  12.01ms   90.00%
  Latency Distribution
     50%  652.00us
     75%  800.00us
     90%    1.01ms
     99%    2.50ms
  451234 requests in 10.00s, 60.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:  45123.40
Transfer/sec:      6.00MB
";
        let cell = parse_wrk(report).expect("parsed");
        assert_eq!(cell.requests_per_sec, 45123.40);
        assert_eq!(cell.p50_ms, 0.652);
        assert_eq!(cell.p99_ms, 2.5);
        assert_eq!(cell.errors, 7);
    }

    #[test]
    fn a_cell_is_the_median_of_its_rounds_figure_by_figure() {
        let round = |rps: f64, p99: f64, errors: u64| HttpCell {
            server: "rr".to_owned(),
            endpoint: "/hello",
            requests_per_sec: rps,
            p50_ms: 0.5,
            p99_ms: p99,
            errors,
            rounds: Vec::new(),
        };
        let cell = median_cell(vec![
            round(40.0, 1.0, 0),
            round(50.0, 3.0, 1),
            round(45.0, 2.0, 2),
        ])
        .expect("a cell");
        assert_eq!(cell.requests_per_sec, 45.0);
        assert_eq!(cell.p99_ms, 2.0);
        assert_eq!(cell.errors, 3);
        assert_eq!(cell.rounds, vec![40.0, 50.0, 45.0]);
        let even = median_cell(vec![round(40.0, 1.0, 0), round(50.0, 3.0, 0)]).expect("a cell");
        assert_eq!(even.requests_per_sec, 45.0);
        assert!(median_cell(Vec::new()).is_none());
    }
}
