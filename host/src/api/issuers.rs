//! Issuer endpoints beyond CRUD: the CA chain, and connector-level config validation.

use actix_web::{HttpResponse, web};
use serde_json::Value;

use super::access::{Access, Routes};
use super::error::ApiError;
use super::state::AppState;
use crate::actors::issuer_actor::CaChain;
use crate::actors::issuer_registry::{Lookup, Rebuild};
use crate::issuer::ConnectorError;
use crate::store::records;

/// Routes under `/api/v1/issuers/{id}/…`.
pub fn routes(r: &mut Routes) {
    r.get(
        "/api/v1/issuers/{id}/ca",
        Access::VIEWER,
        "The issuer's CA chain (PEM)",
        ca,
    );
}

/// Refuses an issuer whose connector cannot be built from its type and config, or whose
/// config the connector's deeper check refuses (an issuer plugin's `validate-config`): a
/// 400 naming `type` or `config`.
pub async fn validate(
    state: &AppState,
    record: &serde_json::Map<String, Value>,
) -> Result<(), ApiError> {
    let issuer_type = record
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let config = record
        .get("config")
        .cloned()
        .unwrap_or_else(|| Value::Object(Default::default()));
    let connector = state
        .issuer_types
        .build(issuer_type, &config, &state.connector_ctx)
        .map_err(|e| match e {
            ConnectorError::NoConnector(_) => ApiError::field("type", e.to_string()),
            _ => ApiError::field("config", e.to_string()),
        })?;
    connector.validate_config().await.map_err(|e| match e {
        // The plugin runtime failing (timeout, trap) is no fault of the request.
        ConnectorError::Unavailable(_) | ConnectorError::Crashed(_) => {
            ApiError::Unavailable(e.to_string())
        }
        _ => ApiError::field("config", e.to_string()),
    })
}

/// `GET /issuers/{id}/ca`: the issuer's CA chain as PEM.
async fn ca(state: web::Data<AppState>, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let issuer = records::get(&state.store, &crate::domain::issuer::SPEC, &id).await?;
    if issuer.get("enabled") == Some(&Value::Bool(false)) {
        return Err(ApiError::Conflict(format!("issuer {id} is disabled")));
    }
    let registry = &state.pipeline.registry;
    let mut addr = registry.send(Lookup(id.to_string())).await.ok().flatten();
    if addr.is_none() {
        let _ = registry.send(Rebuild).await;
        addr = registry.send(Lookup(id.to_string())).await.ok().flatten();
    }
    let addr =
        addr.ok_or_else(|| ApiError::Unavailable(format!("issuer {id} has no running connector")))?;
    let pem = addr
        .send(CaChain)
        .await
        .map_err(|e| ApiError::Unavailable(format!("issuer {id}: {e}")))?
        .map_err(|e| ApiError::Conflict(e.to_string()))?;
    Ok(HttpResponse::Ok()
        .content_type("application/x-pem-file")
        .body(pem))
}
