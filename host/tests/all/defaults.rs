//! With nothing configured, the server starts on HTTPS :8443 with SQLite in ./certctl-data,
//! answers /health and /ready, and prints a generated admin key exactly once.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[tokio::test]
async fn starts_with_no_configuration() {
    let cwd = tempfile::tempdir().unwrap();
    let start = |log: &str| {
        let f = std::fs::File::create(cwd.path().join(log)).unwrap();
        Command::new(env!("CARGO_BIN_EXE_certctl-server"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .current_dir(cwd.path())
            .stdout(Stdio::from(f.try_clone().unwrap()))
            .stderr(Stdio::from(f))
            .spawn()
            .unwrap()
    };
    let wait_ready = || async {
        let bundle = cwd.path().join("certctl-data/ca-bundle.pem");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(pem) = std::fs::read(&bundle) {
                let mut b = reqwest::Client::builder().timeout(Duration::from_secs(5));
                for c in reqwest::Certificate::from_pem_bundle(&pem).unwrap() {
                    b = b.add_root_certificate(c);
                }
                let client = b.build().unwrap();
                if let Ok(r) = client.get("https://localhost:8443/health").send().await
                    && r.status() == 200
                {
                    return client;
                }
            }
            assert!(
                Instant::now() < deadline,
                "server did not come up on https://localhost:8443"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };

    let mut first = start("first.log");
    let client = wait_ready().await;
    let ready = client
        .get("https://localhost:8443/ready")
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    assert!(cwd.path().join("certctl-data/certctl.db").exists());
    let log = std::fs::read_to_string(cwd.path().join("first.log")).unwrap();
    let key = log
        .split_whitespace()
        .find(|w| w.starts_with("cctl_"))
        .expect("generated admin key printed")
        .to_owned();
    let check = client
        .get("https://localhost:8443/api/v1/auth/check")
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(check.status(), 200, "the printed key works");
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(first.id().to_string())
        .status();
    assert!(first.wait().unwrap().success(), "clean exit on SIGTERM");

    let mut second = start("second.log");
    let client = wait_ready().await;
    assert_eq!(
        client
            .get("https://localhost:8443/ready")
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let log = std::fs::read_to_string(cwd.path().join("second.log")).unwrap();
    assert!(
        !log.contains("cctl_"),
        "the key is printed only at first start"
    );
    let check = client
        .get("https://localhost:8443/api/v1/auth/check")
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(check.status(), 200, "the key survives a restart");
    let _ = second.kill();
    let _ = second.wait();
}
