//! The native ACME issuer (RFC 8555) on top of `instant-acme`: account registration (with
//! optional External Account Binding), the account key persisted 0600 in the data dir,
//! HTTP-01 through a built-in challenge responder, DNS-01 and DNS-PERSIST-01 (a standing
//! `_validation-persist` record, draft-ietf-acme-dns-persist) through operator scripts, order
//! polling with bounded backoff and a deadline, chain download and revocation. When the
//! directory offers them: ACME Renewal Information (RFC 9773: the suggested renewal window,
//! and `replaces` on the renewal's newOrder) and certificate profiles (`profile` on newOrder).
//!
//! Settings come from the issuer config JSON; `CERTCTL_ACME_*` environment variables supply
//! defaults for settings the config leaves out (`config.rs`). Executables (DNS hooks),
//! listen addresses (HTTP-01) and CA bundle files are operator configuration referenced by
//! name (`operator.rs`, `CERTCTL_ACME_HOOKS`); every request to the ACME server goes
//! through the outbound guard (`client.rs`, `CERTCTL_OUTBOUND_ALLOW`).

mod account;
mod ari;
mod client;
mod config;
mod connector;
mod dns;
pub mod operator;
mod order;
pub mod responder;

use std::sync::Arc;

pub use ari::ari_id;
pub use config::{AcmeConfig, ChallengeKind};
pub use connector::AcmeIssuer;
pub use operator::{OperatorSettings, OperatorSettingsError};
pub use order::parse_chain;

use crate::issuer::IssuerConnector;

/// Registers the `acme` connector type.
pub fn register(types: &mut crate::issuer::ConnectorTypes) {
    types.register(
        "acme",
        Arc::new(|config, ctx| {
            AcmeIssuer::from_config(config, ctx).map(|c| Arc::new(c) as Arc<dyn IssuerConnector>)
        }),
    );
}
