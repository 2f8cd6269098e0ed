//! The built-in HTTP-01 challenge responder: answers
//! `GET /.well-known/acme-challenge/{token}` with the key authorization while an order is
//! being validated, on the configured address.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::issuer::ConnectorError;

const PREFIX: &str = "/.well-known/acme-challenge/";

/// The responder (one per ACME issuer).
#[derive(Debug)]
pub struct Responder {
    listen: String,
    tokens: Arc<Mutex<HashMap<String, String>>>,
    state: tokio::sync::Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    task: Option<JoinHandle<()>>,
    users: usize,
}

/// Proof that [`Responder::start`] was called; hand it back to [`Responder::stop`].
#[derive(Debug)]
pub struct Running(());

impl Responder {
    /// A stopped responder for `listen` (`host:port`).
    pub fn new(listen: String) -> Self {
        Self {
            listen,
            tokens: Arc::default(),
            state: tokio::sync::Mutex::default(),
        }
    }

    /// Publishes a token's key authorization.
    pub fn insert(&self, token: String, key_authorization: String) {
        if let Ok(mut t) = self.tokens.lock() {
            t.insert(token, key_authorization);
        }
    }

    /// Binds the address (if not already listening) for an order.
    pub async fn start(&self) -> Result<Running, ConnectorError> {
        let mut st = self.state.lock().await;
        if st.task.as_ref().is_none_or(JoinHandle::is_finished) {
            let listener = TcpListener::bind(&self.listen).await.map_err(|e| {
                ConnectorError::Unavailable(format!(
                    "HTTP-01 responder cannot listen on {}: {e}",
                    self.listen
                ))
            })?;
            let tokens = self.tokens.clone();
            st.task = Some(tokio::spawn(async move {
                loop {
                    let Ok((mut sock, _)) = listener.accept().await else {
                        continue;
                    };
                    let tokens = tokens.clone();
                    tokio::spawn(async move {
                        let mut buf = vec![0u8; 4096];
                        let mut n = 0;
                        let read = async {
                            while n < buf.len() {
                                let m = sock.read(&mut buf[n..]).await?;
                                if m == 0 {
                                    break;
                                }
                                n += m;
                                if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                                    break;
                                }
                            }
                            Ok::<_, std::io::Error>(())
                        };
                        if tokio::time::timeout(std::time::Duration::from_secs(10), read)
                            .await
                            .is_err()
                        {
                            return;
                        }
                        let head = String::from_utf8_lossy(&buf[..n]);
                        let path = head
                            .lines()
                            .next()
                            .and_then(|l| l.split_whitespace().nth(1))
                            .unwrap_or_default();
                        let answer = path.strip_prefix(PREFIX).and_then(|token| {
                            tokens.lock().ok().and_then(|t| t.get(token).cloned())
                        });
                        let response = match answer {
                            Some(body) => format!(
                                "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                                body.len()
                            ),
                            None => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_owned(),
                        };
                        let _ = sock.write_all(response.as_bytes()).await;
                        let _ = sock.shutdown().await;
                    });
                }
            }));
        }
        st.users += 1;
        Ok(Running(()))
    }

    /// Ends an order's use; the listener closes when no order needs it (unless `keep`).
    pub async fn stop(&self, _running: Running, keep: bool) {
        let mut st = self.state.lock().await;
        st.users = st.users.saturating_sub(1);
        if st.users == 0 {
            if let Ok(mut t) = self.tokens.lock() {
                t.clear();
            }
            if !keep && let Some(task) = st.task.take() {
                task.abort();
                let _ = task.await;
            }
        }
    }
}
