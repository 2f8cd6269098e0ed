//! Repository tests: every body `async fn xxx(store: Store)` runs twice, as `xxx_sqlite`
//! (a temp-file database) and `xxx_postgres` (a fresh database on the server named by
//! `CERTCTL_TEST_POSTGRES_URL`, default `postgres://postgres@127.0.0.1:5432/postgres`).
//!
//! The PostgreSQL variants fail, never skip, when the server is unreachable: CI provides one.

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::future::Future;
use std::time::Duration;

use certctl_host::domain::audit::{self as audit_spec, Actor, ActorKind, AuditEntry};
use certctl_host::domain::listing;
use certctl_host::domain::resource::ResourceSpec;
use certctl_host::domain::role::Role;
use certctl_host::domain::{
    agent, api_call, certificate, issuer, owner, profile, renewal_policy, team,
};
use certctl_host::store::api_calls::{self, ApiCall};
use certctl_host::store::records::{self, Record, WriteError};
use certctl_host::store::{self, Dialect, Store, StoreError, api_keys, audit};
use serde_json::{Value, json};
use sqlx::{Connection as _, Executor as _, Row as _};

// ---------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------

/// Instantiates each body once per backend under the two given test names.
macro_rules! on_both_backends {
    ($($body:ident => $sqlite:ident, $postgres:ident;)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $sqlite() {
            run_sqlite($body).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $postgres() {
            run_postgres($body).await;
        }
    )*};
}

on_both_backends! {
    crud_round_trip => crud_round_trip_sqlite, crud_round_trip_postgres;
    list_filters => list_filters_sqlite, list_filters_postgres;
    sort_puts_nulls_lowest => sort_puts_nulls_lowest_sqlite, sort_puts_nulls_lowest_postgres;
    offset_pagination => offset_pagination_sqlite, offset_pagination_postgres;
    cursor_pagination_walks_every_row_once =>
        cursor_pagination_walks_every_row_once_sqlite,
        cursor_pagination_walks_every_row_once_postgres;
    unknown_reference_is_refused =>
        unknown_reference_is_refused_sqlite, unknown_reference_is_refused_postgres;
    duplicate_id_conflicts => duplicate_id_conflicts_sqlite, duplicate_id_conflicts_postgres;
    delete_while_referenced_conflicts =>
        delete_while_referenced_conflicts_sqlite, delete_while_referenced_conflicts_postgres;
    certificate_delete_archives =>
        certificate_delete_archives_sqlite, certificate_delete_archives_postgres;
    each_mutation_appends_one_audit_event =>
        each_mutation_appends_one_audit_event_sqlite,
        each_mutation_appends_one_audit_event_postgres;
    audit_event_commits_with_its_change =>
        audit_event_commits_with_its_change_sqlite, audit_event_commits_with_its_change_postgres;
    migrations_are_idempotent =>
        migrations_are_idempotent_sqlite, migrations_are_idempotent_postgres;
    api_keys_store_hashes_only =>
        api_keys_store_hashes_only_sqlite, api_keys_store_hashes_only_postgres;
    api_calls_append_and_list =>
        api_calls_append_and_list_sqlite, api_calls_append_and_list_postgres;
    foreign_keys_are_enforced =>
        foreign_keys_are_enforced_sqlite, foreign_keys_are_enforced_postgres;
    audit_and_api_calls_are_append_only =>
        audit_and_api_calls_are_append_only_sqlite, audit_and_api_calls_are_append_only_postgres;
    api_call_retention_prunes_only_old_rows =>
        api_call_retention_prunes_only_old_rows_sqlite,
        api_call_retention_prunes_only_old_rows_postgres;
    concurrent_writes_all_succeed =>
        concurrent_writes_all_succeed_sqlite, concurrent_writes_all_succeed_postgres;
    notification_queue_fans_out_requeues_and_digests =>
        notification_queue_fans_out_requeues_and_digests_sqlite,
        notification_queue_fans_out_requeues_and_digests_postgres;
}

/// Runs `body` on a fresh SQLite file in a temp dir.
pub(crate) async fn run_sqlite<F, Fut>(body: F)
where
    F: FnOnce(Store) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let dir = tempfile::tempdir().expect("temp dir");
    let url = store::default_sqlite_url(dir.path());
    let store = Store::connect(&url)
        .await
        .unwrap_or_else(|e| panic!("connect {url}: {e}"));
    assert_eq!(store.dialect(), Dialect::Sqlite);
    let result = tokio::spawn(body(store.clone())).await;
    store.close().await;
    drop(dir);
    propagate(result);
}

const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The maintenance URL the PostgreSQL tests create their databases through.
fn postgres_base_url() -> String {
    std::env::var("CERTCTL_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| DEFAULT_POSTGRES_URL.to_owned())
}

/// `base` with its database name replaced by `db` (query string kept).
fn url_with_database(base: &str, db: &str) -> String {
    let (main, query) = match base.split_once('?') {
        Some((m, q)) => (m, format!("?{q}")),
        None => (base, String::new()),
    };
    let authority_start = main.find("://").map_or(0, |i| i + 3);
    let main = match main[authority_start..].find('/') {
        Some(i) => &main[..authority_start + i],
        None => main,
    };
    format!("{main}/{db}{query}")
}

async fn postgres_admin() -> sqlx::PgConnection {
    let url = postgres_base_url();
    let shown = store::redact(&url);
    match tokio::time::timeout(Duration::from_secs(10), sqlx::PgConnection::connect(&url)).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => panic!(
            "PostgreSQL is not reachable at {shown}: {e}\n\
             The *_postgres store tests need a running server; start one or point \
             CERTCTL_TEST_POSTGRES_URL at it."
        ),
        Err(_) => panic!(
            "PostgreSQL at {shown} did not answer within 10 s.\n\
             The *_postgres store tests need a running server; start one or point \
             CERTCTL_TEST_POSTGRES_URL at it."
        ),
    }
}

/// Runs `body` on a fresh database `certctl_t_<random>`, dropped afterwards (best effort).
pub(crate) async fn run_postgres<F, Fut>(body: F)
where
    F: FnOnce(Store) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let name = format!("certctl_t_{:016x}", rand::random::<u64>());
    let mut admin = postgres_admin().await;
    admin
        .execute(format!("CREATE DATABASE {name}").as_str())
        .await
        .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
    let url = url_with_database(&postgres_base_url(), &name);
    let store = match Store::connect(&url).await {
        Ok(s) => s,
        Err(e) => {
            drop_database(&mut admin, &name).await;
            panic!("connect {}: {e}", store::redact(&url));
        }
    };
    assert_eq!(store.dialect(), Dialect::Postgres);
    let result = tokio::spawn(body(store.clone())).await;
    store.close().await;
    drop_database(&mut admin, &name).await;
    let _ = admin.close().await;
    propagate(result);
}

async fn drop_database(admin: &mut sqlx::PgConnection, name: &str) {
    if let Err(e) = admin
        .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
        .await
    {
        eprintln!("warning: could not drop test database {name}: {e}");
    }
}

fn propagate(result: Result<(), tokio::task::JoinError>) {
    if let Err(e) = result {
        match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(e) => panic!("test body did not finish: {e}"),
        }
    }
}

/// A second, independent connection to the database `store` uses.
async fn reconnect(store: &Store) -> Store {
    let url = match store.dialect() {
        Dialect::Sqlite => {
            let row = sqlx::query("PRAGMA database_list")
                .fetch_one(store.pool())
                .await
                .unwrap();
            let file: String = row.try_get(2).unwrap();
            assert!(!file.is_empty(), "SQLite database is not a file");
            format!("sqlite://{file}?mode=rwc")
        }
        Dialect::Postgres => {
            let row = sqlx::query("SELECT current_database()::text")
                .fetch_one(store.pool())
                .await
                .unwrap();
            let db: String = row.try_get(0).unwrap();
            url_with_database(&postgres_base_url(), &db)
        }
    };
    Store::connect(&url)
        .await
        .unwrap_or_else(|e| panic!("second connect to {}: {e}", store::redact(&url)))
}

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

fn tester() -> Actor {
    Actor {
        name: "tester".into(),
        kind: ActorKind::User,
    }
}

/// Canonical timestamp `n` minutes after 2026-03-01T00:00Z (n < 28 days).
fn ts(n: u32) -> String {
    format!(
        "2026-03-{:02}T{:02}:{:02}:00.000Z",
        1 + n / 1440,
        (n / 60) % 24,
        n % 60
    )
}

/// Validates `body` like the API does, then lets the test set server-owned fields
/// (`extra`), then stores the record.
async fn create_with(
    store: &Store,
    spec: &ResourceSpec,
    id: &str,
    body: Value,
    extra: Value,
    now: &str,
) -> Record {
    let mut values = spec
        .validate_create(&body)
        .unwrap_or_else(|e| panic!("invalid test body for {id}: {e}"));
    if let Value::Object(extra) = extra {
        values.extend(extra);
    }
    records::create(store, spec, id, values, now, &tester())
        .await
        .unwrap_or_else(|e| panic!("create {id}: {e}"))
}

async fn create(store: &Store, spec: &ResourceSpec, id: &str, body: Value, now: &str) -> Record {
    create_with(store, spec, id, body, Value::Null, now).await
}

async fn update(store: &Store, spec: &ResourceSpec, id: &str, body: Value, now: &str) -> Record {
    let current = records::get(store, spec, id).await.unwrap();
    let changes = spec
        .validate_update(&body, &current)
        .unwrap_or_else(|e| panic!("invalid test update for {id}: {e}"));
    records::update(store, spec, id, changes, now, &tester())
        .await
        .unwrap_or_else(|e| panic!("update {id}: {e}"))
}

fn query(spec: &ResourceSpec, pairs: &[(&str, &str)]) -> listing::ListQuery {
    let owned: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    listing::parse(spec, &owned).unwrap_or_else(|e| panic!("query {pairs:?}: {e}"))
}

/// Rows of one list call.
async fn list(store: &Store, spec: &ResourceSpec, pairs: &[(&str, &str)]) -> records::ListResult {
    records::list(store, spec, &query(spec, pairs))
        .await
        .unwrap_or_else(|e| panic!("list {} {pairs:?}: {e}", spec.path))
}

fn ids(rows: &[Record]) -> Vec<String> {
    rows.iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Ids of every match in one big page, in list order.
async fn list_ids(store: &Store, spec: &ResourceSpec, pairs: &[(&str, &str)]) -> Vec<String> {
    let mut pairs = pairs.to_vec();
    pairs.push(("per_page", "500"));
    let r = list(store, spec, &pairs).await;
    assert_eq!(r.total, r.rows.len() as i64, "total disagrees with rows");
    ids(&r.rows)
}

fn set(ids: &[&str]) -> HashSet<String> {
    ids.iter().map(|s| (*s).to_owned()).collect()
}

fn as_set(ids: Vec<String>) -> HashSet<String> {
    ids.into_iter().collect()
}

async fn audit_count(store: &Store) -> i64 {
    sqlx::query("SELECT COUNT(*) FROM audit_events")
        .fetch_one(store.pool())
        .await
        .unwrap()
        .try_get(0)
        .unwrap()
}

/// Audit events about one resource, oldest first.
async fn audit_for(store: &Store, resource_id: &str) -> Vec<Record> {
    list(
        store,
        &audit_spec::SPEC,
        &[
            ("resource_id", resource_id),
            ("sort", "timestamp"),
            ("per_page", "500"),
        ],
    )
    .await
    .rows
}

/// Every row of an append-only table, by id.
async fn snapshot(store: &Store, spec: &ResourceSpec) -> Vec<Record> {
    list(store, spec, &[("sort", "id"), ("per_page", "500")])
        .await
        .rows
}

fn assert_not_found(e: StoreError, resource: &str, id: &str) {
    match e {
        StoreError::NotFound { resource: r, id: i } => {
            assert_eq!(r, resource);
            assert_eq!(i, id);
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
}

fn is_conflict(e: &WriteError) -> bool {
    matches!(e, WriteError::Store(StoreError::Conflict(_)))
}

// ---------------------------------------------------------------------------------------
// Bodies
// ---------------------------------------------------------------------------------------

/// Create/get/update/delete over text, JSON, bool, int (incl. > 2^31) and timestamp columns.
async fn crud_round_trip(store: Store) {
    store.ping(Duration::from_secs(2)).await.unwrap();

    // Team: plain text, timestamps.
    let t = create(
        &store,
        &team::SPEC,
        "team-plat",
        json!({"name": "Platform", "description": "Runs the platform"}),
        &ts(1),
    )
    .await;
    assert_eq!(
        Value::Object(t.clone()),
        json!({
            "id": "team-plat", "name": "Platform", "description": "Runs the platform",
            "created_at": ts(1), "updated_at": ts(1),
        })
    );
    assert_eq!(
        records::get(&store, &team::SPEC, "team-plat")
            .await
            .unwrap(),
        t
    );

    // Renewal policy: defaults for ints, a bool and an int list.
    let rp = create(
        &store,
        &renewal_policy::SPEC,
        "rp-std",
        json!({"name": "standard"}),
        &ts(2),
    )
    .await;
    assert_eq!(rp["renewal_window_days"], json!(30));
    assert_eq!(rp["auto_renew"], json!(true));
    assert_eq!(rp["max_retries"], json!(3));
    assert_eq!(rp["retry_interval_seconds"], json!(3600));
    assert_eq!(rp["alert_thresholds_days"], json!([30, 14, 7, 0]));
    let rp2 = update(
        &store,
        &renewal_policy::SPEC,
        "rp-std",
        json!({"auto_renew": false, "alert_thresholds_days": [60, 1], "renewal_window_days": 0}),
        &ts(3),
    )
    .await;
    assert_eq!(rp2["auto_renew"], json!(false));
    assert_eq!(rp2["alert_thresholds_days"], json!([60, 1]));
    assert_eq!(rp2["renewal_window_days"], json!(0));
    assert_eq!(rp2["created_at"], json!(ts(2)));
    assert_eq!(rp2["updated_at"], json!(ts(3)));
    assert_eq!(
        records::get(&store, &renewal_policy::SPEC, "rp-std")
            .await
            .unwrap(),
        rp2
    );

    // Profile: object list, string lists, an int beyond i32, nullable int, two bools.
    let big: i64 = 3_000_000_000;
    let p = create(
        &store,
        &profile::SPEC,
        "prof-web",
        json!({
            "name": "web",
            "allowed_key_algorithms": [{"algorithm": "ECDSA", "min_size": 256}, {"algorithm": "RSA", "min_size": 3072}],
            "max_ttl_seconds": big,
            "required_sans": ["a.example.com"],
            "requires_approval": true,
        }),
        &ts(4),
    )
    .await;
    assert_eq!(
        Value::Object(p.clone()),
        json!({
            "id": "prof-web", "name": "web", "description": null,
            "allowed_key_algorithms": [{"algorithm": "ECDSA", "min_size": 256}, {"algorithm": "RSA", "min_size": 3072}],
            "max_ttl_seconds": big,
            "required_sans": ["a.example.com"],
            "allowed_ekus": ["serverAuth"],
            "requires_approval": true,
            "enabled": true,
            "created_at": ts(4), "updated_at": ts(4),
        })
    );
    let p2 = update(
        &store,
        &profile::SPEC,
        "prof-web",
        json!({"max_ttl_seconds": null, "enabled": false, "description": "edited", "allowed_ekus": []}),
        &ts(5),
    )
    .await;
    assert_eq!(p2["max_ttl_seconds"], Value::Null);
    assert_eq!(p2["enabled"], json!(false));
    assert_eq!(p2["requires_approval"], json!(true));
    assert_eq!(p2["description"], json!("edited"));
    assert_eq!(p2["allowed_ekus"], json!([]));
    assert_eq!(
        records::get(&store, &profile::SPEC, "prof-web")
            .await
            .unwrap(),
        p2
    );

    // Issuer: a nested JSON object with awkward text survives byte for byte.
    let config = json!({
        "directory_url": "https://acme.example/dir",
        "nested": {"list": [1, 2.5, {"x": null}], "flag": false},
        "note": "ünïcödé \"double\" 'single' \\ back\nslash; DROP TABLE issuers; --",
    });
    let i = create(
        &store,
        &issuer::SPEC,
        "iss-acme",
        json!({"name": "ACME", "type": "acme", "config": config, "enabled": false}),
        &ts(6),
    )
    .await;
    assert_eq!(i["config"], config);
    assert_eq!(i["enabled"], json!(false));
    assert_eq!(i["type"], json!("acme"));
    let i2 = update(
        &store,
        &issuer::SPEC,
        "iss-acme",
        json!({"enabled": true, "config": {}}),
        &ts(7),
    )
    .await;
    assert_eq!(i2["enabled"], json!(true));
    assert_eq!(i2["config"], json!({}));

    // Owner and certificate with references, a timestamp and server-owned status.
    create(
        &store,
        &owner::SPEC,
        "o-ann",
        json!({"name": "Ann", "email": "ann@example.com", "team_id": "team-plat"}),
        &ts(8),
    )
    .await;
    let c = create_with(
        &store,
        &certificate::SPEC,
        "mc-api",
        json!({
            "name": "api", "common_name": "api.example.com",
            "sans": ["api.example.com", "10.0.0.1"], "environment": "production",
            "owner_id": "o-ann", "team_id": "team-plat", "issuer_id": "iss-acme",
            "renewal_policy_id": "rp-std", "profile_id": "prof-web",
            "tags": {"tier": "gold", "n": 1},
        }),
        json!({"status": "Active", "expires_at": "2027-06-30T12:00:00.000Z"}),
        &ts(9),
    )
    .await;
    assert_eq!(
        Value::Object(c.clone()),
        json!({
            "id": "mc-api", "name": "api", "common_name": "api.example.com",
            "sans": ["api.example.com", "10.0.0.1"], "environment": "production",
            "owner_id": "o-ann", "team_id": "team-plat", "issuer_id": "iss-acme",
            "renewal_policy_id": "rp-std", "profile_id": "prof-web",
            "status": "Active", "expires_at": "2027-06-30T12:00:00.000Z",
            "tags": {"tier": "gold", "n": 1},
            "created_at": ts(9), "updated_at": ts(9),
        })
    );
    let c2 = update(
        &store,
        &certificate::SPEC,
        "mc-api",
        json!({"tags": {}, "environment": null, "sans": [], "owner_id": null}),
        &ts(10),
    )
    .await;
    assert_eq!(c2["owner_id"], Value::Null);
    assert_eq!(c2["tags"], json!({}));
    assert_eq!(c2["environment"], Value::Null);
    assert_eq!(c2["sans"], json!([]));
    assert_eq!(c2["status"], json!("Active"));
    assert_eq!(c2["created_at"], json!(ts(9)));
    assert_eq!(c2["updated_at"], json!(ts(10)));

    // Delete: gone afterwards; a second delete and an update say NotFound.
    records::delete(&store, &owner::SPEC, "o-ann", &ts(11), &tester())
        .await
        .unwrap();
    assert_not_found(
        records::get(&store, &owner::SPEC, "o-ann")
            .await
            .unwrap_err(),
        "owner",
        "o-ann",
    );
    match records::delete(&store, &owner::SPEC, "o-ann", &ts(12), &tester()).await {
        Err(WriteError::Store(e)) => assert_not_found(e, "owner", "o-ann"),
        other => panic!("expected NotFound, got {other:?}"),
    }
    let mut changes = Record::new();
    changes.insert("name".into(), json!("x"));
    match records::update(&store, &owner::SPEC, "o-ann", changes, &ts(12), &tester()).await {
        Err(WriteError::Store(e)) => assert_not_found(e, "owner", "o-ann"),
        other => panic!("expected NotFound, got {other:?}"),
    }
}

/// Certificates used by the filter and sort tests.
async fn seed_certificates(store: &Store) {
    create(store, &team::SPEC, "team-a", json!({"name": "a"}), &ts(0)).await;
    create(store, &team::SPEC, "team-b", json!({"name": "b"}), &ts(0)).await;
    // (id, client fields, server-owned fields, created minute)
    let rows = [
        (
            "mc-c1",
            json!({"environment": "prod", "team_id": "team-a"}),
            json!({"status": "Active", "expires_at": ts(100)}),
            1,
        ),
        (
            "mc-c2",
            json!({"environment": "prod", "team_id": "team-b"}),
            json!({"status": "Expiring", "expires_at": ts(200)}),
            2,
        ),
        (
            "mc-c3",
            json!({"environment": "staging", "team_id": "team-a"}),
            json!({"status": "Active"}),
            3,
        ),
        (
            "mc-c4",
            json!({}),
            json!({"status": "Failed", "expires_at": ts(300)}),
            4,
        ),
        (
            "mc-c5",
            json!({"environment": "dev"}),
            json!({"status": "Revoked", "expires_at": ts(50)}),
            5,
        ),
    ];
    for (id, mut body, extra, created) in rows {
        body["name"] = json!(id);
        body["common_name"] = json!(format!("{id}.example.com"));
        create_with(store, &certificate::SPEC, id, body, extra, &ts(created)).await;
    }
}

/// Query parameters and the ids they must select.
type FilterCase = (Vec<(&'static str, String)>, Vec<&'static str>);

/// Equality, any-of, combined, time-range, bool and int filters; totals follow filters.
async fn list_filters(store: Store) {
    seed_certificates(&store).await;
    let spec = &certificate::SPEC;
    let cases: Vec<FilterCase> = vec![
        (vec![], vec!["mc-c1", "mc-c2", "mc-c3", "mc-c4", "mc-c5"]),
        (vec![("environment", "prod".into())], vec!["mc-c1", "mc-c2"]),
        (
            vec![("status", "Active,Expiring".into())],
            vec!["mc-c1", "mc-c2", "mc-c3"],
        ),
        (
            vec![("status", "Active".into()), ("team_id", "team-a".into())],
            vec!["mc-c1", "mc-c3"],
        ),
        (
            vec![("team_id", "team-a,team-b".into())],
            vec!["mc-c1", "mc-c2", "mc-c3"],
        ),
        (vec![("status", "Archived".into())], vec![]),
        // Strictly before; NULL expiry never matches a range.
        (vec![("expires_before", ts(200))], vec!["mc-c1", "mc-c5"]),
        // At or after.
        (vec![("expires_after", ts(200))], vec!["mc-c2", "mc-c4"]),
        (
            vec![("expires_after", ts(60)), ("expires_before", ts(250))],
            vec!["mc-c1", "mc-c2"],
        ),
        // Any RFC 3339 offset is normalised before comparing: 04:10+01:00 = 03:10Z = ts(190).
        (
            vec![("expires_before", "2026-03-01T04:10:00+01:00".into())],
            vec!["mc-c1", "mc-c5"],
        ),
        (
            vec![("created_after", ts(3))],
            vec!["mc-c3", "mc-c4", "mc-c5"],
        ),
        (vec![("created_before", ts(3))], vec!["mc-c1", "mc-c2"]),
        (
            vec![
                ("created_after", ts(2)),
                ("created_before", ts(5)),
                ("status", "Active,Failed,Revoked".into()),
            ],
            vec!["mc-c3", "mc-c4"],
        ),
    ];
    for (pairs, expected) in cases {
        let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        assert_eq!(
            as_set(list_ids(&store, spec, &pairs).await),
            set(&expected),
            "filter {pairs:?}"
        );
    }

    // updated_after/before see the update time, not the creation time.
    update(&store, spec, "mc-c5", json!({"name": "five"}), &ts(30)).await;
    assert_eq!(
        list_ids(&store, spec, &[("updated_after", &ts(30))]).await,
        vec!["mc-c5"]
    );
    assert_eq!(
        list_ids(&store, spec, &[("updated_before", &ts(30))])
            .await
            .len(),
        4
    );

    // The total counts every match, not just the page.
    let page = list(
        &store,
        spec,
        &[
            ("status", "Active,Expiring"),
            ("per_page", "1"),
            ("page", "2"),
        ],
    )
    .await;
    assert_eq!(page.total, 3);
    assert_eq!(page.rows.len(), 1);

    // Bool filters.
    for (id, enabled) in [("iss-on1", true), ("iss-off", false), ("iss-on2", true)] {
        create(
            &store,
            &issuer::SPEC,
            id,
            json!({"name": id, "type": "local", "enabled": enabled}),
            &ts(40),
        )
        .await;
    }
    assert_eq!(
        list_ids(&store, &issuer::SPEC, &[("enabled", "false")]).await,
        vec!["iss-off"]
    );
    assert_eq!(
        as_set(list_ids(&store, &issuer::SPEC, &[("enabled", "true")]).await),
        set(&["iss-on1", "iss-on2"])
    );
    assert_eq!(
        list_ids(&store, &issuer::SPEC, &[("enabled", "true,false")])
            .await
            .len(),
        3
    );
}

/// Ascending puts NULLs first, descending last, for text, timestamp and int columns;
/// ints sort numerically; ties break by id in the sort direction.
async fn sort_puts_nulls_lowest(store: Store) {
    seed_certificates(&store).await;
    let spec = &certificate::SPEC;
    let asc = ["mc-c4", "mc-c5", "mc-c1", "mc-c2", "mc-c3"];
    assert_eq!(
        list_ids(&store, spec, &[("sort", "environment")]).await,
        asc
    );
    let mut desc = asc;
    desc.reverse();
    assert_eq!(
        list_ids(&store, spec, &[("sort", "-environment")]).await,
        desc
    );

    let asc = ["mc-c3", "mc-c5", "mc-c1", "mc-c2", "mc-c4"];
    assert_eq!(list_ids(&store, spec, &[("sort", "expires_at")]).await, asc);
    let mut desc = asc;
    desc.reverse();
    assert_eq!(
        list_ids(&store, spec, &[("sort", "-expires_at")]).await,
        desc
    );
    // The reference API's camelCase alias.
    assert_eq!(list_ids(&store, spec, &[("sort", "-notAfter")]).await, desc);

    let by_created = ["mc-c1", "mc-c2", "mc-c3", "mc-c4", "mc-c5"];
    assert_eq!(
        list_ids(&store, spec, &[("sort", "created_at")]).await,
        by_created
    );
    // Default sort is by name.
    assert_eq!(list_ids(&store, spec, &[]).await, by_created);

    // Int column: NULL lowest, numeric (not lexicographic) order.
    for (id, ttl) in [
        ("prof-a", Some(3600)),
        ("prof-b", None),
        ("prof-c", Some(60)),
        ("prof-d", Some(3_000_000_000_i64)),
        ("prof-e", Some(3600)),
    ] {
        let mut body = json!({"name": id});
        if let Some(ttl) = ttl {
            body["max_ttl_seconds"] = json!(ttl);
        }
        create(&store, &profile::SPEC, id, body, &ts(0)).await;
    }
    let asc = ["prof-b", "prof-c", "prof-a", "prof-e", "prof-d"];
    assert_eq!(
        list_ids(&store, &profile::SPEC, &[("sort", "max_ttl_seconds")]).await,
        asc
    );
    let mut desc = asc;
    desc.reverse();
    assert_eq!(
        list_ids(&store, &profile::SPEC, &[("sort", "-max_ttl_seconds")]).await,
        desc
    );
}

/// 23 certificates whose sortable columns repeat and include NULLs.
async fn seed_23(store: &Store) -> Vec<Record> {
    let envs = [Some("alpha"), Some("beta"), None, Some("gamma")];
    let mut out = Vec::new();
    for i in 0..23u32 {
        let id = format!("mc-p{i:02}");
        let mut body =
            json!({"name": format!("cert{:02}", (i * 7) % 23), "common_name": "x.example.com"});
        if let Some(env) = envs[(i % 4) as usize] {
            body["environment"] = json!(env);
        }
        let extra = if i % 5 == 0 {
            json!({})
        } else {
            json!({"expires_at": ts(1000 + (i * 7) % 4)})
        };
        out.push(create_with(store, &certificate::SPEC, &id, body, extra, &ts(i % 3)).await);
    }
    out
}

/// The order a sort must produce, computed independently: NULL lowest, then by id.
fn expected_order(rows: &[Record], column: &str, descending: bool) -> Vec<String> {
    let mut keyed: Vec<(String, String)> = rows
        .iter()
        .map(|r| {
            (
                r[column].as_str().unwrap_or("").to_owned(),
                r["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    keyed.sort();
    if descending {
        keyed.reverse();
    }
    keyed.into_iter().map(|(_, id)| id).collect()
}

/// Page by page with `page`/`per_page`: every row exactly once, in sort order.
async fn offset_pagination(store: Store) {
    let rows = seed_23(&store).await;
    for sort in ["environment", "-environment", "-expires_at", "created_at"] {
        let (column, desc) = match sort.strip_prefix('-') {
            Some(c) => (c, true),
            None => (sort, false),
        };
        let mut seen = Vec::new();
        let mut sizes = Vec::new();
        for page in 1..=6 {
            let page = page.to_string();
            let r = list(
                &store,
                &certificate::SPEC,
                &[("sort", sort), ("per_page", "5"), ("page", &page)],
            )
            .await;
            assert_eq!(r.total, 23);
            assert!(r.next_cursor.is_none(), "offset mode returns no cursor");
            sizes.push(r.rows.len());
            seen.extend(ids(&r.rows));
        }
        assert_eq!(sizes, [5, 5, 5, 5, 3, 0], "page sizes for sort {sort}");
        assert_eq!(seen, expected_order(&rows, column, desc), "sort {sort}");
    }
}

/// Walks `?cursor=` pages to the end; returns ids in order and the page sizes.
async fn walk_cursor(
    store: &Store,
    spec: &ResourceSpec,
    pairs: &[(&str, &str)],
    page_size: usize,
) -> (Vec<String>, Vec<usize>) {
    let mut cursor = String::new();
    let mut seen = Vec::new();
    let mut sizes = Vec::new();
    let size = page_size.to_string();
    loop {
        let mut p = pairs.to_vec();
        p.push(("cursor", &cursor));
        p.push(("page_size", &size));
        let r = list(store, spec, &p).await;
        sizes.push(r.rows.len());
        seen.extend(ids(&r.rows));
        match r.next_cursor {
            Some(next) => {
                assert_eq!(r.rows.len(), page_size, "only the last page may be short");
                cursor = next;
            }
            None => break,
        }
        assert!(sizes.len() <= 50, "cursor walk does not end: {sizes:?}");
    }
    (seen, sizes)
}

/// Keyset pagination over a column with duplicates and NULLs, both directions: no row
/// is skipped or repeated, and the order equals the one-page order.
async fn cursor_pagination_walks_every_row_once(store: Store) {
    let rows = seed_23(&store).await;
    let spec = &certificate::SPEC;
    for sort in [
        "environment",
        "-environment",
        "expires_at",
        "-expires_at",
        "created_at",
        "-created_at",
        "name",
        "-id",
    ] {
        let (column, desc) = match sort.strip_prefix('-') {
            Some(c) => (c, true),
            None => (sort, false),
        };
        let (seen, sizes) = walk_cursor(&store, spec, &[("sort", sort)], 5).await;
        assert_eq!(sizes, [5, 5, 5, 5, 3], "page sizes for sort {sort}");
        let unique: HashSet<&String> = seen.iter().collect();
        assert_eq!(unique.len(), 23, "duplicates for sort {sort}: {seen:?}");
        assert_eq!(seen, expected_order(&rows, column, desc), "sort {sort}");
        assert_eq!(
            seen,
            list_ids(&store, spec, &[("sort", sort)]).await,
            "sort {sort}"
        );
    }

    // With a filter, and a page size that divides the match count exactly.
    let (seen, sizes) = walk_cursor(
        &store,
        spec,
        &[("sort", "-environment"), ("environment", "alpha,beta")],
        4,
    )
    .await;
    let expected = list_ids(
        &store,
        spec,
        &[("sort", "-environment"), ("environment", "alpha,beta")],
    )
    .await;
    assert_eq!(expected.len(), 12);
    assert_eq!(seen, expected);
    assert_eq!(sizes, [4, 4, 4]);

    // A cursor is only valid for the sort it was issued under.
    let first = list(
        &store,
        spec,
        &[("sort", "environment"), ("cursor", ""), ("page_size", "5")],
    )
    .await;
    let token = first.next_cursor.unwrap();
    let err = listing::parse(
        spec,
        &[
            ("sort".to_owned(), "-environment".to_owned()),
            ("cursor".to_owned(), token),
        ],
    )
    .unwrap_err();
    assert_eq!(err.field, "cursor");

    // Int column with duplicates and NULLs.
    let mut profiles = Vec::new();
    for i in 0..13u32 {
        let id = format!("prof-{i:02}");
        let mut body = json!({"name": id});
        if i % 4 != 0 {
            body["max_ttl_seconds"] = json!(60 * i64::from(i % 3 + 1));
        }
        profiles.push(create(&store, &profile::SPEC, &id, body, &ts(0)).await);
    }
    for desc in [false, true] {
        let sort = if desc {
            "-max_ttl_seconds"
        } else {
            "max_ttl_seconds"
        };
        let (seen, sizes) = walk_cursor(&store, &profile::SPEC, &[("sort", sort)], 5).await;
        assert_eq!(sizes, [5, 5, 3]);
        let mut keyed: Vec<(i64, String)> = profiles
            .iter()
            .map(|r| {
                (
                    r["max_ttl_seconds"].as_i64().unwrap_or(i64::MIN),
                    r["id"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        keyed.sort();
        if desc {
            keyed.reverse();
        }
        let expected: Vec<String> = keyed.into_iter().map(|(_, id)| id).collect();
        assert_eq!(seen, expected, "sort {sort}");
    }
}

/// A reference to a missing record is refused on create and update, and changes nothing.
async fn unknown_reference_is_refused(store: Store) {
    create(
        &store,
        &team::SPEC,
        "team-real",
        json!({"name": "real"}),
        &ts(0),
    )
    .await;
    let before = audit_count(&store).await;
    let values = owner::SPEC
        .validate_create(&json!({"name": "Bob", "team_id": "team-ghost"}))
        .unwrap();
    match records::create(&store, &owner::SPEC, "o-bob", values, &ts(1), &tester()).await {
        Err(WriteError::UnknownReference {
            field,
            resource,
            id,
        }) => {
            assert_eq!(field, "team_id");
            assert_eq!(resource, "team");
            assert_eq!(id, "team-ghost");
        }
        other => panic!("expected UnknownReference, got {other:?}"),
    }
    assert_not_found(
        records::get(&store, &owner::SPEC, "o-bob")
            .await
            .unwrap_err(),
        "owner",
        "o-bob",
    );

    create(
        &store,
        &owner::SPEC,
        "o-bob",
        json!({"name": "Bob", "team_id": "team-real"}),
        &ts(2),
    )
    .await;
    let after_create = audit_count(&store).await;
    assert_eq!(after_create, before + 1);
    let mut changes = Record::new();
    changes.insert("team_id".into(), json!("team-ghost"));
    let err = records::update(&store, &owner::SPEC, "o-bob", changes, &ts(3), &tester())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, WriteError::UnknownReference { field, .. } if field == "team_id"),
        "{err:?}"
    );
    let bob = records::get(&store, &owner::SPEC, "o-bob").await.unwrap();
    assert_eq!(bob["team_id"], json!("team-real"));
    assert_eq!(bob["updated_at"], json!(ts(2)));
    assert_eq!(audit_count(&store).await, after_create);

    // Several references at once: the missing one is named.
    let values = certificate::SPEC
        .validate_create(&json!({
            "name": "c", "common_name": "c.example.com",
            "team_id": "team-real", "owner_id": "o-bob", "issuer_id": "iss-ghost",
        }))
        .unwrap();
    let err = records::create(
        &store,
        &certificate::SPEC,
        "mc-c",
        values,
        &ts(4),
        &tester(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, WriteError::UnknownReference { field, resource, .. } if field == "issuer_id" && resource == "issuer"),
        "{err:?}"
    );
}

/// Creating an id twice is a Conflict and leaves the first record and trail alone.
async fn duplicate_id_conflicts(store: Store) {
    create(
        &store,
        &team::SPEC,
        "team-dup",
        json!({"name": "first"}),
        &ts(0),
    )
    .await;
    let values = team::SPEC
        .validate_create(&json!({"name": "second"}))
        .unwrap();
    let err = records::create(&store, &team::SPEC, "team-dup", values, &ts(1), &tester())
        .await
        .unwrap_err();
    assert!(is_conflict(&err), "expected Conflict, got {err:?}");
    let t = records::get(&store, &team::SPEC, "team-dup").await.unwrap();
    assert_eq!(t["name"], json!("first"));
    assert_eq!(audit_for(&store, "team-dup").await.len(), 1);

    // Same for a table with a reference and JSON columns.
    create(
        &store,
        &certificate::SPEC,
        "mc-dup",
        json!({"name": "a", "common_name": "a.example.com"}),
        &ts(2),
    )
    .await;
    let values = certificate::SPEC
        .validate_create(&json!({"name": "b", "common_name": "b.example.com"}))
        .unwrap();
    let err = records::create(
        &store,
        &certificate::SPEC,
        "mc-dup",
        values,
        &ts(3),
        &tester(),
    )
    .await
    .unwrap_err();
    assert!(is_conflict(&err), "expected Conflict, got {err:?}");
}

/// A referenced record cannot be removed; once the reference is gone it can.
async fn delete_while_referenced_conflicts(store: Store) {
    create(&store, &team::SPEC, "team-x", json!({"name": "x"}), &ts(0)).await;
    create(
        &store,
        &owner::SPEC,
        "o-x",
        json!({"name": "X", "team_id": "team-x"}),
        &ts(1),
    )
    .await;
    let before = audit_count(&store).await;
    let err = records::delete(&store, &team::SPEC, "team-x", &ts(2), &tester())
        .await
        .unwrap_err();
    assert!(is_conflict(&err), "expected Conflict, got {err:?}");
    assert!(err.to_string().contains("o-x"), "names the referrer: {err}");
    records::get(&store, &team::SPEC, "team-x").await.unwrap();
    assert_eq!(audit_count(&store).await, before);

    // Re-point the owner; now the team can go.
    update(
        &store,
        &owner::SPEC,
        "o-x",
        json!({"team_id": null}),
        &ts(3),
    )
    .await;
    records::delete(&store, &team::SPEC, "team-x", &ts(4), &tester())
        .await
        .unwrap();

    // Archived certificates keep their references, so their team stays too.
    create(&store, &team::SPEC, "team-y", json!({"name": "y"}), &ts(5)).await;
    create(
        &store,
        &certificate::SPEC,
        "mc-y",
        json!({"name": "y", "common_name": "y.example.com", "team_id": "team-y"}),
        &ts(6),
    )
    .await;
    records::delete(&store, &certificate::SPEC, "mc-y", &ts(7), &tester())
        .await
        .unwrap();
    let err = records::delete(&store, &team::SPEC, "team-y", &ts(8), &tester())
        .await
        .unwrap_err();
    assert!(is_conflict(&err), "expected Conflict, got {err:?}");

    // A reference the specs do not declare (api key → agent) is caught by the database's
    // own foreign key and still reported as a Conflict, with nothing committed.
    create(
        &store,
        &agent::SPEC,
        "ag-1",
        json!({"name": "agent 1"}),
        &ts(9),
    )
    .await;
    api_keys::insert(
        &store,
        &new_key("agent-ag-1", Role::Agent, Some("ag-1")),
        "agent-key",
        &ts(9),
    )
    .await
    .unwrap();
    let before = audit_count(&store).await;
    let err = records::delete(&store, &agent::SPEC, "ag-1", &ts(10), &tester())
        .await
        .unwrap_err();
    assert!(is_conflict(&err), "expected Conflict, got {err:?}");
    records::get(&store, &agent::SPEC, "ag-1").await.unwrap();
    assert_eq!(audit_count(&store).await, before);
}

/// DELETE on a certificate keeps the row with status Archived and records `_archived`.
async fn certificate_delete_archives(store: Store) {
    create_with(
        &store,
        &certificate::SPEC,
        "mc-old",
        json!({"name": "old", "common_name": "old.example.com", "tags": {"k": "v"}}),
        json!({"status": "Active", "expires_at": ts(500)}),
        &ts(1),
    )
    .await;
    records::delete(&store, &certificate::SPEC, "mc-old", &ts(2), &tester())
        .await
        .unwrap();
    let c = records::get(&store, &certificate::SPEC, "mc-old")
        .await
        .unwrap();
    assert_eq!(c["status"], json!(certificate::ARCHIVED));
    assert_eq!(c["updated_at"], json!(ts(2)));
    assert_eq!(c["created_at"], json!(ts(1)));
    assert_eq!(c["tags"], json!({"k": "v"}));
    assert_eq!(c["expires_at"], json!(ts(500)));
    assert_eq!(
        list_ids(&store, &certificate::SPEC, &[("status", "Archived")]).await,
        vec!["mc-old"]
    );
    let trail = audit_for(&store, "mc-old").await;
    let actions: Vec<&str> = trail
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["certificate_created", "certificate_archived"]);
}

/// Create, update and delete each append exactly one event naming actor, action and
/// resource; failed mutations append none; `append_alone` appends one.
async fn each_mutation_appends_one_audit_event(store: Store) {
    assert_eq!(audit_count(&store).await, 0);
    create(
        &store,
        &team::SPEC,
        "team-aud",
        json!({"name": "one"}),
        &ts(1),
    )
    .await;
    assert_eq!(audit_count(&store).await, 1);
    update(
        &store,
        &team::SPEC,
        "team-aud",
        json!({"name": "two", "description": "d"}),
        &ts(2),
    )
    .await;
    assert_eq!(audit_count(&store).await, 2);
    records::delete(&store, &team::SPEC, "team-aud", &ts(3), &tester())
        .await
        .unwrap();
    assert_eq!(audit_count(&store).await, 3);

    let trail = audit_for(&store, "team-aud").await;
    assert_eq!(trail.len(), 3);
    for (event, (action, at)) in trail.iter().zip([
        ("team_created", ts(1)),
        ("team_updated", ts(2)),
        ("team_deleted", ts(3)),
    ]) {
        assert_eq!(event["action"], json!(action));
        assert_eq!(event["actor"], json!("tester"));
        assert_eq!(event["actor_type"], json!("User"));
        assert_eq!(event["resource_type"], json!("team"));
        assert_eq!(event["resource_id"], json!("team-aud"));
        assert_eq!(event["timestamp"], json!(at));
        assert!(event["id"].as_str().unwrap().starts_with("audit-"));
    }
    assert_eq!(trail[0]["details"], json!({"name": "one"}));
    let mut changed: Vec<String> = trail[1]["details"]["changed_fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    changed.sort();
    assert_eq!(changed, ["description", "name"]);
    assert_eq!(trail[2]["details"], json!({}));

    // Refused mutations leave no trace.
    let values = team::SPEC.validate_create(&json!({"name": "x"})).unwrap();
    records::create(
        &store,
        &team::SPEC,
        "team-aud2",
        values.clone(),
        &ts(4),
        &tester(),
    )
    .await
    .unwrap();
    assert!(
        records::create(&store, &team::SPEC, "team-aud2", values, &ts(5), &tester())
            .await
            .is_err()
    );
    assert!(
        records::delete(&store, &team::SPEC, "team-none", &ts(5), &tester())
            .await
            .is_err()
    );
    assert_eq!(audit_count(&store).await, 4);

    // The audit resource itself cannot be deleted through the repository.
    let event_id = trail[0]["id"].as_str().unwrap().to_owned();
    let err = records::delete(&store, &audit_spec::SPEC, &event_id, &ts(6), &tester())
        .await
        .unwrap_err();
    assert!(is_conflict(&err), "{err:?}");
    assert_eq!(audit_count(&store).await, 4);

    // A standalone event (not part of a larger change).
    audit::append_alone(
        &store,
        &AuditEntry {
            actor: Actor::system(),
            action: "scheduler_ran".into(),
            resource_type: "scheduler".into(),
            resource_id: "renewals".into(),
            details: json!({"checked": 3, "nested": {"ok": true}}),
        },
        &ts(7),
    )
    .await
    .unwrap();
    assert_eq!(audit_count(&store).await, 5);
    let ev = audit_for(&store, "renewals").await;
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0]["actor"], json!("system"));
    assert_eq!(ev[0]["actor_type"], json!("System"));
    assert_eq!(
        ev[0]["details"],
        json!({"checked": 3, "nested": {"ok": true}})
    );

    // Audit list filters: any-of on action, time range, sort by timestamp descending.
    let r = list_ids(
        &store,
        &audit_spec::SPEC,
        &[("action", "team_created,team_deleted")],
    )
    .await;
    assert_eq!(r.len(), 3);
    let r = list(
        &store,
        &audit_spec::SPEC,
        &[("since", &ts(2)), ("until", &ts(7))],
    )
    .await;
    let stamps: Vec<&str> = r
        .rows
        .iter()
        .map(|e| e["timestamp"].as_str().unwrap())
        .collect();
    assert_eq!(stamps, [ts(4), ts(3), ts(2)], "default sort is -timestamp");
}

/// Installs a test-only trigger that makes inserting an audit event for any
/// `team-doomed*` resource fail.
async fn sabotage_audit(store: &Store) {
    match store.dialect() {
        Dialect::Sqlite => {
            store
                .pool()
                .execute(
                    "CREATE TRIGGER test_sabotage BEFORE INSERT ON audit_events \
                     WHEN NEW.resource_id LIKE 'team-doomed%' \
                     BEGIN SELECT RAISE(ABORT, 'injected audit failure'); END;",
                )
                .await
                .unwrap();
        }
        Dialect::Postgres => {
            store
                .pool()
                .execute(
                    "CREATE FUNCTION test_sabotage() RETURNS trigger AS $$ \
                     BEGIN \
                       IF NEW.resource_id LIKE 'team-doomed%' THEN \
                         RAISE EXCEPTION 'injected audit failure'; \
                       END IF; \
                       RETURN NEW; \
                     END; $$ LANGUAGE plpgsql",
                )
                .await
                .unwrap();
            store
                .pool()
                .execute(
                    "CREATE TRIGGER test_sabotage BEFORE INSERT ON audit_events \
                     FOR EACH ROW EXECUTE FUNCTION test_sabotage()",
                )
                .await
                .unwrap();
        }
    }
}

/// The change and its audit event commit together: when the event cannot be written,
/// the create, update or delete does not happen either.
async fn audit_event_commits_with_its_change(store: Store) {
    create(
        &store,
        &team::SPEC,
        "team-doomed-1",
        json!({"name": "before"}),
        &ts(1),
    )
    .await;
    sabotage_audit(&store).await;
    let events = audit_count(&store).await;

    let values = team::SPEC.validate_create(&json!({"name": "new"})).unwrap();
    let err = records::create(
        &store,
        &team::SPEC,
        "team-doomed-2",
        values,
        &ts(2),
        &tester(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("injected audit failure"), "{err}");
    assert_not_found(
        records::get(&store, &team::SPEC, "team-doomed-2")
            .await
            .unwrap_err(),
        "team",
        "team-doomed-2",
    );

    let mut changes = Record::new();
    changes.insert("name".into(), json!("after"));
    assert!(
        records::update(
            &store,
            &team::SPEC,
            "team-doomed-1",
            changes,
            &ts(3),
            &tester()
        )
        .await
        .is_err()
    );
    let t = records::get(&store, &team::SPEC, "team-doomed-1")
        .await
        .unwrap();
    assert_eq!(t["name"], json!("before"));
    assert_eq!(t["updated_at"], json!(ts(1)));

    assert!(
        records::delete(&store, &team::SPEC, "team-doomed-1", &ts(4), &tester())
            .await
            .is_err()
    );
    records::get(&store, &team::SPEC, "team-doomed-1")
        .await
        .unwrap();
    assert_eq!(audit_count(&store).await, events);

    // Unaffected resources still work (the pool is healthy after the rollbacks).
    create(
        &store,
        &team::SPEC,
        "team-fine",
        json!({"name": "fine"}),
        &ts(5),
    )
    .await;
    assert_eq!(audit_count(&store).await, events + 1);
}

/// Connecting again to an existing database re-runs nothing and loses nothing.
async fn migrations_are_idempotent(store: Store) {
    create(
        &store,
        &team::SPEC,
        "team-keep",
        json!({"name": "keep"}),
        &ts(1),
    )
    .await;
    api_keys::insert(
        &store,
        &new_key("admin", Role::Admin, None),
        "the-key",
        &ts(1),
    )
    .await
    .unwrap();
    let migrations_before: i64 = sqlx::query("SELECT COUNT(*) FROM _sqlx_migrations")
        .fetch_one(store.pool())
        .await
        .unwrap()
        .try_get(0)
        .unwrap();
    assert!(migrations_before >= 1);

    let second = reconnect(&store).await;
    let third = reconnect(&store).await;
    for s in [&second, &third] {
        let t = records::get(s, &team::SPEC, "team-keep").await.unwrap();
        assert_eq!(t["name"], json!("keep"));
        assert!(matches!(
            api_keys::find(s, "the-key", &ts(3)).await.unwrap(),
            api_keys::Lookup::Valid(_)
        ));
        let n: i64 = sqlx::query("SELECT COUNT(*) FROM _sqlx_migrations")
            .fetch_one(s.pool())
            .await
            .unwrap()
            .try_get(0)
            .unwrap();
        assert_eq!(n, migrations_before, "migrations applied again");
    }
    assert_eq!(audit_for(&second, "team-keep").await.len(), 1);

    // Both handles see each other's writes.
    create(
        &second,
        &team::SPEC,
        "team-new",
        json!({"name": "new"}),
        &ts(2),
    )
    .await;
    records::get(&store, &team::SPEC, "team-new").await.unwrap();
    second.close().await;
    third.close().await;
    records::get(&store, &team::SPEC, "team-keep")
        .await
        .unwrap();
}

fn new_key<'a>(name: &'a str, role: Role, agent_id: Option<&'a str>) -> api_keys::NewKey<'a> {
    api_keys::NewKey {
        name,
        role,
        agent_id,
        expires_at: None,
        created_by: "tester",
    }
}

fn valid(lookup: api_keys::Lookup) -> api_keys::KeyOwner {
    match lookup {
        api_keys::Lookup::Valid(owner) => owner,
        other => panic!("expected a valid key, got {other:?}"),
    }
}

/// Keys are stored as SHA-256 only; lookups need the exact key; revocation, expiry and
/// rotation take effect on the next lookup; names are unique among live keys only.
async fn api_keys_store_hashes_only(store: Store) {
    assert_eq!(api_keys::count_user_keys(&store).await.unwrap(), 0);
    assert_eq!(
        api_keys::hash_key("abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    let key = api_keys::generate_key();
    assert!(key.starts_with("cctl_") && key.len() == 5 + 64, "{key}");
    assert_ne!(key, api_keys::generate_key());

    let admin = api_keys::insert(&store, &new_key("admin", Role::Admin, None), &key, &ts(1))
        .await
        .unwrap();
    assert!(admin.id.starts_with("key-"), "{}", admin.id);
    let owner = valid(api_keys::find(&store, &key, &ts(2)).await.unwrap());
    assert_eq!(owner.name, "admin");
    assert_eq!(owner.role, Role::Admin);
    assert_eq!(owner.agent_id, None);
    // The lookup stamped last_used_at.
    let stamped = api_keys::get(&store, &admin.id).await.unwrap().unwrap();
    assert_eq!(stamped.last_used_at.as_deref(), Some(ts(2).as_str()));
    for wrong in [
        "",
        "wrong",
        &key[..key.len() - 1],
        &format!("{key} "),
        &key.to_uppercase(),
        &api_keys::hash_key(&key),
    ] {
        assert_eq!(
            api_keys::find(&store, wrong, &ts(2)).await.unwrap(),
            api_keys::Lookup::Unknown,
            "{wrong:?} must not match"
        );
    }

    // Only the hash is stored.
    let rows = sqlx::query("SELECT key_hash FROM api_keys")
        .fetch_all(store.pool())
        .await
        .unwrap();
    let stored: Vec<String> = rows.iter().map(|r| r.try_get(0).unwrap()).collect();
    assert_eq!(stored, vec![api_keys::hash_key(&key)]);

    // A second live key with the same name is refused; a different name is fine.
    let err = api_keys::insert(
        &store,
        &new_key("admin", Role::Viewer, None),
        "other-secret",
        &ts(2),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");

    // Rotation: the old secret dies at once, the new one works, the record stays.
    let rotated = api_keys::generate_key();
    let after = api_keys::rotate(&store, &admin.id, &rotated, &ts(3))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.rotated_at.as_deref(), Some(ts(3).as_str()));
    assert_eq!(
        api_keys::find(&store, &key, &ts(3)).await.unwrap(),
        api_keys::Lookup::Unknown
    );
    assert_eq!(
        valid(api_keys::find(&store, &rotated, &ts(3)).await.unwrap()).id,
        admin.id
    );

    // Seeding with the configured secret is idempotent, and with another secret revokes
    // the old key and stores the new one under the same name.
    api_keys::seed(
        &store,
        &new_key("admin", Role::Admin, None),
        &rotated,
        &ts(4),
    )
    .await
    .unwrap();
    assert_eq!(api_keys::list(&store, true).await.unwrap().len(), 1);
    let seeded = api_keys::generate_key();
    api_keys::seed(
        &store,
        &new_key("admin", Role::Admin, None),
        &seeded,
        &ts(4),
    )
    .await
    .unwrap();
    assert_eq!(
        api_keys::find(&store, &rotated, &ts(5)).await.unwrap(),
        api_keys::Lookup::Revoked
    );
    assert_eq!(
        valid(api_keys::find(&store, &seeded, &ts(5)).await.unwrap()).role,
        Role::Admin
    );
    assert_eq!(api_keys::list(&store, false).await.unwrap().len(), 1);
    assert_eq!(api_keys::list(&store, true).await.unwrap().len(), 2);

    // Expiry: refused from expires_at on.
    let expiring = api_keys::generate_key();
    let mut spec = new_key("ci", Role::Operator, None);
    let deadline = ts(10);
    spec.expires_at = Some(&deadline);
    api_keys::insert(&store, &spec, &expiring, &ts(5))
        .await
        .unwrap();
    assert_eq!(
        valid(api_keys::find(&store, &expiring, &ts(9)).await.unwrap()).role,
        Role::Operator
    );
    assert_eq!(
        api_keys::find(&store, &expiring, &ts(10)).await.unwrap(),
        api_keys::Lookup::Expired
    );

    // An agent's key carries the agent id; revoking the agent's keys kills it, and a new
    // live key may then take the name again.
    create(
        &store,
        &agent::SPEC,
        "ag-7",
        json!({"name": "seven"}),
        &ts(3),
    )
    .await;
    let agent_key = api_keys::generate_key();
    api_keys::insert(
        &store,
        &new_key("ag-7", Role::Agent, Some("ag-7")),
        &agent_key,
        &ts(3),
    )
    .await
    .unwrap();
    let owner = valid(api_keys::find(&store, &agent_key, &ts(6)).await.unwrap());
    assert_eq!(owner.role, Role::Agent);
    assert_eq!(owner.agent_id.as_deref(), Some("ag-7"));
    let revoked = api_keys::revoke_agent_keys(&store, "ag-7", &ts(7))
        .await
        .unwrap();
    assert_eq!(revoked.len(), 1);
    assert_eq!(
        api_keys::find(&store, &agent_key, &ts(8)).await.unwrap(),
        api_keys::Lookup::Revoked
    );
    assert!(
        !api_keys::revoke(&store, &revoked[0], &ts(8)).await.unwrap(),
        "already revoked"
    );
    api_keys::insert(
        &store,
        &new_key("ag-7", Role::Agent, Some("ag-7")),
        &api_keys::generate_key(),
        &ts(8),
    )
    .await
    .unwrap();

    // An unknown agent or a secret already in use is refused.
    let err = api_keys::insert(
        &store,
        &new_key("agent-ghost", Role::Agent, Some("ag-ghost")),
        &api_keys::generate_key(),
        &ts(8),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    let err = api_keys::insert(
        &store,
        &new_key("other", Role::Admin, None),
        &seeded,
        &ts(8),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
}

fn call(n: u32, status: u16, latency_ms: i64, body: Option<&str>) -> ApiCall {
    ApiCall {
        request_id: format!("req-{n}"),
        method: if body.is_some() { "POST" } else { "GET" }.into(),
        path: "/api/v1/teams".into(),
        actor: if status == 401 { "anonymous" } else { "admin" }.into(),
        body_sha256: body.map(str::to_owned),
        status,
        latency_ms,
        timestamp: ts(n),
    }
}

/// The API-call log appends and lists with int, text and time filters.
async fn api_calls_append_and_list(store: Store) {
    let calls = [
        call(1, 200, 5, None),
        call(2, 201, 12, Some("0123456789abcdef")),
        call(3, 404, 1, None),
        call(4, 401, 0, None),
        call(5, 503, 2001, None),
        call(6, 200, 7, None),
    ];
    for c in &calls {
        api_calls::append(&store, c).await.unwrap();
    }
    let spec = &api_call::SPEC;
    let all = list(&store, spec, &[]).await;
    assert_eq!(all.total, 6);
    let order: Vec<&str> = all
        .rows
        .iter()
        .map(|r| r["request_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        order,
        ["req-6", "req-5", "req-4", "req-3", "req-2", "req-1"]
    );
    let second = all
        .rows
        .iter()
        .find(|r| r["request_id"] == "req-2")
        .unwrap();
    assert_eq!(second["status"], json!(201));
    assert_eq!(second["latency_ms"], json!(12));
    assert_eq!(second["method"], json!("POST"));
    assert_eq!(second["body_sha256"], json!("0123456789abcdef"));
    assert_eq!(second["timestamp"], json!(ts(2)));
    assert!(second["id"].as_str().unwrap().starts_with("call-"));
    assert_eq!(all.rows[0]["body_sha256"], Value::Null);

    let count = |r: records::ListResult| r.total;
    assert_eq!(count(list(&store, spec, &[("status", "200")]).await), 2);
    assert_eq!(
        count(list(&store, spec, &[("status", "404,503,401")]).await),
        3
    );
    assert_eq!(
        count(list(&store, spec, &[("actor", "anonymous")]).await),
        1
    );
    assert_eq!(count(list(&store, spec, &[("method", "POST")]).await), 1);
    assert_eq!(
        count(list(&store, spec, &[("since", &ts(3)), ("until", &ts(5))]).await),
        2
    );
    let by_latency = list(&store, spec, &[("sort", "-latency_ms")]).await;
    assert_eq!(by_latency.rows[0]["latency_ms"], json!(2001));
    assert_eq!(by_latency.rows[5]["latency_ms"], json!(0));
}

/// The database itself refuses dangling references, on every pooled connection.
async fn foreign_keys_are_enforced(store: Store) {
    if store.dialect() == Dialect::Sqlite {
        let mode: String = sqlx::query("PRAGMA journal_mode")
            .fetch_one(store.pool())
            .await
            .unwrap()
            .try_get(0)
            .unwrap();
        assert_eq!(mode.to_lowercase(), "wal");
    }
    // Hold several connections at once so that each is a distinct pooled connection.
    let mut conns = Vec::new();
    for _ in 0..3 {
        conns.push(store.pool().acquire().await.unwrap());
    }
    for (i, conn) in conns.iter_mut().enumerate() {
        if store.dialect() == Dialect::Sqlite {
            let on: i64 = sqlx::query("PRAGMA foreign_keys")
                .fetch_one(&mut **conn)
                .await
                .unwrap()
                .try_get(0)
                .unwrap();
            assert_eq!(on, 1, "foreign_keys off on connection {i}");
            let mode: String = sqlx::query("PRAGMA journal_mode")
                .fetch_one(&mut **conn)
                .await
                .unwrap()
                .try_get(0)
                .unwrap();
            assert_eq!(mode.to_lowercase(), "wal", "connection {i}");
        }
        let err = sqlx::query(
            "INSERT INTO owners (id, name, team_id, created_at, updated_at) \
             VALUES ('o-dangling', 'd', 'team-missing', 'x', 'x')",
        )
        .execute(&mut **conn)
        .await
        .unwrap_err();
        assert!(
            matches!(StoreError::from(err), StoreError::Conflict(_)),
            "connection {i}"
        );
    }
    drop(conns);
    assert!(
        records::get(&store, &owner::SPEC, "o-dangling")
            .await
            .is_err()
    );
}

/// Raw UPDATE, DELETE (and on PostgreSQL TRUNCATE) on the append-only tables fail and
/// change nothing; appending still works afterwards.
async fn audit_and_api_calls_are_append_only(store: Store) {
    create(
        &store,
        &team::SPEC,
        "team-ao",
        json!({"name": "ao"}),
        &ts(1),
    )
    .await;
    update(
        &store,
        &team::SPEC,
        "team-ao",
        json!({"name": "ao2"}),
        &ts(2),
    )
    .await;
    api_calls::append(&store, &call(1, 200, 3, None))
        .await
        .unwrap();
    api_calls::append(&store, &call(2, 201, 4, Some("abcdef0123456789")))
        .await
        .unwrap();

    let audit_before = snapshot(&store, &audit_spec::SPEC).await;
    let calls_before = snapshot(&store, &api_call::SPEC).await;
    assert_eq!(audit_before.len(), 2);
    assert_eq!(calls_before.len(), 2);
    let audit_id = audit_before[0]["id"].as_str().unwrap().to_owned();
    let call_id = calls_before[0]["id"].as_str().unwrap().to_owned();

    let mut statements = vec![
        "UPDATE audit_events SET actor = 'mallory'".to_owned(),
        format!("UPDATE audit_events SET details = '{{}}' WHERE id = '{audit_id}'"),
        format!("DELETE FROM audit_events WHERE id = '{audit_id}'"),
        "DELETE FROM audit_events".to_owned(),
        "UPDATE api_calls SET status = 200".to_owned(),
        format!("UPDATE api_calls SET path = '/hidden' WHERE id = '{call_id}'"),
        format!("DELETE FROM api_calls WHERE id = '{call_id}'"),
        "DELETE FROM api_calls".to_owned(),
    ];
    if store.dialect() == Dialect::Postgres {
        statements.push("TRUNCATE audit_events".to_owned());
        statements.push("TRUNCATE api_calls".to_owned());
        statements.push("TRUNCATE audit_events, api_calls".to_owned());
    }
    for sql in &statements {
        match sqlx::query(sql).execute(store.pool()).await {
            Ok(done) => panic!(
                "{sql:?} succeeded on {:?} ({} rows affected)",
                store.dialect(),
                done.rows_affected()
            ),
            Err(e) => {
                let mapped = StoreError::from(e);
                assert!(
                    matches!(mapped, StoreError::AppendOnly(_)),
                    "{sql:?}: expected AppendOnly, got {mapped:?}"
                );
            }
        }
        // Inside an explicit transaction as well.
        let mut tx = store.pool().begin().await.unwrap();
        assert!(
            sqlx::query(sql).execute(&mut *tx).await.is_err(),
            "{sql:?} succeeded in a transaction"
        );
        drop(tx);
    }

    assert_eq!(snapshot(&store, &audit_spec::SPEC).await, audit_before);
    assert_eq!(snapshot(&store, &api_call::SPEC).await, calls_before);

    // Appending is unaffected.
    api_calls::append(&store, &call(3, 204, 1, None))
        .await
        .unwrap();
    records::delete(&store, &team::SPEC, "team-ao", &ts(3), &tester())
        .await
        .unwrap();
    assert_eq!(snapshot(&store, &audit_spec::SPEC).await.len(), 3);
    assert_eq!(snapshot(&store, &api_call::SPEC).await.len(), 3);
}

/// The canonical timestamp `days` days and `hours` hours before now.
fn ago(days: i64, hours: i64) -> String {
    certctl_core::timestamp::format(
        time::OffsetDateTime::now_utc() - time::Duration::days(days) - time::Duration::hours(hours),
    )
}

/// Runs `sql`, asserting that the database refuses it as an append-only violation.
async fn refused(store: &Store, sql: &str) {
    match sqlx::query(sql).execute(store.pool()).await {
        Ok(done) => panic!(
            "{sql:?} succeeded on {:?} ({} rows affected)",
            store.dialect(),
            done.rows_affected()
        ),
        Err(e) => {
            let mapped = StoreError::from(e);
            assert!(
                matches!(mapped, StoreError::AppendOnly(_)),
                "{sql:?}: expected AppendOnly, got {mapped:?}"
            );
        }
    }
}

/// Retention pruning is the one delete the API-call log allows: only rows older than a
/// cutoff that moves forward and stays at least 24 hours old; the cutoff row itself can
/// be neither added, removed, moved back nor moved too close to now; audit events stay
/// fully append-only.
async fn api_call_retention_prunes_only_old_rows(store: Store) {
    let at = |n: u32, timestamp: String| ApiCall {
        timestamp,
        ..call(n, 200, 1, None)
    };
    let (old, older, recent) = (ago(40, 0), ago(10, 0), ago(0, 2));
    for (n, t) in [(1, &old), (2, &older), (3, &recent)] {
        api_calls::append(&store, &at(n, t.clone())).await.unwrap();
    }
    create(
        &store,
        &team::SPEC,
        "team-ret",
        json!({"name": "ret"}),
        &old,
    )
    .await;
    let id_of = async |request_id: &str| -> String {
        snapshot(&store, &api_call::SPEC)
            .await
            .into_iter()
            .find(|r| r["request_id"] == request_id)
            .map(|r| r["id"].as_str().unwrap().to_owned())
            .unwrap_or_else(|| panic!("{request_id} is gone"))
    };
    let (id_old, id_older) = (id_of("req-1").await, id_of("req-2").await);
    assert_eq!(
        api_calls::retention_cutoff(&store).await.unwrap(),
        "1970-01-01T00:00:00.000Z"
    );

    // Before any prune, nothing may be deleted, however old.
    refused(
        &store,
        &format!("DELETE FROM api_calls WHERE id = '{id_old}'"),
    )
    .await;
    // The cutoff is a canonical timestamp, not just any text that sorts forward.
    refused(
        &store,
        "UPDATE api_call_retention SET cutoff = '2000-01-01'",
    )
    .await;

    assert_eq!(api_calls::prune(&store, &ago(20, 0)).await.unwrap(), 1);
    let cutoff = api_calls::retention_cutoff(&store).await.unwrap();
    assert!(cutoff > old && cutoff < older, "cutoff {cutoff}");
    let left: Vec<String> = snapshot(&store, &api_call::SPEC)
        .await
        .iter()
        .map(|r| r["request_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(!left.contains(&"req-1".to_owned()), "{left:?}");

    // An earlier cutoff changes nothing (the cutoff never moves back) ...
    assert_eq!(
        api_calls::advance_retention_cutoff(&store, &ago(30, 0))
            .await
            .unwrap(),
        cutoff
    );
    refused(
        &store,
        &format!("UPDATE api_call_retention SET cutoff = '{}'", ago(30, 0)),
    )
    .await;
    // ... and never closer to now than 24 hours.
    refused(
        &store,
        &format!("UPDATE api_call_retention SET cutoff = '{}'", ago(0, 23)),
    )
    .await;
    assert!(matches!(
        api_calls::prune(&store, &ago(0, 23)).await,
        Err(StoreError::AppendOnly(_))
    ));
    refused(&store, "UPDATE api_call_retention SET id = 2").await;
    // The cutoff row is the only one and stays.
    refused(
        &store,
        "INSERT INTO api_call_retention (id, cutoff) VALUES (2, '2026-01-01T00:00:00.000Z')",
    )
    .await;
    refused(&store, "DELETE FROM api_call_retention").await;
    if store.dialect() == Dialect::Sqlite {
        // REPLACE deletes the old row without firing delete triggers: the insert trigger stops it.
        refused(
            &store,
            &format!(
                "INSERT OR REPLACE INTO api_call_retention (id, cutoff) VALUES (1, '{}')",
                ago(0, 0)
            ),
        )
        .await;
    } else {
        refused(
            &store,
            &format!(
                "INSERT INTO api_call_retention (id, cutoff) VALUES (1, '{}') \
                 ON CONFLICT (id) DO UPDATE SET cutoff = EXCLUDED.cutoff",
                ago(0, 0)
            ),
        )
        .await;
        refused(&store, "TRUNCATE api_call_retention").await;
        refused(&store, "TRUNCATE api_calls").await;
    }
    assert_eq!(api_calls::retention_cutoff(&store).await.unwrap(), cutoff);

    // Rows newer than the cutoff stay append-only, alone or in a statement that also
    // names older ones; updates stay refused for every row.
    refused(
        &store,
        &format!("DELETE FROM api_calls WHERE id = '{id_older}'"),
    )
    .await;
    refused(&store, "DELETE FROM api_calls").await;
    refused(&store, "UPDATE api_calls SET status = 500").await;
    assert_eq!(snapshot(&store, &api_call::SPEC).await.len(), 2);
    // Audit events are untouched by retention, however old.
    refused(&store, "DELETE FROM audit_events").await;
    assert_eq!(audit_for(&store, "team-ret").await.len(), 1);

    // A later prune takes the next row and leaves the recent one.
    assert_eq!(api_calls::prune(&store, &ago(5, 0)).await.unwrap(), 1);
    let left = snapshot(&store, &api_call::SPEC).await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["request_id"], "req-3");
    // Batch appends land every row.
    let batch: Vec<ApiCall> = (10..260).map(|n| at(n, ago(0, 1))).collect();
    api_calls::append_batch(&store, &batch).await.unwrap();
    assert_eq!(snapshot(&store, &api_call::SPEC).await.len(), 251);
}

/// Many writers at once (more than the pool has connections) all succeed. On SQLite a
/// read-then-write transaction used to fail with "database is locked" instead of waiting
/// for the writer ahead of it.
async fn concurrent_writes_all_succeed(store: Store) {
    const WRITERS: u32 = 24;
    let mut tasks = Vec::new();
    for i in 0..WRITERS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let id = format!("team-w{i:02}");
            let values = team::SPEC.validate_create(&json!({"name": id})).unwrap();
            records::create(&store, &team::SPEC, &id, values, &ts(i), &tester())
                .await
                .map_err(|e| format!("create {id}: {e}"))?;
            let mut changes = Record::new();
            changes.insert("description".into(), json!("updated"));
            records::update(&store, &team::SPEC, &id, changes, &ts(i + 100), &tester())
                .await
                .map_err(|e| format!("update {id}: {e}"))?;
            api_keys::insert(
                &store,
                &new_key(&id, Role::Operator, None),
                &format!("key-{id}"),
                &ts(i),
            )
            .await
            .map_err(|e| format!("insert key {id}: {e}"))?;
            Ok::<(), String>(())
        }));
    }
    let mut failures = Vec::new();
    for t in tasks {
        if let Err(e) = t.await.unwrap() {
            failures.push(e);
        }
    }
    assert!(
        failures.is_empty(),
        "concurrent writes failed: {failures:#?}"
    );
    assert_eq!(
        list(&store, &team::SPEC, &[("per_page", "1")]).await.total,
        i64::from(WRITERS)
    );
    assert_eq!(audit_count(&store).await, 2 * i64::from(WRITERS));
    assert_eq!(
        api_keys::count_user_keys(&store).await.unwrap(),
        i64::from(WRITERS)
    );
}

// ---------------------------------------------------------------------------------------
// Harness self-checks
// ---------------------------------------------------------------------------------------

#[test]
fn postgres_url_database_is_replaced() {
    assert_eq!(
        url_with_database("postgres://postgres@127.0.0.1:5432/postgres", "t1"),
        "postgres://postgres@127.0.0.1:5432/t1"
    );
    assert_eq!(
        url_with_database("postgres://u:p@h/db?sslmode=disable", "t2"),
        "postgres://u:p@h/t2?sslmode=disable"
    );
    assert_eq!(
        url_with_database("postgres://h:1", "t3"),
        "postgres://h:1/t3"
    );
}

/// Notification queue SQL on both backends: fan-out by policy and routing, dedup across
/// channels, requeue (audited) and its refusals, mark read, and the digest's queries.
async fn notification_queue_fans_out_requeues_and_digests(store: Store) {
    use certctl_host::store::notifications::{self, NewNotification, RequeueError, Routing};
    let now = "2026-01-01T00:00:00Z";
    let create = async |spec: &'static ResourceSpec, id: &str, values: Value| {
        records::create(
            &store,
            spec,
            id,
            values.as_object().unwrap().clone(),
            now,
            &Actor::system(),
        )
        .await
        .unwrap();
    };
    create(
        &issuer::SPEC,
        "iss-n",
        json!({"name": "n", "type": "local", "config": {}}),
    )
    .await;
    create(
        &owner::SPEC,
        "o-n",
        json!({"name": "n", "email": "owner@example.test"}),
    )
    .await;
    create(
        &renewal_policy::SPEC,
        "rp-n",
        json!({"name": "n", "notification_channels": ["pagerduty"]}),
    )
    .await;
    create(
        &certificate::SPEC,
        "mc-n",
        json!({"name": "n", "common_name": "n.example.test", "issuer_id": "iss-n",
               "owner_id": "o-n", "renewal_policy_id": "rp-n", "expires_at": "2026-01-05T00:00:00Z"}),
    )
    .await;
    store.set_notification_routing(Routing {
        channels: vec!["webhook".into(), "slack".into()],
        ..Routing::default()
    });
    let n = |cert: Option<&'static str>, key: &str| NewNotification {
        notification_type: "RenewalFailure",
        certificate_id: cert,
        channel: "email",
        recipient: None,
        message: "failed".into(),
        dedup_key: Some(key.into()),
    };
    assert!(
        notifications::enqueue(&store, &n(None, "k-1"), now)
            .await
            .unwrap()
    );
    assert!(
        !notifications::enqueue(&store, &n(None, "k-1"), now)
            .await
            .unwrap()
    );
    assert!(
        notifications::enqueue(&store, &n(Some("mc-n"), "k-2"), now)
            .await
            .unwrap()
    );
    let mut due = notifications::due(&store, "Pending", now, 10)
        .await
        .unwrap();
    due.sort_by(|a, b| (&a.dedup_key, &a.channel).cmp(&(&b.dedup_key, &b.channel)));
    let seen: Vec<(&str, &str, Option<&str>)> = due
        .iter()
        .map(|d| {
            (
                d.dedup_key.as_deref().unwrap(),
                d.channel.as_str(),
                d.recipient.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("k-1", "slack", None),
            ("k-1", "webhook", None),
            ("k-2", "pagerduty", Some("owner@example.test")),
        ]
    );

    let id = due[2].id.clone();
    assert!(matches!(
        notifications::requeue(&store, &id, &Actor::system(), now).await,
        Err(RequeueError::WrongState { .. })
    ));
    assert!(matches!(
        notifications::requeue(&store, "notif-missing", &Actor::system(), now).await,
        Err(RequeueError::NotFound(_))
    ));
    assert!(
        notifications::set_status(
            &store,
            &id,
            "Pending",
            "Failed",
            true,
            Some("x"),
            Some(now),
            now
        )
        .await
        .unwrap()
    );
    assert_eq!(
        notifications::requeue(&store, &id, &Actor::system(), "2026-01-01T00:01:00Z")
            .await
            .unwrap(),
        "Failed"
    );
    let row = notifications::get(&store, &id).await.unwrap().unwrap();
    assert_eq!((row.status.as_str(), row.attempts), ("Pending", 0));
    let audited: i64 = sqlx::query(
        "SELECT COUNT(*) FROM audit_events WHERE action = 'notification_requeued' AND resource_id = $1",
    )
    .bind(&id)
    .fetch_one(store.pool())
    .await
    .unwrap()
    .try_get(0)
    .unwrap();
    assert_eq!(audited, 1);
    assert!(notifications::mark_read(&store, &id, now).await.unwrap());
    assert!(
        !notifications::mark_read(&store, "notif-missing", now)
            .await
            .unwrap()
    );

    let at =
        time::OffsetDateTime::parse(now, &time::format_description::well_known::Rfc3339).unwrap();
    let digest = certctl_host::notifier::digest::collect(&store, at)
        .await
        .unwrap();
    assert_eq!(digest.total, 1);
    assert_eq!(digest.expiring.len(), 1);
    assert_eq!(digest.expiring[0].days_left, 4);
    assert_eq!(
        digest.expiring[0].owner_email.as_deref(),
        Some("owner@example.test")
    );
    assert_eq!(digest.active_agents, 0);
}
