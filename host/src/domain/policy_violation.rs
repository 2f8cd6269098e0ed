//! Policy violations found at issuance, read-only through `/api/v1/policy-violations`.

use super::resource::{Access, CREATED_AT, DeleteMode, FieldKind::*, FieldSpec, ResourceSpec};

/// `/api/v1/policy-violations` (read-only).
pub static SPEC: ResourceSpec = ResourceSpec {
    path: "policy-violations",
    table: "policy_violations",
    singular: "policy_violation",
    id_prefix: "pv",
    fields: &[
        FieldSpec::new(
            "certificate_id",
            Text,
            "Certificate whose issuance broke the rule",
        )
        .access(Access::ReadOnly)
        .references("certificates")
        .filter(),
        FieldSpec::new("rule_id", Text, "Policy rule")
            .access(Access::ReadOnly)
            .references("policies")
            .filter(),
        FieldSpec::new("message", Text, "What is wrong").access(Access::ReadOnly),
        FieldSpec::new(
            "severity",
            Enum(super::policy::SEVERITIES),
            "Warning (recorded), Error or Critical (issuance refused)",
        )
        .access(Access::ReadOnly)
        .filter()
        .sort(),
        FieldSpec::new("created_at", Timestamp, "When found")
            .access(Access::ReadOnly)
            .sort(),
    ],
    timestamps: false,
    created_field: CREATED_AT,
    writable: false,
    delete: DeleteMode::Forbidden,
    time_filters: &[],
    default_sort: "-created_at",
    doc: "Policy violations",
};
