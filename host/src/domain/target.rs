//! Deployment targets: the servers (nginx, apache, …) an agent installs certificates into.

use super::resource::{CREATED_AT, DeleteMode, FieldKind::*, FieldSpec, ResourceSpec};

/// Target connector types shipped with certctl. Any loaded target plugin's id is a type
/// too (a third-party connector); `postfix` and `dovecot` are the `mail` plugin's modes.
pub const TYPES: &[&str] = &[
    "nginx", "apache", "haproxy", "traefik", "caddy", "envoy", "postfix", "dovecot",
];

/// `/api/v1/targets`.
pub static SPEC: ResourceSpec = ResourceSpec {
    path: "targets",
    table: "deployment_targets",
    singular: "target",
    id_prefix: "t",
    fields: &[
        FieldSpec::new("name", Text, "Display name")
            .required()
            .sort()
            .filter(),
        FieldSpec::new(
            "type",
            Connector {
                builtin: TYPES,
                plugin_kind: "target",
            },
            "Target connector: a built-in type or the id of a loaded target plugin",
        )
        .required()
        .filter()
        .sort(),
        FieldSpec::new("agent_id", Text, "Agent that deploys to this target")
            .references("agents")
            .filter(),
        FieldSpec::new(
            "config",
            Object,
            "Connector configuration (paths, reload command name, …); fields the plugin marks secret read as \"***\", and \"***\" sent back keeps them",
        )
        .default("{}"),
        FieldSpec::new("enabled", Bool, "Disabled targets receive no deployments")
            .default("true")
            .filter(),
    ],
    timestamps: true,
    created_field: CREATED_AT,
    writable: true,
    delete: DeleteMode::Remove,
    time_filters: &[],
    default_sort: "name",
    doc: "Deployment targets",
};
