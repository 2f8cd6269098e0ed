//! Issue to deployment against a real nginx on a loopback port: the agent generates the key,
//! the Local CA signs the CSR, the nginx target plugin installs the files and reloads nginx,
//! and `openssl s_client` sees the stored certificate. Then a renewal rotates cert and key.

use std::os::unix::fs::MetadataExt as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{
    Api, Proc, agent_command, free_port, healthy, public_key_of, registered_agent, run,
    self_signed, server_command, wait_for,
};

const ADMIN_KEY: &str = "e2e-admin-key";
const BOOTSTRAP: &str = "e2e-bootstrap-token";

fn nginx_conf(dir: &Path, port: u16) -> String {
    let d = dir.display();
    format!(
        "pid {d}/nginx.pid;\nerror_log {d}/error.log notice;\nworker_processes 1;\nevents {{ worker_connections 64; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/tmp/body;\n  proxy_temp_path {d}/tmp/proxy;\n  fastcgi_temp_path {d}/tmp/fastcgi;\n  uwsgi_temp_path {d}/tmp/uwsgi;\n  scgi_temp_path {d}/tmp/scgi;\n  include {d}/extra.conf;\n\
         \n  server {{\n    listen 127.0.0.1:{port} ssl;\n    server_name localhost;\n    ssl_certificate {d}/certs/site.pem;\n    ssl_certificate_key {d}/certs/site.key;\n    location / {{ return 200 \"ok\\n\"; }}\n  }}\n}}\n"
    )
}

/// SHA-256 fingerprint (lower hex, no colons) of what nginx serves.
fn served_fingerprint(port: u16) -> Option<String> {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl s_client -connect 127.0.0.1:{port} -servername localhost </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256"
        ))
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let fp = text
        .trim()
        .split('=')
        .nth(1)?
        .replace(':', "")
        .to_ascii_lowercase();
    (!fp.is_empty()).then_some(fp)
}

async fn latest_version(api: &Api, cert: &str) -> Option<Value> {
    let (s, v) = api.get(&format!("certificates/{cert}/versions")).await;
    (s == 200)
        .then(|| v["data"][0].clone())
        .filter(|v| !v.is_null())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_serves_the_issued_certificate_and_its_renewal() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path();

    // nginx on a loopback port, started with a throwaway self-signed certificate.
    let ngx = base.join("nginx");
    for d in ["certs", "tmp"] {
        std::fs::create_dir_all(ngx.join(d)).unwrap();
    }
    self_signed(
        &ngx.join("certs/site.key"),
        &ngx.join("certs/site.pem"),
        "placeholder",
    );
    let nginx_port = free_port();
    let conf = ngx.join("nginx.conf");
    std::fs::write(&conf, nginx_conf(&ngx, nginx_port)).unwrap();
    std::fs::write(ngx.join("extra.conf"), "").unwrap();
    let mut nginx_cmd = Command::new("nginx");
    nginx_cmd
        .arg("-c")
        .arg(&conf)
        .arg("-p")
        .arg(&ngx)
        .args(["-g", "daemon off;"]);
    let mut nginx = Proc::spawn(nginx_cmd, base.join("nginx.log"));
    let placeholder = wait_for(
        "nginx to serve the placeholder",
        Duration::from_secs(15),
        || async { served_fingerprint(nginx_port) },
    )
    .await;
    assert!(nginx.exited().is_none(), "nginx exited: {}", nginx.output());

    // The control plane: agent keygen (the default), TLS with its bootstrap CA.
    let server_dir = base.join("server");
    let server_port = free_port();
    let server_cmd = server_command(&server_dir, server_port, ADMIN_KEY, BOOTSTRAP);
    let _server = Proc::spawn(server_cmd, base.join("server.log"));
    let bundle = server_dir.join("ca-bundle.pem");
    wait_for("server CA bundle", Duration::from_secs(30), || async {
        bundle.exists().then_some(())
    })
    .await;
    let server_url = format!("https://localhost:{server_port}");
    let api = Api::new(&server_url, ADMIN_KEY, &bundle);
    wait_for("server health", Duration::from_secs(30), || {
        healthy(&server_url)
    })
    .await;

    // The agent: registers with the bootstrap token, nginx plugin with narrow grants.
    let key_dir = base.join("agent-keys");
    let grants = base.join("grants.toml");
    let nginx_args = |extra: &[&str]| -> String {
        let mut v: Vec<String> = vec![
            "nginx".into(),
            "-c".into(),
            conf.display().to_string(),
            "-p".into(),
            ngx.display().to_string(),
        ];
        v.extend(extra.iter().map(|s| s.to_string()));
        serde_json::to_string(&v).unwrap()
    };
    std::fs::write(
        &grants,
        format!(
            "[plugins.nginx]\ndirectories = [{:?}]\n[plugins.nginx.commands]\nvalidate = {}\nreload = {}\n",
            ngx.join("certs").display().to_string(),
            nginx_args(&["-t"]),
            nginx_args(&["-s", "reload"]),
        ),
    )
    .unwrap();
    let mut agent_cmd = agent_command(&server_url, &bundle, BOOTSTRAP, "e2e-agent", base, &grants);
    agent_cmd
        .env("CERTCTL_POLL_INTERVAL", "5s")
        .env("CERTCTL_HEARTBEAT_INTERVAL", "5s");
    let mut agent = Proc::spawn(agent_cmd, base.join("agent.log"));
    let agent_id = registered_agent(&api, "e2e-agent").await;
    assert!(agent.exited().is_none(), "agent exited: {}", agent.output());

    // Certificate → target mapping; the clock for "within 60 s" starts at creation.
    let (s, t) = api
        .post("targets", &json!({"id": "t-e2e-nginx", "name": "e2e nginx", "type": "nginx", "agent_id": agent_id,
            "config": {"cert_path": ngx.join("certs/site.pem"), "key_path": ngx.join("certs/site.key")}}))
        .await;
    assert_eq!(s, 201, "{t}");
    let started = Instant::now();
    let (s, c) = api.post("certificates", &json!({"id": "mc-e2e-nginx", "name": "e2e", "common_name": "localhost", "sans": ["localhost", "127.0.0.1"], "issuer_id": "iss-local"})).await;
    assert_eq!(s, 201, "{c}");
    let (s, m) = api
        .post(
            "certificates/mc-e2e-nginx/targets",
            &json!({"target_id": "t-e2e-nginx"}),
        )
        .await;
    assert_eq!(s, 201, "{m}");

    let first = wait_for("the first version", Duration::from_secs(60), || {
        latest_version(&api, "mc-e2e-nginx")
    })
    .await;
    let first_fp = first["fingerprint_sha256"].as_str().unwrap().to_owned();
    let served = wait_for(
        "nginx to serve the issued certificate",
        Duration::from_secs(60).saturating_sub(started.elapsed()),
        || async { served_fingerprint(nginx_port).filter(|fp| *fp == first_fp) },
    )
    .await;
    println!(
        "nginx served the issued certificate {:.1} s after creation",
        started.elapsed().as_secs_f64()
    );
    assert_ne!(served, placeholder);

    // The deployment job completed; the key lives only on the agent side, 0600.
    wait_for(
        "deployment job Completed",
        Duration::from_secs(30),
        || async {
            let (_, v) = api
                .get("jobs?certificate_id=mc-e2e-nginx&type=Deployment&status=Completed")
                .await;
            (v["total"].as_i64() == Some(1)).then_some(())
        },
    )
    .await;
    let keys: Vec<_> = std::fs::read_dir(&key_dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".key"))
        .collect();
    assert_eq!(keys.len(), 1, "exactly one key in the agent's key dir");
    assert_eq!(keys[0].metadata().unwrap().mode() & 0o777, 0o600);
    assert_eq!(
        std::fs::metadata(ngx.join("certs/site.key"))
            .unwrap()
            .mode()
            & 0o777,
        0o600
    );
    let cert_file = ngx.join("served.pem");
    std::fs::write(&cert_file, first["pem_chain"].as_str().unwrap()).unwrap();
    let first_pub = public_key_of(&cert_file, false);
    assert_eq!(
        public_key_of(&keys[0].path(), true),
        first_pub,
        "the agent's key matches the certificate"
    );
    let agent_key_pem = std::fs::read_to_string(keys[0].path()).unwrap();
    assert_no_private_key_on_server(&server_dir, &agent_key_pem);
    assert_leaks_are_detected(&server_dir, &agent_key_pem);

    // Renewal while nginx's configuration is broken: `nginx -t` fails, the plugin restores the
    // previous files, the job fails with nginx's own output, and nginx keeps serving.
    let served_pem = std::fs::read(ngx.join("certs/site.pem")).unwrap();
    let served_key = std::fs::read(ngx.join("certs/site.key")).unwrap();
    std::fs::write(ngx.join("extra.conf"), "certctl_not_a_directive on;\n").unwrap();
    let (s, j) = api
        .post("certificates/mc-e2e-nginx/renew", &json!({}))
        .await;
    assert_eq!(s, 202, "{j}");
    let renewed = wait_for("the renewed version", Duration::from_secs(60), || async {
        latest_version(&api, "mc-e2e-nginx")
            .await
            .filter(|v| v["fingerprint_sha256"].as_str() != Some(first_fp.as_str()))
    })
    .await;
    let (failed_job, error) = wait_for(
        "the deployment to fail validation",
        Duration::from_secs(60),
        || async {
            let (_, v) = api
                .get("jobs?certificate_id=mc-e2e-nginx&type=Deployment&sort=-created_at")
                .await;
            let job = &v["data"][0];
            // The retry loop (5 min by default) cannot requeue it within this wait.
            (job["status"] == "Failed").then_some(())?;
            let error = job["last_error"].as_str()?.to_owned();
            Some((job["id"].as_str()?.to_owned(), error))
        },
    )
    .await;
    let (_, job) = api.get(&format!("jobs/{failed_job}")).await;
    assert_eq!(job["status"], "Failed", "{job}");
    assert!(
        error.contains("certctl_not_a_directive"),
        "nginx's output is in the error: {error}"
    );
    // The SDK's rollback note (plugins/sdk/src/lib.rs `rollback`), naming both files.
    let restored = format!(
        "previous files restored ({}, {})",
        ngx.join("certs/site.pem").display(),
        ngx.join("certs/site.key").display()
    );
    let restored_rev = format!(
        "previous files restored ({}, {})",
        ngx.join("certs/site.key").display(),
        ngx.join("certs/site.pem").display()
    );
    assert!(
        error.contains(&restored) || error.contains(&restored_rev),
        "the plugin's rollback note is in the error: {error}"
    );
    assert_eq!(
        std::fs::read(ngx.join("certs/site.pem")).unwrap(),
        served_pem,
        "previous certificate restored"
    );
    assert_eq!(
        std::fs::read(ngx.join("certs/site.key")).unwrap(),
        served_key,
        "previous key restored"
    );
    assert_eq!(
        served_fingerprint(nginx_port).as_deref(),
        Some(first_fp.as_str()),
        "nginx keeps serving the old certificate"
    );
    // Repaired configuration: retrying the job delivers the renewal (the retry loop may
    // already have requeued it, then the explicit retry is a 409).
    std::fs::write(ngx.join("extra.conf"), "").unwrap();
    let (s, r) = api
        .post(&format!("jobs/{failed_job}/retry"), &json!({}))
        .await;
    assert!(s == 200 || s == 409, "{s} {r}");
    let renewed_fp = renewed["fingerprint_sha256"].as_str().unwrap().to_owned();
    wait_for(
        "nginx to serve the renewed certificate",
        Duration::from_secs(60),
        || async { served_fingerprint(nginx_port).filter(|fp| *fp == renewed_fp) },
    )
    .await;
    std::fs::write(&cert_file, renewed["pem_chain"].as_str().unwrap()).unwrap();
    let renewed_pub = public_key_of(&cert_file, false);
    assert_ne!(renewed_pub, first_pub, "renewal uses a new key");
    assert_eq!(
        public_key_of(&ngx.join("certs/site.key"), true),
        renewed_pub
    );
    let agent_key_pem = wait_for("old key pruned", Duration::from_secs(15), || async {
        let keys: Vec<_> = std::fs::read_dir(&key_dir)
            .ok()?
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".key"))
            .collect();
        (keys.len() == 1).then(|| std::fs::read_to_string(keys[0].path()).unwrap())
    })
    .await;
    assert_no_private_key_on_server(&server_dir, &agent_key_pem);
    assert!(agent.exited().is_none(), "agent exited: {}", agent.output());
    assert!(nginx.exited().is_none(), "nginx exited: {}", nginx.output());
}

/// Neither the database nor any file of the server holds an agent's private key — as any
/// single base64 line of its PEM, as its DER (as stored) or as its PKCS#8 DER — and no column
/// of any table holds a PEM private key.
fn assert_no_private_key_on_server(server_dir: &Path, agent_key_pem: &str) {
    let (lines, raw_der, pkcs8_der) = key_forms(agent_key_pem);
    let mut files = 0;
    let mut stack = vec![server_dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let Ok(bytes) = std::fs::read(&path) else {
                continue; // removed meanwhile (a WAL checkpoint, a temp file)
            };
            files += 1;
            for line in &lines {
                assert!(
                    !contains(&bytes, line.as_bytes()),
                    "{} contains a line of the agent's private key PEM",
                    path.display()
                );
            }
            for (what, der) in [("DER", &raw_der), ("PKCS#8 DER", &pkcs8_der)] {
                assert!(
                    !contains(&bytes, der),
                    "{} contains the agent's private key ({what})",
                    path.display()
                );
            }
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            if name.starts_with("certctl.db") {
                assert!(
                    !contains(&bytes, b"PRIVATE KEY"),
                    "{} contains a private key",
                    path.display()
                );
            }
        }
    }
    assert!(
        server_dir.join("certctl.db").exists() && files >= 2,
        "the server's data dir holds its database"
    );
    // Through SQLite itself (WAL included): no column of any table holds a PEM private key.
    let script = "import sqlite3,sys\n\
        c=sqlite3.connect(sys.argv[1])\n\
        tables=[r[0] for r in c.execute(\"SELECT name FROM sqlite_master WHERE type='table'\")]\n\
        hits=[]\n\
        cols=0\n\
        for t in tables:\n\
        \x20for col in [r[1] for r in c.execute('PRAGMA table_info(\"%s\")' % t)]:\n\
        \x20\x20cols+=1\n\
        \x20\x20n=c.execute('SELECT count(*) FROM \"%s\" WHERE CAST(\"%s\" AS TEXT) LIKE ?' % (t,col), ('%PRIVATE KEY%',)).fetchone()[0]\n\
        \x20\x20if n: hits.append('%s.%s' % (t,col))\n\
        print('columns=%d hits=%s' % (cols, ','.join(hits)))\n";
    let (ok, out) = run(Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(server_dir.join("certctl.db")));
    assert!(ok, "{out}");
    let out = out.trim();
    let cols: usize = out
        .strip_prefix("columns=")
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{out}"));
    assert!(cols > 20, "the query saw the schema: {out}");
    assert!(
        out.ends_with("hits="),
        "a column holds a private key: {out}"
    );
}

/// The forms a leaked key could take: each base64 line of its PEM, the DER its PEM holds, and
/// its PKCS#8 DER.
fn key_forms(agent_key_pem: &str) -> (Vec<String>, Vec<u8>, Vec<u8>) {
    let lines: Vec<String> = agent_key_pem
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with("-----") && l.len() >= 20)
        .map(str::to_owned)
        .collect();
    assert!(!lines.is_empty(), "no base64 lines in {agent_key_pem}");
    let work = tempfile::tempdir().unwrap();
    let pem = work.path().join("agent.key");
    std::fs::write(&pem, agent_key_pem).unwrap();
    let der_of = |args: &[&str], name: &str| -> Vec<u8> {
        let out = work.path().join(name);
        let (ok, text) = run(Command::new("openssl")
            .args(args)
            .arg("-in")
            .arg(&pem)
            .arg("-out")
            .arg(&out));
        assert!(ok, "{text}");
        let der = std::fs::read(&out).unwrap();
        assert!(der.len() > 32, "{name}: {} bytes", der.len());
        der
    };
    // The PEM body decoded as is, and the key re-encoded as PKCS#8.
    let raw_der = der_of(&["asn1parse", "-noout"], "raw.der");
    let pkcs8_der = der_of(&["pkey", "-outform", "DER"], "pkcs8.der");
    (lines, raw_der, pkcs8_der)
}

/// The check above is not vacuous: each form of the key, planted in the data dir, trips it.
fn assert_leaks_are_detected(server_dir: &Path, agent_key_pem: &str) {
    let (lines, raw_der, pkcs8_der) = key_forms(agent_key_pem);
    let planted = server_dir.join("planted-leak.bin");
    let middle = lines[lines.len() / 2].clone().into_bytes();
    for (what, bytes) in [
        ("one PEM line", middle),
        ("DER", raw_der),
        ("PKCS#8 DER", pkcs8_der),
    ] {
        let mut wrapped = b"prefix".to_vec();
        wrapped.extend_from_slice(&bytes);
        wrapped.extend_from_slice(b"suffix");
        std::fs::write(&planted, wrapped).unwrap();
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            assert_no_private_key_on_server(server_dir, agent_key_pem)
        }));
        std::fs::remove_file(&planted).unwrap();
        let message = match caught {
            Ok(()) => panic!("a planted {what} went unnoticed"),
            Err(payload) => payload
                .downcast_ref::<String>()
                .cloned()
                .unwrap_or_default(),
        };
        assert!(
            message.contains("planted-leak.bin"),
            "{what}: tripped for another reason: {message}"
        );
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}
