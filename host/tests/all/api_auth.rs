//! Black-box tests of authentication, the public endpoints, `CERTCTL_AUTH_TYPE=none`, rate
//! limiting and the OpenAPI document's agreement with the routes actually served.

use std::time::Duration;

use reqwest::Method;
use reqwest::header::AUTHORIZATION;
use serde_json::json;

use crate::api_resources::{
    Deps, FIXTURES, assert_error, audit_events, audit_total, created, quiet_server, with_query,
};
use crate::support::{ADMIN_KEY, Api, Resp};

fn assert_unauthorized(r: &Resp, ctx: &str) {
    assert_error(r, 401, "unauthorized", ctx);
    assert_eq!(
        r.headers
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok()),
        Some("Bearer"),
        "{ctx}: WWW-Authenticate"
    );
}

/// Sends GET `path` with a literal `Authorization` header.
async fn get_with_header(api: &Api, path: &str, value: &str) -> Resp {
    api.send(api.client.get(api.url(path)).header(AUTHORIZATION, value))
        .await
}

/// Every route of every resource refuses a missing or wrong key with 401 and changes
/// nothing; a valid key in any accepted spelling gets through.
#[tokio::test]
async fn missing_or_wrong_key_is_401_on_every_resource() {
    let server = quiet_server().start().await;
    let admin = server.admin();
    let deps = Deps::create(&admin).await;
    // API calls are logged asynchronously; give the log a moment to have rows.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut existing = Vec::new();
    for f in FIXTURES {
        let id = match &f.write {
            Some(w) => created(&admin, f.path, (w.create)(&deps, 0)).await,
            // Authentication comes first, so an id that does not exist is as good.
            None => admin.get(f.path).await.body["data"][0]["id"]
                .as_str()
                .map_or_else(|| format!("{}-none", f.prefix), str::to_owned),
        };
        existing.push((f, id));
    }
    let audit_before = audit_total(&admin).await;
    let mut snapshots = Vec::new();
    for (f, id) in &existing {
        snapshots.push(admin.get(&format!("{}/{id}", f.path)).await.body);
    }

    let near_miss = format!("{ADMIN_KEY}x");
    let truncated = &ADMIN_KEY[..ADMIN_KEY.len() - 1];
    let callers = [
        ("no key", server.anonymous()),
        ("wrong key", server.with_key("not-a-key")),
        ("near miss", server.with_key(&near_miss)),
        ("truncated", server.with_key(truncated)),
    ];
    for (who, api) in &callers {
        for (f, id) in &existing {
            let ctx = format!("{who}: {}", f.path);
            let item = format!("{}/{id}", f.path);
            assert_unauthorized(&api.get(f.path).await, &format!("{ctx} list"));
            assert_unauthorized(&api.get(&item).await, &format!("{ctx} get"));
            if let Some(w) = &f.write {
                let r = api.post(f.path, &(w.create)(&deps, 1)).await;
                assert_unauthorized(&r, &format!("{ctx} create"));
                let r = api.put(&item, &(w.update)(&deps)).await;
                assert_unauthorized(&r, &format!("{ctx} update"));
                assert_unauthorized(&api.delete(&item).await, &format!("{ctx} delete"));
            } else {
                assert_unauthorized(&api.post(f.path, &json!({})).await, &ctx);
            }
        }
        assert_unauthorized(&api.get("auth/check").await, &format!("{who}: auth/check"));
    }

    // Header spellings.
    for bad in [
        format!("Basic {ADMIN_KEY}"),
        format!("Token {ADMIN_KEY}"),
        "Bearer".to_owned(),
        "Bearer ".to_owned(),
        ADMIN_KEY.to_owned(),
        format!("Bearer{ADMIN_KEY}"),
    ] {
        let r = get_with_header(&server.anonymous(), "teams", &bad).await;
        assert_unauthorized(&r, &format!("Authorization: {bad}"));
    }
    for good in [
        format!("Bearer {ADMIN_KEY}"),
        format!("bearer {ADMIN_KEY}"),
        format!("BEARER {ADMIN_KEY} "),
    ] {
        let r = get_with_header(&server.anonymous(), "teams", &good).await;
        assert_eq!(r.status, 200, "Authorization: {good}: {}", r.body);
    }

    // Nothing changed and nothing was audited.
    assert_eq!(
        audit_total(&admin).await,
        audit_before,
        "401s wrote audit events"
    );
    for ((f, id), before) in existing.iter().zip(&snapshots) {
        let now = admin.get(&format!("{}/{id}", f.path)).await;
        assert_eq!(
            &now.body, before,
            "{}: changed by an unauthenticated call",
            f.path
        );
    }

    // The refusals are in the API-call log, attributed to nobody.
    let mut logged = 0;
    for _ in 0..50 {
        let r = admin
            .get(&with_query("audit/api-calls", &[("status", "401")]))
            .await;
        logged = r.body["total"].as_i64().unwrap_or_default();
        if logged > 0 {
            assert!(
                r.body["data"]
                    .as_array()
                    .expect("data")
                    .iter()
                    .all(|c| c["actor"] == "anonymous"),
                "{}",
                r.body
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(logged > 0, "401s are recorded in the API-call log");
}

/// Probes, auth info and the OpenAPI document need no key; auth/check tells valid keys
/// from invalid ones.
#[tokio::test]
async fn public_endpoints_and_auth_check() {
    let server = quiet_server().start().await;
    let anon = server.anonymous();
    let wrong = server.with_key("nope");
    for api in [&anon, &wrong] {
        let r = api.get("/health").await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["status"], "ok");
        let r = api.get("/ready").await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["status"], "ready");
        let r = api.get("auth/info").await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body, json!({"auth_type": "api-key"}));
        let r = api.get("openapi.json").await;
        assert_eq!(r.status, 200);
        assert_eq!(r.body["openapi"], "3.1.0");
        assert_unauthorized(&api.get("auth/check").await, "auth/check");
    }
    let r = server.admin().get("auth/check").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["valid"], true);
    assert_eq!(r.body["auth_type"], "api-key");
    assert_eq!(r.body["actor"], "admin");
    assert_eq!(r.body["actor_type"], "User");
    assert_eq!(r.body["admin"], true);
}

/// With `CERTCTL_AUTH_TYPE=none` every request is served without a key, mutations are
/// audited as the anonymous actor, and the server warns at start.
#[tokio::test]
async fn auth_type_none_serves_requests_without_a_key() {
    let server = quiet_server()
        .env("CERTCTL_AUTH_TYPE", "none")
        .start()
        .await;
    let anon = server.anonymous();
    let r = anon.get("auth/info").await;
    assert_eq!(r.body, json!({"auth_type": "none"}));
    for f in FIXTURES {
        let r = anon.get(f.path).await;
        assert_eq!(r.status, 200, "{}: {}", f.path, r.body);
    }
    let team = created(&anon, "teams", json!({"name": "open"})).await;
    let r = server
        .with_key("whatever")
        .put(&format!("teams/{team}"), &json!({"description": "d"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let events = audit_events(&anon, &team).await;
    assert_eq!(events.len(), 2, "{events:?}");
    for e in &events {
        assert_eq!(e["actor"], "anonymous");
        assert_eq!(e["actor_type"], "Anonymous");
    }
    let r = anon.get("auth/check").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["actor_type"], "Anonymous");
    assert_eq!(r.body["auth_type"], "none");
    assert!(
        server.logs().contains("CERTCTL_AUTH_TYPE=none"),
        "no startup warning:\n{}",
        server.logs()
    );
}

/// Each caller has a token bucket: past the burst the API answers 429 with Retry-After,
/// refused calls change nothing, probes and other callers are unaffected, and the bucket
/// refills.
#[tokio::test]
async fn rate_limit_answers_429_with_retry_after() {
    let server = quiet_server()
        .env("CERTCTL_RATE_LIMIT_ENABLED", "true")
        .env("CERTCTL_RATE_LIMIT_RPS", "1")
        .env("CERTCTL_RATE_LIMIT_BURST", "3")
        .start()
        .await;
    let admin = server.admin();
    let anon = server.anonymous();
    for i in 0..3 {
        let r = admin.get("teams").await;
        assert_eq!(r.status, 200, "call {i} within the burst: {}", r.body);
    }
    let limited = admin.post("teams", &json!({"name": "too-fast"})).await;
    assert_error(&limited, 429, "rate_limited", "past the burst");
    let retry: u64 = limited
        .headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in whole seconds");
    assert!((1..=2).contains(&retry), "Retry-After {retry}");
    assert_error(
        &admin.get("teams").await,
        429,
        "rate_limited",
        "still limited",
    );

    // Probes and public endpoints are not limited; other callers have their own bucket.
    for _ in 0..5 {
        assert_eq!(admin.get("/health").await.status, 200);
        assert_eq!(anon.get("auth/info").await.status, 200);
    }
    // Failed authentication spends the client IP's bucket, which slows key guessing.
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(anon.get("teams").await.status);
    }
    assert_eq!(statuses, vec![401, 401, 401, 429], "anonymous attempts");

    // The bucket refills at the configured rate (one token per second).
    tokio::time::sleep(Duration::from_secs(retry + 1)).await;
    let r = admin.post("teams", &json!({"name": "patient"})).await;
    assert_eq!(r.status, 201, "after Retry-After: {}", r.body);
    let page = admin.get("teams").await;
    assert_eq!(page.status, 200, "{}", page.body);
    let names: Vec<&str> = page.body["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(names, vec!["patient"], "the limited create stored nothing");
}

/// Every operation the OpenAPI document lists is served (never 405 nor a route-level 404),
/// and every resource's documented operations match its fixture.
#[tokio::test]
async fn openapi_document_matches_the_served_routes() {
    let server = quiet_server().start().await;
    let api = server.admin();
    let doc = server.anonymous().get("openapi.json").await;
    assert_eq!(doc.status, 200);
    let paths = doc.body["paths"].as_object().expect("paths");
    for extra in [
        "/health",
        "/ready",
        "/api/v1/auth/info",
        "/api/v1/auth/check",
        "/api/v1/openapi.json",
    ] {
        assert!(paths[extra]["get"].is_object(), "{extra} documented");
    }
    for f in FIXTURES {
        let collection = &paths[&format!("/api/v1/{}", f.path)];
        let item = &paths[&format!("/api/v1/{}/{{id}}", f.path)];
        assert!(collection["get"].is_object(), "{}: list", f.path);
        assert!(item["get"].is_object(), "{}: get", f.path);
        let writable = f.write.is_some();
        assert_eq!(collection["post"].is_object(), writable, "{}: post", f.path);
        assert_eq!(item["put"].is_object(), writable, "{}: put", f.path);
        assert_eq!(item["delete"].is_object(), writable, "{}: delete", f.path);
    }
    let mut operations = 0;
    for (path, ops) in paths {
        // Placeholders become ids that do not exist (with the right prefix for `{id}`).
        let prefix = FIXTURES
            .iter()
            .filter(|f| path.starts_with(&format!("/api/v1/{}/{{", f.path)))
            .map(|f| f.prefix)
            .next()
            .unwrap_or("x");
        let templated = path.contains('{');
        let mut concrete = path.replace("{id}", &format!("{prefix}-not-there"));
        while let (Some(a), Some(b)) = (concrete.find('{'), concrete.find('}')) {
            concrete.replace_range(a..=b, "x-not-there");
        }
        for (method, op) in ops.as_object().expect("operations") {
            operations += 1;
            let m: Method = method.to_uppercase().parse().expect("method");
            let body = if matches!(m, Method::POST | Method::PUT) {
                b"{}".to_vec()
            } else {
                Vec::new()
            };
            let r = api.raw(m.clone(), &concrete, body).await;
            let ctx = format!("{m} {concrete}");
            assert_ne!(r.status, 405, "{ctx}: documented but not allowed");
            // The digest answers 503 without an email channel (documented, as in the reference).
            let unconfigured = path.starts_with("/api/v1/digest/") && r.status == 503;
            assert!(r.status < 500 || unconfigured, "{ctx}: {}", r.status);
            if r.status == 404 {
                let message = r.body["error"]["message"].as_str().unwrap_or_default();
                assert!(
                    !message.starts_with("no route"),
                    "{ctx}: documented but not routed"
                );
            }
            let success: Vec<&String> = op["responses"]
                .as_object()
                .expect("responses")
                .keys()
                // 101: the agent session upgrades to a WebSocket.
                .filter(|c| c.starts_with('2') || c.as_str() == "101")
                .collect();
            assert_eq!(success.len(), 1, "{ctx}: one success status documented");
            if !templated && m == Method::GET && !unconfigured {
                assert_eq!(&r.status.to_string(), success[0], "{ctx}: {}", r.body);
            }
        }
    }
    assert!(
        operations >= FIXTURES.len() * 2 + 5,
        "{operations} operations"
    );
}

/// The spellings that used to slip past authentication (the middleware decided on the raw
/// path, actix routed on the decoded one) are refused like the plain path, change nothing,
/// and are in the API-call log under the path that was routed.
#[tokio::test]
async fn encoded_spellings_are_authenticated_and_logged_canonically() {
    let server = quiet_server().start().await;
    let admin = server.admin();
    let anon = server.anonymous();
    let request_id = "encoded-spelling-probe";
    for path in [
        "/%61pi/v1/certificates",
        "/api/v1/%63ertificates",
        "/api/v1//certificates",
        "/api//v1/certificates",
    ] {
        let r = anon
            .send(
                anon.client
                    .get(anon.url(path))
                    .header("x-request-id", request_id),
            )
            .await;
        assert_unauthorized(&r, path);
    }
    let r = anon
        .send(
            anon.client
                .post(anon.url("/%61pi/v1/teams"))
                .header("content-type", "application/json")
                .body(r#"{"name": "sneaky"}"#),
        )
        .await;
    assert_unauthorized(&r, "POST /%61pi/v1/teams");
    let teams = admin.get(&with_query("teams", &[("name", "sneaky")])).await;
    assert_eq!(
        teams.body["total"], 0,
        "no team was created: {}",
        teams.body
    );
    // The same spellings with a key reach the route.
    let r = admin.get("/%61pi/v1/certificates").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = admin.get("/api/v1//certificates").await;
    assert_eq!(r.status, 200, "{}", r.body);

    let logged = crate::support::eventually("the refused calls in the API-call log", async || {
        let r = admin
            .get(&with_query(
                "audit/api-calls",
                &[("request_id", request_id), ("per_page", "50")],
            ))
            .await;
        let rows = r.body["data"].as_array().cloned().unwrap_or_default();
        if rows.len() == 4 {
            Ok(rows)
        } else {
            Err(format!("{} rows: {}", rows.len(), r.body))
        }
    })
    .await;
    for row in logged {
        assert_eq!(row["path"], "/api/v1/certificates", "{row}");
        assert_eq!(row["status"], 401, "{row}");
        assert_eq!(row["actor"], "anonymous", "{row}");
    }
}
