//! Policy rules: organisation-wide constraints checked at issuance.

use super::resource::{CREATED_AT, DeleteMode, FieldKind::*, FieldSpec, ResourceSpec};

/// Rule kinds.
pub const TYPES: &[&str] = &[
    "KeyAlgorithm",
    "MinKeySize",
    "MaxLifetime",
    "SanPattern",
    "IssuerRestriction",
];

/// How serious a violation is.
pub const SEVERITIES: &[&str] = &["Warning", "Error", "Critical"];

/// `/api/v1/policies`.
pub static SPEC: ResourceSpec = ResourceSpec {
    path: "policies",
    table: "policy_rules",
    singular: "policy",
    id_prefix: "pol",
    fields: &[
        FieldSpec::new("name", Text, "Display name")
            .required()
            .sort()
            .filter(),
        FieldSpec::new("type", Enum(TYPES), "Rule kind")
            .required()
            .filter()
            .sort(),
        FieldSpec::new("config", Object, "Rule parameters").default("{}"),
        FieldSpec::new("severity", Enum(SEVERITIES), "Severity of violations")
            .default("\"Warning\"")
            .filter()
            .sort(),
        FieldSpec::new("enabled", Bool, "Disabled rules are not evaluated")
            .default("true")
            .filter(),
    ],
    timestamps: true,
    created_field: CREATED_AT,
    writable: true,
    delete: DeleteMode::Remove,
    time_filters: &[],
    default_sort: "name",
    doc: "Policy rules",
};
