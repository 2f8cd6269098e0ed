//! The subject public key a certificate is issued for — taken from a verified CSR or from
//! server-side key generation — together with the algorithm and size that profile rules,
//! policies and the certificate version record look at. Only keys the Local CA can encode and
//! relying parties commonly accept get through: RSA, ECDSA on P-256/P-384, and Ed25519.

use std::fmt;

use rustls_pki_types::SubjectPublicKeyInfoDer;
use rustls_pki_types::pem::PemObject as _;
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_PKCS1_RSAENCRYPTION,
    OID_SIG_ED25519,
};
use x509_parser::prelude::FromDer as _;
use x509_parser::public_key::PublicKey;
use x509_parser::x509::SubjectPublicKeyInfo as ParsedSpki;

/// Key families, named the way profiles, policies and the API spell them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyAlgorithm {
    /// RSA (any modulus size; the lint and profile rules judge the size).
    Rsa,
    /// ECDSA on P-256 or P-384.
    Ecdsa,
    /// Ed25519.
    Ed25519,
}

impl KeyAlgorithm {
    /// The stored and displayed name: "RSA", "ECDSA" or "Ed25519".
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rsa => "RSA",
            Self::Ecdsa => "ECDSA",
            Self::Ed25519 => "Ed25519",
        }
    }
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A public key that cannot go into a certificate; the message names the key type.
#[derive(Debug, thiserror::Error)]
#[error("unsupported public key: {0}")]
pub struct UnsupportedKey(pub(crate) String);

/// A subject's public key, validated and ready to be certified.
///
/// Keeps the original SubjectPublicKeyInfo DER so the certificate carries exactly the key
/// that signed the CSR, plus rcgen's view of it for signing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectPublicKey {
    spki_der: Vec<u8>,
    signing_form: rcgen::SubjectPublicKeyInfo,
    algorithm: KeyAlgorithm,
    key_size: u32,
}

impl SubjectPublicKey {
    /// Accepts a DER SubjectPublicKeyInfo, refusing key types the Local CA cannot certify.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, UnsupportedKey> {
        let (rest, spki) = ParsedSpki::from_der(der)
            .map_err(|e| UnsupportedKey(format!("not a SubjectPublicKeyInfo ({e})")))?;
        if !rest.is_empty() {
            return Err(UnsupportedKey(
                "trailing bytes after the SubjectPublicKeyInfo".into(),
            ));
        }
        let (algorithm, key_size) = describe(&spki)?;
        let signing_form = rcgen::SubjectPublicKeyInfo::from_der(der).map_err(|e| {
            UnsupportedKey(format!(
                "{algorithm}-{key_size} key cannot be encoded ({e})"
            ))
        })?;
        Ok(Self {
            spki_der: der.to_vec(),
            signing_form,
            algorithm,
            key_size,
        })
    }

    /// Accepts a PEM "PUBLIC KEY" block (what `openssl pkey -pubout` writes).
    pub fn from_pem(pem: &str) -> Result<Self, UnsupportedKey> {
        let der = SubjectPublicKeyInfoDer::from_pem_slice(pem.as_bytes())
            .map_err(|e| UnsupportedKey(format!("no PUBLIC KEY PEM block ({e})")))?;
        Self::from_spki_der(der.as_ref())
    }

    /// The key family.
    pub fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }

    /// Size in bits: the RSA modulus length, or the curve size (256 for Ed25519).
    pub fn key_size(&self) -> u32 {
        self.key_size
    }

    /// The SubjectPublicKeyInfo, DER-encoded, exactly as received.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }
}

impl rcgen::PublicKeyData for SubjectPublicKey {
    fn der_bytes(&self) -> &[u8] {
        self.signing_form.der_bytes()
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        rcgen::PublicKeyData::algorithm(&self.signing_form)
    }
}

/// Algorithm and size of a parsed key, or why it is refused.
fn describe(spki: &ParsedSpki<'_>) -> Result<(KeyAlgorithm, u32), UnsupportedKey> {
    let oid = &spki.algorithm.algorithm;
    if *oid == OID_PKCS1_RSAENCRYPTION {
        let Ok(PublicKey::RSA(rsa)) = spki.parsed() else {
            return Err(UnsupportedKey("malformed RSA public key".into()));
        };
        let bits = unsigned_bits(rsa.modulus);
        if bits == 0 {
            return Err(UnsupportedKey("RSA modulus is zero".into()));
        }
        Ok((KeyAlgorithm::Rsa, bits))
    } else if *oid == OID_KEY_TYPE_EC_PUBLIC_KEY {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok())
            .ok_or_else(|| UnsupportedKey("EC key without a named curve".into()))?;
        let (bits, point_len) = if curve == OID_EC_P256 {
            (256, 65)
        } else if curve == OID_NIST_EC_P384 {
            (384, 97)
        } else {
            return Err(UnsupportedKey(format!(
                "EC curve {curve} (only P-256 and P-384 are accepted)"
            )));
        };
        let point = spki.subject_public_key.as_ref();
        if point.len() != point_len || point.first() != Some(&0x04) {
            return Err(UnsupportedKey(format!(
                "EC P-{bits} public key must be an uncompressed point of {point_len} bytes"
            )));
        }
        Ok((KeyAlgorithm::Ecdsa, bits))
    } else if *oid == OID_SIG_ED25519 {
        if spki.subject_public_key.as_ref().len() != 32 {
            return Err(UnsupportedKey("Ed25519 public key must be 32 bytes".into()));
        }
        Ok((KeyAlgorithm::Ed25519, 256))
    } else {
        Err(UnsupportedKey(format!(
            "key algorithm {oid} (accepted: RSA, ECDSA P-256/P-384, Ed25519)"
        )))
    }
}

/// Bit length of a big-endian unsigned integer (leading zero bytes ignored).
fn unsigned_bits(bytes: &[u8]) -> u32 {
    let significant: &[u8] = match bytes.iter().position(|b| *b != 0) {
        Some(first) => &bytes[first..],
        None => return 0,
    };
    let leading = significant.first().map_or(0, |b| b.leading_zeros());
    u32::try_from(significant.len() * 8).unwrap_or(u32::MAX) - leading
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_length_ignores_sign_padding() {
        assert_eq!(unsigned_bits(&[0x00, 0x80, 0x00]), 16);
        assert_eq!(unsigned_bits(&[0x01, 0x00]), 9);
        assert_eq!(unsigned_bits(&[0x00, 0x00]), 0);
    }

    #[test]
    fn generated_keys_are_described() {
        for (alg, name, bits) in [
            (&rcgen::PKCS_ECDSA_P256_SHA256, "ECDSA", 256),
            (&rcgen::PKCS_ECDSA_P384_SHA384, "ECDSA", 384),
            (&rcgen::PKCS_ED25519, "Ed25519", 256),
        ] {
            let key = rcgen::KeyPair::generate_for(alg).expect("keygen");
            let spki = rcgen::PublicKeyData::subject_public_key_info(&key);
            let parsed = SubjectPublicKey::from_spki_der(&spki).expect("accepted");
            assert_eq!(parsed.algorithm().as_str(), name);
            assert_eq!(parsed.key_size(), bits);
            assert_eq!(parsed.spki_der(), &spki[..]);
            let from_pem = SubjectPublicKey::from_pem(&key.public_key_pem()).expect("pem");
            assert_eq!(from_pem, parsed);
        }
    }

    #[test]
    fn garbage_is_refused_with_a_reason() {
        let err = SubjectPublicKey::from_spki_der(b"\x30\x03\x02\x01\x00").expect_err("not a key");
        assert!(
            err.to_string().starts_with("unsupported public key"),
            "{err}"
        );
    }
}
