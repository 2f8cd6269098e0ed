//! certctl-server: the control plane library. `main.rs` only parses configuration and calls
//! [`server::run`]; everything else lives here so integration tests can reach it.

pub mod acme;
pub mod actors;
pub mod api;
pub mod clock;
pub mod config;
pub mod domain;
pub mod issuer;
pub mod notifier;
pub mod pipeline;
pub mod pki;
pub mod plugins;
pub mod revocation;
pub mod secrets;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod tls;
