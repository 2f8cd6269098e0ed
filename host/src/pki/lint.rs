//! Pre-issuance linting: every certificate the Local CA signs is first described as a
//! [`Draft`] and checked against RFC 5280 and CA/Browser Forum rules (validity, serial, key
//! usage, SAN presence and syntax, key size); any failure refuses the signature with
//! [`PkiError::Lint`] listing *all* problems — the way Let's Encrypt lints before it signs.
//! After signing, [`check_issued`] re-parses the result and compares it with the draft.
//!
//! Not here: profile rules (allowed keys, TTL caps, required SANs — `domain::key_rules`) and
//! CSR checks ([`super::csr`]). The lint is the CA's own last line of defence, applied no
//! matter which path produced the request.

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;

use rcgen::KeyUsagePurpose;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer as _;

use super::PkiError;
use super::local_ca::ExtendedKeyUsage;
use super::public_key::KeyAlgorithm;

/// Longest DNS name (RFC 1035, without the trailing dot).
const MAX_DNS_NAME: usize = 253;
/// Longest DNS label (RFC 1035).
const MAX_LABEL: usize = 63;
/// Upper bound of commonName (X.520 ub-common-name).
const MAX_COMMON_NAME: usize = 64;
/// Longest e-mail local part (RFC 5321).
const MAX_LOCAL_PART: usize = 64;
/// Serial numbers: RFC 5280 caps them at 20 octets; the CA/B Forum wants ≥ 64 random bits.
const SERIAL_OCTETS: std::ops::RangeInclusive<usize> = 8..=20;
/// Smallest RSA modulus any relying party still accepts (CA/B Forum BR 6.1.5).
const MIN_RSA_BITS: u32 = 2048;

/// One subjectAltName entry, in its canonical text form.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SubjectAltName {
    /// dNSName, lower-case, possibly a `*.` wildcard.
    Dns(String),
    /// iPAddress, v4 or v6.
    Ip(IpAddr),
    /// rfc822Name (S/MIME), with the domain lower-cased.
    Email(String),
}

impl SubjectAltName {
    /// Sorts a requested name into its SAN type the way the API promises: an IP literal is an
    /// iPAddress, anything containing `@` an rfc822Name, everything else a dNSName. DNS names
    /// and e-mail domains are lower-cased so comparisons are case-insensitive; syntax is
    /// judged separately by [`SubjectAltName::check`] so all problems can be reported at once.
    pub fn classify(name: &str) -> Self {
        if let Ok(ip) = name.parse::<IpAddr>() {
            return Self::Ip(ip);
        }
        match name.rsplit_once('@') {
            Some((local, domain)) => Self::Email(format!("{local}@{}", domain.to_lowercase())),
            None => Self::Dns(name.to_lowercase()),
        }
    }

    /// Why this name may not appear in a certificate, if it may not.
    pub fn check(&self) -> Result<(), String> {
        match self {
            Self::Dns(name) => {
                check_dns_name(name, true).map_err(|reason| format!("DNS name {name:?}: {reason}"))
            }
            Self::Ip(_) => Ok(()),
            Self::Email(address) => check_email(address)
                .map_err(|reason| format!("e-mail address {address:?}: {reason}")),
        }
    }

    /// The SAN type as openssl prints it, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Dns(_) => "DNS",
            Self::Ip(_) => "IP Address",
            Self::Email(_) => "email",
        }
    }
}

impl fmt::Display for SubjectAltName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Dns(name) | Self::Email(name) => f.write_str(name),
            Self::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

/// Checks DNS name syntax (LDH labels, optional left-most `*` wildcard); expects lower case.
///
/// Internationalised names must arrive as `xn--` A-labels: anything outside `[a-z0-9-]` is
/// refused rather than guessed at, so the certificate names exactly what DNS resolves.
pub fn check_dns_name(name: &str, allow_wildcard: bool) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty name".into());
    }
    if name.ends_with('.') {
        return Err("remove the trailing dot".into());
    }
    if name.len() > MAX_DNS_NAME {
        return Err(format!(
            "{} characters; at most {MAX_DNS_NAME} are allowed",
            name.len()
        ));
    }
    if !name.is_ascii() {
        return Err("non-ASCII characters; send internationalised names as xn-- A-labels".into());
    }
    let base = match name.strip_prefix("*.") {
        Some(rest) if allow_wildcard => rest,
        Some(_) => return Err("wildcards are not allowed here".into()),
        None => name,
    };
    if base.contains('*') {
        return Err("a wildcard '*' is only allowed as the whole left-most label".into());
    }
    for label in base.split('.') {
        if label.is_empty() {
            return Err("empty label (a leading dot or two dots in a row)".into());
        }
        if label.len() > MAX_LABEL {
            return Err(format!(
                "label {label:?} has {} characters; at most {MAX_LABEL} are allowed",
                label.len()
            ));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(format!(
                "label {label:?} contains characters other than a-z, 0-9 and '-'"
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!("label {label:?} starts or ends with '-'"));
        }
    }
    Ok(())
}

/// Checks an rfc822Name: exactly one `@`, a plain ASCII local part, a valid domain.
fn check_email(address: &str) -> Result<(), String> {
    let mut parts = address.split('@');
    let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err("must contain exactly one '@'".into());
    };
    if local.is_empty() {
        return Err("empty local part".into());
    }
    if local.len() > MAX_LOCAL_PART {
        return Err(format!(
            "local part has {} characters; at most {MAX_LOCAL_PART} are allowed",
            local.len()
        ));
    }
    if !local.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("local part must be printable ASCII without spaces".into());
    }
    check_dns_name(domain, false).map_err(|reason| format!("domain {domain:?}: {reason}"))
}

/// Everything about a certificate that is decided before signing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Draft {
    /// Serial number, big-endian, as it will be encoded (no sign padding).
    pub serial: Vec<u8>,
    /// Requested subject common name; empty for none.
    pub common_name: String,
    /// Requested SANs as given by the caller (classified and normalised by the lint).
    pub requested_names: Vec<String>,
    /// Start of validity, whole seconds.
    pub not_before: OffsetDateTime,
    /// End of validity, whole seconds (already capped to the CA's own expiry).
    pub not_after: OffsetDateTime,
    /// The subject key's family.
    pub key_algorithm: KeyAlgorithm,
    /// The subject key's size in bits.
    pub key_size: u32,
    /// KeyUsage bits to assert.
    pub key_usages: Vec<KeyUsagePurpose>,
    /// ExtendedKeyUsage purposes to assert.
    pub extended_key_usages: Vec<ExtendedKeyUsage>,
    /// CRL distribution point URL, if any.
    pub crl_url: Option<String>,
    /// OCSP responder URL, if any.
    pub ocsp_url: Option<String>,
}

/// The names that passed the lint, normalised, in the order they go into the certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LintedNames {
    /// Subject common name (lower-cased if it is a DNS name); `None` for an empty subject.
    pub common_name: Option<String>,
    /// Deduplicated SANs, the common name included when it is a name.
    pub subject_alt_names: Vec<SubjectAltName>,
}

/// Checks a draft and returns its normalised names, or every problem found.
///
/// A common name that is a DNS name, IP address or e-mail address is added to the SANs
/// when missing, because relying parties ignore the CN; a TLS server certificate whose CN is
/// not such a name is refused, since its CN could never appear among the SANs.
pub fn lint(draft: &Draft) -> Result<LintedNames, PkiError> {
    let mut problems = Vec::new();
    lint_serial(&draft.serial, &mut problems);
    lint_validity(draft, &mut problems);
    let names = lint_names(draft, &mut problems);
    lint_key(draft, &mut problems);
    lint_usages(draft, &mut problems);
    for (what, url) in [("CRL", &draft.crl_url), ("OCSP", &draft.ocsp_url)] {
        if let Some(url) = url {
            lint_url(what, url, &mut problems);
        }
    }
    if problems.is_empty() {
        Ok(names)
    } else {
        Err(PkiError::Lint(problems))
    }
}

fn lint_serial(serial: &[u8], problems: &mut Vec<String>) {
    if !SERIAL_OCTETS.contains(&serial.len()) {
        problems.push(format!(
            "serial number is {} octets; it must be 8 to 20 (at least 64 random bits, RFC 5280 maximum 20 octets)",
            serial.len()
        ));
    }
    match serial {
        [] => {}
        [first, ..] if first & 0x80 != 0 => {
            problems.push("serial number must be positive (top bit clear)".into());
        }
        _ if serial.iter().all(|b| *b == 0) => {
            problems.push("serial number must not be zero".into());
        }
        [0, second, ..] if second & 0x80 == 0 => {
            problems.push("serial number has a redundant leading zero octet".into());
        }
        _ => {}
    }
}

fn lint_validity(draft: &Draft, problems: &mut Vec<String>) {
    if draft.not_after <= draft.not_before {
        problems.push(format!(
            "not_after ({}) must be later than not_before ({})",
            rfc3339(draft.not_after),
            rfc3339(draft.not_before)
        ));
    }
}

fn lint_names(draft: &Draft, problems: &mut Vec<String>) -> LintedNames {
    let mut sans: Vec<SubjectAltName> = Vec::new();
    for requested in &draft.requested_names {
        let san = SubjectAltName::classify(requested);
        match san.check() {
            Ok(()) if !sans.contains(&san) => sans.push(san),
            Ok(()) => {}
            Err(problem) => problems.push(problem),
        }
    }

    let cn = draft.common_name.as_str();
    let common_name = if cn.is_empty() {
        None
    } else {
        if cn.chars().count() > MAX_COMMON_NAME {
            problems.push(format!(
                "common name {cn:?} has {} characters; at most {MAX_COMMON_NAME} are allowed",
                cn.chars().count()
            ));
        }
        let as_san = SubjectAltName::classify(cn);
        if as_san.check().is_ok() {
            if !sans.contains(&as_san) {
                sans.insert(0, as_san.clone());
            }
            Some(as_san.to_string())
        } else {
            if draft
                .extended_key_usages
                .contains(&ExtendedKeyUsage::ServerAuth)
            {
                problems.push(format!(
                    "common name {cn:?} is not a valid DNS name or IP address, so it cannot be among a TLS server certificate's SANs"
                ));
            }
            Some(cn.to_owned())
        }
    };

    if sans.is_empty() {
        problems.push(
            "no subject alternative names: at least one DNS name, IP address or e-mail address is required"
                .into(),
        );
    }
    LintedNames {
        common_name,
        subject_alt_names: sans,
    }
}

fn lint_key(draft: &Draft, problems: &mut Vec<String>) {
    if draft.key_algorithm == KeyAlgorithm::Rsa {
        if draft.key_size < MIN_RSA_BITS {
            problems.push(format!(
                "RSA key of {} bits; at least {MIN_RSA_BITS} are required",
                draft.key_size
            ));
        } else if !draft.key_size.is_multiple_of(8) {
            problems.push(format!(
                "RSA modulus of {} bits is not a multiple of 8",
                draft.key_size
            ));
        }
    }
}

fn lint_usages(draft: &Draft, problems: &mut Vec<String>) {
    if draft.key_usages.is_empty() {
        problems.push("no key usage: the requested purposes grant none".into());
    }
    if draft.extended_key_usages.is_empty() {
        problems.push("no extended key usage requested".into());
    }
    if draft
        .extended_key_usages
        .contains(&ExtendedKeyUsage::TimeStamping)
        && draft.extended_key_usages.len() > 1
    {
        problems.push("timeStamping must be the only extended key usage (RFC 3161)".into());
    }
}

fn lint_url(what: &str, url: &str, problems: &mut Vec<String>) {
    let scheme_ok = url.starts_with("http://") || url.starts_with("https://");
    let chars_ok = url.bytes().all(|b| b.is_ascii_graphic());
    if !scheme_ok || !chars_ok || url.len() <= "https://".len() {
        problems.push(format!(
            "{what} URL {url:?} must be an absolute http(s) URL in printable ASCII"
        ));
    }
}

/// Re-parses a freshly signed certificate and confirms it says what the draft asked for:
/// serial, validity, issuer name, SANs, CA:FALSE and a signature by the CA key. A mismatch
/// means a bug in certificate construction; the certificate must then not be handed out.
pub fn check_issued(
    leaf_der: &[u8],
    draft: &Draft,
    names: &LintedNames,
    ca_der: &[u8],
) -> Result<(), PkiError> {
    let fail = |what: String| PkiError::PostIssuance(what);
    let (_, leaf) =
        X509Certificate::from_der(leaf_der).map_err(|e| fail(format!("does not parse: {e}")))?;
    let (_, ca) =
        X509Certificate::from_der(ca_der).map_err(|e| fail(format!("CA does not parse: {e}")))?;

    if leaf.raw_serial() != draft.serial.as_slice() {
        return Err(fail(format!(
            "serial {} differs from the drafted {}",
            hex::encode(leaf.raw_serial()),
            hex::encode(&draft.serial)
        )));
    }
    let validity = leaf.validity();
    if validity.not_before.timestamp() != draft.not_before.unix_timestamp()
        || validity.not_after.timestamp() != draft.not_after.unix_timestamp()
    {
        return Err(fail(format!(
            "validity {} – {} differs from the drafted {} – {}",
            validity.not_before,
            validity.not_after,
            rfc3339(draft.not_before),
            rfc3339(draft.not_after)
        )));
    }
    if leaf.issuer().as_raw() != ca.subject().as_raw() {
        return Err(fail(
            "issuer name is not byte-for-byte the CA's subject name".into(),
        ));
    }
    let mut found = BTreeSet::new();
    for extension in leaf.extensions() {
        if let ParsedExtension::SubjectAlternativeName(san) = extension.parsed_extension() {
            for name in &san.general_names {
                found.insert(san_from_general_name(name).map_err(fail)?);
            }
        }
    }
    let expected: BTreeSet<SubjectAltName> = names.subject_alt_names.iter().cloned().collect();
    if found != expected {
        return Err(fail(format!(
            "SANs {found:?} differ from the drafted {expected:?}"
        )));
    }
    match leaf.basic_constraints() {
        Ok(Some(bc)) if !bc.value.ca => {}
        _ => return Err(fail("BasicConstraints CA:FALSE is missing".into())),
    }
    leaf.verify_signature(Some(ca.public_key()))
        .map_err(|e| fail(format!("signature does not verify with the CA key: {e}")))?;
    Ok(())
}

/// Converts a parsed GeneralName back into a SAN, refusing the types certctl never writes.
pub(crate) fn san_from_general_name(name: &GeneralName<'_>) -> Result<SubjectAltName, String> {
    match name {
        GeneralName::DNSName(dns) => Ok(SubjectAltName::Dns(dns.to_lowercase())),
        GeneralName::RFC822Name(email) => Ok(SubjectAltName::classify(email)),
        GeneralName::IPAddress(bytes) => match bytes.len() {
            4 => {
                let octets: [u8; 4] = (*bytes).try_into().map_err(|_| "IPv4 length".to_owned())?;
                Ok(SubjectAltName::Ip(IpAddr::from(octets)))
            }
            16 => {
                let octets: [u8; 16] = (*bytes).try_into().map_err(|_| "IPv6 length".to_owned())?;
                Ok(SubjectAltName::Ip(IpAddr::from(octets)))
            }
            n => Err(format!("IP address SAN of {n} octets")),
        },
        other => Err(format!(
            "unsupported SAN type {other} (only DNS names, IP addresses and e-mail addresses)"
        )),
    }
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

#[cfg(test)]
mod tests;
