//! Secrets in connector configs: the ACME issuer's `eab_hmac_key` and a plugin target's
//! `writeOnly` field are encrypted at rest under `CERTCTL_CONFIG_ENCRYPTION_KEY` (the raw
//! database holds neither the value nor its base64), are `"***"` in every answer and audit
//! event, keep their value when `"***"` is sent back, and reach the agent in clear. A
//! wrong or missing key stops the server with a message naming the variable.
//! (Decryption for the ACME connector itself is proven by `acme::eab_right_key_…`, which
//! runs with a key.)

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use certctl_testkit::plugins::install;
use serde_json::{Value, json};
use sqlx::Row as _;

use crate::support::{Api, ServerBuilder, TestServer, eventually};

/// The passphrase test servers encrypt with.
pub(crate) const KEY: &str = "test config encryption key 0123";
const KEY_VAR: &str = "CERTCTL_CONFIG_ENCRYPTION_KEY";
/// An EAB MAC key (base64url, as CAs hand them out).
const EAB_HMAC: &str = "c2VjcmV0LWVhYi1obWFjLWtleS1mb3ItdGVzdHMtMDEyMzQ1";
/// A second one, for updates.
const EAB_HMAC_2: &str = "YW5vdGhlci1lYWItaG1hYy1rZXktZm9yLXRlc3RzLTY3ODk";
/// The template plugin's `api_token` (marked `writeOnly` in its schema).
const TOKEN: &str = "tok-3f9c2a7e-target-secret-value";

/// Every form a careless store could leave the value in: itself, and its base64
/// (standard and URL-safe, at each of the three alignments it can take inside a longer
/// base64 text, so a base64'd JSON document containing it is caught too).
fn traces(value: &str) -> Vec<String> {
    let mut out = vec![value.to_owned()];
    for prefix in ["", "x", "xx"] {
        let bytes = format!("{prefix}{value}");
        for engine in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
            let encoded = engine.encode(bytes.as_bytes());
            // Drop the characters that also encode the prefix or whatever follows.
            let start = if prefix.is_empty() { 0 } else { 4 };
            out.push(encoded[start..encoded.len() - 4].to_owned());
        }
    }
    out
}

/// Asserts no file of the SQLite database (main file, WAL, shared memory) holds `value`
/// in any of its [`traces`].
fn assert_not_in_database(data_dir: &Path, value: &str) {
    let mut files = 0;
    for name in ["certctl.db", "certctl.db-wal", "certctl.db-shm"] {
        let Ok(bytes) = std::fs::read(data_dir.join(name)) else {
            continue;
        };
        files += 1;
        for trace in traces(value) {
            assert!(
                !bytes.windows(trace.len()).any(|w| w == trace.as_bytes()),
                "{name} holds {trace:?} (a trace of {value:?})"
            );
        }
    }
    assert!(files > 0, "no database files in {}", data_dir.display());
}

/// The raw `config` column of a row, as stored.
async fn raw_config(data_dir: &Path, table: &str, id: &str) -> Value {
    let url = format!("sqlite://{}?mode=ro", data_dir.join("certctl.db").display());
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    let row = sqlx::query(&format!("SELECT config FROM {table} WHERE id = ?"))
        .bind(id)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    serde_json::from_str(&row.try_get::<String, _>(0).unwrap()).unwrap()
}

async fn created(api: &Api, path: &str, body: Value) -> Value {
    let r = api.post(path, &body).await;
    assert_eq!(r.status, 201, "POST {path} {body}: {:?}", r.body);
    r.body
}

async fn get_ok(api: &Api, path: &str) -> Value {
    let r = api.get(path).await;
    assert_eq!(r.status, 200, "GET {path}: {:?}", r.body);
    r.body
}

async fn put_ok(api: &Api, path: &str, body: Value) -> Value {
    let r = api.put(path, &body).await;
    assert_eq!(r.status, 200, "PUT {path} {body}: {:?}", r.body);
    r.body
}

/// Every API view of one record (`GET` one, `fields=` projection, the list) shows
/// `config.<key>` as `"***"` and never the value.
async fn assert_masked_everywhere(api: &Api, path: &str, id: &str, key: &str, value: &str) {
    let one = get_ok(api, &format!("{path}/{id}")).await;
    assert_eq!(one["config"][key], "***", "{one}");
    let projected = get_ok(api, &format!("{path}/{id}?fields=id,config")).await;
    assert_eq!(projected["config"][key], "***", "{projected}");
    let list = get_ok(api, &format!("{path}?per_page=100")).await;
    let row = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id)
        .unwrap_or_else(|| panic!("{id} not listed: {list}"));
    assert_eq!(row["config"][key], "***", "{row}");
    let listed = get_ok(api, &format!("{path}?per_page=100&fields=id,config")).await;
    for body in [one, projected, list, listed] {
        assert!(!body.to_string().contains(value), "{body}");
    }
}

/// The record's audit events; none holds the value.
async fn audit_of(api: &Api, id: &str, value: &str) -> Vec<Value> {
    let events = get_ok(api, &format!("audit?resource_id={id}&per_page=100")).await;
    assert!(!events.to_string().contains(value), "{events}");
    events["data"].as_array().unwrap().clone()
}

fn event<'a>(events: &'a [Value], action: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["action"] == action).collect()
}

fn is_sealed(v: &Value) -> bool {
    v.as_str().is_some_and(|s| s.starts_with("enc:v1:"))
}

#[tokio::test]
async fn acme_eab_hmac_key_is_encrypted_at_rest_and_masked_in_answers_and_audit() {
    // The directory is never fetched; the outbound guard still wants the operator's grant
    // for a loopback address on port 9 before it accepts the issuer.
    let server = ServerBuilder::new()
        .env(KEY_VAR, KEY)
        .env("CERTCTL_OUTBOUND_ALLOW", "127.0.0.1:9")
        .start()
        .await;
    let api = server.admin();
    let config = json!({
        "directory_url": "https://127.0.0.1:9/directory",
        "terms_of_service_agreed": true,
        "eab_kid": "kid-1",
        "eab_hmac_key": EAB_HMAC,
    });
    let issuer = created(
        &api,
        "issuers",
        json!({"name": "eab", "type": "acme", "config": config}),
    )
    .await;
    assert_eq!(issuer["config"]["eab_hmac_key"], "***", "{issuer}");
    assert_eq!(issuer["config"]["eab_kid"], "kid-1", "not secret: shown");
    let id = issuer["id"].as_str().unwrap().to_owned();
    assert_masked_everywhere(&api, "issuers", &id, "eab_hmac_key", EAB_HMAC).await;

    let stored = raw_config(server.data_dir.path(), "issuers", &id).await;
    assert!(is_sealed(&stored["eab_hmac_key"]), "{stored}");
    assert_eq!(stored["eab_kid"], "kid-1");
    assert_not_in_database(server.data_dir.path(), EAB_HMAC);

    // The config sent back as read ("***" included) changes nothing.
    let mut back = issuer.clone();
    back.as_object_mut()
        .unwrap()
        .retain(|k, _| k != "created_at" && k != "updated_at");
    let unchanged = put_ok(&api, &format!("issuers/{id}"), back).await;
    assert_eq!(
        unchanged["updated_at"], issuer["updated_at"],
        "no-op update"
    );
    assert_eq!(
        raw_config(server.data_dir.path(), "issuers", &id).await,
        stored,
        "the stored ciphertext is kept"
    );

    // A "***" alongside a real change keeps the secret and still validates.
    let mut changed_config = config.clone();
    changed_config["eab_hmac_key"] = json!("***");
    changed_config["eab_kid"] = json!("kid-2");
    let updated = put_ok(
        &api,
        &format!("issuers/{id}"),
        json!({"config": changed_config}),
    )
    .await;
    assert_eq!(updated["config"]["eab_hmac_key"], "***", "{updated}");
    assert_eq!(updated["config"]["eab_kid"], "kid-2");
    let after = raw_config(server.data_dir.path(), "issuers", &id).await;
    assert_eq!(after["eab_hmac_key"], stored["eab_hmac_key"], "kept");

    // A new secret value: sealed anew, masked, and named (not shown) in the audit diff.
    let mut new_config = changed_config.clone();
    new_config["eab_hmac_key"] = json!(EAB_HMAC_2);
    let updated = put_ok(
        &api,
        &format!("issuers/{id}"),
        json!({"config": new_config}),
    )
    .await;
    assert_eq!(updated["config"]["eab_hmac_key"], "***", "{updated}");
    let after = raw_config(server.data_dir.path(), "issuers", &id).await;
    assert!(is_sealed(&after["eab_hmac_key"]));
    assert_ne!(after["eab_hmac_key"], stored["eab_hmac_key"]);
    assert_not_in_database(server.data_dir.path(), EAB_HMAC_2);
    assert_masked_everywhere(&api, "issuers", &id, "eab_hmac_key", EAB_HMAC_2).await;

    // The alias is a secret too.
    let alias = created(
        &api,
        "issuers",
        json!({"name": "eab-alias", "type": "acme", "config": {
            "directory_url": "https://127.0.0.1:9/directory", "terms_of_service_agreed": true,
            "eab_kid": "kid-3", "eab_hmac": EAB_HMAC,
        }}),
    )
    .await;
    assert_eq!(alias["config"]["eab_hmac"], "***", "{alias}");

    // Audit: the creation shows "***", the updates name the changed key without values.
    let events = audit_of(&api, &id, EAB_HMAC).await;
    assert!(!Value::from(events.clone()).to_string().contains(EAB_HMAC_2));
    let created_events = event(&events, "issuer_created");
    assert_eq!(created_events.len(), 1, "{events:?}");
    assert_eq!(
        created_events[0]["details"]["config"]["eab_hmac_key"],
        "***"
    );
    assert_eq!(created_events[0]["details"]["config"]["eab_kid"], "kid-1");
    let updates = event(&events, "issuer_updated");
    assert_eq!(updates.len(), 2, "the no-op PUT is not audited: {events:?}");
    let diffs: Vec<&Value> = updates
        .iter()
        .map(|e| &e["details"]["changes"]["config"])
        .collect();
    assert!(
        diffs
            .iter()
            .any(|d| d["eab_hmac_key"] == json!({"from": "***", "to": "***"})
                && d["eab_kid"].is_null()),
        "the secret's change is named, its values masked: {diffs:?}"
    );
    assert!(
        diffs
            .iter()
            .any(|d| d["eab_kid"] == json!({"from": "kid-1", "to": "kid-2"})
                && d["eab_hmac_key"].is_null()),
        "{diffs:?}"
    );

    // "***" with nothing stored, and values that look encrypted, are refused.
    let r = api
        .post(
            "issuers",
            &json!({"name": "x", "type": "acme", "config": {
                "directory_url": "https://127.0.0.1:9/directory", "terms_of_service_agreed": true,
                "eab_kid": "k", "eab_hmac_key": "***"}}),
        )
        .await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    assert!(
        r.body.to_string().contains("none is stored"),
        "{:?}",
        r.body
    );
    let r = api
        .put(
            &format!("issuers/{id}"),
            &json!({"config": {"directory_url": "https://127.0.0.1:9/directory",
                "eab_kid": "k", "eab_hmac_key": stored["eab_hmac_key"]}}),
        )
        .await;
    assert_eq!(r.status, 400, "a ciphertext is not a value: {:?}", r.body);
}

/// A server (key `key`, or none) with the template plugin — whose `api_token` is
/// `writeOnly` — in its plugin directory, generating keys itself so a renewal yields a
/// deployment job without an agent CSR.
async fn template_server(plugins: &Path, key: Option<&str>) -> TestServer {
    install(plugins, "template", "template");
    let builder = ServerBuilder::new()
        .env("CERTCTL_PLUGIN_DIR", plugins.to_str().unwrap())
        .env("CERTCTL_KEYGEN_MODE", "server");
    match key {
        Some(key) => builder.env(KEY_VAR, key),
        None => builder,
    }
    .start()
    .await
}

/// The deployment work items of `agent`, fetched as the agent does.
async fn deployments(api: &Api, agent: &str) -> Vec<Value> {
    let work = get_ok(api, &format!("agents/{agent}/work")).await;
    work["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["type"] == "Deployment")
        .cloned()
        .collect()
}

/// An agent, a template target holding [`TOKEN`] for it, and a certificate mapped to the
/// target whose renewal queued a deployment; answers (agent, target, certificate).
async fn deployment_setup(api: &Api) -> (String, Value, String) {
    let agent = created(api, "agents", json!({"name": "web-1"})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let target = created(
        api,
        "targets",
        json!({"name": "tpl", "type": "template", "agent_id": agent,
               "config": {"dir": "/srv/tls", "api_token": TOKEN}}),
    )
    .await;
    let cert = created(
        api,
        "certificates",
        json!({"name": "app", "common_name": "app.example", "issuer_id": "iss-local", "sans": ["app.example"]}),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    eventually("the certificate to be issued", async || {
        let c = get_ok(api, &format!("certificates/{cert}")).await;
        if c["status"] == "Active" {
            Ok(())
        } else {
            Err(c.to_string())
        }
    })
    .await;
    let r = api
        .post(
            &format!("certificates/{cert}/targets"),
            &json!({"target_id": target["id"]}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let r = api
        .post(&format!("certificates/{cert}/renew"), &json!({}))
        .await;
    assert!(r.status < 300, "renew: {:?}", r.body);
    eventually("the deployment job", async || {
        let d = deployments(api, &agent).await;
        if d.is_empty() {
            Err("no deployment yet".into())
        } else {
            Ok(())
        }
    })
    .await;
    (agent, target, cert)
}

#[tokio::test]
async fn plugin_write_only_field_is_encrypted_masked_and_reaches_the_agent_in_clear() {
    let tmp = tempfile::tempdir().unwrap();
    let server = template_server(&tmp.path().join("plugins"), Some(KEY)).await;
    let api = server.admin();
    let (agent, target, cert) = deployment_setup(&api).await;
    let id = target["id"].as_str().unwrap().to_owned();
    assert_eq!(target["config"]["api_token"], "***", "{target}");
    assert_eq!(target["config"]["dir"], "/srv/tls");
    assert_masked_everywhere(&api, "targets", &id, "api_token", TOKEN).await;
    let mapped = get_ok(&api, &format!("certificates/{cert}/targets")).await;
    assert_eq!(mapped["data"][0]["config"]["api_token"], "***", "{mapped}");
    assert!(!mapped.to_string().contains(TOKEN));

    let stored = raw_config(server.data_dir.path(), "deployment_targets", &id).await;
    assert!(is_sealed(&stored["api_token"]), "{stored}");
    assert_not_in_database(server.data_dir.path(), TOKEN);

    // The agent's work carries the plaintext: it deploys with it.
    let work = deployments(&api, &agent).await;
    assert_eq!(work[0]["target_config"]["api_token"], TOKEN, "{work:?}");
    assert_eq!(work[0]["target_config"]["dir"], "/srv/tls");

    // "***" on PUT keeps the secret (the agent still gets it), other fields change.
    let updated = put_ok(
        &api,
        &format!("targets/{id}"),
        json!({"config": {"dir": "/srv/tls2", "api_token": "***"}}),
    )
    .await;
    assert_eq!(updated["config"]["api_token"], "***", "{updated}");
    assert_eq!(updated["config"]["dir"], "/srv/tls2");
    let work = deployments(&api, &agent).await;
    assert_eq!(work[0]["target_config"]["api_token"], TOKEN, "{work:?}");
    assert_eq!(work[0]["target_config"]["dir"], "/srv/tls2");

    let events = audit_of(&api, &id, TOKEN).await;
    assert_eq!(
        event(&events, "target_created")[0]["details"]["config"]["api_token"],
        "***"
    );
    let update = event(&events, "target_updated");
    assert_eq!(update.len(), 1, "{events:?}");
    assert_eq!(
        update[0]["details"]["changes"]["config"],
        json!({"dir": {"from": "/srv/tls", "to": "/srv/tls2"}}),
        "the kept secret is no change"
    );
    assert_not_in_database(server.data_dir.path(), TOKEN);
}

#[tokio::test]
async fn wrong_or_missing_key_stops_the_server_and_the_right_key_restarts() {
    let tmp = tempfile::tempdir().unwrap();
    let mut server = template_server(&tmp.path().join("plugins"), Some(KEY)).await;
    let (agent, target, _) = deployment_setup(&server.admin()).await;

    server.set_env(KEY_VAR, "a different key, long enough");
    let (status, logs) = server.restart_expecting_exit().await;
    assert!(!status.success(), "{status}");
    assert!(
        logs.contains(KEY_VAR) && logs.contains("does not match"),
        "the message names the variable: {logs}"
    );

    server.unset_env(KEY_VAR);
    let (status, logs) = server.restart_expecting_exit().await;
    assert!(!status.success(), "{status}");
    assert!(
        logs.contains(KEY_VAR) && logs.contains("is not set"),
        "the message names the variable: {logs}"
    );

    server.set_env(KEY_VAR, "short");
    let (status, logs) = server.restart_expecting_exit().await;
    assert!(!status.success(), "{status}");
    assert!(logs.contains(KEY_VAR), "{logs}");

    // The right key: it starts, and the secret still decrypts for the agent.
    server.set_env(KEY_VAR, KEY);
    server.restart().await;
    let api = server.admin();
    assert!(
        !server.logs().contains("stored in clear"),
        "{}",
        server.logs()
    );
    let work = deployments(&api, &agent).await;
    assert_eq!(work[0]["target_config"]["api_token"], TOKEN, "{work:?}");
    assert_eq!(
        get_ok(&api, &format!("targets/{}", target["id"].as_str().unwrap())).await["config"]["api_token"],
        "***"
    );
}

#[tokio::test]
async fn without_a_key_secrets_are_stored_in_clear_masked_and_sealed_once_a_key_is_set() {
    let tmp = tempfile::tempdir().unwrap();
    let mut server = template_server(&tmp.path().join("plugins"), None).await;
    assert!(
        server.logs().contains(KEY_VAR) && server.logs().contains("stored in clear"),
        "the start says secrets are in clear: {}",
        server.logs()
    );
    let api = server.admin();
    let (agent, target, _) = deployment_setup(&api).await;
    let id = target["id"].as_str().unwrap().to_owned();
    // In clear at rest, but still never shown, nor written to the audit trail.
    assert_eq!(
        raw_config(server.data_dir.path(), "deployment_targets", &id).await["api_token"],
        TOKEN
    );
    assert_masked_everywhere(&api, "targets", &id, "api_token", TOKEN).await;
    audit_of(&api, &id, TOKEN).await;
    assert_eq!(
        deployments(&api, &agent).await[0]["target_config"]["api_token"],
        TOKEN
    );

    // Configuring a key later seals what was stored in clear, once, at start.
    server.set_env(KEY_VAR, KEY);
    server.restart().await;
    let api = server.admin();
    let stored = raw_config(server.data_dir.path(), "deployment_targets", &id).await;
    assert!(
        is_sealed(&stored["api_token"]),
        "{stored}\n{}",
        server.logs()
    );
    let events = audit_of(&api, &id, TOKEN).await;
    assert_eq!(
        event(&events, "target_secrets_encrypted")[0]["details"]["fields"],
        json!(["api_token"]),
        "{events:?}"
    );
    assert_eq!(
        deployments(&api, &agent).await[0]["target_config"]["api_token"],
        TOKEN
    );
    // And from now on the key is required.
    server.unset_env(KEY_VAR);
    let (status, logs) = server.restart_expecting_exit().await;
    assert!(
        !status.success() && logs.contains(KEY_VAR),
        "{status}: {logs}"
    );
}

/// The key-check row and the re-sealing pass's SQL, on both backends: the row is stored
/// once (a second replica's insert loses), and a re-seal only replaces the config it read.
async fn key_record_and_reseal(store: certctl_host::store::Store) {
    use certctl_host::domain::audit::Actor;
    use certctl_host::domain::issuer;
    use certctl_host::secrets::KeyRecord;
    use certctl_host::store::{config_encryption, records};

    assert_eq!(config_encryption::load(&store).await.unwrap(), None);
    let first = KeyRecord {
        kdf: "pbkdf2-hmac-sha256".into(),
        iterations: 600_000,
        salt: "c2FsdHNhbHRzYWx0c2FsdA==".into(),
        key_check: "enc:v1:AAAA".into(),
    };
    let now = "2026-01-01T00:00:00Z";
    assert!(
        config_encryption::insert_if_absent(&store, &first, now)
            .await
            .unwrap()
    );
    let second = KeyRecord {
        salt: "b3RoZXI=".into(),
        ..first.clone()
    };
    assert!(
        !config_encryption::insert_if_absent(&store, &second, now)
            .await
            .unwrap()
    );
    assert_eq!(config_encryption::load(&store).await.unwrap(), Some(first));

    let values = json!({"name": "a", "type": "acme", "config": {"eab_hmac_key": "clear"}});
    records::create(
        &store,
        &issuer::SPEC,
        "iss-a",
        values.as_object().cloned().unwrap(),
        now,
        &Actor::system(),
    )
    .await
    .unwrap();
    let read = config_encryption::configs(&store, &issuer::SPEC)
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.id == "iss-a")
        .unwrap();
    assert_eq!(read.connector_type, "acme");
    assert_eq!(read.config["eab_hmac_key"], "clear");
    let sealed = json!({"eab_hmac_key": "enc:v1:BBBB"});
    let keys = vec!["eab_hmac_key".to_owned()];
    assert!(
        config_encryption::reseal(&store, &issuer::SPEC, &read, &sealed, &keys, now)
            .await
            .unwrap()
    );
    assert!(
        !config_encryption::reseal(&store, &issuer::SPEC, &read, &sealed, &keys, now)
            .await
            .unwrap(),
        "a stale read does not overwrite"
    );
    let stored = records::get(&store, &issuer::SPEC, "iss-a").await.unwrap();
    assert_eq!(stored["config"], sealed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_record_and_reseal_sqlite() {
    crate::store::run_sqlite(key_record_and_reseal).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_record_and_reseal_postgres() {
    crate::store::run_postgres(key_record_and_reseal).await;
}
