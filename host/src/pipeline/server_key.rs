//! Server keygen mode: the server generates the key (kept in `server_key_dir`, mode 0600)
//! and the CSR for a certificate. Checking the CSR lives in `csr`; sending it to the
//! issuer in `issuance`.

use std::os::unix::fs::PermissionsExt as _;

use super::Pipeline;
use super::failure::Failure;
use crate::store::certificates::Certificate;

impl Pipeline {
    pub(super) async fn server_csr(&self, certificate: &Certificate) -> Result<String, Failure> {
        let key = rcgen::KeyPair::generate()
            .map_err(|e| Failure::fatal(format!("server key generation: {e}")))?;
        let mut names = vec![certificate.common_name.clone()];
        names.extend(
            certificate
                .sans
                .iter()
                .filter(|s| **s != certificate.common_name)
                .cloned(),
        );
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new())
            .map_err(|e| Failure::fatal(e.to_string()))?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, certificate.common_name.clone());
        for n in &names {
            params
                .subject_alt_names
                .push(san_for(n).map_err(Failure::fatal)?);
        }
        let csr = params
            .serialize_request(&key)
            .map_err(|e| Failure::fatal(format!("server CSR: {e}")))?;
        let csr_pem = csr
            .pem()
            .map_err(|e| Failure::fatal(format!("server CSR: {e}")))?;
        let dir = &self.settings.server_key_dir;
        std::fs::create_dir_all(dir)
            .map_err(|e| Failure::fatal(format!("{}: {e}", dir.display())))?;
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
        let path = dir.join(format!("{}.key", certificate.id));
        crate::tls::write_private(&path, key.serialize_pem().as_bytes(), 0o600)
            .map_err(|e| Failure::fatal(format!("{}: {e}", path.display())))?;
        Ok(csr_pem)
    }
}

/// The SAN form of a name: IP address, e-mail address (S/MIME) or DNS name.
fn san_for(name: &str) -> Result<rcgen::SanType, String> {
    if let Ok(ip) = name.parse::<std::net::IpAddr>() {
        return Ok(rcgen::SanType::IpAddress(ip));
    }
    if name.contains('@') {
        return name
            .try_into()
            .map(rcgen::SanType::Rfc822Name)
            .map_err(|e| format!("{name}: {e}"));
    }
    name.try_into()
        .map(rcgen::SanType::DnsName)
        .map_err(|e| format!("{name}: {e}"))
}
