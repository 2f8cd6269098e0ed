//! Certificate exports: the current version as PEM (JSON, or a file download) and as a
//! certificates-only PKCS#12. Only public material leaves: certctl holds no agent keys, and
//! server-generated keys are delivered by deployment, not by export. Every export is
//! audited (`certificate_exported`).

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject as _;
use serde_json::{Value, json};

use super::access::{Access, Routes};
use super::actions::optional_object;
use super::auth::principal;
use super::error::ApiError;
use super::state::AppState;
use crate::domain::audit::AuditEntry;
use crate::pki::pkcs12::{self, CertEntry};
use crate::store::certificates::{self, Version};
use crate::store::{audit, records};

/// Routes under `/api/v1/certificates/…`.
pub fn certificate_routes(r: &mut Routes) {
    r.get("/api/v1/certificates/{id}/export/pem", Access::VIEWER, "The current version as PEM (JSON: certificate, chain, pem_chain, serial_number, fingerprint_sha256; ?download=true for a .pem file)", export_pem);
    // A read (no key material is in it), so viewers may export.
    r.post(
        "/api/v1/certificates/{id}/export/pkcs12",
        Access::VIEWER,
        "The current version and its chain as PKCS#12, no private key (body: optional password)",
        export_pkcs12,
    );
}

/// The certificate's name and current (newest) version; 409 if nothing was issued yet.
async fn current_version(state: &AppState, id: &str) -> Result<(String, Version), ApiError> {
    let record = records::get(&state.store, &crate::domain::certificate::SPEC, id).await?;
    let name = record
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or(id)
        .to_owned();
    let version = certificates::versions(&state.store, id)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| {
            ApiError::Conflict(format!(
                "certificate {id} has not been issued yet; there is nothing to export"
            ))
        })?;
    Ok((name, version))
}

/// The DER certificates of a stored PEM chain, leaf first.
fn chain_der(version: &Version) -> Result<Vec<Vec<u8>>, ApiError> {
    let certs: Vec<Vec<u8>> = CertificateDer::pem_slice_iter(version.pem_chain.as_bytes())
        .map(|c| c.map(|c| c.to_vec()))
        .collect::<Result<_, _>>()
        .map_err(|e| ApiError::Internal(format!("stored chain of {}: {e}", version.id)))?;
    if certs.is_empty() {
        return Err(ApiError::Internal(format!(
            "stored chain of {} holds no certificate",
            version.id
        )));
    }
    Ok(certs)
}

async fn audit_export(
    state: &AppState,
    req: &HttpRequest,
    id: &str,
    version: &Version,
    mut details: Value,
) -> Result<(), ApiError> {
    details["version_id"] = json!(version.id);
    details["serial_number"] = json!(version.serial_number);
    audit::append_alone(
        &state.store,
        &AuditEntry {
            actor: principal(req).actor,
            action: "certificate_exported".into(),
            resource_type: "certificate".into(),
            resource_id: id.to_owned(),
            details,
        },
        &state.clock.now_text(),
    )
    .await?;
    Ok(())
}

/// A file name made only of safe characters.
fn file_name(id: &str, extension: &str) -> String {
    let safe: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{safe}.{extension}")
}

/// `GET /certificates/{id}/export/pem`: `{certificate, chain, pem_chain, serial_number,
/// fingerprint_sha256, …}`; with `?download=true` the PEM chain as an
/// `application/x-pem-file` attachment named `<id>.pem`.
async fn export_pem(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    query: web::Query<Vec<(String, String)>>,
) -> Result<HttpResponse, ApiError> {
    let download = match query.iter().find(|(k, _)| k == "download") {
        None => false,
        Some((_, v)) => match v.as_str() {
            "true" | "1" => true,
            "false" | "0" => false,
            _ => {
                return Err(ApiError::field(
                    "download",
                    "download: must be true or false",
                ));
            }
        },
    };
    let (_, version) = current_version(&state, &id).await?;
    let certs = chain_der(&version)?;
    let certificate = crate::pki::pem("CERTIFICATE", &certs[0]);
    let chain: String = certs[1..]
        .iter()
        .map(|der| crate::pki::pem("CERTIFICATE", der))
        .collect();
    audit_export(
        &state,
        &req,
        &id,
        &version,
        json!({"format": "pem", "download": download}),
    )
    .await?;
    if download {
        return Ok(HttpResponse::Ok()
            .content_type("application/x-pem-file")
            .insert_header((
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{}\"", file_name(&id, "pem")),
            ))
            .body(format!("{certificate}{chain}")));
    }
    Ok(HttpResponse::Ok().json(json!({
        "certificate_id": *id,
        "version_id": version.id,
        "certificate": certificate,
        "chain": chain,
        "pem_chain": version.pem_chain,
        "serial_number": version.serial_number,
        "fingerprint_sha256": version.fingerprint_sha256,
        "not_before": version.not_before,
        "not_after": version.not_after,
    })))
}

/// `POST /certificates/{id}/export/pkcs12` (optional body `{"password": "…"}`, default
/// empty): the leaf and its chain as an `application/x-pkcs12` attachment, no private key.
async fn export_pkcs12(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let body = optional_object(&body)?;
    let password =
        super::actions::string_field(&body, "password", &["password"])?.unwrap_or_default();
    let (name, version) = current_version(&state, &id).await?;
    let certs = chain_der(&version)?;
    let entries: Vec<CertEntry<'_>> = certs
        .iter()
        .enumerate()
        .map(|(i, der)| CertEntry {
            der,
            friendly_name: (i == 0).then_some(name.as_str()),
        })
        .collect();
    let p12 = pkcs12::certificates_only(&entries, &password)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    audit_export(
        &state,
        &req,
        &id,
        &version,
        json!({"format": "pkcs12", "password_protected": !password.is_empty(), "certificates": certs.len()}),
    )
    .await?;
    Ok(HttpResponse::Ok()
        .content_type("application/x-pkcs12")
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{}\"", file_name(&id, "p12")),
        ))
        .body(p12))
}
