//! Host bindings for WIT `certctl:connector@0.1.0` (`wit/v0.1.0/`), one module per
//! world. A new WIT version gets a new module beside these, never an edit here.
//!
//! The `target` world generates the shared interfaces (`types`, `log`, `files`,
//! `commands`); `issuer` and `notifier` reuse them through `with`. Every world
//! takes `wasi:http` from wasmtime-wasi-http so its host implementation (and our
//! outbound filter in `http.rs`) applies.

#![allow(missing_docs, unreachable_pub, clippy::all)]

/// The `target` world and the shared `certctl:connector` interfaces.
pub(crate) mod target {
    wasmtime::component::bindgen!({
        path: "../wit/v0.1.0",
        world: "certctl:connector/target",
        imports: { default: async },
        exports: { default: async },
        require_store_data_send: true,
        with: {
            "wasi:http": wasmtime_wasi_http::p2::bindings::http,
            "wasi:io": wasmtime_wasi::p2::bindings::io,
            "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
        },
    });
}

/// The `issuer` world.
pub(crate) mod issuer {
    wasmtime::component::bindgen!({
        path: "../wit/v0.1.0",
        world: "certctl:connector/issuer",
        imports: { default: async },
        exports: { default: async },
        require_store_data_send: true,
        with: {
            "certctl:connector/types": super::target::certctl::connector::types,
            "certctl:connector/log": super::target::certctl::connector::log,
            "wasi:http": wasmtime_wasi_http::p2::bindings::http,
            "wasi:io": wasmtime_wasi::p2::bindings::io,
            "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
        },
    });
}

/// The `notifier` world.
pub(crate) mod notifier {
    wasmtime::component::bindgen!({
        path: "../wit/v0.1.0",
        world: "certctl:connector/notifier",
        imports: { default: async },
        exports: { default: async },
        require_store_data_send: true,
        with: {
            "certctl:connector/types": super::target::certctl::connector::types,
            "certctl:connector/log": super::target::certctl::connector::log,
            "wasi:http": wasmtime_wasi_http::p2::bindings::http,
            "wasi:io": wasmtime_wasi::p2::bindings::io,
            "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
        },
    });
}

pub(crate) use target::certctl::connector::{commands, files, log, types};
