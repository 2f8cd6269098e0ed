//! Notification endpoints beyond the generic inbox (`GET /notifications` with its filters
//! `type`, `status`, `channel`, `certificate_id`, `read`):
//!
//! - `POST /notifications/{id}/read`: marks it read (200 with the record; 404).
//! - `POST /notifications/{id}/requeue`: a Failed or DeadLetter notification goes back to
//!   Pending with its attempts reset, due now, audited (200; 404; 409 in any other state).
//! - `GET /notifiers`: the configured channels, secrets redacted, with their routes.
//! - `GET /digest/preview`: the digest HTML as of now.
//! - `POST /digest/send`: sends the digest through the email channel.
//!
//! Both digest endpoints answer 503 naming the variables to set while the digest is not
//! configured (no email channel), as in the reference.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use super::access::{Access, Routes};
use super::auth::principal;
use super::error::ApiError;
use super::state::AppState;
use crate::domain::notification::SPEC;
use crate::notifier::NotificationService;
use crate::notifier::digest::DigestError;
use crate::store::notifications::{self, RequeueError};
use crate::store::records;

/// Notification actions, the channel listing and the digest.
pub fn routes(r: &mut Routes) {
    r.post(
        "/api/v1/notifications/{id}/read",
        Access::OPERATOR,
        "Mark a notification read",
        read,
    );
    r.post(
        "/api/v1/notifications/{id}/requeue",
        Access::OPERATOR,
        "Requeue a Failed or DeadLetter notification (attempts reset, due now; 409 otherwise)",
        requeue,
    );
    r.get("/api/v1/notifiers", Access::VIEWER, "Configured notification channels (secrets redacted), their plugins, granted hosts and routes", notifiers);
    r.get(
        "/api/v1/digest/preview",
        Access::VIEWER,
        "The certificate digest as HTML (text/html; 503 without the email channel)",
        preview,
    );
    r.post(
        "/api/v1/digest/send",
        Access::OPERATOR,
        "Send the digest through the email channel now (503 without one)",
        send,
    );
}

async fn read(state: web::Data<AppState>, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    if !notifications::mark_read(&state.store, &id, &state.clock.now_text()).await? {
        return Err(ApiError::NotFound(format!("notification {id} not found")));
    }
    Ok(HttpResponse::Ok().json(records::get(&state.store, &SPEC, &id).await?))
}

async fn requeue(
    req: HttpRequest,
    state: web::Data<AppState>,
    service: web::Data<NotificationService>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let actor = principal(&req).actor;
    match notifications::requeue(&state.store, &id, &actor, &state.clock.now_text()).await {
        Ok(previous) => {
            tracing::info!(notification_id = %id, %previous, actor = %actor.name, "notification requeued");
            service.poke_processor();
            Ok(HttpResponse::Ok().json(records::get(&state.store, &SPEC, &id).await?))
        }
        Err(e @ RequeueError::NotFound(_)) => Err(ApiError::NotFound(e.to_string())),
        Err(e @ RequeueError::WrongState { .. }) => Err(ApiError::Conflict(e.to_string())),
        Err(RequeueError::Store(e)) => Err(e.into()),
    }
}

async fn notifiers(
    state: web::Data<AppState>,
    service: web::Data<NotificationService>,
) -> HttpResponse {
    HttpResponse::Ok().json(service.listing(&state.store.notification_routing()))
}

async fn preview(service: web::Data<NotificationService>) -> Result<HttpResponse, ApiError> {
    let html = service.digest.preview().await.map_err(digest_error)?;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(html))
}

async fn send(service: web::Data<NotificationService>) -> Result<HttpResponse, ApiError> {
    let recipients = service.digest.send().await.map_err(digest_error)?;
    Ok(HttpResponse::Ok().json(json!({"sent": true, "recipients": recipients})))
}

fn digest_error(e: DigestError) -> ApiError {
    match e {
        DigestError::Store(e) => e.into(),
        e @ DigestError::NoRecipients => ApiError::Conflict(e.to_string()),
        e @ (DigestError::NotConfigured | DigestError::Delivery(_)) => {
            ApiError::Unavailable(e.to_string())
        }
    }
}
