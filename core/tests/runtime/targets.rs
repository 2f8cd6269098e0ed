//! The first-party target plugins' file logic, through the runtime, in temp dirs:
//! modes, layouts, validate-before-reload and rollback.

use std::path::Path;

use certctl_core::runtime::{ConnectorErrorKind, RuntimeError, TargetPlugin, ValidationRequest};
use serde_json::json;

use crate::support::{
    CHAIN, KEY, LEAF, argv, grant, load, mode, plugin_dir, read, request, runtime, script,
};

/// Plugin `id` with `dir` granted and `validate`/`reload` granted as given.
fn target(
    id: &str,
    dir: &Path,
    validate: Option<Vec<String>>,
    reload: Option<Vec<String>>,
) -> TargetPlugin {
    let mut commands = Vec::new();
    if let Some(v) = validate {
        commands.push(("validate", v));
    }
    if let Some(r) = reload {
        commands.push(("reload", r));
    }
    let plugins = plugin_dir(&[id]);
    load(&runtime(), plugins.path(), &grant(id, &[dir], &commands))
        .target(id)
        .expect("target")
}

/// A reload script that appends a line to `dir/reload.log`.
fn recording_reload(dir: &Path) -> Vec<String> {
    script(
        dir,
        "reload.sh",
        &format!("echo reloaded >> {}/reload.log", dir.display()),
    )
}

fn reloads(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("reload.log"))
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

#[tokio::test]
async fn nginx_writes_full_chain_and_key_with_modes_then_validates_and_reloads() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let nginx = target(
        "nginx",
        dir,
        Some(argv(&["/bin/true"])),
        Some(recording_reload(dir)),
    );
    let config =
        json!({"cert_path": dir.join("certs/site.pem"), "key_path": dir.join("certs/site.key")});

    let out = nginx
        .deploy(request(config.clone(), LEAF))
        .await
        .expect("deploy");
    assert_eq!(out.message, "wrote 2 file(s); validated; reloaded");
    assert_eq!(out.commands_run, ["validate", "reload"]);
    assert_eq!(
        out.files_written,
        [
            dir.join("certs/site.pem").display().to_string(),
            dir.join("certs/site.key").display().to_string()
        ]
    );
    assert_eq!(read(&dir.join("certs/site.pem")), format!("{LEAF}{CHAIN}"));
    assert_eq!(read(&dir.join("certs/site.key")), KEY);
    assert_eq!(mode(&dir.join("certs/site.pem")), 0o644);
    assert_eq!(mode(&dir.join("certs/site.key")), 0o600);
    assert_eq!(reloads(dir), 1);

    let check = nginx
        .validate_deployment(ValidationRequest {
            certificate_pem: LEAF.into(),
            config_json: config.to_string(),
            ..ValidationRequest::default()
        })
        .await
        .expect("validate deployment");
    assert!(check.valid, "{}", check.message);
}

#[tokio::test]
async fn nginx_with_a_chain_path_writes_three_files() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let nginx = target("nginx", dir, None, None);
    let config = json!({
        "cert_path": dir.join("cert.pem"),
        "chain_path": dir.join("chain.pem"),
        "key_path": dir.join("key.pem"),
    });
    let out = nginx.deploy(request(config, LEAF)).await.expect("deploy");
    assert_eq!(
        out.message,
        "wrote 3 file(s); validate not granted, skipped; reload not granted, skipped"
    );
    assert!(out.commands_run.is_empty());
    assert_eq!(read(&dir.join("cert.pem")), LEAF);
    assert_eq!(read(&dir.join("chain.pem")), CHAIN);
    assert_eq!(mode(&dir.join("chain.pem")), 0o644);
    assert_eq!(mode(&dir.join("key.pem")), 0o600);
}

#[tokio::test]
async fn a_failed_validation_restores_the_previous_files_and_skips_reload() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let config = json!({"cert_path": dir.join("site.pem"), "key_path": dir.join("site.key")});

    // A first, good deployment.
    let good = target(
        "nginx",
        dir,
        Some(argv(&["/bin/true"])),
        Some(recording_reload(dir)),
    );
    good.deploy(request(config.clone(), LEAF))
        .await
        .expect("first deploy");
    assert_eq!(reloads(dir), 1);

    // The second one fails validation: nginx -t's complaint comes back, the files
    // are the first deployment's again, and reload does not run.
    let failing = script(
        dir,
        "validate.sh",
        "echo 'nginx: [emerg] cannot load certificate' >&2; exit 1",
    );
    let bad = target("nginx", dir, Some(failing), Some(recording_reload(dir)));
    let newer = LEAF.replace("TEVBRg==", "TkVXRVI=");
    let config_with_chain = json!({
        "cert_path": dir.join("site.pem"),
        "key_path": dir.join("site.key"),
        "chain_path": dir.join("chain.pem"),
    });
    let err = bad
        .deploy(request(config_with_chain, &newer))
        .await
        .unwrap_err();
    let RuntimeError::Connector { kind, message, .. } = &err else {
        panic!("expected the plugin's error, got {err:?}");
    };
    assert_eq!(*kind, ConnectorErrorKind::CommandFailed);
    assert!(
        message.starts_with("validation failed (exit status 1); previous files restored ("),
        "{message}"
    );
    assert!(
        message.ends_with("; reload skipped. Output: nginx: [emerg] cannot load certificate"),
        "{message}"
    );

    assert_eq!(read(&dir.join("site.pem")), format!("{LEAF}{CHAIN}"));
    assert_eq!(read(&dir.join("site.key")), KEY);
    assert_eq!(mode(&dir.join("site.key")), 0o600);
    assert!(
        !dir.join("chain.pem").exists(),
        "a file the failed deployment created is removed"
    );
    assert_eq!(reloads(dir), 1, "reload did not run again");
}

#[tokio::test]
async fn haproxy_writes_one_combined_pem_with_the_key_last() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let haproxy = target("haproxy", dir, None, Some(recording_reload(dir)));
    let pem = dir.join("haproxy/site.pem");
    let out = haproxy
        .deploy(request(json!({"pem_path": pem}), LEAF))
        .await
        .expect("deploy");
    assert_eq!(out.commands_run, ["reload"]);
    assert_eq!(read(&pem), format!("{LEAF}{CHAIN}{KEY}"));
    assert_eq!(mode(&pem), 0o600, "the combined file holds the key");
}

#[tokio::test]
async fn traefik_writes_files_and_a_dynamic_configuration_snippet() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let traefik = target("traefik", dir, None, None);
    let config = json!({"cert_dir": dir, "cert_file": "site.crt", "key_file": "site.key", "dynamic_config_file": "certctl.toml"});
    let out = traefik.deploy(request(config, LEAF)).await.expect("deploy");
    assert_eq!(out.files_written.len(), 3);
    assert_eq!(read(&dir.join("site.crt")), format!("{LEAF}{CHAIN}"));
    assert_eq!(mode(&dir.join("site.key")), 0o600);
    assert_eq!(
        read(&dir.join("certctl.toml")),
        format!(
            "# Written by certctl for target t-web (certificate mc-web). Do not edit.\n\
             [[tls.certificates]]\n  certFile = \"{d}/site.crt\"\n  keyFile = \"{d}/site.key\"\n",
            d = dir.display()
        )
    );
    assert_eq!(mode(&dir.join("certctl.toml")), 0o644);
}

#[tokio::test]
async fn envoy_writes_an_sds_resource_naming_the_files() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let envoy = target("envoy", dir, None, None);
    let out = envoy
        .deploy(request(
            json!({"cert_dir": dir, "sds_config": true, "chain_filename": "chain.pem"}),
            LEAF,
        ))
        .await
        .expect("deploy");
    assert_eq!(out.files_written.len(), 4);
    assert_eq!(read(&dir.join("cert.pem")), LEAF);
    assert_eq!(read(&dir.join("chain.pem")), CHAIN);
    let sds: serde_json::Value = serde_json::from_str(&read(&dir.join("sds.json"))).expect("json");
    let secret = &sds["resources"][0];
    assert_eq!(secret["name"], "server_cert");
    assert_eq!(
        secret["tls_certificate"]["certificate_chain"]["filename"],
        dir.join("cert.pem").display().to_string()
    );
    assert_eq!(
        secret["tls_certificate"]["private_key"]["filename"],
        dir.join("key.pem").display().to_string()
    );
}

#[tokio::test]
async fn mail_uses_given_paths_and_its_defaults_need_a_grant() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let mail = target(
        "mail",
        dir,
        Some(argv(&["/bin/true"])),
        Some(recording_reload(dir)),
    );
    let config = json!({"mode": "dovecot", "cert_path": dir.join("dovecot.pem"), "key_path": dir.join("dovecot.key")});
    mail.deploy(request(config, LEAF)).await.expect("deploy");
    assert_eq!(mode(&dir.join("dovecot.key")), 0o600);
    assert_eq!(reloads(dir), 1);

    // The default paths (/etc/dovecot/certs/…) are not granted here.
    let err = mail
        .deploy(request(json!({"mode": "dovecot"}), LEAF))
        .await
        .unwrap_err();
    assert!(matches!(err, RuntimeError::Denied { .. }), "{err:?}");
    assert!(
        err.to_string().contains("/etc/dovecot/certs/cert.pem"),
        "{err}"
    );
}

#[tokio::test]
async fn caddy_file_mode_writes_cert_and_key_and_keeps_modes_apart() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let caddy = target("caddy", dir, None, None);
    caddy
        .deploy(request(json!({"cert_dir": dir}), LEAF))
        .await
        .expect("file mode");
    assert_eq!(mode(&dir.join("key.pem")), 0o600);
    assert_eq!(read(&dir.join("cert.pem")), format!("{LEAF}{CHAIN}"));
    // API settings in file mode, file settings in API mode: refused, not ignored
    // (API mode itself is in caddy_api.rs).
    for config in [
        json!({"cert_dir": dir, "admin_api": "http://localhost:2019"}),
        json!({"mode": "api", "cert_dir": dir}),
        json!({"mode": "api", "admin_api": "localhost:2019"}),
        json!({"mode": "api", "certificate_id": "a/b"}),
    ] {
        let err = caddy.validate_config(config.to_string()).await.unwrap_err();
        assert!(
            matches!(
                &err,
                RuntimeError::Connector {
                    kind: ConnectorErrorKind::InvalidConfig,
                    ..
                }
            ),
            "{config}: {err:?}"
        );
    }
}

#[tokio::test]
async fn configurations_are_validated_and_commands_are_not_configuration() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let nginx = target("nginx", tmp.path(), None, None);
    nginx
        .validate_config(
            json!({"cert_path": "/etc/nginx/certs/a.pem", "key_path": "/etc/nginx/certs/a.key"})
                .to_string(),
        )
        .await
        .expect("valid");

    let err = nginx
        .validate_config(
            json!({"cert_path": "/a.pem", "key_path": "/a.key", "reload_command": "rm -rf /"})
                .to_string(),
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "plugin `nginx` failed (invalid-config): field `reload_command` is not accepted: commands \
         are granted by the operator in the grants file (commands.reload = [\"program\", \"arg\", \
         …]), not configured per target"
    );
    let err = nginx
        .validate_config(json!({"cert_path": "certs/a.pem", "key_path": "/a.key"}).to_string())
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "plugin `nginx` failed (invalid-config): cert_path: `certs/a.pem` must be an absolute path"
    );
    let err = nginx
        .validate_config("{\"cert_path\": \"/a.pem\"}")
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "plugin `nginx` failed (invalid-config): configuration: missing field `key_path`"
    );
    let err = nginx
        .deploy(request(
            json!({"cert_path": tmp.path().join("a"), "key_path": tmp.path().join("b")}),
            "not a pem",
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            RuntimeError::Connector {
                kind: ConnectorErrorKind::InvalidRequest,
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn the_template_plugin_deploys() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let template = target("template", dir, None, Some(recording_reload(dir)));
    let out = template
        .deploy(request(json!({"dir": dir}), LEAF))
        .await
        .expect("deploy");
    assert_eq!(out.commands_run, ["reload"]);
    assert_eq!(mode(&dir.join("key.pem")), 0o600);
    assert_eq!(mode(&dir.join("cert.pem")), 0o644);
}
