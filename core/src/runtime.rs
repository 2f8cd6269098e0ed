//! The WebAssembly connector runtime (cargo feature `runtime`), shared by the
//! server (issuers, notifiers) and the agent (targets).
//!
//! Plugins are WebAssembly components implementing a world of WIT package
//! `certctl:connector` (`wit/`). The runtime discovers them in a plugin directory,
//! checks their manifests, compiles them once (with an on-disk cache), and runs each
//! call in a fresh, sandboxed instance:
//!
//! - a memory cap (default 64 MiB) and a deadline (default 30 s, enforced by epoch
//!   interruption ticking every 10 ms, and by a timer around host calls such as
//!   commands);
//! - no filesystem, environment, clock-free sockets or network beyond what the
//!   operator granted: files through the `files` interface (confined to granted
//!   directories), commands by name through `commands` (argv from the grant),
//!   outbound HTTP through `wasi:http` and e-mail through `smtp` (both through the
//!   outbound guard, [`crate::outbound`], over the granted hosts: https only unless
//!   granted `http://`, granted ports, no loopback/private/metadata address unless a
//!   grant names it);
//! - a trap, timeout or out-of-memory fails that call with a typed error and
//!   nothing else; the next call gets a new instance.
//!
//! Calls run on a multi-threaded tokio runtime owned by [`PluginRuntime`], never on
//! the caller's executor; the futures returned to callers are `Send + 'static` and
//! only wait for the result, so actix's single-threaded workers can await them.
//!
//! ```no_run
//! # async fn example() -> Result<(), certctl_core::runtime::RuntimeError> {
//! use certctl_core::runtime::{Grants, PluginRuntime, RuntimeConfig, TargetRequest};
//! let rt = PluginRuntime::new(RuntimeConfig::default())?;
//! let set = rt.load_dir("/var/lib/certctl/plugins".as_ref(), &Grants::from_env()?)?;
//! let outcome = set
//!     .target("nginx")?
//!     .deploy(TargetRequest {
//!         certificate_pem: "…".into(),
//!         chain_pem: "…".into(),
//!         private_key_pem: "…".into(),
//!         config_json: r#"{"cert_path": "/etc/nginx/certs/site.pem", "key_path": "/etc/nginx/certs/site.key"}"#.into(),
//!         target_id: "t-web".into(),
//!         certificate_id: "mc-web".into(),
//!     })
//!     .await?;
//! println!("{}", outcome.message);
//! # Ok(()) }
//! ```

mod bindings;
mod cache;
mod commands;
mod error;
mod files;
mod grants;
mod host;
mod http;
mod issuer;
mod manifest;
mod notifier;
mod plugin_set;
mod smtp;
mod target;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, Trap};

pub use error::{Capability, ConnectorErrorKind, RuntimeError};
pub use grants::{EffectiveCapabilities, Grants, PluginGrant};
pub use issuer::{IssueRequest, IssuedCertificate, IssuerPlugin, Order, RevokeRequest};
pub use manifest::{Manifest, PluginKind, RequestedCapabilities, SUPPORTED_WIT_VERSIONS};
pub use notifier::{Notification, NotifierPlugin};
pub use plugin_set::{COMPONENT_FILE, MANIFEST_FILE, PluginEntry, PluginSet};
pub use smtp::read_ca_bundle;
pub use target::{
    DeployOutcome, TargetPlugin, TargetRequest, ValidationOutcome, ValidationRequest,
};

use bindings::types;
use host::HostState;

/// How often the epoch advances; deadlines are counted in these ticks.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Settings of a [`PluginRuntime`]. Build with struct update syntax over
/// `RuntimeConfig::default()`.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Where compiled components are cached (`None`: compile at every load).
    /// Conventionally `<data dir>/plugin-cache`.
    pub cache_dir: Option<PathBuf>,
    /// Linear memory cap per call, in bytes (default 64 MiB).
    pub memory_limit_bytes: u64,
    /// Deadline per call, host commands included (default 30 s).
    pub call_timeout: Duration,
    /// Threads of the runtime's own executor (default 2).
    pub worker_threads: usize,
    /// Calls that may run at once across all plugins (default 64); sizes the pooling
    /// allocator. Further calls wait for a slot (their deadline starts when they get
    /// one).
    pub max_concurrent_calls: u32,
    /// A PEM file of CA certificates the `smtp` interface trusts for STARTTLS on top of
    /// the webpki roots (a private mail relay's CA). Certificates are always verified;
    /// there is no switch to turn that off.
    pub smtp_ca_bundle: Option<PathBuf>,
    /// How the outbound guard resolves names for plugins' HTTP and SMTP (the system
    /// resolver; tests inject a [`crate::outbound::StaticResolver`]).
    pub resolver: Arc<dyn crate::outbound::Resolver>,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            cache_dir: None,
            memory_limit_bytes: 64 * 1024 * 1024,
            call_timeout: Duration::from_secs(30),
            worker_threads: 2,
            max_concurrent_calls: 64,
            smtp_ca_bundle: None,
            resolver: Arc::new(crate::outbound::SystemResolver),
        }
    }
}

/// The plugin runtime: a wasmtime engine, the linkers of each world, and the
/// executor calls run on. Cheap to clone; the executor stops when the last clone
/// (and every plugin handle) is gone.
#[derive(Clone)]
pub struct PluginRuntime {
    inner: Arc<Inner>,
}

/// Owned by the runtime handle: dropping it stops the executor and the epoch ticker.
pub(crate) struct Inner {
    shared: Arc<Shared>,
    executor: Option<tokio::runtime::Runtime>,
    handle: tokio::runtime::Handle,
    ticker_stop: Arc<AtomicBool>,
}

/// What calls in flight need; held by the spawned tasks (never the executor itself,
/// so a task can never be the one that shuts its own executor down).
pub(crate) struct Shared {
    engine: Engine,
    config: RuntimeConfig,
    /// One permit per instance the pool can hold: calls beyond it wait their turn.
    slots: tokio::sync::Semaphore,
    /// TLS configurations and the resolver of the outbound guard.
    net: host::Network,
    target_linker: Linker<HostState>,
    server_linker: Linker<HostState>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
        if let Some(executor) = self.executor.take() {
            // Allowed from inside another runtime (actix's), unlike a plain drop.
            executor.shutdown_background();
        }
    }
}

impl PluginRuntime {
    /// Builds the engine (pooling allocator; falls back to on-demand allocation if
    /// the pool cannot be reserved), the executor and the epoch ticker.
    pub fn new(config: RuntimeConfig) -> Result<Self, RuntimeError> {
        let setup = |e: &dyn std::fmt::Display| RuntimeError::Setup(e.to_string());
        let engine = match build_engine(&config, true) {
            Ok(engine) => engine,
            Err(e) => {
                tracing::warn!(error = %e, "plugin instance pool unavailable; using on-demand allocation");
                build_engine(&config, false).map_err(|e| setup(&e))?
            }
        };
        let net = host::Network {
            smtp_tls: smtp::tls_config(config.smtp_ca_bundle.as_deref())?,
            http_tls: smtp::tls_config(None)?,
            resolver: config.resolver.clone(),
        };
        let target_linker = linker(&engine, true).map_err(|e| setup(&e))?;
        let server_linker = linker(&engine, false).map_err(|e| setup(&e))?;
        if let Some(dir) = &config.cache_dir {
            std::fs::create_dir_all(dir).map_err(|source| RuntimeError::Io {
                path: dir.clone(),
                source,
            })?;
        }
        let executor = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.worker_threads.max(1))
            .thread_name("certctl-plugins")
            .enable_all()
            .build()
            .map_err(|e| setup(&e))?;
        let handle = executor.handle().clone();
        let ticker_stop = Arc::new(AtomicBool::new(false));
        {
            let engine = engine.clone();
            let stop = ticker_stop.clone();
            std::thread::Builder::new()
                .name("certctl-plugin-epoch".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(EPOCH_TICK);
                        engine.increment_epoch();
                    }
                })
                .map_err(|e| setup(&e))?;
        }
        Ok(Self {
            inner: Arc::new(Inner {
                shared: Arc::new(Shared {
                    engine,
                    slots: tokio::sync::Semaphore::new(config.max_concurrent_calls.max(1) as usize),
                    net,
                    config,
                    target_linker,
                    server_linker,
                }),
                executor: Some(executor),
                handle,
                ticker_stop,
            }),
        })
    }

    /// The settings this runtime was built with.
    pub fn config(&self) -> &RuntimeConfig {
        &self.inner.shared.config
    }

    /// Discovers and loads every plugin under `dir`: each subdirectory holding a
    /// `plugin.toml` and a `plugin.wasm`. A missing `dir` yields an empty set; a
    /// broken plugin is an entry with its error, never a failure of the whole load.
    ///
    /// Compiles (or loads from the cache) on the calling thread; async callers use
    /// [`PluginRuntime::load_dir_async`].
    pub fn load_dir(&self, dir: &Path, grants: &Grants) -> Result<PluginSet, RuntimeError> {
        plugin_set::load_dir(self.inner.clone(), dir, grants)
    }

    /// [`PluginRuntime::load_dir`] on the runtime's blocking pool.
    pub async fn load_dir_async(
        &self,
        dir: PathBuf,
        grants: Grants,
    ) -> Result<PluginSet, RuntimeError> {
        let inner = self.inner.clone();
        self.inner
            .handle
            .spawn_blocking(move || plugin_set::load_dir(inner, &dir, &grants))
            .await
            .map_err(|e| RuntimeError::Unavailable(e.to_string()))?
    }
}

fn build_engine(config: &RuntimeConfig, pooling: bool) -> wasmtime::Result<Engine> {
    let mut wasm = Config::new();
    wasm.epoch_interruption(true);
    wasm.wasm_component_model(true);
    if pooling {
        let instances = config.max_concurrent_calls.max(1);
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(instances)
            .total_core_instances(instances * 8)
            .total_memories(instances * 2)
            .total_tables(instances * 8)
            .total_stacks(instances)
            .max_memory_size(usize::try_from(config.memory_limit_bytes).unwrap_or(usize::MAX));
        wasm.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    Engine::new(&wasm)
}

/// Targets get `files` and `commands`; issuers and notifiers do not, so a server-side
/// plugin importing them fails to link. Server-side plugins get `smtp`, which refuses
/// every call unless the manifest requests it (notifiers only) and the host is granted. Everyone gets WASI (with an empty context)
/// and wasi:http (filtered by granted hosts, so nothing without grants).
fn linker(engine: &Engine, target: bool) -> wasmtime::Result<Linker<HostState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    bindings::log::add_to_linker::<_, HasSelf<HostState>>(&mut linker, |s| s)?;
    bindings::types::add_to_linker::<_, HasSelf<HostState>>(&mut linker, |s| s)?;
    if !target {
        bindings::notifier::certctl::connector::smtp::add_to_linker::<_, HasSelf<HostState>>(
            &mut linker,
            |s| s,
        )?;
    }
    if target {
        bindings::files::add_to_linker::<_, HasSelf<HostState>>(&mut linker, |s| s)?;
        bindings::commands::add_to_linker::<_, HasSelf<HostState>>(&mut linker, |s| s)?;
    }
    Ok(linker)
}

/// A loaded plugin: its id, its rights and its pre-instantiated component.
pub(crate) struct LoadedPlugin {
    pub(crate) id: Arc<str>,
    pub(crate) caps: Arc<EffectiveCapabilities>,
    pub(crate) world: LoadedWorld,
}

/// The pre-instantiated component, by world.
pub(crate) enum LoadedWorld {
    Target(bindings::target::TargetPre<HostState>),
    Issuer(bindings::issuer::IssuerPre<HostState>),
    Notifier(bindings::notifier::NotifierPre<HostState>),
}

/// What a call does with its fresh store: instantiate and call one export.
pub(crate) type CallFuture<'a, T> =
    Pin<Box<dyn Future<Output = wasmtime::Result<Result<T, types::ConnectorError>>> + Send + 'a>>;

impl Inner {
    /// Runs `f` against a fresh store on the runtime's executor and maps the outcome
    /// to [`RuntimeError`]. The call starts when the returned future is first polled
    /// and, once started, runs to completion even if that future is dropped (a
    /// deployment is never abandoned between writing files and validating them).
    pub(crate) fn call<T, F>(
        self: &Arc<Self>,
        plugin: Arc<LoadedPlugin>,
        f: F,
    ) -> impl Future<Output = Result<T, RuntimeError>> + Send + 'static
    where
        T: Send + 'static,
        F: for<'a> FnOnce(&'a mut Store<HostState>) -> CallFuture<'a, T> + Send + 'static,
    {
        // The future keeps the executor alive while it waits.
        let inner = self.clone();
        async move {
            let shared = inner.shared.clone();
            let task = inner.handle.spawn(async move {
                let Ok(_slot) = shared.slots.acquire().await else {
                    return Err(RuntimeError::Unavailable(
                        "plugin runtime is shutting down".into(),
                    ));
                };
                let config = &shared.config;
                let deadline = tokio::time::Instant::now() + config.call_timeout;
                let memory = usize::try_from(config.memory_limit_bytes).unwrap_or(usize::MAX);
                let state = HostState::new(
                    plugin.id.clone(),
                    plugin.caps.clone(),
                    memory,
                    deadline,
                    &shared.net,
                );
                let mut store = Store::new(&shared.engine, state);
                store.limiter(|state| &mut state.limiter);
                let ticks = (config.call_timeout.as_millis() / EPOCH_TICK.as_millis()).max(1);
                store.set_epoch_deadline(u64::try_from(ticks).unwrap_or(u64::MAX));
                store.epoch_deadline_trap();
                let outcome = tokio::time::timeout_at(deadline, f(&mut store)).await;
                classify(&plugin.id, config, store.data_mut(), outcome)
            });
            task.await
                .map_err(|e| RuntimeError::Unavailable(format!("plugin call aborted: {e}")))?
        }
    }
}

/// Turns a call's outcome into the runtime's result: limits first (a trap after the
/// memory cap was hit is out-of-memory), then traps, then the guest's own error
/// (reported as the denial when a capability was refused during the call).
fn classify<T>(
    plugin: &str,
    config: &RuntimeConfig,
    state: &mut HostState,
    outcome: Result<
        wasmtime::Result<Result<T, types::ConnectorError>>,
        tokio::time::error::Elapsed,
    >,
) -> Result<T, RuntimeError> {
    let plugin = plugin.to_string();
    let denials = state.take_denials();
    match outcome {
        Err(_) => Err(RuntimeError::Timeout {
            plugin,
            after: config.call_timeout,
        }),
        Ok(Err(_)) if state.limiter.exceeded => Err(RuntimeError::OutOfMemory {
            plugin,
            limit_bytes: config.memory_limit_bytes,
        }),
        Ok(Err(trap)) if trap.downcast_ref::<Trap>() == Some(&Trap::Interrupt) => {
            Err(RuntimeError::Timeout {
                plugin,
                after: config.call_timeout,
            })
        }
        Ok(Err(error))
            if error
                .downcast_ref::<wasmtime::PoolConcurrencyLimitError>()
                .is_some() =>
        {
            Err(RuntimeError::Unavailable(format!(
                "plugin `{plugin}`: {error}"
            )))
        }
        Ok(Err(trap)) => {
            let mut message = match trap.downcast_ref::<Trap>() {
                Some(code) => code.to_string(),
                None => trap.root_cause().to_string(),
            };
            let stderr = state.stderr();
            if !stderr.is_empty() {
                message.push_str(": ");
                message.push_str(&stderr);
            }
            Err(RuntimeError::Trap { plugin, message })
        }
        Ok(Ok(Err(error))) => match denials.into_iter().next() {
            Some(capability) => Err(RuntimeError::Denied { plugin, capability }),
            None => Err(RuntimeError::Connector {
                plugin,
                kind: error.kind.into(),
                message: error.message,
            }),
        },
        Ok(Ok(Ok(value))) => Ok(value),
    }
}
