//! The REST API under `/api/v1`, the probes, and the request pipeline around them.

pub mod actions;
pub mod agents;
pub mod auth;
pub mod certificates;
pub mod error;
pub mod exports;
pub mod health;
pub mod issuers;
pub mod jobs;
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
use records::SpecRef;

/// Registers every route. The OpenAPI document is derived from the same tables
/// (`RESOURCES` and [`openapi::EXTRA_ROUTES`]), and a test checks they agree.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/health", web::get().to(health::health))
        .route("/ready", web::get().to(health::ready));
    let mut v1 = web::scope("/api/v1")
        .route("/auth/info", web::get().to(auth::info))
        .route("/auth/check", web::get().to(auth::check))
        .route("/openapi.json", web::get().to(openapi::document))
        .route("/admin/request-stats", web::get().to(request_stats::stats))
        .configure(revocation::configure)
        .configure(crate::plugins::configure)
        .configure(notifications::configure);
    for spec in RESOURCES {
        let collection = if spec.writable {
            web::resource("")
                .route(web::get().to(records::list))
                .route(web::post().to(records::create))
        } else {
            web::resource("").route(web::get().to(records::list))
        };
        let item = if spec.writable {
            web::resource("/{id}")
                .route(web::get().to(records::get))
                .route(web::put().to(records::update))
                .route(web::delete().to(records::delete))
        } else {
            web::resource("/{id}").route(web::get().to(records::get))
        };
        let extra: fn(&mut web::ServiceConfig) = match spec.path {
            "certificates" => certificates::configure,
            "jobs" => jobs::configure,
            "agents" => agents::configure,
            "issuers" => issuers::configure,
            "notifications" => notifications::configure_items,
            _ => |_| {},
        };
        v1 = v1.service(
            web::scope(&format!("/{}", spec.path))
                .app_data(SpecRef(spec))
                .configure(extra)
                .service(collection.default_service(web::to(records::method_not_allowed)))
                .service(item.default_service(web::to(records::method_not_allowed)))
                // Without this, `/{resources}/a/b` falls through to the App's plain 404.
                .default_service(web::to(records::not_found)),
        );
    }
    cfg.service(v1.default_service(web::to(records::not_found)));
    // Unauthenticated CRL and OCSP for relying parties.
    cfg.configure(well_known::configure);
    // Last resort for every other path: the web dashboard (never shadows a route above).
    cfg.default_service(web::to(dashboard::serve));
}
