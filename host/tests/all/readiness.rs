//! Acceptance: "Killing the database (stopping PostgreSQL) makes /ready return 503 within
//! 3 s while /health stays 200; when it comes back, requests succeed again without a
//! server restart."
//!
//! The shared server other tests use is never touched: this test runs its own throwaway
//! PostgreSQL cluster (initdb + pg_ctl from /usr/lib/postgresql/*/bin, or `PATH`).

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{ServerBuilder, free_port};

/// A private PostgreSQL cluster in a temp dir; stopped (immediately) and removed on drop.
struct PgCluster {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    running: bool,
    as_postgres_user: bool,
}

/// The directory holding `initdb` and `pg_ctl`: the newest /usr/lib/postgresql/*/bin,
/// else whatever `PATH` has.
fn postgres_bin_dir() -> PathBuf {
    let mut candidates: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("pg_ctl").is_file().then_some((version, bin))
        })
        .collect();
    candidates.sort();
    if let Some((_, bin)) = candidates.pop() {
        return bin;
    }
    let from_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .find(|p| p.join("pg_ctl").is_file() && p.join("initdb").is_file())
    });
    from_path.expect(
        "no PostgreSQL server binaries (initdb, pg_ctl) in /usr/lib/postgresql/*/bin or PATH; \
         the readiness test needs them",
    )
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

impl PgCluster {
    /// `initdb` a fresh cluster and start it on a free loopback port.
    fn start_new() -> Self {
        let bin = postgres_bin_dir();
        let dir = tempfile::tempdir().expect("temp dir");
        let as_postgres_user = running_as_root();
        if as_postgres_user {
            // initdb and postgres refuse to run as root; the cluster belongs to `postgres`.
            run(Command::new("chown").arg("postgres:").arg(dir.path()));
        }
        let mut cluster = Self {
            bin,
            dir,
            port: free_port(),
            running: false,
            as_postgres_user,
        };
        let data = cluster.data_dir();
        run(cluster.pg("initdb").arg("-D").arg(&data).args([
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
        ]));
        cluster.start();
        cluster
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log_file(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }

    /// A command for one of the PostgreSQL binaries, as the `postgres` user when we are root.
    fn pg(&self, tool: &str) -> Command {
        let exe = self.bin.join(tool);
        let mut cmd = if self.as_postgres_user {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        };
        cmd.current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    fn pg_ctl(&self) -> Command {
        let mut cmd = self.pg("pg_ctl");
        cmd.arg("-D").arg(self.data_dir());
        cmd
    }

    fn start(&mut self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let out = self
            .pg_ctl()
            .arg("-o")
            .arg(options)
            .arg("-l")
            .arg(self.log_file())
            .args(["-w", "-t", "30", "start"])
            .output()
            .expect("run pg_ctl start");
        assert!(
            out.status.success(),
            "pg_ctl start failed: {}\n{}\n--- postgres log ---\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.logs()
        );
        self.running = true;
    }

    /// `pg_ctl stop -m immediate`: the closest thing to pulling the plug.
    fn stop_immediate(&mut self) {
        self.running = false;
        run(self.pg_ctl().args(["-m", "immediate", "-w", "stop"]));
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(self.log_file()).unwrap_or_default()
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if self.running {
            let _ = self
                .pg_ctl()
                .args(["-m", "immediate", "-w", "stop"])
                .output();
        }
    }
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_follows_the_database_and_recovers_without_restart() {
    let mut pg = PgCluster::start_new();
    let server = ServerBuilder::new()
        .env("CERTCTL_DATABASE_URL", &pg.url())
        .start()
        .await;
    let api = server.admin();

    // Up: ready, and writes work.
    let r = api.get("/ready").await;
    assert_eq!(r.status, 200, "{:?}\n{}", r.body, server.logs());
    assert_eq!(r.body, json!({"status": "ready"}));
    let r = api.post("teams", &json!({"name": "before outage"})).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let first_id = r.body["id"].as_str().unwrap().to_owned();

    // Down: /ready says so within 3 s of the stop; /health does not care.
    let stopped_at = Instant::now();
    pg.stop_immediate();
    let stop_took = stopped_at.elapsed();
    let (status, body) = loop {
        let r = api.get("/ready").await;
        if r.status != 200 {
            break (r.status, r.body);
        }
        assert!(
            stopped_at.elapsed() < Duration::from_secs(3),
            "/ready still 200 {:?} after stopping PostgreSQL",
            stopped_at.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let detected = stopped_at.elapsed();
    eprintln!("pg_ctl stop took {stop_took:?}; /ready answered {status} after {detected:?}");
    assert_eq!(status, 503, "{body:?}");
    assert_eq!(body, json!({"status": "db_unavailable"}));
    assert!(
        detected <= Duration::from_secs(3),
        "/ready took {detected:?} to report the outage (limit 3 s)"
    );

    let t = Instant::now();
    let r = api.get("/health").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "/health waited on the database ({:?})",
        t.elapsed()
    );

    // API calls fail cleanly with 503, not 500.
    let r = api.get("teams").await;
    assert_eq!(r.status, 503, "{:?}", r.body);
    assert_eq!(r.body["error"]["code"], json!("service_unavailable"));
    let r = api.post("teams", &json!({"name": "during outage"})).await;
    assert_eq!(r.status, 503, "{:?}", r.body);
    let r = api.get("/ready").await;
    assert_eq!(r.status, 503, "{:?}", r.body);

    // Back: the same server process recovers on its own.
    pg.start();
    let restarted_at = Instant::now();
    loop {
        let r = api.get("/ready").await;
        if r.status == 200 {
            assert_eq!(r.body, json!({"status": "ready"}));
            break;
        }
        assert!(
            restarted_at.elapsed() < Duration::from_secs(15),
            "/ready still {} {:?} 15 s after PostgreSQL came back\n{}",
            r.status,
            r.body,
            server.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "/ready recovered {:?} after restart",
        restarted_at.elapsed()
    );

    let r = api.get("teams").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let names: Vec<&str> = r.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["before outage"],
        "nothing written during the outage"
    );
    let r = api.post("teams", &json!({"name": "after outage"})).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let r = api.get(&format!("teams/{first_id}")).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = api.get("teams").await;
    assert_eq!(r.body["total"], json!(2));
    let r = api.get("/health").await;
    assert_eq!(r.status, 200);
}
