//! Outbound HTTP for plugins (`wasi:http/outgoing-handler`), filtered by the hosts
//! the operator granted. A refused request fails with the wasi:http error code
//! `HTTP-request-denied` and is recorded as a denial of that host.

use std::future::Future;

use http_body_util::BodyExt;
use wasmtime_wasi_http::{RequestOptions, WasiBody, WasiHttpHooks};

use super::error::Capability;
use super::grants::host_allowed;

type SendFuture = Box<
    dyn Future<
            Output = wasmtime_wasi_http::Result<(
                http::Response<WasiBody>,
                Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
            )>,
        > + Send,
>;

/// The per-call outbound filter.
pub(crate) struct HttpHooks {
    hosts: Vec<String>,
    /// Hosts refused during the call.
    pub(crate) denied: Vec<Capability>,
}

impl HttpHooks {
    pub(crate) fn new(hosts: Vec<String>) -> Self {
        Self {
            hosts,
            denied: Vec::new(),
        }
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
        let uri = request.uri();
        let host = uri
            .host()
            .unwrap_or_default()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let port = uri.port_u16().or_else(|| match uri.scheme_str() {
            Some("http") => Some(80),
            Some("https") => Some(443),
            _ => None,
        });
        if host.is_empty()
            || !self
                .hosts
                .iter()
                .any(|granted| host_allowed(granted, host, port))
        {
            let authority = uri.authority().map(|a| a.to_string()).unwrap_or_default();
            tracing::warn!(%authority, "plugin outbound request denied");
            self.denied.push(Capability::Host(authority));
            return Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) });
        }
        Box::new(async move {
            let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = _> + Send>,
            ))
        })
    }
}
