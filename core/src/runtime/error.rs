//! The runtime's error type: what can go wrong loading a plugin or calling it.
//!
//! Traps, timeouts, memory exhaustion, capability denials and the plugin's own
//! `connector-error` are distinct variants all the way to the job's error message,
//! so an operator can tell "the plugin said no" from "the plugin crashed".

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

/// A capability a plugin asked for and did not get.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Capability {
    /// A file path outside the granted directories (or with a `..` component).
    Directory(PathBuf),
    /// A command name the manifest does not list or the operator did not grant.
    Command(String),
    /// An outbound HTTP authority (`host` or `host:port`) that was not granted.
    Host(String),
    /// An outbound connection the outbound guard refused for another reason than the host
    /// not being granted at all: plain http, a port, or an address in a refused range.
    Outbound(Box<crate::outbound::Refusal>),
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Directory(path) => write!(f, "directory access to {}", path.display()),
            Self::Command(name) => write!(f, "command `{name}`"),
            Self::Host(host) => write!(f, "outbound host `{host}`"),
            Self::Outbound(refusal) => write!(f, "{refusal}"),
        }
    }
}

/// The class of a plugin's own error, as declared in the WIT `error-kind` enum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ConnectorErrorKind {
    /// The configuration JSON is invalid.
    InvalidConfig,
    /// The request is unusable.
    InvalidRequest,
    /// A capability was not granted.
    Denied,
    /// A host file operation failed.
    Io,
    /// A granted command ran and failed.
    CommandFailed,
    /// A remote system was unavailable (retryable).
    Unavailable,
    /// A remote system refused the request.
    Rejected,
    /// The plugin does not implement this mode or operation.
    Unsupported,
    /// A bug in the plugin.
    Internal,
}

impl ConnectorErrorKind {
    /// The kebab-case name used in WIT and in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidConfig => "invalid-config",
            Self::InvalidRequest => "invalid-request",
            Self::Denied => "denied",
            Self::Io => "io",
            Self::CommandFailed => "command-failed",
            Self::Unavailable => "unavailable",
            Self::Rejected => "rejected",
            Self::Unsupported => "unsupported",
            Self::Internal => "internal",
        }
    }
}

impl fmt::Display for ConnectorErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything that can go wrong loading or calling a plugin.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    /// The wasmtime engine or the runtime's thread pool could not be built.
    #[error("plugin runtime could not start: {0}")]
    Setup(String),

    /// A file the runtime needed (manifest, component, grants, plugin dir) could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// `plugin.toml` is not valid TOML or misses or mistypes a field.
    #[error("malformed manifest {}: {message}", path.display())]
    MalformedManifest {
        /// The manifest file.
        path: PathBuf,
        /// What is wrong, with line and column where the TOML parser knows them.
        message: String,
    },

    /// The manifest names a WIT version this host does not implement.
    #[error(
        "plugin `{plugin}` was built against WIT certctl:connector@{found}, \
         but this host implements {supported}; rebuild it against a supported version"
    )]
    UnsupportedWit {
        /// The plugin id.
        plugin: String,
        /// The version in the manifest.
        found: String,
        /// The versions this host implements (e.g. "0.1.x").
        supported: String,
    },

    /// The operator's grants file is not valid.
    #[error("malformed grants file {}: {message}", path.display())]
    MalformedGrants {
        /// The grants file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },

    /// The `.wasm` file is not a component this engine can compile.
    #[error("plugin `{plugin}` failed to compile: {message}")]
    Compile {
        /// The plugin id.
        plugin: String,
        /// The compiler's message.
        message: String,
    },

    /// The component does not fit its world: it imports something the host does not
    /// provide or lacks an export of its kind.
    #[error("plugin `{plugin}` does not match the `{world}` world: {message}")]
    Link {
        /// The plugin id.
        plugin: String,
        /// The world its manifest claims.
        world: &'static str,
        /// The linker's message.
        message: String,
    },

    /// Two plugins in the plugin directory share an id.
    #[error("duplicate plugin id `{plugin}` (also loaded from {})", first.display())]
    Duplicate {
        /// The plugin id.
        plugin: String,
        /// Where the first one came from.
        first: PathBuf,
    },

    /// No plugin with this id was found.
    #[error("no plugin `{plugin}` is installed")]
    NotFound {
        /// The plugin id.
        plugin: String,
    },

    /// The plugin exists but failed to load.
    #[error("plugin `{plugin}` is not loaded: {reason}")]
    NotLoaded {
        /// The plugin id.
        plugin: String,
        /// Its load error.
        reason: String,
    },

    /// The plugin is of another kind than the one asked for.
    #[error("plugin `{plugin}` is a {found} connector, not a {expected} connector")]
    WrongKind {
        /// The plugin id.
        plugin: String,
        /// The kind asked for.
        expected: &'static str,
        /// The kind in its manifest.
        found: &'static str,
    },

    /// The plugin trapped (panicked, hit `unreachable`, overflowed its stack).
    #[error("plugin `{plugin}` trapped: {message}")]
    Trap {
        /// The plugin id.
        plugin: String,
        /// The trap and, when the guest printed one, its panic message.
        message: String,
    },

    /// The call ran past its deadline and was interrupted.
    #[error("plugin `{plugin}` timed out after {}", humanize(*after))]
    Timeout {
        /// The plugin id.
        plugin: String,
        /// The deadline.
        after: Duration,
    },

    /// The plugin tried to grow its memory past the cap.
    #[error("plugin `{plugin}` ran out of memory (limit {} MiB)", limit_bytes / (1024 * 1024))]
    OutOfMemory {
        /// The plugin id.
        plugin: String,
        /// The cap in bytes.
        limit_bytes: u64,
    },

    /// The plugin used a capability it was not granted.
    #[error("{}", denied_message(plugin, capability))]
    Denied {
        /// The plugin id.
        plugin: String,
        /// What it asked for.
        capability: Capability,
    },

    /// The plugin returned its own `connector-error`.
    #[error("plugin `{plugin}` failed ({kind}): {message}")]
    Connector {
        /// The plugin id.
        plugin: String,
        /// The error class.
        kind: ConnectorErrorKind,
        /// The plugin's message.
        message: String,
    },

    /// The runtime was shut down or its worker panicked while the call was in flight.
    #[error("plugin runtime is unavailable: {0}")]
    Unavailable(String),
}

impl RuntimeError {
    /// The plugin this error is about, when there is one.
    pub fn plugin(&self) -> Option<&str> {
        match self {
            Self::UnsupportedWit { plugin, .. }
            | Self::Compile { plugin, .. }
            | Self::Link { plugin, .. }
            | Self::Duplicate { plugin, .. }
            | Self::NotFound { plugin }
            | Self::NotLoaded { plugin, .. }
            | Self::WrongKind { plugin, .. }
            | Self::Trap { plugin, .. }
            | Self::Timeout { plugin, .. }
            | Self::OutOfMemory { plugin, .. }
            | Self::Denied { plugin, .. }
            | Self::Connector { plugin, .. } => Some(plugin),
            _ => None,
        }
    }

    /// A short machine-readable code for APIs and job records
    /// (`timeout`, `denied`, `connector_error`, …).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Setup(_) => "runtime_setup",
            Self::Io { .. } => "io",
            Self::MalformedManifest { .. } => "malformed_manifest",
            Self::UnsupportedWit { .. } => "unsupported_wit",
            Self::MalformedGrants { .. } => "malformed_grants",
            Self::Compile { .. } => "compile",
            Self::Link { .. } => "link",
            Self::Duplicate { .. } => "duplicate",
            Self::NotFound { .. } => "not_found",
            Self::NotLoaded { .. } => "not_loaded",
            Self::WrongKind { .. } => "wrong_kind",
            Self::Trap { .. } => "trap",
            Self::Timeout { .. } => "timeout",
            Self::OutOfMemory { .. } => "out_of_memory",
            Self::Denied { .. } => "denied",
            Self::Connector { .. } => "connector_error",
            Self::Unavailable(_) => "unavailable",
        }
    }

    /// Whether retrying the same call later may succeed without anyone changing
    /// configuration, grants or the plugin.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Timeout { .. } | Self::Unavailable(_) => true,
            Self::Connector { kind, .. } => matches!(kind, ConnectorErrorKind::Unavailable),
            _ => false,
        }
    }
}

fn denied_message(plugin: &str, capability: &Capability) -> String {
    match capability {
        // The guard's refusal says which rule and how to grant it.
        Capability::Outbound(refusal) => format!("plugin `{plugin}` was denied: {refusal}"),
        other => format!(
            "plugin `{plugin}` was denied {other}: not requested by its manifest \
             or not granted by the operator"
        ),
    }
}

fn humanize(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{} ms", d.as_millis())
    }
}
