//! Liveness and readiness probes (unauthenticated, not recorded in the API-call log).

use std::time::Duration;

use actix_web::{HttpResponse, web};
use serde_json::json;

use super::access::{Access, Routes};
use super::state::AppState;

/// The probes: unauthenticated and unmetered (load balancers ask often, from one address).
pub fn routes(r: &mut Routes) {
    r.get(
        "/health",
        Access::PublicUnmetered,
        "Liveness probe (always 200)",
        health,
    );
    r.get(
        "/ready",
        Access::PublicUnmetered,
        "Readiness probe (503 when the database is unavailable)",
        ready,
    );
}

/// `GET /health`: the process is alive. Never depends on the database.
pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// `GET /ready`: the database answers within 2 s, else 503 so load balancers drain us.
pub async fn ready(state: web::Data<AppState>) -> HttpResponse {
    match state.store.ping(Duration::from_secs(2)).await {
        Ok(()) => HttpResponse::Ok().json(json!({"status": "ready"})),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            HttpResponse::ServiceUnavailable().json(json!({"status": "db_unavailable"}))
        }
    }
}
