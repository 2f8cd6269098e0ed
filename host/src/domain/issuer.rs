//! Issuers: the certificate authorities certctl requests certificates from.

use super::resource::{CREATED_AT, DeleteMode, FieldKind::*, FieldSpec, ResourceSpec};

/// The native issuer types; any other `type` must be the id of a loaded issuer plugin.
pub const TYPES: &[&str] = &["local", "acme"];

/// Config keys of a built-in issuer type that are secrets: stored encrypted, never shown
/// (`acme`: the EAB MAC key, under its name and its reference alias). Plugin issuers mark
/// theirs in their config schema instead.
pub fn secret_config_fields(issuer_type: &str) -> &'static [&'static str] {
    match issuer_type {
        "acme" => &["eab_hmac_key", "eab_hmac"],
        _ => &[],
    }
}

/// `/api/v1/issuers`.
pub static SPEC: ResourceSpec = ResourceSpec {
    path: "issuers",
    table: "issuers",
    singular: "issuer",
    id_prefix: "iss",
    fields: &[
        FieldSpec::new("name", Text, "Display name")
            .required()
            .sort()
            .filter(),
        FieldSpec::new(
            "type",
            Connector {
                builtin: TYPES,
                plugin_kind: "issuer",
            },
            "Issuer connector: a built-in type (local, acme) or the id of a loaded issuer plugin",
        )
            .required()
            .filter()
            .sort(),
        FieldSpec::new(
            "config",
            Object,
            "Connector configuration (validated by the connector, or the plugin's validate-config); secrets (acme's eab_hmac_key, fields a plugin marks secret) read as \"***\", and \"***\" sent back keeps them",
        )
        .default("{}"),
        FieldSpec::new("enabled", Bool, "Disabled issuers accept no new jobs")
            .default("true")
            .filter(),
    ],
    timestamps: true,
    created_field: CREATED_AT,
    writable: true,
    delete: DeleteMode::Remove,
    time_filters: &[],
    default_sort: "name",
    doc: "Certificate authorities",
};
