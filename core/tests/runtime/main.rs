//! Integration tests of the WebAssembly connector runtime (feature `runtime`),
//! driving real components built for wasm32-wasip2 (see `support.rs`).

mod caddy_api;
mod capabilities;
mod discovery;
mod notifiers;
mod outbound;
mod sandbox;
mod support;
mod targets;
mod worlds;
