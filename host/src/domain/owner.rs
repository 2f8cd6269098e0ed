//! Owners: the people responsible for certificates; notification recipients default to them.

use super::resource::{CREATED_AT, DeleteMode, FieldKind::*, FieldSpec, ResourceSpec};

/// `/api/v1/owners`.
pub static SPEC: ResourceSpec = ResourceSpec {
    path: "owners",
    table: "owners",
    singular: "owner",
    id_prefix: "o",
    fields: &[
        FieldSpec::new("name", Text, "Person's name")
            .required()
            .sort()
            .filter(),
        FieldSpec::new(
            "email",
            Email,
            "Address that receives this owner's notifications",
        )
        .filter(),
        FieldSpec::new("team_id", Text, "Team the owner belongs to")
            .references("teams")
            .filter(),
    ],
    timestamps: true,
    created_field: CREATED_AT,
    writable: true,
    delete: DeleteMode::Remove,
    time_filters: &[],
    default_sort: "name",
    doc: "People responsible for certificates",
};
