//! The per-call host state (`Store<HostState>`): WASI context, memory limiter,
//! the plugin's effective capabilities, the file journal and the denials recorded
//! during the call. Also the `log` interface, which needs nothing else.
//!
//! The `files`, `commands` and outbound HTTP implementations live in their own
//! modules; each records a denial here before returning the `denied` error, so the
//! runtime can report which capability was refused however the guest reacts.

use std::sync::Arc;

use tokio::time::Instant;
use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::bindings::{log, types};
use super::error::{Capability, ConnectorErrorKind};
use super::files::Journal;
use super::grants::EffectiveCapabilities;
use super::http::HttpHooks;
use crate::outbound::{OutboundGuard, Policy, Resolver};

/// Lines a plugin may log in one call; the rest are dropped (with one warning).
const MAX_LOG_LINES: u32 = 1000;
/// Longest logged message; longer ones are cut.
const MAX_LOG_LINE: usize = 4096;
/// How much of the guest's stderr is kept (panic messages end up there).
const STDERR_CAPACITY: usize = 16 * 1024;

/// Everything a single call's store holds.
pub(crate) struct HostState {
    pub(crate) plugin: Arc<str>,
    pub(crate) caps: Arc<EffectiveCapabilities>,
    pub(crate) limiter: MemoryLimiter,
    /// Capabilities refused during this call, in order.
    pub(crate) denials: Vec<Capability>,
    pub(crate) journal: Journal,
    /// When the call must be over; commands are bounded by it too.
    pub(crate) deadline: Instant,
    pub(crate) hooks: HttpHooks,
    /// The outbound guard over the plugin's `hosts` grant (wasi:http and smtp).
    pub(crate) outbound: OutboundGuard,
    /// The STARTTLS client configuration of the `smtp` interface (built once per runtime).
    pub(crate) smtp_tls: Arc<tokio_rustls::rustls::ClientConfig>,
    stderr: MemoryOutputPipe,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    log_lines: u32,
}

impl HostState {
    pub(crate) fn new(
        plugin: Arc<str>,
        caps: Arc<EffectiveCapabilities>,
        memory_limit: usize,
        deadline: Instant,
        net: &Network,
    ) -> Self {
        let stderr = MemoryOutputPipe::new(STDERR_CAPACITY);
        // No preopened directories, no environment, no arguments, no sockets: the
        // only ways out are the host interfaces and the filtered wasi:http.
        let wasi = WasiCtx::builder().stderr(stderr.clone()).build();
        let outbound = outbound_guard(&plugin, &caps.hosts, net.resolver.clone());
        Self {
            hooks: HttpHooks::new(outbound.clone(), net.http_tls.clone()),
            outbound,
            plugin,
            caps,
            limiter: MemoryLimiter {
                limit: memory_limit,
                exceeded: false,
            },
            denials: Vec::new(),
            journal: Journal::default(),
            deadline,
            smtp_tls: net.smtp_tls.clone(),
            stderr,
            wasi,
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            log_lines: 0,
        }
    }

    /// Records a refused capability and builds the `denied` error for the guest.
    pub(crate) fn deny(&mut self, capability: Capability) -> types::ConnectorError {
        let message = match &capability {
            Capability::Outbound(refusal) => refusal.to_string(),
            other => format!("{other} is not granted to plugin `{}`", self.plugin),
        };
        tracing::warn!(plugin = %self.plugin, %capability, "plugin capability denied");
        self.denials.push(capability);
        types::ConnectorError {
            kind: types::ErrorKind::Denied,
            message,
        }
    }

    /// All denials of the call, from the host interfaces and from wasi:http.
    pub(crate) fn take_denials(&mut self) -> Vec<Capability> {
        let mut all = std::mem::take(&mut self.denials);
        all.append(&mut self.hooks.take_denied());
        all
    }

    /// What the guest wrote to stderr, trimmed (a panic message, usually).
    pub(crate) fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.contents())
            .trim()
            .to_string()
    }
}

/// What calls need to reach the network, built once per runtime.
pub(crate) struct Network {
    /// STARTTLS client configuration of the `smtp` interface.
    pub(crate) smtp_tls: Arc<tokio_rustls::rustls::ClientConfig>,
    /// TLS client configuration of outbound https (webpki roots).
    pub(crate) http_tls: Arc<tokio_rustls::rustls::ClientConfig>,
    /// How the outbound guard resolves names.
    pub(crate) resolver: Arc<dyn Resolver>,
}

/// The guard of a plugin: only its `hosts` grant, which `Grants::parse` checked (a grant
/// that does not parse, from a programmatic setup, is dropped with a warning).
fn outbound_guard(plugin: &str, hosts: &[String], resolver: Arc<dyn Resolver>) -> OutboundGuard {
    let grants = hosts
        .iter()
        .filter_map(|h| match h.parse() {
            Ok(g) => Some(g),
            Err(e) => {
                tracing::warn!(%plugin, error = %e, "ignoring an outbound grant");
                None
            }
        })
        .collect();
    let policy = Policy::granted_only(
        grants,
        format!("the `hosts` grant of plugin `{plugin}` (CERTCTL_PLUGIN_GRANTS)"),
    );
    OutboundGuard::new(policy).with_resolver(resolver)
}

/// Shorthand for host interface errors.
pub(crate) fn error(kind: types::ErrorKind, message: impl Into<String>) -> types::ConnectorError {
    types::ConnectorError {
        kind,
        message: message.into(),
    }
}

impl From<types::ErrorKind> for ConnectorErrorKind {
    fn from(kind: types::ErrorKind) -> Self {
        use types::ErrorKind as K;
        match kind {
            K::InvalidConfig => Self::InvalidConfig,
            K::InvalidRequest => Self::InvalidRequest,
            K::Denied => Self::Denied,
            K::Io => Self::Io,
            K::CommandFailed => Self::CommandFailed,
            K::Unavailable => Self::Unavailable,
            K::Rejected => Self::Rejected,
            K::Unsupported => Self::Unsupported,
            K::Internal => Self::Internal,
        }
    }
}

/// Caps linear memory growth and remembers whether the cap was hit, so a trap that
/// follows is reported as out-of-memory rather than as whatever the guest did next.
pub(crate) struct MemoryLimiter {
    limit: usize,
    pub(crate) exceeded: bool,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limit {
            self.exceeded = true;
            // An error (rather than `Ok(false)`) traps at once, where the guest
            // would otherwise abort with a less precise message.
            return Err(wasmtime::format_err!(
                "memory limit of {} bytes exceeded (wanted {desired})",
                self.limit
            ));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

impl types::Host for HostState {}

impl log::Host for HostState {
    async fn log(&mut self, level: log::Level, message: String) {
        self.log_lines += 1;
        if self.log_lines > MAX_LOG_LINES {
            if self.log_lines == MAX_LOG_LINES + 1 {
                tracing::warn!(plugin = %self.plugin, "plugin log limit reached; dropping further lines");
            }
            return;
        }
        let mut message = message;
        if message.len() > MAX_LOG_LINE {
            let mut cut = MAX_LOG_LINE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push('…');
        }
        let plugin = &*self.plugin;
        match level {
            log::Level::Trace => tracing::trace!(plugin, "{message}"),
            log::Level::Debug => tracing::debug!(plugin, "{message}"),
            log::Level::Info => tracing::info!(plugin, "{message}"),
            log::Level::Warn => tracing::warn!(plugin, "{message}"),
            log::Level::Error => tracing::error!(plugin, "{message}"),
        }
    }
}
