//! Calling target plugins (world `target`): validate a configuration, deploy a
//! certificate, check a deployment.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::bindings::{target, types};
use super::error::RuntimeError;
use super::{Inner, LoadedPlugin, LoadedWorld};

/// A certificate to deploy through a target plugin.
#[derive(Clone, Default)]
pub struct TargetRequest {
    /// The leaf certificate, PEM.
    pub certificate_pem: String,
    /// Intermediates, PEM, leaf's issuer first (may be empty).
    pub chain_pem: String,
    /// The private key, PEM, from the agent's key store.
    pub private_key_pem: String,
    /// The target's configuration object, JSON.
    pub config_json: String,
    /// The target id (`t-…`).
    pub target_id: String,
    /// The managed certificate id (`mc-…`).
    pub certificate_id: String,
}

impl fmt::Debug for TargetRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TargetRequest")
            .field("target_id", &self.target_id)
            .field("certificate_id", &self.certificate_id)
            .field("config_json", &self.config_json)
            .field("private_key_pem", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// What a deployment did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeployOutcome {
    /// One line for the job history.
    pub message: String,
    /// Absolute paths written, in order.
    pub files_written: Vec<String>,
    /// Granted commands that ran, in order.
    pub commands_run: Vec<String>,
}

/// A check that a certificate is in place at a target.
#[derive(Debug, Clone, Default)]
pub struct ValidationRequest {
    /// The certificate expected, PEM.
    pub certificate_pem: String,
    /// The target's configuration object, JSON.
    pub config_json: String,
    /// The target id (`t-…`).
    pub target_id: String,
    /// The managed certificate id (`mc-…`).
    pub certificate_id: String,
}

/// The answer to a [`ValidationRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ValidationOutcome {
    /// Whether the expected certificate is in place.
    pub valid: bool,
    /// What was checked, or why it is not valid.
    pub message: String,
}

/// A loaded target plugin. Cheap to clone; each call gets a fresh instance.
#[derive(Clone)]
pub struct TargetPlugin {
    runtime: Arc<Inner>,
    plugin: Arc<LoadedPlugin>,
}

impl fmt::Debug for TargetPlugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TargetPlugin")
            .field("id", &self.plugin.id)
            .finish()
    }
}

impl TargetPlugin {
    pub(crate) fn new(runtime: Arc<Inner>, plugin: Arc<LoadedPlugin>) -> Self {
        Self { runtime, plugin }
    }

    /// The plugin id.
    pub fn id(&self) -> &str {
        &self.plugin.id
    }

    fn pre(&self) -> target::TargetPre<super::host::HostState> {
        match &self.plugin.world {
            LoadedWorld::Target(pre) => pre.clone(),
            // `PluginSet::target` only hands out target plugins.
            _ => unreachable!("a TargetPlugin always wraps a target component"),
        }
    }

    /// Checks a target configuration (WIT `validate-config`).
    pub fn validate_config(
        &self,
        config_json: impl Into<String>,
    ) -> impl Future<Output = Result<(), RuntimeError>> + Send + 'static {
        let pre = self.pre();
        let config_json = config_json.into();
        self.runtime.call(self.plugin.clone(), move |store| {
            Box::pin(async move {
                let world = pre.instantiate_async(&mut *store).await?;
                world.call_validate_config(&mut *store, &config_json).await
            })
        })
    }

    /// For `benches/runtime.rs`: [`TargetPlugin::validate_config`] on the same path (a
    /// fresh store from the pre-instantiated component, on the runtime's executor),
    /// returning how long instantiation and the call itself took. Not a stable API.
    #[doc(hidden)]
    pub fn timed_validate_config(
        &self,
        config_json: impl Into<String>,
    ) -> impl Future<Output = Result<(Duration, Duration), RuntimeError>> + Send + 'static {
        let pre = self.pre();
        let config_json = config_json.into();
        self.runtime.call(self.plugin.clone(), move |store| {
            Box::pin(async move {
                let started = Instant::now();
                let world = pre.instantiate_async(&mut *store).await?;
                let instantiated = Instant::now();
                let result = world
                    .call_validate_config(&mut *store, &config_json)
                    .await?;
                let called = Instant::now();
                Ok(result.map(|()| (instantiated - started, called - instantiated)))
            })
        })
    }

    /// Deploys a certificate (WIT `deploy`): files written, validated, reloaded, or
    /// restored when validation fails.
    pub fn deploy(
        &self,
        request: TargetRequest,
    ) -> impl Future<Output = Result<DeployOutcome, RuntimeError>> + Send + 'static {
        let pre = self.pre();
        let request = types::DeployRequest {
            certificate_pem: request.certificate_pem,
            chain_pem: request.chain_pem,
            private_key_pem: request.private_key_pem,
            config_json: request.config_json,
            target_id: request.target_id,
            certificate_id: request.certificate_id,
        };
        self.runtime.call(self.plugin.clone(), move |store| {
            Box::pin(async move {
                let world = pre.instantiate_async(&mut *store).await?;
                let result = world.call_deploy(&mut *store, &request).await?;
                Ok(result.map(|r| DeployOutcome {
                    message: r.message,
                    files_written: r.files_written,
                    commands_run: r.commands_run,
                }))
            })
        })
    }

    /// Checks that a certificate is in place (WIT `validate-deployment`).
    pub fn validate_deployment(
        &self,
        request: ValidationRequest,
    ) -> impl Future<Output = Result<ValidationOutcome, RuntimeError>> + Send + 'static {
        let pre = self.pre();
        let request = types::ValidationRequest {
            certificate_pem: request.certificate_pem,
            config_json: request.config_json,
            target_id: request.target_id,
            certificate_id: request.certificate_id,
        };
        self.runtime.call(self.plugin.clone(), move |store| {
            Box::pin(async move {
                let world = pre.instantiate_async(&mut *store).await?;
                let result = world
                    .call_validate_deployment(&mut *store, &request)
                    .await?;
                Ok(result.map(|r| ValidationOutcome {
                    valid: r.valid,
                    message: r.message,
                }))
            })
        })
    }
}
