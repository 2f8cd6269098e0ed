//! Managed certificates: the unit certctl keeps issued, renewed, deployed and revoked.

use super::resource::{
    Access, CREATED_AT, DeleteMode, FieldKind::*, FieldSpec, ResourceSpec, TimeFilter,
};

/// Lifecycle statuses (DESIGN.md §3).
pub const STATUSES: &[&str] = &[
    "Pending",
    "Active",
    "Expiring",
    "Expired",
    "RenewalInProgress",
    "Failed",
    "Revoked",
    "Archived",
];

/// Status a deleted certificate is archived to; its history stays.
pub const ARCHIVED: &str = "Archived";

/// `/api/v1/certificates`.
pub static SPEC: ResourceSpec = ResourceSpec {
    path: "certificates",
    table: "managed_certificates",
    singular: "certificate",
    id_prefix: "mc",
    fields: &[
        FieldSpec::new("name", Text, "Display name")
            .required()
            .sort()
            .filter(),
        FieldSpec::new("common_name", Text, "Subject common name")
            .required()
            .sort()
            .filter(),
        FieldSpec::new(
            "sans",
            StringList,
            "Subject alternative names (DNS names, IPs, e-mail addresses)",
        )
        .default("[]"),
        FieldSpec::new(
            "environment",
            Text,
            "Free-form environment label (production, staging, …)",
        )
        .filter()
        .sort(),
        FieldSpec::new("owner_id", Text, "Responsible owner")
            .references("owners")
            .filter(),
        FieldSpec::new("team_id", Text, "Owning team")
            .references("teams")
            .filter(),
        FieldSpec::new("issuer_id", Text, "Issuer that signs this certificate")
            .references("issuers")
            .filter(),
        FieldSpec::new("renewal_policy_id", Text, "Renewal policy")
            .references("renewal-policies")
            .filter(),
        FieldSpec::new("profile_id", Text, "Certificate profile")
            .references("profiles")
            .filter(),
        FieldSpec::new(
            "status",
            Enum(STATUSES),
            "Lifecycle status, set by the server",
        )
        .access(Access::ReadOnly)
        .default("\"Pending\"")
        .filter()
        .sort(),
        FieldSpec::new("expires_at", Timestamp, "NotAfter of the current version")
            .access(Access::ReadOnly)
            .sort(),
        FieldSpec::new("tags", Object, "Free-form labels").default("{}"),
    ],
    timestamps: true,
    created_field: CREATED_AT,
    writable: true,
    delete: DeleteMode::Archive {
        field: "status",
        value: ARCHIVED,
    },
    time_filters: &[
        TimeFilter {
            param: "expires_before",
            field: "expires_at",
            before: true,
        },
        TimeFilter {
            param: "expires_after",
            field: "expires_at",
            before: false,
        },
    ],
    default_sort: "name",
    doc: "Managed certificates",
};
