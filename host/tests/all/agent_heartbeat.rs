//! Agent heartbeats: the facts an agent reports (os, architecture, hostname, ip_address,
//! version) are stored and returned by `GET /agents/{id}`, only the agent itself (or an admin)
//! may report them, and a bad body is a 400.

use serde_json::json;

use crate::support::ServerBuilder;

const TOKEN: &str = "heartbeat-bootstrap-token";

#[tokio::test]
async fn heartbeat_facts_are_stored_and_guarded() {
    let server = ServerBuilder::new()
        .env("CERTCTL_AGENT_BOOTSTRAP_TOKEN", TOKEN)
        .start()
        .await;
    let bootstrap = server.with_key(TOKEN);
    let admin = server.admin();
    let mut agents = Vec::new();
    for name in ["hb-one", "hb-two"] {
        let r = bootstrap
            .post("agents/register", &json!({"name": name}))
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        let id = r.body["agent"]["id"].as_str().unwrap().to_owned();
        let key = r.body["api_key"].as_str().unwrap().to_owned();
        agents.push((id, key));
    }
    let (id, key) = &agents[0];
    let own = server.with_key(key);

    let before = admin.get(&format!("agents/{id}")).await;
    assert_eq!(before.status, 200, "{}", before.body);
    assert!(
        before.body["last_heartbeat_at"].is_null(),
        "{}",
        before.body
    );

    let facts = json!({"os": "linux", "architecture": "x86_64", "hostname": "web-1",
        "ip_address": "10.0.0.7", "version": "0.1.0"});
    let r = own.post(&format!("agents/{id}/heartbeat"), &facts).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let got = admin.get(&format!("agents/{id}")).await.body;
    for field in ["os", "architecture", "hostname", "ip_address", "version"] {
        assert_eq!(got[field], facts[field], "{field}: {got}");
    }
    assert_eq!(got["status"], "Online", "{got}");
    assert!(got["last_heartbeat_at"].is_string(), "{got}");

    // A partial heartbeat updates what it carries and keeps the rest.
    let r = own
        .post(
            &format!("agents/{id}/heartbeat"),
            &json!({"version": "0.2.0"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let got = admin.get(&format!("agents/{id}")).await.body;
    assert_eq!(got["version"], "0.2.0", "{got}");
    assert_eq!(got["hostname"], "web-1", "{got}");
    assert_eq!(got["os"], "linux", "{got}");

    // Another agent's key may not speak for this one; nothing changes.
    let other = server.with_key(&agents[1].1);
    let r = other
        .post(
            &format!("agents/{id}/heartbeat"),
            &json!({"hostname": "evil"}),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body["error"].is_object(), "{}", r.body);
    assert_eq!(
        admin.get(&format!("agents/{id}")).await.body["hostname"],
        "web-1"
    );

    // Unknown fields and wrong types are a 400 with a JSON error, not a 500.
    for bad in [json!({"kernel": "6.1"}), json!({"os": 7})] {
        let r = own.post(&format!("agents/{id}/heartbeat"), &bad).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
        assert!(r.body["error"].is_object(), "{}", r.body);
    }
    // An admin heartbeat for an agent that does not exist is a 404.
    let r = admin
        .post("agents/ag-doesnotexist0000/heartbeat", &json!({}))
        .await;
    assert_eq!(r.status, 404, "{}", r.body);
}
