//! Server-side key generation for `CERTCTL_KEYGEN_MODE=server` (demo mode): the server makes
//! the ECDSA P-256 key itself and must then hand the private key to whoever deploys it.
//! In the default `agent` mode keys never leave the agent and this module is not used.

use std::fmt;

use rcgen::{KeyPair, PublicKeyData as _};

use super::PkiError;
use super::public_key::{KeyAlgorithm, SubjectPublicKey};

/// A server-generated key pair: the private key to deliver and the public key to certify.
#[derive(Clone)]
pub struct ServerKey {
    /// The private key, PKCS#8 PEM ("BEGIN PRIVATE KEY"), for the deployment step.
    pub private_key_pem: String,
    /// The public key, ready for an [`super::local_ca::IssueRequest`].
    pub public_key: SubjectPublicKey,
    /// Always [`KeyAlgorithm::Ecdsa`].
    pub key_algorithm: KeyAlgorithm,
    /// Always 256.
    pub key_size: u32,
}

impl fmt::Debug for ServerKey {
    /// Never prints the private key, so the struct can be logged.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerKey")
            .field("private_key_pem", &"[elided]")
            .field("public_key", &self.public_key)
            .field("key_algorithm", &self.key_algorithm)
            .field("key_size", &self.key_size)
            .finish()
    }
}

/// Generates an ECDSA P-256 key with ring — the same key type agents generate, so a
/// certificate looks the same whichever side made its key.
pub fn generate() -> Result<ServerKey, PkiError> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let public_key = SubjectPublicKey::from_spki_der(&key.subject_public_key_info())?;
    Ok(ServerKey {
        private_key_pem: key.serialize_pem(),
        key_algorithm: public_key.algorithm(),
        key_size: public_key.key_size(),
        public_key,
    })
}

#[cfg(test)]
mod tests {
    use time::{Duration, OffsetDateTime};

    use super::*;
    use crate::pki::local_ca::{ExtendedKeyUsage, IssueRequest, LocalCa};
    use crate::pki::test_openssl::Workdir;

    #[test]
    fn generated_key_is_p256_and_certifiable() {
        let key = generate().expect("keygen");
        assert_eq!(key.key_algorithm.as_str(), "ECDSA");
        assert_eq!(key.key_size, 256);
        assert!(
            key.private_key_pem
                .starts_with("-----BEGIN PRIVATE KEY-----")
        );
        assert!(!format!("{key:?}").contains("BEGIN PRIVATE KEY"));

        let work = Workdir::new();
        let ca = LocalCa::load_or_create(&work.path("ca")).expect("ca");
        let now = OffsetDateTime::now_utc();
        let issued = ca
            .issue(&IssueRequest {
                public_key: key.public_key.clone(),
                common_name: "demo.example".into(),
                sans: vec![],
                extended_key_usages: vec![ExtendedKeyUsage::ServerAuth],
                not_before: now - Duration::minutes(5),
                not_after: now + Duration::days(30),
                crl_url: None,
                ocsp_url: None,
            })
            .expect("issue");
        work.write("key.pem", &key.private_key_pem);
        work.write("leaf.pem", &issued.leaf_pem);
        work.write("ca.pem", &ca.chain_pem());
        work.openssl(&["verify", "-CAfile", "ca.pem", "leaf.pem"]);
        // The private key belongs to the certified public key.
        let from_key = work.openssl(&["pkey", "-in", "key.pem", "-pubout"]);
        let from_cert = work.openssl(&["x509", "-in", "leaf.pem", "-noout", "-pubkey"]);
        assert_eq!(from_key, from_cert);
    }
}
