//! `GET /api/v1/admin/request-stats` (admin only; registered with the other admin routes):
//! the abuse-limit counters — the API-call log queue, OCSP and CRL request counts, and
//! the rate limiter's table size — so an operator can see whether a flood is being shed.

use actix_web::{HttpResponse, web};
use serde_json::json;

use super::state::AppState;

/// Answers the counters as JSON; see the module comment.
pub async fn stats(state: web::Data<AppState>) -> HttpResponse {
    let log = &state.api_call_log;
    let limiter = state.rate_limit.as_ref().map(|rl| &rl.limiter);
    HttpResponse::Ok().json(json!({
        "api_call_log": {
            "queued": log.queued(),
            "capacity": log.capacity(),
            "dropped": log.dropped(),
            "recorded": log.recorded(),
            "failed": log.failed(),
        },
        "pki_requests": {
            "ocsp": log.ocsp_requests(),
            "crl": log.crl_requests(),
        },
        "rate_limiter": {
            "enabled": limiter.is_some(),
            "keys": limiter.map_or(0, |l| l.len()),
            "capacity": limiter.map_or(0, |l| l.capacity()),
        },
    }))
}
