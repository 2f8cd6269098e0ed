//! The OpenAPI 3.1 document, generated from the resource specs and the route table
//! ([`crate::api::routes`]), so it cannot drift from what the server actually serves. Every
//! operation carries the role it needs as `x-certctl-role` (`public`, `viewer`, `operator`,
//! `admin`, `agent`) and its security requirement.

use actix_web::HttpResponse;
use serde_json::{Map, Value, json};

use super::access::{Access as RouteAccess, Endpoint};
use crate::domain::RESOURCES;
use crate::domain::listing::MAX_PAGE_SIZE;
use crate::domain::resource::{Access, DeleteMode, FieldKind, ResourceSpec};

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

/// `/jobs/{id}` for an actix pattern, dropping regex parts (`{request:.+}` → `{request}`).
pub fn openapi_path(pattern: &str) -> String {
    pattern
        .split('/')
        .map(|seg| match (seg.strip_prefix('{'), seg.find(':')) {
            (Some(_), Some(colon)) => format!("{}}}", &seg[..colon]),
            _ => seg.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn path_parameters(path: &str) -> Vec<Value> {
    path.split('/')
        .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
        .collect()
}

/// Builds the whole document from the route table.
pub fn build(endpoints: &[Endpoint]) -> Value {
    let mut paths = Map::new();
    let mut schemas = Map::new();
    for spec in RESOURCES {
        resource_paths(spec, &mut paths);
        schemas.insert(schema_name(spec), record_schema(spec));
    }
    for e in endpoints {
        let path = openapi_path(&e.path);
        let method = e.method.as_str().to_ascii_lowercase();
        let entry = paths.entry(path.clone()).or_insert_with(|| json!({}));
        if !entry[&method].is_object() {
            entry[&method] = json!({
                "operationId": path.trim_start_matches('/').replace(['/', '.', '-', '{', '}'], "_") + "_" + &method,
                "summary": e.summary,
                "parameters": path_parameters(&path),
                "responses": {e.success.to_string(): {"description": "OK"}},
            });
        }
        let op = &mut entry[&method];
        op["x-certctl-role"] = json!(e.access.as_str());
        if e.access.authenticated() {
            op["security"] = json!([{"bearer": []}]);
            for code in [401, 403] {
                op["responses"][code.to_string()] =
                    json!({"$ref": format!("#/components/responses/E{code}")});
            }
        } else {
            op["security"] = json!([]);
        }
        if e.access != RouteAccess::PublicUnmetered {
            op["responses"]["429"] = json!({"$ref": "#/components/responses/E429"});
        }
    }
    schemas.insert("Error".into(), json!({
        "type": "object", "required": ["error"],
        "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {
            "code": {"type": "string"}, "message": {"type": "string"}, "field": {"type": "string"}}}}
    }));
    let mut responses = Map::new();
    for (code, text) in [
        (400, "Invalid input (names the field)"),
        (401, "Missing, invalid, expired or revoked API key"),
        (403, "The key's role may not call this route (audited)"),
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
    let mut doc = build(&crate::api::routes().endpoints());
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
        let doc = build(&crate::api::routes().endpoints());
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

    /// The route table and the document agree both ways, and every operation names a role.
    #[test]
    fn every_route_is_documented_with_its_role_and_nothing_else_is() {
        let endpoints = crate::api::routes().endpoints();
        let doc = build(&endpoints);
        let mut declared = std::collections::BTreeSet::new();
        for e in &endpoints {
            let key = (
                openapi_path(&e.path),
                e.method.as_str().to_ascii_lowercase(),
            );
            assert!(declared.insert(key.clone()), "{key:?} declared twice");
            let op = &doc["paths"][&key.0][&key.1];
            assert_eq!(op["x-certctl-role"], e.access.as_str(), "{key:?}");
        }
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                assert!(
                    declared.contains(&(path.clone(), method.clone())),
                    "{method} {path} is documented but not registered"
                );
                let role = op["x-certctl-role"].as_str().unwrap_or_default();
                assert!(
                    ["public", "viewer", "operator", "admin", "agent"].contains(&role),
                    "{method} {path}: role {role:?}"
                );
            }
        }
    }

    #[test]
    fn actix_patterns_become_openapi_paths() {
        assert_eq!(
            openapi_path("/.well-known/pki/ocsp/{issuer_id}/{request:.+}"),
            "/.well-known/pki/ocsp/{issuer_id}/{request}"
        );
        assert_eq!(
            openapi_path("/api/v1/jobs/{id}/cancel"),
            "/api/v1/jobs/{id}/cancel"
        );
    }

    #[test]
    fn operation_ids_are_unique() {
        let doc = build(&crate::api::routes().endpoints());
        let mut seen = std::collections::HashSet::new();
        for (_, item) in doc["paths"].as_object().unwrap() {
            for (_, op) in item.as_object().unwrap() {
                let id = op["operationId"].as_str().unwrap().to_owned();
                assert!(seen.insert(id.clone()), "duplicate {id}");
            }
        }
    }
}
