//! API-call records: one per request, read-only through `/api/v1/audit/api-calls`.

use super::resource::{Access, DeleteMode, FieldKind::*, FieldSpec, ResourceSpec, TimeFilter};

/// `/api/v1/audit/api-calls` (read-only).
pub static SPEC: ResourceSpec = ResourceSpec {
    path: "audit/api-calls",
    table: "api_calls",
    singular: "api_call",
    id_prefix: "call",
    fields: &[
        FieldSpec::new("request_id", Text, "Request id (X-Request-Id)")
            .access(Access::ReadOnly)
            .filter(),
        FieldSpec::new("method", Text, "HTTP method")
            .access(Access::ReadOnly)
            .filter(),
        FieldSpec::new("path", Text, "Request path")
            .access(Access::ReadOnly)
            .filter(),
        FieldSpec::new("actor", Text, "API key name or anonymous")
            .access(Access::ReadOnly)
            .filter()
            .sort(),
        FieldSpec::new(
            "body_sha256",
            Text,
            "First 16 hex digits of the body's SHA-256",
        )
        .access(Access::ReadOnly),
        FieldSpec::new("status", Int { min: 100, max: 599 }, "Response status")
            .access(Access::ReadOnly)
            .filter()
            .sort(),
        FieldSpec::new(
            "latency_ms",
            Int {
                min: 0,
                max: i64::MAX,
            },
            "Time to respond",
        )
        .access(Access::ReadOnly)
        .sort(),
        FieldSpec::new("timestamp", Timestamp, "When the call finished")
            .access(Access::ReadOnly)
            .sort(),
    ],
    timestamps: false,
    created_field: "timestamp",
    writable: false,
    delete: DeleteMode::Forbidden,
    time_filters: &[
        TimeFilter {
            param: "since",
            field: "timestamp",
            before: false,
        },
        TimeFilter {
            param: "until",
            field: "timestamp",
            before: true,
        },
    ],
    default_sort: "-timestamp",
    doc: "API-call log (append-only)",
};
