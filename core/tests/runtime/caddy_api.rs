//! The Caddy plugin's API mode against a local stand-in for Caddy's admin API (not a
//! real Caddy): the stand-in keeps a JSON configuration and implements the part of the
//! admin API the plugin uses the way Caddy's `admin.go` does — `/config/<path>`
//! traversal with GET (value or `null`), POST (append to an array, else set), PUT
//! (create, with missing parent objects; refuse an existing key), PATCH (replace an
//! existing key or array element), `/id/<@id>` addressing (404 `unknown object ID`),
//! and the `application/json` content-type requirement — and records every request.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use certctl_core::runtime::{
    Capability, Grants, PluginGrant, RuntimeError, TargetPlugin, ValidationRequest,
};
use serde_json::{Value, json};

use crate::support::{CHAIN, KEY, LEAF, load, plugin_dir, request, runtime};

/// One request as the stand-in received it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    headers: BTreeMap<String, String>,
    body: String,
    status: u16,
}

impl Seen {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

/// The stand-in admin API on 127.0.0.1.
struct AdminApi {
    port: u16,
    config: Arc<Mutex<Value>>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl AdminApi {
    fn start(config: Value) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let config = Arc::new(Mutex::new(json!({ "config": config })));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (c, s) = (config.clone(), seen.clone());
        // Serves until the test process ends.
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                serve(stream, &c, &s);
            }
        });
        Self { port, config, seen }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn authority(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The grant that lets the plugin reach this plain-http admin API.
    fn grant(&self) -> String {
        format!("http://{}", self.authority())
    }

    /// The requests since the last call.
    fn take(&self) -> Vec<Seen> {
        std::mem::take(&mut *self.seen.lock().expect("lock"))
    }

    fn config(&self) -> Value {
        self.config.lock().expect("lock")["config"].clone()
    }
}

fn serve(stream: TcpStream, config: &Mutex<Value>, seen: &Mutex<Vec<Seen>>) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let mut words = line.split_whitespace();
    let method = words.next().unwrap_or_default().to_string();
    let path = words.next().unwrap_or_default().to_string();
    let mut headers = BTreeMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = h.split_once(':') {
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
        }
    }
    let mut body = Vec::new();
    if let Some(len) = headers.get("content-length") {
        body.resize(len.parse().unwrap_or(0), 0);
        reader.read_exact(&mut body).expect("body");
    } else if headers
        .get("transfer-encoding")
        .is_some_and(|t| t == "chunked")
    {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).expect("chunk size");
            let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk).expect("chunk");
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    }
    let body = String::from_utf8_lossy(&body).into_owned();
    let (status, answer) = {
        let mut root = config.lock().expect("lock");
        handle(&mut root, &method, &path, &headers, &body)
    };
    seen.lock().expect("lock").push(Seen {
        method,
        path,
        headers,
        body,
        status,
    });
    let mut out = stream;
    let _ = write!(
        out,
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
        answer.len()
    );
}

/// Caddy's admin handlers for `/config/` and `/id/`.
fn handle(
    root: &mut Value,
    method: &str,
    path: &str,
    headers: &BTreeMap<String, String>,
    body: &str,
) -> (u16, String) {
    let error = |status: u16, message: String| (status, json!({ "error": message }).to_string());
    let mut path = path.to_string();
    if let Some(rest) = path.strip_prefix("/id/") {
        let (id, sub) = rest.split_once('/').unwrap_or((rest, ""));
        let mut index = BTreeMap::new();
        index_ids(&root["config"], "/config", &mut index);
        let Some(expanded) = index.get(id) else {
            return error(404, format!("unknown object ID '{id}'"));
        };
        path = if sub.is_empty() {
            expanded.clone()
        } else {
            format!("{expanded}/{sub}")
        };
    } else if !path.starts_with("/config/") {
        return error(404, format!("no handler for {path}"));
    }
    if method != "GET" {
        let ct = headers.get("content-type").cloned().unwrap_or_default();
        if !ct.contains("/json") {
            return error(
                400,
                format!("unacceptable content-type: {ct}; 'application/json' required"),
            );
        }
    }
    let value = if body.is_empty() {
        Value::Null
    } else {
        match serde_json::from_str(body) {
            Ok(v) => v,
            Err(e) => return error(400, format!("decoding request body: {e}")),
        }
    };
    match access(root, method, &path, value) {
        Ok(Some(v)) => (200, format!("{v}\n")),
        Ok(None) => (200, String::new()),
        Err(e) => error(400, e),
    }
}

/// `@id` → expanded path, like Caddy's index of the raw config.
fn index_ids(v: &Value, at: &str, index: &mut BTreeMap<String, String>) {
    match v {
        Value::Object(map) => {
            if let Some(Value::String(id)) = map.get("@id") {
                index.insert(id.clone(), at.to_string());
            }
            for (k, child) in map {
                index_ids(child, &format!("{at}/{k}"), index);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                index_ids(child, &format!("{at}/{i}"), index);
            }
        }
        _ => {}
    }
}

/// Caddy's `unsyncedConfigAccess`.
fn access(root: &mut Value, method: &str, path: &str, val: Value) -> Result<Option<Value>, String> {
    let clean = path.trim_matches('/');
    let mut parts: Vec<&str> = clean.split('/').collect();
    let ellipses = parts.last() == Some(&"...");
    if ellipses {
        parts.pop();
    }
    let n = parts.len();
    let mut ptr: &mut Value = root;
    for i in 0..n {
        let part = parts[i];
        match ptr {
            Value::Object(map) => {
                if i + 2 == n
                    && let Some(Value::Array(arr)) = map.get_mut(part)
                {
                    let index = parts[n - 1];
                    let idx = if method == "POST" {
                        0
                    } else {
                        let idx: usize = index
                            .parse()
                            .map_err(|_| format!("[{path}] invalid array index '{index}'"))?;
                        if idx >= arr.len() {
                            return Err(format!("[{path}] array index out of bounds: {index}"));
                        }
                        idx
                    };
                    match method {
                        "GET" => return Ok(Some(arr[idx].clone())),
                        "POST" => append(arr, val, ellipses)?,
                        "PUT" => arr.insert(idx, val),
                        "PATCH" => arr[idx] = val,
                        "DELETE" => {
                            arr.remove(idx);
                        }
                        other => return Err(format!("unrecognized method {other}")),
                    }
                    return Ok(None);
                }
                if i + 1 == n {
                    match method {
                        "GET" => return Ok(Some(map.get(part).cloned().unwrap_or(Value::Null))),
                        "POST" => match map.get_mut(part) {
                            Some(Value::Array(arr)) => append(arr, val, ellipses)?,
                            _ => {
                                map.insert(part.to_string(), val);
                            }
                        },
                        "PUT" => {
                            if map.contains_key(part) {
                                return Err(format!("[{path}] key already exists: {part}"));
                            }
                            map.insert(part.to_string(), val);
                        }
                        "PATCH" => {
                            if !map.contains_key(part) {
                                return Err(format!("[{path}] key does not exist: {part}"));
                            }
                            map.insert(part.to_string(), val);
                        }
                        "DELETE" => {
                            map.remove(part);
                        }
                        other => return Err(format!("unrecognized method {other}")),
                    }
                    return Ok(None);
                }
                if method == "PUT" && map.get(part).is_none_or(Value::is_null) {
                    map.insert(part.to_string(), json!({}));
                }
                ptr = map.entry(part.to_string()).or_insert(Value::Null);
            }
            Value::Array(arr) => {
                let idx: usize = part.parse().map_err(|_| {
                    format!("[/{}] invalid array index '{part}'", parts[..=i].join("/"))
                })?;
                let len = arr.len();
                ptr = arr.get_mut(idx).ok_or_else(|| {
                    format!(
                        "[/{}] array index out of bounds: {part} ({len})",
                        parts[..=i].join("/")
                    )
                })?;
            }
            _ => {
                return Err(format!(
                    "invalid traversal path at: {}",
                    parts[..=i].join("/")
                ));
            }
        }
    }
    Ok(None)
}

fn append(arr: &mut Vec<Value>, val: Value, ellipses: bool) -> Result<(), String> {
    if ellipses {
        let Value::Array(items) = val else {
            return Err("final element is not an array".into());
        };
        arr.extend(items);
    } else {
        arr.push(val);
    }
    Ok(())
}

/// The caddy plugin with `hosts` granted (no directories, no commands).
fn caddy(hosts: Vec<String>) -> (tempfile::TempDir, TargetPlugin) {
    let plugins = plugin_dir(&["caddy"]);
    let grants = Grants::default().with_plugin(
        "caddy",
        PluginGrant {
            hosts,
            ..PluginGrant::default()
        },
    );
    let plugin = load(&runtime(), plugins.path(), &grants)
        .target("caddy")
        .expect("target");
    (plugins, plugin)
}

fn entry(id: &str, leaf: &str) -> Value {
    json!({"@id": id, "certificate": format!("{leaf}{CHAIN}"), "key": KEY, "tags": [id]})
}

const LEAF2: &str = "-----BEGIN CERTIFICATE-----\nTkVX\n-----END CERTIFICATE-----\n";

fn assert_json_request(seen: &Seen, method: &str, path: &str, api: &AdminApi) {
    assert_eq!(
        (seen.method.as_str(), seen.path.as_str()),
        (method, path),
        "{seen:?}"
    );
    assert_eq!(seen.headers.get("host"), Some(&api.authority()), "{seen:?}");
    if method != "GET" {
        assert_eq!(
            seen.headers.get("content-type").map(String::as_str),
            Some("application/json"),
            "{seen:?}"
        );
    }
}

#[tokio::test]
async fn api_mode_creates_the_load_pem_entry_then_replaces_it_by_id() {
    let http_app = json!({"servers": {"srv0": {"listen": [":443"]}}});
    let api = AdminApi::start(json!({"apps": {"http": http_app}}));
    let (_plugins, plugin) = caddy(vec![api.grant()]);
    let config = json!({"mode": "api", "admin_api": api.url()});
    plugin
        .validate_config(config.to_string())
        .await
        .expect("valid");
    assert!(api.take().is_empty(), "validate-config contacts nobody");

    // First deployment: no entry, no TLS app yet → PATCH 404, GET 400, PUT creates.
    let out = plugin.deploy(request(&config, LEAF)).await.expect("deploy");
    assert!(out.files_written.is_empty() && out.commands_run.is_empty());
    assert!(
        out.message.ends_with(
            "certificate `certctl-t-web` loaded (apps.tls.certificates.load_pem created)"
        ),
        "{}",
        out.message
    );
    let seen = api.take();
    assert_eq!(seen.len(), 3, "{seen:#?}");
    assert_json_request(&seen[0], "PATCH", "/id/certctl-t-web", &api);
    assert_eq!(seen[0].status, 404);
    assert_eq!(seen[0].json(), entry("certctl-t-web", LEAF));
    assert_json_request(
        &seen[1],
        "GET",
        "/config/apps/tls/certificates/load_pem",
        &api,
    );
    assert_json_request(
        &seen[2],
        "PUT",
        "/config/apps/tls/certificates/load_pem",
        &api,
    );
    assert_eq!(seen[2].status, 200);
    assert_eq!(seen[2].json(), json!([entry("certctl-t-web", LEAF)]));
    let live = api.config();
    assert_eq!(
        live["apps"]["tls"]["certificates"]["load_pem"],
        json!([entry("certctl-t-web", LEAF)])
    );
    assert_eq!(
        live["apps"]["http"], http_app,
        "the rest of the config is untouched"
    );

    let check = |leaf: &str| ValidationRequest {
        certificate_pem: leaf.into(),
        config_json: config.to_string(),
        target_id: "t-web".into(),
        certificate_id: "mc-web".into(),
    };
    assert!(
        plugin
            .validate_deployment(check(LEAF))
            .await
            .expect("check")
            .valid
    );
    assert_json_request(&api.take()[0], "GET", "/id/certctl-t-web/certificate", &api);

    // Renewal: one PATCH by @id replaces the entry in place.
    let out = plugin
        .deploy(request(&config, LEAF2))
        .await
        .expect("redeploy");
    assert!(
        out.message
            .ends_with("certificate `certctl-t-web` replaced"),
        "{}",
        out.message
    );
    let seen = api.take();
    assert_eq!(seen.len(), 1, "{seen:#?}");
    assert_json_request(&seen[0], "PATCH", "/id/certctl-t-web", &api);
    assert_eq!(seen[0].status, 200);
    assert_eq!(
        api.config()["apps"]["tls"]["certificates"]["load_pem"],
        json!([entry("certctl-t-web", LEAF2)])
    );
    assert!(
        plugin
            .validate_deployment(check(LEAF2))
            .await
            .expect("check")
            .valid
    );
    assert!(
        !plugin
            .validate_deployment(check(LEAF))
            .await
            .expect("check")
            .valid
    );
}

#[tokio::test]
async fn api_mode_appends_to_an_existing_list_and_passes_caddys_refusal_on() {
    let other = json!({"certificate": "other", "key": "other"});
    let api = AdminApi::start(json!({"apps": {"tls": {"certificates": {"load_pem": [other]}}}}));
    let (_plugins, plugin) = caddy(vec![api.grant()]);
    let config = json!({"mode": "api", "admin_api": api.url(), "certificate_id": "site-a"});

    let out = plugin.deploy(request(&config, LEAF)).await.expect("deploy");
    assert!(
        out.message
            .ends_with("added to apps.tls.certificates.load_pem"),
        "{}",
        out.message
    );
    let seen = api.take();
    assert_eq!(seen.len(), 3, "{seen:#?}");
    assert_json_request(&seen[0], "PATCH", "/id/site-a", &api);
    assert_json_request(
        &seen[1],
        "GET",
        "/config/apps/tls/certificates/load_pem",
        &api,
    );
    assert_eq!(seen[1].status, 200);
    assert_json_request(
        &seen[2],
        "POST",
        "/config/apps/tls/certificates/load_pem",
        &api,
    );
    assert_eq!(seen[2].json(), entry("site-a", LEAF));
    assert_eq!(
        api.config()["apps"]["tls"]["certificates"]["load_pem"],
        json!([other, entry("site-a", LEAF)])
    );

    // Caddy refuses the change (here: the TLS app's certificates are not an object):
    // `rejected`, with Caddy's message, and the config stays as it was.
    let api = AdminApi::start(json!({"apps": {"tls": {"certificates": "broken"}}}));
    let (_plugins, plugin) = caddy(vec![api.grant()]);
    let config = json!({"mode": "api", "admin_api": api.url()});
    let err = plugin.deploy(request(&config, LEAF)).await.unwrap_err();
    assert!(
        matches!(&err, RuntimeError::Connector { kind: certctl_core::runtime::ConnectorErrorKind::Rejected, message, .. }
            if message.contains("PUT") && message.contains("HTTP 400") && message.contains("invalid traversal path")),
        "{err:?}"
    );
    assert_eq!(api.config()["apps"]["tls"]["certificates"], "broken");
}

#[tokio::test]
async fn api_mode_to_an_admin_host_not_granted_is_denied() {
    let api = AdminApi::start(json!({}));
    // Another port of the same host is another authority.
    let (_plugins, plugin) = caddy(vec![format!(
        "http://127.0.0.1:{}",
        api.port.wrapping_add(1)
    )]);
    let config = json!({"mode": "api", "admin_api": api.url()});
    let err = plugin.deploy(request(&config, LEAF)).await.unwrap_err();
    assert!(
        matches!(&err, RuntimeError::Denied { capability: Capability::Host(host), .. } if *host == api.authority()),
        "{err:?}"
    );
    assert!(api.take().is_empty(), "nothing reached the admin API");

    // The same plugin, granted: the next call goes through.
    let (_plugins, plugin) = caddy(vec![api.grant()]);
    plugin
        .deploy(request(&config, LEAF))
        .await
        .expect("granted");
    assert_eq!(api.take().len(), 3);
}
