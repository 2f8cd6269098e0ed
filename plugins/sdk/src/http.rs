//! One HTTP request through `wasi:http/outgoing-handler`, for targets configured
//! through an HTTP API (Caddy's admin API). The host lets it through only to hosts
//! the operator granted: anything else fails with `denied` naming the authority.
//! Network failures and timeouts are `unavailable`.
//!
//! (`certctl-notifier-sdk` has the same client over the notifier world's bindings; a
//! component carries the world its bindings come from, so the two cannot share it.)

use crate::bindings::wasi::http::types::Fields;
use crate::{ConnectorError, ErrorKind, error, invalid_config};

/// How much of a response body is read (the rest is discarded).
const MAX_RESPONSE: usize = 256 * 1024;

/// Where an API lives: scheme, `host[:port]` and a base path (no trailing `/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `https` (or `http`).
    pub https: bool,
    /// `host` or `host:port`.
    pub authority: String,
    /// Path prefix of every request, empty or starting with `/`.
    pub base_path: String,
}

impl Endpoint {
    /// Parses the value of `field`: an `http://` or `https://` URL with a host, an
    /// optional port and path, and no user information, query or fragment.
    pub fn parse(field: &str, url: &str) -> Result<Self, ConnectorError> {
        let bad = |why: &str| invalid_config(format!("{field}: `{url}` {why}"));
        let (https, rest) = if let Some(rest) = url.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err(bad("must be an http:// or https:// URL"));
        };
        if url
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '?' || c == '#')
        {
            return Err(bad("must not contain spaces, a query or a fragment"));
        }
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        if authority.is_empty() || authority.contains('@') {
            return Err(bad("must name a host (without user information)"));
        }
        Ok(Self {
            https,
            authority: authority.to_string(),
            base_path: path.trim_end_matches('/').to_string(),
        })
    }

    /// The URL of `path` (starting with `/`) at this endpoint, for messages.
    pub fn url(&self, path: &str) -> String {
        format!(
            "{}://{}{}{path}",
            if self.https { "https" } else { "http" },
            self.authority,
            self.base_path
        )
    }
}

/// An HTTP answer.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Body, at most 256 KiB.
    pub body: Vec<u8>,
}

impl Response {
    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as text, on one line and cut to 300 characters, for messages.
    pub fn excerpt(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
        match line.char_indices().nth(300) {
            Some((cut, _)) => format!("{}…", &line[..cut]),
            None => line,
        }
    }
}

/// Sends `method` to `path` (starting with `/`) at `endpoint`, with `body` as
/// `content_type` when given, and reads the answer. The status is not interpreted.
pub fn send(
    method: &str,
    endpoint: &Endpoint,
    path: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<Response, ConnectorError> {
    let authority = endpoint.authority.as_str();
    let mut headers: Vec<(String, Vec<u8>)> = Vec::new();
    if let Some(content_type) = content_type {
        headers.push(("content-type".into(), content_type.as_bytes().to_vec()));
    }
    if !body.is_empty() {
        headers.push(("content-length".into(), body.len().to_string().into_bytes()));
    }
    let fields = Fields::from_list(&headers)
        .map_err(|e| error(ErrorKind::Internal, format!("{authority}: headers: {e:?}")))?;
    let (status, body) = transport::exchange(
        method,
        endpoint.https,
        authority,
        &format!("{}{path}", endpoint.base_path),
        fields,
        body,
        MAX_RESPONSE,
    )?;
    Ok(Response { status, body })
}

/// The `wasi:http` exchange itself, shared with the notifier SDK.
mod transport {
    include!("../../shared/wasi_http_transport.rs");
}
