//! The REST API under `/api/v1`, the probes, and the request pipeline around them.

pub mod access;
pub mod actions;
pub mod agents;
pub mod api_keys;
pub mod auth;
pub mod certificates;
pub mod error;
pub mod exports;
pub mod health;
pub mod issuers;
pub mod jobs;
pub mod normalize;
pub mod notifications;
pub mod openapi;
pub mod rate_limit;
pub mod records;
pub mod request_context;
pub mod request_stats;
pub mod revocation;
pub mod state;
pub mod well_known;
// The dashboard's file is api/web.rs; named `dashboard` so it does not clash with `actix_web::web`.
#[path = "api/web.rs"]
pub mod dashboard;

use actix_web::web;

use crate::domain::RESOURCES;
use crate::domain::resource::{DeleteMode, ResourceSpec};
use access::{Access, Routes};
use records::SpecRef;

/// Who may change a generic resource. Everyone with a user key may read them (viewer);
/// agents may not (their routes are their own, in [`agents`]).
fn write_access(spec: &ResourceSpec) -> Access {
    match spec.path {
        // Organisation and fleet: administration.
        "teams" | "owners" | "agents" => Access::ADMIN,
        // The certificate lifecycle: operators.
        _ => Access::OPERATOR,
    }
}

/// The whole route table: every route the server serves, each with the role it needs.
/// [`configure`] registers exactly this; the OpenAPI document and the access tests read it.
pub fn routes() -> Routes {
    let mut r = Routes::new();
    health::routes(&mut r);
    // Asked by the dashboard before sign-in; answers a constant, so it costs nothing.
    r.get(
        "/api/v1/auth/info",
        Access::PublicUnmetered,
        "Authentication mode",
        auth::info,
    );
    r.get(
        "/api/v1/auth/check",
        Access::PublicCredential,
        "Validate credentials: the caller's name, role and agent",
        auth::check,
    );
    r.get(
        "/api/v1/openapi.json",
        Access::Public,
        "This document",
        openapi::document,
    );
    r.get(
        "/api/v1/admin/request-stats",
        Access::ADMIN,
        "API-call log queue (queued, capacity, dropped, recorded), OCSP/CRL request counts, rate-limiter size",
        request_stats::stats,
    );
    api_keys::routes(&mut r);
    revocation::routes(&mut r);
    crate::plugins::routes(&mut r);
    notifications::routes(&mut r);
    certificates::routes(&mut r);
    jobs::routes(&mut r);
    agents::routes(&mut r);
    issuers::routes(&mut r);
    for spec in RESOURCES {
        let collection = format!("/api/v1/{}", spec.path);
        let item = format!("{collection}/{{id}}");
        let summary_list = "List (page/per_page or cursor, sort, fields, filters)";
        r.get(&collection, Access::VIEWER, summary_list, records::list);
        r.get(&item, Access::VIEWER, "Get one", records::get);
        if spec.writable {
            let write = write_access(spec);
            r.post(
                &collection,
                write,
                "Create (id generated when omitted)",
                records::create,
            )
            .status(201);
            r.put(
                &item,
                write,
                "Change the fields present in the body",
                records::update,
            );
            if spec.path == crate::domain::agent::SPEC.path {
                r.delete(
                    &item,
                    write,
                    "Retire the agent (soft: the record stays, its keys are revoked)",
                    agents::delete,
                )
                .status(204);
            } else if spec.delete != DeleteMode::Forbidden {
                r.delete(
                    &item,
                    write,
                    "Delete (certificates are archived)",
                    records::delete,
                )
                .status(204);
            }
        }
        r.data(&collection, SpecRef(spec));
        r.data(&item, SpecRef(spec));
    }
    well_known::routes(&mut r);
    r
}

/// Registers every route of [`routes`], then the last resort: unknown paths under `/api/`
/// (in any spelling) answer 401 or 404, everything else is the dashboard's.
pub fn configure(cfg: &mut web::ServiceConfig) {
    routes().register(cfg);
    cfg.default_service(web::to(access::fallback));
}
