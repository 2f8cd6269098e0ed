//! The few DER and PEM encodings rcgen does not write for us: the OCSP AuthorityInfoAccess
//! extension, a critical EKU extension, and PKCS#8 wrappers for SEC1 / PKCS#1 keys.
//! Everything here encodes fixed, well-known shapes; parsing lives in x509-parser.

use base64::Engine as _;

/// DER tag numbers used below.
const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const OCTET_STRING: u8 = 0x04;
const NULL: u8 = 0x05;
/// `[6] IMPLICIT IA5String` — GeneralName's uniformResourceIdentifier.
const URI_GENERAL_NAME: u8 = 0x86;

/// DER of the OID rsaEncryption (1.2.840.113549.1.1.1).
const OID_RSA_ENCRYPTION: &[u8] = &[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
];
/// DER of the OID id-ecPublicKey (1.2.840.10045.2.1).
const OID_EC_PUBLIC_KEY: &[u8] = &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
/// DER of the OID secp256r1 (1.2.840.10045.3.1.7).
pub(crate) const OID_P256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// DER of the OID secp384r1 (1.3.132.0.34).
pub(crate) const OID_P384: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];
/// DER of the OID id-ad-ocsp (1.3.6.1.5.5.7.48.1).
const OID_AD_OCSP: &[u8] = &[0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01];

/// DER of the OID id-kp-timeStamping (1.3.6.1.5.5.7.3.8).
pub(crate) const OID_KP_TIME_STAMPING: &[u8] =
    &[0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x08];

/// id-pe-authorityInfoAccess (1.3.6.1.5.5.7.1.1), as rcgen wants extension OIDs.
pub(crate) const OID_AUTHORITY_INFO_ACCESS: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 1, 1];
/// id-ce-extKeyUsage (2.5.29.37).
pub(crate) const OID_EXT_KEY_USAGE: &[u64] = &[2, 5, 29, 37];

/// One DER TLV with a definite length.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    out.push(tag);
    let len = content.len();
    if len < 0x80 {
        // Fits the short form; the cast cannot truncate.
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        let significant = &bytes[skip..];
        out.push(0x80 | significant.len() as u8);
        out.extend_from_slice(significant);
    }
    out.extend_from_slice(content);
    out
}

/// A SEQUENCE of already-encoded elements.
fn sequence(elements: &[&[u8]]) -> Vec<u8> {
    tlv(SEQUENCE, &elements.concat())
}

/// The body of an AuthorityInfoAccess extension with a single OCSP responder URL.
pub(crate) fn ocsp_authority_info_access(url: &str) -> Vec<u8> {
    let location = tlv(URI_GENERAL_NAME, url.as_bytes());
    let access_description = sequence(&[OID_AD_OCSP, &location]);
    sequence(&[&access_description])
}

/// The body of an ExtendedKeyUsage extension listing the given purposes (DER OID encodings).
pub(crate) fn extended_key_usage(purposes: &[&[u8]]) -> Vec<u8> {
    sequence(purposes)
}

/// Wraps a PKCS#1 `RSAPrivateKey` into a PKCS#8 `PrivateKeyInfo`, which is all ring reads.
pub(crate) fn pkcs8_from_pkcs1(rsa_private_key: &[u8]) -> Vec<u8> {
    let version = tlv(INTEGER, &[0]);
    let algorithm = sequence(&[OID_RSA_ENCRYPTION, &tlv(NULL, &[])]);
    sequence(&[&version, &algorithm, &tlv(OCTET_STRING, rsa_private_key)])
}

/// Wraps a SEC1 `ECPrivateKey` into a PKCS#8 `PrivateKeyInfo` for the curve named by
/// `curve_oid`; ring rejects the result if the key belongs to another curve.
pub(crate) fn pkcs8_from_sec1(ec_private_key: &[u8], curve_oid: &[u8]) -> Vec<u8> {
    let version = tlv(INTEGER, &[0]);
    let algorithm = sequence(&[OID_EC_PUBLIC_KEY, curve_oid]);
    sequence(&[&version, &algorithm, &tlv(OCTET_STRING, ec_private_key)])
}

/// PEM text with 64-column base64 lines, the layout openssl and every other tool expects.
pub(crate) fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        // base64 output is ASCII, so every chunk is valid UTF-8.
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_form_lengths_are_minimal() {
        let content = vec![0u8; 300];
        let encoded = tlv(OCTET_STRING, &content);
        assert_eq!(&encoded[..4], &[0x04, 0x82, 0x01, 0x2c]);
        assert_eq!(encoded.len(), 304);
        assert_eq!(&tlv(NULL, &[])[..], &[0x05, 0x00]);
    }

    #[test]
    fn ocsp_aia_matches_a_known_encoding() {
        let der = ocsp_authority_info_access("http://o.example");
        let (rest, aia) = <x509_parser::extensions::AuthorityInfoAccess as x509_parser::prelude::FromDer<_>>::from_der(&der)
            .expect("parses");
        assert!(rest.is_empty());
        let access: Vec<_> = aia.iter().collect();
        assert_eq!(access.len(), 1);
        assert_eq!(
            access[0].access_method,
            x509_parser::oid_registry::OID_PKIX_ACCESS_DESCRIPTOR_OCSP
        );
        assert_eq!(
            access[0].access_location,
            x509_parser::extensions::GeneralName::URI("http://o.example")
        );
    }

    #[test]
    fn pem_wraps_at_64_columns() {
        let text = pem("CERTIFICATE", &[0xab; 100]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "-----BEGIN CERTIFICATE-----");
        assert_eq!(lines[1].len(), 64);
        assert_eq!(lines.last().copied(), Some("-----END CERTIFICATE-----"));
    }
}
