//! The web dashboard: the built single-page app (`web/dist`, or `CERTCTL_WEB_DIR`) served at
//! `/` as the App's default service, so every real route (`/api/v1`, `/health`, `/ready`,
//! `/.well-known`) wins over it.
//!
//! - An existing file under the directory is served (paths are canonicalized and must stay
//!   inside the canonical directory, so `..` and symlinks cannot escape it).
//! - Hashed build output under `/assets/` is cached for a year (`immutable`); everything else,
//!   `index.html` above all, is `no-cache` so a new build is picked up at once.
//! - Any other `GET`/`HEAD` path outside the reserved prefixes answers `index.html` (the app's
//!   router handles it); a missing file under `/assets/` is a plain 404.
//! - Without a built dashboard, `/` and app paths answer a short note (404) on how to build
//!   it, never a 500.

use std::path::{Component, Path, PathBuf};

use actix_web::http::header;
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse, web};

/// The configured dashboard directory, as given (resolved per request, so building the
/// dashboard after the server started needs no restart).
#[derive(Debug, Clone)]
pub struct WebDir(pub PathBuf);

const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const NO_CACHE: &str = "no-cache";
/// The dashboard only talks to its own origin; inline styles are used for computed widths.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                   img-src 'self' data:; connect-src 'self'; font-src 'self'; object-src 'none'; \
                   base-uri 'self'; form-action 'self'; frame-ancestors 'none'";

/// Paths the dashboard must never answer for: they belong to the API, the probes and the
/// PKI endpoints, whose own 404s apply.
fn is_reserved(path: &str) -> bool {
    ["/api", "/health", "/ready", "/.well-known"]
        .iter()
        .any(|p| {
            path == *p
                || path
                    .strip_prefix(p)
                    .is_some_and(|rest| rest.starts_with('/'))
        })
}

/// Whether the dashboard in `dir` has been built (its `index.html` exists).
pub fn is_built(dir: &Path) -> bool {
    dir.join("index.html").is_file()
}

fn content_type(path: &Path) -> &'static str {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json" | "map") => "application/json",
        Some("webmanifest") => "application/manifest+json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("webp") => "image/webp",
        Some("woff2") => "font/woff2",
        Some("woff") => "font/woff",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// The file under `root` that `request_path` names, if it exists and stays inside `root`.
fn resolve(root: &Path, request_path: &str) -> Option<PathBuf> {
    let relative = request_path.trim_start_matches('/');
    if relative.is_empty() || relative.contains('\0') || relative.contains('\\') {
        return None;
    }
    let relative = Path::new(relative);
    // Only plain names: no `..`, no root, no prefix. Canonicalization below also catches symlinks.
    if !relative
        .components()
        .all(|c| matches!(c, Component::Normal(_)))
    {
        return None;
    }
    let candidate = root.join(relative).canonicalize().ok()?;
    (candidate.starts_with(root) && candidate.is_file()).then_some(candidate)
}

async fn file_response(req: &HttpRequest, path: &Path, cache: &'static str) -> HttpResponse {
    match tokio::fs::read(path).await {
        Ok(bytes) => {
            let mut resp = HttpResponse::Ok();
            resp.insert_header((header::CONTENT_TYPE, content_type(path)))
                .insert_header((header::CACHE_CONTROL, cache))
                .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"));
            if content_type(path).starts_with("text/html") {
                resp.insert_header((header::CONTENT_SECURITY_POLICY, CSP))
                    .insert_header((header::X_FRAME_OPTIONS, "DENY"))
                    .insert_header((header::REFERRER_POLICY, "no-referrer"));
            }
            if req.method() == Method::HEAD {
                resp.insert_header((header::CONTENT_LENGTH, bytes.len()));
                resp.finish()
            } else {
                resp.body(bytes)
            }
        }
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "could not read dashboard file");
            not_found_text()
        }
    }
}

fn not_found_text() -> HttpResponse {
    HttpResponse::NotFound()
        .insert_header((header::CACHE_CONTROL, NO_CACHE))
        .content_type("text/plain; charset=utf-8")
        .body("not found\n")
}

/// The answer when no dashboard has been built: HTML for browsers, JSON otherwise.
fn not_built(req: &HttpRequest, dir: &Path) -> HttpResponse {
    let wants_html = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"));
    let message = format!(
        "The certctl web dashboard is not built: {} has no index.html. Build it with \
         `cd web && npm ci && npm run build` (./scripts/run does this), or point \
         CERTCTL_WEB_DIR at a built copy. The API is available under /api/v1.",
        dir.display()
    );
    let mut resp = HttpResponse::build(StatusCode::NOT_FOUND);
    resp.insert_header((header::CACHE_CONTROL, NO_CACHE));
    if wants_html {
        let escaped = message
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;");
        resp.content_type("text/html; charset=utf-8").body(format!(
            "<!doctype html><meta charset=\"utf-8\"><title>certctl</title>\
             <body style=\"font-family:system-ui;background:#0f1419;color:#d8dee9;padding:2rem\">\
             <h1>certctl</h1><p>{escaped}</p></body>"
        ))
    } else {
        resp.json(serde_json::json!({
            "error": {"code": "dashboard_not_built", "message": message}
        }))
    }
}

/// The App's default service: static files, SPA fallback, or the usual JSON 404.
pub async fn serve(req: HttpRequest) -> HttpResponse {
    let path = req.path().to_owned();
    if is_reserved(&path) || !matches!(*req.method(), Method::GET | Method::HEAD) {
        return actix_web::ResponseError::error_response(&super::error::ApiError::NotFound(
            format!("no route for {} {}", req.method(), path),
        ));
    }
    let configured = req
        .app_data::<web::Data<WebDir>>()
        .map_or_else(|| PathBuf::from("web/dist"), |d| d.0.clone());
    let Some(root) = configured.canonicalize().ok().filter(|root| is_built(root)) else {
        return not_built(&req, &configured);
    };
    if let Some(file) = resolve(&root, &path) {
        let cache = if path.starts_with("/assets/") {
            IMMUTABLE
        } else {
            NO_CACHE
        };
        return file_response(&req, &file, cache).await;
    }
    if path.starts_with("/assets/") {
        return not_found_text();
    }
    file_response(&req, &root.join("index.html"), NO_CACHE).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::HeaderValue;
    use actix_web::{App, test};

    fn header_is(
        resp: &actix_web::dev::ServiceResponse,
        name: header::HeaderName,
        value: &str,
    ) -> bool {
        resp.headers().get(name) == Some(&HeaderValue::from_str(value).unwrap())
    }

    fn built_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("index.html"),
            "<!doctype html><div id=root></div>",
        )
        .unwrap();
        std::fs::write(dir.path().join("favicon.svg"), "<svg/>").unwrap();
        std::fs::create_dir(dir.path().join("assets")).unwrap();
        std::fs::write(dir.path().join("assets/index-abc123.js"), "console.log(1)").unwrap();
        dir
    }

    async fn call(dir: &Path, method: Method, uri: &str) -> actix_web::dev::ServiceResponse {
        let app = test::init_service(
            App::new()
                .app_data(web::Data::new(WebDir(dir.to_path_buf())))
                .route("/health", web::get().to(HttpResponse::Ok))
                .default_service(web::to(serve)),
        )
        .await;
        let req = test::TestRequest::default()
            .method(method)
            .uri(uri)
            .insert_header((header::ACCEPT, "text/html"))
            .to_request();
        test::call_service(&app, req).await
    }

    #[actix_web::test]
    async fn serves_index_and_assets_with_their_cache_policies() {
        let dir = built_dir();
        let resp = call(dir.path(), Method::GET, "/").await;
        assert_eq!(resp.status(), 200);
        assert!(header_is(&resp, header::CACHE_CONTROL, NO_CACHE));
        assert!(header_is(
            &resp,
            header::CONTENT_TYPE,
            "text/html; charset=utf-8"
        ));
        assert!(resp.headers().contains_key(header::CONTENT_SECURITY_POLICY));

        let resp = call(dir.path(), Method::GET, "/assets/index-abc123.js").await;
        assert_eq!(resp.status(), 200);
        assert!(header_is(&resp, header::CACHE_CONTROL, IMMUTABLE));
        assert!(header_is(
            &resp,
            header::CONTENT_TYPE,
            "text/javascript; charset=utf-8"
        ));
        assert_eq!(test::read_body(resp).await, "console.log(1)");

        let resp = call(dir.path(), Method::GET, "/favicon.svg").await;
        assert!(header_is(&resp, header::CACHE_CONTROL, NO_CACHE));

        let resp = call(dir.path(), Method::HEAD, "/assets/index-abc123.js").await;
        assert_eq!(resp.status(), 200);
    }

    #[actix_web::test]
    async fn app_routes_fall_back_to_index_but_missing_assets_do_not() {
        let dir = built_dir();
        let resp = call(dir.path(), Method::GET, "/certificates/mc-1?page=2").await;
        assert_eq!(resp.status(), 200);
        assert!(header_is(&resp, header::CACHE_CONTROL, NO_CACHE));
        assert_eq!(
            test::read_body(resp).await,
            "<!doctype html><div id=root></div>"
        );
        let resp = call(dir.path(), Method::GET, "/assets/gone-123.js").await;
        assert_eq!(resp.status(), 404);
    }

    #[actix_web::test]
    async fn reserved_paths_and_other_methods_keep_their_404() {
        let dir = built_dir();
        for uri in [
            "/api/v1/nope",
            "/api",
            "/.well-known/pki/crl/x",
            "/ready/x",
            "/health/x",
        ] {
            let resp = call(dir.path(), Method::GET, uri).await;
            assert_eq!(resp.status(), 404, "{uri}");
            assert!(
                header_is(&resp, header::CONTENT_TYPE, "application/json"),
                "{uri}"
            );
        }
        let resp = call(dir.path(), Method::POST, "/certificates").await;
        assert_eq!(resp.status(), 404);
        // A real route still wins over the default service.
        assert_eq!(call(dir.path(), Method::GET, "/health").await.status(), 200);
        // `/healthz` is an app path, not the probe.
        assert_eq!(
            call(dir.path(), Method::GET, "/healthz").await.status(),
            200
        );
    }

    #[actix_web::test]
    async fn traversal_cannot_leave_the_directory() {
        let outer = tempfile::tempdir().unwrap();
        std::fs::write(outer.path().join("secret.txt"), "secret").unwrap();
        let dist = outer.path().join("dist");
        std::fs::create_dir(&dist).unwrap();
        std::fs::write(dist.join("index.html"), "INDEX").unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(outer.path().join("secret.txt"), dist.join("link.txt")).unwrap();
        for uri in [
            "/../secret.txt",
            "/%2e%2e/secret.txt",
            "/assets/../../secret.txt",
            "/link.txt",
            "/./index.html/..",
        ] {
            let resp = call(&dist, Method::GET, uri).await;
            let body = test::read_body(resp).await;
            assert_ne!(body, "secret", "{uri}");
        }
        assert!(resolve(&dist.canonicalize().unwrap(), "/../secret.txt").is_none());
        assert!(resolve(&dist.canonicalize().unwrap(), "/link.txt").is_none());
    }

    #[actix_web::test]
    async fn a_missing_build_answers_a_note_not_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let resp = call(&missing, Method::GET, "/").await;
        assert_eq!(resp.status(), 404);
        let body = String::from_utf8(test::read_body(resp).await.to_vec()).unwrap();
        assert!(body.contains("not built"), "{body}");

        let app = test::init_service(
            App::new()
                .app_data(web::Data::new(WebDir(missing)))
                .default_service(web::to(serve)),
        )
        .await;
        let resp =
            test::call_service(&app, test::TestRequest::get().uri("/jobs").to_request()).await;
        assert_eq!(resp.status(), 404);
        let body: serde_json::Value = test::read_body_json(resp).await;
        assert_eq!(body["error"]["code"], "dashboard_not_built");
    }
}
