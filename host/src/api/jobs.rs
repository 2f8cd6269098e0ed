//! Job actions: cancel, retry, approve, reject. Each goes through the job state machine; a
//! refused transition is a 409 that says why.

use actix_web::{HttpRequest, HttpResponse, web};

use super::access::{Access, Routes};
use super::actions::{optional_object, string_field};
use super::auth::principal;
use super::error::ApiError;
use super::state::AppState;
use crate::domain::job::SPEC;
use crate::domain::job_state::JobEvent;
use crate::store::jobs::{self, Changes};
use crate::store::records;

/// Routes under `/api/v1/jobs/{id}/…`.
pub fn routes(r: &mut Routes) {
    r.post(
        "/api/v1/jobs/{id}/cancel",
        Access::OPERATOR,
        "Cancel a job (optional reason)",
        cancel,
    );
    r.post(
        "/api/v1/jobs/{id}/retry",
        Access::OPERATOR,
        "Requeue a failed or cancelled job",
        retry,
    );
    r.post(
        "/api/v1/jobs/{id}/approve",
        Access::OPERATOR,
        "Approve a job awaiting approval",
        approve,
    );
    r.post(
        "/api/v1/jobs/{id}/reject",
        Access::OPERATOR,
        "Reject a job awaiting approval (reason required)",
        reject,
    );
}

async fn act(
    req: &HttpRequest,
    state: &AppState,
    id: &str,
    event: JobEvent,
    body: &[u8],
    reason_required: bool,
) -> Result<HttpResponse, ApiError> {
    let body = optional_object(body)?;
    let reason = string_field(&body, "reason", &["reason"])?;
    if reason_required && reason.as_deref().is_none_or(|r| r.trim().is_empty()) {
        return Err(ApiError::field("reason", "reason: is required"));
    }
    records::get(&state.store, &SPEC, id).await?;
    let actor = principal(req).actor;
    match event {
        JobEvent::Approve => {
            state.pipeline.approve(id, &actor, reason).await?;
        }
        _ => {
            let changes = Changes {
                reason,
                reset_attempts: event == JobEvent::Retry,
                scheduled_at: (event == JobEvent::Retry).then_some(None),
                ..Changes::default()
            };
            jobs::transition(
                &state.store,
                id,
                event,
                changes,
                &state.clock.now_text(),
                &actor,
            )
            .await?;
            if event == JobEvent::Retry {
                state.pipeline.poke_processor();
            }
        }
    }
    Ok(HttpResponse::Ok().json(records::get(&state.store, &SPEC, id).await?))
}

/// `POST /jobs/{id}/cancel` (optional `reason`).
async fn cancel(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    act(&req, &state, &id, JobEvent::Cancel, &body, false).await
}

/// `POST /jobs/{id}/retry`: a Failed or Cancelled job starts over with fresh attempts.
async fn retry(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    act(&req, &state, &id, JobEvent::Retry, &body, false).await
}

/// `POST /jobs/{id}/approve` (optional `reason`).
async fn approve(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    act(&req, &state, &id, JobEvent::Approve, &body, false).await
}

/// `POST /jobs/{id}/reject` (`reason` required).
async fn reject(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    act(&req, &state, &id, JobEvent::Reject, &body, true).await
}
