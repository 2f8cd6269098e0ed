//! Black-box tests of the API's refusals: 400 (malformed JSON, missing required field, wrong
//! type, unknown enum value, unknown field, server-owned field), 404, 405 and 413 for every
//! resource, with the `{"error": {"code", "message", "field"?}}` body — and a batch of
//! hostile inputs thrown at every resource that must never produce a 5xx.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::Method;
use serde_json::{Value, json};

use crate::api_resources::{
    Deps, FIXTURES, Fixture, assert_error, assert_error_shape, assert_invalid, audit_total,
    created, quiet_server, urlencode, with_query,
};
use crate::support::{Api, Resp};

fn parse(literal: &str) -> Value {
    serde_json::from_str(literal).expect("fixture JSON literal")
}

/// Creates one record per writable resource; returns (fixture, id) pairs.
async fn one_of_each(api: &Api, deps: &Deps) -> Vec<(&'static Fixture, String)> {
    let mut out = Vec::new();
    for f in FIXTURES {
        if let Some(w) = &f.write {
            out.push((f, created(api, f.path, (w.create)(deps, 0)).await));
        }
    }
    out
}

/// Field-specific refusals beyond the per-fixture ones: (resource, field, bad value).
const EXTRA_INVALID: &[(&str, &str, &str)] = &[
    ("teams", "name", "\"   \""),
    ("owners", "email", "\"not-an-address\""),
    ("owners", "team_id", "\"\""),
    ("renewal-policies", "renewal_window_days", "3651"),
    ("renewal-policies", "max_retries", "-1"),
    ("renewal-policies", "alert_thresholds_days", "[\"a\"]"),
    ("renewal-policies", "retry_interval_seconds", "1.5"),
    ("profiles", "max_ttl_seconds", "59"),
    ("profiles", "allowed_key_algorithms", "[1]"),
    ("profiles", "required_sans", "[1]"),
    ("agents", "name", "null"),
    ("certificates", "tags", "[]"),
    ("certificates", "name", "\"\""),
    ("jobs", "scheduled_at", "\"tomorrow\""),
    // Year 10000 in UTC: used to panic the worker (connection dropped, no answer at all).
    ("jobs", "scheduled_at", "\"9999-12-31T23:59:59-01:00\""),
    ("jobs", "max_attempts", "18446744073709551615"),
    ("notifications", "message", "\"\""),
];

/// Malformed JSON, missing required fields, wrong types, unknown enum values, unknown and
/// server-owned fields: all 400 naming the field, on create and update, and none of them
/// changes anything or writes an audit event.
#[tokio::test]
async fn bad_input_is_400_naming_the_field_for_every_resource() {
    let server = quiet_server().start().await;
    let api = server.admin();
    let deps = Deps::create(&api).await;
    let records = one_of_each(&api, &deps).await;
    let audit_before = audit_total(&api).await;
    let mut snapshots = Vec::new();
    for (f, id) in &records {
        snapshots.push(api.get(&format!("{}/{id}", f.path)).await.body);
    }

    for (f, id) in &records {
        let w = f.write.as_ref().expect("writable");
        let ctx = f.path;
        let item = format!("{}/{id}", f.path);
        let valid = (w.create)(&deps, 9);
        let total_before = api.get(f.path).await.body["total"].clone();

        // Not JSON at all.
        for raw in [
            &b"{\"name\":"[..],
            b"{\"a\":1}}",
            b"{'name':'x'}",
            b"",
            b"   \n",
            b"\xff\xfe\x00",
            b"{\"name\": 1e400}",
        ] {
            for (method, path) in [(Method::POST, f.path), (Method::PUT, item.as_str())] {
                let r = api.raw(method.clone(), path, raw.to_vec()).await;
                assert_error(
                    &r,
                    400,
                    "malformed_json",
                    &format!("{ctx}: {method} {:?}", String::from_utf8_lossy(raw)),
                );
            }
        }

        // JSON, but not an object.
        for body in ["[]", "\"str\"", "null", "42", "true", "[{\"name\":\"x\"}]"] {
            for (method, path) in [(Method::POST, f.path), (Method::PUT, item.as_str())] {
                let r = api
                    .raw(method.clone(), path, body.as_bytes().to_vec())
                    .await;
                assert_invalid(&r, "body", &format!("{ctx}: {method} {body}"));
            }
        }

        // Missing or null required field.
        let mut missing = valid.clone();
        missing.as_object_mut().expect("object").remove(w.required);
        assert_invalid(
            &api.post(f.path, &missing).await,
            w.required,
            &format!("{ctx}: missing {}", w.required),
        );
        let mut null = valid.clone();
        null[w.required] = Value::Null;
        assert_invalid(
            &api.post(f.path, &null).await,
            w.required,
            &format!("{ctx}: null {}", w.required),
        );
        let empty = api.post(f.path, &json!({})).await;
        let field = assert_error(&empty, 400, "validation_error", &format!("{ctx}: {{}}"));
        assert!(field.is_some(), "{ctx}: {{}} names a required field");
        assert_eq!(
            api.put(&item, &json!({w.required: null})).await.status,
            400,
            "{ctx}: required field nulled on update"
        );

        // Wrong type.
        let (field, literal) = w.wrong_type;
        let mut wrong = valid.clone();
        wrong[field] = parse(literal);
        assert_invalid(
            &api.post(f.path, &wrong).await,
            field,
            &format!("{ctx}: {field}={literal}"),
        );
        assert_invalid(
            &api.put(&item, &json!({field: parse(literal)})).await,
            field,
            &format!("{ctx}: update {field}={literal}"),
        );

        // Unknown enum value.
        if let Some((field, value)) = w.bad_enum {
            let mut bad = valid.clone();
            bad[field] = json!(value);
            let r = api.post(f.path, &bad).await;
            assert_invalid(&r, field, &format!("{ctx}: {field}={value}"));
            assert!(
                r.body["error"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains(value)),
                "{ctx}: message names the value: {}",
                r.body
            );
            assert_invalid(
                &api.put(&item, &json!({field: value})).await,
                field,
                &format!("{ctx}: update {field}={value}"),
            );
        }

        // Unknown field (a typo never silently drops data).
        let mut typo = valid.clone();
        typo["nmae"] = json!("x");
        let r = api.post(f.path, &typo).await;
        assert_invalid(&r, "nmae", &format!("{ctx}: unknown field"));
        assert_invalid(
            &api.put(&item, &json!({"nmae": "x"})).await,
            "nmae",
            &format!("{ctx}: unknown field on update"),
        );

        // Server-owned field.
        if let Some((field, literal)) = w.read_only {
            let mut ro = valid.clone();
            ro[field] = parse(literal);
            assert_invalid(
                &api.post(f.path, &ro).await,
                field,
                &format!("{ctx}: read-only {field} on create"),
            );
            assert_invalid(
                &api.put(&item, &json!({field: parse(literal)})).await,
                field,
                &format!("{ctx}: read-only {field} on update"),
            );
        }

        // Field-specific rules.
        for (_, field, literal) in EXTRA_INVALID.iter().filter(|(p, ..)| *p == f.path) {
            let mut bad = valid.clone();
            bad[*field] = parse(literal);
            let what = format!("{ctx}: {field}={literal}");
            assert_invalid(&api.post(f.path, &bad).await, field, &what);
            let r = api.put(&item, &json!({*field: parse(literal)})).await;
            assert_invalid(&r, field, &format!("update {what}"));
        }

        assert_eq!(
            api.get(f.path).await.body["total"],
            total_before,
            "{ctx}: refused creates stored nothing"
        );
    }

    for ((f, id), before) in records.iter().zip(&snapshots) {
        let now = api.get(&format!("{}/{id}", f.path)).await;
        assert_eq!(
            &now.body, before,
            "{}: refused updates changed nothing",
            f.path
        );
    }
    assert_eq!(
        audit_total(&api).await,
        audit_before,
        "refused requests wrote no audit event"
    );
}

/// Unknown ids and paths are 404, unsupported methods 405, all with the JSON error body.
#[tokio::test]
async fn unknown_ids_paths_and_methods_are_json_404_and_405() {
    let server = quiet_server().start().await;
    let api = server.admin();
    let deps = Deps::create(&api).await;
    let records = one_of_each(&api, &deps).await;
    for f in FIXTURES {
        let ctx = f.path;
        let missing = format!("{}/{}-missing", f.path, f.prefix);
        assert_error(&api.get(&missing).await, 404, "not_found", ctx);
        let existing = records
            .iter()
            .find(|(r, _)| r.path == f.path)
            .map(|(_, id)| format!("{}/{id}", f.path));
        if let Some(w) = &f.write {
            let r = api.put(&missing, &(w.update)(&deps)).await;
            assert_error(&r, 404, "not_found", &format!("{ctx}: PUT missing"));
            assert_error(&api.delete(&missing).await, 404, "not_found", ctx);
        }
        let item = existing.unwrap_or(missing);
        let mut wrong = vec![
            (Method::PATCH, f.path.to_owned()),
            (Method::DELETE, f.path.to_owned()),
            (Method::PUT, f.path.to_owned()),
            (Method::PATCH, item.clone()),
            (Method::POST, item.clone()),
        ];
        if f.write.is_none() {
            wrong.push((Method::POST, f.path.to_owned()));
            wrong.push((Method::PUT, item.clone()));
            wrong.push((Method::DELETE, item.clone()));
        }
        for (method, path) in wrong {
            let r = api.raw(method.clone(), &path, b"{}".to_vec()).await;
            assert_error(
                &r,
                405,
                "method_not_allowed",
                &format!("{ctx}: {method} {path}"),
            );
        }
        let r = api.get(&format!("{}/x/y", f.path)).await;
        assert_error(&r, 404, "not_found", &format!("{ctx}: nested path"));
    }
    for path in ["nope", "certificate", "/api/v1", "teams/", "teams/x/y/z"] {
        let r = api.get(path).await;
        assert_error(&r, 404, "not_found", &format!("GET {path}"));
    }
    // Outside the API the status is still 404 (the body is not the API's concern).
    for path in ["/nope", "/api/v2/teams", "/api"] {
        assert_eq!(api.get(path).await.status, 404, "GET {path}");
    }
    let r = api.post("nope", &json!({})).await;
    assert_error(&r, 404, "not_found", "POST nope");
}

/// Bodies over `CERTCTL_MAX_BODY_SIZE` are refused with 413 on every write route (before
/// authentication), bodies under it are served, and nothing is written.
#[tokio::test]
async fn oversized_bodies_are_413() {
    let server = quiet_server()
        .env("CERTCTL_MAX_BODY_SIZE", "1024")
        .start()
        .await;
    let api = server.admin();
    let deps = Deps::create(&api).await;
    let records = one_of_each(&api, &deps).await;
    let audit_before = audit_total(&api).await;
    for (f, id) in &records {
        let w = f.write.as_ref().expect("writable");
        let ctx = f.path;
        let item = format!("{}/{id}", f.path);
        let mut big = (w.create)(&deps, 5);
        big["nmae"] = json!("x".repeat(2000));
        let bytes = serde_json::to_vec(&big).expect("json");
        assert!(bytes.len() > 1024);
        for (method, path) in [(Method::POST, f.path), (Method::PUT, item.as_str())] {
            let r = api.raw(method.clone(), path, bytes.clone()).await;
            assert_error(&r, 413, "payload_too_large", &format!("{ctx}: {method}"));
            // Not even JSON: the size is refused before anything looks at the content.
            let r = api.raw(method.clone(), path, vec![b'{'; 1025]).await;
            assert_error(
                &r,
                413,
                "payload_too_large",
                &format!("{ctx}: {method} raw"),
            );
            let r = server
                .anonymous()
                .raw(method.clone(), path, bytes.clone())
                .await;
            assert_error(&r, 413, "payload_too_large", &format!("{ctx}: anonymous"));
        }
        // Exactly at the limit is fine (as far as size goes).
        let mut at_limit = serde_json::to_vec(&(w.create)(&deps, 6)).expect("json");
        at_limit.pop();
        while at_limit.len() < 1023 {
            at_limit.push(b' ');
        }
        at_limit.push(b'}');
        assert_eq!(at_limit.len(), 1024);
        let r = api.raw(Method::POST, f.path, at_limit).await;
        assert_eq!(r.status, 201, "{ctx}: body at the limit: {}", r.body);
    }
    let created_at_limit = i64::try_from(records.len()).expect("count");
    assert_eq!(
        audit_total(&api).await,
        audit_before + created_at_limit,
        "only the accepted creates were audited"
    );
}

/// What a hostile request may answer.
#[derive(Clone, Copy)]
enum Expect {
    /// A 4xx with the JSON error body.
    ClientError,
    /// Anything but a 5xx (some odd inputs are legitimately served).
    NoServerError,
}

struct Hostile<'a> {
    api: &'a Api,
    checked: usize,
}

impl Hostile<'_> {
    fn check(&mut self, r: &Resp, expect: Expect, what: &str) {
        self.checked += 1;
        assert!(r.status < 500, "{what}: {} {}", r.status, r.body);
        match expect {
            Expect::ClientError => {
                assert!(
                    (400..500).contains(&r.status),
                    "{what}: {} {}",
                    r.status,
                    r.body
                );
                assert_error_shape(r, what);
            }
            Expect::NoServerError => {
                if r.status >= 400 {
                    assert_error_shape(r, what);
                }
            }
        }
    }

    async fn get(&mut self, path: &str, expect: Expect) {
        let r = self.api.get(path).await;
        self.check(&r, expect, &format!("GET {path}"));
    }

    async fn send(&mut self, method: Method, path: &str, body: &[u8], expect: Expect) {
        let r = self.api.raw(method.clone(), path, body.to_vec()).await;
        self.check(
            &r,
            expect,
            &format!(
                "{method} {path} {:?}",
                String::from_utf8_lossy(&body[..body.len().min(80)])
            ),
        );
    }
}

fn cursor(token: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(token).expect("json"))
}

/// Odd ids, absurd paging, forged cursors, non-object and garbage bodies, and every field
/// set to every wrong kind of value, at every resource: never a 5xx, and every refusal
/// carries the JSON error body.
#[tokio::test]
async fn hostile_inputs_never_cause_a_server_error() {
    let server = quiet_server().start().await;
    let api = server.admin();
    let deps = Deps::create(&api).await;
    let records = one_of_each(&api, &deps).await;
    let doc = api.get("openapi.json").await.body;
    let mut h = Hostile {
        api: &api,
        checked: 0,
    };
    use Expect::{ClientError, NoServerError};

    let long = "x".repeat(2000);
    let odd_ids: Vec<String> = vec![
        "a b".into(),
        "ü-ß".into(),
        "💩".into(),
        "\u{202e}evil".into(),
        "'; DROP TABLE teams;--".into(),
        "\0".into(),
        "..".into(),
        "a/../../b".into(),
        "%".into(),
        long.clone(),
    ];
    let deep_array = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let deep_object = format!("{}1{}", "{\"a\":".repeat(5000), "}".repeat(5000));
    let nested_ok = format!("{}1{}", "{\"a\":".repeat(100), "}".repeat(100));

    for f in FIXTURES {
        let existing = records
            .iter()
            .find(|(r, _)| r.path == f.path)
            .map(|(_, id)| id.clone());

        // Odd ids in the path.
        for id in &odd_ids {
            let enc = urlencode(id);
            h.get(&format!("{}/{enc}", f.path), ClientError).await;
            h.get(&format!("{}/{}-{enc}", f.path, f.prefix), ClientError)
                .await;
            if let Some(w) = &f.write {
                let body = serde_json::to_vec(&(w.update)(&deps)).expect("json");
                h.send(
                    Method::PUT,
                    &format!("{}/{enc}", f.path),
                    &body,
                    ClientError,
                )
                .await;
                h.send(
                    Method::DELETE,
                    &format!("{}/{enc}", f.path),
                    b"",
                    ClientError,
                )
                .await;
            }
        }
        for raw in ["%FF", "%C3%28", "%00%00", "%2F%2F"] {
            h.get(&format!("{}/{raw}", f.path), NoServerError).await;
        }

        // Absurd list parameters.
        let default_sort = f.default_sort;
        let wrong_sort = cursor(&json!({"s": "zzz", "v": 1, "id": "x"}));
        let refused: Vec<(String, String)> = [
            ("per_page", "1000000"),
            ("per_page", "-5"),
            ("per_page", "99999999999999999999"),
            ("per_page", ""),
            ("per_page", "1.5"),
            ("page", "-1"),
            ("page", "0"),
            ("page", "1e3"),
            ("page", "99999999999999999999"),
            ("page", "2147483648"),
            ("limit", "0x10"),
            ("cursor", "%%%"),
            ("cursor", "!!!!"),
            ("sort", "--id"),
            ("sort", "-"),
            ("sort", "+"),
            ("sort", "id;DROP TABLE x"),
            ("sort", "ID"),
            ("fields", ""),
            ("fields", ",,,"),
            ("fields", "id,../etc"),
            ("created_after", "garbage"),
            ("created_before", "2026-13-45T00:00:00Z"),
            ("created_after", "2026-01-01"),
            ("'; DROP TABLE x;--", "1"),
            ("data", "1"),
            ("id", "x"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .chain([
            ("cursor".to_owned(), cursor(&json!({}))),
            ("cursor".to_owned(), cursor(&json!([1, 2]))),
            ("cursor".to_owned(), cursor(&json!(null))),
            ("cursor".to_owned(), wrong_sort),
            ("cursor".to_owned(), URL_SAFE_NO_PAD.encode(b"\xff\xfe")),
        ])
        .collect();
        for (k, v) in &refused {
            h.get(&with_query(f.path, &[(k, v)]), ClientError).await;
        }
        h.get(&format!("{}?page=1&page=2", f.path), ClientError)
            .await;
        h.get(&format!("{}?fields=id&fields=id", f.path), ClientError)
            .await;
        h.get(&format!("{}?cursor=&page=1", f.path), ClientError)
            .await;

        let served: Vec<(String, String)> = [
            ("page", "2147483647"),
            ("created_after", "9999-12-31T23:59:59-01:00"),
            ("created_before", "0000-01-01T00:00:00+01:00"),
            ("created_after", "2026-01-01T00:00:00.123456789+14:00"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .chain(
            [
                json!({"s": default_sort, "v": {"x": [1]}, "id": "zz"}),
                json!({"s": default_sort, "v": [1, 2], "id": ""}),
                json!({"s": default_sort, "v": 1e300, "id": "\u{0}"}),
                json!({"s": default_sort, "v": null, "id": "💩"}),
                json!({"s": default_sort, "v": true, "id": long}),
                json!({"s": default_sort, "v": "x", "id": 5}),
            ]
            .iter()
            .map(|t| ("cursor".to_owned(), cursor(t))),
        )
        .collect();
        for (k, v) in &served {
            h.get(&with_query(f.path, &[(k, v)]), NoServerError).await;
        }
        h.get(
            &format!("{}?page=2147483647&per_page=500", f.path),
            NoServerError,
        )
        .await;
        h.get(&format!("{}?%zz=1", f.path), NoServerError).await;
        h.get(&format!("{}?&&&=&", f.path), NoServerError).await;

        // Filters with hostile values.
        let filters: Vec<(String, Value)> =
            doc["paths"][format!("/api/v1/{}", f.path)]["get"]["parameters"]
                .as_array()
                .expect("parameters")
                .iter()
                .filter(|p| p["schema"]["format"] != "date-time")
                .filter_map(|p| Some((p["name"].as_str()?.to_owned(), p["schema"].clone())))
                .filter(|(n, _)| {
                    !["page", "per_page", "cursor", "page_size", "sort", "fields"]
                        .contains(&n.as_str())
                })
                .collect();
        for (name, schema) in &filters {
            for v in [long.as_str(), "💩,ü", "'; DROP TABLE x;--", ",", "\0", "%"] {
                h.get(&with_query(f.path, &[(name, v)]), NoServerError)
                    .await;
            }
            if schema["type"] != "string" || schema["enum"].is_array() {
                for v in ["1e3", "TRUE", "99999999999999999999", "Active,", "null"] {
                    h.get(&with_query(f.path, &[(name, v)]), ClientError).await;
                }
            }
        }

        // Bodies.
        let Some(w) = &f.write else {
            h.send(Method::POST, f.path, b"{}", ClientError).await;
            h.send(Method::POST, f.path, b"[]", ClientError).await;
            continue;
        };
        let item = format!("{}/{}", f.path, existing.expect("record"));
        let p = f.prefix;
        let refused_bodies: Vec<Vec<u8>> = vec![
            b"[]".to_vec(),
            b"\"str\"".to_vec(),
            b"null".to_vec(),
            b"0".to_vec(),
            b"-1e999".to_vec(),
            b"{}".to_vec(),
            b"{\"zzz\":1}".to_vec(),
            b"{\"name\":{\"$gt\":\"\"}}".to_vec(),
            b"{\"id\":5}".to_vec(),
            deep_array.clone().into_bytes(),
            deep_object.clone().into_bytes(),
            b"\xef\xbb\xbf{}".to_vec(),
            b"{\"a\":1}garbage".to_vec(),
            b"{\"a\":\"\\ud800\"}".to_vec(),
            b"{\"name\":\"x\",\"name\":".to_vec(),
            b"\x00\x00\x00".to_vec(),
        ];
        for body in &refused_bodies {
            h.send(Method::POST, f.path, body, ClientError).await;
            // An empty object is a valid (empty) update.
            if body.as_slice() != b"{}" {
                h.send(Method::PUT, &item, body, ClientError).await;
            }
        }
        for bad_id in [
            json!(""),
            json!(format!("{p}-a b")),
            json!(format!("{p}-ü")),
            json!(format!("{p}-{long}")),
            json!(format!("{p}-\u{0}")),
            json!(["x"]),
            json!({"id": "x"}),
            json!(1.5),
        ] {
            let mut b = (w.create)(&deps, 11);
            b["id"] = bad_id;
            h.send(
                Method::POST,
                f.path,
                &serde_json::to_vec(&b).expect("json"),
                ClientError,
            )
            .await;
            h.send(
                Method::PUT,
                &item,
                &serde_json::to_vec(&b).expect("json"),
                ClientError,
            )
            .await;
        }

        // Every documented field set to every wrong kind of value, on create and update.
        let schema_name = doc["paths"][format!("/api/v1/{}/{{id}}", f.path)]["get"]["responses"]
            ["200"]["content"]["application/json"]["schema"]["$ref"]
            .as_str()
            .and_then(|r| r.rsplit('/').next())
            .expect("schema ref")
            .to_owned();
        let props: Vec<String> = doc["components"]["schemas"][&schema_name]["properties"]
            .as_object()
            .expect("properties")
            .keys()
            .cloned()
            .collect();
        let garbage = [
            json!({"x": [1, {}]}),
            json!([null, [], {}]),
            json!(-1),
            json!(i64::MAX),
            json!(u64::MAX),
            json!(1.5),
            json!("\u{0}"),
            json!(""),
            json!("💩".repeat(50)),
            json!(true),
            serde_json::from_str::<Value>(&nested_ok).expect("nested"),
        ];
        for prop in &props {
            for g in &garbage {
                let mut b = (w.create)(&deps, 12);
                b[prop.as_str()] = g.clone();
                let bytes = serde_json::to_vec(&b).expect("json");
                h.send(Method::POST, f.path, &bytes, NoServerError).await;
                let upd = serde_json::to_vec(&json!({prop.as_str(): g})).expect("json");
                h.send(Method::PUT, &item, &upd, NoServerError).await;
            }
        }
    }
    assert!(h.checked > 2000, "only {} requests checked", h.checked);

    // Still healthy, and nothing was logged as an internal error or panic.
    assert_eq!(api.get("/health").await.status, 200);
    assert_eq!(api.get("/ready").await.status, 200);
    let logs = server.logs();
    for needle in ["internal error", "panicked", "request failed"] {
        assert!(
            !logs.contains(needle),
            "server log contains {needle:?}:\n{logs}"
        );
    }
}
