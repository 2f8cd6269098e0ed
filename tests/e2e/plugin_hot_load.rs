//! A third-party connector reaches a running system without rebuilding or restarting it:
//! `plugins/template` is copied out of the repository and built as a crate of its own (the
//! way README "Write a connector" tells an author to), dropped into the plugin directories
//! of an already-running server and agent, and picked up by `POST /api/v1/plugins/reload`
//! and SIGHUP (and, for a second copy, by the agent's rescan when a deployment names a
//! plugin it does not know). A certificate mapped to a target of that type is deployed by
//! the new plugin.

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{
    Api, Proc, agent_command, free_port, healthy, public_key_of, registered_agent, root, run,
    server_command, wait_for,
};

const ADMIN_KEY: &str = "e2e-admin-key";
const BOOTSTRAP: &str = "e2e-bootstrap-token";

/// Copies `plugins/template` to `dest` as a standalone crate (its own WIT copy, no
/// workspace) and builds it for wasm32-wasip2; returns the component.
fn build_template_out_of_tree(dest: &Path) -> PathBuf {
    let template = root().join("plugins/template");
    let (ok, out) = run(Command::new("cp").arg("-r").arg(&template).arg(dest));
    assert!(ok, "{out}");
    let (ok, out) = run(Command::new("cp")
        .arg("-r")
        .arg(root().join("wit/v0.1.0"))
        .arg(dest.join("wit")));
    assert!(ok, "{out}");
    let lib = dest.join("src/lib.rs");
    let source = std::fs::read_to_string(&lib).unwrap();
    assert!(
        source.contains(r#"path: "../../wit/v0.1.0""#),
        "the template's WIT path changed; update this test and README"
    );
    std::fs::write(
        &lib,
        source.replace(r#"path: "../../wit/v0.1.0""#, r#"path: "wit""#),
    )
    .unwrap();
    // The same dependency versions as the first-party plugins, so the build needs no
    // network (and the registry cache filled by plugins/build.sh suffices).
    std::fs::copy(root().join("plugins/Cargo.lock"), dest.join("Cargo.lock")).unwrap();

    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let target_dir = root().join("target/plugin-hot-load");
    let started = std::time::Instant::now();
    let (ok, out) = run(Command::new(cargo)
        .current_dir(dest)
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .args([
            "build",
            "--offline",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--target-dir",
        ])
        .arg(&target_dir));
    assert!(ok, "out-of-tree template build failed:\n{out}");
    println!(
        "template built out of tree in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let wasm = target_dir.join("wasm32-wasip2/release/certctl_plugin_template.wasm");
    assert!(wasm.exists(), "{} missing:\n{out}", wasm.display());
    wasm
}

/// Installs `wasm` under `<plugin dir>/<id>/` with the template's manifest renamed to `id`.
fn install(plugin_dir: &Path, id: &str, wasm: &Path, manifest: &str) {
    let dir = plugin_dir.join(id);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(wasm, dir.join("plugin.wasm")).unwrap();
    let renamed = manifest.replacen(r#"id = "template""#, &format!(r#"id = "{id}""#), 1);
    assert_ne!(renamed, manifest, "template manifest has no id line");
    std::fs::write(dir.join("plugin.toml"), renamed).unwrap();
}

fn fingerprint(cert: &Path) -> String {
    let (ok, out) = run(Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(cert));
    assert!(ok, "{out}");
    out.trim()
        .split('=')
        .nth(1)
        .unwrap_or_default()
        .replace(':', "")
        .to_ascii_lowercase()
}

/// Creates a target of `plugin`'s type writing into `dir`, maps a new certificate to it,
/// and waits for the deployment to complete; returns the version's fingerprint.
async fn deploy_through(api: &Api, agent: &Proc, plugin: &str, dir: &Path) -> String {
    let agent_id = crate::support::registered_agent(api, "hot-load").await;
    let target = format!("t-{plugin}");
    let cert = format!("mc-{plugin}");
    let (s, t) = api
        .post(
            "targets",
            &json!({"id": target, "name": plugin, "type": plugin, "agent_id": agent_id, "config": {"dir": dir}}),
        )
        .await;
    assert_eq!(s, 201, "{t}");
    let (s, c) = api
        .post(
            "certificates",
            &json!({"id": cert, "name": plugin, "common_name": "localhost", "sans": ["localhost"], "issuer_id": "iss-local"}),
        )
        .await;
    assert_eq!(s, 201, "{c}");
    let (s, m) = api
        .post(
            &format!("certificates/{cert}/targets"),
            &json!({"target_id": target}),
        )
        .await;
    assert_eq!(s, 201, "{m}");
    wait_for(
        &format!("deployment through {plugin}"),
        Duration::from_secs(60),
        || async {
            let (_, v) = api
                .get(&format!("jobs?certificate_id={cert}&type=Deployment"))
                .await;
            let job = v["data"][0].clone();
            assert_ne!(
                job["status"],
                "Failed",
                "deployment failed: {job}\nagent log:\n{}",
                agent.output()
            );
            (job["status"] == "Completed").then_some(())
        },
    )
    .await;
    let (_, versions) = api.get(&format!("certificates/{cert}/versions")).await;
    versions["data"][0]["fingerprint_sha256"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_plugin_built_out_of_tree_is_loaded_by_running_processes() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path();

    // Server and agent start with empty plugin directories: no template anywhere.
    let server_dir = base.join("server");
    let server_plugins = server_dir.join("plugins");
    let agent_plugins = base.join("agent-plugins");
    std::fs::create_dir_all(&server_plugins).unwrap();
    std::fs::create_dir_all(&agent_plugins).unwrap();
    let out = [base.join("out-hup"), base.join("out-rescan")];
    for d in &out {
        std::fs::create_dir_all(d).unwrap();
    }
    let grants = base.join("grants.toml");
    std::fs::write(
        &grants,
        format!(
            "[plugins.hotload]\ndirectories = [{:?}]\n[plugins.hotload-rescan]\ndirectories = [{:?}]\n",
            out[0].display().to_string(),
            out[1].display().to_string(),
        ),
    )
    .unwrap();

    let port = free_port();
    let url = format!("https://localhost:{port}");
    let mut server = Proc::spawn(
        server_command(&server_dir, port, ADMIN_KEY, BOOTSTRAP),
        base.join("server.log"),
    );
    let bundle = server_dir.join("ca-bundle.pem");
    wait_for("server CA bundle", Duration::from_secs(30), || async {
        bundle.exists().then_some(())
    })
    .await;
    wait_for("server health", Duration::from_secs(30), || healthy(&url)).await;
    let api = Api::new(&url, ADMIN_KEY, &bundle);

    let mut agent_cmd = agent_command(&url, &bundle, BOOTSTRAP, "hot-load", base, &grants);
    agent_cmd
        .env("CERTCTL_PLUGIN_DIR", &agent_plugins)
        .env("CERTCTL_POLL_INTERVAL", "2s")
        .env("CERTCTL_HEARTBEAT_INTERVAL", "5s");
    let mut agent = Proc::spawn(agent_cmd, base.join("agent.log"));
    let agent_id = registered_agent(&api, "hot-load").await;

    // Unknown to the server: a target of that type is refused, naming the allowed values.
    let (s, refused) = api
        .post(
            "targets",
            &json!({"name": "early", "type": "hotload", "agent_id": agent_id, "config": {"dir": out[0]}}),
        )
        .await;
    assert_eq!(s, 400, "{refused}");
    assert_eq!(refused["error"]["field"], "type", "{refused}");
    let message = refused["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("\"hotload\"") && message.contains("nginx"),
        "{message}"
    );

    // A third-party author's build: the template copied out of the repository.
    let crate_dir = base.join("hotload-src");
    let wasm = build_template_out_of_tree(&crate_dir);
    let manifest = std::fs::read_to_string(crate_dir.join("plugin.toml")).unwrap();

    // Into both plugin directories; the server reloads on request, the agent on SIGHUP.
    install(&server_plugins, "hotload", &wasm, &manifest);
    install(&agent_plugins, "hotload", &wasm, &manifest);
    let (s, listing) = api.post("plugins/reload", &json!({})).await;
    assert_eq!(s, 200, "{listing}");
    let (s, listing) = api.get("plugins").await;
    assert_eq!(s, 200, "{listing}");
    let entry = listing["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == "hotload")
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(entry["status"], "loaded", "{listing}");
    assert_eq!(entry["kind"], "target", "{entry}");
    assert_eq!(
        entry["config_schema"]["required"],
        json!(["dir"]),
        "{entry}"
    );
    let (_, doc) = api.get("openapi.json").await;
    assert!(
        doc["components"]["schemas"]["Target"]["properties"]["type"]["enum"]
            .as_array()
            .is_some_and(|types| types.contains(&json!("hotload"))),
        "the dashboard's target types include the plugin"
    );

    let pid = agent.pid().unwrap();
    let (ok, out_kill) = run(Command::new("kill").arg("-HUP").arg(pid.to_string()));
    assert!(ok, "{out_kill}");
    wait_for(
        "the agent's SIGHUP reload",
        Duration::from_secs(30),
        || async {
            agent
                .output()
                .lines()
                .any(|l| l.contains("SIGHUP: target plugins reloaded") && l.contains("hotload"))
                .then_some(())
        },
    )
    .await;

    let fp = deploy_through(&api, &agent, "hotload", &out[0]).await;
    // The template's effect: cert.pem (full chain, leaf first) and key.pem, 0600, a pair.
    assert_eq!(fingerprint(&out[0].join("cert.pem")), fp);
    let key = out[0].join("key.pem");
    assert_eq!(std::fs::metadata(&key).unwrap().mode() & 0o777, 0o600);
    assert_eq!(
        std::fs::metadata(out[0].join("cert.pem")).unwrap().mode() & 0o777,
        0o644
    );
    assert_eq!(
        public_key_of(&key, true),
        public_key_of(&out[0].join("cert.pem"), false)
    );

    // A second copy, only copied in: the agent rescans when a deployment names it.
    install(&server_plugins, "hotload-rescan", &wasm, &manifest);
    install(&agent_plugins, "hotload-rescan", &wasm, &manifest);
    let (s, listing) = api.post("plugins/reload", &json!({})).await;
    assert_eq!(s, 200, "{listing}");
    let fp = deploy_through(&api, &agent, "hotload-rescan", &out[1]).await;
    assert_eq!(fingerprint(&out[1].join("cert.pem")), fp);
    assert!(
        agent.output().contains("rescanning the plugin directory"),
        "{}",
        agent.output()
    );

    // Same processes throughout: nothing was restarted (or rebuilt).
    assert!(
        server.exited().is_none(),
        "server exited: {}",
        server.output()
    );
    assert!(agent.exited().is_none(), "agent exited: {}", agent.output());
    assert_eq!(agent.pid(), Some(pid));
}
