//! The OpenAPI 3.1 document, generated from the resource specs and the route table, so it
//! cannot drift from what the server actually serves.

use actix_web::HttpResponse;
use serde_json::{Map, Value, json};

use crate::domain::RESOURCES;
use crate::domain::listing::MAX_PAGE_SIZE;
use crate::domain::resource::{Access, DeleteMode, FieldKind, ResourceSpec};

/// A route outside the generic resource handlers.
#[derive(Debug, Clone, Copy)]
pub struct RouteDoc {
    /// Lower-case HTTP method.
    pub method: &'static str,
    /// Path with `{param}` placeholders.
    pub path: &'static str,
    /// One-line summary.
    pub summary: &'static str,
    /// Whether credentials are required.
    pub authenticated: bool,
    /// Success status.
    pub success: u16,
}

/// Every non-generic route registered in [`super::configure`].
pub const EXTRA_ROUTES: &[RouteDoc] = &[
    RouteDoc {
        method: "post",
        path: "/api/v1/notifications/{id}/read",
        summary: "Mark a notification read",
        authenticated: true,
        success: 200,
    },
    RouteDoc {
        method: "post",
        path: "/api/v1/notifications/{id}/requeue",
        summary: "Requeue a Failed or DeadLetter notification (attempts reset, due now; 409 otherwise)",
        authenticated: true,
        success: 200,
    },
    RouteDoc {
        method: "get",
        path: "/api/v1/notifiers",
        summary: "Configured notification channels (secrets redacted), their plugins, granted hosts and routes",
        authenticated: true,
        success: 200,
    },
    RouteDoc {
        method: "get",
        path: "/api/v1/digest/preview",
        summary: "The certificate digest as HTML (text/html; 503 without the email channel)",
        authenticated: true,
        success: 200,
    },
    RouteDoc {
        method: "post",
        path: "/api/v1/digest/send",
        summary: "Send the digest through the email channel now (503 without one)",
        authenticated: true,
        success: 200,
    },
    RouteDoc {
        method: "get",
        path: "/api/v1/plugins",
        summary: "WebAssembly connectors: manifest, requested and granted capabilities, config schema, load error",
        authenticated: true,
        success: 200,
    },
    RouteDoc {
        method: "post",
        path: "/api/v1/plugins/reload",
        summary: "Re-read the grants file and re-scan the plugin directory (admin)",
        authenticated: true,
        success: 200,
    },
    RouteDoc {
        method: "get",
        path: "/health",
        summary: "Liveness probe (always 200)",
        authenticated: false,
        success: 200,
    },
    RouteDoc {
        method: "get",
        path: "/ready",
        summary: "Readiness probe (503 when the database is unavailable)",
        authenticated: false,
        success: 200,
    },
    RouteDoc {
        method: "get",
        path: "/api/v1/auth/info",
        summary: "Authentication mode",
        authenticated: false,
        success: 200,
    },
    RouteDoc {
        method: "get",
        path: "/api/v1/auth/check",
        summary: "Validate credentials",
        authenticated: false,
        success: 200,
    },
    RouteDoc {
        method: "get",
        path: "/api/v1/openapi.json",
        summary: "This document",
        authenticated: false,
        success: 200,
    },
    RouteDoc {
        method: "post",
        path: "/api/v1/certificates/{id}/renew",
        summary: "Open a renewal job (202)",
        authenticated: true,
        success: 202,
    },
    RouteDoc {
        method: "get",
        path: "/api/v1/certificates/{id}/versions",
        summary: "Issued versions, newest first, with PEM chains",
        authenticated: true,
        success: 200,
    },
    RouteDoc {
        method: "get",
        path: "/api/v1/certificates/{id}/targets",
        summary: "Targets the certificate is deployed to",
        authenticated: true,
        success: 200,
    },
    RouteDoc {
        method: "post",
        path: "/api/v1/certificates/{id}/targets",
        summary: "Map a target (body: target_id)",
        authenticated: true,
        success: 201,
    },
    RouteDoc {
        method: "delete",
        path: "/api/v1/certificates/{id}/targets/{target_id}",
        summary: "Unmap a target",
        authenticated: true,
        success: 204,
    },
    RouteDoc {
        method: "post",
        path: "/api/v1/jobs/{id}/cancel",
        summary: "Cancel a job (optional reason)",
        authenticated: true,
        success: 200,
    },
    RouteDoc {
        method: "post",
        path: "/api/v1/jobs/{id}/retry",
        summary: "Requeue a failed or cancelled job",
        authenticated: true,
        success: 200,
    },
    RouteDoc {
        method: "post",
        path: "/api/v1/jobs/{id}/approve",
        summary: "Approve a job awaiting approval",
        authenticated: true,
        success: 200,
    },
    RouteDoc {
        method: "post",
        path: "/api/v1/jobs/{id}/reject",
        summary: "Reject a job awaiting approval (reason required)",
        authenticated: true,
        success: 200,
    },
    RouteDoc {
        method: "post",
        path: "/api/v1/agents/{id}/csr",
        summary: "Submit the CSR for a job awaiting one (body: job_id, csr_pem; 202)",
        authenticated: true,
        success: 202,
    },
    RouteDoc {
        method: "get",
        path: "/api/v1/issuers/{id}/ca",
        summary: "The issuer's CA chain (PEM)",
        authenticated: true,
        success: 200,
    },
    RouteDoc {
        method: "post",
        path: "/api/v1/certificates/{id}/revoke",
        summary: "Revoke every issued serial of the certificate (body: reason, RFC 5280 name; default unspecified)",
        authenticated: true,
        success: 200,
    },
    RouteDoc {
        method: "post",
        path: "/api/v1/certificates/bulk-revoke",
        summary: "Revoke the certificates matching all given criteria (profile_id, owner_id, agent_id, issuer_id, team_id, certificate_ids; reason); 202 with job_id, affected and per-certificate results",
        authenticated: true,
        success: 202,
    },
    RouteDoc {
        method: "get",
        path: "/api/v1/bulk-revocations",
        summary: "Bulk revocation runs, newest first",
        authenticated: true,
        success: 200,
    },
    RouteDoc {
        method: "get",
        path: "/api/v1/bulk-revocations/{bulk_revocation_id}",
        summary: "A bulk revocation run with every certificate's outcome",
        authenticated: true,
        success: 200,
    },
    RouteDoc {
        method: "get",
        path: "/api/v1/admin/crl/cache",
        summary: "Per-issuer CRL cache state and recent generation events (admin only)",
        authenticated: true,
        success: 200,
    },
    RouteDoc {
        method: "get",
        path: "/api/v1/certificates/{id}/export/pem",
        summary: "The current version as PEM (JSON: certificate, chain, pem_chain, serial_number, fingerprint_sha256; ?download=true for a .pem file)",
        authenticated: true,
        success: 200,
    },
    RouteDoc {
        method: "post",
        path: "/api/v1/certificates/{id}/export/pkcs12",
        summary: "The current version and its chain as PKCS#12, no private key (body: optional password)",
        authenticated: true,
        success: 200,
    },
    RouteDoc {
        method: "get",
        path: "/.well-known/pki/crl/{issuer_id}",
        summary: "The issuer's DER CRL (application/pkix-crl)",
        authenticated: false,
        success: 200,
    },
    RouteDoc {
        method: "post",
        path: "/.well-known/pki/ocsp/{issuer_id}",
        summary: "OCSP (RFC 6960): application/ocsp-request in, application/ocsp-response out",
        authenticated: false,
        success: 200,
    },
    RouteDoc {
        method: "get",
        path: "/.well-known/pki/ocsp/{issuer_id}/{request}",
        summary: "OCSP by hex serial, or the RFC 6960 GET form (base64 DER OCSPRequest)",
        authenticated: false,
        success: 200,
    },
    RouteDoc {
        method: "post",
        path: "/api/v1/agents/register",
        summary: "Register an agent with the bootstrap token (or an admin key); returns its API key once",
        authenticated: false,
        success: 201,
    },
    RouteDoc {
        method: "post",
        path: "/api/v1/agents/{id}/heartbeat",
        summary: "Agent heartbeat (OS, arch, IP, hostname, version)",
        authenticated: true,
        success: 200,
    },
    RouteDoc {
        method: "get",
        path: "/api/v1/agents/{id}/work",
        summary: "Work the agent can act on now (CSRs, deployments)",
        authenticated: true,
        success: 200,
    },
    RouteDoc {
        method: "post",
        path: "/api/v1/agents/{id}/jobs/{job_id}/status",
        summary: "Agent reports a deployment job's status",
        authenticated: true,
        success: 200,
    },
    RouteDoc {
        method: "get",
        path: "/api/v1/agents/{id}/session",
        summary: "Agent-initiated WebSocket: the server nudges {\"type\":\"work\"} when work is actionable",
        authenticated: true,
        success: 101,
    },
];

fn schema_for(kind: FieldKind) -> Value {
    match kind {
        FieldKind::Text => json!({"type": "string"}),
        FieldKind::Email => json!({"type": "string", "format": "email"}),
        FieldKind::Int { min, max } => json!({"type": "integer", "minimum": min, "maximum": max}),
        FieldKind::Bool => json!({"type": "boolean"}),
        FieldKind::Enum(values) => json!({"type": "string", "enum": values}),
        // Without `enum`: plugin ids are accepted too. `document` lists the loaded ones.
        FieldKind::Connector { builtin, .. } => {
            json!({"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]*$", "examples": builtin})
        }
        FieldKind::Timestamp => json!({"type": "string", "format": "date-time"}),
        FieldKind::StringList => json!({"type": "array", "items": {"type": "string"}}),
        FieldKind::IntList => json!({"type": "array", "items": {"type": "integer"}}),
        FieldKind::Object => json!({"type": "object"}),
        FieldKind::ObjectList => json!({"type": "array", "items": {"type": "object"}}),
    }
}

fn schema_name(spec: &ResourceSpec) -> String {
    spec.singular
        .split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

fn record_schema(spec: &ResourceSpec) -> Value {
    let mut props = Map::new();
    for (name, kind) in spec.columns() {
        let mut s = schema_for(kind);
        if let Some(f) = spec.field(name) {
            s["description"] = Value::String(f.doc.to_owned());
            if f.access == Access::ReadOnly {
                s["readOnly"] = Value::Bool(true);
            }
        } else {
            s["readOnly"] = Value::Bool(name != "id");
        }
        props.insert(name.to_owned(), s);
    }
    let required: Vec<&str> = spec
        .fields
        .iter()
        .filter(|f| f.required)
        .map(|f| f.name)
        .collect();
    json!({"type": "object", "properties": props, "required": required})
}

fn error_responses(codes: &[u16]) -> Map<String, Value> {
    codes
        .iter()
        .map(|c| {
            (
                c.to_string(),
                json!({"$ref": format!("#/components/responses/E{c}")}),
            )
        })
        .collect()
}

fn list_parameters(spec: &ResourceSpec) -> Vec<Value> {
    let mut params = vec![
        json!({"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1}}),
        json!({"name": "per_page", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE}}),
        json!({"name": "cursor", "in": "query", "description": "Keyset pagination; empty for the first page, then next_cursor", "schema": {"type": "string"}}),
        json!({"name": "page_size", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE}}),
        json!({"name": "sort", "in": "query", "description": format!("One of {} (prefix - for descending)", spec.sortable().join(", ")), "schema": {"type": "string"}}),
        json!({"name": "fields", "in": "query", "description": "Comma-separated sparse fieldset", "schema": {"type": "string"}}),
        json!({"name": "created_after", "in": "query", "schema": {"type": "string", "format": "date-time"}}),
        json!({"name": "created_before", "in": "query", "schema": {"type": "string", "format": "date-time"}}),
    ];
    if spec.timestamps {
        for p in ["updated_after", "updated_before"] {
            params.push(json!({"name": p, "in": "query", "schema": {"type": "string", "format": "date-time"}}));
        }
    }
    for tf in spec.time_filters {
        params.push(json!({"name": tf.param, "in": "query", "schema": {"type": "string", "format": "date-time"}}));
    }
    for f in spec.fields.iter().filter(|f| f.filterable) {
        params.push(json!({"name": f.name, "in": "query", "description": "Equals; comma-separated values match any", "schema": schema_for(f.kind)}));
    }
    params
}

fn resource_paths(spec: &ResourceSpec, paths: &mut Map<String, Value>) {
    let name = schema_name(spec);
    let reference = json!({"$ref": format!("#/components/schemas/{name}")});
    let tag = spec.path;
    let mut collection = Map::new();
    let mut list_responses = error_responses(&[400, 401, 429]);
    list_responses.insert("200".into(), json!({"description": "A page", "content": {"application/json": {"schema": {
        "type": "object",
        "properties": {"data": {"type": "array", "items": reference}, "total": {"type": "integer"}, "page": {"type": "integer"}, "per_page": {"type": "integer"}, "next_cursor": {"type": ["string", "null"]}}
    }}}}));
    collection.insert("get".into(), json!({
        "operationId": format!("list_{}", spec.path.replace(['-', '/'], "_")), "tags": [tag],
        "summary": format!("List {}", spec.doc), "parameters": list_parameters(spec), "responses": list_responses,
    }));
    let id_param = json!({"name": "id", "in": "path", "required": true, "schema": {"type": "string", "pattern": format!("^{}-", spec.id_prefix)}});
    let mut item = Map::new();
    let mut get_responses = error_responses(&[400, 401, 404, 429]);
    get_responses.insert("200".into(), json!({"description": "The record", "content": {"application/json": {"schema": reference}}}));
    item.insert("get".into(), json!({
        "operationId": format!("get_{}", spec.singular), "tags": [tag], "summary": format!("Get one {}", spec.singular.replace('_', " ")),
        "parameters": [id_param, {"name": "fields", "in": "query", "schema": {"type": "string"}}], "responses": get_responses,
    }));
    if spec.writable {
        let body =
            json!({"required": true, "content": {"application/json": {"schema": reference}}});
        let mut created = error_responses(&[400, 401, 409, 413, 429]);
        created.insert("201".into(), json!({"description": "Created", "content": {"application/json": {"schema": reference}}}));
        collection.insert("post".into(), json!({
            "operationId": format!("create_{}", spec.singular), "tags": [tag], "summary": format!("Create a {} (id generated when omitted)", spec.singular.replace('_', " ")),
            "requestBody": body, "responses": created,
        }));
        let mut updated = error_responses(&[400, 401, 404, 409, 413, 429]);
        updated.insert("200".into(), json!({"description": "Updated", "content": {"application/json": {"schema": reference}}}));
        item.insert("put".into(), json!({
            "operationId": format!("update_{}", spec.singular), "tags": [tag], "summary": "Change the fields present in the body",
            "parameters": [id_param], "requestBody": body, "responses": updated,
        }));
        if spec.delete != DeleteMode::Forbidden {
            let mut deleted = error_responses(&[401, 404, 409, 429]);
            deleted.insert("204".into(), json!({"description": match spec.delete { DeleteMode::Archive { .. } => "Archived", _ => "Deleted" }}));
            item.insert("delete".into(), json!({
                "operationId": format!("delete_{}", spec.singular), "tags": [tag], "summary": match spec.delete { DeleteMode::Archive { .. } => "Archive (history is kept)", _ => "Delete" },
                "parameters": [id_param], "responses": deleted,
            }));
        }
    }
    paths.insert(format!("/api/v1/{}", spec.path), Value::Object(collection));
    paths.insert(format!("/api/v1/{}/{{id}}", spec.path), Value::Object(item));
}

/// Builds the whole document.
pub fn build() -> Value {
    let mut paths = Map::new();
    let mut schemas = Map::new();
    for spec in RESOURCES {
        resource_paths(spec, &mut paths);
        schemas.insert(schema_name(spec), record_schema(spec));
    }
    for route in EXTRA_ROUTES {
        let entry = paths
            .entry(route.path.to_owned())
            .or_insert_with(|| json!({}));
        let mut op = json!({
            "operationId": route.path.trim_start_matches('/').replace(['/', '.', '-'], "_") + "_" + route.method,
            "summary": route.summary,
            "responses": {route.success.to_string(): {"description": "OK"}},
        });
        if !route.authenticated {
            op["security"] = json!([]);
        }
        entry[route.method] = op;
    }
    schemas.insert("Error".into(), json!({
        "type": "object", "required": ["error"],
        "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {
            "code": {"type": "string"}, "message": {"type": "string"}, "field": {"type": "string"}}}}
    }));
    let mut responses = Map::new();
    for (code, text) in [
        (400, "Invalid input (names the field)"),
        (401, "Missing or invalid API key"),
        (404, "Not found"),
        (409, "Conflict"),
        (413, "Body too large"),
        (429, "Rate limited (see Retry-After)"),
    ] {
        responses.insert(format!("E{code}"), json!({"description": text, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}));
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "certctl API", "version": env!("CARGO_PKG_VERSION"), "description": "Certificate lifecycle control plane"},
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "responses": responses,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "API key"}},
        },
    })
}

/// `GET /api/v1/openapi.json`. Connector-type fields list their built-in types and the
/// plugins loaded now as `enum`, so the dashboard offers a plugin right after a reload.
pub async fn document(
    plugins: Option<actix_web::web::Data<crate::plugins::PluginRegistry>>,
) -> HttpResponse {
    let mut doc = build();
    for spec in RESOURCES {
        for field in spec.fields {
            if let FieldKind::Connector {
                builtin,
                plugin_kind,
            } = field.kind
            {
                let mut values: Vec<String> = builtin.iter().map(|s| s.to_string()).collect();
                for id in plugins.iter().flat_map(|p| p.loaded_ids(plugin_kind)) {
                    if !values.contains(&id) {
                        values.push(id);
                    }
                }
                doc["components"]["schemas"][schema_name(spec)]["properties"][field.name]["enum"] =
                    json!(values);
            }
        }
    }
    HttpResponse::Ok().json(doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_resource_has_its_paths_and_schema() {
        let doc = build();
        for spec in RESOURCES {
            assert!(
                doc["paths"][format!("/api/v1/{}", spec.path)]["get"].is_object(),
                "{}",
                spec.path
            );
            assert!(doc["paths"][format!("/api/v1/{}/{{id}}", spec.path)]["get"].is_object());
            assert_eq!(
                doc["paths"][format!("/api/v1/{}", spec.path)]["post"].is_object(),
                spec.writable
            );
        }
        assert_eq!(doc["openapi"], "3.1.0");
    }

    #[test]
    fn operation_ids_are_unique() {
        let doc = build();
        let mut seen = std::collections::HashSet::new();
        for (_, item) in doc["paths"].as_object().unwrap() {
            for (_, op) in item.as_object().unwrap() {
                let id = op["operationId"].as_str().unwrap().to_owned();
                assert!(seen.insert(id.clone()), "duplicate {id}");
            }
        }
    }
}
