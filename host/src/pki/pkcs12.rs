//! PKCS#12 (RFC 7292) export of certificates only: a PFX whose single, unencrypted
//! SafeContents holds one certBag per certificate, protected by an HMAC-SHA256 integrity
//! MAC keyed from the password with the PKCS#12 KDF (RFC 7292 Appendix B, the derivation
//! every PKCS#12 reader implements; PBMAC1 is too new for most of them).
//!
//! No private key is ever included: certctl does not keep agent keys, and exports of
//! server-generated keys are out of scope. Certificates are public, so their bags are not
//! encrypted; the password only keys the MAC (an empty password is the common convention
//! for "no password" and is what `openssl pkcs12 -passin pass:` checks).
//!
//! Hand-encoded with yasna and ring so no second crypto stack enters the workspace.

use ring::{digest, hmac};
use yasna::models::ObjectIdentifier;
use yasna::{DERWriter, Tag};

/// id-data (1.2.840.113549.1.7.1).
const OID_DATA: &[u64] = &[1, 2, 840, 113549, 1, 7, 1];
/// pkcs-12 certBag (1.2.840.113549.1.12.10.1.3).
const OID_CERT_BAG: &[u64] = &[1, 2, 840, 113549, 1, 12, 10, 1, 3];
/// x509Certificate cert type (1.2.840.113549.1.9.22.1).
const OID_X509_CERTIFICATE: &[u64] = &[1, 2, 840, 113549, 1, 9, 22, 1];
/// friendlyName attribute (1.2.840.113549.1.9.20).
const OID_FRIENDLY_NAME: &[u64] = &[1, 2, 840, 113549, 1, 9, 20];
/// id-sha256 (2.16.840.1.101.3.4.2.1).
const OID_SHA256: &[u64] = &[2, 16, 840, 1, 101, 3, 4, 2, 1];

/// MAC key derivation iterations (OpenSSL's default).
pub const MAC_ITERATIONS: u32 = 2048;
/// Salt length in octets.
const SALT_LEN: usize = 16;
/// SHA-256 output (u) and block (v) sizes in octets, as the KDF names them.
const HASH_LEN: usize = 32;
const BLOCK_LEN: usize = 64;
/// KDF purpose byte for MAC keys (RFC 7292 B.3).
const KDF_ID_MAC: u8 = 3;

/// One certificate to put into the file.
#[derive(Debug, Clone, Copy)]
pub struct CertEntry<'a> {
    /// The certificate, DER.
    pub der: &'a [u8],
    /// Shown by importers (`friendlyName`); none when `None`.
    pub friendly_name: Option<&'a str>,
}

/// Why an export could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Pkcs12Error {
    /// Nothing to export.
    #[error("no certificates to export")]
    Empty,
    /// The operating system's random number generator failed.
    #[error("the system random number generator failed")]
    Random,
}

/// The password as PKCS#12 wants it: UTF-16BE (BMPString) with a two-octet terminator.
fn bmp_password(password: &str) -> Vec<u8> {
    let mut out: Vec<u8> = password.encode_utf16().flat_map(u16::to_be_bytes).collect();
    out.extend_from_slice(&[0, 0]);
    out
}

/// The PKCS#12 key derivation (RFC 7292 Appendix B.2) with SHA-256.
fn kdf(password: &[u8], salt: &[u8], id: u8, iterations: u32, len: usize) -> Vec<u8> {
    let stretch = |src: &[u8]| -> Vec<u8> {
        if src.is_empty() {
            return Vec::new();
        }
        let target = BLOCK_LEN * src.len().div_ceil(BLOCK_LEN);
        src.iter().cycle().take(target).copied().collect()
    };
    let diversifier = [id; BLOCK_LEN];
    let mut input = [stretch(salt), stretch(password)].concat();
    let mut out = Vec::with_capacity(len + HASH_LEN);
    loop {
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(&diversifier);
        ctx.update(&input);
        let mut a = ctx.finish().as_ref().to_vec();
        for _ in 1..iterations.max(1) {
            a = digest::digest(&digest::SHA256, &a).as_ref().to_vec();
        }
        out.extend_from_slice(&a);
        if out.len() >= len {
            out.truncate(len);
            return out;
        }
        // I_j = (I_j + B + 1) mod 2^(8v) for every v-octet block of I.
        let b: Vec<u8> = a.iter().cycle().take(BLOCK_LEN).copied().collect();
        for block in input.chunks_mut(BLOCK_LEN) {
            let mut carry = 1u16;
            for k in (0..block.len()).rev() {
                let sum = u16::from(block[k]) + u16::from(b[k]) + carry;
                block[k] = (sum & 0xff) as u8;
                carry = sum >> 8;
            }
        }
    }
}

fn write_oid(w: DERWriter<'_>, oid: &[u64]) {
    w.write_oid(&ObjectIdentifier::from_slice(oid));
}

/// `ContentInfo { id-data, [0] EXPLICIT OCTET STRING content }`.
fn data_content_info(w: DERWriter<'_>, content: &[u8]) {
    w.write_sequence(|w| {
        write_oid(w.next(), OID_DATA);
        w.next()
            .write_tagged(Tag::context(0), |w| w.write_bytes(content));
    });
}

fn safe_contents(certs: &[CertEntry<'_>]) -> Vec<u8> {
    yasna::construct_der(|w| {
        w.write_sequence_of(|w| {
            for cert in certs {
                w.next().write_sequence(|w| {
                    write_oid(w.next(), OID_CERT_BAG);
                    w.next().write_tagged(Tag::context(0), |w| {
                        w.write_sequence(|w| {
                            write_oid(w.next(), OID_X509_CERTIFICATE);
                            w.next()
                                .write_tagged(Tag::context(0), |w| w.write_bytes(cert.der));
                        })
                    });
                    if let Some(name) = cert.friendly_name {
                        w.next().write_set_of(|w| {
                            w.next().write_sequence(|w| {
                                write_oid(w.next(), OID_FRIENDLY_NAME);
                                w.next().write_set_of(|w| w.next().write_bmp_string(name));
                            });
                        });
                    }
                });
            }
        })
    })
}

/// Builds the PFX with a freshly random salt.
pub fn certificates_only(certs: &[CertEntry<'_>], password: &str) -> Result<Vec<u8>, Pkcs12Error> {
    let mut salt = [0u8; SALT_LEN];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut salt)
        .map_err(|_| Pkcs12Error::Random)?;
    build(certs, password, &salt, MAC_ITERATIONS)
}

fn build(
    certs: &[CertEntry<'_>],
    password: &str,
    salt: &[u8],
    iterations: u32,
) -> Result<Vec<u8>, Pkcs12Error> {
    if certs.is_empty() {
        return Err(Pkcs12Error::Empty);
    }
    let contents = safe_contents(certs);
    let authenticated_safe =
        yasna::construct_der(|w| w.write_sequence_of(|w| data_content_info(w.next(), &contents)));
    let key = kdf(
        &bmp_password(password),
        salt,
        KDF_ID_MAC,
        iterations,
        HASH_LEN,
    );
    let mac = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, &key),
        &authenticated_safe,
    );
    Ok(yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_u8(3);
            data_content_info(w.next(), &authenticated_safe);
            w.next().write_sequence(|w| {
                w.next().write_sequence(|w| {
                    w.next().write_sequence(|w| {
                        write_oid(w.next(), OID_SHA256);
                        w.next().write_null();
                    });
                    w.next().write_bytes(mac.as_ref());
                });
                w.next().write_bytes(salt);
                w.next().write_u32(iterations);
            });
        })
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_bmp_strings_with_a_terminator() {
        assert_eq!(bmp_password(""), vec![0, 0]);
        assert_eq!(bmp_password("ab"), vec![0, b'a', 0, b'b', 0, 0]);
    }

    #[test]
    fn kdf_is_deterministic_and_purpose_bound() {
        let pw = bmp_password("secret");
        let k1 = kdf(&pw, b"saltsalt", KDF_ID_MAC, 2, 32);
        assert_eq!(k1, kdf(&pw, b"saltsalt", KDF_ID_MAC, 2, 32));
        assert_ne!(k1, kdf(&pw, b"saltsalt", 1, 2, 32));
        assert_ne!(k1, kdf(&pw, b"saltsalS", KDF_ID_MAC, 2, 32));
        // Longer outputs extend, never change, the shorter ones.
        assert_eq!(&kdf(&pw, b"saltsalt", KDF_ID_MAC, 2, 80)[..32], &k1[..]);
    }

    #[test]
    fn empty_exports_are_refused() {
        assert_eq!(certificates_only(&[], ""), Err(Pkcs12Error::Empty));
    }

    /// openssl reads the file, verifies the MAC with the password and finds the
    /// certificates and no key — with and without a password.
    #[test]
    fn openssl_reads_the_certificates_and_finds_no_key() {
        use crate::pki::local_ca::LocalCa;
        use crate::pki::test_openssl::Workdir;

        let work = Workdir::new();
        let ca = LocalCa::load_or_create(&work.path("ca")).expect("ca");
        for password in ["", "pässword"] {
            let p12 = certificates_only(
                &[CertEntry {
                    der: ca.certificate_der(),
                    friendly_name: Some("certctl CA"),
                }],
                password,
            )
            .expect("p12");
            std::fs::write(work.path("x.p12"), &p12).expect("write");
            let pass = format!("pass:{password}");
            let out = work.openssl(&[
                "pkcs12", "-info", "-in", "x.p12", "-nokeys", "-passin", &pass,
            ]);
            assert!(out.contains("BEGIN CERTIFICATE"), "{out}");
            assert!(out.contains("friendlyName: certctl CA"), "{out}");
            assert!(!out.contains("PRIVATE KEY"), "{out}");
            let wrong = work.try_openssl(&[
                "pkcs12",
                "-info",
                "-in",
                "x.p12",
                "-nokeys",
                "-passin",
                "pass:wrong",
            ]);
            assert!(wrong.is_err(), "a wrong password must fail the MAC");
        }
    }
}
