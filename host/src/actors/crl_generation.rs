//! CRL generation loop (`CERTCTL_CRL_GENERATION_INTERVAL`, default 1 h): regenerates the
//! cached CRL of every issuer certctl publishes one for, and rotates OCSP responders that
//! are near expiry. Revocations regenerate their issuers' CRLs at once; this loop keeps
//! every CRL well inside its 24 h validity and picks up new issuers.

use std::sync::Arc;

use futures_util::future::BoxFuture;

use super::scheduler::LoopTask;
use crate::revocation::RevocationService;

/// The loop task.
#[derive(Debug)]
pub struct CrlGeneration(pub Arc<RevocationService>);

impl LoopTask for CrlGeneration {
    fn name(&self) -> &'static str {
        "crl_generation"
    }

    fn tick(self: Arc<Self>) -> BoxFuture<'static, Result<String, String>> {
        Box::pin(async move { self.0.refresh_all().await })
    }
}
