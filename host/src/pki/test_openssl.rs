//! Test support: a scratch directory and the `openssl` CLI as an independent verifier, so
//! the PKI tests do not only check our output with our own parser.

use std::path::PathBuf;
use std::process::Command;

/// A temporary directory in which `openssl` commands run.
pub(crate) struct Workdir {
    dir: tempfile::TempDir,
}

impl Workdir {
    pub(crate) fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    /// Absolute path of `name` inside the directory.
    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub(crate) fn write(&self, name: &str, contents: &str) {
        std::fs::write(self.path(name), contents).expect("write test file");
    }

    pub(crate) fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).expect("read test file")
    }

    /// Runs `openssl args…` in the directory; stdout on success, stdout+stderr on failure.
    pub(crate) fn try_openssl(&self, args: &[&str]) -> Result<String, String> {
        let output = Command::new("openssl")
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .expect("the openssl CLI must be installed to run the PKI tests");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        if output.status.success() {
            Ok(stdout)
        } else {
            Err(format!(
                "openssl {} failed: {stdout}{}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    }

    /// Runs `openssl args…` and panics with its output if it fails.
    pub(crate) fn openssl(&self, args: &[&str]) -> String {
        self.try_openssl(args).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Generates a key and CSR with `openssl req`; `newkey` is e.g. `ec` (P-256) or
    /// `rsa:2048`; `sans` is an `-addext subjectAltName=` value or empty. Returns the CSR PEM.
    pub(crate) fn csr(&self, name: &str, newkey: &str, subject: &str, sans: &str) -> String {
        let key = format!("{name}.key");
        let csr = format!("{name}.csr");
        let mut args = vec!["req", "-new", "-nodes", "-newkey", newkey];
        if newkey == "ec" {
            args.extend(["-pkeyopt", "ec_paramgen_curve:P-256"]);
        }
        args.extend(["-keyout", &key, "-out", &csr, "-subj", subject]);
        let addext = format!("subjectAltName={sans}");
        if !sans.is_empty() {
            args.extend(["-addext", &addext]);
        }
        self.openssl(&args);
        self.read(&csr)
    }
}
