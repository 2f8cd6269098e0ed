//! Teams: the organisational unit that owns certificates.

use super::resource::{CREATED_AT, DeleteMode, FieldKind::*, FieldSpec, ResourceSpec};

/// `/api/v1/teams`.
pub static SPEC: ResourceSpec = ResourceSpec {
    path: "teams",
    table: "teams",
    singular: "team",
    id_prefix: "team",
    fields: &[
        FieldSpec::new("name", Text, "Display name")
            .required()
            .sort()
            .filter(),
        FieldSpec::new("description", Text, "Free-form description"),
    ],
    timestamps: true,
    created_field: CREATED_AT,
    writable: true,
    delete: DeleteMode::Remove,
    time_filters: &[],
    default_sort: "name",
    doc: "Teams that own certificates",
};
