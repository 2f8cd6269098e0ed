//! certctl-server integration tests: one binary, a module per topic.
//! Every test starts real server processes (see `support`).

mod support;
