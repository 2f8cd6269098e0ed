//! The server pushes work over the agent's WebSocket session: with a poll interval of an hour,
//! a new certificate still reaches its target within seconds. The same run checks the facts
//! the agent reports in its heartbeats.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{
    Api, Proc, agent_command, binary, free_port, healthy, registered_agent, run, server_command,
    wait_for,
};

const ADMIN_KEY: &str = "e2e-admin-key";
const BOOTSTRAP: &str = "e2e-bootstrap-token";

/// What the agent reports as its host name (it reads /etc/hostname; its environment is empty).
fn expected_hostname() -> Option<String> {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushed_work_is_deployed_without_polling_and_heartbeats_report_the_host() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path();

    let server_dir = base.join("server");
    let port = free_port();
    let url = format!("https://localhost:{port}");
    let _server = Proc::spawn(
        server_command(&server_dir, port, ADMIN_KEY, BOOTSTRAP),
        base.join("server.log"),
    );
    wait_for("server health", Duration::from_secs(30), || healthy(&url)).await;
    let bundle = server_dir.join("ca-bundle.pem");
    let api = Api::new(&url, ADMIN_KEY, &bundle);

    let files = base.join("files");
    std::fs::create_dir_all(&files).unwrap();
    let grants = base.join("grants.toml");
    std::fs::write(
        &grants,
        format!(
            "[plugins.nginx]\ndirectories = [{:?}]\n[plugins.nginx.commands]\nvalidate = [\"true\"]\nreload = [\"true\"]\n",
            files.display().to_string(),
        ),
    )
    .unwrap();
    // One poll at start-up, the next in an hour: anything later arrives through the session.
    let mut agent_cmd = agent_command(&url, &bundle, BOOTSTRAP, "pushed", base, &grants);
    agent_cmd
        .env("CERTCTL_POLL_INTERVAL", "1h")
        .env("CERTCTL_HEARTBEAT_INTERVAL", "1s")
        .env("CERTCTL_LOG_LEVEL", "info,certctl_agent=debug");
    let mut agent = Proc::spawn(agent_cmd, base.join("agent.log"));
    let agent_id = registered_agent(&api, "pushed").await;

    // Heartbeat facts, as GET /agents/{id} returns them.
    let record = wait_for("a heartbeat", Duration::from_secs(30), || async {
        let (s, v) = api.get(&format!("agents/{agent_id}")).await;
        (s == 200 && !v["last_heartbeat_at"].is_null() && !v["os"].is_null()).then_some(v)
    })
    .await;
    assert_eq!(record["os"], std::env::consts::OS, "{record}");
    assert_eq!(record["architecture"], std::env::consts::ARCH, "{record}");
    // The agent reaches the server on loopback, so that is its address.
    assert_eq!(record["ip_address"], "127.0.0.1", "{record}");
    let hostname = record["hostname"].as_str().unwrap_or_default();
    match expected_hostname() {
        Some(h) => assert_eq!(hostname, h, "{record}"),
        None => assert!(!hostname.is_empty(), "{record}"),
    }
    let (ok, version) = run(Command::new(binary("certctl-agent")).arg("--version"));
    assert!(ok, "{version}");
    let version = version.trim().rsplit(' ').next().unwrap().to_owned();
    assert!(version.starts_with(char::is_numeric), "{version}");
    assert_eq!(record["version"], version.as_str(), "{record}");

    // Wait until the session is up (the start-up poll is long past by then; the server also
    // nudges once when a session opens, which `before` leaves out).
    wait_for("the agent session", Duration::from_secs(30), || async {
        agent.output().contains("agent session open").then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = agent.output().len();
    let (s, t) = api
        .post(
            "targets",
            &json!({"id": "t-pushed", "name": "pushed", "type": "nginx", "agent_id": agent_id,
            "config": {"cert_path": files.join("site.pem"), "key_path": files.join("site.key")}}),
        )
        .await;
    assert_eq!(s, 201, "{t}");
    let started = Instant::now();
    let (s, c) = api.post("certificates", &json!({"id": "mc-pushed", "name": "p", "common_name": "p.example", "issuer_id": "iss-local"})).await;
    assert_eq!(s, 201, "{c}");
    let (s, m) = api
        .post(
            "certificates/mc-pushed/targets",
            &json!({"target_id": "t-pushed"}),
        )
        .await;
    assert_eq!(s, 201, "{m}");
    // The agent generates the key (a CSR job) and deploys (a deployment job): two pushes.
    // Far below the hour-long poll interval, whatever the machine's load.
    wait_for(
        "the pushed deployment to complete",
        Duration::from_secs(60),
        || async {
            let (_, v) = api
                .get("jobs?certificate_id=mc-pushed&type=Deployment&status=Completed")
                .await;
            (v["total"].as_i64() == Some(1)).then_some(())
        },
    )
    .await;
    println!(
        "pushed deployment completed {:.1} s after creation",
        started.elapsed().as_secs_f64()
    );
    assert!(files.join("site.pem").exists() && files.join("site.key").exists());
    let log = agent.output();
    let after = log.get(before..).unwrap_or_default();
    assert!(
        after.matches("server nudged: fetching work").count() >= 2,
        "the work came through the session (CSR, then deployment): {after}"
    );
    assert!(agent.exited().is_none(), "agent exited: {log}");
}
