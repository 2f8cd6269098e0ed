//! Throwaway certificates made with the openssl CLI (which `scripts/test` installs).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// `openssl req` arguments for a fresh P-256 key, unencrypted, valid for a day.
const P256_ONE_DAY: [&str; 7] = [
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
    "-days",
    "1",
];

/// Runs `cmd` (an openssl invocation), asserting it succeeds.
pub fn openssl(cmd: &mut Command) {
    let output = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("run openssl");
    assert!(
        output.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A self-signed P-256 certificate for `/CN=<cn>` (`cert`) and its key (`key`).
pub fn self_signed(key: &Path, cert: &Path, cn: &str) {
    openssl(
        Command::new("openssl")
            .args(["req", "-x509"])
            .args(P256_ONE_DAY)
            .arg("-subj")
            .arg(format!("/CN={cn}"))
            .arg("-keyout")
            .arg(key)
            .arg("-out")
            .arg(cert),
    );
}

/// A throwaway CA (`ca.pem`) and a server certificate it signed for 127.0.0.1
/// (`cert.pem`, `key.pem`) in `dir`; answers (ca, cert, key).
pub fn throwaway_ca(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let (ca, ca_key) = (dir.join("ca.pem"), dir.join("ca.key"));
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    self_signed(&ca_key, &ca, "certctl test SMTP CA");
    openssl(
        Command::new("openssl")
            .args(["req", "-x509", "-CA"])
            .arg(&ca)
            .arg("-CAkey")
            .arg(&ca_key)
            .args(P256_ONE_DAY)
            .args(["-subj", "/CN=127.0.0.1"])
            .args(["-addext", "subjectAltName=IP:127.0.0.1"])
            .args(["-addext", "basicConstraints=critical,CA:FALSE"])
            .args(["-addext", "extendedKeyUsage=serverAuth", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&cert),
    );
    (ca, cert, key)
}
