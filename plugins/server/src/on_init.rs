//! `server.on_init`: a command run once before the first worker starts
//! (migrations, cache warm-up).

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use rr_config::duration::non_negative;
use rr_config::{ConfigError, StringOrList};
use rr_plugin::PluginError;
use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;

/// The `server.on_init` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct OnInitConfig {
    /// The command (required).
    pub command: Option<StringOrList>,
    /// Longest it may run; killed after that.
    #[serde(deserialize_with = "non_negative")]
    pub exec_timeout: Duration,
    /// Extra environment; rr's own variables win on duplicates, as in RoadRunner.
    pub env: BTreeMap<String, String>,
    /// Accepted for compatibility; the command runs as `server.user`.
    pub user: String,
    /// Stop rr when the command fails or times out (otherwise it is only logged).
    pub exit_on_error: bool,
}

impl Default for OnInitConfig {
    fn default() -> Self {
        OnInitConfig {
            command: None,
            exec_timeout: Duration::from_secs(60),
            env: BTreeMap::new(),
            user: String::new(),
            exit_on_error: false,
        }
    }
}

impl OnInitConfig {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.argv().is_empty() {
            return Err(ConfigError::missing(
                "server.on_init.command",
                "on_init command should not be empty",
            ));
        }
        Ok(())
    }

    fn argv(&self) -> Vec<String> {
        self.command
            .as_ref()
            .map(|c| c.0.clone())
            .unwrap_or_default()
    }

    /// Runs the command, logging its output line by line.
    pub(crate) async fn run(&self, user: Option<(u32, u32)>) -> Result<(), PluginError> {
        let argv = self.argv();
        let Some((program, args)) = argv.split_first() else {
            return Ok(());
        };
        let mut command = Command::new(program);
        command
            .args(args)
            .envs(
                self.env
                    .iter()
                    .filter(|(k, _)| std::env::var_os(k.to_ascii_uppercase()).is_none())
                    .map(|(k, v)| (k.to_ascii_uppercase(), v)),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        if let Some((uid, gid)) = user {
            command.uid(uid).gid(gid);
        }
        let display = argv.join(" ");
        let outcome = match command.spawn() {
            Err(e) => Err(format!("on_init command `{display}` could not start: {e}")),
            Ok(mut child) => {
                let stdout = child.stdout.take().map(|s| tokio::spawn(log_lines(s)));
                let stderr = child.stderr.take().map(|s| tokio::spawn(log_lines(s)));
                let waited = tokio::time::timeout(self.exec_timeout, child.wait()).await;
                let result = match waited {
                    Ok(Ok(status)) if status.success() => Ok(()),
                    Ok(Ok(status)) => Err(format!(
                        "on_init was finished with errors: `{display}` exited with {status}"
                    )),
                    Ok(Err(e)) => Err(format!("on_init command `{display}` failed: {e}")),
                    Err(_) => {
                        let _ = child.kill().await;
                        Err(format!(
                            "startup process has been killed by timeout ({:?})",
                            self.exec_timeout
                        ))
                    }
                };
                for task in [stdout, stderr].into_iter().flatten() {
                    let _ = task.await;
                }
                result
            }
        };
        match outcome {
            Ok(()) => Ok(()),
            Err(message) if self.exit_on_error => Err(PluginError::Other(message)),
            Err(message) => {
                tracing::error!(target: "server", "{message}");
                Ok(())
            }
        }
    }
}

async fn log_lines(output: impl AsyncRead + Unpin) {
    let mut lines = BufReader::new(output).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        tracing::info!(target: "server", "{line}");
    }
}
