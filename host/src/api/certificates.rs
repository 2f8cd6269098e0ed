//! Certificate endpoints beyond CRUD: renew, versions, target mappings, and the issuance job
//! created together with a certificate that names an issuer.

use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::future::BoxFuture;
use serde_json::{Value, json};
use sqlx::{Any, Transaction};

use super::access::{Access, Routes};
use super::auth::principal;
use super::error::{ApiError, parse_json};
use super::state::AppState;
use crate::domain::audit::Actor;
use crate::domain::target;
use crate::store::jobs::{self, NewJob};
use crate::store::records::{self, Record};
use crate::store::{Store, StoreError, certificates};

/// Creating a certificate with an issuer queues its issuance job in the same transaction.
pub fn after_create<'a>(
    tx: &'a mut Transaction<'static, Any>,
    store: &'a Store,
    record: &'a Record,
    now: &'a str,
    actor: &'a Actor,
) -> BoxFuture<'a, Result<(), StoreError>> {
    Box::pin(async move {
        let (Some(Value::String(id)), Some(Value::String(_issuer))) =
            (record.get("id"), record.get("issuer_id"))
        else {
            return Ok(());
        };
        jobs::create_in(
            tx,
            store,
            &NewJob {
                job_type: "Issuance",
                certificate_id: id,
                target_id: None,
                agent_id: None,
                max_attempts: 3,
            },
            now,
            actor,
            json!({"trigger": "certificate_created"}),
        )
        .await?;
        Ok(())
    })
}

/// Routes under `/api/v1/certificates/{id}/…`.
pub fn routes(r: &mut Routes) {
    super::revocation::certificate_routes(r);
    super::exports::certificate_routes(r);
    const C: &str = "/api/v1/certificates";
    r.post(
        format!("{C}/{{id}}/renew"),
        Access::OPERATOR,
        "Open a renewal job (202)",
        renew,
    )
    .status(202);
    r.get(
        format!("{C}/{{id}}/versions"),
        Access::VIEWER,
        "Issued versions, newest first, with PEM chains",
        versions,
    );
    r.get(
        format!("{C}/{{id}}/targets"),
        Access::VIEWER,
        "Targets the certificate is deployed to",
        list_targets,
    );
    r.post(
        format!("{C}/{{id}}/targets"),
        Access::OPERATOR,
        "Map a target (body: target_id)",
        map_target,
    )
    .status(201);
    r.delete(
        format!("{C}/{{id}}/targets/{{target_id}}"),
        Access::OPERATOR,
        "Unmap a target",
        unmap_target,
    )
    .status(204);
}

/// `POST /certificates/{id}/renew` → 202 with the renewal job.
async fn renew(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let job = state
        .pipeline
        .request_renewal(&id, &principal(&req).actor, "manual")
        .await?;
    Ok(HttpResponse::Accepted()
        .json(records::get(&state.store, &crate::domain::job::SPEC, &job.id).await?))
}

async fn ensure_certificate(state: &AppState, id: &str) -> Result<(), ApiError> {
    records::get(&state.store, &crate::domain::certificate::SPEC, id).await?;
    Ok(())
}

/// `GET /certificates/{id}/versions`: newest first, each with its PEM chain.
async fn versions(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    ensure_certificate(&state, &id).await?;
    let versions = certificates::versions(&state.store, &id).await?;
    let total = versions.len();
    Ok(HttpResponse::Ok().json(json!({"data": versions, "total": total})))
}

/// `GET /certificates/{id}/targets`.
async fn list_targets(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    ensure_certificate(&state, &id).await?;
    let mut data = Vec::new();
    for m in certificates::mapped_targets(&state.store, &id).await? {
        let record = records::get(&state.store, &target::SPEC, &m.target_id).await?;
        data.push(Value::Object(super::records::present(
            &req,
            &target::SPEC,
            record,
        )));
    }
    let total = data.len();
    Ok(HttpResponse::Ok().json(json!({"data": data, "total": total})))
}

/// `POST /certificates/{id}/targets` `{"target_id": "t-…"}` → 201 (200 when already mapped).
async fn map_target(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let body = parse_json(&body)?;
    let obj = body
        .as_object()
        .ok_or_else(|| ApiError::field("body", "body: must be a JSON object"))?;
    let target_id = super::actions::string_field(obj, "target_id", &["target_id"])?
        .ok_or_else(|| ApiError::field("target_id", "target_id: is required"))?;
    ensure_certificate(&state, &id).await?;
    match records::get(&state.store, &target::SPEC, &target_id).await {
        Err(StoreError::NotFound { .. }) => {
            return Err(ApiError::field(
                "target_id",
                format!("target_id: target \"{target_id}\" does not exist"),
            ));
        }
        other => other?,
    };
    let actor = principal(&req).actor;
    let added = certificates::map_target(
        &state.store,
        &id,
        &target_id,
        &state.clock.now_text(),
        &actor,
    )
    .await?;
    // A job that already waits for a CSR learns which agent holds the key.
    state.pipeline.target_mapped(&id, &actor).await?;
    let body = json!({"certificate_id": *id, "target_id": target_id});
    Ok(if added {
        HttpResponse::Created().json(body)
    } else {
        HttpResponse::Ok().json(body)
    })
}

/// `DELETE /certificates/{id}/targets/{target_id}` → 204.
async fn unmap_target(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (id, target_id) = path.into_inner();
    ensure_certificate(&state, &id).await?;
    if certificates::unmap_target(
        &state.store,
        &id,
        &target_id,
        &state.clock.now_text(),
        &principal(&req).actor,
    )
    .await?
    {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::NotFound(format!(
            "target {target_id} is not mapped to certificate {id}"
        )))
    }
}
