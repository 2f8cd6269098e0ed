//! The `smtp` host interface: submits one e-mail for a notifier plugin.
//!
//! WASI preview 2 has no TLS sockets, so the host speaks SMTP itself, and only to
//! what the operator allowed: the manifest must request `smtp = true` and the
//! server must pass the outbound guard over the plugin's `hosts` grant (the list
//! outbound HTTP uses: `host:port`, or `host` for ports 25 and 587; a loopback or
//! private server only when the grant names it). The connection goes to the address
//! the guard checked. The client is deliberately small: EHLO (HELO as fallback), STARTTLS
//! (rustls with ring and the webpki roots plus the operator's CA bundle, if any,
//! [`super::RuntimeConfig::smtp_ca_bundle`]; always verifying the certificate and the
//! host name), AUTH PLAIN or LOGIN (only over TLS, or to a loopback server), MAIL
//! FROM, one RCPT TO per
//! recipient, DATA (dot-stuffed, CRLF line ends), QUIT. The message gets RFC 5322
//! headers (Date, Message-ID, From, To, Subject — RFC 2047 encoded when not ASCII)
//! and a text/plain or multipart/alternative MIME body. Everything is bounded by
//! the call's deadline.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

use super::bindings::notifier::certctl::connector::smtp;
use super::bindings::types;
use super::error::{Capability, RuntimeError};
use super::host::{HostState, error};
use super::http::denial;
use crate::outbound::{Destination, OutboundError, OutboundGuard};

/// Longest reply line accepted (RFC 5321 allows 512; servers exceed it a little).
const MAX_LINE: usize = 4096;
/// Most lines in one reply (EHLO lists extensions, one per line).
const MAX_REPLY_LINES: usize = 100;
/// Largest message accepted from a plugin.
const MAX_MESSAGE: usize = 10 * 1024 * 1024;
/// Most recipients per message.
const MAX_RECIPIENTS: usize = 100;

/// What the guest gets back: the `connector-error` of the failed step.
type SmtpResult<T> = Result<T, types::ConnectorError>;

impl smtp::Host for HostState {
    async fn send(&mut self, server: smtp::SmtpServer, message: smtp::Email) -> SmtpResult<()> {
        let authority = if server.host.contains(':') {
            format!("[{}]:{}", server.host, server.port)
        } else {
            format!("{}:{}", server.host, server.port)
        };
        let host = server.host.trim_start_matches('[').trim_end_matches(']');
        if !self.caps.smtp || host.is_empty() {
            return Err(self.deny(Capability::Host(authority)));
        }
        let destination = Destination::smtp(host, server.port);
        if let Err(refusal) = self.outbound.policy().check(&destination) {
            return Err(self.deny(denial(refusal)));
        }
        let envelope = Envelope::new(&message)?;
        let data = render(&message, &envelope)?;
        tracing::info!(plugin = %self.plugin, server = %authority, recipients = envelope.to.len(), "sending e-mail");
        let tls = self.smtp_tls.clone();
        let guard = self.outbound.clone();
        let session = session(&guard, &destination, &server, host, tls, &envelope, &data);
        match tokio::time::timeout_at(self.deadline, session).await {
            Ok(Err(SessionError::Refused(refusal))) => Err(self.deny(denial(refusal))),
            Ok(result) => result.map_err(|e| e.into_connector(&authority)),
            Err(_) => Err(error(
                types::ErrorKind::Unavailable,
                format!("SMTP {authority}: no answer before the call's deadline"),
            )),
        }
    }
}

/// The bare addresses of a message.
struct Envelope {
    from: String,
    to: Vec<String>,
}

impl Envelope {
    fn new(message: &smtp::Email) -> SmtpResult<Self> {
        let from = bare_address(&message.from)
            .map_err(|why| invalid(format!("from `{}`: {why}", message.from)))?;
        if message.to.is_empty() {
            return Err(invalid("the message has no recipient".into()));
        }
        if message.to.len() > MAX_RECIPIENTS {
            return Err(invalid(format!(
                "{} recipients; at most {MAX_RECIPIENTS} per message",
                message.to.len()
            )));
        }
        let to = message
            .to
            .iter()
            .map(|to| bare_address(to).map_err(|why| invalid(format!("recipient `{to}`: {why}"))))
            .collect::<SmtpResult<Vec<_>>>()?;
        Ok(Self { from, to })
    }
}

fn invalid(message: String) -> types::ConnectorError {
    error(types::ErrorKind::InvalidRequest, message)
}

/// `addr` or the `<addr>` of `Name <addr>`, checked to be a plain ASCII address.
fn bare_address(text: &str) -> Result<String, &'static str> {
    if text.chars().any(char::is_control) {
        return Err("an address must not contain line breaks or control characters");
    }
    let text = text.trim();
    let address = match (text.rfind('<'), text.ends_with('>')) {
        (Some(start), true) => &text[start + 1..text.len() - 1],
        _ => text,
    };
    if address.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("an address must not contain spaces or line breaks");
    }
    if !address.is_ascii() || address.contains(['<', '>', '"', ',']) {
        return Err("only plain ASCII addresses are supported");
    }
    match address.rsplit_once('@') {
        Some((local, domain)) if !local.is_empty() && !domain.is_empty() => Ok(address.to_string()),
        _ => Err("not an address like name@example.com"),
    }
}

/// Why a session failed, before it is given the server's name.
enum SessionError {
    /// Network, timeout or TLS failure: `unavailable`.
    Transport(String),
    /// The server answered `code` (4xx: `unavailable`, 5xx: `rejected`) to `step`.
    Reply { step: String, reply: Reply },
    /// The server lacks an extension the request needs: `unsupported`.
    Unsupported(String),
    /// The request cannot be sent safely as asked: `invalid-request`.
    Unsafe(String),
    /// The outbound guard refused the server's address (a denial).
    Refused(crate::outbound::Refusal),
}

impl SessionError {
    fn into_connector(self, authority: &str) -> types::ConnectorError {
        use types::ErrorKind as K;
        match self {
            Self::Transport(why) => error(K::Unavailable, format!("SMTP {authority}: {why}")),
            Self::Reply { step, reply } => {
                let kind = if reply.code >= 500 {
                    K::Rejected
                } else {
                    K::Unavailable
                };
                error(
                    kind,
                    format!(
                        "SMTP {authority} refused {step}: {} {}",
                        reply.code,
                        reply.text()
                    ),
                )
            }
            Self::Unsupported(why) => error(K::Unsupported, format!("SMTP {authority}: {why}")),
            Self::Unsafe(why) => error(K::InvalidRequest, format!("SMTP {authority}: {why}")),
            Self::Refused(refusal) => error(K::Denied, refusal.to_string()),
        }
    }
}

fn transport(context: &str) -> impl FnOnce(std::io::Error) -> SessionError + '_ {
    move |e| SessionError::Transport(format!("{context}: {e}"))
}

/// One reply: its code and text lines.
struct Reply {
    code: u16,
    lines: Vec<String>,
}

impl Reply {
    fn text(&self) -> String {
        self.lines.join(" / ")
    }

    fn is_positive(&self) -> bool {
        (200..400).contains(&self.code)
    }
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A connection and the bytes read but not yet consumed.
struct Conn {
    io: Box<dyn Io>,
    buf: Vec<u8>,
}

impl Conn {
    async fn read_line(&mut self) -> Result<String, SessionError> {
        loop {
            if let Some(end) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=end).collect();
                let line = String::from_utf8_lossy(&line);
                return Ok(line.trim_end_matches(['\r', '\n']).to_string());
            }
            if self.buf.len() > MAX_LINE {
                return Err(SessionError::Transport("reply line too long".into()));
            }
            let mut chunk = [0u8; 1024];
            let n = self
                .io
                .read(&mut chunk)
                .await
                .map_err(transport("reading"))?;
            if n == 0 {
                return Err(SessionError::Transport(
                    "the server closed the connection".into(),
                ));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    async fn reply(&mut self) -> Result<Reply, SessionError> {
        let mut lines = Vec::new();
        loop {
            let line = self.read_line().await?;
            let code = line
                .get(..3)
                .and_then(|c| c.parse::<u16>().ok())
                .filter(|c| (200..600).contains(c))
                .ok_or_else(|| SessionError::Transport(format!("not an SMTP reply: {line:?}")))?;
            let last = line.as_bytes().get(3) != Some(&b'-');
            lines.push(line.get(4..).unwrap_or_default().to_string());
            if last {
                return Ok(Reply { code, lines });
            }
            if lines.len() >= MAX_REPLY_LINES {
                return Err(SessionError::Transport("reply too long".into()));
            }
        }
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), SessionError> {
        self.io
            .write_all(bytes)
            .await
            .map_err(transport("writing"))?;
        self.io.flush().await.map_err(transport("writing"))
    }

    /// Sends `line` and reads the reply; `step` names it in errors (never the
    /// line itself, which may carry credentials).
    async fn command(&mut self, line: &str, step: &str) -> Result<Reply, SessionError> {
        self.write(format!("{line}\r\n").as_bytes()).await?;
        let reply = self.reply().await?;
        if reply.is_positive() {
            Ok(reply)
        } else {
            Err(SessionError::Reply {
                step: step.to_string(),
                reply,
            })
        }
    }
}

/// The extensions an EHLO reply advertises.
#[derive(Default)]
struct Extensions {
    starttls: bool,
    auth: Vec<String>,
}

impl Extensions {
    fn parse(reply: &Reply) -> Self {
        let mut ext = Self::default();
        for line in reply.lines.iter().skip(1) {
            let mut words = line.split_whitespace();
            match words.next().map(str::to_ascii_uppercase).as_deref() {
                Some("STARTTLS") => ext.starttls = true,
                Some("AUTH") => ext.auth = words.map(str::to_ascii_uppercase).collect(),
                _ => {}
            }
        }
        ext
    }
}

async fn hello(conn: &mut Conn, name: &str) -> Result<Extensions, SessionError> {
    conn.write(format!("EHLO {name}\r\n").as_bytes()).await?;
    let reply = conn.reply().await?;
    if reply.is_positive() {
        return Ok(Extensions::parse(&reply));
    }
    conn.command(&format!("HELO {name}"), "HELO").await?;
    Ok(Extensions::default())
}

/// Reads the certificates of a PEM CA bundle; a file without any is an error, so a
/// wrong path or format is reported at start rather than as a failed handshake later.
pub fn read_ca_bundle(path: &Path) -> Result<Vec<CertificateDer<'static>>, RuntimeError> {
    let bundle = |message: String| {
        RuntimeError::Setup(format!("SMTP CA bundle {}: {message}", path.display()))
    };
    let pem = std::fs::read(path).map_err(|e| bundle(e.to_string()))?;
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bundle(format!("not a PEM file: {e}")))?;
    if certificates.is_empty() {
        return Err(bundle("holds no PEM CERTIFICATE".into()));
    }
    Ok(certificates)
}

/// The STARTTLS client configuration: the webpki roots plus the certificates of
/// `ca_bundle`. Verification is never disabled; a private CA is trusted by adding it.
pub(crate) fn tls_config(ca_bundle: Option<&Path>) -> Result<Arc<ClientConfig>, RuntimeError> {
    let mut roots = RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_bundle {
        for (n, certificate) in read_ca_bundle(path)?.into_iter().enumerate() {
            roots.add(certificate).map_err(|e| {
                RuntimeError::Setup(format!(
                    "SMTP CA bundle {}: certificate {} is not a usable trust anchor: {e}",
                    path.display(),
                    n + 1
                ))
            })?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| RuntimeError::Setup(format!("SMTP TLS setup: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

async fn session(
    guard: &OutboundGuard,
    destination: &Destination,
    server: &smtp::SmtpServer,
    host: &str,
    tls_config: Arc<ClientConfig>,
    envelope: &Envelope,
    data: &[u8],
) -> Result<(), SessionError> {
    let tcp: TcpStream = match guard.connect(destination).await {
        Ok((tcp, _)) => tcp,
        Err(OutboundError::Refused(refusal)) => return Err(SessionError::Refused(refusal)),
        Err(e) => return Err(SessionError::Transport(format!("connecting: {e}"))),
    };
    let loopback = tcp
        .peer_addr()
        .map(|a| a.ip().is_loopback())
        .unwrap_or(false);
    let name = match tcp.local_addr().map(|a| a.ip()) {
        Ok(IpAddr::V4(ip)) => format!("[{ip}]"),
        Ok(IpAddr::V6(ip)) => format!("[IPv6:{ip}]"),
        Err(_) => "localhost".to_string(),
    };
    let mut conn = Conn {
        io: Box::new(tcp),
        buf: Vec::new(),
    };
    let greeting = conn.reply().await?;
    if greeting.code != 220 {
        return Err(SessionError::Reply {
            step: "the connection".into(),
            reply: greeting,
        });
    }
    let mut ext = hello(&mut conn, &name).await?;
    let mut tls = false;
    if server.starttls {
        if !ext.starttls {
            return Err(SessionError::Unsupported(
                "the server does not offer STARTTLS (set starttls to false only for a \
                 trusted local relay)"
                    .into(),
            ));
        }
        conn.command("STARTTLS", "STARTTLS").await?;
        if !conn.buf.is_empty() {
            // Anything sent before the handshake could be injected by a man in the middle.
            return Err(SessionError::Transport(
                "the server sent data before the TLS handshake".into(),
            ));
        }
        let server_name = ServerName::try_from(host.to_string())
            .map_err(|e| SessionError::Unsafe(format!("`{host}` is not a server name: {e}")))?;
        let Conn { io, .. } = conn;
        let stream = TlsConnector::from(tls_config)
            .connect(server_name, io)
            .await
            .map_err(|e| {
                // A certificate from a private CA is the usual cause: say how to trust it.
                let unknown_issuer = e
                    .get_ref()
                    .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                    .is_some_and(|e| {
                        matches!(
                            e,
                            rustls::Error::InvalidCertificate(
                                rustls::CertificateError::UnknownIssuer
                            )
                        )
                    });
                let hint = if unknown_issuer {
                    " (the server's CA is not trusted; add it to the SMTP CA bundle)"
                } else {
                    ""
                };
                SessionError::Transport(format!("TLS handshake: {e}{hint}"))
            })?;
        conn = Conn {
            io: Box::new(stream),
            buf: Vec::new(),
        };
        ext = hello(&mut conn, &name).await?;
        tls = true;
    }
    match (&server.username, &server.password) {
        (Some(user), Some(password)) => {
            if !tls && !loopback {
                return Err(SessionError::Unsafe(
                    "credentials are only sent over TLS (enable starttls) or to a loopback server"
                        .into(),
                ));
            }
            authenticate(&mut conn, &ext, user, password).await?;
        }
        (None, None) => {}
        _ => {
            return Err(SessionError::Unsafe(
                "username and password go together".into(),
            ));
        }
    }
    conn.command(&format!("MAIL FROM:<{}>", envelope.from), "the sender")
        .await?;
    for to in &envelope.to {
        conn.command(&format!("RCPT TO:<{to}>"), &format!("recipient {to}"))
            .await?;
    }
    conn.write(b"DATA\r\n").await?;
    let reply = conn.reply().await?;
    if reply.code != 354 {
        return Err(SessionError::Reply {
            step: "DATA".into(),
            reply,
        });
    }
    conn.write(&dot_stuff(data)).await?;
    let reply = conn.reply().await?;
    if !reply.is_positive() {
        return Err(SessionError::Reply {
            step: "the message".into(),
            reply,
        });
    }
    // Delivered; a failing QUIT changes nothing.
    let _ = conn.command("QUIT", "QUIT").await;
    Ok(())
}

async fn authenticate(
    conn: &mut Conn,
    ext: &Extensions,
    user: &str,
    password: &str,
) -> Result<(), SessionError> {
    if ext.auth.iter().any(|m| m == "PLAIN") {
        let token = BASE64.encode(format!("\0{user}\0{password}"));
        conn.command(&format!("AUTH PLAIN {token}"), "authentication")
            .await?;
        return Ok(());
    }
    if ext.auth.iter().any(|m| m == "LOGIN") {
        conn.command("AUTH LOGIN", "authentication").await?;
        conn.command(&BASE64.encode(user), "authentication").await?;
        conn.command(&BASE64.encode(password), "authentication")
            .await?;
        return Ok(());
    }
    Err(SessionError::Unsupported(format!(
        "credentials are configured but the server offers no AUTH PLAIN or LOGIN (offered: {})",
        if ext.auth.is_empty() {
            "none".to_string()
        } else {
            ext.auth.join(" ")
        }
    )))
}

/// The DATA payload: CRLF line ends, a `.` doubled at the start of each line, and
/// the terminating `.` line.
fn dot_stuff(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 64);
    let mut line_start = true;
    let mut previous = 0u8;
    for &byte in message {
        if byte == b'\n' && previous != b'\r' {
            out.push(b'\r');
        }
        if line_start && byte == b'.' {
            out.push(b'.');
        }
        out.push(byte);
        line_start = byte == b'\n';
        previous = byte;
    }
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// A header value: as is when ASCII and short, else RFC 2047 encoded words
/// (UTF-8, base64), folded so no line exceeds 78 characters.
fn encode_header(value: &str) -> String {
    let value: String = value
        .chars()
        .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
        .collect();
    if value.is_ascii() && value.len() <= 900 {
        return value;
    }
    let mut words = Vec::new();
    let mut chunk = String::new();
    for c in value.chars() {
        if chunk.len() + c.len_utf8() > 45 {
            words.push(format!("=?UTF-8?B?{}?=", BASE64.encode(&chunk)));
            chunk.clear();
        }
        chunk.push(c);
    }
    if !chunk.is_empty() {
        words.push(format!("=?UTF-8?B?{}?=", BASE64.encode(&chunk)));
    }
    words.join("\r\n ")
}

/// `From`: the display name encoded when it is not ASCII.
fn encode_mailbox(text: &str, address: &str) -> String {
    let text = text.trim();
    match text.rfind('<') {
        Some(start) if start > 0 => {
            let name = text[..start].trim().trim_matches('"');
            if name.is_ascii() {
                format!("\"{}\" <{address}>", name.replace(['"', '\\'], ""))
            } else {
                format!("{} <{address}>", encode_header(name))
            }
        }
        _ => address.to_string(),
    }
}

/// A MIME part body: `7bit` when ASCII with short lines, else base64.
fn encode_body(text: &str) -> (&'static str, String) {
    let text = text.replace("\r\n", "\n");
    if text.is_ascii() && text.lines().all(|l| l.len() <= 900) {
        return ("7bit", text.replace('\n', "\r\n"));
    }
    let encoded = BASE64.encode(text.replace('\n', "\r\n"));
    let lines: Vec<&str> = encoded
        .as_bytes()
        .chunks(76)
        .map(|c| std::str::from_utf8(c).unwrap_or_default())
        .collect();
    ("base64", lines.join("\r\n"))
}

/// A process-wide counter making Message-IDs and boundaries unique.
fn unique() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{nanos:x}.{n:x}.{:x}", std::process::id())
}

/// The RFC 5322 message.
fn render(message: &smtp::Email, envelope: &Envelope) -> SmtpResult<Vec<u8>> {
    use time::format_description::well_known::Rfc2822;
    let date = time::OffsetDateTime::now_utc()
        .format(&Rfc2822)
        .map_err(|e| error(types::ErrorKind::Internal, format!("date: {e}")))?;
    let domain = envelope
        .from
        .rsplit_once('@')
        .map(|(_, d)| d)
        .unwrap_or("certctl.invalid");
    let id = unique();
    let mut out = String::new();
    let mut header = |name: &str, value: &str| {
        out.push_str(name);
        out.push_str(": ");
        out.push_str(value);
        out.push_str("\r\n");
    };
    header("Date", &date);
    header("Message-ID", &format!("<{id}@{domain}>"));
    header("From", &encode_mailbox(&message.from, &envelope.from));
    header("To", &envelope.to.join(", "));
    header("Subject", &encode_header(&message.subject));
    header("MIME-Version", "1.0");
    header("Auto-Submitted", "auto-generated");
    let (encoding, text) = encode_body(&message.text_body);
    match &message.html_body {
        None => {
            header("Content-Type", "text/plain; charset=utf-8");
            header("Content-Transfer-Encoding", encoding);
            out.push_str("\r\n");
            out.push_str(&text);
        }
        Some(html) => {
            let boundary = format!("=_certctl_{id}");
            header(
                "Content-Type",
                &format!("multipart/alternative; boundary=\"{boundary}\""),
            );
            out.push_str("\r\nThis is a MIME message.\r\n");
            let (html_encoding, html) = encode_body(html);
            for (kind, encoding, body) in [
                ("text/plain", encoding, text),
                ("text/html", html_encoding, html),
            ] {
                out.push_str(&format!(
                    "--{boundary}\r\nContent-Type: {kind}; charset=utf-8\r\n\
                     Content-Transfer-Encoding: {encoding}\r\n\r\n{body}\r\n"
                ));
            }
            out.push_str(&format!("--{boundary}--\r\n"));
        }
    }
    if out.len() > MAX_MESSAGE {
        return Err(invalid(format!(
            "the message is {} bytes; at most {MAX_MESSAGE}",
            out.len()
        )));
    }
    Ok(out.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_stuffing_and_line_ends() {
        assert_eq!(dot_stuff(b".a\n.b\r\nc."), b"..a\r\n..b\r\nc.\r\n.\r\n");
        assert_eq!(dot_stuff(b"x\r\n"), b"x\r\n.\r\n");
    }

    #[test]
    fn non_ascii_subjects_become_encoded_words() {
        assert_eq!(encode_header("Expiring soon"), "Expiring soon");
        let encoded = encode_header("Zertifikat läuft ab");
        assert_eq!(encoded, "=?UTF-8?B?WmVydGlmaWthdCBsw6R1ZnQgYWI=?=");
        let long = encode_header(&"é".repeat(60));
        assert!(long.lines().all(|l| l.trim_end().len() <= 76), "{long}");
        assert_eq!(long.matches("=?UTF-8?B?").count(), 3);
    }

    #[test]
    fn addresses() {
        assert_eq!(
            bare_address("Certctl <certctl@example.com>").as_deref(),
            Ok("certctl@example.com")
        );
        assert!(bare_address("a@b\r\nRCPT TO:<x@y>").is_err());
        assert!(bare_address("nobody").is_err());
        assert_eq!(
            encode_mailbox("Zoë <z@example.com>", "z@example.com"),
            "=?UTF-8?B?Wm/Dqw==?= <z@example.com>"
        );
    }
}
