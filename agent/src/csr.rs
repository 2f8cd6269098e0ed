//! CSRs for agent-held keys: rcgen builds the request, the p256 key signs it, so the private
//! key never leaves this process's memory and disk.

use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{DerSignature, SigningKey};
use rcgen::{
    CertificateParams, DnType, PublicKeyData, SanType, SignatureAlgorithm,
    SigningKey as RcgenSigningKey,
};

/// Adapts a p256 key to rcgen's signer interface.
struct P256Signer<'a> {
    key: &'a SigningKey,
    point: Vec<u8>,
}

impl PublicKeyData for P256Signer<'_> {
    fn der_bytes(&self) -> &[u8] {
        &self.point
    }
    fn algorithm(&self) -> &'static SignatureAlgorithm {
        &rcgen::PKCS_ECDSA_P256_SHA256
    }
}

impl RcgenSigningKey for P256Signer<'_> {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        let sig: DerSignature = self.key.sign(msg);
        Ok(sig.as_bytes().to_vec())
    }
}

/// The SAN form of a name: IP address, e-mail address or DNS name.
fn san_for(name: &str) -> Result<SanType, rcgen::Error> {
    if let Ok(ip) = name.parse::<std::net::IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    if name.contains('@') {
        return Ok(SanType::Rfc822Name(name.try_into()?));
    }
    Ok(SanType::DnsName(name.try_into()?))
}

/// A PEM CSR for `common_name` and `sans` (the CN is added to the SANs when missing).
pub fn build(key: &SigningKey, common_name: &str, sans: &[String]) -> Result<String, rcgen::Error> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    let mut names: Vec<&str> = sans.iter().map(String::as_str).collect();
    if !names.contains(&common_name) {
        names.insert(0, common_name);
    }
    for n in names {
        params.subject_alt_names.push(san_for(n)?);
    }
    let signer = P256Signer {
        key,
        point: key
            .verifying_key()
            .to_encoded_point(false)
            .as_bytes()
            .to_vec(),
    };
    params.serialize_request(&signer)?.pem()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openssl_accepts_the_csr() {
        let key = SigningKey::random(&mut rand_core::OsRng);
        let pem = build(
            &key,
            "app.example",
            &[
                "app.example".into(),
                "10.0.0.1".into(),
                "ops@app.example".into(),
            ],
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.csr");
        std::fs::write(&path, &pem).unwrap();
        let out = std::process::Command::new("openssl")
            .args(["req", "-in"])
            .arg(&path)
            .args(["-noout", "-verify", "-text"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{text}");
        assert!(
            text.contains("verify OK")
                || text.contains("Certificate request self-signature verify OK"),
            "{text}"
        );
        assert!(
            text.contains("DNS:app.example")
                && text.contains("IP Address:10.0.0.1")
                && text.contains("email:ops@app.example"),
            "{text}"
        );
        assert!(
            text.contains("prime256v1") || text.contains("P-256"),
            "{text}"
        );
    }
}
