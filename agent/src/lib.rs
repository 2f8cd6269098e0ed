//! certctl-agent as a library: the binary in `main.rs` only parses configuration and runs
//! [`runner::Agent`]; tests drive the same pieces.

pub mod client;
pub mod config;
pub mod csr;
pub mod deployer;
pub mod keystore;
pub mod plugins;
pub mod runner;
pub mod session;
pub mod state;
pub mod verify;
