//! Black-box tests of the generic REST resources against a running server: create, get,
//! update and delete with their audit events, the list envelope, page and cursor
//! pagination, every sortable field, sparse fieldsets, every equality filter and every
//! time-range filter — for every resource the server serves.
//!
//! The fixture table below describes each resource once; the OpenAPI document the server
//! publishes supplies the filterable and sortable fields, so a field added to a spec is
//! exercised without touching these tests, and a resource added to the server fails
//! `fixtures_cover_every_resource` until it gets a fixture.

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Api, Resp, ServerBuilder};

// ---------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------

/// Ids of the prerequisite records other resources point at.
pub(crate) struct Deps {
    pub(crate) team: String,
    pub(crate) team2: String,
    pub(crate) owner: String,
    pub(crate) issuer: String,
    pub(crate) renewal_policy: String,
    pub(crate) profile: String,
    pub(crate) agent: String,
    pub(crate) target: String,
    pub(crate) certificate: String,
}

impl Deps {
    /// Creates one record of every resource something else can reference.
    pub(crate) async fn create(api: &Api) -> Deps {
        let team = created(api, "teams", json!({"name": "dep-team"})).await;
        let team2 = created(api, "teams", json!({"name": "dep-team-2"})).await;
        let owner = created(
            api,
            "owners",
            json!({"name": "dep-owner", "email": "dep@example.com", "team_id": team}),
        )
        .await;
        let issuer = created(
            api,
            "issuers",
            json!({"name": "dep-issuer", "type": "local"}),
        )
        .await;
        let renewal_policy = created(api, "renewal-policies", json!({"name": "dep-rp"})).await;
        let profile = created(api, "profiles", json!({"name": "dep-profile"})).await;
        let agent = created(api, "agents", json!({"name": "dep-agent"})).await;
        let target = created(
            api,
            "targets",
            json!({"name": "dep-target", "type": "nginx", "agent_id": agent}),
        )
        .await;
        let certificate = created(
            api,
            "certificates",
            // No issuer: a certificate naming one queues an issuance job, and these tests
            // are about the REST surface, not the pipeline.
            json!({
                "name": "dep-cert", "common_name": "dep.example.com", "owner_id": owner,
                "team_id": team, "renewal_policy_id": renewal_policy, "profile_id": profile,
            }),
        )
        .await;
        Deps {
            team,
            team2,
            owner,
            issuer,
            renewal_policy,
            profile,
            agent,
            target,
            certificate,
        }
    }
}

/// How a writable resource is created, changed and broken.
pub(crate) struct Write {
    /// A valid create body; `n` varies names and filterable values between records.
    pub(crate) create: fn(&Deps, usize) -> Value,
    /// A valid partial update.
    pub(crate) update: fn(&Deps) -> Value,
    /// A required field (omitted → 400 naming it).
    pub(crate) required: &'static str,
    /// A field and a JSON literal of the wrong type for it.
    pub(crate) wrong_type: (&'static str, &'static str),
    /// A client-writable enum field and a value outside it.
    pub(crate) bad_enum: Option<(&'static str, &'static str)>,
    /// A reference field (unknown id → 400 naming it).
    pub(crate) reference: Option<&'static str>,
    /// A server-owned field a client may not set on create.
    pub(crate) read_only: Option<(&'static str, &'static str)>,
    /// DELETE archives (status `Archived`) instead of removing.
    pub(crate) archives: bool,
}

impl Fixture {
    /// Rows appear only when the issuance pipeline records them (see
    /// `policy_violations_recorded_by_issuance_list_like_every_resource`).
    pub(crate) fn seeded_by_issuance(&self) -> bool {
        self.path == "policy-violations"
    }
}

/// One resource under `/api/v1`.
pub(crate) struct Fixture {
    pub(crate) path: &'static str,
    pub(crate) prefix: &'static str,
    /// Singular name used in audit actions (`team_created`).
    pub(crate) singular: &'static str,
    pub(crate) default_sort: &'static str,
    /// A sortable field the server must offer (checked against OpenAPI).
    pub(crate) sort: &'static str,
    /// A filterable field the server must offer (checked against OpenAPI).
    pub(crate) filter: &'static str,
    /// `None` for read-only resources.
    pub(crate) write: Option<Write>,
}

const NAMES: &[&str] = &["delta", "alpha", "echo", "bravo", "charlie", "foxtrot"];

fn pick(values: &[&'static str], n: usize) -> &'static str {
    values[n % values.len()]
}

fn name(kind: &str, n: usize) -> String {
    format!("{}-{kind}-{n}", NAMES[n % NAMES.len()])
}

/// Every resource, in dependency order.
pub(crate) static FIXTURES: &[Fixture] = &[
    Fixture {
        path: "teams",
        prefix: "team",
        singular: "team",
        default_sort: "name",
        sort: "name",
        filter: "name",
        write: Some(Write {
            create: |_, n| json!({"name": name("team", n), "description": format!("team number {n}")}),
            update: |_| json!({"description": "updated description"}),
            required: "name",
            wrong_type: ("name", "5"),
            bad_enum: None,
            reference: None,
            read_only: None,
            archives: false,
        }),
    },
    Fixture {
        path: "owners",
        prefix: "o",
        singular: "owner",
        default_sort: "name",
        sort: "name",
        filter: "team_id",
        write: Some(Write {
            create: |d, n| {
                json!({
                    "name": name("owner", n), "email": format!("owner{n}@example.com"),
                    "team_id": if n % 2 == 0 { &d.team } else { &d.team2 },
                })
            },
            update: |d| json!({"email": "moved@example.com", "team_id": d.team2}),
            required: "name",
            wrong_type: ("email", "[\"a@b\"]"),
            bad_enum: None,
            reference: Some("team_id"),
            read_only: None,
            archives: false,
        }),
    },
    Fixture {
        path: "issuers",
        prefix: "iss",
        singular: "issuer",
        default_sort: "name",
        sort: "name",
        filter: "enabled",
        write: Some(Write {
            // The only connector in this build is the Local CA, which takes no settings.
            create: |_, n| {
                json!({
                    "name": name("issuer", n), "type": "local", "config": {}, "enabled": n % 3 != 0,
                })
            },
            update: |_| json!({"enabled": false, "name": "renamed-issuer"}),
            required: "type",
            wrong_type: ("enabled", "\"yes\""),
            bad_enum: Some(("type", "vault-x")),
            reference: None,
            read_only: None,
            archives: false,
        }),
    },
    Fixture {
        path: "renewal-policies",
        prefix: "rp",
        singular: "renewal_policy",
        default_sort: "name",
        sort: "renewal_window_days",
        filter: "auto_renew",
        write: Some(Write {
            create: |_, n| {
                json!({
                    "name": name("rp", n), "renewal_window_days": 5 + (n * 7) % 30,
                    "auto_renew": n % 2 == 0, "max_retries": n, "retry_interval_seconds": 60 * (n + 1),
                    "alert_thresholds_days": [30, 7, n],
                })
            },
            update: |_| json!({"renewal_window_days": 45, "alert_thresholds_days": [14, 1]}),
            required: "name",
            wrong_type: ("renewal_window_days", "\"30\""),
            bad_enum: None,
            reference: None,
            read_only: None,
            archives: false,
        }),
    },
    Fixture {
        path: "profiles",
        prefix: "prof",
        singular: "profile",
        default_sort: "name",
        sort: "max_ttl_seconds",
        filter: "requires_approval",
        write: Some(Write {
            create: |_, n| {
                json!({
                    "name": name("profile", n), "description": "p",
                    "allowed_key_algorithms": [{"algorithm": "ECDSA", "min_size": 256}],
                    "max_ttl_seconds": 3600 * (1 + (n * 3) % 5), "required_sans": [],
                    "allowed_ekus": ["serverAuth"], "requires_approval": n % 2 == 1,
                    "enabled": n % 3 != 1,
                })
            },
            update: |_| json!({"max_ttl_seconds": 7200, "allowed_ekus": ["serverAuth", "clientAuth"]}),
            required: "name",
            wrong_type: ("allowed_ekus", "\"serverAuth\""),
            bad_enum: None,
            reference: None,
            read_only: None,
            archives: false,
        }),
    },
    Fixture {
        path: "agents",
        prefix: "ag",
        singular: "agent",
        default_sort: "name",
        sort: "hostname",
        filter: "hostname",
        write: Some(Write {
            create: |_, n| json!({"name": name("agent", n), "hostname": format!("host-{}", (n * 3) % 5)}),
            update: |_| json!({"hostname": "renamed-host"}),
            required: "name",
            wrong_type: ("hostname", "[]"),
            bad_enum: None,
            reference: None,
            read_only: Some(("status", "\"Online\"")),
            archives: false,
        }),
    },
    Fixture {
        path: "targets",
        prefix: "t",
        singular: "target",
        default_sort: "name",
        sort: "type",
        filter: "agent_id",
        write: Some(Write {
            create: |d, n| {
                json!({
                    "name": name("target", n),
                    "type": pick(&["nginx", "apache", "haproxy", "traefik", "caddy", "envoy", "postfix", "dovecot"], n),
                    "agent_id": d.agent, "config": {"path": format!("/etc/t{n}")}, "enabled": n % 2 == 0,
                })
            },
            update: |_| json!({"config": {"path": "/etc/nginx/certs"}, "enabled": false}),
            required: "type",
            wrong_type: ("config", "\"x\""),
            bad_enum: Some(("type", "iis")),
            reference: Some("agent_id"),
            read_only: None,
            archives: false,
        }),
    },
    Fixture {
        path: "certificates",
        prefix: "mc",
        singular: "certificate",
        default_sort: "name",
        sort: "common_name",
        filter: "environment",
        write: Some(Write {
            create: |d, n| {
                json!({
                    "name": name("cert", n), "common_name": format!("svc{}.example.com", (n * 3) % 7),
                    "sans": [format!("svc{n}.example.com")],
                    "environment": pick(&["production", "staging", "dev"], n),
                    "owner_id": d.owner, "team_id": if n % 2 == 0 { &d.team } else { &d.team2 },
                    "renewal_policy_id": d.renewal_policy,
                    "profile_id": d.profile, "tags": {"n": n},
                })
            },
            update: |d| json!({"environment": "staging", "tags": {"tier": "gold"}, "team_id": d.team2}),
            required: "common_name",
            wrong_type: ("sans", "\"a.example.com\""),
            bad_enum: None,
            reference: Some("issuer_id"),
            read_only: Some(("status", "\"Active\"")),
            archives: true,
        }),
    },
    Fixture {
        path: "jobs",
        prefix: "job",
        singular: "job",
        default_sort: "-created_at",
        sort: "scheduled_at",
        filter: "type",
        write: Some(Write {
            create: |d, n| {
                json!({
                    "type": pick(&["Issuance", "Renewal", "Deployment", "Validation"], n),
                    "certificate_id": d.certificate, "target_id": d.target, "agent_id": d.agent,
                    "max_attempts": 1 + n % 5,
                    "scheduled_at": format!("2030-01-0{}T00:00:00.000Z", 1 + (n * 4) % 9),
                })
            },
            update: |_| json!({"max_attempts": 7, "scheduled_at": "2031-06-01T12:00:00.000Z"}),
            required: "certificate_id",
            wrong_type: ("max_attempts", "\"3\""),
            bad_enum: Some(("type", "Bogus")),
            reference: Some("certificate_id"),
            read_only: Some(("attempts", "2")),
            archives: false,
        }),
    },
    Fixture {
        path: "policies",
        prefix: "pol",
        singular: "policy",
        default_sort: "name",
        sort: "severity",
        filter: "severity",
        write: Some(Write {
            create: |_, n| {
                json!({
                    "name": name("policy", n),
                    "type": pick(&["KeyAlgorithm", "MinKeySize", "MaxLifetime", "SanPattern", "IssuerRestriction"], n),
                    "config": {"n": n}, "severity": pick(&["Warning", "Error", "Critical"], n),
                    "enabled": n % 2 == 0,
                })
            },
            update: |_| json!({"severity": "Critical", "enabled": false}),
            required: "type",
            wrong_type: ("enabled", "1"),
            bad_enum: Some(("severity", "Fatal")),
            reference: None,
            read_only: None,
            archives: false,
        }),
    },
    Fixture {
        path: "notifications",
        prefix: "notif",
        singular: "notification",
        default_sort: "-created_at",
        sort: "type",
        filter: "channel",
        write: Some(Write {
            create: |d, n| {
                json!({
                    "type": pick(&["ExpirationWarning", "RenewalSuccess", "RenewalFailure", "DeploymentSuccess",
                             "DeploymentFailure", "PolicyViolation", "Revocation"], n),
                    "certificate_id": d.certificate, "channel": pick(&["email", "webhook"], n),
                    "recipient": format!("r{}@example.com", n % 3), "message": format!("message {n}"),
                    "read": n % 2 == 1,
                })
            },
            update: |_| json!({"read": true, "recipient": "ops@example.com"}),
            required: "message",
            wrong_type: ("read", "\"true\""),
            bad_enum: Some(("type", "Nope")),
            reference: Some("certificate_id"),
            read_only: Some(("status", "\"Sent\"")),
            archives: false,
        }),
    },
    Fixture {
        path: "policy-violations",
        prefix: "pv",
        singular: "policy_violation",
        default_sort: "-created_at",
        sort: "severity",
        filter: "rule_id",
        write: None,
    },
    Fixture {
        path: "audit",
        prefix: "audit",
        singular: "audit_event",
        default_sort: "-timestamp",
        sort: "action",
        filter: "resource_id",
        write: None,
    },
    Fixture {
        path: "audit/api-calls",
        prefix: "call",
        singular: "api_call",
        default_sort: "-timestamp",
        sort: "status",
        filter: "method",
        write: None,
    },
];

// ---------------------------------------------------------------------------------------
// Helpers shared by the api_* modules
// ---------------------------------------------------------------------------------------

/// A test server whose background loops stay out of the way: they tick once at start
/// (before any record exists) and not again during a test, so every change a test sees is
/// one it made. Jobs in the fixtures are scheduled in the future for the same reason.
pub(crate) fn quiet_server() -> ServerBuilder {
    let mut b = ServerBuilder::new();
    for var in [
        "CERTCTL_SCHEDULER_RENEWAL_CHECK_INTERVAL",
        "CERTCTL_SCHEDULER_JOB_PROCESSOR_INTERVAL",
        "CERTCTL_SCHEDULER_RETRY_INTERVAL",
        "CERTCTL_JOB_TIMEOUT_INTERVAL",
        "CERTCTL_SCHEDULER_AGENT_HEALTH_CHECK_INTERVAL",
        "CERTCTL_SCHEDULER_NOTIFICATION_PROCESS_INTERVAL",
        "CERTCTL_NOTIFICATION_RETRY_INTERVAL",
        "CERTCTL_SHORT_LIVED_EXPIRY_CHECK_INTERVAL",
    ] {
        b = b.env(var, "24h");
    }
    b
}

/// Creates a record and returns its id, failing the test on anything but 201.
pub(crate) async fn created(api: &Api, path: &str, body: Value) -> String {
    let r = api.post(path, &body).await;
    assert_eq!(r.status, 201, "POST {path} {body}: {}", r.body);
    r.body["id"].as_str().expect("id in 201 body").to_owned()
}

/// Asserts the standard error shape `{"error": {"code", "message", "field"?}}` and returns
/// the field, if any.
pub(crate) fn assert_error(r: &Resp, status: u16, code: &str, ctx: &str) -> Option<String> {
    assert_eq!(r.status, status, "{ctx}: status; body {}", r.body);
    assert_error_shape(r, ctx);
    assert_eq!(
        r.body["error"]["code"], code,
        "{ctx}: code; body {}",
        r.body
    );
    r.body["error"]["field"].as_str().map(str::to_owned)
}

/// Asserts only the JSON error shape (any status).
pub(crate) fn assert_error_shape(r: &Resp, ctx: &str) {
    let err = &r.body["error"];
    assert!(
        err.is_object(),
        "{ctx}: {} without error object: {}",
        r.status,
        r.body
    );
    assert!(
        err["code"].as_str().is_some_and(|c| !c.is_empty()),
        "{ctx}: error.code missing: {}",
        r.body
    );
    assert!(
        err["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{ctx}: error.message missing: {}",
        r.body
    );
    assert!(
        err.get("field").is_none_or(Value::is_string),
        "{ctx}: error.field not a string: {}",
        r.body
    );
    let ct = r
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(
        ct.starts_with("application/json"),
        "{ctx}: content-type {ct}"
    );
}

/// Asserts a 400 `validation_error` naming `field`.
pub(crate) fn assert_invalid(r: &Resp, field: &str, ctx: &str) {
    let got = assert_error(r, 400, "validation_error", ctx);
    assert_eq!(got.as_deref(), Some(field), "{ctx}: field; body {}", r.body);
}

/// Builds `path?k=v&…` with proper encoding.
pub(crate) fn with_query<K: AsRef<str>, V: AsRef<str>>(path: &str, pairs: &[(K, V)]) -> String {
    if pairs.is_empty() {
        return path.to_owned();
    }
    let pairs: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(k, v)| (k.as_ref(), v.as_ref()))
        .collect();
    let qs = serde_urlencoded::to_string(pairs).expect("encode query");
    format!("{path}?{qs}")
}

/// Audit events whose `resource_id` is `id`.
pub(crate) async fn audit_events(api: &Api, id: &str) -> Vec<Value> {
    let r = api
        .get(&with_query(
            "audit",
            &[("resource_id", id), ("per_page", "500")],
        ))
        .await;
    assert_eq!(r.status, 200, "audit list: {}", r.body);
    assert_eq!(
        r.body["total"].as_i64(),
        Some(r.body["data"].as_array().map_or(0, Vec::len) as i64)
    );
    r.body["data"].as_array().cloned().unwrap_or_default()
}

/// Actions of the audit events about `id`, sorted.
pub(crate) async fn audit_actions(api: &Api, id: &str) -> Vec<String> {
    let mut actions: Vec<String> = audit_events(api, id)
        .await
        .iter()
        .map(|e| e["action"].as_str().unwrap_or_default().to_owned())
        .collect();
    actions.sort();
    actions
}

/// Total number of audit events.
pub(crate) async fn audit_total(api: &Api) -> i64 {
    let r = api.get("audit?per_page=1").await;
    assert_eq!(r.status, 200, "audit list: {}", r.body);
    r.body["total"].as_i64().expect("total")
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn ids(rows: &[Value]) -> Vec<String> {
    rows.iter()
        .map(|r| r["id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn data(r: &Resp) -> Vec<Value> {
    r.body["data"].as_array().cloned().unwrap_or_default()
}

fn key_set(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

fn keys(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| (*s).to_owned()).collect()
}

// ---------------------------------------------------------------------------------------
// OpenAPI-derived knowledge about list parameters
// ---------------------------------------------------------------------------------------

const PAGING_PARAMS: &[&str] = &["page", "per_page", "cursor", "page_size", "sort", "fields"];

/// What the server documents about a resource's list operation.
struct ListDoc {
    /// Equality filters with their schema.
    filters: Vec<(String, Value)>,
    /// Timestamp range parameters.
    time_params: Vec<String>,
    /// Fields accepted by `sort`.
    sortable: Vec<String>,
}

fn list_doc(doc: &Value, path: &str) -> ListDoc {
    let params = doc["paths"][format!("/api/v1/{path}")]["get"]["parameters"]
        .as_array()
        .unwrap_or_else(|| panic!("no list parameters for {path} in OpenAPI"));
    let mut filters = Vec::new();
    let mut time_params = Vec::new();
    let mut sortable = Vec::new();
    for p in params {
        let name = p["name"].as_str().expect("parameter name").to_owned();
        if name == "sort" {
            let desc = p["description"].as_str().expect("sort description");
            let list = desc
                .strip_prefix("One of ")
                .and_then(|s| s.split(" (").next())
                .unwrap_or_else(|| panic!("unexpected sort description {desc}"));
            sortable = list.split(", ").map(str::to_owned).collect();
        } else if p["schema"]["format"] == "date-time" {
            time_params.push(name);
        } else if !PAGING_PARAMS.contains(&name.as_str()) {
            filters.push((name, p["schema"].clone()));
        }
    }
    ListDoc {
        filters,
        time_params,
        sortable,
    }
}

/// Column and direction (`true` = strictly before) of a documented time parameter.
fn time_param_meaning(param: &str, sample: &Value) -> (&'static str, bool) {
    let created = if sample.get("created_at").is_some() {
        "created_at"
    } else {
        "timestamp"
    };
    match param {
        "created_after" => (created, false),
        "created_before" => (created, true),
        "updated_after" => ("updated_at", false),
        "updated_before" => ("updated_at", true),
        "expires_after" => ("expires_at", false),
        "expires_before" => ("expires_at", true),
        "since" => ("timestamp", false),
        "until" => ("timestamp", true),
        other => panic!("time parameter {other} unknown to these tests; add its meaning"),
    }
}

/// Order of two JSON values the way the server sorts a column (NULL lowest, strings
/// byte-wise, integers numerically).
fn cmp_json(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Null, Value::String(s)) => "".cmp(s.as_str()),
        (Value::String(s), Value::Null) => s.as_str().cmp(""),
        (Value::Null, _) => Ordering::Less,
        (_, Value::Null) => Ordering::Greater,
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Number(x), Value::Number(y)) => x
            .as_i64()
            .unwrap_or_default()
            .cmp(&y.as_i64().unwrap_or_default()),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        _ => panic!("incomparable {a} / {b}"),
    }
}

fn query_value(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

// ---------------------------------------------------------------------------------------
// Listing helpers
// ---------------------------------------------------------------------------------------

/// Query parameters every list call of a resource carries (freezes the API-call log).
type Base = Vec<(String, String)>;

fn params(base: &Base, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut p: Vec<(String, String)> = base
        .iter()
        .filter(|(k, _)| !extra.iter().any(|(e, _)| e == k))
        .cloned()
        .collect();
    p.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    p
}

/// Every matching row, in order, through page mode with the largest page.
async fn fetch_all(api: &Api, path: &str, query: &[(String, String)]) -> Vec<Value> {
    let mut rows = Vec::new();
    for page in 1.. {
        let mut q = query.to_vec();
        q.push(("per_page".into(), "500".into()));
        q.push(("page".into(), page.to_string()));
        let r = api.get(&with_query(path, &q)).await;
        assert_eq!(r.status, 200, "GET {path} {q:?}: {}", r.body);
        let total = r.body["total"].as_i64().expect("total") as usize;
        let batch = data(&r);
        let empty = batch.is_empty();
        rows.extend(batch);
        if rows.len() >= total || empty {
            assert_eq!(rows.len(), total, "GET {path} {q:?}: rows vs total");
            break;
        }
    }
    rows
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

/// The fixture table names exactly the resources the server documents, and each fixture's
/// declared sort and filter fields exist.
#[tokio::test]
async fn fixtures_cover_every_resource() {
    let server = quiet_server().start().await;
    let doc = server.anonymous().get("openapi.json").await;
    assert_eq!(doc.status, 200);
    // A resource is a listable collection with an item path beside it; other documented
    // routes (auth, actions, agent registration, …) are not resources.
    let paths = doc.body["paths"].as_object().expect("paths");
    let documented: BTreeSet<String> = paths
        .keys()
        .filter(|p| paths[*p]["get"].is_object() && paths.contains_key(&format!("{p}/{{id}}")))
        .filter_map(|p| p.strip_prefix("/api/v1/"))
        // Key management has its own handlers and tests (access_control.rs).
        .filter(|p| *p != "api-keys")
        .map(str::to_owned)
        .collect();
    let fixtures: BTreeSet<String> = FIXTURES.iter().map(|f| f.path.to_owned()).collect();
    assert_eq!(documented, fixtures, "resources served vs. fixtures");
    for f in FIXTURES {
        let ld = list_doc(&doc.body, f.path);
        assert!(
            ld.sortable.iter().any(|s| s == f.sort),
            "{}: {} not sortable",
            f.path,
            f.sort
        );
        assert!(
            ld.filters.iter().any(|(n, _)| n == f.filter),
            "{}: {} not filterable",
            f.path,
            f.filter
        );
        let writable = doc.body["paths"][format!("/api/v1/{}", f.path)]["post"].is_object();
        assert_eq!(writable, f.write.is_some(), "{}: writable", f.path);
    }
}

/// Create (generated and client ids), get, sparse get, update, delete, with exactly one
/// audit event per successful mutation and none for refused ones.
#[tokio::test]
async fn crud_every_resource_with_one_audit_event_per_mutation() {
    let server = quiet_server().start().await;
    let api = server.admin();
    let deps = Deps::create(&api).await;
    for f in FIXTURES {
        let Some(w) = &f.write else { continue };
        let ctx = f.path;

        // Create with a generated id.
        let body = (w.create)(&deps, 1);
        let r = api.post(f.path, &body).await;
        assert_eq!(r.status, 201, "{ctx}: create {body}: {}", r.body);
        let id = r.body["id"].as_str().expect("id").to_owned();
        assert!(
            id.starts_with(&format!("{}-", f.prefix)) && id.len() > f.prefix.len() + 1,
            "{ctx}: generated id {id}"
        );
        assert_eq!(
            r.headers.get("location").and_then(|v| v.to_str().ok()),
            Some(format!("/api/v1/{}/{id}", f.path).as_str()),
            "{ctx}: Location"
        );
        for (k, v) in body.as_object().expect("object body") {
            assert_eq!(&r.body[k], v, "{ctx}: created field {k}");
        }
        let created_at = r.body["created_at"]
            .as_str()
            .expect("created_at")
            .to_owned();
        assert_eq!(r.body["updated_at"], created_at, "{ctx}: updated_at");
        assert_eq!(
            audit_actions(&api, &id).await,
            vec![format!("{}_created", f.singular)],
            "{ctx}: audit after create"
        );
        let event = &audit_events(&api, &id).await[0];
        assert_eq!(event["actor"], "admin", "{ctx}: audit actor");
        assert_eq!(event["actor_type"], "User", "{ctx}: audit actor type");
        assert_eq!(event["resource_type"], f.singular, "{ctx}: audit type");

        // Get, whole and sparse.
        let g = api.get(&format!("{}/{id}", f.path)).await;
        assert_eq!(g.status, 200, "{ctx}: get: {}", g.body);
        assert_eq!(g.body, r.body, "{ctx}: get equals create answer");
        let sparse = api
            .get(&format!("{}/{id}?fields=id,created_at", f.path))
            .await;
        assert_eq!(sparse.status, 200, "{ctx}: sparse get: {}", sparse.body);
        assert_eq!(key_set(&sparse.body), keys(&["id", "created_at"]), "{ctx}");
        assert_invalid(
            &api.get(&format!("{}/{id}?fields=nope", f.path)).await,
            "fields",
            ctx,
        );
        assert_invalid(
            &api.get(&format!("{}/{id}?sort=name", f.path)).await,
            "sort",
            ctx,
        );

        // Create with a client id; a duplicate is a 409 and writes nothing.
        let client_id = format!("{}-it-client.1_x", f.prefix);
        let mut with_id = (w.create)(&deps, 2);
        with_id["id"] = json!(client_id);
        let c = api.post(f.path, &with_id).await;
        assert_eq!(c.status, 201, "{ctx}: create with id: {}", c.body);
        assert_eq!(c.body["id"], client_id);
        let dup = api.post(f.path, &with_id).await;
        assert_error(&dup, 409, "conflict", &format!("{ctx}: duplicate id"));
        assert_eq!(audit_events(&api, &client_id).await.len(), 1, "{ctx}");
        // A client id must carry the prefix and a readable alphabet.
        for bad in [
            "zz-1".to_owned(),
            format!("{}x-1", f.prefix),
            format!("{}-", f.prefix),
            format!("{}-a b", f.prefix),
        ] {
            let mut b = (w.create)(&deps, 3);
            b["id"] = json!(bad);
            assert_invalid(
                &api.post(f.path, &b).await,
                "id",
                &format!("{ctx}: id {bad}"),
            );
            assert_eq!(
                api.get(&format!("{}/{}", f.path, urlencode(&bad)))
                    .await
                    .status,
                404
            );
        }

        // Unknown reference: 400 naming the field, nothing stored.
        if let Some(field) = w.reference {
            let mut b = (w.create)(&deps, 4);
            let missing = format!("zz-missing-{field}");
            b[field] = json!(missing);
            b["id"] = json!(format!("{}-it-badref", f.prefix));
            assert_invalid(&api.post(f.path, &b).await, field, &format!("{ctx}: ref"));
            assert_eq!(
                api.get(&format!("{}/{}-it-badref", f.path, f.prefix))
                    .await
                    .status,
                404,
                "{ctx}: nothing stored on bad reference"
            );
            // (Create-only references are refused on update for that reason alone.)
            let upd = api
                .put(&format!("{}/{id}", f.path), &json!({field: missing}))
                .await;
            assert_invalid(&upd, field, &format!("{ctx}: ref on update"));
        }

        // Update changes only the given fields.
        let before = api.get(&format!("{}/{id}", f.path)).await.body;
        let change = (w.update)(&deps);
        let u = api.put(&format!("{}/{id}", f.path), &change).await;
        assert_eq!(u.status, 200, "{ctx}: update {change}: {}", u.body);
        for (k, v) in before.as_object().expect("object") {
            match change.get(k) {
                Some(new) => assert_eq!(&u.body[k], new, "{ctx}: updated {k}"),
                None if k == "updated_at" => {
                    let t = u.body[k].as_str().expect("updated_at");
                    assert!(t >= created_at.as_str(), "{ctx}: updated_at {t}");
                }
                None => assert_eq!(&u.body[k], v, "{ctx}: untouched {k}"),
            }
        }
        assert_eq!(key_set(&u.body), key_set(&before), "{ctx}: same keys");
        assert_eq!(api.get(&format!("{}/{id}", f.path)).await.body, u.body);
        // Echoing the whole record back (GET → PUT round trip), an empty body, or the
        // changed values again change nothing: 200 with the record as it was (same
        // updated_at), and no audit event.
        for noop in [u.body.clone(), json!({}), change.clone()] {
            let echo = api.put(&format!("{}/{id}", f.path), &noop).await;
            assert_eq!(echo.status, 200, "{ctx}: no-op {noop}: {}", echo.body);
            assert_eq!(echo.body, u.body, "{ctx}: no-op {noop} answers the record");
        }
        assert_eq!(api.get(&format!("{}/{id}", f.path)).await.body, u.body);
        assert_eq!(
            audit_actions(&api, &id).await,
            sorted(vec![
                format!("{}_created", f.singular),
                format!("{}_updated", f.singular),
            ]),
            "{ctx}: audit after updates"
        );
        let updated = audit_events(&api, &id)
            .await
            .into_iter()
            .find(|e| e["action"] == format!("{}_updated", f.singular))
            .expect("update event");
        // Only the fields whose value differed from `before` count as changed.
        let mut fields: Vec<String> = change
            .as_object()
            .expect("object change")
            .iter()
            .filter(|(k, v)| before.get(k.as_str()) != Some(*v))
            .map(|(k, _)| k.clone())
            .collect();
        fields.sort();
        let mut audited: Vec<String> = updated["details"]["changed_fields"]
            .as_array()
            .expect("changed_fields")
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect();
        audited.sort();
        assert_eq!(
            audited, fields,
            "{ctx}: the update event names what changed"
        );
        let id_mismatch = api
            .put(&format!("{}/{id}", f.path), &json!({"id": client_id}))
            .await;
        assert_invalid(&id_mismatch, "id", ctx);

        // Unknown ids.
        let missing = format!("{}/{}-does-not-exist", f.path, f.prefix);
        assert_error(&api.get(&missing).await, 404, "not_found", ctx);
        assert_error(&api.put(&missing, &change).await, 404, "not_found", ctx);
        assert_error(&api.delete(&missing).await, 404, "not_found", ctx);

        // Delete (certificates are archived, the rest removed).
        let d = api.delete(&format!("{}/{id}", f.path)).await;
        assert_eq!(d.status, 204, "{ctx}: delete: {}", d.body);
        let after = api.get(&format!("{}/{id}", f.path)).await;
        let mut expected = vec![
            format!("{}_created", f.singular),
            format!("{}_updated", f.singular),
        ];
        if w.archives {
            assert_eq!(after.status, 200, "{ctx}: archived record stays");
            assert_eq!(after.body["status"], "Archived", "{ctx}");
            expected.push(format!("{}_archived", f.singular));
            let listed = api
                .get(&with_query(f.path, &[("status", "Archived")]))
                .await;
            assert!(ids(&data(&listed)).contains(&id), "{ctx}: archived listed");
        } else if f.path == "agents" {
            // Agents are retired, not removed: the record stays, its keys are revoked.
            assert_eq!(after.status, 200, "{ctx}: retired agent stays");
            assert_eq!(after.body["status"], "Retired", "{ctx}");
            assert!(after.body["retired_at"].is_string(), "{ctx}");
            expected.push("agent_retired".to_owned());
            assert_eq!(
                api.delete(&format!("{}/{id}", f.path)).await.status,
                204,
                "{ctx}: retiring twice is a no-op"
            );
        } else {
            assert_error(&after, 404, "not_found", &format!("{ctx}: after delete"));
            expected.push(format!("{}_deleted", f.singular));
            assert_error(
                &api.delete(&format!("{}/{id}", f.path)).await,
                404,
                "not_found",
                ctx,
            );
        }
        assert_eq!(
            audit_actions(&api, &id).await,
            sorted(expected),
            "{ctx}: audit after delete"
        );
    }
}

pub(crate) fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Deleting a record another one still references is a 409 that changes nothing; once
/// the referrer is gone the delete goes through.
#[tokio::test]
async fn delete_of_referenced_record_is_a_conflict() {
    let server = quiet_server().start().await;
    let api = server.admin();
    let deps = Deps::create(&api).await;
    let job = created(
        &api,
        "jobs",
        json!({
            "type": "Deployment", "certificate_id": deps.certificate, "target_id": deps.target,
            "scheduled_at": "2030-01-01T00:00:00Z",
        }),
    )
    .await;
    // The fixtures' certificates name no issuer (that would queue issuance); this one does,
    // so the issuer is referenced too. Its issuance job may move in the background, which
    // is why audit events are counted per refused record below.
    created(
        &api,
        "certificates",
        json!({"name": "issued", "common_name": "issued.example.com", "issuer_id": deps.issuer}),
    )
    .await;
    for (path, id) in [
        ("teams", &deps.team),
        ("owners", &deps.owner),
        ("issuers", &deps.issuer),
        ("renewal-policies", &deps.renewal_policy),
        ("profiles", &deps.profile),
        // Agents are retired (soft), never removed, so they are never "referenced".
        ("targets", &deps.target),
    ] {
        let before = api.get(&format!("{path}/{id}")).await.body;
        let events = audit_events(&api, id).await.len();
        let r = api.delete(&format!("{path}/{id}")).await;
        assert_error(&r, 409, "conflict", &format!("delete referenced {path}"));
        assert_eq!(
            api.get(&format!("{path}/{id}")).await.body,
            before,
            "{path}"
        );
        assert_eq!(
            audit_events(&api, id).await.len(),
            events,
            "{path}: a refused delete writes no audit event"
        );
    }

    // team2 is referenced by nothing yet: point an owner at it, then unwind.
    let owner = created(&api, "owners", json!({"name": "x", "team_id": deps.team2})).await;
    assert_error(
        &api.delete(&format!("teams/{}", deps.team2)).await,
        409,
        "conflict",
        "team referenced by owner",
    );
    assert_eq!(api.delete(&format!("owners/{owner}")).await.status, 204);
    assert_eq!(
        api.delete(&format!("teams/{}", deps.team2)).await.status,
        204
    );

    // The target is referenced by the job only: re-pointing is impossible (create-only),
    // so removing the job frees it.
    assert_eq!(api.delete(&format!("jobs/{job}")).await.status, 204);
    assert_eq!(
        api.delete(&format!("targets/{}", deps.target)).await.status,
        204
    );
}

/// List envelope, both pagination modes, every sortable field, sparse fieldsets, every
/// equality filter and every time filter, for every resource including the read-only ones.
#[tokio::test]
async fn list_pagination_sort_and_filters_every_resource() {
    let server = quiet_server().start().await;
    let api = server.admin();
    let deps = Deps::create(&api).await;
    for f in FIXTURES {
        let Some(w) = &f.write else { continue };
        let mut made = Vec::new();
        for n in 0..6 {
            made.push(created(&api, f.path, (w.create)(&deps, n)).await);
        }
        // One updated record so updated_at differs from created_at somewhere.
        tokio::time::sleep(Duration::from_millis(5)).await;
        let u = api
            .put(&format!("{}/{}", f.path, made[2]), &(w.update)(&deps))
            .await;
        assert_eq!(u.status, 200, "{}: {}", f.path, u.body);
    }
    let doc = api.get("openapi.json").await.body;
    for f in FIXTURES.iter().filter(|f| !f.seeded_by_issuance()) {
        let base: Base = if f.path == "audit/api-calls" {
            // Calls are logged asynchronously and every call adds one: freeze the set.
            tokio::time::sleep(Duration::from_millis(500)).await;
            let latest = api.get("audit/api-calls?sort=-timestamp&per_page=1").await;
            let t = latest.body["data"][0]["timestamp"]
                .as_str()
                .expect("an API call is logged")
                .to_owned();
            vec![("until".into(), t)]
        } else {
            Vec::new()
        };
        check_listing(&api, f, &doc, &base).await;
    }
}

async fn check_listing(api: &Api, f: &Fixture, doc: &Value, base: &Base) {
    let ctx = f.path;
    let ld = list_doc(doc, f.path);
    let all = fetch_all(api, f.path, base).await;
    let n = all.len();
    assert!(n >= 4, "{ctx}: only {n} rows to page through");

    // Envelope with defaults.
    let r = api.get(&with_query(f.path, base)).await;
    assert_eq!(r.status, 200, "{ctx}: {}", r.body);
    assert_eq!(
        key_set(&r.body),
        keys(&["data", "total", "page", "per_page"]),
        "{ctx}: envelope"
    );
    assert_eq!(r.body["page"], 1, "{ctx}");
    assert_eq!(r.body["per_page"], 50, "{ctx}");
    assert_eq!(r.body["total"], n, "{ctx}");
    assert_eq!(data(&r), all[..n.min(50)].to_vec(), "{ctx}: first page");
    let explicit = fetch_all(api, f.path, &params(base, &[("sort", f.default_sort)])).await;
    assert_eq!(ids(&explicit), ids(&all), "{ctx}: default sort");

    // Item reads agree with list rows.
    let first_id = all[0]["id"].as_str().expect("id");
    let g = api.get(&format!("{}/{first_id}", f.path)).await;
    assert_eq!(g.status, 200, "{ctx}: get listed row");
    assert_eq!(g.body, all[0], "{ctx}: get equals list row");

    // Page mode.
    let per = n.div_ceil(3).max(1);
    let per_s = per.to_string();
    let mut paged = Vec::new();
    for page in 1..=4 {
        let page_s = page.to_string();
        let r = api
            .get(&with_query(
                f.path,
                &params(base, &[("page", &page_s), ("per_page", &per_s)]),
            ))
            .await;
        assert_eq!(r.status, 200, "{ctx}: page {page}: {}", r.body);
        assert_eq!(r.body["page"], page, "{ctx}");
        assert_eq!(r.body["per_page"], per, "{ctx}");
        assert_eq!(r.body["total"], n, "{ctx}");
        let rows = data(&r);
        assert!(rows.len() <= per, "{ctx}: page too long");
        if page == 4 {
            assert!(rows.is_empty(), "{ctx}: page past the end");
        }
        paged.extend(rows);
    }
    assert_eq!(
        ids(&paged),
        ids(&all),
        "{ctx}: pages concatenate to the list"
    );
    for alias in ["page_size", "limit"] {
        let r = api
            .get(&with_query(f.path, &params(base, &[(alias, &per_s)])))
            .await;
        assert_eq!(r.status, 200, "{ctx}: {alias}");
        assert_eq!(ids(&data(&r)), ids(&all[..per]), "{ctx}: {alias}");
    }
    for (k, v) in [
        ("page", "0"),
        ("page", "-1"),
        ("page", "x"),
        ("per_page", "0"),
        ("per_page", "501"),
    ] {
        assert_invalid(
            &api.get(&with_query(f.path, &params(base, &[(k, v)]))).await,
            k,
            &format!("{ctx}: {k}={v}"),
        );
    }

    // Cursor mode, default sort and a descending explicit sort.
    for sort in [None, Some(format!("-{}", f.sort))] {
        let reference = match &sort {
            None => all.clone(),
            Some(s) => fetch_all(api, f.path, &params(base, &[("sort", s)])).await,
        };
        let mut cursor = String::new();
        let mut seen = Vec::new();
        let mut pages = 0;
        loop {
            let mut extra = vec![("cursor", cursor.as_str()), ("per_page", per_s.as_str())];
            if let Some(s) = &sort {
                extra.push(("sort", s));
            }
            let r = api.get(&with_query(f.path, &params(base, &extra))).await;
            assert_eq!(r.status, 200, "{ctx}: cursor page: {}", r.body);
            assert_eq!(
                key_set(&r.body),
                keys(&["data", "total", "per_page", "next_cursor"]),
                "{ctx}: cursor envelope"
            );
            assert_eq!(r.body["total"], n, "{ctx}");
            assert_eq!(r.body["per_page"], per, "{ctx}");
            let rows = data(&r);
            pages += 1;
            assert!(pages <= n + 1, "{ctx}: cursor never ends");
            seen.extend(rows.clone());
            match &r.body["next_cursor"] {
                Value::Null => break,
                Value::String(c) => {
                    assert_eq!(rows.len(), per, "{ctx}: short page with a next cursor");
                    cursor = c.clone();
                }
                other => panic!("{ctx}: next_cursor {other}"),
            }
        }
        assert_eq!(pages, n.div_ceil(per), "{ctx}: cursor page count");
        assert_eq!(
            ids(&seen),
            ids(&reference),
            "{ctx}: cursor pages ({sort:?}) concatenate to the list"
        );
    }
    // A cursor is bound to its sort and excludes page.
    let r = api
        .get(&with_query(
            f.path,
            &params(base, &[("cursor", ""), ("per_page", "1"), ("sort", "id")]),
        ))
        .await;
    let token = r.body["next_cursor"]
        .as_str()
        .expect("next cursor")
        .to_owned();
    let follow = api
        .get(&with_query(
            f.path,
            &params(
                base,
                &[("cursor", &token), ("per_page", "1"), ("sort", "id")],
            ),
        ))
        .await;
    assert_eq!(follow.status, 200, "{ctx}");
    assert_eq!(
        ids(&data(&follow)),
        ids(&all_sorted(&all, "id")[1..2]),
        "{ctx}"
    );
    assert_invalid(
        &api.get(&with_query(
            f.path,
            &params(base, &[("cursor", &token), ("sort", "-id")]),
        ))
        .await,
        "cursor",
        &format!("{ctx}: cursor under another sort"),
    );
    assert_invalid(
        &api.get(&with_query(
            f.path,
            &params(base, &[("cursor", ""), ("page", "2")]),
        ))
        .await,
        "cursor",
        &format!("{ctx}: cursor with page"),
    );
    assert_invalid(
        &api.get(&with_query(
            f.path,
            &params(base, &[("cursor", "not-a-cursor!")]),
        ))
        .await,
        "cursor",
        &format!("{ctx}: garbage cursor"),
    );

    // Every sortable field, both directions; ties break on id in the same direction.
    assert!(ld.sortable.iter().any(|s| s == "id"), "{ctx}: id sortable");
    for field in &ld.sortable {
        let asc = fetch_all(api, f.path, &params(base, &[("sort", field)])).await;
        let plus = fetch_all(
            api,
            f.path,
            &params(base, &[("sort", &format!("+{field}"))]),
        )
        .await;
        let desc = fetch_all(
            api,
            f.path,
            &params(base, &[("sort", &format!("-{field}"))]),
        )
        .await;
        assert_eq!(
            ids(&asc),
            ids(&all_sorted(&all, field)),
            "{ctx}: sort={field}"
        );
        assert_eq!(ids(&plus), ids(&asc), "{ctx}: sort=+{field}");
        let mut reversed = ids(&asc);
        reversed.reverse();
        assert_eq!(ids(&desc), reversed, "{ctx}: sort=-{field}");
    }
    let unsortable = all[0]
        .as_object()
        .expect("object")
        .keys()
        .find(|k| !ld.sortable.contains(k))
        .cloned()
        .unwrap_or_else(|| "details".into());
    for bad in [unsortable.as_str(), "nope", "-nope", ""] {
        assert_invalid(
            &api.get(&with_query(f.path, &params(base, &[("sort", bad)])))
                .await,
            "sort",
            &format!("{ctx}: sort={bad}"),
        );
    }

    // Sparse fieldsets.
    let fields = format!("id,{}", f.sort);
    let r = api
        .get(&with_query(f.path, &params(base, &[("fields", &fields)])))
        .await;
    assert_eq!(r.status, 200, "{ctx}: fields");
    for row in data(&r) {
        assert_eq!(key_set(&row), keys(&["id", f.sort]), "{ctx}: fields");
    }
    for bad in ["nope", "id,nope", ","] {
        assert_invalid(
            &api.get(&with_query(f.path, &params(base, &[("fields", bad)])))
                .await,
            "fields",
            &format!("{ctx}: fields={bad}"),
        );
    }

    // Every equality filter: single values, "any of", and refused values.
    assert!(!ld.filters.is_empty(), "{ctx}: no filters documented");
    for (field, schema) in &ld.filters {
        let mut values: Vec<Value> = Vec::new();
        for row in &all {
            let v = &row[field.as_str()];
            if !v.is_null() && !values.contains(v) {
                values.push(v.clone());
            }
        }
        if values.is_empty() {
            // Nothing carries a value (e.g. heartbeat fields): probe with a typed value.
            values.push(match schema["type"].as_str() {
                Some("boolean") => json!(true),
                Some("integer") => json!(1),
                _ if schema["enum"].is_array() => schema["enum"][0].clone(),
                _ => json!("no-such-value"),
            });
        }
        let pick: Vec<&Value> = [values.first(), values.get(values.len() / 2), values.last()]
            .into_iter()
            .flatten()
            .collect();
        for v in &pick {
            let qv = query_value(v);
            let got = fetch_all(api, f.path, &params(base, &[(field, &qv)])).await;
            let expected: Vec<Value> = all
                .iter()
                .filter(|r| &r[field.as_str()] == *v)
                .cloned()
                .collect();
            assert_eq!(ids(&got), ids(&expected), "{ctx}: {field}={qv}");
        }
        if values.len() >= 2 {
            let (a, b) = (&values[0], &values[values.len() - 1]);
            let qv = format!("{},{}", query_value(a), query_value(b));
            let got = fetch_all(api, f.path, &params(base, &[(field, &qv)])).await;
            let expected: Vec<Value> = all
                .iter()
                .filter(|r| &r[field.as_str()] == a || &r[field.as_str()] == b)
                .cloned()
                .collect();
            assert_eq!(ids(&got), ids(&expected), "{ctx}: {field}={qv}");
            assert!(!got.is_empty(), "{ctx}: {field}={qv} matched nothing");
        }
        let bad = match schema["type"].as_str() {
            Some("boolean") => Some("maybe"),
            Some("integer") => Some("twelve"),
            _ if schema["enum"].is_array() => Some("NotInTheEnum"),
            _ => None,
        };
        if let Some(bad) = bad {
            assert_invalid(
                &api.get(&with_query(f.path, &params(base, &[(field, bad)])))
                    .await,
                field,
                &format!("{ctx}: {field}={bad}"),
            );
        }
    }
    // Two filters AND together.
    let pair: Vec<(&str, String)> = ld
        .filters
        .iter()
        .filter(|(name, _)| !all[0][name.as_str()].is_null())
        .take(2)
        .map(|(name, _)| (name.as_str(), query_value(&all[0][name.as_str()])))
        .collect();
    if pair.len() == 2 {
        let extra: Vec<(&str, &str)> = pair.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let got = fetch_all(api, f.path, &params(base, &extra)).await;
        let expected: Vec<Value> = all
            .iter()
            .filter(|r| pair.iter().all(|(k, _)| r[*k] == all[0][*k]))
            .cloned()
            .collect();
        assert_eq!(ids(&got), ids(&expected), "{ctx}: {extra:?}");
    }

    // Every time filter.
    for param in &ld.time_params {
        let (column, before) = time_param_meaning(param, &all[0]);
        let mut stamps: Vec<&str> = all.iter().filter_map(|r| r[column].as_str()).collect();
        stamps.sort_unstable();
        let pivots: Vec<String> = if stamps.is_empty() {
            vec!["2030-01-01T00:00:00.000Z".into()]
        } else {
            vec![
                stamps[stamps.len() / 2].to_owned(),
                stamps[0].to_owned(),
                "2000-01-01T00:00:00.000Z".into(),
            ]
        };
        for pivot in &pivots {
            let got = fetch_all(api, f.path, &params(base, &[(param, pivot)])).await;
            let expected: Vec<Value> = all
                .iter()
                .filter(|r| {
                    r[column].as_str().is_some_and(|t| {
                        if before {
                            t < pivot.as_str()
                        } else {
                            t >= pivot.as_str()
                        }
                    })
                })
                .cloned()
                .collect();
            assert_eq!(ids(&got), ids(&expected), "{ctx}: {param}={pivot}");
        }
        // The same instant in another offset means the same thing.
        if let Some(pivot) = stamps.get(stamps.len() / 2) {
            let shifted = shift_to_plus_one(pivot);
            let a = fetch_all(api, f.path, &params(base, &[(param, pivot)])).await;
            let b = fetch_all(api, f.path, &params(base, &[(param, &shifted)])).await;
            assert_eq!(ids(&a), ids(&b), "{ctx}: {param}={shifted}");
        }
        assert_invalid(
            &api.get(&with_query(f.path, &params(base, &[(param, "yesterday")])))
                .await,
            param,
            &format!("{ctx}: {param}=yesterday"),
        );
    }

    // Unknown and repeated parameters are refused, naming the parameter.
    let r = api
        .get(&with_query(f.path, &params(base, &[("stauts", "x")])))
        .await;
    assert_invalid(&r, "stauts", &format!("{ctx}: unknown parameter"));
    assert!(
        r.body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("stauts")),
        "{ctx}: message names the parameter"
    );
    let mut twice = params(base, &[("sort", "id")]);
    twice.push(("sort".into(), "-id".into()));
    assert_invalid(
        &api.get(&with_query(f.path, &twice)).await,
        "sort",
        &format!("{ctx}: repeated parameter"),
    );

    if f.write.is_none() {
        // Read-only resources: no writes of any kind.
        let id = all[0]["id"].as_str().expect("id");
        for r in [
            api.post(f.path, &json!({})).await,
            api.put(&format!("{}/{id}", f.path), &json!({})).await,
            api.delete(&format!("{}/{id}", f.path)).await,
            api.post(&format!("{}/{id}", f.path), &json!({})).await,
        ] {
            assert_error(&r, 405, "method_not_allowed", &format!("{ctx}: write"));
        }
        assert_error(
            &api.get(&format!("{}/{}-nope", f.path, f.prefix)).await,
            404,
            "not_found",
            ctx,
        );
        assert!(id.starts_with(&format!("{}-", f.prefix)), "{ctx}: id {id}");
    }
}

/// `rows` ordered by `field` ascending, then id.
fn all_sorted(rows: &[Value], field: &str) -> Vec<Value> {
    let mut v = rows.to_vec();
    v.sort_by(|a, b| cmp_json(&a[field], &b[field]).then_with(|| cmp_json(&a["id"], &b["id"])));
    v
}

/// `2026-01-02T03:04:05.678Z` → `2026-01-02T04:04:05.678+01:00`.
fn shift_to_plus_one(ts: &str) -> String {
    let (date, rest) = ts.split_once('T').expect("timestamp");
    let hour: u32 = rest[..2].parse().expect("hour");
    if hour == 23 {
        // Crossing midnight would need date arithmetic; the plain form says the same.
        return ts.to_owned();
    }
    let tail = rest[2..].trim_end_matches('Z');
    format!("{date}T{:02}{tail}+01:00", hour + 1)
}

/// Policy violations are read-only and written by the issuance pipeline only: issue a few
/// certificates that break rules, wait until the pipeline is done with them, then list the
/// violations like every other resource.
#[tokio::test]
async fn policy_violations_recorded_by_issuance_list_like_every_resource() {
    let server = ServerBuilder::new()
        .env("CERTCTL_KEYGEN_MODE", "server")
        .env("CERTCTL_SCHEDULER_RETRY_INTERVAL", "24h")
        .start()
        .await;
    let api = server.admin();
    let issuer = created(
        &api,
        "issuers",
        json!({"name": "ca", "type": "local", "config": {}}),
    )
    .await;
    // A warning (recorded) and a critical rule (recorded, and the issuance is refused).
    created(
        &api,
        "policies",
        json!({"name": "names", "type": "SanPattern", "severity": "Warning",
               "config": {"allowed_patterns": ["*.allowed.invalid"]}}),
    )
    .await;
    created(
        &api,
        "policies",
        json!({"name": "lifetime", "type": "MaxLifetime", "severity": "Critical",
               "config": {"max_days": 1}}),
    )
    .await;
    for n in 0..3 {
        created(
            &api,
            "certificates",
            json!({"name": format!("c{n}"), "common_name": format!("c{n}.example.com"),
                   "issuer_id": issuer}),
        )
        .await;
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let violations = api.get("policy-violations").await.body["total"].as_i64();
        let busy = api
            .get("jobs?status=Pending,Running,AwaitingCSR,AwaitingApproval")
            .await
            .body["total"]
            .as_i64();
        if violations == Some(6) && busy == Some(0) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "pipeline did not settle: {violations:?} violations, {busy:?} jobs in flight"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let doc = api.get("openapi.json").await.body;
    let f = FIXTURES
        .iter()
        .find(|f| f.seeded_by_issuance())
        .expect("fixture");
    check_listing(&api, f, &doc, &Vec::new()).await;
}
