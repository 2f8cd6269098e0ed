//! End-to-end suites: real binaries (certctl-server, certctl-agent) and real peers (nginx,
//! openssl). Binaries come from the workspace target dir (built by `cargo build --bins`, which
//! `scripts/test` runs first); plugins from `target/plugins/dist` (built by `plugins/build.sh`).

#![allow(unreachable_pub, clippy::unwrap_used)]

mod agent_resilience;
mod nginx;
mod plugin_hot_load;
mod push;
mod support;
