//! Outbound HTTP for plugins (`wasi:http/outgoing-handler`) through the outbound guard
//! ([`crate::outbound`]) over the plugin's `hosts` grant: https only unless a grant says
//! `http://`, granted ports only, and the resolved address checked (loopback, private,
//! metadata… only when a grant names the host, address or range). The request is sent to
//! the address that was checked (no second lookup); TLS verifies the certificate for the
//! host name against the webpki roots. A refused request fails with the wasi:http error
//! code `HTTP-request-denied` and is recorded as a denial.
//!
//! Not the wasmtime default sender, because that one resolves the name itself when it
//! connects; the exchange below is the same HTTP/1.1 client otherwise, except that there is
//! no between-bytes timeout of its own (the call's deadline bounds reading the body).

use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex};
use std::task::{Poll, ready};
use std::time::Duration;

use http_body_util::BodyExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::ClientConfig;
use tokio_rustls::rustls::pki_types::ServerName;
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use super::error::Capability;
use crate::outbound::{Destination, OutboundError, OutboundGuard, Refusal, Scheme};

type IoFuture = Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>;
type SendFuture = Box<
    dyn Future<Output = wasmtime_wasi_http::Result<(http::Response<WasiBody>, IoFuture)>> + Send,
>;

/// How long connecting (and the TLS and HTTP handshakes) may take when the guest sets no
/// timeout; the call's deadline bounds everything anyway.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// The capability recorded for a refusal: `Host` with the authority when that host (or
/// that port of it) is not granted, `Outbound` with the guard's reason otherwise (plain
/// http, a refused address).
pub(crate) fn denial(refusal: Refusal) -> Capability {
    match refusal {
        Refusal::Host { destination, .. } | Refusal::Port { destination, .. } => {
            Capability::Host(authority_as_written(&destination))
        }
        other => Capability::Outbound(Box::new(other)),
    }
}

/// `host` for a default port, `host:port` otherwise (how grants are usually written).
fn authority_as_written(d: &Destination) -> String {
    if d.scheme.default_ports().first() == Some(&d.port) {
        if d.host.contains(':') {
            format!("[{}]", d.host)
        } else {
            d.host.clone()
        }
    } else {
        d.authority()
    }
}

/// The per-call outbound filter.
pub(crate) struct HttpHooks {
    guard: OutboundGuard,
    tls: Arc<ClientConfig>,
    /// Requests refused during the call (shared with the request futures, which learn of
    /// address refusals only after resolving).
    pub(crate) denied: Arc<Mutex<Vec<Capability>>>,
}

impl HttpHooks {
    pub(crate) fn new(guard: OutboundGuard, tls: Arc<ClientConfig>) -> Self {
        Self {
            guard,
            tls,
            denied: Arc::default(),
        }
    }

    /// Every denial recorded so far, in order.
    pub(crate) fn take_denied(&mut self) -> Vec<Capability> {
        self.denied
            .lock()
            .map(|mut d| std::mem::take(&mut *d))
            .unwrap_or_default()
    }
}

fn record(denied: &Mutex<Vec<Capability>>, refusal: Refusal) {
    tracing::warn!(%refusal, "plugin outbound request denied");
    if let Ok(mut d) = denied.lock() {
        d.push(denial(refusal));
    }
}

impl WasiHttpHooks for HttpHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ) -> SendFuture {
        drop(fut);
        let destination = match Destination::from_uri(request.uri()) {
            Ok(d) => d,
            Err(refusal) => {
                record(&self.denied, refusal);
                return Box::new(async { Err(Error::HttpRequestDenied) });
            }
        };
        // Scheme, port and host grants are decided now; addresses after resolution.
        if let Err(refusal) = self.guard.policy().check(&destination) {
            record(&self.denied, refusal);
            return Box::new(async { Err(Error::HttpRequestDenied) });
        }
        let guard = self.guard.clone();
        let tls = self.tls.clone();
        let denied = self.denied.clone();
        Box::new(async move { send(request, options, &guard, &destination, tls, &denied).await })
    }
}

trait Stream: AsyncRead + AsyncWrite + Send + Sync + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Sync + Unpin + 'static> Stream for T {}

async fn send(
    mut request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
    guard: &OutboundGuard,
    destination: &Destination,
    tls: Arc<ClientConfig>,
    denied: &Mutex<Vec<Capability>>,
) -> wasmtime_wasi_http::Result<(http::Response<WasiBody>, IoFuture)> {
    let connect_timeout = options
        .and_then(|o| o.connect_timeout)
        .unwrap_or(CONNECT_TIMEOUT);
    let first_byte_timeout = options.and_then(|o| o.first_byte_timeout);
    let tcp = match tokio::time::timeout(connect_timeout, guard.connect(destination)).await {
        Err(_) => return Err(Error::ConnectionTimeout),
        Ok(Ok((tcp, _address))) => tcp,
        Ok(Err(OutboundError::Refused(refusal))) => {
            record(denied, refusal);
            return Err(Error::HttpRequestDenied);
        }
        Ok(Err(OutboundError::Resolve { .. } | OutboundError::NoAddress { .. })) => {
            return Err(Error::DestinationNotFound);
        }
        Ok(Err(OutboundError::Connect { source, .. })) => return Err(Error::Connect(source)),
    };
    let stream: Box<dyn Stream> = if destination.scheme == Scheme::Https {
        let name = match destination.ip_literal() {
            Some(ip) => ServerName::from(ip),
            None => ServerName::try_from(destination.host.clone())
                .map_err(|_| Error::HttpRequestUriInvalid)?,
        };
        let stream =
            tokio::time::timeout(connect_timeout, TlsConnector::from(tls).connect(name, tcp))
                .await
                .map_err(|_| Error::ConnectionTimeout)?
                .map_err(Error::Tls)?;
        Box::new(stream)
    } else {
        Box::new(tcp)
    };
    let (mut sender, conn) = tokio::time::timeout(
        connect_timeout,
        hyper::client::conn::http1::Builder::new().handshake(TokioIo::new(stream)),
    )
    .await
    .map_err(|_| Error::ConnectionTimeout)??;
    // Origin form on the wire (the authority is in the Host header).
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .parse()
        .map_err(|_| Error::HttpRequestUriInvalid)?;
    *request.uri_mut() = path;

    let response = async move {
        let sent = sender.send_request(request);
        match first_byte_timeout {
            Some(t) => tokio::time::timeout(t, sent)
                .await
                .map_err(|_| Error::ConnectionReadTimeout)?
                .map_err(Error::from),
            None => sent.await.map_err(Error::from),
        }
    };
    let mut response = pin!(response);
    let mut conn = Some(conn);
    // Wait for the response while driving the connection's I/O.
    let response = poll_fn(|cx| match response.as_mut().poll(cx) {
        Poll::Ready(r) => Poll::Ready(r),
        Poll::Pending => {
            let Some(c) = conn.as_mut() else {
                return Poll::Pending;
            };
            let done = ready!(Pin::new(c).poll(cx));
            conn = None;
            match done {
                Ok(()) => response.as_mut().poll(cx),
                Err(e) => Poll::Ready(Err(Error::from(e))),
            }
        }
    })
    .await?;
    let io: IoFuture = Box::new(async move {
        match conn {
            Some(c) => c.await.map_err(Error::from),
            None => Ok(()),
        }
    });
    Ok((
        response.map(|body| body.map_err(Error::from).boxed_unsync()),
        io,
    ))
}
