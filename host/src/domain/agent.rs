//! Agents: daemons on operators' hosts that hold private keys and deploy certificates.

use super::resource::{Access, CREATED_AT, DeleteMode, FieldKind::*, FieldSpec, ResourceSpec};

/// Agent health as seen from heartbeats.
/// `Retired` agents keep their record (history, audit) but their keys are dead.
pub const STATUSES: &[&str] = &["Online", "Offline", "Degraded", "Retired"];

/// `/api/v1/agents`.
pub static SPEC: ResourceSpec = ResourceSpec {
    path: "agents",
    table: "agents",
    singular: "agent",
    id_prefix: "ag",
    fields: &[
        FieldSpec::new("name", Text, "Display name")
            .required()
            .sort()
            .filter(),
        FieldSpec::new("hostname", Text, "Host the agent runs on")
            .filter()
            .sort(),
        FieldSpec::new("status", Enum(STATUSES), "Health from heartbeats")
            .access(Access::ReadOnly)
            .default("\"Offline\"")
            .filter()
            .sort(),
        FieldSpec::new("os", Text, "Operating system reported by heartbeat")
            .access(Access::ReadOnly)
            .filter(),
        FieldSpec::new(
            "architecture",
            Text,
            "CPU architecture reported by heartbeat",
        )
        .access(Access::ReadOnly)
        .filter(),
        FieldSpec::new("ip_address", Text, "Address reported by heartbeat")
            .access(Access::ReadOnly),
        FieldSpec::new("version", Text, "Agent version reported by heartbeat")
            .access(Access::ReadOnly)
            .filter(),
        FieldSpec::new("last_heartbeat_at", Timestamp, "Time of the last heartbeat")
            .access(Access::ReadOnly)
            .sort(),
        FieldSpec::new(
            "retired_at",
            Timestamp,
            "When the agent was retired (its keys revoked); null while active",
        )
        .access(Access::ReadOnly),
    ],
    timestamps: true,
    created_field: CREATED_AT,
    writable: true,
    delete: DeleteMode::Remove,
    time_filters: &[],
    default_sort: "name",
    doc: "Agents that hold keys and deploy certificates",
};
