//! Certificate profiles: the key, lifetime and usage rules a certificate is issued under.

use super::resource::{CREATED_AT, DeleteMode, FieldKind::*, FieldSpec, ResourceSpec};

/// `/api/v1/profiles`.
pub static SPEC: ResourceSpec = ResourceSpec {
    path: "profiles",
    table: "certificate_profiles",
    singular: "profile",
    id_prefix: "prof",
    fields: &[
        FieldSpec::new("name", Text, "Display name").required().sort().filter(),
        FieldSpec::new("description", Text, "Free-form description"),
        FieldSpec::new("allowed_key_algorithms", ObjectList, "Accepted keys, e.g. [{\"algorithm\":\"ECDSA\",\"min_size\":256}]; empty accepts any").default("[]"),
        FieldSpec::new("max_ttl_seconds", Int { min: 60, max: 3_153_600_000 }, "Upper bound on a certificate's lifetime (caps NotAfter)").sort(),
        FieldSpec::new("required_sans", StringList, "SANs every certificate of this profile must carry").default("[]"),
        FieldSpec::new("allowed_ekus", StringList, "Extended key usages (serverAuth, clientAuth, codeSigning, emailProtection, timeStamping)").default("[\"serverAuth\"]"),
        FieldSpec::new("requires_approval", Bool, "Issuance waits in AwaitingApproval until an operator approves").default("false").filter(),
        FieldSpec::new("enabled", Bool, "Disabled profiles accept no new certificates").default("true").filter(),
    ],
    timestamps: true,
    created_field: CREATED_AT,
    writable: true,
    delete: DeleteMode::Remove,
    time_filters: &[],
    default_sort: "name",
    doc: "Certificate profiles (key rules, max TTL, EKUs)",
};
