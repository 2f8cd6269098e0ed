//! The outermost request layer: a request id (honouring a sane incoming `X-Request-Id`),
//! a tracing span, the body-size limit (before authentication, so oversized anonymous
//! bodies cost nothing), the body hash, and one API-call record per request.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::http::header::{CONTENT_LENGTH, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpMessage as _, ResponseError as _, web};
use futures_util::StreamExt as _;
use sha2::{Digest as _, Sha256};
use tracing::Instrument as _;

use super::auth::Principal;
use super::error::ApiError;
use super::state::AppState;
use crate::store::api_calls::{ApiCall, PkiRequest};
use crate::store::records::new_id;

/// Header carrying the request id both ways.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The request id of the current request, in its extensions.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// What the request log keeps of a request.
#[derive(Debug, PartialEq, Eq)]
enum Logged {
    /// One API-call row.
    Row,
    /// A counter only: relying parties poll OCSP and CRLs, a row each would drown the log.
    Counted(PkiRequest),
    /// Nothing: probes, dashboard files, ACME challenges.
    Nothing,
}

fn logged(path: &str) -> Logged {
    if path.starts_with("/api/") {
        Logged::Row
    } else if path.starts_with("/.well-known/pki/ocsp") {
        Logged::Counted(PkiRequest::Ocsp)
    } else if path.starts_with("/.well-known/pki/crl") {
        Logged::Counted(PkiRequest::Crl)
    } else {
        Logged::Nothing
    }
}

fn incoming_id(req: &ServiceRequest) -> Option<String> {
    let v = req.headers().get(&REQUEST_ID)?.to_str().ok()?;
    (v.len() <= 128
        && !v.is_empty()
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
    .then(|| v.to_owned())
}

/// Middleware; see the module comment.
pub async fn request_context(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let request_id = incoming_id(&req).unwrap_or_else(|| new_id("req"));
    req.extensions_mut().insert(RequestId(request_id.clone()));
    let method = req.method().clone();
    // The one place the logged path is read (what the log records and counts).
    let path = req.path().to_owned();
    let span =
        tracing::info_span!("request", request_id = %request_id, method = %method, path = %path);

    async move {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let limit = state.as_ref().map_or(1_048_576, |s| s.max_body_size);

        let mut body_sha256 = None;
        if matches!(method, Method::POST | Method::PUT | Method::PATCH) {
            match buffer_body(&mut req, limit).await {
                Ok(Some(hash)) => body_sha256 = Some(hash),
                Ok(None) => {}
                Err(e) => {
                    let resp = req.into_response(e.error_response());
                    let resp = finish(
                        resp.map_into_right_body(),
                        state.as_ref(),
                        &request_id,
                        &method,
                        &path,
                        None,
                        started,
                    );
                    return Ok(resp);
                }
            }
        }

        let resp = match next.call(req).await {
            Ok(resp) => resp.map_into_left_body(),
            Err(e) => return Err(e),
        };
        Ok(finish(
            resp,
            state.as_ref(),
            &request_id,
            &method,
            &path,
            body_sha256,
            started,
        ))
    }
    .instrument(span)
    .await
}

fn finish<B>(
    mut resp: ServiceResponse<B>,
    state: Option<&web::Data<AppState>>,
    request_id: &str,
    method: &Method,
    path: &str,
    body_sha256: Option<String>,
    started: Instant,
) -> ServiceResponse<B> {
    if let Ok(v) = HeaderValue::from_str(request_id) {
        resp.headers_mut().insert(REQUEST_ID, v);
    }
    let status = resp.status().as_u16();
    let latency_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
    if status >= 500 {
        tracing::warn!(status, latency_ms, "request failed");
    } else {
        tracing::info!(status, latency_ms, "request");
    }
    let Some(state) = state else {
        return resp;
    };
    match logged(path) {
        Logged::Row => {
            let actor = resp
                .request()
                .extensions()
                .get::<Principal>()
                .map_or_else(|| "anonymous".to_owned(), |p| p.actor.name.clone());
            state.api_call_log.record(ApiCall {
                request_id: request_id.to_owned(),
                method: method.to_string(),
                path: path.to_owned(),
                actor,
                body_sha256,
                status,
                latency_ms,
                timestamp: state.clock.now_text(),
            });
        }
        Logged::Counted(request) => state.api_call_log.count_pki(request),
        Logged::Nothing => {}
    }
    resp
}

/// Reads the body up to `limit` bytes, puts it back for the handler and returns the first
/// 16 hex digits of its SHA-256 (None for an empty body).
async fn buffer_body(req: &mut ServiceRequest, limit: usize) -> Result<Option<String>, ApiError> {
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    let mut payload = req.take_payload();
    let mut buf = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk
            .map_err(|e| ApiError::MalformedJson(format!("could not read request body: {e}")))?;
        if buf.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge { limit });
        }
        buf.extend_from_slice(&chunk);
    }
    let bytes = buf.freeze();
    let hash = (!bytes.is_empty()).then(|| hex::encode(&Sha256::digest(&bytes)[..8]));
    req.set_payload(Payload::from(bytes));
    Ok(hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_calls_are_rows_pki_requests_counters() {
        assert_eq!(logged("/api/v1/teams"), Logged::Row);
        assert_eq!(logged("/api/v1/openapi.json"), Logged::Row);
        assert_eq!(
            logged("/.well-known/pki/ocsp/iss-local/MEgwRj"),
            Logged::Counted(PkiRequest::Ocsp)
        );
        assert_eq!(
            logged("/.well-known/pki/crl/iss-local"),
            Logged::Counted(PkiRequest::Crl)
        );
        for path in [
            "/health",
            "/ready",
            "/",
            "/assets/app.js",
            "/.well-known/acme-challenge/t",
        ] {
            assert_eq!(logged(path), Logged::Nothing, "{path}");
        }
    }
}
