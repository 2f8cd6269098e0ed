//! The Local CA's part in revocation: it signs CRLs and issues the OCSP responder
//! certificates that sign OCSP answers on its behalf. The CA key itself never signs an
//! OCSP response (RFC 6960 §2.6 delegation); the responder key lives with the revocation
//! service.

use rcgen::{
    CertificateParams, CustomExtension, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyIdMethod, KeyUsagePurpose, PublicKeyData, SerialNumber,
};
use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::FromDer as _;

use super::{LocalCa, random_serial, whole_seconds};
use crate::pki::PkiError;
use crate::pki::crl::CrlContents;
use crate::pki::ocsp::OID_OCSP_NOCHECK;

/// DER of `NULL`: the value of the id-pkix-ocsp-nocheck extension.
const DER_NULL: [u8; 2] = [0x05, 0x00];

/// An OCSP responder certificate fresh from the CA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponderCertificate {
    /// The certificate, DER.
    pub der: Vec<u8>,
    /// Its serial, lower-case hex.
    pub serial_hex: String,
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity (capped to the CA's own).
    pub not_after: OffsetDateTime,
}

impl LocalCa {
    /// How this CA's certificate identifies its key (its SubjectKeyIdentifier, else the
    /// method rcgen would have used), so CRLs carry a matching AuthorityKeyIdentifier.
    fn key_id_method(&self) -> KeyIdMethod {
        X509Certificate::from_der(&self.certificate_der)
            .ok()
            .and_then(|(_, cert)| {
                cert.iter_extensions()
                    .find_map(|ext| match ext.parsed_extension() {
                        ParsedExtension::SubjectKeyIdentifier(id) => {
                            Some(KeyIdMethod::PreSpecified(id.0.to_vec()))
                        }
                        _ => None,
                    })
            })
            .unwrap_or(KeyIdMethod::Sha256)
    }

    /// Signs a CRL (DER). Fails if the CA certificate's KeyUsage lacks cRLSign.
    pub fn sign_crl(&self, contents: &CrlContents) -> Result<Vec<u8>, PkiError> {
        let params = contents
            .to_params(self.key_id_method())
            .map_err(|e| PkiError::Crl(e.to_string()))?;
        let crl = params.signed_by(&self.issuer)?;
        Ok(crl.der().to_vec())
    }

    /// Issues a delegated OCSP responder certificate for `public_key`: end-entity,
    /// digitalSignature, the OCSPSigning EKU, and id-pkix-ocsp-nocheck (RFC 6960
    /// §4.2.2.2.1) so clients do not ask about the responder's own status. Validity runs
    /// from `not_before` to `not_after`, capped to the CA's expiry.
    ///
    /// Not linted like leaves (it is a fixed shape with no requested names); the signed
    /// certificate is re-parsed and checked for the EKU and the extension instead.
    pub fn issue_ocsp_responder(
        &self,
        public_key: &impl PublicKeyData,
        common_name: &str,
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> Result<ResponderCertificate, PkiError> {
        let serial = random_serial()?;
        let not_before = whole_seconds(not_before);
        let not_after = whole_seconds(not_after.min(self.not_after));
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params
            .distinguished_name
            .push(DnType::OrganizationName, "certctl");
        params.serial_number = Some(SerialNumber::from_slice(&serial));
        params.not_before = not_before;
        params.not_after = not_after;
        params.is_ca = IsCa::ExplicitNoCa;
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::OcspSigning];
        params
            .custom_extensions
            .push(CustomExtension::from_oid_content(
                OID_OCSP_NOCHECK,
                DER_NULL.to_vec(),
            ));
        let cert = params.signed_by(public_key, &self.issuer)?;
        let der = cert.der().to_vec();
        check_responder(&der)?;
        Ok(ResponderCertificate {
            der,
            serial_hex: hex::encode(&serial),
            not_before,
            not_after,
        })
    }
}

/// The post-signing guard: the responder certificate says what OCSP clients require.
fn check_responder(der: &[u8]) -> Result<(), PkiError> {
    let (_, cert) = X509Certificate::from_der(der)
        .map_err(|e| PkiError::PostIssuance(format!("responder certificate: {e}")))?;
    let eku_ok = matches!(cert.extended_key_usage(), Ok(Some(eku)) if eku.value.ocsp_signing);
    let nocheck = cert.iter_extensions().any(|ext| {
        ext.oid
            .iter()
            .is_some_and(|arcs| arcs.eq(OID_OCSP_NOCHECK.iter().copied()))
    });
    let is_ca = matches!(cert.basic_constraints(), Ok(Some(bc)) if bc.value.ca);
    if !eku_ok || !nocheck || is_ca {
        return Err(PkiError::PostIssuance(format!(
            "responder certificate: OCSPSigning EKU {eku_ok}, ocsp-nocheck {nocheck}, CA {is_ca}"
        )));
    }
    Ok(())
}
