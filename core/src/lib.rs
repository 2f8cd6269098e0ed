//! Types and helpers shared by every certctl binary (server, agent, CLI).
//!
//! Only plain data and pure helpers live here: the wire shapes of the REST API,
//! the timestamp format every component agrees on, and prefixed id handling.
//! Nothing in this crate performs I/O, except the WebAssembly connector runtime
//! behind the cargo feature `runtime` (module `runtime`) and the outbound guard its
//! and the server's fetches go through (feature `outbound`, module `outbound`).
#![warn(missing_docs)]

pub mod api;
pub mod id;
#[cfg(feature = "outbound")]
pub mod outbound;
#[cfg(feature = "runtime")]
pub mod runtime;
pub mod timestamp;
