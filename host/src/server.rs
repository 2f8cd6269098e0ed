//! Assembling and running the server: storage, key seeding, TLS, the HTTP listener, and an
//! orderly shutdown that drains the API-call log within the configured budget.

use std::sync::Arc;
use std::time::Duration;

use actix_cors::Cors;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use tokio::sync::oneshot;

use actix::{Actor as _, Addr};

use crate::actors::agent_health::AgentHealth;
use crate::actors::agent_hub::AgentHub;
use crate::actors::api_call_retention::ApiCallRetention;
use crate::actors::crl_generation::CrlGeneration;
use crate::actors::issuer_registry::{IssuerRegistry, Rebuild};
use crate::actors::job_processor::JobProcessor;
use crate::actors::job_retry::JobRetry;
use crate::actors::job_timeout::JobTimeoutReaper;
use crate::actors::notification_processor::NotificationProcessor;
use crate::actors::notification_retry::NotificationRetry;
use crate::actors::renewal_check::RenewalCheck;
use crate::actors::request_counts::{self, RequestCounts};
use crate::actors::scheduler::{LoopActor, LoopTask, Shutdown};
use crate::actors::short_lived_expiry::ShortLivedExpiry;
use crate::api::rate_limit::{Rate, RateLimiter};
use crate::api::state::{AppState, RateLimits};
use crate::clock::{Clock, SystemClock};
use crate::config::{AuthType, Config, KeygenMode, TlsMode};
use crate::domain::audit::Actor;
use crate::domain::issuer;
use crate::domain::job_state::JobEvent;
use crate::domain::role::Role;
use crate::issuer::{ConnectorContext, ConnectorTypes};
use crate::notifier::NotificationService;
use crate::notifier::digest::DigestLoop;
use crate::pipeline::{Pipeline, PipelineSettings};
use crate::pki::local_ca::LocalCa;
use crate::revocation::RevocationService;
use crate::secrets;
use crate::store::api_calls::ApiCallLog;
use crate::store::jobs;
use crate::store::records::{self, WriteError};
use crate::store::{Store, StoreError, api_keys, redact};
use crate::tls::{self, TlsError};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The data dir could not be created.
    #[error("data dir {path}: {source}")]
    DataDir {
        /// The directory.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The database could not be opened or migrated.
    #[error("database {url}: {source}")]
    Database {
        /// The URL, password redacted.
        url: String,
        /// The cause.
        source: StoreError,
    },
    /// TLS material could not be created or loaded.
    #[error("TLS: {0}")]
    Tls(#[from] TlsError),
    /// Binding the listener failed.
    #[error("listen on {addr}: {source}")]
    Bind {
        /// host:port.
        addr: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Seeding the admin key failed.
    #[error("admin key: {0}")]
    Keys(StoreError),
    /// The Local CA could not be created or loaded (e.g. an unusable sub-CA).
    #[error("local CA: {0}")]
    Ca(#[from] crate::pki::PkiError),
    /// Seeding the Local CA issuer or recovering jobs failed.
    #[error("startup: {0}")]
    Seed(StoreError),
    /// A notification channel is misconfigured or its plugin is missing.
    #[error("notifications: {0}")]
    Notifications(#[from] crate::notifier::channels::ChannelError),
    /// `CERTCTL_CONFIG_ENCRYPTION_KEY` is wrong, missing for an encrypted database, or
    /// unusable (the message names the variable).
    #[error("config encryption: {0}")]
    ConfigEncryption(#[from] crate::secrets::startup::SetupError),
    /// The operator's ACME settings (`CERTCTL_ACME_HOOKS` and friends) are unusable.
    #[error("{0}")]
    AcmeSettings(#[from] crate::acme::OperatorSettingsError),
    /// `CERTCTL_OUTBOUND_ALLOW` holds a grant that does not parse.
    #[error("CERTCTL_OUTBOUND_ALLOW: {0}")]
    OutboundAllow(#[from] certctl_core::outbound::GrantError),
}

fn cors(origins: &str) -> Cors {
    let origins: Vec<&str> = origins
        .split(',')
        .map(str::trim)
        .filter(|o| !o.is_empty())
        .collect();
    if origins.is_empty() {
        // Deny by default: no origin is allowed, so browsers block cross-origin calls.
        return Cors::default();
    }
    let mut cors = Cors::default()
        .allow_any_method()
        .allow_any_header()
        .expose_headers(["x-request-id", "retry-after"])
        .max_age(3600);
    if origins.contains(&"*") {
        cors = cors.allow_any_origin();
    } else {
        for o in origins {
            cors = cors.allowed_origin(o);
        }
    }
    cors
}

async fn seed_keys(config: &Config, store: &Store, clock: &dyn Clock) -> Result<(), StoreError> {
    let admin = api_keys::NewKey {
        name: "admin",
        role: Role::Admin,
        agent_id: None,
        expires_at: None,
        created_by: "system",
    };
    if let Some(key) = config.admin_api_key.as_deref().filter(|k| !k.is_empty()) {
        api_keys::seed(store, &admin, key, &clock.now_text()).await?;
        tracing::info!("admin API key seeded from CERTCTL_ADMIN_API_KEY");
    } else if config.auth_type == AuthType::ApiKey && api_keys::count_user_keys(store).await? == 0 {
        let key = api_keys::generate_key();
        api_keys::insert(store, &admin, &key, &clock.now_text()).await?;
        // Printed once, to the terminal only; only its hash is stored.
        eprintln!(
            "\n================================================================\n\
             certctl: no API key existed, so an admin key was generated.\n\
             It is shown only this once; store it now:\n\n    {key}\n\n\
             Use it as: Authorization: Bearer <key>\n\
             ================================================================\n"
        );
    }
    Ok(())
}

/// Runs the server until SIGTERM/SIGINT.
pub async fn run(config: Config) -> Result<(), StartError> {
    std::fs::create_dir_all(&config.data_dir).map_err(|source| StartError::DataDir {
        path: config.data_dir.display().to_string(),
        source,
    })?;
    if config.auth_type == AuthType::None {
        tracing::warn!("CERTCTL_AUTH_TYPE=none: the API accepts every request without credentials");
    }
    let url = config.effective_database_url();
    let store = Store::connect(&url)
        .await
        .map_err(|source| StartError::Database {
            url: redact(&url),
            source,
        })?;
    tracing::info!(database = %redact(&url), dialect = ?store.dialect(), "storage ready");
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let config_secrets = Arc::new(
        secrets::startup::setup(
            config.config_encryption_key.as_deref(),
            &store,
            &clock.now_text(),
        )
        .await?,
    );
    seed_keys(&config, &store, clock.as_ref())
        .await
        .map_err(StartError::Keys)?;

    let local_ca = match (&config.ca_cert_path, &config.ca_key_path) {
        (Some(cert), Some(key)) => {
            let ca = LocalCa::from_files(cert, key)?;
            tracing::info!(cert = %cert.display(), "Local CA in sub-CA mode");
            ca
        }
        (None, None) => LocalCa::load_or_create(&config.data_dir.join("ca"))?,
        _ => {
            return Err(StartError::Ca(crate::pki::PkiError::CaFile {
                path: config
                    .ca_cert_path
                    .clone()
                    .or_else(|| config.ca_key_path.clone())
                    .unwrap_or_default(),
                message: "sub-CA mode needs both CERTCTL_CA_CERT_PATH and CERTCTL_CA_KEY_PATH"
                    .into(),
            }));
        }
    };
    seed_local_issuer(&store, clock.as_ref())
        .await
        .map_err(StartError::Seed)?;
    if config
        .agent_bootstrap_token
        .as_deref()
        .is_none_or(str::is_empty)
    {
        tracing::warn!(
            "CERTCTL_AGENT_BOOTSTRAP_TOKEN is not set: agents can only register with an admin API key"
        );
    }
    if config.keygen_mode == KeygenMode::Server {
        tracing::warn!(
            "CERTCTL_KEYGEN_MODE=server: private keys are generated on the server (demo only); use agent mode in production"
        );
    }
    let mut connector_ctx = ConnectorContext::new(Arc::new(local_ca), config.data_dir.clone());
    let acme = crate::acme::OperatorSettings::load(config.acme_hooks.as_deref(), &|k| {
        std::env::var(k).ok()
    })?;
    tracing::info!(settings = %acme.describe(), "ACME operator settings");
    connector_ctx.acme = Arc::new(acme);
    let outbound = certctl_core::outbound::Policy::parse_list(&config.outbound_allow)?;
    tracing::info!(grants = %config.outbound_allow, "outbound grants for the server's own fetches (beyond public https on 443)");
    connector_ctx.outbound = certctl_core::outbound::OutboundGuard::new(
        certctl_core::outbound::Policy::public_https(outbound, crate::issuer::OUTBOUND_ALLOW),
    );
    // Before the issuer registry: an issuer's type may be the id of an issuer plugin.
    let channels = config.notifications.channels()?;
    let plugins = Arc::new(
        crate::plugins::PluginRegistry::start_with(
            &config.plugins,
            &config.data_dir,
            crate::notifier::channels::implicit_grants(&channels),
            config.notifications.smtp_ca_bundle.clone(),
        )
        .await,
    );
    connector_ctx.plugins = Some(plugins.clone());
    let issuer_types = ConnectorTypes::native();
    let registry = IssuerRegistry::new(store.clone(), issuer_types.clone(), connector_ctx.clone())
        .with_secrets(config_secrets.clone())
        .start();
    match registry.send(Rebuild).await {
        Ok(Ok(n)) => tracing::info!(issuers = n, "issuer actors started"),
        Ok(Err(e)) => return Err(StartError::Seed(e)),
        Err(e) => tracing::warn!(error = %e, "issuer registry did not answer"),
    }
    let scheme = if config.tls_mode == TlsMode::Off {
        "http"
    } else {
        "https"
    };
    let public_url = config.public_url.clone().unwrap_or_else(|| {
        let host = if config.host == "0.0.0.0" || config.host == "::" {
            "localhost"
        } else {
            config.host.as_str()
        };
        format!("{scheme}://{host}:{}", config.port)
    });
    let pipeline = Arc::new(Pipeline::new(
        store.clone(),
        clock.clone(),
        PipelineSettings {
            keygen_mode: config.keygen_mode,
            validity: config.certificate_validity,
            public_url,
            job_lease: config.job_lease,
            order_deadline: config.issuer_order_deadline,
            order_poll_scale: config.issuer_poll_scale,
            server_key_dir: config.data_dir.join("server-keys"),
            abort_before_commit: std::env::var("CERTCTL_FAULT_INJECT")
                .is_ok_and(|v| v == "abort_before_commit"),
        },
        registry,
    ));
    if store.dialect() == crate::store::Dialect::Sqlite {
        // SQLite means one replica: any Running job was orphaned by our own previous run.
        recover_orphans(&store, clock.as_ref())
            .await
            .map_err(StartError::Seed)?;
    }
    let agent_hub = AgentHub::default().start();
    pipeline.set_hub(agent_hub.clone());
    let revocation = Arc::new(RevocationService::new(
        store.clone(),
        clock.clone(),
        pipeline.registry.clone(),
        &config.revocation,
        &config.data_dir,
    ));
    secrets::startup::reseal_clear(&store, &config_secrets, &plugins, &clock.now_text()).await;
    let notifications = web::Data::new(
        NotificationService::setup(
            &config.notifications,
            plugins.clone(),
            &store,
            clock.clone(),
        )
        .await?,
    );
    let (api_call_log, api_call_writer) = ApiCallLog::new(config.api_call_log_queue);
    let (stop_writer, writer_stopped) = oneshot::channel::<()>();
    let writer = tokio::spawn(api_call_writer.run(store.clone(), async {
        let _ = writer_stopped.await;
    }));
    let loops = start_loops(
        &config,
        &pipeline,
        &revocation,
        &notifications,
        &api_call_log,
    );
    let resume = revocation.clone();
    tokio::spawn(async move {
        match resume.resume_bulk().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(runs = n, "resumed interrupted bulk revocations"),
            Err(e) => tracing::warn!(error = %e, "could not resume interrupted bulk revocations"),
        }
    });

    let tls = match config.tls_mode {
        TlsMode::Auto => {
            let (chain, key) = tls::ensure_auto(&config.data_dir, &config.host)?;
            tracing::info!(ca_bundle = %config.data_dir.join("ca-bundle.pem").display(), "serving HTTPS with the bootstrap CA");
            Some(tls::server_config(
                &chain,
                &key,
                &config.data_dir.join("tls/server.pem"),
            )?)
        }
        TlsMode::Files => Some(tls::load_files(
            config.tls_cert_path.as_deref(),
            config.tls_key_path.as_deref(),
        )?),
        TlsMode::Off => {
            tracing::warn!(
                "CERTCTL_TLS_MODE=off: serving plain HTTP; API keys travel in clear text"
            );
            None
        }
    };

    let rate_limit = config.rate_limit_enabled.then(|| {
        let per_ip = Rate {
            per_second: config.rate_limit_rps,
            burst: config.rate_limit_burst,
        };
        let per_key = Rate {
            per_second: if config.rate_limit_per_user_rps > 0.0 {
                config.rate_limit_per_user_rps
            } else {
                config.rate_limit_rps
            },
            burst: if config.rate_limit_per_user_burst > 0 {
                config.rate_limit_per_user_burst
            } else {
                config.rate_limit_burst
            },
        };
        RateLimits {
            limiter: RateLimiter::new(config.rate_limit_max_keys),
            per_ip,
            per_key,
            credential: Rate {
                per_second: config.rate_limit_auth_rps,
                burst: config.rate_limit_auth_burst,
            },
        }
    });
    let state = web::Data::new(AppState {
        store: store.clone(),
        clock,
        auth_type: config.auth_type,
        max_body_size: config.max_body_size,
        rate_limit,
        api_call_log,
        pipeline: pipeline.clone(),
        issuer_types,
        connector_ctx,
        revocation,
        agent_hub,
        config_secrets,
        agent_bootstrap_token: config
            .agent_bootstrap_token
            .clone()
            .filter(|t| !t.is_empty()),
    });

    let plugins = web::Data::from(plugins);
    let web_dir = web::Data::new(crate::api::dashboard::WebDir(config.web_dir.clone()));
    if crate::api::dashboard::is_built(&config.web_dir) {
        tracing::info!(web_dir = %config.web_dir.display(), "serving the web dashboard at /");
    } else {
        tracing::warn!(web_dir = %config.web_dir.display(), "web dashboard not built (cd web && npm ci && npm run build); / answers a note");
    }
    let cors_origins = config.cors_origins.clone();
    let max_body = config.max_body_size;
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(web_dir.clone())
            .app_data(plugins.clone())
            .app_data(notifications.clone())
            .app_data(web::PayloadConfig::new(max_body))
            .configure(crate::api::configure)
            .wrap(cors(&cors_origins))
            .wrap(from_fn(crate::api::request_context::request_context))
            // Outermost: everything inside sees the one canonical path.
            .wrap(from_fn(crate::api::normalize::normalize_path))
    })
    .shutdown_timeout(config.shutdown_timeout_seconds);

    let addr = format!("{}:{}", config.host, config.port);
    let bind_err = |source| StartError::Bind {
        addr: addr.clone(),
        source,
    };
    let server = match tls {
        Some(tls) => server.bind_rustls_0_23(&addr, tls).map_err(bind_err)?,
        None => server.bind(&addr).map_err(bind_err)?,
    };
    let scheme = if config.tls_mode == TlsMode::Off {
        "http"
    } else {
        "https"
    };
    for a in server.addrs() {
        tracing::info!("certctl-server listening on {scheme}://{a}");
    }
    let result = server.run().await;
    let budget = Duration::from_secs(config.shutdown_timeout_seconds);
    tracing::info!("HTTP server stopped; stopping scheduler loops");
    for (name, addr) in loops {
        if !addr.send(Shutdown(budget)).await.unwrap_or(false) {
            tracing::warn!(
                loop_name = name,
                "loop did not drain within the shutdown budget"
            );
        }
    }
    tracing::info!("draining the API-call log");
    drop(pipeline);
    // The server has stopped, so no request is still recording: close the queue and drain it.
    let _ = stop_writer.send(());
    if tokio::time::timeout(budget, writer).await.is_err() {
        tracing::warn!("API-call log not drained within {budget:?}; some records are lost");
    }
    store.close().await;
    if let Err(e) = result {
        tracing::error!(error = %e, "server error");
    }
    tracing::info!("shutdown complete");
    Ok(())
}

/// The always-on scheduler loops, each its own actor.
fn start_loops(
    config: &Config,
    pipeline: &Arc<Pipeline>,
    revocation: &Arc<RevocationService>,
    notifications: &NotificationService,
    api_call_log: &ApiCallLog,
) -> Vec<(&'static str, Addr<LoopActor>)> {
    let p = pipeline.clone();
    let mut tasks: Vec<(Arc<dyn LoopTask>, Duration)> = vec![
        (
            Arc::new(JobProcessor(p.clone())),
            config.job_processor_interval,
        ),
        (
            Arc::new(RenewalCheck::new(p.clone())),
            config.renewal_check_interval,
        ),
        (Arc::new(JobRetry(p.clone())), config.job_retry_interval),
        (
            Arc::new(JobTimeoutReaper {
                pipeline: p.clone(),
                awaiting_csr: config.awaiting_csr_timeout,
                awaiting_approval: config.awaiting_approval_timeout,
            }),
            config.job_timeout_interval,
        ),
        (
            Arc::new(AgentHealth {
                pipeline: p.clone(),
                offline_after: config.agent_offline_after,
            }),
            config.agent_health_interval,
        ),
        (
            Arc::new(NotificationProcessor {
                pipeline: p.clone(),
                notifiers: notifications.notifiers.clone(),
                concurrency: notifications.concurrency,
            }),
            config.notification_process_interval,
        ),
        (
            Arc::new(NotificationRetry(p.clone())),
            config.notification_retry_interval,
        ),
        (
            Arc::new(ShortLivedExpiry(p.clone())),
            config.short_lived_expiry_interval,
        ),
        (
            Arc::new(CrlGeneration(revocation.clone())),
            config.revocation.crl_generation_interval,
        ),
        (
            Arc::new(ApiCallRetention {
                store: p.store.clone(),
                clock: p.clock.clone(),
                retention: config.api_call_retention,
            }),
            config.api_call_retention_interval,
        ),
        (
            Arc::new(RequestCounts::new(api_call_log.clone())),
            request_counts::INTERVAL,
        ),
    ];
    if config.notifications.digest_enabled {
        if !notifications.digest.can_send() {
            tracing::warn!(
                "CERTCTL_DIGEST_ENABLED is set but no email channel is configured (CERTCTL_SMTP_HOST); scheduled digests will fail"
            );
        }
        tasks.push((
            Arc::new(DigestLoop::new(notifications.digest.clone())),
            config.notifications.digest_interval,
        ));
    }
    let mut loops = Vec::new();
    for (task, interval) in tasks {
        let name = task.name();
        let addr = LoopActor::new(task, interval).start();
        if name == "job_processor" {
            pipeline.set_processor(addr.clone());
        }
        if name == "notification_processor" {
            notifications.set_processor(addr.clone());
        }
        loops.push((name, addr));
    }
    loops
}

/// Creates the `iss-local` issuer on first start (audited like any other creation).
async fn seed_local_issuer(store: &Store, clock: &dyn Clock) -> Result<(), StoreError> {
    match records::get(store, &issuer::SPEC, "iss-local").await {
        Ok(_) => Ok(()),
        Err(StoreError::NotFound { .. }) => {
            let values = serde_json::json!({"name": "Local CA", "type": "local", "config": {}, "enabled": true});
            let values = values.as_object().cloned().unwrap_or_default();
            match records::create(
                store,
                &issuer::SPEC,
                "iss-local",
                values,
                &clock.now_text(),
                &Actor::system(),
            )
            .await
            {
                Ok(_) => Ok(()),
                Err(WriteError::Store(e)) => Err(e),
                Err(e) => Err(StoreError::Database(e.to_string())),
            }
        }
        Err(e) => Err(e),
    }
}

/// Requeues jobs left Running by a previous process.
async fn recover_orphans(store: &Store, clock: &dyn Clock) -> Result<(), StoreError> {
    let far_future = "9999-12-31T23:59:59.999Z";
    for job in jobs::expired_leases(store, far_future).await? {
        match jobs::transition(
            store,
            &job.id,
            JobEvent::LeaseExpired,
            jobs::Changes::default(),
            &clock.now_text(),
            &Actor::system(),
        )
        .await
        {
            Ok(_) => {
                tracing::warn!(job_id = %job.id, "requeued a job left Running by the previous run")
            }
            Err(e) => {
                tracing::warn!(job_id = %job.id, error = %e, "could not requeue orphaned job")
            }
        }
    }
    Ok(())
}
