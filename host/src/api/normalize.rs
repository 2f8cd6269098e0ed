//! The outermost layer: one canonical spelling of the request path before anything looks at
//! it — percent-encoded unreserved characters decoded (`/%61pi` is `/api`), runs of `/`
//! merged, and `.`/`..` segments resolved (RFC 3986 §5.2.4). Routing, access control and
//! the API-call log then all see the same path, so no spelling of a route reaches a handler
//! past a decision made for another spelling. Reserved characters (`%2F` above all) stay
//! encoded: decoding them would change what the path means.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Uri;
use actix_web::http::uri::PathAndQuery;
use actix_web::middleware::Next;

/// The canonical form of `path` (always starting with `/`).
pub fn canonical_path(path: &str) -> String {
    let decoded = decode_unreserved(path);
    let mut out: Vec<&str> = Vec::new();
    let trailing = decoded.ends_with('/') || decoded.ends_with("/.") || decoded.ends_with("/..");
    for segment in decoded.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    let mut canonical = String::with_capacity(decoded.len());
    for s in &out {
        canonical.push('/');
        canonical.push_str(s);
    }
    if canonical.is_empty() || (trailing && !out.is_empty()) {
        canonical.push('/');
    }
    canonical
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Decodes `%XX` only where XX is an unreserved character (RFC 3986 §2.3), which is
/// equivalent to the literal character; hex digits of kept escapes are upper-cased.
fn decode_unreserved(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) = (
                bytes.get(i + 1).and_then(|b| char::from(*b).to_digit(16)),
                bytes.get(i + 2).and_then(|b| char::from(*b).to_digit(16)),
            )
        {
            // Two hex digits make a byte by construction.
            let byte = (h * 16 + l) as u8;
            if is_unreserved(byte) {
                out.push(char::from(byte));
            } else {
                out.push('%');
                out.push(char::from(bytes[i + 1]).to_ascii_uppercase());
                out.push(char::from(bytes[i + 2]).to_ascii_uppercase());
            }
            i += 3;
            continue;
        }
        // The request line is ASCII (actix refuses anything else), so bytes are chars.
        out.push(char::from(bytes[i]));
        i += 1;
    }
    out
}

/// Middleware; see the module comment.
pub async fn normalize_path(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let original = req.uri().path();
    let canonical = canonical_path(original);
    if canonical != original {
        let path_and_query = match req.uri().query() {
            Some(q) => format!("{canonical}?{q}"),
            None => canonical.clone(),
        };
        let mut parts = req.head().uri.clone().into_parts();
        if let Ok(pq) = PathAndQuery::from_maybe_shared(path_and_query) {
            parts.path_and_query = Some(pq);
            if let Ok(uri) = Uri::from_parts(parts) {
                req.match_info_mut().get_mut().update(&uri);
                req.head_mut().uri = uri;
            }
        }
    }
    next.call(req).await
}

#[cfg(test)]
mod tests {
    use super::canonical_path;

    #[test]
    fn one_spelling_per_path() {
        for (raw, want) in [
            ("/api/v1/certificates", "/api/v1/certificates"),
            ("/%61pi/v1/certificates", "/api/v1/certificates"),
            ("/%41PI/v1", "/API/v1"),
            ("//api//v1///certificates", "/api/v1/certificates"),
            ("/api/v1/./certificates", "/api/v1/certificates"),
            ("/api/v1/teams/../certificates", "/api/v1/certificates"),
            ("/api/v1/%2e%2e/v1/certificates", "/api/v1/certificates"),
            ("/../../api/v1/x", "/api/v1/x"),
            ("/api/v1/certificates/", "/api/v1/certificates/"),
            ("/api/v1/teams/..", "/api/v1/"),
            ("/", "/"),
            ("", "/"),
            ("/a%2Fb", "/a%2Fb"),
            ("/a%2fb", "/a%2Fb"),
            ("/a%zz", "/a%zz"),
        ] {
            assert_eq!(canonical_path(raw), want, "{raw}");
        }
    }
}
