//! The ACME client's HTTP: every request (the directory, nonces, accounts, orders,
//! challenges, certificates, renewalInfo) goes through the outbound guard
//! ([`certctl_core::outbound`]) over the operator's `CERTCTL_OUTBOUND_ALLOW` grants. The
//! guard resolves the host once, checks each address and connects to a checked one; TLS
//! (rustls with ring) then verifies the certificate for, and sends SNI of, the host name,
//! against the issuer's operator CA bundle when it names one, else the platform's roots.
//!
//! A request the guard refuses fails with an error whose source is the
//! [`certctl_core::outbound::Refusal`]; [`refusal`] finds it so the connector can report
//! the rule instead of a generic connection error.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use certctl_core::outbound::{Destination, OutboundError, OutboundGuard, Refusal};
use http::Uri;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use instant_acme::BodyWrapper;
use rustls::RootCertStore;
use tokio::net::TcpStream;

use super::operator::CaBundle;
use crate::issuer::ConnectorError;

/// How long resolving and connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// A hyper connector that only opens connections the guard allows.
#[derive(Clone, Debug)]
pub(super) struct GuardedConnector {
    guard: OutboundGuard,
}

/// Connecting took longer than [`CONNECT_TIMEOUT`].
#[derive(Debug, thiserror::Error)]
#[error("connecting to {0} timed out")]
struct ConnectTimeout(String);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl tower_service::Service<Uri> for GuardedConnector {
    type Response = TokioIo<TcpStream>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let guard = self.guard.clone();
        Box::pin(async move {
            let destination = Destination::from_uri(&uri).map_err(OutboundError::from)?;
            match tokio::time::timeout(CONNECT_TIMEOUT, guard.connect(&destination)).await {
                Ok(Ok((tcp, _address))) => Ok(TokioIo::new(tcp)),
                Ok(Err(e)) => Err(e.into()),
                Err(_) => Err(ConnectTimeout(destination.to_string()).into()),
            }
        })
    }
}

/// The HTTP client of one ACME issuer (cheap to clone; clones share connections).
pub(super) type AcmeHttp = Client<HttpsConnector<GuardedConnector>, BodyWrapper<Bytes>>;

/// Builds the client: the guard for connections, `ca_bundle` (or the platform's roots) for
/// TLS, HTTP/1.1 and HTTP/2.
pub(super) fn build(
    guard: OutboundGuard,
    ca_bundle: Option<&CaBundle>,
) -> Result<AcmeHttp, ConnectorError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = HttpsConnectorBuilder::new();
    let builder = match ca_bundle {
        Some(bundle) => {
            let mut roots = RootCertStore::empty();
            for (n, cert) in bundle.certificates.iter().enumerate() {
                roots.add(cert.clone()).map_err(|e| {
                    ConnectorError::Config(format!(
                        "ca_bundle {} ({}): certificate {} is not a usable trust anchor: {e}",
                        bundle.name,
                        bundle.path.display(),
                        n + 1
                    ))
                })?;
            }
            let tls = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| ConnectorError::Config(format!("TLS setup: {e}")))?
                .with_root_certificates(roots)
                .with_no_client_auth();
            builder.with_tls_config(tls)
        }
        None => builder
            .with_provider_and_platform_verifier(provider)
            .map_err(|e| {
                ConnectorError::Config(format!("no TLS trust roots for the ACME server: {e}"))
            })?,
    };
    let https = builder
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(GuardedConnector { guard });
    Ok(Client::builder(TokioExecutor::new()).build(https))
}

/// The guard's refusal behind an ACME client error, if that is what it is.
pub(super) fn refusal(e: &instant_acme::Error) -> Option<Refusal> {
    match e {
        instant_acme::Error::Other(inner) => OutboundError::find_refusal(inner.as_ref()),
        other => OutboundError::find_refusal(other),
    }
    .cloned()
}
