//! certctl-server integration tests: one binary, a module per topic.
//! Every test starts real server processes (see `support`).

mod api_auth;
mod api_errors;
mod api_resources;
mod issuance;
mod pipeline;
mod plugins;
mod defaults;
mod support;
mod readiness;
mod revocation;
mod store;
