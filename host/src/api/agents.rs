//! Agent endpoints beyond CRUD: CSR submission for jobs waiting on an agent-held key.

use actix_web::{HttpRequest, HttpResponse, web};

use super::actions::string_field;
use super::auth::principal;
use super::error::{ApiError, parse_json};
use super::state::AppState;
use crate::domain::job::SPEC;
use crate::store::records;

/// Routes under `/api/v1/agents/{id}/…`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/{id}/csr", web::post().to(submit_csr));
}

/// `POST /agents/{id}/csr` `{"job_id", "csr_pem"}` → 202 with the job (back in the queue).
/// A CSR that fails a check is a 400 naming the problem, and the job keeps waiting.
async fn submit_csr(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let body = parse_json(&body)?;
    let obj = body
        .as_object()
        .ok_or_else(|| ApiError::field("body", "body: must be a JSON object"))?;
    let allowed = ["job_id", "csr_pem"];
    let job_id = string_field(obj, "job_id", &allowed)?
        .ok_or_else(|| ApiError::field("job_id", "job_id: is required"))?;
    let csr_pem = string_field(obj, "csr_pem", &allowed)?
        .ok_or_else(|| ApiError::field("csr_pem", "csr_pem: is required"))?;
    let p = principal(&req);
    let job = state
        .pipeline
        .submit_csr(&id, &job_id, &csr_pem, &p.actor, p.agent_id.as_deref())
        .await?;
    Ok(HttpResponse::Accepted().json(records::get(&state.store, &SPEC, &job.id).await?))
}
