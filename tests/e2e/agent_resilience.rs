//! Agent behaviour around the deployment itself: post-deployment TLS verification by
//! fingerprint, a redelivered job that must not be deployed twice, and exponential backoff
//! while the control plane is away (work resumes when it returns, no agent restart).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::json;

use crate::support::{
    Api, Proc, agent_command, free_port, healthy, registered_agent, run, self_signed,
    server_command, wait_for,
};

const ADMIN_KEY: &str = "e2e-admin-key";
const BOOTSTRAP: &str = "e2e-bootstrap-token";

fn sql(db: &Path, statement: &str) {
    let script =
        "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute(sys.argv[2]); c.commit()";
    let (ok, out) = run(Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(db)
        .arg(statement));
    assert!(ok, "{out}");
}

fn count_lines(path: &PathBuf) -> usize {
    std::fs::read_to_string(path)
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verification_redelivery_and_backoff() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path();

    // A TLS endpoint that keeps serving its own certificate whatever the agent writes:
    // openssl s_server with a self-signed placeholder.
    let other = base.join("other");
    std::fs::create_dir_all(&other).unwrap();
    self_signed(&other.join("k.pem"), &other.join("c.pem"), "other");
    let other_port = free_port();
    let mut s_server = Command::new("openssl");
    s_server
        .args(["s_server", "-quiet", "-accept"])
        .arg(other_port.to_string())
        .arg("-cert")
        .arg(other.join("c.pem"))
        .arg("-key")
        .arg(other.join("k.pem"));
    let _other_tls = Proc::spawn(s_server, base.join("s_server.log"));

    let server_dir = base.join("server");
    let port = free_port();
    let url = format!("https://localhost:{port}");
    let mut server = Proc::spawn(
        server_command(&server_dir, port, ADMIN_KEY, BOOTSTRAP),
        base.join("server-1.log"),
    );
    wait_for("server health", Duration::from_secs(30), || healthy(&url)).await;
    let bundle = server_dir.join("ca-bundle.pem");
    let api = Api::new(&url, ADMIN_KEY, &bundle);

    // Files land in a granted directory; "reload" only counts how often it ran.
    let files = base.join("files");
    std::fs::create_dir_all(&files).unwrap();
    let reloads = base.join("reloads.log");
    let grants = base.join("grants.toml");
    std::fs::write(
        &grants,
        format!(
            "[plugins.nginx]\ndirectories = [{:?}]\n[plugins.nginx.commands]\nvalidate = [\"true\"]\nreload = [\"sh\", \"-c\", \"echo reload >> {}\"]\n",
            files.display().to_string(),
            reloads.display()
        ),
    )
    .unwrap();
    let mut agent_cmd = agent_command(&url, &bundle, BOOTSTRAP, "resilient", base, &grants);
    agent_cmd
        .env("CERTCTL_POLL_INTERVAL", "1s")
        .env("CERTCTL_MAX_BACKOFF", "4s");
    let mut agent = Proc::spawn(agent_cmd, base.join("agent.log"));
    let agent_id = registered_agent(&api, "resilient").await;

    // 1. A target whose live endpoint does not serve what was deployed: verification fails the job.
    let (s, t) = api
        .post("targets", &json!({"id": "t-mismatch", "name": "mismatch", "type": "nginx", "agent_id": agent_id,
            "config": {"cert_path": files.join("m.pem"), "key_path": files.join("m.key"), "verify_endpoint": format!("127.0.0.1:{other_port}")}}))
        .await;
    assert_eq!(s, 201, "{t}");
    api.post("certificates", &json!({"id": "mc-mismatch", "name": "m", "common_name": "m.example", "issuer_id": "iss-local"})).await;
    api.post(
        "certificates/mc-mismatch/targets",
        &json!({"target_id": "t-mismatch"}),
    )
    .await;
    let failed = wait_for("verification failure", Duration::from_secs(60), || async {
        let (_, v) = api
            .get("jobs?certificate_id=mc-mismatch&type=Deployment")
            .await;
        let err = v["data"][0]["last_error"].as_str()?.to_owned();
        err.contains("serves certificate").then_some(err)
    })
    .await;
    assert!(
        failed.contains(&format!("127.0.0.1:{other_port}")),
        "{failed}"
    );

    // 2. A matching target (no verification) deploys once.
    let (s, t) = api
        .post(
            "targets",
            &json!({"id": "t-files", "name": "files", "type": "nginx", "agent_id": agent_id,
            "config": {"cert_path": files.join("site.pem"), "key_path": files.join("site.key")}}),
        )
        .await;
    assert_eq!(s, 201, "{t}");
    api.post("certificates", &json!({"id": "mc-files", "name": "f", "common_name": "f.example", "issuer_id": "iss-local"})).await;
    api.post(
        "certificates/mc-files/targets",
        &json!({"target_id": "t-files"}),
    )
    .await;
    let job_id: String = wait_for("deployment completed", Duration::from_secs(60), || async {
        let (_, v) = api
            .get("jobs?certificate_id=mc-files&type=Deployment&status=Completed")
            .await;
        v["data"][0]["id"].as_str().map(str::to_owned)
    })
    .await;
    let reloads_after_first = count_lines(&reloads);
    assert!(reloads_after_first >= 1, "the reload ran");
    let written = std::fs::metadata(files.join("site.pem"))
        .unwrap()
        .modified()
        .unwrap();

    // 3. Redelivery: the server offers the same job again (as after a lost completion report
    //    and an expired lease); the agent reports it done without deploying again.
    sql(
        &server_dir.join("certctl.db"),
        &format!("UPDATE jobs SET status = 'Pending', completed_at = NULL WHERE id = '{job_id}'"),
    );
    wait_for(
        "redelivered job completed again",
        Duration::from_secs(30),
        || async {
            let (_, v) = api.get(&format!("jobs/{job_id}")).await;
            (v["status"] == "Completed").then_some(())
        },
    )
    .await;
    let (_, audit) = api
        .get(&format!("audit?resource_id={job_id}&action=job_completed"))
        .await;
    assert_eq!(audit["total"], 2, "{audit}");
    assert!(
        audit["data"][0]["details"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("already deployed"),
        "{audit}"
    );
    assert_eq!(
        count_lines(&reloads),
        reloads_after_first,
        "not deployed a second time"
    );
    assert_eq!(
        std::fs::metadata(files.join("site.pem"))
            .unwrap()
            .modified()
            .unwrap(),
        written
    );

    // 4. Work is pending when the server goes away: the agent is frozen while a renewal is
    //    created, then the server stops and the agent runs against nothing for 30 s, backing
    //    off; when the server returns, the agent reconnects (poll loop and session) and the
    //    pending renewal completes, with no agent restart.
    let agent_pid = agent.pid().unwrap().to_string();
    let (ok, out) = run(Command::new("kill").args(["-STOP", &agent_pid]));
    assert!(ok, "{out}");
    let (s, renewal) = api.post("certificates/mc-files/renew", &json!({})).await;
    assert_eq!(s, 202, "{renewal}");
    let renewal_id = renewal["id"].as_str().unwrap().to_owned();
    let (_, pending) = api.get(&format!("jobs/{renewal_id}")).await;
    assert_ne!(pending["status"], "Completed", "{pending}");
    assert_ne!(pending["status"], "Failed", "{pending}");
    drop(server);
    let outage_from = agent.output().len();
    let (ok, out) = run(Command::new("kill").args(["-CONT", &agent_pid]));
    assert!(ok, "{out}");
    // Thirty seconds away, as an upgrade or a failover might take.
    tokio::time::sleep(Duration::from_secs(30)).await;
    let log = agent.output();
    let during = log.get(outage_from..).unwrap_or(&log);
    // Only the poll loop's lines (runner.rs); the session logs its own retries separately.
    let backoffs: Vec<&str> = during
        .lines()
        .filter(|l| l.contains("server unreachable; backing off"))
        .collect();
    assert!(backoffs.len() >= 3, "the poll loop backs off: {during}");
    assert!(
        backoffs.iter().any(|l| l.contains("retry_in=1s"))
            && backoffs.iter().any(|l| l.contains("retry_in=2s"))
            && backoffs.iter().any(|l| l.contains("retry_in=4s")),
        "delays grow to the 4 s cap: {backoffs:#?}"
    );
    assert!(
        !backoffs.iter().any(|l| l.contains("retry_in=8s")),
        "delays are capped: {backoffs:#?}"
    );
    assert!(agent.exited().is_none(), "the agent keeps running: {log}");
    assert!(healthy(&url).await.is_none(), "the server is really down");
    let back_from = agent.output().len();
    server = Proc::spawn(
        server_command(&server_dir, port, ADMIN_KEY, BOOTSTRAP),
        base.join("server-2.log"),
    );
    wait_for("server back", Duration::from_secs(30), || healthy(&url)).await;
    wait_for(
        "the pending renewal to complete after the outage",
        Duration::from_secs(60),
        || async {
            let (_, v) = api.get(&format!("jobs/{renewal_id}")).await;
            (v["status"] == "Completed").then_some(())
        },
    )
    .await;
    wait_for(
        "renewal deployed after the outage",
        Duration::from_secs(60),
        || async {
            let (_, v) = api
                .get("jobs?certificate_id=mc-files&type=Deployment&status=Completed")
                .await;
            (v["total"].as_i64() == Some(2)).then_some(())
        },
    )
    .await;
    assert!(count_lines(&reloads) > reloads_after_first);
    wait_for(
        "the agent session re-opened after the restart",
        Duration::from_secs(30),
        || async {
            let log = agent.output();
            let after = log.get(back_from..).unwrap_or_default();
            after.contains("agent session open").then_some(())
        },
    )
    .await;
    assert!(agent.exited().is_none(), "agent exited: {}", agent.output());
    drop(server);
}
