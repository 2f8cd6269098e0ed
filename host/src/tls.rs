//! TLS for the API listener.
//!
//! `auto`: a bootstrap CA and a server certificate are created in `<data dir>/tls` on first
//! start and reused afterwards (the server certificate is reissued when it nears expiry);
//! the CA certificate is written to `<data dir>/ca-bundle.pem` for clients to trust.
//! `files`: the operator's PEM files.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use time::{Duration, OffsetDateTime};

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A PEM file held no usable certificate or key.
    #[error("{path}: {message}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Certificate generation failed.
    #[error("certificate generation: {0}")]
    Generate(#[from] rcgen::Error),
    /// rustls refused the certificate/key pair.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// `files` mode without both paths.
    #[error("CERTCTL_TLS_MODE=files needs CERTCTL_TLS_CERT_PATH and CERTCTL_TLS_KEY_PATH")]
    MissingPaths,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TlsError + '_ {
    move |source| TlsError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Writes `contents` to `path` with `mode`, atomically (temp file + rename).
pub fn write_private(path: &Path, contents: &[u8], mode: u32) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.write_all(contents)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)
}

/// Renew the auto server certificate when fewer than this many days remain.
const RENEW_BEFORE_DAYS: i64 = 30;

/// Ensures the auto-mode CA and server certificate exist and returns (chain PEM, key PEM).
pub fn ensure_auto(data_dir: &Path, host: &str) -> Result<(String, String), TlsError> {
    let dir = data_dir.join("tls");
    fs::create_dir_all(&dir).map_err(io(&dir))?;
    let ca_cert_path = dir.join("ca.pem");
    let ca_key_path = dir.join("ca.key");
    let cert_path = dir.join("server.pem");
    let key_path = dir.join("server.key");

    let (ca_pem, ca_key) = if ca_cert_path.exists() && ca_key_path.exists() {
        let key_pem = fs::read_to_string(&ca_key_path).map_err(io(&ca_key_path))?;
        let pem = fs::read_to_string(&ca_cert_path).map_err(io(&ca_cert_path))?;
        (pem, KeyPair::from_pem(&key_pem)?)
    } else {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, "certctl bootstrap TLS CA");
        params
            .distinguished_name
            .push(DnType::OrganizationName, "certctl");
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::hours(1);
        params.not_after = now + Duration::days(3650);
        let cert = params.self_signed(&key)?;
        write_private(&ca_key_path, key.serialize_pem().as_bytes(), 0o600)
            .map_err(io(&ca_key_path))?;
        fs::write(&ca_cert_path, cert.pem()).map_err(io(&ca_cert_path))?;
        let _ = fs::remove_file(&cert_path);
        (cert.pem(), key)
    };
    let bundle = data_dir.join("ca-bundle.pem");
    fs::write(&bundle, &ca_pem).map_err(io(&bundle))?;

    if cert_path.exists() && key_path.exists() && !needs_renewal(&cert_path) {
        let chain = fs::read_to_string(&cert_path).map_err(io(&cert_path))?;
        let key = fs::read_to_string(&key_path).map_err(io(&key_path))?;
        return Ok((chain, key));
    }

    let issuer = Issuer::from_ca_cert_pem(&ca_pem, &ca_key)?;
    let key = KeyPair::generate()?;
    let mut names = vec!["localhost".to_owned()];
    if let Ok(h) = fs::read_to_string("/etc/hostname") {
        let h = h.trim();
        if !h.is_empty() && h != "localhost" {
            names.push(h.to_owned());
        }
    }
    let mut params = CertificateParams::new(names)?;
    for ip in ["127.0.0.1", "::1"] {
        if let Ok(addr) = ip.parse() {
            params.subject_alt_names.push(SanType::IpAddress(addr));
        }
    }
    if host != "0.0.0.0" && host != "::" && host != "localhost" {
        match host.parse() {
            Ok(addr) => params.subject_alt_names.push(SanType::IpAddress(addr)),
            Err(_) => params
                .subject_alt_names
                .push(SanType::DnsName(host.try_into()?)),
        }
    }
    params
        .distinguished_name
        .push(DnType::CommonName, "certctl-server");
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(365);
    let cert = params.signed_by(&key, &issuer)?;
    let chain = format!("{}{}", cert.pem(), ca_pem);
    write_private(&key_path, key.serialize_pem().as_bytes(), 0o600).map_err(io(&key_path))?;
    fs::write(&cert_path, &chain).map_err(io(&cert_path))?;
    Ok((chain, key.serialize_pem()))
}

fn needs_renewal(cert_path: &Path) -> bool {
    let Ok(pem) = fs::read(cert_path) else {
        return true;
    };
    let Ok(der) = CertificateDer::from_pem_slice(&pem) else {
        return true;
    };
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(&der) else {
        return true;
    };
    let not_after = cert.validity().not_after.timestamp();
    not_after - OffsetDateTime::now_utc().unix_timestamp() < RENEW_BEFORE_DAYS * 86_400
}

/// Builds the rustls server configuration from PEM text.
pub fn server_config(
    chain_pem: &str,
    key_pem: &str,
    origin: &Path,
) -> Result<ServerConfig, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Pem {
            path: origin.to_owned(),
            message: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            path: origin.to_owned(),
            message: "no certificate found".into(),
        });
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| TlsError::Pem {
        path: origin.to_owned(),
        message: format!("private key: {e}"),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    Ok(config)
}

/// Loads `files` mode PEM files.
pub fn load_files(cert: Option<&Path>, key: Option<&Path>) -> Result<ServerConfig, TlsError> {
    let (Some(cert), Some(key)) = (cert, key) else {
        return Err(TlsError::MissingPaths);
    };
    let chain = fs::read_to_string(cert).map_err(io(cert))?;
    let key_pem = fs::read_to_string(key).map_err(io(key))?;
    server_config(&chain, &key_pem, cert)
}
