//! The agent-initiated WebSocket: the server pushes `{"type":"work"}` the moment something is
//! actionable, and the agent fetches its work over HTTP right away. The session reconnects with
//! exponential backoff; while it is down, polling alone keeps the agent working.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;

/// TLS settings for the session: the public roots plus the operator's CA bundle.
pub fn tls_config(ca_bundle: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_bundle {
        use rustls_pki_types::pem::PemObject as _;
        let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        for cert in rustls_pki_types::CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| format!("{}: {e}", path.display()))?;
            roots
                .add(cert)
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// `https://host:port` → `wss://host:port/api/v1/agents/{id}/session`.
pub fn session_url(server_url: &str, agent_id: &str) -> String {
    let base = server_url.trim_end_matches('/');
    let ws = if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        base.to_owned()
    };
    format!("{ws}/api/v1/agents/{agent_id}/session")
}

/// Keeps a session open forever (until the task is dropped), sending `()` on `nudges` for every
/// push from the server.
pub async fn run(
    url: String,
    api_key: String,
    tls: Arc<rustls::ClientConfig>,
    nudges: mpsc::Sender<()>,
    max_backoff: Duration,
) {
    let mut delay = Duration::from_secs(1);
    loop {
        match connect_once(&url, &api_key, tls.clone(), &nudges).await {
            Ok(()) => {
                tracing::info!("agent session closed by the server; reconnecting");
                delay = Duration::from_secs(1);
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?delay, "agent session unavailable; polling meanwhile")
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(max_backoff);
    }
}

async fn connect_once(
    url: &str,
    api_key: &str,
    tls: Arc<rustls::ClientConfig>,
    nudges: &mpsc::Sender<()>,
) -> Result<(), String> {
    let mut request = url.into_client_request().map_err(|e| e.to_string())?;
    let auth = HeaderValue::from_str(&format!("Bearer {api_key}")).map_err(|e| e.to_string())?;
    request.headers_mut().insert("authorization", auth);
    let connector = tokio_tungstenite::Connector::Rustls(tls);
    let (stream, _) = tokio::time::timeout(
        Duration::from_secs(15),
        tokio_tungstenite::connect_async_tls_with_config(request, None, false, Some(connector)),
    )
    .await
    .map_err(|_| "connect timed out".to_owned())?
    .map_err(|e| e.to_string())?;
    tracing::info!("agent session open");
    let (mut sink, mut source) = stream.split();
    while let Some(msg) = source.next().await {
        match msg.map_err(|e| e.to_string())? {
            Message::Text(text) if text.contains("\"work\"") => {
                let _ = nudges.try_send(());
            }
            Message::Ping(payload) => sink
                .send(Message::Pong(payload))
                .await
                .map_err(|e| e.to_string())?,
            Message::Close(_) => return Ok(()),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            session_url("https://h:8443/", "ag-1"),
            "wss://h:8443/api/v1/agents/ag-1/session"
        );
        assert_eq!(
            session_url("http://127.0.0.1:9", "ag-1"),
            "ws://127.0.0.1:9/api/v1/agents/ag-1/session"
        );
    }
}
