//! Capabilities: what the manifest requests ∩ what the operator grants, and
//! nothing else — paths, commands and outbound hosts.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};

use certctl_core::runtime::{
    Capability, Grants, Notification, PluginGrant, RuntimeError, TargetPlugin, TargetRequest,
};
use serde_json::json;

use crate::support::{argv, grant, load, plugin_dir, read, runtime};

fn hostile(granted: &Path, commands: &[(&str, Vec<String>)]) -> (tempfile::TempDir, TargetPlugin) {
    let plugins = plugin_dir(&["hostile"]);
    let set = load(
        &runtime(),
        plugins.path(),
        &grant("hostile", &[granted], commands),
    );
    let plugin = set.target("hostile").expect("target");
    (plugins, plugin)
}

async fn act(plugin: &TargetPlugin, config: serde_json::Value) -> Result<String, RuntimeError> {
    plugin
        .deploy(TargetRequest {
            config_json: config.to_string(),
            ..TargetRequest::default()
        })
        .await
        .map(|out| out.message)
}

/// A denial fails only its own call: the same instance then writes inside its grant.
async fn still_healthy(plugin: &TargetPlugin, granted: &Path) {
    let path = granted.join("after-denial.txt");
    let message = act(
        plugin,
        json!({"action": "write", "path": path, "contents": "fine"}),
    )
    .await
    .expect("the instance works after a denial");
    assert_eq!(message, "written");
    assert_eq!(read(&path), "fine");
    std::fs::remove_file(&path).expect("cleanup");
}

fn denied_directory(err: &RuntimeError) -> PathBuf {
    match err {
        RuntimeError::Denied {
            capability: Capability::Directory(path),
            ..
        } => path.clone(),
        other => panic!("expected a directory denial, got {other:?}"),
    }
}

#[tokio::test]
async fn writes_inside_a_granted_directory_succeed_with_the_mode_asked() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let granted = tmp.path().join("granted");
    std::fs::create_dir(&granted).expect("mkdir");
    let (_plugins, plugin) = hostile(&granted, &[]);
    let path = granted.join("sub/dir/site.key");
    let message = act(
        &plugin,
        json!({"action": "write", "path": path, "contents": "k", "mode": 0o600}),
    )
    .await
    .expect("write");
    assert_eq!(message, "written");
    assert_eq!(read(&path), "k");
    assert_eq!(crate::support::mode(&path), 0o600);
}

#[tokio::test]
async fn dot_dot_is_denied() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (_plugins, plugin) = hostile(tmp.path(), &[]);
    let path = format!("{}/../../etc/passwd", tmp.path().display());
    let err = act(
        &plugin,
        json!({"action": "write", "path": path, "contents": "x"}),
    )
    .await
    .unwrap_err();
    assert_eq!(denied_directory(&err), PathBuf::from(&path));
    assert_eq!(
        err.to_string(),
        format!(
            "plugin `hostile` was denied directory access to {path}: not requested by its \
             manifest or not granted by the operator"
        )
    );
    still_healthy(&plugin, tmp.path()).await;
    let err = act(&plugin, json!({"action": "read", "path": path}))
        .await
        .unwrap_err();
    denied_directory(&err);
    still_healthy(&plugin, tmp.path()).await;
}

#[tokio::test]
async fn paths_outside_the_grant_are_denied() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let granted = tmp.path().join("granted");
    std::fs::create_dir(&granted).expect("mkdir");
    let (_plugins, plugin) = hostile(&granted, &[]);
    for path in [
        "/etc/passwd".to_string(),
        format!("{}/granted-sibling/x", tmp.path().display()),
    ] {
        let err = act(
            &plugin,
            json!({"action": "write", "path": path, "contents": "x"}),
        )
        .await
        .unwrap_err();
        assert_eq!(denied_directory(&err), PathBuf::from(&path));
        still_healthy(&plugin, &granted).await;
    }
    let err = act(&plugin, json!({"action": "read", "path": "/etc/passwd"}))
        .await
        .unwrap_err();
    denied_directory(&err);
    still_healthy(&plugin, &granted).await;
    // Relative paths are a bad request, not a lookup relative to anything.
    let err = act(
        &plugin,
        json!({"action": "write", "path": "site.pem", "contents": "x"}),
    )
    .await
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "plugin `hostile` failed (invalid-request): path `site.pem` must be absolute"
    );
}

#[tokio::test]
async fn symbolic_links_cannot_escape_the_grant() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let granted = tmp.path().join("granted");
    let outside = tmp.path().join("outside");
    std::fs::create_dir(&granted).expect("mkdir");
    std::fs::create_dir(&outside).expect("mkdir");
    std::fs::write(outside.join("secret"), "s3cret").expect("write");
    std::os::unix::fs::symlink(&outside, granted.join("dirlink")).expect("symlink");
    std::os::unix::fs::symlink(outside.join("secret"), granted.join("filelink")).expect("symlink");
    let (_plugins, plugin) = hostile(&granted, &[]);

    // A directory link: the resolved parent is outside.
    let err = act(
        &plugin,
        json!({"action": "write", "path": granted.join("dirlink/passwd"), "contents": "x"}),
    )
    .await
    .unwrap_err();
    denied_directory(&err);
    assert!(!outside.join("passwd").exists());

    // A file link: reading follows it, so it is denied.
    let err = act(
        &plugin,
        json!({"action": "read", "path": granted.join("filelink")}),
    )
    .await
    .unwrap_err();
    denied_directory(&err);

    // Writing replaces the link itself; the file it pointed at is untouched.
    act(
        &plugin,
        json!({"action": "write", "path": granted.join("filelink"), "contents": "new"}),
    )
    .await
    .expect("write replaces the link");
    assert_eq!(read(&outside.join("secret")), "s3cret");
    assert_eq!(read(&granted.join("filelink")), "new");
    // …and restoring puts the link back.
    act(
        &plugin,
        json!({"action": "restore", "path": granted.join("filelink")}),
    )
    .await
    .expect("restore");
    assert!(
        std::fs::symlink_metadata(granted.join("filelink"))
            .expect("stat")
            .file_type()
            .is_symlink()
    );
}

#[tokio::test]
async fn without_grants_every_path_is_denied() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let plugins = plugin_dir(&["hostile"]);
    let set = load(&runtime(), plugins.path(), &Grants::default());
    let plugin = set.target("hostile").expect("target");
    let err = act(
        &plugin,
        json!({"action": "write", "path": tmp.path().join("x"), "contents": "x"}),
    )
    .await
    .unwrap_err();
    denied_directory(&err);
}

#[tokio::test]
async fn commands_run_only_when_requested_and_granted() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (_plugins, plugin) = hostile(
        tmp.path(),
        &[
            ("validate", argv(&["/bin/echo", "config ok"])),
            // Granted, but the manifest does not list it.
            ("shell", argv(&["/bin/sh", "-c", "echo pwned"])),
        ],
    );
    assert_eq!(
        act(&plugin, json!({"action": "run", "command": "validate"}))
            .await
            .expect("run"),
        "status=0 stdout=config ok"
    );

    // Requested by the manifest, not granted.
    let err = act(&plugin, json!({"action": "run", "command": "steal"}))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, RuntimeError::Denied { capability: Capability::Command(name), .. } if name == "steal"),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "plugin `hostile` was denied command `steal`: not requested by its manifest or not \
         granted by the operator"
    );
    // Granted, not requested.
    let err = act(&plugin, json!({"action": "run", "command": "shell"}))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, RuntimeError::Denied { capability: Capability::Command(name), .. } if name == "shell")
    );

    // A plugin that swallows the denial succeeded at doing nothing: no invented failure.
    assert_eq!(
        act(
            &plugin,
            json!({"action": "run-ignoring-denial", "command": "steal"})
        )
        .await
        .expect("ok"),
        "granted=false"
    );
}

/// An HTTP server on 127.0.0.1 answering 200 to `requests` connections, then stopping.
fn http_server(requests: usize) -> (u16, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let handle = std::thread::spawn(move || {
        for _ in 0..requests {
            if let Ok((mut stream, _)) = listener.accept() {
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf);
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                );
            }
        }
    });
    (port, handle)
}

#[tokio::test]
async fn outbound_http_reaches_granted_hosts_only() {
    // One request before the denials and one after each of them.
    let (port, server) = http_server(3);
    let plugins = plugin_dir(&["hostile-notifier"]);
    let grants = Grants::default().with_plugin(
        "hostile-notifier",
        PluginGrant {
            hosts: vec![format!("http://127.0.0.1:{port}")],
            ..PluginGrant::default()
        },
    );
    let rt = runtime();
    let set = load(&rt, plugins.path(), &grants);
    let notifier = set.notifier("hostile-notifier").expect("notifier");
    let notify = |url: String| {
        notifier.notify(Notification {
            event: "test".into(),
            config_json: json!({ "url": url }).to_string(),
            ..Notification::default()
        })
    };

    notify(format!("http://127.0.0.1:{port}/hook"))
        .await
        .expect("granted host");

    let err = notify("http://example.com/steal".into()).await.unwrap_err();
    assert!(
        matches!(&err, RuntimeError::Denied { capability: Capability::Host(host), .. } if host == "example.com"),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "plugin `hostile-notifier` was denied outbound host `example.com`: not requested by its \
         manifest or not granted by the operator"
    );
    // The denial failed that call only: the same instance reaches the granted host again.
    notify(format!("http://127.0.0.1:{port}/after-host-denial"))
        .await
        .expect("granted host after a denial");
    // Same host, another port.
    let err = notify(format!("http://127.0.0.1:{}/", port.wrapping_add(1)))
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            RuntimeError::Denied {
                capability: Capability::Host(_),
                ..
            }
        ),
        "{err:?}"
    );
    notify(format!("http://127.0.0.1:{port}/after-port-denial"))
        .await
        .expect("granted host after a port denial");
    // All three granted requests reached the server.
    server.join().expect("server");
}

#[tokio::test]
async fn commands_get_an_empty_environment_but_path_and_home() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (_plugins, plugin) = hostile(tmp.path(), &[("validate", argv(&["/usr/bin/env"]))]);
    let message = act(&plugin, json!({"action": "run", "command": "validate"}))
        .await
        .expect("run");
    let stdout = message.strip_prefix("status=0 stdout=").expect("status 0");
    for line in stdout.lines() {
        assert!(
            line.starts_with("PATH=") || line.starts_with("HOME="),
            "leaked: {line}"
        );
    }
}
