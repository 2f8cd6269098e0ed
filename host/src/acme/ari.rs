//! ACME Renewal Information (RFC 9773): the certificate's ARI id, and the renewalInfo
//! fetch for answers instant-acme cannot report (no Retry-After), over the issuer's own
//! guarded HTTP client.

use std::time::Duration;

use instant_acme::{BodyWrapper, CertificateIdentifier, HttpClient};
use serde_json::Value;

use super::connector::AcmeIssuer;
use crate::issuer::{ConnectorError, RenewalWindow};

/// How long each of the two requests may take (and reading its body).
const TIMEOUT: Duration = Duration::from_secs(10);

/// The certificate's ARI id (RFC 9773 §4.1); `None` when it has no Authority Key Identifier
/// or does not parse.
pub fn ari_id(cert_der: &[u8]) -> Option<CertificateIdentifier<'static>> {
    let cert = rustls_pki_types::CertificateDer::from(cert_der);
    match CertificateIdentifier::try_from(&cert) {
        Ok(id) => Some(id.into_owned()),
        Err(e) => {
            tracing::debug!(error = %e, "no ARI id for this certificate");
            None
        }
    }
}

impl AcmeIssuer {
    /// renewalInfo answered without Retry-After, which instant-acme reports without the
    /// status: fetch it again here. 404 (Boulder's and Pebble's answer for a certificate they
    /// do not know) means no window; a window is used (with the default re-ask interval); any
    /// other answer is an error, so the renewal check warns, uses the thresholds and asks
    /// again after its error back-off.
    pub(super) async fn renewal_info_without_retry_after(
        &self,
        id: &CertificateIdentifier<'static>,
    ) -> Result<Option<RenewalWindow>, ConnectorError> {
        let dir = &self.config.directory_url;
        let failed = |e: String| {
            ConnectorError::Unavailable(format!("ACME server {dir}: renewalInfo for {id}: {e}"))
        };
        let get = |url: String| async move {
            let request = http::Request::get(url.as_str())
                .body(BodyWrapper::default())
                .map_err(|e| failed(format!("{url}: {e}")))?;
            let rsp = tokio::time::timeout(TIMEOUT, HttpClient::request(&self.http, request))
                .await
                .map_err(|_| failed(format!("{url}: no answer within {TIMEOUT:?}")))?
                .map_err(|e| self.unavailable(&format!("renewalInfo for {id}"), &e))?;
            let status = rsp.parts.status;
            let mut body = rsp.body;
            let bytes = tokio::time::timeout(TIMEOUT, body.into_bytes())
                .await
                .map_err(|_| failed(format!("{url}: no answer within {TIMEOUT:?}")))?
                .map_err(|e| failed(format!("{url}: {e}")))?;
            Ok::<_, ConnectorError>((status, bytes))
        };
        let (status, body) = get(dir.clone()).await?;
        if !status.is_success() {
            return Err(failed(format!("directory: HTTP {status}")));
        }
        let directory: Value =
            serde_json::from_slice(&body).map_err(|e| failed(format!("directory: {e}")))?;
        let Some(base) = directory.get("renewalInfo").and_then(Value::as_str) else {
            return Ok(None);
        };
        let (status, body) = get(format!("{}/{id}", base.trim_end_matches('/'))).await?;
        if status == http::StatusCode::NOT_FOUND {
            tracing::debug!(directory = %dir, ari_id = %id, "renewalInfo: certificate not known to the CA");
            return Ok(None);
        }
        let body = String::from_utf8_lossy(&body).into_owned();
        if !status.is_success() {
            let detail = serde_json::from_str::<Value>(&body)
                .ok()
                .and_then(|p| p.get("detail").and_then(Value::as_str).map(str::to_owned))
                .unwrap_or_else(|| body.chars().take(200).collect());
            return Err(failed(format!("HTTP {status}: {detail}")));
        }
        let info: instant_acme::RenewalInfo =
            serde_json::from_str(&body).map_err(|e| failed(format!("bad answer: {e}")))?;
        Ok(Some(RenewalWindow {
            certificate_id: id.to_string(),
            start: info.suggested_window.start,
            end: info.suggested_window.end,
            retry_after: None,
            explanation_url: info.explanation_url,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 9773 §4.1's example: AKI 69:88:5B:…:C8:D4 and serial 00:87:65:43:21 give
    /// `aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE`.
    #[test]
    fn ari_id_matches_the_rfc_example() {
        let aki = vec![
            0x69, 0x88, 0x5B, 0x6B, 0x87, 0x46, 0x40, 0x41, 0xE1, 0xB3, 0x7B, 0x84, 0x7B, 0xA0,
            0xAE, 0x2C, 0xDE, 0x01, 0xC8, 0xD4,
        ];
        let mut ca_params = rcgen::CertificateParams::default();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params.key_identifier_method = rcgen::KeyIdMethod::PreSpecified(aki);
        let ca_key = rcgen::KeyPair::generate().expect("key");
        let ca = rcgen::Issuer::new(ca_params, ca_key);
        let mut leaf =
            rcgen::CertificateParams::new(vec!["ari.example".to_owned()]).expect("params");
        leaf.serial_number = Some(rcgen::SerialNumber::from(vec![
            0x00, 0x87, 0x65, 0x43, 0x21,
        ]));
        leaf.use_authority_key_identifier_extension = true;
        let leaf_key = rcgen::KeyPair::generate().expect("key");
        let cert = leaf.signed_by(&leaf_key, &ca).expect("signed");
        let id = ari_id(cert.der()).expect("has an AKI");
        assert_eq!(id.to_string(), "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE");

        // Without an Authority Key Identifier there is no ARI id (and no ARI).
        let plain = rcgen::CertificateParams::new(vec!["plain.example".to_owned()])
            .expect("params")
            .self_signed(&leaf_key)
            .expect("self-signed");
        assert!(ari_id(plain.der()).is_none());
        assert!(ari_id(b"not a certificate").is_none());
    }
}
