//! The Local CA: a self-signed root created on first start (or an operator's sub-CA loaded
//! from files) that signs leaf certificates for public keys from CSRs or server keygen.
//!
//! Issuance is: draft → [`lint`] → sign with rcgen/ring → re-parse and compare.
//! Nothing is signed that fails the lint. The CA also signs CRLs and OCSP responder
//! certificates (`local_ca/revocation.rs`), never OCSP responses themselves. No HTTP, no
//! database: callers persist the result.

use std::fmt;
use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use rcgen::{
    BasicConstraints, CertificateParams, CrlDistributionPoint, CustomExtension, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use ring::rand::SecureRandom as _;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest as _, Sha256};
use time::{Duration, OffsetDateTime};
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer as _;

use super::PkiError;
use super::encoding;
use super::lint::{self, Draft, SubjectAltName};
use super::public_key::{KeyAlgorithm, SubjectPublicKey};

/// Subject common name of the self-signed Local CA.
pub const LOCAL_CA_COMMON_NAME: &str = "certctl Local CA";
/// Lifetime of a freshly created self-signed Local CA.
const LOCAL_CA_VALIDITY: Duration = Duration::days(3650);
/// Back-dating of a fresh CA so hosts with a slightly slow clock accept it at once.
const CLOCK_SKEW_ALLOWANCE: Duration = Duration::hours(1);
/// Serial numbers are this many random octets (RFC 5280 allows up to 20).
const SERIAL_OCTETS: usize = 16;

/// A purpose a certificate may be used for (ExtendedKeyUsage), named as profiles spell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum ExtendedKeyUsage {
    /// TLS server authentication (`serverAuth`).
    ServerAuth,
    /// TLS client authentication (`clientAuth`).
    ClientAuth,
    /// Code signing (`codeSigning`).
    CodeSigning,
    /// S/MIME (`emailProtection`).
    EmailProtection,
    /// RFC 3161 time-stamping (`timeStamping`); must be the only purpose.
    TimeStamping,
}

impl ExtendedKeyUsage {
    /// Every purpose, in the order profiles list them.
    pub const ALL: [Self; 5] = [
        Self::ServerAuth,
        Self::ClientAuth,
        Self::CodeSigning,
        Self::EmailProtection,
        Self::TimeStamping,
    ];

    /// The name profiles and the API use (`serverAuth`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ServerAuth => "serverAuth",
            Self::ClientAuth => "clientAuth",
            Self::CodeSigning => "codeSigning",
            Self::EmailProtection => "emailProtection",
            Self::TimeStamping => "timeStamping",
        }
    }

    fn to_rcgen(self) -> ExtendedKeyUsagePurpose {
        match self {
            Self::ServerAuth => ExtendedKeyUsagePurpose::ServerAuth,
            Self::ClientAuth => ExtendedKeyUsagePurpose::ClientAuth,
            Self::CodeSigning => ExtendedKeyUsagePurpose::CodeSigning,
            Self::EmailProtection => ExtendedKeyUsagePurpose::EmailProtection,
            Self::TimeStamping => ExtendedKeyUsagePurpose::TimeStamping,
        }
    }
}

impl fmt::Display for ExtendedKeyUsage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ExtendedKeyUsage {
    type Err = String;

    /// Parses a profile's EKU name; the error lists the accepted names.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|eku| eku.as_str() == s)
            .ok_or_else(|| {
                let known: Vec<&str> = Self::ALL.iter().map(|e| e.as_str()).collect();
                format!(
                    "unknown extended key usage {s:?} (expected one of {})",
                    known.join(", ")
                )
            })
    }
}

/// KeyUsage bits that fit the purposes and the key type.
///
/// RSA keys can encrypt, so TLS and S/MIME with RSA also get keyEncipherment (RSA key
/// transport); ECDSA and Ed25519 keys only sign. S/MIME adds contentCommitment
/// (non-repudiation) for signed mail. Code signing and time-stamping only sign.
pub fn key_usages_for(
    algorithm: KeyAlgorithm,
    purposes: &[ExtendedKeyUsage],
) -> Vec<KeyUsagePurpose> {
    let rsa = algorithm == KeyAlgorithm::Rsa;
    let mut usages = Vec::new();
    let mut add = |usage: KeyUsagePurpose| {
        if !usages.contains(&usage) {
            usages.push(usage);
        }
    };
    for purpose in purposes {
        add(KeyUsagePurpose::DigitalSignature);
        match purpose {
            ExtendedKeyUsage::ServerAuth | ExtendedKeyUsage::ClientAuth => {
                if rsa {
                    add(KeyUsagePurpose::KeyEncipherment);
                }
            }
            ExtendedKeyUsage::EmailProtection => {
                add(KeyUsagePurpose::ContentCommitment);
                if rsa {
                    add(KeyUsagePurpose::KeyEncipherment);
                }
            }
            ExtendedKeyUsage::CodeSigning | ExtendedKeyUsage::TimeStamping => {}
        }
    }
    usages
}

/// What to certify: the subject's key, names, purposes, validity and revocation pointers.
#[derive(Debug, Clone)]
pub struct IssueRequest {
    /// The key being certified (from a verified CSR or server keygen).
    pub public_key: SubjectPublicKey,
    /// Subject common name; added to the SANs when it is a DNS name, IP or e-mail address.
    /// Empty for an empty subject.
    pub common_name: String,
    /// Requested SANs: IP literals become iPAddress, entries with `@` rfc822Name, the rest
    /// dNSName (wildcards as `*.example.com`; IDNs as `xn--` A-labels).
    pub sans: Vec<String>,
    /// Purposes; KeyUsage is derived from them and the key type ([`key_usages_for`]).
    pub extended_key_usages: Vec<ExtendedKeyUsage>,
    /// Start of validity (sub-second precision is dropped).
    pub not_before: OffsetDateTime,
    /// End of validity; capped to the CA's own expiry.
    pub not_after: OffsetDateTime,
    /// URL of the issuer's CRL, put into a CRL distribution point.
    pub crl_url: Option<String>,
    /// URL of the issuer's OCSP responder, put into AuthorityInfoAccess.
    pub ocsp_url: Option<String>,
}

/// A signed leaf certificate and the facts recorded in its certificate version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedCertificate {
    /// The leaf alone, PEM.
    pub leaf_pem: String,
    /// The leaf alone, DER.
    pub leaf_der: Vec<u8>,
    /// Leaf first, then the CA chain — what servers install.
    pub pem_chain: String,
    /// Serial number, lower-case hex without separators.
    pub serial_hex: String,
    /// SHA-256 of the leaf DER, lower-case hex.
    pub fingerprint_sha256: String,
    /// Start of validity as encoded.
    pub not_before: OffsetDateTime,
    /// End of validity as encoded (after capping to the CA's expiry).
    pub not_after: OffsetDateTime,
    /// The SANs as encoded, normalised, as plain values (`a.example`, `127.0.0.1`,
    /// `x@a.example`), the common name included when it is a name.
    pub subject_alt_names: Vec<String>,
    /// The certified key's family.
    pub key_algorithm: KeyAlgorithm,
    /// The certified key's size in bits.
    pub key_size: u32,
}

/// An issuing CA held in memory: its signing key, certificate and the chain it serves.
#[derive(Debug)]
pub struct LocalCa {
    issuer: Issuer<'static, KeyPair>,
    certificate_der: Vec<u8>,
    chain_pem: String,
    not_after: OffsetDateTime,
}

impl LocalCa {
    /// Loads the self-signed Local CA from `dir/ca.pem` and `dir/ca.key`, creating it on the
    /// first call. The key is written mode 0600 via a temporary file and a rename, so a crash
    /// never leaves a half-written or world-readable key. If only one of the two files
    /// exists, nothing is overwritten: the operator must restore or remove it.
    pub fn load_or_create(dir: &Path) -> Result<Self, PkiError> {
        fs::create_dir_all(dir).map_err(io(dir))?;
        let cert_path = dir.join("ca.pem");
        let key_path = dir.join("ca.key");
        match (cert_path.exists(), key_path.exists()) {
            (true, true) => return Self::from_files(&cert_path, &key_path),
            (true, false) => {
                return Err(ca_file(
                    &key_path,
                    "is missing while ca.pem exists; restore it, or remove ca.pem to create a new CA",
                ));
            }
            (false, true) => {
                return Err(ca_file(
                    &cert_path,
                    "is missing while ca.key exists; restore it, or remove ca.key to create a new CA",
                ));
            }
            (false, false) => {}
        }

        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let now = OffsetDateTime::now_utc();
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, LOCAL_CA_COMMON_NAME);
        params
            .distinguished_name
            .push(DnType::OrganizationName, "certctl");
        // pathlen 0: this CA signs end-entity certificates (and OCSP responders) only, so
        // relying parties refuse any intermediate a leaked key might mint.
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.serial_number = Some(SerialNumber::from_slice(&random_serial()?));
        params.not_before = whole_seconds(now - CLOCK_SKEW_ALLOWANCE);
        params.not_after = whole_seconds(now + LOCAL_CA_VALIDITY);
        let cert = params.self_signed(&key)?;

        crate::tls::write_private(&key_path, key.serialize_pem().as_bytes(), 0o600)
            .map_err(io(&key_path))?;
        crate::tls::write_private(&cert_path, cert.pem().as_bytes(), 0o644)
            .map_err(io(&cert_path))?;
        tracing::info!(path = %cert_path.display(), "created the self-signed Local CA");
        Self::from_files(&cert_path, &key_path)
    }

    /// Loads an operator-provided (sub-)CA: the certificate file holds the CA certificate
    /// first, then any further chain certificates to serve with it; the key file holds its
    /// unencrypted private key (PKCS#8, SEC1 "EC PRIVATE KEY" or PKCS#1 "RSA PRIVATE KEY").
    ///
    /// Refuses, naming the file, anything that would only fail later at a relying party: a
    /// certificate without CA:TRUE or keyCertSign, an expired CA, or a key that does not
    /// belong to the certificate.
    pub fn from_files(cert_path: &Path, key_path: &Path) -> Result<Self, PkiError> {
        Self::from_files_at(cert_path, key_path, OffsetDateTime::now_utc())
    }

    /// [`LocalCa::from_files`] judged at `now` (for expiry), so tests can move time.
    pub fn from_files_at(
        cert_path: &Path,
        key_path: &Path,
        now: OffsetDateTime,
    ) -> Result<Self, PkiError> {
        let cert_text = fs::read(cert_path).map_err(io(cert_path))?;
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_text)
            .collect::<Result<_, _>>()
            .map_err(|e| ca_file(cert_path, &format!("unreadable PEM ({e})")))?;
        let Some(ca_der) = chain.first() else {
            return Err(ca_file(cert_path, "holds no CERTIFICATE PEM block"));
        };
        let (_, ca) = X509Certificate::from_der(ca_der).map_err(|e| {
            ca_file(
                cert_path,
                &format!("first certificate does not parse ({e})"),
            )
        })?;
        check_ca_certificate(&ca, cert_path, now)?;
        let not_after = ca.validity().not_after.to_datetime();

        let key = load_private_key(key_path)?;
        if key.public_key_raw() != ca.public_key().subject_public_key.as_ref() {
            return Err(ca_file(
                key_path,
                &format!(
                    "private key does not match the public key of the certificate in {}",
                    cert_path.display()
                ),
            ));
        }
        warn_if_readable_by_others(key_path);

        let issuer = Issuer::from_ca_cert_der(ca_der, key)
            .map_err(|e| ca_file(cert_path, &format!("cannot be used as an issuer ({e})")))?;
        let chain_pem = chain
            .iter()
            .map(|der| encoding::pem("CERTIFICATE", der))
            .collect();
        Ok(Self {
            issuer,
            certificate_der: ca_der.to_vec(),
            chain_pem,
            not_after,
        })
    }

    /// The CA chain, PEM: this CA's certificate, then any further certificates from its file.
    pub fn chain_pem(&self) -> String {
        self.chain_pem.clone()
    }

    /// This CA's certificate, DER (for CRL/OCSP signing and trust bundles).
    pub fn certificate_der(&self) -> &[u8] {
        &self.certificate_der
    }

    /// When this CA expires; no leaf outlives it.
    pub fn not_after(&self) -> OffsetDateTime {
        self.not_after
    }

    /// Lints and signs a leaf certificate for `req`.
    ///
    /// `not_after` is capped to the CA's own expiry rather than refused, because a leaf
    /// cannot be valid longer than its issuer anyway and renewal will pick up a new CA.
    /// Every rule violation is reported at once in [`PkiError::Lint`]; nothing is signed then.
    pub fn issue(&self, req: &IssueRequest) -> Result<IssuedCertificate, PkiError> {
        let mut purposes: Vec<ExtendedKeyUsage> = Vec::new();
        for purpose in &req.extended_key_usages {
            if !purposes.contains(purpose) {
                purposes.push(*purpose);
            }
        }
        let algorithm = req.public_key.algorithm();
        let draft = Draft {
            serial: random_serial()?,
            common_name: req.common_name.clone(),
            requested_names: req.sans.clone(),
            not_before: whole_seconds(req.not_before),
            not_after: whole_seconds(req.not_after.min(self.not_after)),
            key_algorithm: algorithm,
            key_size: req.public_key.key_size(),
            key_usages: key_usages_for(algorithm, &purposes),
            extended_key_usages: purposes,
            crl_url: req.crl_url.clone(),
            ocsp_url: req.ocsp_url.clone(),
        };
        let names = lint::lint(&draft)?;

        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        if let Some(cn) = &names.common_name {
            params
                .distinguished_name
                .push(DnType::CommonName, cn.as_str());
        }
        params.serial_number = Some(SerialNumber::from_slice(&draft.serial));
        params.not_before = draft.not_before;
        params.not_after = draft.not_after;
        params.subject_alt_names = names
            .subject_alt_names
            .iter()
            .map(to_rcgen_san)
            .collect::<Result<_, _>>()?;
        params.is_ca = IsCa::ExplicitNoCa;
        params.use_authority_key_identifier_extension = true;
        params.key_usages = draft.key_usages.clone();
        if draft.extended_key_usages == [ExtendedKeyUsage::TimeStamping] {
            // RFC 3161 §2.3: the EKU must be critical; rcgen writes it non-critical.
            let mut eku = CustomExtension::from_oid_content(
                encoding::OID_EXT_KEY_USAGE,
                encoding::extended_key_usage(&[encoding::OID_KP_TIME_STAMPING]),
            );
            eku.set_criticality(true);
            params.custom_extensions.push(eku);
        } else {
            params.extended_key_usages = draft
                .extended_key_usages
                .iter()
                .map(|e| e.to_rcgen())
                .collect();
        }
        if let Some(url) = &draft.crl_url {
            params.crl_distribution_points = vec![CrlDistributionPoint {
                uris: vec![url.clone()],
            }];
        }
        if let Some(url) = &draft.ocsp_url {
            params
                .custom_extensions
                .push(CustomExtension::from_oid_content(
                    encoding::OID_AUTHORITY_INFO_ACCESS,
                    encoding::ocsp_authority_info_access(url),
                ));
        }

        let cert = params.signed_by(&req.public_key, &self.issuer)?;
        let leaf_der = cert.der().to_vec();
        lint::check_issued(&leaf_der, &draft, &names, &self.certificate_der)?;

        let leaf_pem = encoding::pem("CERTIFICATE", &leaf_der);
        Ok(IssuedCertificate {
            pem_chain: format!("{leaf_pem}{}", self.chain_pem),
            leaf_pem,
            serial_hex: hex::encode(&draft.serial),
            fingerprint_sha256: hex::encode(Sha256::digest(&leaf_der)),
            leaf_der,
            not_before: draft.not_before,
            not_after: draft.not_after,
            subject_alt_names: names
                .subject_alt_names
                .iter()
                .map(ToString::to_string)
                .collect(),
            key_algorithm: algorithm,
            key_size: draft.key_size,
        })
    }
}

/// Checks that a certificate can act as an issuing CA at `now`.
fn check_ca_certificate(
    cert: &X509Certificate<'_>,
    path: &Path,
    now: OffsetDateTime,
) -> Result<(), PkiError> {
    match cert.basic_constraints() {
        Ok(Some(bc)) if bc.value.ca => {}
        Ok(_) => {
            return Err(ca_file(
                path,
                "certificate is not a CA: BasicConstraints CA:TRUE is missing",
            ));
        }
        Err(e) => {
            return Err(ca_file(
                path,
                &format!("BasicConstraints extension is malformed ({e})"),
            ));
        }
    }
    match cert.key_usage() {
        Ok(Some(ku)) if ku.value.key_cert_sign() => {}
        Ok(Some(_)) => {
            return Err(ca_file(
                path,
                "certificate's KeyUsage lacks keyCertSign, so it may not sign certificates",
            ));
        }
        Ok(None) => {
            return Err(ca_file(
                path,
                "certificate has no KeyUsage extension; a CA needs one with keyCertSign",
            ));
        }
        Err(e) => {
            return Err(ca_file(
                path,
                &format!("KeyUsage extension is malformed ({e})"),
            ));
        }
    }
    if cert.validity().not_after.to_datetime() <= now {
        return Err(ca_file(
            path,
            &format!("CA certificate expired at {}", cert.validity().not_after),
        ));
    }
    Ok(())
}

/// Reads an unencrypted private key in PKCS#8, SEC1 or PKCS#1 PEM.
///
/// ring (our only crypto provider) reads PKCS#8 alone, so SEC1 and PKCS#1 keys are wrapped
/// into PKCS#8 in memory — a fixed DER envelope, no extra crates.
fn load_private_key(path: &Path) -> Result<KeyPair, PkiError> {
    const CONVERT: &str = "convert it with `openssl pkcs8 -topk8 -nocrypt -in KEY -out KEY.pk8`";
    let text = fs::read(path).map_err(io(path))?;
    if text
        .windows(b"ENCRYPTED PRIVATE KEY".len())
        .any(|w| w == b"ENCRYPTED PRIVATE KEY")
        || text
            .windows(b"Proc-Type: 4,ENCRYPTED".len())
            .any(|w| w == b"Proc-Type: 4,ENCRYPTED")
    {
        return Err(ca_file(
            path,
            &format!("private key is encrypted; certctl needs it unencrypted: {CONVERT}"),
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(&text).map_err(|e| {
        ca_file(
            path,
            &format!(
                "no PRIVATE KEY, EC PRIVATE KEY or RSA PRIVATE KEY PEM block ({e}); {CONVERT}"
            ),
        )
    })?;
    let parsed = match &key {
        PrivateKeyDer::Pkcs8(pkcs8) => KeyPair::try_from(pkcs8),
        PrivateKeyDer::Sec1(sec1) => {
            let der = sec1.secret_sec1_der();
            [encoding::OID_P256, encoding::OID_P384]
                .iter()
                .map(|curve| {
                    let wrapped = encoding::pkcs8_from_sec1(der, curve);
                    KeyPair::try_from(&PrivatePkcs8KeyDer::from(wrapped))
                })
                .find(Result::is_ok)
                .unwrap_or(Err(rcgen::Error::CouldNotParseKeyPair))
        }
        PrivateKeyDer::Pkcs1(pkcs1) => {
            let wrapped = encoding::pkcs8_from_pkcs1(pkcs1.secret_pkcs1_der());
            KeyPair::try_from(&PrivatePkcs8KeyDer::from(wrapped))
        }
        _ => Err(rcgen::Error::CouldNotParseKeyPair),
    };
    parsed.map_err(|e| {
        ca_file(
            path,
            &format!(
                "not a usable CA key ({e}); supported: RSA 2048–4096 bits, ECDSA P-256/P-384, Ed25519; {CONVERT}"
            ),
        )
    })
}

fn warn_if_readable_by_others(path: &Path) {
    if let Ok(meta) = fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            path = %path.display(),
            mode = format!("{:o}", meta.permissions().mode() & 0o777),
            "CA private key is readable by group or others; chmod 600 it"
        );
    }
}

/// A fresh serial: 16 octets from the OS CSPRNG, top bit cleared (positive) and the next bit
/// set, so the DER INTEGER is always exactly 16 octets (no leading-zero trimming) with 126
/// random bits — well above the CA/B Forum's 64.
fn random_serial() -> Result<Vec<u8>, PkiError> {
    let mut serial = vec![0u8; SERIAL_OCTETS];
    ring::rand::SystemRandom::new()
        .fill(&mut serial)
        .map_err(|_| PkiError::Random)?;
    serial[0] = (serial[0] & 0x7f) | 0x40;
    Ok(serial)
}

/// Drops sub-second precision, which X.509 times cannot carry, so reported times are exact.
fn whole_seconds(t: OffsetDateTime) -> OffsetDateTime {
    t.replace_nanosecond(0).unwrap_or(t)
}

fn to_rcgen_san(san: &SubjectAltName) -> Result<SanType, PkiError> {
    Ok(match san {
        SubjectAltName::Dns(name) => SanType::DnsName(name.as_str().try_into()?),
        SubjectAltName::Ip(ip) => SanType::IpAddress(*ip),
        SubjectAltName::Email(address) => SanType::Rfc822Name(address.as_str().try_into()?),
    })
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PkiError + '_ {
    move |source| PkiError::Io {
        path: path.to_owned(),
        source,
    }
}

fn ca_file(path: &Path, message: &str) -> PkiError {
    PkiError::CaFile {
        path: PathBuf::from(path),
        message: message.to_owned(),
    }
}

mod revocation;
pub use revocation::ResponderCertificate;

#[cfg(test)]
mod tests;
