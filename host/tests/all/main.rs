//! certctl-server integration tests: one binary, a module per topic.
//! Every test starts real server processes (see `support`).

mod abuse;
mod access_control;
mod acme;
mod acme_ari;
mod agent_heartbeat;
mod api_auth;
mod api_errors;
mod api_resources;
mod defaults;
mod issuance;
mod issuer_plugins;
mod notifications;
mod pipeline;
mod plugins;
mod readiness;
mod revocation;
mod secrets;
mod store;
mod support;
