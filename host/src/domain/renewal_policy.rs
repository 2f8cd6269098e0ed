//! Renewal policies: when certificates renew and at which thresholds owners are warned.

use super::resource::{CREATED_AT, DeleteMode, FieldKind::*, FieldSpec, ResourceSpec};

/// `/api/v1/renewal-policies`.
pub static SPEC: ResourceSpec = ResourceSpec {
    path: "renewal-policies",
    table: "renewal_policies",
    singular: "renewal_policy",
    id_prefix: "rp",
    fields: &[
        FieldSpec::new("name", Text, "Display name")
            .required()
            .sort()
            .filter(),
        FieldSpec::new(
            "renewal_window_days",
            Int { min: 0, max: 3650 },
            "Renew this many days before expiry",
        )
        .default("30")
        .sort(),
        FieldSpec::new("auto_renew", Bool, "Create renewal jobs automatically")
            .default("true")
            .filter(),
        FieldSpec::new(
            "max_retries",
            Int { min: 0, max: 100 },
            "Attempts before a renewal job fails for good",
        )
        .default("3"),
        FieldSpec::new(
            "retry_interval_seconds",
            Int {
                min: 1,
                max: 604_800,
            },
            "Delay between attempts",
        )
        .default("3600"),
        FieldSpec::new(
            "alert_thresholds_days",
            IntList,
            "Days before expiry at which one warning each is sent",
        )
        .default("[30,14,7,0]"),
        FieldSpec::new(
            "notification_channels",
            StringList,
            "Channels (webhook, slack, email, …) this policy's certificates notify on; empty: the server's routing",
        )
        .default("[]"),
    ],
    timestamps: true,
    created_field: CREATED_AT,
    writable: true,
    delete: DeleteMode::Remove,
    time_filters: &[],
    default_sort: "name",
    doc: "Renewal timing and expiry alert thresholds",
};
