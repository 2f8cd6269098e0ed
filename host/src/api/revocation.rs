//! Revocation endpoints under `/api/v1`: revoke one certificate, revoke many by criteria,
//! follow bulk revocation runs, and the admin view of the CRL cache. The unauthenticated
//! CRL and OCSP endpoints are in `api/well_known.rs`.
//!
//! Agent keys may not revoke: an agent deploys certificates, it does not withdraw them.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use super::access::{Access, Routes};
use super::actions::optional_object;
use super::auth::principal;
use super::error::{ApiError, parse_json};
use super::state::AppState;
use crate::domain::revocation::{self as rules, InvalidField, RevocationReason};
use crate::revocation::RevokeError;
use crate::store::{StoreError, records, revocations};

/// Routes under `/api/v1/certificates/…` (registered before `/{id}` so `bulk-revoke` is
/// not taken for an id).
pub fn certificate_routes(r: &mut Routes) {
    r.post("/api/v1/certificates/bulk-revoke", Access::OPERATOR, "Revoke the certificates matching all given criteria (profile_id, owner_id, agent_id, issuer_id, team_id, certificate_ids; reason); 202 with job_id, affected and per-certificate results", bulk_revoke)
        .status(202);
    r.post("/api/v1/certificates/{id}/revoke", Access::OPERATOR, "Revoke every issued serial of the certificate (body: reason, RFC 5280 name; default unspecified)", revoke);
}

/// Routes directly under `/api/v1`.
pub fn routes(r: &mut Routes) {
    r.get(
        "/api/v1/bulk-revocations",
        Access::VIEWER,
        "Bulk revocation runs, newest first",
        list_bulk,
    );
    r.get(
        "/api/v1/bulk-revocations/{bulk_revocation_id}",
        Access::VIEWER,
        "A bulk revocation run with every certificate's outcome",
        get_bulk,
    );
    r.get(
        "/api/v1/admin/crl/cache",
        Access::ADMIN,
        "Per-issuer CRL cache state and recent generation events (admin only)",
        crl_cache,
    );
}

impl From<InvalidField> for ApiError {
    fn from(e: InvalidField) -> Self {
        ApiError::field(e.field, e.message)
    }
}

impl From<RevokeError> for ApiError {
    fn from(e: RevokeError) -> Self {
        match e {
            RevokeError::NotFound(_) => ApiError::NotFound(e.to_string()),
            RevokeError::NotRevocable(_) | RevokeError::Changed(_) => {
                ApiError::Conflict(e.to_string())
            }
            RevokeError::Store(s) => s.into(),
        }
    }
}

fn refuse_agents(req: &HttpRequest) -> Result<crate::domain::audit::Actor, ApiError> {
    let p = principal(req);
    if p.agent_id.is_some() {
        return Err(ApiError::Forbidden(
            "agent keys cannot revoke certificates".into(),
        ));
    }
    Ok(p.actor)
}

/// `POST /certificates/{id}/revoke` `{"reason": "keyCompromise"}` (reason optional,
/// default `unspecified`) → 200 with the certificate, now Revoked.
async fn revoke(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let actor = refuse_agents(&req)?;
    let body = optional_object(&body)?;
    if let Some(k) = body.keys().find(|k| *k != "reason") {
        return Err(ApiError::field(
            k.clone(),
            format!("{k}: unknown field (allowed: reason)"),
        ));
    }
    let reason: RevocationReason = rules::parse_reason(&body)?;
    state.revocation.revoke(&id, reason, &actor).await?;
    Ok(HttpResponse::Ok()
        .json(records::get(&state.store, &crate::domain::certificate::SPEC, &id).await?))
}

/// `POST /certificates/bulk-revoke` with criteria and an optional reason → 202 with the
/// run's id (`job_id`), the affected count and one outcome per certificate.
async fn bulk_revoke(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let actor = refuse_agents(&req)?;
    let Value::Object(body) = parse_json(&body)? else {
        return Err(ApiError::field("body", "body: must be a JSON object"));
    };
    let request = rules::parse_bulk(&body)?;
    let accepted = state.revocation.bulk_revoke(request, &actor).await?;
    Ok(HttpResponse::Accepted().json(accepted))
}

/// `GET /bulk-revocations?page=&per_page=`: runs, newest first.
async fn list_bulk(
    state: web::Data<AppState>,
    query: web::Query<Vec<(String, String)>>,
) -> Result<HttpResponse, ApiError> {
    let number = |name: &str, default: i64, max: i64| -> Result<i64, ApiError> {
        match query.iter().find(|(k, _)| k == name) {
            None => Ok(default),
            Some((_, v)) => v
                .parse::<i64>()
                .ok()
                .filter(|n| (1..=max).contains(n))
                .ok_or_else(|| {
                    ApiError::field(name, format!("{name}: must be an integer from 1 to {max}"))
                }),
        }
    };
    let page = number("page", 1, i64::from(u32::MAX))?;
    let per_page = number("per_page", 50, 500)?;
    let (data, total) =
        revocations::list_bulk(&state.store, per_page, (page - 1) * per_page).await?;
    Ok(HttpResponse::Ok()
        .json(json!({"data": data, "total": total, "page": page, "per_page": per_page})))
}

/// `GET /bulk-revocations/{id}`: the run and every certificate's outcome.
async fn get_bulk(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (run, results) = revocations::get_bulk(&state.store, &id)
        .await?
        .ok_or_else(|| StoreError::NotFound {
            resource: "bulk_revocation".into(),
            id: id.to_string(),
        })?;
    let mut body = serde_json::to_value(run).map_err(|e| ApiError::Internal(e.to_string()))?;
    body["job_id"] = json!(*id);
    body["results"] =
        serde_json::to_value(results).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(HttpResponse::Ok().json(body))
}

/// `GET /admin/crl/cache?events=N` (admin only): per-issuer CRL cache state and the N most
/// recent generation events (default 20, at most 200).
async fn crl_cache(
    state: web::Data<AppState>,
    query: web::Query<Vec<(String, String)>>,
) -> Result<HttpResponse, ApiError> {
    let events = match query.iter().find(|(k, _)| k == "events") {
        None => 20,
        Some((_, v)) => v
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=200).contains(n))
            .ok_or_else(|| ApiError::field("events", "events: must be an integer from 1 to 200"))?,
    };
    let cache = state.revocation.crl_cache_state(events).await?;
    Ok(HttpResponse::Ok().json(cache))
}
