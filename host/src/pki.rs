//! The native PKI: the Local CA (self-signed or sub-CA), CSR parsing and verification,
//! pre-issuance linting and demo-mode server key generation.
//!
//! Pure library code: nothing here speaks HTTP or touches the database. The only file I/O is
//! the CA's own certificate and key. Signing and verification go through `ring` — the
//! workspace's single crypto provider, shared with rustls and rcgen. The CRL, OCSP and
//! PKCS#12 wire formats live here too; caching and serving them is the revocation service's.

pub mod crl;
pub mod csr;
mod encoding;
pub mod lint;
pub mod local_ca;
pub mod ocsp;
pub mod pkcs12;
pub mod public_key;
pub mod server_key;

#[cfg(test)]
mod test_openssl;

use std::path::PathBuf;

/// PEM text with 64-column lines (for the revocation service's files and rows).
pub(crate) use encoding::pem;
pub use public_key::UnsupportedKey;

/// Why the PKI refused or failed an operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PkiError {
    /// Reading or writing a CA file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A CA certificate or key file cannot serve as an issuing CA; the message says why.
    #[error("{path}: {message}")]
    CaFile {
        /// The offending file.
        path: PathBuf,
        /// What is wrong and, where possible, how to fix it.
        message: String,
    },
    /// The certificate would break issuance rules, so nothing was signed; every problem is listed.
    #[error("refusing to sign: {}", .0.join("; "))]
    Lint(Vec<String>),
    /// The freshly signed certificate does not say what was asked for (a bug guard; not served).
    #[error("issued certificate failed its post-signing check: {0}")]
    PostIssuance(String),
    /// The subject's public key cannot be put into a certificate.
    #[error(transparent)]
    UnsupportedKey(#[from] UnsupportedKey),
    /// rcgen could not build or sign the certificate.
    #[error("certificate generation: {0}")]
    Generate(#[from] rcgen::Error),
    /// The operating system's random number generator failed.
    #[error("the system random number generator failed")]
    Random,
    /// A CRL could not be built from the revocation records.
    #[error("CRL: {0}")]
    Crl(String),
}
