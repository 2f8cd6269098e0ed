//! Assembling and running the server: storage, key seeding, TLS, the HTTP listener, and an
//! orderly shutdown that drains the API-call log within the configured budget.

use std::sync::Arc;
use std::time::Duration;

use actix_cors::Cors;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use tokio::sync::mpsc;

use crate::api::rate_limit::{Rate, RateLimiter};
use crate::api::state::{AppState, RateLimits};
use crate::clock::{Clock, SystemClock};
use crate::config::{AuthType, Config, TlsMode};
use crate::store::api_calls::{self, ApiCall};
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
    if let Some(key) = config.admin_api_key.as_deref().filter(|k| !k.is_empty()) {
        api_keys::upsert(store, "admin", key, true, None, &clock.now_text()).await?;
        tracing::info!("admin API key seeded from CERTCTL_ADMIN_API_KEY");
    } else if config.auth_type == AuthType::ApiKey && api_keys::count(store).await? == 0 {
        let key = api_keys::generate_key();
        api_keys::upsert(store, "admin", &key, true, None, &clock.now_text()).await?;
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
    seed_keys(&config, &store, clock.as_ref())
        .await
        .map_err(StartError::Keys)?;

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

    let (calls_tx, calls_rx) = mpsc::unbounded_channel::<ApiCall>();
    let writer = tokio::spawn(write_api_calls(store.clone(), calls_rx));

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
            limiter: RateLimiter::default(),
            per_ip,
            per_key,
        }
    });
    let state = web::Data::new(AppState {
        store: store.clone(),
        clock,
        auth_type: config.auth_type,
        max_body_size: config.max_body_size,
        rate_limit,
        api_calls: calls_tx,
    });

    let cors_origins = config.cors_origins.clone();
    let max_body = config.max_body_size;
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(web::PayloadConfig::new(max_body))
            .configure(crate::api::configure)
            .wrap(from_fn(crate::api::auth::authenticate))
            .wrap(cors(&cors_origins))
            .wrap(from_fn(crate::api::request_context::request_context))
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
    tracing::info!("HTTP server stopped; draining the API-call log");
    // Every AppState (and so every sender) is gone once the server has stopped.
    let budget = Duration::from_secs(config.shutdown_timeout_seconds);
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

async fn write_api_calls(store: Store, mut rx: mpsc::UnboundedReceiver<ApiCall>) {
    while let Some(call) = rx.recv().await {
        if let Err(e) = api_calls::append(&store, &call).await {
            tracing::warn!(error = %e, request_id = %call.request_id, "could not record API call");
        }
    }
}
