//! The cost of a plugin call, printed (not a test; nothing is asserted).
//!
//! Every plugin call gets a fresh store and instance from the pre-instantiated component
//! (`InstancePre`, pooling allocator), so a call pays for instantiation and then for the
//! export itself. This bench loads the trivial `template` target component built by
//! `plugins/build.sh` and times, over many iterations:
//!
//! - instantiation: fresh `Store` + `InstancePre::instantiate_async`;
//! - the call: `validate-config` on the instance just created;
//! - the whole runtime call as a caller sees it (executor hop, pool slot, store,
//!   instantiation, call, result).
//!
//! ```sh
//! bash plugins/build.sh
//! cargo bench -p certctl-core --features runtime --bench runtime
//! ```
//!
//! `CERTCTL_PLUGIN_ARTIFACTS` points at another build output (the directory holding
//! `fixtures/`); `CERTCTL_BENCH_ITERATIONS` changes the count (default 2000).

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use certctl_core::runtime::{Grants, PluginRuntime, RuntimeConfig};

const CONFIG: &str = r#"{"dir": "/srv/tls"}"#;

fn artifacts() -> PathBuf {
    std::env::var_os("CERTCTL_PLUGIN_ARTIFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/plugins"))
}

/// Median and 99th percentile, in microseconds.
fn summary(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let at = |q: f64| {
        let i = ((samples.len() as f64 - 1.0) * q).round() as usize;
        samples[i].as_secs_f64() * 1e6
    };
    println!(
        "{name:<44} median {:>9.1} µs   p99 {:>9.1} µs   ({} calls)",
        at(0.5),
        at(0.99),
        samples.len()
    );
}

fn main() {
    let template = artifacts().join("fixtures/template");
    if !template.join("plugin.wasm").is_file() {
        eprintln!(
            "no built template component at {}: run `bash plugins/build.sh` first \
             (or set CERTCTL_PLUGIN_ARTIFACTS to its output directory)",
            template.display()
        );
        std::process::exit(1);
    }
    let iterations: usize = std::env::var("CERTCTL_BENCH_ITERATIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2000);

    let plugins = tempfile::tempdir().unwrap();
    let dest = plugins.path().join("template");
    std::fs::create_dir(&dest).unwrap();
    for file in ["plugin.toml", "plugin.wasm"] {
        std::fs::copy(template.join(file), dest.join(file)).unwrap();
    }

    // Defaults (pooling allocator, 64 MiB, 30 s), no compile cache: the load compiles.
    let runtime = PluginRuntime::new(RuntimeConfig::default()).unwrap();
    let started = Instant::now();
    let set = runtime
        .load_dir(plugins.path(), &Grants::default())
        .unwrap();
    let load = started.elapsed();
    let plugin = set.target("template").unwrap();
    let wasm_size = std::fs::metadata(dest.join("plugin.wasm")).unwrap().len();

    let caller = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    caller.block_on(async {
        for _ in 0..100 {
            plugin.validate_config(CONFIG).await.unwrap();
        }
        let mut instantiate = Vec::with_capacity(iterations);
        let mut call = Vec::with_capacity(iterations);
        for _ in 0..iterations {
            let (i, c) = plugin.timed_validate_config(CONFIG).await.unwrap();
            instantiate.push(i);
            call.push(c);
        }
        let mut whole = Vec::with_capacity(iterations);
        for _ in 0..iterations {
            let t = Instant::now();
            plugin.validate_config(CONFIG).await.unwrap();
            whole.push(t.elapsed());
        }
        println!(
            "template target component ({} KiB), compiled and linked in {:.0} ms",
            wasm_size / 1024,
            load.as_secs_f64() * 1e3
        );
        summary("instantiation (fresh Store + InstancePre)", instantiate);
        summary("one call (validate-config, instantiated)", call);
        summary("whole runtime call (as a caller awaits it)", whole);
    });
}
