//! Limits: a hostile guest fails its own call with a typed error and nothing else.

use std::time::{Duration, Instant};

use certctl_core::runtime::{ConnectorErrorKind, Grants, RuntimeError, TargetRequest};

use crate::support::{load, plugin_dir, runtime, runtime_with};

fn request(config_json: &str) -> TargetRequest {
    TargetRequest {
        config_json: config_json.into(),
        target_id: "t-test".into(),
        certificate_id: "mc-test".into(),
        ..TargetRequest::default()
    }
}

#[tokio::test]
async fn an_infinite_loop_times_out_and_the_next_call_succeeds() {
    let rt = runtime_with(|c| c.call_timeout = Duration::from_millis(500));
    let plugins = plugin_dir(&["hostile"]);
    let set = load(&rt, plugins.path(), &Grants::default());
    let hostile = set.target("hostile").expect("target");

    let started = Instant::now();
    let err = hostile
        .deploy(request(r#"{"action": "loop"}"#))
        .await
        .unwrap_err();
    assert!(matches!(err, RuntimeError::Timeout { .. }), "{err:?}");
    assert_eq!(err.to_string(), "plugin `hostile` timed out after 500 ms");
    // The deadline plus slack for a loaded 2-core machine, not a multiple of it.
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "took {:?}",
        started.elapsed()
    );

    let ok = hostile
        .deploy(request(r#"{"action": "ok"}"#))
        .await
        .expect("next call");
    assert_eq!(ok.message, "ok t-test");
}

#[tokio::test]
async fn a_memory_bomb_is_out_of_memory() {
    let rt = runtime_with(|c| c.memory_limit_bytes = 16 * 1024 * 1024);
    let plugins = plugin_dir(&["hostile"]);
    let set = load(&rt, plugins.path(), &Grants::default());
    let hostile = set.target("hostile").expect("target");

    let err = hostile
        .deploy(request(r#"{"action": "memory-bomb"}"#))
        .await
        .unwrap_err();
    assert!(
        matches!(err, RuntimeError::OutOfMemory { limit_bytes, .. } if limit_bytes == 16 << 20),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "plugin `hostile` ran out of memory (limit 16 MiB)"
    );

    hostile
        .deploy(request(r#"{"action": "ok"}"#))
        .await
        .expect("next call");
}

#[tokio::test]
async fn a_panic_is_a_trap_carrying_the_panic_message() {
    let rt = runtime();
    let plugins = plugin_dir(&["hostile"]);
    let set = load(&rt, plugins.path(), &Grants::default());
    let err = set
        .target("hostile")
        .expect("target")
        .deploy(request(r#"{"action": "panic"}"#))
        .await
        .unwrap_err();
    let RuntimeError::Trap { plugin, message } = &err else {
        panic!("expected a trap, got {err:?}");
    };
    assert_eq!(plugin, "hostile");
    assert!(
        message.starts_with("wasm trap: wasm `unreachable` instruction executed"),
        "{message}"
    );
    assert!(
        message.contains("hostile fixture panicked on purpose"),
        "{message}"
    );
}

#[tokio::test]
async fn the_plugins_own_error_is_a_connector_error() {
    let rt = runtime();
    let plugins = plugin_dir(&["hostile"]);
    let set = load(&rt, plugins.path(), &Grants::default());
    let err = set
        .target("hostile")
        .expect("target")
        .deploy(request(r#"{"action": "fail"}"#))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, RuntimeError::Connector { kind: ConnectorErrorKind::Rejected, message, .. } if message == "the fixture says no"),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "plugin `hostile` failed (rejected): the fixture says no"
    );
    assert_eq!(err.code(), "connector_error");
}

#[tokio::test]
async fn excessive_logging_is_cut_not_fatal() {
    let rt = runtime();
    let plugins = plugin_dir(&["hostile"]);
    let set = load(&rt, plugins.path(), &Grants::default());
    let out = set
        .target("hostile")
        .expect("target")
        .deploy(request(r#"{"action": "log"}"#))
        .await
        .expect("deploy");
    assert_eq!(out.message, "logged");
}

/// Calls run on the runtime's own executor: a current-thread caller (like an actix
/// worker) can drive several at once; beyond `max_concurrent_calls` they queue.
#[test]
fn calls_can_be_awaited_from_a_current_thread_runtime() {
    let rt = runtime_with(|c| c.max_concurrent_calls = 1);
    let plugins = plugin_dir(&["hostile"]);
    let set = load(&rt, plugins.path(), &Grants::default());
    let hostile = set.target("hostile").expect("target");
    let caller = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("caller runtime");
    caller.block_on(async {
        let (a, b, c) = tokio::join!(
            hostile.deploy(request(r#"{"action": "ok"}"#)),
            hostile.deploy(request(r#"{"action": "ok"}"#)),
            hostile.deploy(request(r#"{"action": "ok"}"#)),
        );
        for result in [a, b, c] {
            assert_eq!(result.expect("deploy").message, "ok t-test");
        }
    });
    // Dropping the plugin runtime inside another runtime's context must not panic.
    caller.block_on(async move { drop((hostile, set, rt)) });
}

#[test]
fn call_futures_are_send_and_static() {
    fn assert_send_static<T: Send + 'static>(_: &T) {}
    let rt = runtime();
    let plugins = plugin_dir(&["hostile"]);
    let set = load(&rt, plugins.path(), &Grants::default());
    let future = set.target("hostile").expect("target").deploy(request("{}"));
    assert_send_static(&future);
}
