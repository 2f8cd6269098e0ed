//! Types and helpers shared by every certctl binary (server, agent, CLI).
//!
//! Only plain data and pure helpers live here: the wire shapes of the REST API,
//! the timestamp format every component agrees on, and prefixed id handling.
//! Nothing in this crate performs I/O.
#![warn(missing_docs)]

pub mod api;
pub mod id;
pub mod timestamp;
