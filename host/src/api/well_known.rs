//! The relying-party endpoints under `/.well-known/pki` (RFC 8615), unauthenticated because
//! relying parties have no API keys (the auth middleware only guards `/api/v1`):
//!
//! - `GET /.well-known/pki/crl/{issuer_id}` — the issuer's current DER CRL
//!   (`application/pkix-crl`); 404 for an issuer certctl publishes no CRL for, 503 if one
//!   cannot be generated.
//! - `POST /.well-known/pki/ocsp/{issuer_id}` — an `application/ocsp-request` body.
//! - `GET /.well-known/pki/ocsp/{issuer_id}/{serial}` — the serial in hex (`:` separators
//!   and upper case accepted), for operators with curl; and the RFC 6960 §A.1 form
//!   `GET …/{issuer_id}/{base64 DER OCSPRequest}` (standard or URL-safe alphabet,
//!   percent-encoded or not). They are told apart by the alphabet: a DER request always
//!   starts with `M` in base64, which is not a hex digit.
//!
//! OCSP always answers HTTP 200 with `application/ocsp-response`; problems are OCSP
//! statuses: `malformedRequest` for anything that does not parse, `unauthorized` for an
//! issuer certctl does not answer for (unknown, disabled, or with its own responder).

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine as _;

use super::access::{Access, Routes};
use super::error::ApiError;
use super::state::AppState;
use crate::revocation::{CrlUnavailable, OcspQuery};

/// Largest OCSP request read (real ones are a few hundred octets).
const MAX_OCSP_REQUEST: usize = 64 * 1024;

/// Registers the routes (at the application root).
pub fn routes(r: &mut Routes) {
    r.get(
        "/.well-known/pki/crl/{issuer_id}",
        Access::PublicUnmetered,
        "The issuer's DER CRL (application/pkix-crl)",
        crl,
    );
    r.post(
        "/.well-known/pki/ocsp/{issuer_id}",
        Access::PublicUnmetered,
        "OCSP (RFC 6960): application/ocsp-request in, application/ocsp-response out",
        ocsp_post,
    );
    r.get(
        "/.well-known/pki/ocsp/{issuer_id}/{request:.+}",
        Access::PublicUnmetered,
        "OCSP by hex serial, or the RFC 6960 GET form (base64 DER OCSPRequest)",
        ocsp_get,
    );
}

async fn crl(
    state: web::Data<AppState>,
    issuer_id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    match state.revocation.current_crl(&issuer_id).await {
        Ok(crl) => Ok(HttpResponse::Ok()
            .content_type("application/pkix-crl")
            .insert_header((header::CACHE_CONTROL, "public, max-age=60"))
            .insert_header((header::ETAG, format!("\"crl-{}\"", crl.crl_number)))
            .body(crl.der)),
        Err(e @ CrlUnavailable::NotPublished(_)) => Err(ApiError::NotFound(e.to_string())),
        Err(e) => Err(ApiError::Unavailable(e.to_string())),
    }
}

fn ocsp_response(der: Vec<u8>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/ocsp-response")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(der)
}

async fn ocsp_post(
    state: web::Data<AppState>,
    issuer_id: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let query = if body.len() > MAX_OCSP_REQUEST {
        // Answered as malformed by the parser below, without reading further into it.
        OcspQuery::Request(Vec::new())
    } else {
        OcspQuery::Request(body.to_vec())
    };
    ocsp_response(state.revocation.ocsp(&issuer_id, query).await)
}

async fn ocsp_get(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let issuer_id = req.match_info().query("issuer_id").to_owned();
    let raw = req.match_info().query("request").to_owned();
    ocsp_response(state.revocation.ocsp(&issuer_id, get_query(&raw)).await)
}

/// Tells the hex serial form from the base64 request form (see the module doc).
fn get_query(raw: &str) -> OcspQuery {
    let text = percent_decode(raw);
    if text.chars().all(|c| c.is_ascii_hexdigit() || c == ':') {
        return OcspQuery::Serial(text);
    }
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    let trimmed = compact.trim_end_matches('=');
    let der = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(trimmed)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(trimmed))
        .unwrap_or_default();
    OcspQuery::Request(der)
}

/// Decodes `%XX` escapes (clients percent-encode `+`, `/` and `=` of the base64 form).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            // Two hex digits: at most 0xff, so the cast cannot truncate.
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_forms_are_told_apart() {
        assert_eq!(get_query("4A:0b"), OcspQuery::Serial("4A:0b".into()));
        let der = vec![0x30, 0x03, 0x0a, 0x01, 0x01];
        let std = base64::engine::general_purpose::STANDARD.encode(&der);
        assert_eq!(get_query(&std), OcspQuery::Request(der.clone()));
        let escaped = std.replace('=', "%3D");
        assert_eq!(get_query(&escaped), OcspQuery::Request(der.clone()));
        let url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&der);
        assert_eq!(get_query(&url), OcspQuery::Request(der));
        assert_eq!(get_query("not base64!"), OcspQuery::Request(Vec::new()));
    }

    #[test]
    fn percent_escapes_decode() {
        assert_eq!(percent_decode("a%2Fb%2bc%3D"), "a/b+c=");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
