//! The `commands` host interface: runs an operator-granted argument vector by name.
//!
//! The plugin never supplies a command line: it names a command its manifest lists
//! (`validate`, `reload`), and the operator's grant supplies the argv, executed
//! directly (no shell), with stdin closed, bounded by the call's deadline (the child
//! is killed when the call is abandoned). The child's environment is cleared down to
//! `PATH` and `HOME`, so the agent's own settings (API key, tokens) never reach it.

use std::process::Stdio;

use super::bindings::{commands, types};
use super::error::Capability;
use super::host::{HostState, error};

/// Output kept per stream (the tail, where errors usually are).
const MAX_OUTPUT: usize = 64 * 1024;
/// `PATH` for commands when the host process has none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

impl commands::Host for HostState {
    async fn is_granted(&mut self, name: String) -> bool {
        self.caps.commands.contains_key(&name)
    }

    async fn run(
        &mut self,
        name: String,
    ) -> Result<commands::CommandOutput, types::ConnectorError> {
        let Some(argv) = self.caps.commands.get(&name).cloned() else {
            return Err(self.deny(Capability::Command(name)));
        };
        let Some((program, args)) = argv.split_first() else {
            return Err(self.deny(Capability::Command(name)));
        };
        tracing::info!(plugin = %self.plugin, command = %name, argv = ?argv, "running granted command");
        let mut command = tokio::process::Command::new(program);
        command.env_clear().env(
            "PATH",
            std::env::var_os("PATH").unwrap_or_else(|| DEFAULT_PATH.into()),
        );
        if let Some(home) = std::env::var_os("HOME") {
            command.env("HOME", home);
        }
        let child = command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                error(
                    types::ErrorKind::Io,
                    format!("command `{name}` ({program}) could not start: {e}"),
                )
            })?;
        let output = match tokio::time::timeout_at(self.deadline, child.wait_with_output()).await {
            Ok(Ok(output)) => output,
            Ok(Err(e)) => {
                return Err(error(
                    types::ErrorKind::Io,
                    format!("command `{name}` failed: {e}"),
                ));
            }
            Err(_) => {
                return Err(error(
                    types::ErrorKind::Unavailable,
                    format!(
                        "command `{name}` did not finish before the call's deadline and was killed"
                    ),
                ));
            }
        };
        Ok(commands::CommandOutput {
            status: output.status.code().unwrap_or(-1),
            stdout: tail(&output.stdout),
            stderr: tail(&output.stderr),
        })
    }
}

fn tail(bytes: &[u8]) -> String {
    let start = bytes.len().saturating_sub(MAX_OUTPUT);
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}
