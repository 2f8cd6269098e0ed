//! Issuance policies: evaluating the enabled policy rules against an issuance and
//! recording the violations (with their notifications). The rules themselves are pure
//! functions in `domain::policy`; refusing the issuance happens in `issuance`.

use serde_json::Value;

use super::Pipeline;
use crate::domain::policy as policy_spec;
use crate::domain::policy::{self, IssuanceFacts, Violation};
use crate::store::notifications::{self, NewNotification};
use crate::store::{StoreError, records};

impl Pipeline {
    pub(super) async fn evaluate_policies(
        &self,
        facts: &IssuanceFacts,
    ) -> Result<Vec<Violation>, StoreError> {
        let q = crate::domain::listing::parse(
            &policy_spec::SPEC,
            &[
                ("enabled".into(), "true".into()),
                ("per_page".into(), "500".into()),
            ],
        )
        .map_err(|e| StoreError::Database(e.to_string()))?;
        let rules = records::list(&self.store, &policy_spec::SPEC, &q).await?;
        Ok(rules
            .rows
            .iter()
            .filter_map(|r| {
                policy::evaluate(
                    r.get("id").and_then(Value::as_str).unwrap_or_default(),
                    r.get("type").and_then(Value::as_str).unwrap_or_default(),
                    r.get("config").unwrap_or(&Value::Null),
                    r.get("severity")
                        .and_then(Value::as_str)
                        .unwrap_or("Warning"),
                    facts,
                )
            })
            .collect())
    }

    pub(super) async fn record_violations(
        &self,
        certificate_id: &str,
        violations: &[Violation],
    ) -> Result<(), StoreError> {
        let now = self.now_text();
        for v in violations {
            let pv_id = records::new_id("pv");
            let mut pv = crate::store::sql::Sql::new(
                self.store.dialect(),
                "INSERT INTO policy_violations (id, certificate_id, rule_id, message, severity, created_at) VALUES (",
            );
            pv.bind_text(pv_id.clone())
                .push(", ")
                .bind_text(certificate_id)
                .push(", ")
                .bind_text(v.rule_id.clone())
                .push(", ")
                .bind_text(v.message.clone())
                .push(", ")
                .bind_text(v.severity.clone())
                .push(", ")
                .bind_text(now.clone())
                .push(")");
            pv.query().execute(self.store.pool()).await?;
            let n = NewNotification {
                notification_type: "PolicyViolation",
                certificate_id: Some(certificate_id),
                channel: "email",
                recipient: None,
                message: format!(
                    "Certificate {certificate_id} violates policy {} ({}): {}; issuance refused",
                    v.rule_id, v.severity, v.message
                ),
                dedup_key: Some(format!("policy-violation:{pv_id}")),
            };
            notifications::enqueue(&self.store, &n, &now).await?;
        }
        Ok(())
    }
}
