//! OCSP (RFC 6960) on the wire: parsing `OCSPRequest`s and encoding signed
//! `BasicOCSPResponse`s, by hand with yasna (no OCSP crate shares our ring backend).
//!
//! What is here: the ASN.1 shapes, CertID matching against an issuing CA, and ECDSA P-256
//! signing with the responder key. What is not: deciding a certificate's status (the
//! revocation service reads the database) and the responder certificate's lifecycle.
//!
//! Choices: responses always name the responder by key hash (`byKey`), carry the responder
//! certificate, echo the request's nonce extension byte for byte, and echo each `CertID`
//! exactly as requested, so clients match answers to questions whatever hash they used.

use ring::digest;
use ring::rand::SystemRandom;
use ring::signature::EcdsaKeyPair;
use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer as _;
use yasna::models::{GeneralizedTime, ObjectIdentifier};
use yasna::{ASN1Error, BERReader, DERWriter, Tag};

/// id-pkix-ocsp-basic (1.3.6.1.5.5.7.48.1.1).
const OID_OCSP_BASIC: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 48, 1, 1];
/// id-pkix-ocsp-nonce (1.3.6.1.5.5.7.48.1.2).
const OID_OCSP_NONCE: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 48, 1, 2];
/// id-pkix-ocsp-nocheck (1.3.6.1.5.5.7.48.1.5): put into responder certificates.
pub const OID_OCSP_NOCHECK: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 48, 1, 5];
/// ecdsa-with-SHA256 (1.2.840.10045.4.3.2).
const OID_ECDSA_WITH_SHA256: &[u64] = &[1, 2, 840, 10045, 4, 3, 2];
/// id-sha1 (1.3.14.3.2.26).
const OID_SHA1: &[u64] = &[1, 3, 14, 3, 2, 26];
/// id-sha256, id-sha384, id-sha512 (2.16.840.1.101.3.4.2.{1,2,3}).
const OID_SHA256: &[u64] = &[2, 16, 840, 1, 101, 3, 4, 2, 1];
const OID_SHA384: &[u64] = &[2, 16, 840, 1, 101, 3, 4, 2, 2];
const OID_SHA512: &[u64] = &[2, 16, 840, 1, 101, 3, 4, 2, 3];

/// Most certificates one request may ask about; more is answered `malformedRequest`.
pub const MAX_REQUESTS: usize = 32;
/// Largest nonce extension value echoed (RFC 8954 allows 1–32 octets of nonce; some
/// clients wrap it, so the limit leaves room).
const MAX_NONCE_LEN: usize = 128;

/// `OCSPResponseStatus` (RFC 6960 §4.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseStatus {
    /// A signed answer follows.
    Successful = 0,
    /// The request did not parse.
    MalformedRequest = 1,
    /// The responder failed.
    InternalError = 2,
    /// Try again later.
    TryLater = 3,
    /// The responder only answers signed requests (unused by certctl).
    SigRequired = 5,
    /// The responder is not authoritative for this issuer.
    Unauthorized = 6,
}

/// A hash algorithm a CertID may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlgorithm {
    /// SHA-1: what nearly every client sends.
    Sha1,
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl HashAlgorithm {
    fn from_oid(oid: &ObjectIdentifier) -> Option<Self> {
        match oid.components().as_slice() {
            c if c == OID_SHA1 => Some(Self::Sha1),
            c if c == OID_SHA256 => Some(Self::Sha256),
            c if c == OID_SHA384 => Some(Self::Sha384),
            c if c == OID_SHA512 => Some(Self::Sha512),
            _ => None,
        }
    }

    fn oid(self) -> &'static [u64] {
        match self {
            Self::Sha1 => OID_SHA1,
            Self::Sha256 => OID_SHA256,
            Self::Sha384 => OID_SHA384,
            Self::Sha512 => OID_SHA512,
        }
    }

    fn digest(self, data: &[u8]) -> Vec<u8> {
        let algorithm = match self {
            Self::Sha1 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
            Self::Sha256 => &digest::SHA256,
            Self::Sha384 => &digest::SHA384,
            Self::Sha512 => &digest::SHA512,
        };
        digest::digest(algorithm, data).as_ref().to_vec()
    }
}

/// One certificate asked about (`CertID`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertId {
    /// The hash the issuer fields use; `None` when certctl does not know it (answered
    /// `unknown`).
    pub hash_algorithm: Option<HashAlgorithm>,
    /// Hash of the issuer's subject name (DER).
    pub issuer_name_hash: Vec<u8>,
    /// Hash of the issuer's public key (the BIT STRING value of its SubjectPublicKeyInfo).
    pub issuer_key_hash: Vec<u8>,
    /// The serial number's INTEGER content octets (two's complement, as sent).
    pub serial: Vec<u8>,
    /// The whole CertID as received, echoed in the answer.
    pub der: Vec<u8>,
}

/// A parsed `OCSPRequest`. A request signature, if any, is ignored (RFC 6960 makes it
/// optional and certctl answers everyone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OcspRequest {
    /// The certificates asked about, in request order.
    pub cert_ids: Vec<CertId>,
    /// The nonce extension's `extnValue` octets, when the client sent one.
    pub nonce: Option<Vec<u8>>,
}

/// Why a request could not be understood; answered with `malformedRequest`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed OCSP request: {0}")]
pub struct MalformedRequest(pub String);

/// Why a response could not be produced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OcspError {
    /// The issuing CA's certificate does not parse.
    #[error("issuer certificate: {0}")]
    IssuerCertificate(String),
    /// Signing with the responder key failed.
    #[error("signing the OCSP response failed")]
    Signing,
}

fn extension(r: BERReader<'_, '_>) -> Result<(ObjectIdentifier, Vec<u8>), ASN1Error> {
    r.read_sequence(|r| {
        let oid = r.next().read_oid()?;
        let _critical = r.read_default(false, |r| r.read_bool())?;
        let value = r.next().read_bytes()?;
        Ok((oid, value))
    })
}

fn cert_id(r: BERReader<'_, '_>) -> Result<CertId, ASN1Error> {
    let (mut id, der) = r.read_with_buffer(|r| {
        r.read_sequence(|r| {
            let oid = r.next().read_sequence(|r| {
                let oid = r.next().read_oid()?;
                // Parameters: absent or NULL for every hash we know.
                r.read_optional(|r| r.read_der())?;
                Ok(oid)
            })?;
            let issuer_name_hash = r.next().read_bytes()?;
            let issuer_key_hash = r.next().read_bytes()?;
            let (serial, _non_negative) = r.next().read_bigint_bytes()?;
            Ok(CertId {
                hash_algorithm: HashAlgorithm::from_oid(&oid),
                issuer_name_hash,
                issuer_key_hash,
                serial,
                der: Vec::new(),
            })
        })
    })?;
    id.der = der.to_vec();
    Ok(id)
}

/// Parses a DER (or BER) `OCSPRequest`.
pub fn parse_request(der: &[u8]) -> Result<OcspRequest, MalformedRequest> {
    let request = yasna::parse_ber(der, |r| {
        r.read_sequence(|r| {
            let request = r.next().read_sequence(|r| {
                let version =
                    r.read_optional(|r| r.read_tagged(Tag::context(0), |r| r.read_u8()))?;
                if version.is_some_and(|v| v != 0) {
                    return Err(ASN1Error::new(yasna::ASN1ErrorKind::Invalid));
                }
                // requestorName [1] EXPLICIT GeneralName OPTIONAL: not used.
                r.read_optional(|r| r.read_tagged(Tag::context(1), |r| r.read_der()))?;
                let cert_ids = r.next().collect_sequence_of(|r| {
                    r.read_sequence(|r| {
                        let id = cert_id(r.next())?;
                        // singleRequestExtensions [0] EXPLICIT Extensions OPTIONAL: ignored.
                        r.read_optional(|r| r.read_tagged(Tag::context(0), |r| r.read_der()))?;
                        Ok(id)
                    })
                })?;
                let extensions = r
                    .read_optional(|r| {
                        r.read_tagged(Tag::context(2), |r| r.collect_sequence_of(extension))
                    })?
                    .unwrap_or_default();
                let nonce = extensions
                    .into_iter()
                    .find(|(oid, _)| oid.components().as_slice() == OID_OCSP_NONCE)
                    .map(|(_, value)| value);
                Ok(OcspRequest { cert_ids, nonce })
            })?;
            // optionalSignature [0] EXPLICIT Signature OPTIONAL: accepted, not checked.
            r.read_optional(|r| r.read_tagged(Tag::context(0), |r| r.read_der()))?;
            Ok(request)
        })
    })
    .map_err(|e| MalformedRequest(format!("not a DER OCSPRequest ({e})")))?;
    if request.cert_ids.is_empty() {
        return Err(MalformedRequest("the request list is empty".into()));
    }
    if request.cert_ids.len() > MAX_REQUESTS {
        return Err(MalformedRequest(format!(
            "{} certificates asked about; at most {MAX_REQUESTS} per request",
            request.cert_ids.len()
        )));
    }
    if request
        .nonce
        .as_ref()
        .is_some_and(|n| n.is_empty() || n.len() > MAX_NONCE_LEN)
    {
        return Err(MalformedRequest(format!(
            "the nonce must be 1 to {MAX_NONCE_LEN} octets"
        )));
    }
    Ok(request)
}

/// The two facts about an issuing CA that a CertID hashes: its subject name (DER, exactly as
/// in its certificate) and its public key (the SubjectPublicKeyInfo BIT STRING value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerIdentity {
    name_der: Vec<u8>,
    key_bits: Vec<u8>,
}

impl IssuerIdentity {
    /// Reads the identity from the CA certificate (DER).
    pub fn from_certificate_der(der: &[u8]) -> Result<Self, OcspError> {
        let (_, cert) = X509Certificate::from_der(der)
            .map_err(|e| OcspError::IssuerCertificate(e.to_string()))?;
        Ok(Self {
            name_der: cert.subject().as_raw().to_vec(),
            key_bits: cert.public_key().subject_public_key.data.to_vec(),
        })
    }

    /// Whether a CertID names this issuer (with a hash algorithm certctl knows).
    pub fn issued(&self, id: &CertId) -> bool {
        id.hash_algorithm.is_some_and(|h| {
            h.digest(&self.name_der) == id.issuer_name_hash
                && h.digest(&self.key_bits) == id.issuer_key_hash
        })
    }

    /// A SHA-1 CertID for one of this issuer's serials (for the `GET …/{serial}` form, which
    /// carries no CertID of its own). `serial` is the INTEGER's content octets.
    pub fn cert_id(&self, serial: &[u8]) -> Vec<u8> {
        let h = HashAlgorithm::Sha1;
        yasna::construct_der(|w| {
            w.write_sequence(|w| {
                w.next().write_sequence(|w| {
                    w.next().write_oid(&ObjectIdentifier::from_slice(h.oid()));
                    w.next().write_null();
                });
                w.next().write_bytes(&h.digest(&self.name_der));
                w.next().write_bytes(&h.digest(&self.key_bits));
                w.next().write_bigint_bytes(serial, true);
            })
        })
    }
}

/// A certificate's status as answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertStatus {
    /// Issued by this CA and not revoked.
    Good,
    /// Revoked at `time`, with a CRLReason code unless the reason was unspecified.
    Revoked {
        /// When.
        time: OffsetDateTime,
        /// CRLReason, omitted for `unspecified`.
        reason: Option<u8>,
    },
    /// Not issued by this CA as far as certctl knows.
    Unknown,
}

/// One answer (`SingleResponse`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SingleAnswer {
    /// The CertID exactly as asked (or built for the serial form).
    pub cert_id_der: Vec<u8>,
    /// The status.
    pub status: CertStatus,
    /// When the status was known correct.
    pub this_update: OffsetDateTime,
    /// When newer information will be available.
    pub next_update: OffsetDateTime,
}

/// The key and certificate that sign responses (never the CA's own key).
pub struct ResponderKey<'a> {
    /// The responder's certificate (DER), issued by the CA with the OCSPSigning EKU.
    pub certificate_der: &'a [u8],
    /// Its ECDSA P-256 key.
    pub key: &'a EcdsaKeyPair,
}

fn generalized_time(t: OffsetDateTime) -> GeneralizedTime {
    // DER GeneralizedTime carries no fractional seconds here: whole seconds only.
    GeneralizedTime::from_datetime(t.replace_nanosecond(0).unwrap_or(t))
}

fn write_status(w: DERWriter<'_>, status: CertStatus) {
    match status {
        CertStatus::Good => w.write_tagged_implicit(Tag::context(0), |w| w.write_null()),
        CertStatus::Revoked { time, reason } => {
            w.write_tagged_implicit(Tag::context(1), |w| {
                w.write_sequence(|w| {
                    w.next().write_generalized_time(&generalized_time(time));
                    if let Some(code) = reason {
                        w.next()
                            .write_tagged(Tag::context(0), |w| w.write_enum(i64::from(code)));
                    }
                })
            });
        }
        CertStatus::Unknown => w.write_tagged_implicit(Tag::context(2), |w| w.write_null()),
    }
}

/// The DER `tbsResponseData` that the responder key signs.
fn response_data(
    answers: &[SingleAnswer],
    nonce: Option<&[u8]>,
    produced_at: OffsetDateTime,
    responder_key_hash: &[u8],
) -> Vec<u8> {
    yasna::construct_der(|w| {
        w.write_sequence(|w| {
            // version DEFAULT v1: omitted. responderID byKey [2] EXPLICIT KeyHash.
            w.next()
                .write_tagged(Tag::context(2), |w| w.write_bytes(responder_key_hash));
            w.next()
                .write_generalized_time(&generalized_time(produced_at));
            w.next().write_sequence_of(|w| {
                for answer in answers {
                    w.next().write_sequence(|w| {
                        w.next().write_der(&answer.cert_id_der);
                        write_status(w.next(), answer.status);
                        w.next()
                            .write_generalized_time(&generalized_time(answer.this_update));
                        w.next().write_tagged(Tag::context(0), |w| {
                            w.write_generalized_time(&generalized_time(answer.next_update))
                        });
                    });
                }
            });
            if let Some(nonce) = nonce {
                w.next().write_tagged(Tag::context(1), |w| {
                    w.write_sequence_of(|w| {
                        w.next().write_sequence(|w| {
                            w.next()
                                .write_oid(&ObjectIdentifier::from_slice(OID_OCSP_NONCE));
                            w.next().write_bytes(nonce);
                        });
                    });
                });
            }
        })
    })
}

/// A `successful` OCSPResponse with a BasicOCSPResponse signed by `responder`.
pub fn encode_response(
    answers: &[SingleAnswer],
    nonce: Option<&[u8]>,
    produced_at: OffsetDateTime,
    responder: &ResponderKey<'_>,
) -> Result<Vec<u8>, OcspError> {
    let key_hash = digest::digest(
        &digest::SHA1_FOR_LEGACY_USE_ONLY,
        ring::signature::KeyPair::public_key(responder.key).as_ref(),
    );
    let tbs = response_data(answers, nonce, produced_at, key_hash.as_ref());
    let signature = responder
        .key
        .sign(&SystemRandom::new(), &tbs)
        .map_err(|_| OcspError::Signing)?;
    let basic = yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_der(&tbs);
            w.next().write_sequence(|w| {
                w.next()
                    .write_oid(&ObjectIdentifier::from_slice(OID_ECDSA_WITH_SHA256));
            });
            w.next()
                .write_bitvec_bytes(signature.as_ref(), signature.as_ref().len() * 8);
            w.next().write_tagged(Tag::context(0), |w| {
                w.write_sequence(|w| w.next().write_der(responder.certificate_der));
            });
        })
    });
    Ok(yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_enum(ResponseStatus::Successful as i64);
            w.next().write_tagged(Tag::context(0), |w| {
                w.write_sequence(|w| {
                    w.next()
                        .write_oid(&ObjectIdentifier::from_slice(OID_OCSP_BASIC));
                    w.next().write_bytes(&basic);
                })
            });
        })
    }))
}

/// An unsuccessful OCSPResponse: the status alone, no response bytes, nothing signed.
pub fn encode_error(status: ResponseStatus) -> Vec<u8> {
    yasna::construct_der(|w| w.write_sequence(|w| w.next().write_enum(status as i64)))
}

#[cfg(test)]
mod tests;
