//! Audit events: the append-only record of every mutation. Read-only through the API.

use serde_json::Value;

use super::resource::{Access, DeleteMode, FieldKind::*, FieldSpec, ResourceSpec, TimeFilter};

/// Who did something.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// API key name, agent id, or `system`/`anonymous`.
    pub name: String,
    /// `User`, `Agent`, `System` or `Anonymous`.
    pub kind: ActorKind,
}

/// The kind of actor behind an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActorKind {
    /// A person or automation using an API key.
    User,
    /// An agent using its own key.
    Agent,
    /// The server itself (scheduler loops).
    System,
    /// Authentication is off (`CERTCTL_AUTH_TYPE=none`).
    Anonymous,
}

impl ActorKind {
    /// Stored and served spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ActorKind::User => "User",
            ActorKind::Agent => "Agent",
            ActorKind::System => "System",
            ActorKind::Anonymous => "Anonymous",
        }
    }
}

impl Actor {
    /// The server acting on its own (scheduler, startup seeding).
    pub fn system() -> Self {
        Self {
            name: "system".into(),
            kind: ActorKind::System,
        }
    }
}

/// An event to append: what happened to which resource, and details.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    /// Who.
    pub actor: Actor,
    /// `certificate_created`, `job_cancelled`, …
    pub action: String,
    /// Singular resource name.
    pub resource_type: String,
    /// Id of the resource.
    pub resource_id: String,
    /// Free-form JSON details.
    pub details: Value,
}

/// `/api/v1/audit` (read-only).
pub static SPEC: ResourceSpec = ResourceSpec {
    path: "audit",
    table: "audit_events",
    singular: "audit_event",
    id_prefix: "audit",
    fields: &[
        FieldSpec::new("actor", Text, "API key name, agent id or system")
            .access(Access::ReadOnly)
            .filter()
            .sort(),
        FieldSpec::new(
            "actor_type",
            Enum(&["User", "Agent", "System", "Anonymous"]),
            "Kind of actor",
        )
        .access(Access::ReadOnly)
        .filter(),
        FieldSpec::new(
            "action",
            Text,
            "What happened (certificate_created, job_cancelled, …)",
        )
        .access(Access::ReadOnly)
        .filter()
        .sort(),
        FieldSpec::new("resource_type", Text, "Kind of resource")
            .access(Access::ReadOnly)
            .filter()
            .sort(),
        FieldSpec::new("resource_id", Text, "Id of the resource")
            .access(Access::ReadOnly)
            .filter(),
        FieldSpec::new("details", Object, "Details").access(Access::ReadOnly),
        FieldSpec::new("timestamp", Timestamp, "When")
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
    doc: "Audit trail (append-only)",
};
