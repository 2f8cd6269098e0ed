//! The certificate digest: an HTML summary of the inventory (totals by status, the
//! certificates expiring within 30 days colour-coded at 7/14/30 days, jobs completed and
//! failed over 30 days, active agents), previewed by the API and e-mailed through the
//! `email` channel on demand or on the opt-in schedule (`CERTCTL_DIGEST_*`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use certctl_core::runtime::Notification as PluginNotification;
use futures_util::future::BoxFuture;
use sqlx::Row as _;

use super::wasm::WasmNotifier;
use crate::actors::scheduler::LoopTask;
use crate::clock::Clock;
use crate::store::sql::Sql;
use crate::store::{Store, StoreError};

/// Statuses that no longer need attention in the expiring table.
const SETTLED: &[&str] = &["Revoked", "Archived"];

/// One row of the expiring table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expiring {
    /// Certificate id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Subject CN.
    pub common_name: String,
    /// Lifecycle status.
    pub status: String,
    /// NotAfter (canonical text).
    pub expires_at: String,
    /// Whole days left (negative once expired).
    pub days_left: i64,
    /// Owner's e-mail, if any.
    pub owner_email: Option<String>,
}

/// What the digest reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DigestData {
    /// When it was computed.
    pub generated_at: String,
    /// Certificates by status.
    pub by_status: BTreeMap<String, i64>,
    /// All certificates.
    pub total: i64,
    /// Expiring within 30 days (or expired), soonest first.
    pub expiring: Vec<Expiring>,
    /// Jobs completed in the last 30 days.
    pub jobs_completed: i64,
    /// Jobs failed in the last 30 days.
    pub jobs_failed: i64,
    /// Agents Online now.
    pub active_agents: i64,
}

/// Collects the digest's numbers.
pub async fn collect(store: &Store, now: time::OffsetDateTime) -> Result<DigestData, StoreError> {
    let now_text = certctl_core::timestamp::format(now);
    let mut data = DigestData {
        generated_at: now_text.clone(),
        ..DigestData::default()
    };
    let rows = Sql::new(
        store.dialect(),
        "SELECT status, COUNT(*) FROM managed_certificates GROUP BY status ORDER BY status",
    )
    .query()
    .fetch_all(store.pool())
    .await?;
    for row in rows {
        let status: String = row.try_get(0)?;
        let count: i64 = row.try_get(1)?;
        data.total += count;
        data.by_status.insert(status, count);
    }
    let horizon = certctl_core::timestamp::format(now + time::Duration::days(30));
    let mut sql = Sql::new(
        store.dialect(),
        "SELECT c.id, c.name, c.common_name, c.status, c.expires_at, o.email FROM managed_certificates c LEFT JOIN owners o ON o.id = c.owner_id WHERE c.expires_at IS NOT NULL AND c.expires_at <= ",
    );
    sql.bind_text(horizon);
    for status in SETTLED {
        sql.push(" AND c.status <> ").bind_text(*status);
    }
    sql.push(" ORDER BY c.expires_at, c.id LIMIT 500");
    for row in sql.query().fetch_all(store.pool()).await? {
        let expires_at: String = row.try_get(4)?;
        let days_left = certctl_core::timestamp::parse(&expires_at)
            .map(|t| (t - now).whole_days())
            .unwrap_or_default();
        data.expiring.push(Expiring {
            id: row.try_get(0)?,
            name: row.try_get(1)?,
            common_name: row.try_get(2)?,
            status: row.try_get(3)?,
            expires_at,
            days_left,
            owner_email: row.try_get(5)?,
        });
    }
    let since = certctl_core::timestamp::format(now - time::Duration::days(30));
    let mut jobs = Sql::new(
        store.dialect(),
        "SELECT status, COUNT(*) FROM jobs WHERE status IN ('Completed', 'Failed') AND updated_at >= ",
    );
    jobs.bind_text(since).push(" GROUP BY status");
    for row in jobs.query().fetch_all(store.pool()).await? {
        let status: String = row.try_get(0)?;
        let count: i64 = row.try_get(1)?;
        match status.as_str() {
            "Completed" => data.jobs_completed = count,
            _ => data.jobs_failed = count,
        }
    }
    let agents = Sql::new(
        store.dialect(),
        "SELECT COUNT(*) FROM agents WHERE status = 'Online'",
    )
    .query()
    .fetch_one(store.pool())
    .await?;
    data.active_agents = agents.try_get(0)?;
    Ok(data)
}

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The urgency class of a row: `expired`, `d7`, `d14` or `d30`.
pub fn urgency(days_left: i64) -> &'static str {
    match days_left {
        i64::MIN..=-1 => "expired",
        0..=7 => "d7",
        8..=14 => "d14",
        _ => "d30",
    }
}

const STYLE: &str = "body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:0;padding:16px;background:#f4f5f7;color:#1f2328}\
.wrap{max-width:760px;margin:0 auto;background:#fff;border-radius:8px;padding:24px}\
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:24px 0 8px}.muted{color:#667085;font-size:12px}\
.grid{display:flex;flex-wrap:wrap;gap:8px}.stat{flex:1 1 120px;border:1px solid #e4e7ec;border-radius:6px;padding:10px}\
.stat b{display:block;font-size:22px}table{width:100%;border-collapse:collapse;font-size:13px}\
th,td{text-align:left;padding:6px 8px;border-bottom:1px solid #e4e7ec}\
.badge{border-radius:10px;padding:2px 8px;font-size:12px;color:#fff;white-space:nowrap}\
.expired{background:#7a271a}.d7{background:#d92d20}.d14{background:#f79009}.d30{background:#eaaa08}\
@media (max-width:480px){.wrap{padding:12px}.stat{flex-basis:100%}}";

/// Renders the digest as a standalone HTML document; every interpolated value is escaped.
pub fn render_html(d: &DigestData) -> String {
    let count = |s: &str| d.by_status.get(s).copied().unwrap_or(0);
    let mut h = String::with_capacity(4096);
    let _ = write!(
        h,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>certctl certificate digest</title><style>{STYLE}</style></head><body><div class=\"wrap\">\
         <h1>certctl certificate digest</h1><p class=\"muted\">Generated {}</p>",
        escape(&d.generated_at)
    );
    h.push_str("<div class=\"grid\">");
    for (label, value) in [
        ("Total certificates", d.total),
        ("Expiring soon", count("Expiring")),
        ("Expired", count("Expired")),
        ("Active agents", d.active_agents),
    ] {
        let _ = write!(
            h,
            "<div class=\"stat\"><b>{value}</b>{}</div>",
            escape(label)
        );
    }
    h.push_str(
        "</div><h2>Certificates by status</h2><table><tr><th>Status</th><th>Count</th></tr>",
    );
    for (status, n) in &d.by_status {
        let _ = write!(h, "<tr><td>{}</td><td>{n}</td></tr>", escape(status));
    }
    if d.by_status.is_empty() {
        h.push_str("<tr><td colspan=\"2\">No certificates</td></tr>");
    }
    let _ = write!(
        h,
        "</table><h2>Jobs (last 30 days)</h2><div class=\"grid\">\
         <div class=\"stat\"><b>{}</b>Completed</div><div class=\"stat\"><b>{}</b>Failed</div></div>",
        d.jobs_completed, d.jobs_failed
    );
    h.push_str(
        "<h2>Expiring within 30 days</h2><table><tr><th>Certificate</th><th>Common name</th>\
         <th>Owner</th><th>Expires</th><th>Days left</th></tr>",
    );
    for e in &d.expiring {
        let class = urgency(e.days_left);
        let label = if e.days_left < 0 {
            "expired".to_owned()
        } else {
            format!("{} d", e.days_left)
        };
        let _ = write!(
            h,
            "<tr class=\"row-{class}\"><td>{}<br><span class=\"muted\">{}</span></td><td>{}</td><td>{}</td><td>{}</td>\
             <td><span class=\"badge {class}\">{}</span></td></tr>",
            escape(&e.name),
            escape(&e.id),
            escape(&e.common_name),
            escape(e.owner_email.as_deref().unwrap_or("—")),
            escape(&e.expires_at),
            escape(&label),
        );
    }
    if d.expiring.is_empty() {
        h.push_str("<tr><td colspan=\"5\">Nothing expires within 30 days</td></tr>");
    }
    h.push_str("</table></div></body></html>");
    h
}

/// The plain-text part of the digest e-mail.
pub fn render_text(d: &DigestData) -> String {
    let mut t = format!(
        "certctl certificate digest ({})\n\nCertificates: {} total",
        d.generated_at, d.total
    );
    for (status, n) in &d.by_status {
        let _ = write!(t, ", {n} {status}");
    }
    let _ = write!(
        t,
        "\nJobs (30 days): {} completed, {} failed\nActive agents: {}\n\nExpiring within 30 days:\n",
        d.jobs_completed, d.jobs_failed, d.active_agents
    );
    for e in &d.expiring {
        let _ = writeln!(
            t,
            "- {} ({}) expires {} ({} days)",
            e.name, e.common_name, e.expires_at, e.days_left
        );
    }
    if d.expiring.is_empty() {
        t.push_str("- none\n");
    }
    t
}

/// Why a digest was not sent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DigestError {
    /// No `email` channel (CERTCTL_SMTP_HOST unset): the digest is not configured, so it
    /// is neither previewed nor sent (503, as in the reference).
    #[error(
        "the digest is not configured: it needs the email channel (set CERTCTL_SMTP_HOST and \
         CERTCTL_SMTP_FROM_ADDRESS, and as needed CERTCTL_SMTP_PORT, CERTCTL_SMTP_USERNAME, \
         CERTCTL_SMTP_PASSWORD, CERTCTL_SMTP_USE_TLS, CERTCTL_SMTP_CA_BUNDLE)"
    )]
    NotConfigured,
    /// Neither CERTCTL_DIGEST_RECIPIENTS nor any owner e-mail.
    #[error(
        "no digest recipients: set CERTCTL_DIGEST_RECIPIENTS or give certificates owners with e-mail addresses"
    )]
    NoRecipients,
    /// Reading the inventory failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The email plugin failed for some recipients.
    #[error("digest delivery failed: {0}")]
    Delivery(String),
}

/// Sends digests through the `email` channel.
pub struct DigestService {
    store: Store,
    clock: Arc<dyn Clock>,
    email: Option<Arc<WasmNotifier>>,
    recipients: Vec<String>,
}

impl std::fmt::Debug for DigestService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DigestService")
            .field("email", &self.email.is_some())
            .field("recipients", &self.recipients)
            .finish_non_exhaustive()
    }
}

impl DigestService {
    /// A digest service; `email` is the email channel's notifier when configured.
    pub fn new(
        store: Store,
        clock: Arc<dyn Clock>,
        email: Option<Arc<WasmNotifier>>,
        recipients: Vec<String>,
    ) -> Self {
        Self {
            store,
            clock,
            email,
            recipients,
        }
    }

    /// Whether an email channel exists to send through.
    pub fn can_send(&self) -> bool {
        self.email.is_some()
    }

    /// The digest HTML as of now; like sending, only when the digest is configured.
    pub async fn preview(&self) -> Result<String, DigestError> {
        if self.email.is_none() {
            return Err(DigestError::NotConfigured);
        }
        Ok(render_html(&collect(&self.store, self.clock.now()).await?))
    }

    async fn recipients(&self) -> Result<Vec<String>, StoreError> {
        if !self.recipients.is_empty() {
            return Ok(self.recipients.clone());
        }
        let rows = Sql::new(
            self.store.dialect(),
            "SELECT DISTINCT o.email FROM managed_certificates c JOIN owners o ON o.id = c.owner_id WHERE o.email IS NOT NULL ORDER BY o.email",
        )
        .query()
        .fetch_all(self.store.pool())
        .await?;
        let mut out = Vec::new();
        for row in rows {
            let email: String = row.try_get(0)?;
            if !email.trim().is_empty() {
                out.push(email);
            }
        }
        Ok(out)
    }

    /// Sends the digest to every recipient (one message each); answers who got it.
    pub async fn send(&self) -> Result<Vec<String>, DigestError> {
        let email = self.email.as_ref().ok_or(DigestError::NotConfigured)?;
        let recipients = self.recipients().await?;
        if recipients.is_empty() {
            return Err(DigestError::NoRecipients);
        }
        let data = collect(&self.store, self.clock.now()).await?;
        let html = render_html(&data);
        let text = render_text(&data);
        let subject = format!(
            "[certctl] Certificate digest: {} certificates, {} expiring within 30 days",
            data.total,
            data.expiring.len()
        );
        let mut failures = Vec::new();
        for recipient in &recipients {
            let message = PluginNotification {
                id: format!("digest-{}-{recipient}", data.generated_at),
                event: "digest".into(),
                subject: subject.clone(),
                body: html.clone(),
                recipient: recipient.clone(),
                details_json: serde_json::json!({"html": true, "text": text}).to_string(),
                config_json: String::new(),
            };
            if let Err(e) = email.send_message(message).await {
                tracing::warn!(%recipient, error = %e, "digest not delivered");
                failures.push(format!("{recipient}: {e}"));
            }
        }
        if failures.is_empty() {
            tracing::info!(recipients = recipients.len(), "digest sent");
            Ok(recipients)
        } else {
            Err(DigestError::Delivery(failures.join("; ")))
        }
    }
}

/// The opt-in digest loop; its first tick (at start) does nothing, as in the reference.
#[derive(Debug)]
pub struct DigestLoop {
    service: Arc<DigestService>,
    started: AtomicBool,
}

impl DigestLoop {
    /// A loop sending through `service`.
    pub fn new(service: Arc<DigestService>) -> Self {
        Self {
            service,
            started: AtomicBool::new(false),
        }
    }
}

impl LoopTask for DigestLoop {
    fn name(&self) -> &'static str {
        "digest"
    }

    fn tick(self: Arc<Self>) -> BoxFuture<'static, Result<String, String>> {
        Box::pin(async move {
            if !self.started.swap(true, Ordering::SeqCst) {
                return Ok(String::new());
            }
            let sent = self.service.send().await.map_err(|e| e.to_string())?;
            Ok(format!("digest sent to {} recipients", sent.len()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_escapes_everything_interpolated() {
        let data = DigestData {
            generated_at: "2026-01-01T00:00:00Z".into(),
            by_status: [("<Active>".to_owned(), 1)].into_iter().collect(),
            total: 1,
            expiring: vec![Expiring {
                id: "mc-1".into(),
                name: "<script>alert(1)</script>".into(),
                common_name: "a&b.example".into(),
                status: "Expiring".into(),
                expires_at: "2026-01-05T00:00:00Z".into(),
                days_left: 4,
                owner_email: Some("\"o\"@example.com".into()),
            }],
            ..DigestData::default()
        };
        let html = render_html(&data);
        assert!(!html.contains("<script>"));
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains("a&amp;b.example"));
        assert!(html.contains("&lt;Active&gt;"));
        assert!(html.contains("&quot;o&quot;@example.com"));
        assert!(html.contains("badge d7"));
    }

    #[test]
    fn urgency_bands() {
        assert_eq!(urgency(-1), "expired");
        assert_eq!(urgency(0), "d7");
        assert_eq!(urgency(7), "d7");
        assert_eq!(urgency(8), "d14");
        assert_eq!(urgency(14), "d14");
        assert_eq!(urgency(15), "d30");
        assert_eq!(urgency(30), "d30");
    }
}
