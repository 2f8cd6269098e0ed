//! Notifications: queued messages to owners and channels about certificate events.

use super::resource::{Access, CREATED_AT, DeleteMode, FieldKind::*, FieldSpec, ResourceSpec};

/// Events that produce notifications.
pub const TYPES: &[&str] = &[
    "ExpirationWarning",
    "RenewalSuccess",
    "RenewalFailure",
    "DeploymentSuccess",
    "DeploymentFailure",
    "PolicyViolation",
    "Revocation",
];

/// Delivery states.
pub const STATUSES: &[&str] = &["Pending", "Sent", "Failed", "DeadLetter"];

/// `/api/v1/notifications`.
pub static SPEC: ResourceSpec = ResourceSpec {
    path: "notifications",
    table: "notification_events",
    singular: "notification",
    id_prefix: "notif",
    fields: &[
        FieldSpec::new("type", Enum(TYPES), "Event kind")
            .required()
            .access(Access::CreateOnly)
            .filter()
            .sort(),
        FieldSpec::new("certificate_id", Text, "Certificate concerned")
            .access(Access::CreateOnly)
            .references("certificates")
            .filter(),
        FieldSpec::new(
            "channel",
            Text,
            "Notifier channel (email, webhook, slack, …)",
        )
        .default("\"email\"")
        .filter(),
        FieldSpec::new("recipient", Text, "Address or channel-specific recipient").filter(),
        FieldSpec::new("message", Text, "Message text").required(),
        FieldSpec::new("status", Enum(STATUSES), "Delivery state")
            .access(Access::ReadOnly)
            .default("\"Pending\"")
            .filter()
            .sort(),
        FieldSpec::new("read", Bool, "Marked read in the dashboard")
            .default("false")
            .filter(),
        FieldSpec::new("attempts", Int { min: 0, max: 1000 }, "Delivery attempts")
            .access(Access::ReadOnly)
            .default("0"),
        FieldSpec::new("last_error", Text, "Error of the last failed delivery")
            .access(Access::ReadOnly),
        FieldSpec::new("next_attempt_at", Timestamp, "Next delivery attempt")
            .access(Access::ReadOnly)
            .sort(),
        FieldSpec::new("sent_at", Timestamp, "Delivery time")
            .access(Access::ReadOnly)
            .sort(),
    ],
    timestamps: true,
    created_field: CREATED_AT,
    writable: true,
    delete: DeleteMode::Remove,
    time_filters: &[],
    default_sort: "-created_at",
    doc: "Notifications",
};
