//! Agent health loop: agents whose last heartbeat is older than the limit become Offline.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde_json::json;

use super::scheduler::LoopTask;
use crate::domain::audit::{Actor, AuditEntry};
use crate::pipeline::Pipeline;
use crate::store::audit;
use crate::store::sql::Sql;

/// The loop task.
#[derive(Debug)]
pub struct AgentHealth {
    /// Pipeline handle (store and clock).
    pub pipeline: Arc<Pipeline>,
    /// Heartbeat age after which an agent is Offline.
    pub offline_after: Duration,
}

impl LoopTask for AgentHealth {
    fn name(&self) -> &'static str {
        "agent_health"
    }

    fn tick(self: Arc<Self>) -> BoxFuture<'static, Result<String, String>> {
        Box::pin(async move {
            let p = &self.pipeline;
            let now = p.clock.now_text();
            let cutoff = certctl_core::timestamp::format(p.clock.now() - self.offline_after);
            let mut find = Sql::new(
                p.store.dialect(),
                "SELECT id FROM agents WHERE status NOT IN ('Offline', 'Retired') AND (last_heartbeat_at IS NULL OR last_heartbeat_at < ",
            );
            find.bind_text(cutoff.clone()).push(")");
            let rows = find
                .query()
                .fetch_all(p.store.pool())
                .await
                .map_err(|e| e.to_string())?;
            let mut marked = 0;
            for row in rows {
                let id: String = sqlx::Row::try_get(&row, 0).map_err(|e| e.to_string())?;
                let mut tx = p.store.begin_write().await.map_err(|e| e.to_string())?;
                let mut up = Sql::new(
                    p.store.dialect(),
                    "UPDATE agents SET status = 'Offline', updated_at = ",
                );
                up.bind_text(now.clone()).push(" WHERE id = ").bind_text(id.clone()).push(" AND status NOT IN ('Offline', 'Retired') AND (last_heartbeat_at IS NULL OR last_heartbeat_at < ").bind_text(cutoff.clone()).push(")");
                if up
                    .query()
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| e.to_string())?
                    .rows_affected()
                    == 1
                {
                    audit::append(
                        &mut tx,
                        p.store.dialect(),
                        &AuditEntry {
                            actor: Actor::system(),
                            action: "agent_offline".into(),
                            resource_type: "agent".into(),
                            resource_id: id,
                            details: json!({"no_heartbeat_since": cutoff}),
                        },
                        &now,
                    )
                    .await
                    .map_err(|e| e.to_string())?;
                    marked += 1;
                }
                tx.commit().await.map_err(|e| e.to_string())?;
            }
            Ok(if marked > 0 {
                format!("{marked} agents marked Offline")
            } else {
                String::new()
            })
        })
    }
}
