//! Jobs: one row per unit of work (issuance, renewal, deployment, validation).

use super::resource::{Access, CREATED_AT, DeleteMode, FieldKind::*, FieldSpec, ResourceSpec};

/// Kinds of work.
pub const TYPES: &[&str] = &["Issuance", "Renewal", "Deployment", "Validation"];

/// Job states (DESIGN.md §3).
pub const STATUSES: &[&str] = &[
    "Pending",
    "AwaitingCSR",
    "AwaitingApproval",
    "Running",
    "Completed",
    "Failed",
    "Cancelled",
];

/// `/api/v1/jobs`.
pub static SPEC: ResourceSpec = ResourceSpec {
    path: "jobs",
    table: "jobs",
    singular: "job",
    id_prefix: "job",
    fields: &[
        FieldSpec::new("type", Enum(TYPES), "Kind of work")
            .required()
            .access(Access::CreateOnly)
            .filter()
            .sort(),
        FieldSpec::new("certificate_id", Text, "Certificate the work is for")
            .required()
            .access(Access::CreateOnly)
            .references("certificates")
            .filter(),
        FieldSpec::new(
            "target_id",
            Text,
            "Target, for deployment and validation jobs",
        )
        .access(Access::CreateOnly)
        .references("targets")
        .filter(),
        FieldSpec::new(
            "agent_id",
            Text,
            "Agent that performs the work, when one does",
        )
        .access(Access::CreateOnly)
        .references("agents")
        .filter(),
        FieldSpec::new(
            "status",
            Enum(STATUSES),
            "State, changed only through job actions",
        )
        .access(Access::ReadOnly)
        .default("\"Pending\"")
        .filter()
        .sort(),
        FieldSpec::new(
            "attempts",
            Int { min: 0, max: 1000 },
            "Attempts made so far",
        )
        .access(Access::ReadOnly)
        .default("0"),
        FieldSpec::new(
            "max_attempts",
            Int { min: 1, max: 100 },
            "Attempts before the job fails for good",
        )
        .default("3"),
        FieldSpec::new("last_error", Text, "Error of the last failed attempt")
            .access(Access::ReadOnly),
        FieldSpec::new("scheduled_at", Timestamp, "Not run before this time").sort(),
        FieldSpec::new("started_at", Timestamp, "Start of the current attempt")
            .access(Access::ReadOnly)
            .sort(),
        FieldSpec::new("completed_at", Timestamp, "End time")
            .access(Access::ReadOnly)
            .sort(),
    ],
    timestamps: true,
    created_field: CREATED_AT,
    writable: true,
    delete: DeleteMode::Remove,
    time_filters: &[],
    default_sort: "-created_at",
    doc: "Jobs (issuance, renewal, deployment, validation)",
};
