//! Short-lived expiry loop: certificates of profiles with a TTL under an hour are marked
//! Expired within seconds of NotAfter (the hourly renewal check is too coarse for them).

use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde_json::json;

use super::scheduler::LoopTask;
use crate::domain::audit::Actor;
use crate::pipeline::Pipeline;
use crate::store::certificates;
use crate::store::sql::Sql;

/// The loop task.
#[derive(Debug)]
pub struct ShortLivedExpiry(pub Arc<Pipeline>);

impl LoopTask for ShortLivedExpiry {
    fn name(&self) -> &'static str {
        "short_lived_expiry"
    }

    fn tick(self: Arc<Self>) -> BoxFuture<'static, Result<String, String>> {
        Box::pin(async move {
            let p = &self.0;
            let now = p.clock.now_text();
            let mut sql = Sql::new(
                p.store.dialect(),
                "SELECT c.id, c.status FROM managed_certificates c JOIN certificate_profiles pr ON pr.id = c.profile_id \
                 WHERE pr.max_ttl_seconds < 3600 AND c.status IN ('Active', 'Expiring', 'RenewalInProgress') AND c.expires_at IS NOT NULL AND c.expires_at <= ",
            );
            sql.bind_text(now.clone());
            let rows = sql
                .query()
                .fetch_all(p.store.pool())
                .await
                .map_err(|e| e.to_string())?;
            let mut expired = 0;
            for row in rows {
                let id: String = sqlx::Row::try_get(&row, 0).map_err(|e| e.to_string())?;
                let status: String = sqlx::Row::try_get(&row, 1).map_err(|e| e.to_string())?;
                if certificates::set_status(
                    &p.store,
                    &id,
                    &status,
                    "Expired",
                    &now,
                    &Actor::system(),
                    json!({"short_lived": true}),
                )
                .await
                .map_err(|e| e.to_string())?
                {
                    expired += 1;
                }
            }
            Ok(if expired > 0 {
                format!("{expired} short-lived certificates expired")
            } else {
                String::new()
            })
        })
    }
}
