//! End-to-end tests for certctl live in `e2e/`; this crate has no library code of its own.
