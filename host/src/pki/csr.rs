//! Certificate signing requests: decode, verify the proof of possession, and extract what the
//! issuance pipeline needs — subject CN, SANs, the key and its algorithm/size — plus the
//! check that a CSR asks for exactly the names the certificate record says.
//!
//! Not here: profile key rules (`domain::key_rules`) and the lint (which runs at signing).
//! Requested KeyUsage/EKU extensions in a CSR are ignored: the profile decides those.

use std::collections::BTreeSet;

use base64::Engine as _;
use ring::signature::{self, UnparsedPublicKey};
use rustls_pki_types::CertificateSigningRequestDer;
use rustls_pki_types::pem::PemObject as _;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::error::X509Error;
use x509_parser::extensions::ParsedExtension;
use x509_parser::oid_registry::{
    OID_PKCS1_RSAENCRYPTION, OID_PKCS1_RSASSAPSS, OID_PKCS1_SHA256WITHRSA, OID_PKCS1_SHA384WITHRSA,
    OID_PKCS1_SHA512WITHRSA, OID_SIG_ECDSA_WITH_SHA256, OID_SIG_ECDSA_WITH_SHA384, OID_SIG_ED25519,
};
use x509_parser::prelude::FromDer as _;

use super::lint::{SubjectAltName, san_from_general_name};
use super::public_key::{KeyAlgorithm, SubjectPublicKey, UnsupportedKey};

/// Why a CSR was refused; messages are shown to API callers and agents.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CsrError {
    /// The input is neither a PEM "CERTIFICATE REQUEST" nor a (base64) DER PKCS#10 request.
    #[error("not a PEM or DER certificate signing request: {0}")]
    Malformed(String),
    /// The signature does not verify with the CSR's own key: altered, or not made by the
    /// key's holder.
    #[error("CSR signature does not verify")]
    BadSignature,
    /// The CSR is signed with an algorithm certctl does not accept (e.g. SHA-1).
    #[error("CSR signature algorithm {0} is not supported (use SHA-256 or stronger)")]
    UnsupportedSignature(String),
    /// The CSR's key cannot be certified.
    #[error(transparent)]
    UnsupportedKey(#[from] UnsupportedKey),
    /// The CSR requests a SAN type certctl does not issue.
    #[error("CSR requests an unsupported name: {0}")]
    UnsupportedName(String),
    /// The CSR's names differ from the certificate's; the message names each difference.
    #[error("CSR names do not match the certificate: {0}")]
    NameMismatch(String),
}

/// What a verified CSR asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsrInfo {
    /// The subject's first commonName, if any.
    pub common_name: Option<String>,
    /// SANs from the extensionRequest attribute, normalised (DNS names lower-cased).
    pub subject_alt_names: Vec<SubjectAltName>,
    /// The key to certify; pass it into [`super::local_ca::IssueRequest`].
    pub public_key: SubjectPublicKey,
    /// The key's family (what profile rules check).
    pub key_algorithm: KeyAlgorithm,
    /// The key's size in bits (RSA modulus length, or the curve size).
    pub key_size: u32,
}

/// Parses and verifies a CSR given as PEM, or as base64 DER (standard or URL-safe, as ACME
/// clients send it).
pub fn parse_csr(pem_or_der: &str) -> Result<CsrInfo, CsrError> {
    let text = pem_or_der.trim();
    if text.contains("-----BEGIN") {
        // Older tools (and Java's keytool) write "NEW CERTIFICATE REQUEST".
        let text = text.replace("NEW CERTIFICATE REQUEST", "CERTIFICATE REQUEST");
        let der = CertificateSigningRequestDer::from_pem_slice(text.as_bytes())
            .map_err(|e| CsrError::Malformed(format!("no CERTIFICATE REQUEST PEM block ({e})")))?;
        return parse_csr_der(der.as_ref());
    }
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    let engines = [
        &base64::engine::general_purpose::STANDARD,
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        &base64::engine::general_purpose::URL_SAFE,
        &base64::engine::general_purpose::STANDARD_NO_PAD,
    ];
    let der = engines
        .iter()
        .find_map(|engine| engine.decode(&compact).ok())
        .ok_or_else(|| CsrError::Malformed("neither PEM nor base64".into()))?;
    parse_csr_der(&der)
}

/// Parses and verifies a DER-encoded PKCS#10 CSR.
pub fn parse_csr_der(der: &[u8]) -> Result<CsrInfo, CsrError> {
    let (rest, csr) =
        X509CertificationRequest::from_der(der).map_err(|e| CsrError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(CsrError::Malformed(
            "trailing bytes after the request".into(),
        ));
    }
    let info = &csr.certification_request_info;
    let public_key = SubjectPublicKey::from_spki_der(info.subject_pki.raw)?;
    verify_signature(&csr, &public_key)?;

    let common_name = match info.subject.iter_common_name().next() {
        Some(attr) => Some(
            attr.as_str()
                .map_err(|e| CsrError::Malformed(format!("subject commonName: {e}")))?
                .to_owned(),
        ),
        None => None,
    };
    let mut subject_alt_names = Vec::new();
    if let Some(extensions) = csr.requested_extensions() {
        for extension in extensions {
            if let ParsedExtension::SubjectAlternativeName(san) = extension {
                for name in &san.general_names {
                    let san = san_from_general_name(name).map_err(CsrError::UnsupportedName)?;
                    if !subject_alt_names.contains(&san) {
                        subject_alt_names.push(san);
                    }
                }
            }
        }
    }
    Ok(CsrInfo {
        common_name,
        subject_alt_names,
        key_algorithm: public_key.algorithm(),
        key_size: public_key.key_size(),
        public_key,
    })
}

/// Checks the proof of possession with ring, allowing only SHA-2 family signatures.
///
/// x509-parser's verifier accepts RSA keys of 2048 bits and up only; a smaller RSA key is
/// verified here with ring's legacy 1024–8192-bit algorithms so that the caller gets the
/// truthful verdict — a valid CSR with a weak key, for the profile rules to refuse by name.
fn verify_signature(
    csr: &X509CertificationRequest<'_>,
    key: &SubjectPublicKey,
) -> Result<(), CsrError> {
    let algorithm = &csr.signature_algorithm.algorithm;
    let accepted = [
        OID_PKCS1_SHA256WITHRSA,
        OID_PKCS1_SHA384WITHRSA,
        OID_PKCS1_SHA512WITHRSA,
        OID_PKCS1_RSASSAPSS,
        OID_SIG_ECDSA_WITH_SHA256,
        OID_SIG_ECDSA_WITH_SHA384,
        OID_SIG_ED25519,
    ];
    if !accepted.contains(algorithm) {
        return Err(CsrError::UnsupportedSignature(algorithm.to_id_string()));
    }
    let spki = &csr.certification_request_info.subject_pki;
    if spki.algorithm.algorithm == OID_PKCS1_RSAENCRYPTION && key.key_size() < 2048 {
        let legacy: &'static dyn signature::VerificationAlgorithm =
            if *algorithm == OID_PKCS1_SHA256WITHRSA {
                &signature::RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY
            } else if *algorithm == OID_PKCS1_SHA512WITHRSA {
                &signature::RSA_PKCS1_1024_8192_SHA512_FOR_LEGACY_USE_ONLY
            } else {
                return Err(CsrError::UnsupportedSignature(format!(
                    "{} with a {}-bit RSA key",
                    algorithm.to_id_string(),
                    key.key_size()
                )));
            };
        return UnparsedPublicKey::new(legacy, spki.subject_public_key.as_ref())
            .verify(
                csr.certification_request_info.raw,
                csr.signature_value.as_ref(),
            )
            .map_err(|_| CsrError::BadSignature);
    }
    csr.verify_signature().map_err(|e| match e {
        X509Error::SignatureUnsupportedAlgorithm => {
            CsrError::UnsupportedSignature(algorithm.to_id_string())
        }
        _ => CsrError::BadSignature,
    })
}

/// Checks that the CSR names exactly the certificate's names, compared as sets.
///
/// Each side's set is its SANs plus its common name when that is a DNS name, IP or e-mail
/// address, so a CSR may omit the CN from its subject if the SANs carry it. A CN the CSR
/// does state must equal the certificate's. The error lists every missing and extra name.
pub fn check_names(info: &CsrInfo, common_name: &str, sans: &[String]) -> Result<(), CsrError> {
    let cert_cn = (!common_name.is_empty()).then(|| SubjectAltName::classify(common_name));
    let csr_cn = info.common_name.as_deref().map(SubjectAltName::classify);

    let name_like = |san: &SubjectAltName| san.check().is_ok();
    let expected: BTreeSet<SubjectAltName> = sans
        .iter()
        .map(|s| SubjectAltName::classify(s))
        .chain(cert_cn.clone().filter(name_like))
        .collect();
    let requested: BTreeSet<SubjectAltName> = info
        .subject_alt_names
        .iter()
        .cloned()
        .chain(csr_cn.clone().filter(name_like))
        .collect();

    let mut problems = Vec::new();
    let missing: Vec<String> = expected.difference(&requested).map(label).collect();
    if !missing.is_empty() {
        problems.push(format!("the CSR lacks {}", missing.join(", ")));
    }
    let extra: Vec<String> = requested.difference(&expected).map(label).collect();
    if !extra.is_empty() {
        problems.push(format!("the CSR adds {}", extra.join(", ")));
    }
    if let (Some(csr_cn), Some(raw)) = (&csr_cn, &info.common_name) {
        let same = match &cert_cn {
            Some(cert_cn) => cert_cn == csr_cn,
            None => false,
        };
        if !same {
            problems.push(format!(
                "the CSR's common name {raw:?} differs from the certificate's {common_name:?}"
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(CsrError::NameMismatch(problems.join("; ")))
    }
}

/// `DNS:a.example`, the way openssl prints SANs.
fn label(san: &SubjectAltName) -> String {
    format!("{}:{san}", san.kind())
}

#[cfg(test)]
mod tests;
