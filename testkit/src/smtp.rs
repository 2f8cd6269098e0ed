//! A real SMTP server for the e-mail notifier tests: Python's aiosmtpd, recording each
//! message it accepts as JSON.
//!
//! aiosmtpd comes from the interpreter named by `CERTCTL_AIOSMTPD_PYTHON` (default
//! `target/pyenv/bin/python`, which `scripts/test` creates). When it is missing,
//! [`SmtpServer::start`] panics if `CERTCTL_REQUIRE_AIOSMTPD` is set (as `scripts/test`
//! does) and otherwise answers `None` after a loud message, so the test can skip.

use std::io::{BufRead as _, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::workspace_root;

/// The aiosmtpd script: a Controller on 127.0.0.1:<port> that accepts AUTH
/// (user `certctl`, password `s3cret`, also without TLS) and writes each message,
/// parsed by Python's `email` package, as JSON into <dir>. Given `<cert> <key>` it
/// offers STARTTLS and requires it before AUTH and mail.
const SMTP_SERVER: &str = r#"
import email, json, os, sys, time
from email import policy
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

port, out = int(sys.argv[1]), sys.argv[2]

def authenticator(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and auth_data.login == b"certctl" \
        and auth_data.password == b"s3cret"
    if not ok:
        return AuthResult(success=False, handled=False)
    return AuthResult(success=True, auth_data=auth_data.login.decode())

class Capture:
    count = 0
    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.content, policy=policy.default)
        text = msg.get_body(preferencelist=("plain",))
        html = msg.get_body(preferencelist=("html",))
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "auth_login": session.auth_data if session.authenticated else None,
            "tls": session.ssl is not None,
            "subject": str(msg["subject"]),
            "from": str(msg["from"]),
            "to": str(msg["to"]),
            "has_date": msg["date"] is not None and msg["date"].datetime is not None,
            "message_id": str(msg["message-id"]),
            "content_type": msg.get_content_type(),
            "text": text.get_content() if text is not None else None,
            "html": html.get_content() if html is not None and html.get_content_type() == "text/html" else None,
        }
        Capture.count += 1
        path = os.path.join(out, "%03d.json" % Capture.count)
        with open(path + ".tmp", "w") as f:
            json.dump(record, f)
        os.rename(path + ".tmp", path)
        return "250 Message accepted for delivery"

options = {"authenticator": authenticator, "auth_require_tls": False}
if len(sys.argv) > 3:
    # With a certificate: STARTTLS is offered and required before AUTH or mail.
    import ssl
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(sys.argv[3], sys.argv[4])
    options.update(tls_context=context, require_starttls=True, auth_require_tls=True)
controller = Controller(Capture(), hostname="127.0.0.1", port=port, **options)
controller.start()
print("ready", flush=True)
while True:
    time.sleep(3600)
"#;

/// A running aiosmtpd, stopped on drop.
pub struct SmtpServer {
    child: Child,
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    out: tempfile::TempDir,
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl SmtpServer {
    /// Starts aiosmtpd, or returns `None` (after saying so loudly) when it is not
    /// installed and `CERTCTL_REQUIRE_AIOSMTPD` is unset.
    pub fn start() -> Option<Self> {
        Self::start_with(&[])
    }

    /// [`SmtpServer::start`] with extra script arguments (`<cert> <key>`: offer and
    /// require STARTTLS with that certificate).
    pub fn start_with(extra: &[&Path]) -> Option<Self> {
        let python = std::env::var_os("CERTCTL_AIOSMTPD_PYTHON")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace_root().join("target/pyenv/bin/python"));
        let available = Command::new(&python)
            .args(["-c", "import aiosmtpd"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !available {
            let message = format!(
                "aiosmtpd is not available through {} (set CERTCTL_AIOSMTPD_PYTHON, or run \
                 `python3 -m venv target/pyenv && target/pyenv/bin/pip install aiosmtpd`; \
                 scripts/test does this)",
                python.display()
            );
            if std::env::var_os("CERTCTL_REQUIRE_AIOSMTPD").is_some() {
                panic!("{message}");
            }
            eprintln!("\n!!!!! SKIPPING the e-mail notifier test: {message} !!!!!\n");
            return None;
        }
        let out = tempfile::tempdir().expect("tempdir");
        let script = out.path().join("smtp_server.py");
        std::fs::write(&script, SMTP_SERVER).expect("write script");
        let messages = out.path().join("messages");
        std::fs::create_dir(&messages).expect("mkdir");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let mut child = Command::new(&python)
            .arg(&script)
            .arg(port.to_string())
            .arg(&messages)
            .args(extra)
            .stdout(Stdio::piped())
            .spawn()
            .expect("start aiosmtpd");
        let mut ready = String::new();
        let stdout = child.stdout.take().expect("stdout");
        BufReader::new(stdout)
            .read_line(&mut ready)
            .expect("read readiness");
        assert_eq!(ready.trim(), "ready", "aiosmtpd did not start");
        Some(Self { child, port, out })
    }

    /// `127.0.0.1:<port>`, as a host grant names it.
    pub fn authority(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The `n`-th received message (1-based), waiting up to 10 s for it.
    pub fn message(&self, n: usize) -> Value {
        self.message_within(n, Duration::from_secs(10))
            .unwrap_or_else(|| panic!("message {n} did not arrive"))
    }

    /// The `n`-th received message if it arrives within `wait`.
    pub fn message_within(&self, n: usize, wait: Duration) -> Option<Value> {
        let path = self.message_path(n);
        let start = Instant::now();
        loop {
            if let Ok(text) = std::fs::read_to_string(&path) {
                return Some(serde_json::from_str(&text).expect("message JSON"));
            }
            if start.elapsed() >= wait {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Where the `n`-th received message (1-based) is written.
    pub fn message_path(&self, n: usize) -> PathBuf {
        self.out
            .path()
            .join("messages")
            .join(format!("{n:03}.json"))
    }
}
