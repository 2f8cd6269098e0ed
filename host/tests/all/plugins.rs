//! The plugin registry endpoints: `GET /api/v1/plugins` lists what the server found
//! in `CERTCTL_PLUGIN_DIR` (broken plugins included, with their errors), and
//! `POST /api/v1/plugins/reload` re-scans it with the current grants.

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use certctl_testkit::plugins::install;
use serde_json::Value;

use crate::support::ServerBuilder;

fn by_id<'a>(listing: &'a Value, id: &str) -> &'a Value {
    listing["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == id)
        .unwrap_or_else(|| panic!("no plugin {id} in {listing}"))
}

#[tokio::test]
async fn plugins_are_listed_with_grants_and_errors_and_reloaded_on_demand() {
    let tmp = tempfile::tempdir().unwrap();
    let plugins = tmp.path().join("plugins");
    install(&plugins, "nginx", "nginx");
    std::fs::create_dir_all(plugins.join("broken")).unwrap();
    std::fs::write(
        plugins.join("broken/plugin.toml"),
        "id = \"broken\"\nkind = \"gateway\"\n",
    )
    .unwrap();
    let grants = tmp.path().join("grants.toml");
    std::fs::write(
        &grants,
        "[plugins.nginx]\ndirectories = [\"/etc/nginx/certs\"]\n[plugins.nginx.commands]\nvalidate = [\"nginx\", \"-t\"]\n",
    )
    .unwrap();

    let server = ServerBuilder::new()
        .env("CERTCTL_PLUGIN_DIR", plugins.to_str().unwrap())
        .env("CERTCTL_PLUGIN_GRANTS", grants.to_str().unwrap())
        .start()
        .await;
    let admin = server.admin();

    let listing = admin.get("plugins").await;
    assert_eq!(listing.status, 200, "{:?}", listing.body);
    assert_eq!(listing.body["total"], 2);
    assert_eq!(listing.body["supported_wit"], "0.1.x");
    let nginx = by_id(&listing.body, "nginx");
    assert_eq!(nginx["status"], "loaded");
    assert_eq!(nginx["kind"], "target");
    assert_eq!(nginx["wit"], "0.1.0");
    assert_eq!(
        nginx["capabilities"]["requested"]["commands"],
        serde_json::json!(["validate", "reload"])
    );
    assert_eq!(
        nginx["capabilities"]["granted"]["directories"],
        serde_json::json!(["/etc/nginx/certs"])
    );
    assert_eq!(
        nginx["capabilities"]["granted"]["commands"],
        serde_json::json!({"validate": ["nginx", "-t"]})
    );
    assert_eq!(
        nginx["config_schema"]["required"],
        serde_json::json!(["cert_path", "key_path"])
    );
    let broken = by_id(&listing.body, "broken");
    assert_eq!(broken["status"], "error");
    assert_eq!(broken["error"]["code"], "malformed_manifest");
    assert!(
        broken["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown variant `gateway`"),
        "{broken}"
    );

    // Reloading needs an admin key.
    assert_eq!(
        server
            .anonymous()
            .post("plugins/reload", &Value::Null)
            .await
            .status,
        401
    );

    // A plugin dropped in later appears on reload.
    install(&plugins, "haproxy", "haproxy");
    let reloaded = admin.post("plugins/reload", &Value::Null).await;
    assert_eq!(reloaded.status, 200, "{:?}", reloaded.body);
    assert_eq!(by_id(&reloaded.body, "haproxy")["status"], "loaded");

    // A grants file that does not parse is refused and the loaded set stays.
    std::fs::write(&grants, "[plugins.nginx]\ndirectories = \"not a list\"\n").unwrap();
    let refused = admin.post("plugins/reload", &Value::Null).await;
    assert_eq!(refused.status, 400, "{:?}", refused.body);
    assert!(
        refused.body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("malformed grants file "),
        "{:?}",
        refused.body
    );
    assert_eq!(admin.get("plugins").await.body["total"], 3);
}

#[tokio::test]
async fn a_missing_plugin_directory_means_no_plugins() {
    let server = ServerBuilder::new().start().await;
    let listing = server.admin().get("plugins").await;
    assert_eq!(listing.status, 200);
    assert_eq!(listing.body["total"], 0);
    assert!(
        listing.body["plugin_dir"]
            .as_str()
            .unwrap()
            .ends_with("/plugins")
    );
    assert_eq!(listing.body["problems"], serde_json::json!([]));
}
