//! DNS-01 and DNS-PERSIST-01: the TXT records the operator's DNS hook publishes and
//! removes, and running the hook: without a shell, with a cleared environment holding only
//! `PATH` ([`HOOK_PATH`]), the record's `CERTCTL_DNS_DOMAIN`, `CERTCTL_DNS_FQDN`,
//! `CERTCTL_DNS_VALUE`, `CERTCTL_DNS_TOKEN`, and the hook's own `env` table from the
//! operator's settings.

use std::path::Path;

use super::connector::AcmeIssuer;
use super::operator::{DnsHook, HOOK_PATH};
use crate::issuer::ConnectorError;

impl AcmeIssuer {
    /// Runs `script` (the hook's present or cleanup executable) for `record`.
    pub(super) async fn run_script(
        &self,
        hook: &DnsHook,
        script: &Path,
        record: &DnsRecord,
        token: &str,
    ) -> Result<(), ConnectorError> {
        let DnsRecord {
            domain,
            fqdn,
            value,
        } = record;
        let mut cmd = tokio::process::Command::new(script);
        cmd.env_clear()
            .envs(&hook.env)
            .env("PATH", HOOK_PATH)
            .env("CERTCTL_DNS_DOMAIN", domain)
            .env("CERTCTL_DNS_FQDN", fqdn)
            .env("CERTCTL_DNS_VALUE", value)
            .env("CERTCTL_DNS_TOKEN", token)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        let out = tokio::time::timeout(self.config.dns_script_timeout, cmd.output())
            .await
            .map_err(|_| {
                ConnectorError::Unavailable(format!(
                    "DNS hook {} ({}) timed out after {:?}",
                    hook.name,
                    script.display(),
                    self.config.dns_script_timeout
                ))
            })?
            .map_err(|e| {
                ConnectorError::Config(format!(
                    "DNS hook {} ({}): {e}",
                    hook.name,
                    script.display()
                ))
            })?;
        if !out.status.success() {
            return Err(ConnectorError::Unavailable(format!(
                "DNS hook {} ({}) failed ({}): {}",
                hook.name,
                script.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(())
    }
}

/// A DNS TXT record the present (and, for DNS-01, cleanup) script manages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct DnsRecord {
    /// The identifier being validated (without a wildcard label).
    pub(super) domain: String,
    /// The record's name.
    pub(super) fqdn: String,
    /// The TXT value.
    pub(super) value: String,
}

impl DnsRecord {
    /// DNS-01 (RFC 8555 §8.4): `_acme-challenge.<domain>`, the key authorization digest.
    pub(super) fn dns01(domain: &str, value: String) -> Self {
        Self {
            domain: domain.to_owned(),
            fqdn: format!("_acme-challenge.{domain}"),
            value,
        }
    }

    /// DNS-PERSIST-01 (draft-ietf-acme-dns-persist): `_validation-persist.<domain>` holding
    /// `<issuer-domain>; accounturi=<account URI>`.
    pub(super) fn persist(domain: &str, issuer_domain: &str, account_uri: &str) -> Self {
        Self {
            domain: domain.to_owned(),
            fqdn: format!("_validation-persist.{domain}"),
            value: format!("{issuer_domain}; accounturi={account_uri}"),
        }
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_records_follow_the_specs() {
        let r = DnsRecord::persist(
            "www.example.com",
            "letsencrypt.org",
            "https://acme-v02.api.letsencrypt.org/acme/acct/1234",
        );
        assert_eq!(r.domain, "www.example.com");
        assert_eq!(r.fqdn, "_validation-persist.www.example.com");
        assert_eq!(
            r.value,
            "letsencrypt.org; accounturi=https://acme-v02.api.letsencrypt.org/acme/acct/1234"
        );
        let r = DnsRecord::dns01("example.com", "digest".into());
        assert_eq!(r.fqdn, "_acme-challenge.example.com");
        assert_eq!(r.value, "digest");
    }
}
