//! The `rr` command line as a library: `rr serve` and friends,
//! RoadRunner's flags, and `rr build` (custom binaries).
//!
//! Only wiring lives here: flags → configuration → container → signals.
//! A binary is one call: the stock `rr` passes [`plugins::all`]; a binary
//! made by `rr build` passes the plugins its `plugins.toml` lists:
//!
//! ```no_run
//! fn main() -> std::process::ExitCode {
//!     rr::run(vec![
//!         Box::new(rr_logger::LoggerPlugin),
//!         Box::new(rr_server::ServerPlugin::default()),
//!     ])
//! }
//! ```

pub mod builder;
mod cli;
pub mod plugins;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Signals closer together than this count as one delivery.
const DUPLICATE_SIGNAL_WINDOW: Duration = Duration::from_millis(250);

use anyhow::{bail, Context, Result};
use clap::parser::ValueSource;
use clap::{ArgAction, CommandFactory, FromArgMatches, Parser, Subcommand};
use rr_config::{Config, LoadOptions};
use rr_plugin::{Container, Plugin};
use tokio::signal::unix::{signal, SignalKind};

/// rr: a PHP application server, compatible with RoadRunner's `.rr.yaml`
/// and its PHP worker packages.
#[derive(Debug, Parser)]
#[command(name = "rr", disable_version_flag = true)]
struct Cli {
    /// Configuration file.
    #[arg(
        short = 'c',
        long = "config",
        default_value = ".rr.yaml",
        global = true
    )]
    config: PathBuf,
    /// Working directory; without it rr changes into the config file's directory.
    #[arg(short = 'w', long = "WorkDir", global = true)]
    work_dir: Option<PathBuf>,
    /// Override a configuration value: `-o ticker.interval=500ms` (repeatable).
    #[arg(short = 'o', long = "override", global = true, action = ArgAction::Append)]
    overrides: Vec<String>,
    /// Load environment variables from this file first (env DOTENV_PATH wins).
    #[arg(long = "dotenv", global = true)]
    dotenv: Option<PathBuf>,
    /// Write rr's pid to `.pid` in the working directory.
    #[arg(short = 'p', long = "pid", global = true)]
    pid: bool,
    /// Print the version and the plugins of this binary.
    #[arg(short = 'v', long = "version", action = ArgAction::Version)]
    version: Option<bool>,
    #[command(subcommand)]
    command: Command,
}

/// `rr schedules ...`.
#[derive(Debug, Subcommand)]
enum SchedulesAction {
    /// Show every schedule: spec, state, next and last run, last result, runs.
    List,
    /// Run a schedule now (under its overlap policy).
    Trigger {
        /// The schedule's name.
        name: String,
    },
    /// Stop planning a schedule's runs until it is resumed.
    Pause {
        /// The schedule's name.
        name: String,
    },
    /// Plan a paused schedule's runs again, from now on its timeline.
    Resume {
        /// The schedule's name.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the server.
    Serve,
    /// Replace the workers of every resettable plugin, or of the named ones (over RPC).
    Reset {
        /// Plugins to reset; all that support it when none is given.
        plugins: Vec<String>,
    },
    /// Show the workers of every plugin that has some, or of the named ones (over RPC).
    Workers {
        /// Refresh every second until Ctrl+C.
        #[arg(short = 'i', long = "interactive")]
        interactive: bool,
        /// Plugins to show; all that have workers when none is given.
        plugins: Vec<String>,
    },
    /// List, trigger, pause or resume the ticker's named schedules (over RPC).
    Schedules {
        #[command(subcommand)]
        action: Option<SchedulesAction>,
    },
    /// List, pause or resume the jobs pipelines (over RPC).
    Jobs {
        #[command(subcommand)]
        action: Option<cli::JobsAction>,
    },
    /// Stop the server whose pid is in `.pid` (see `rr serve -p`).
    Stop {
        /// Send a second SIGTERM after 1 s: rr then exits at once.
        #[arg(short = 'f', long = "force")]
        force: bool,
    },
    /// Build a custom rr binary from a plugins TOML file (like Velox's `vx build`).
    #[command(after_help = BUILD_HELP)]
    Build,
}

/// `rr build -h`: the global `-c` and `-o` mean other things here.
const BUILD_HELP: &str = "\
Usage: rr build [-c plugins.toml] [-o DIR]

  -c FILE   the plugins TOML file (default: plugins.toml)
  -o DIR    where to write the binary, as DIR/rr (default: .)

Environment: CARGO_TARGET_DIR (the build cache; default: the target
directory of the rr checkout), CARGO (the cargo to run).
The file's format and a walk-through: docs/custom-plugin.md.";

/// The line `rr --version` prints.
fn version_line(version: &str, plugins: &[&str]) -> String {
    format!(
        "{} (RoadRunner-compatible {}), plugins: {}, OS: {}, arch: {}",
        version,
        rr_server::RR_COMPATIBLE_VERSION,
        plugins.join(", "),
        std::env::consts::OS,
        std::env::consts::ARCH,
    )
}

/// Runs the `rr` command line with these plugins compiled in; `main` of
/// every rr binary. The version `--version` shows is this crate's, or
/// `RR_BUILD_VERSION` when that was set at compile time.
pub fn run(plugins: Vec<Box<dyn Plugin>>) -> ExitCode {
    run_versioned(plugins, option_env!("RR_BUILD_VERSION"))
}

/// [`run`] with the version string `--version` shows (`None`: this crate's
/// version). Binaries made by `rr build` pass `[rr] version` here.
pub fn run_versioned(plugins: Vec<Box<dyn Plugin>>, version: Option<&str>) -> ExitCode {
    let names: Vec<&str> = plugins.iter().map(|p| p.name()).collect();
    let version = version
        .filter(|v| !v.is_empty())
        .unwrap_or(env!("CARGO_PKG_VERSION"));
    let matches = Cli::command()
        .version(version_line(version, &names))
        .get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(err) => err.exit(),
    };
    let explicit = |id: &str| matches.value_source(id) == Some(ValueSource::CommandLine);
    let result = match &cli.command {
        Command::Serve => serve(&cli, plugins, version),
        Command::Reset { plugins } => cli::reset(&cli, plugins),
        Command::Workers {
            interactive,
            plugins,
        } => cli::workers(&cli, plugins, *interactive),
        Command::Schedules { action } => match action {
            None | Some(SchedulesAction::List) => cli::schedules_list(&cli),
            Some(SchedulesAction::Trigger { name }) => {
                cli::schedules_command(&cli, "Trigger", name)
            }
            Some(SchedulesAction::Pause { name }) => cli::schedules_command(&cli, "Pause", name),
            Some(SchedulesAction::Resume { name }) => cli::schedules_command(&cli, "Resume", name),
        },
        Command::Jobs { action } => cli::jobs(&cli, action.as_ref()),
        Command::Stop { force } => cli::stop(&cli, *force),
        Command::Build => {
            let spec = if explicit("config") {
                cli.config.clone()
            } else {
                PathBuf::from("plugins.toml")
            };
            match cli.overrides.as_slice() {
                [] => builder::build(&spec, std::path::Path::new(".")),
                [out] => builder::build(&spec, std::path::Path::new(out)),
                _ => Err(anyhow::anyhow!(
                    "rr build takes one output directory (-o DIR)"
                )),
            }
        }
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {}", error_text(&err));
            ExitCode::FAILURE
        }
    }
}

/// `err` with its causes, like `{:#}`, but without a cause whose text the
/// message before it already contains: the container's errors print their
/// source and also expose it, which would otherwise repeat it.
fn error_text(err: &anyhow::Error) -> String {
    let mut text = err.to_string();
    for cause in err.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

/// Resolves the config path and the working directory the way RoadRunner
/// does: `-w` first; otherwise change into the config file's directory.
fn enter_work_dir(cli: &Cli) -> Result<PathBuf> {
    let config = enter_work_dir_unchecked(cli)?;
    if !config.is_file() {
        bail!(
            "configuration file {} not found (use -c to name another file)",
            config.display()
        );
    }
    Ok(config)
}

/// Like [`enter_work_dir`], without requiring the config file to exist
/// (`rr stop` only needs the directory of `.pid`).
fn enter_work_dir_unchecked(cli: &Cli) -> Result<PathBuf> {
    if let Some(dir) = &cli.work_dir {
        std::env::set_current_dir(dir).with_context(|| {
            format!("cannot change into the working directory {}", dir.display())
        })?;
    }
    let config = std::path::absolute(&cli.config)
        .with_context(|| format!("invalid configuration path {}", cli.config.display()))?;
    if cli.work_dir.is_none() {
        if let Some(dir) = config.parent() {
            std::env::set_current_dir(dir)
                .with_context(|| format!("cannot change into {}", dir.display()))?;
        }
    }
    Ok(config)
}

fn serve(cli: &Cli, plugins: Vec<Box<dyn Plugin>>, version: &str) -> Result<ExitCode> {
    let config_path = enter_work_dir(cli)?;
    let config = Config::load(&LoadOptions {
        path: config_path,
        overrides: cli.overrides.clone(),
        dotenv: cli.dotenv.clone(),
    })?;
    // One lane per core to start with; pools add a lane per worker.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let runtime = rr_pool::Lanes::install(cores).context("cannot start the runtime lanes")?;
    let pid_file = cli.pid.then(|| PathBuf::from(".pid"));
    if let Some(path) = &pid_file {
        std::fs::write(path, std::process::id().to_string())
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let result = runtime.block_on(serve_until_stopped(config, plugins, version));
    if let Some(path) = &pid_file {
        let _ = std::fs::remove_file(path);
    }
    // Worker reaper tasks may still be winding down; don't wait for them.
    runtime.shutdown_timeout(Duration::from_millis(100));
    result
}

async fn serve_until_stopped(
    config: Config,
    plugins: Vec<Box<dyn Plugin>>,
    version: &str,
) -> Result<ExitCode> {
    let grace = config.endure()?.grace_period;
    let notices: Vec<String> = config.deprecation_notices().to_vec();
    let mut container = Container::new(config);
    for plugin in plugins {
        container.register(plugin)?;
    }
    container.init().await?;
    for notice in notices {
        tracing::warn!(target: "rr", "{notice}");
    }
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;

    if let Err(err) = container.serve().await {
        // Plugins served before the failing one may have started workers.
        let _ = container.stop(grace).await;
        return Err(err.into());
    }
    tracing::info!(target: "rr", version, "rr server started");

    let failure = tokio::select! {
        _ = interrupt.recv() => None,
        _ = terminate.recv() => None,
        failure = container.next_failure() => failure,
    };
    if let Some((plugin, err)) = &failure {
        tracing::error!(target: "rr", plugin, error = %err, "plugin failed; stopping");
    } else {
        tracing::info!(target: "rr", "stop signal received, grace timeout is: {} seconds", grace.as_secs());
    }
    let worker_pids: Vec<u32> = container
        .plugins()
        .iter()
        .filter_map(|p| p.workers())
        .flatten()
        .map(|w| w.pid)
        .collect();
    let second_signal = async {
        let first = Instant::now();
        loop {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
            // One signal sent to rr and to its process group (GNU timeout,
            // some supervisors) arrives twice at once: that is not a second
            // request to stop.
            if first.elapsed() >= DUPLICATE_SIGNAL_WINDOW {
                return;
            }
        }
    };
    let stopped = tokio::select! {
        stopped = container.stop(grace) => stopped,
        () = second_signal => force_exit(&worker_pids),
    };
    if let Some((plugin, err)) = failure {
        bail!("{err}\nplugin: {plugin}");
    }
    stopped?;
    tracing::info!(target: "rr", "rr server stopped");
    Ok(ExitCode::SUCCESS)
}

/// A second signal during the graceful stop: leave at once. Workers run in
/// their own process groups, so they are killed here rather than left behind.
fn force_exit(worker_pids: &[u32]) -> ! {
    for pid in worker_pids {
        let group = nix::unistd::Pid::from_raw(*pid as i32);
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
    }
    eprintln!("exit forced");
    std::process::exit(1);
}
