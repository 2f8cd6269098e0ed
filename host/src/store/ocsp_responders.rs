//! OCSP responder repository: the current delegated responder certificate of each issuer
//! and where its key file lives. The key itself is never stored in the database.

use sqlx::Row as _;
use sqlx::any::AnyRow;

use super::sql::Sql;
use super::{Store, StoreError};

/// An issuer's responder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponder {
    /// Issuer.
    pub issuer_id: String,
    /// The responder certificate, PEM.
    pub certificate_pem: String,
    /// Its serial, hex.
    pub serial_number: String,
    /// The PKCS#8 PEM key file (mode 0600).
    pub key_path: String,
    /// SHA-256 of the CA certificate that issued it (a new CA means a new responder).
    pub ca_fingerprint_sha256: String,
    /// NotBefore (canonical timestamp).
    pub not_before: String,
    /// NotAfter (canonical timestamp).
    pub not_after: String,
    /// When issued.
    pub created_at: String,
}

const COLUMNS: &str = "issuer_id, certificate_pem, serial_number, key_path, ca_fingerprint_sha256, not_before, not_after, created_at";

fn decode(row: &AnyRow) -> Result<StoredResponder, StoreError> {
    Ok(StoredResponder {
        issuer_id: row.try_get(0)?,
        certificate_pem: row.try_get(1)?,
        serial_number: row.try_get(2)?,
        key_path: row.try_get(3)?,
        ca_fingerprint_sha256: row.try_get(4)?,
        not_before: row.try_get(5)?,
        not_after: row.try_get(6)?,
        created_at: row.try_get(7)?,
    })
}

/// The issuer's current responder.
pub async fn get(store: &Store, issuer_id: &str) -> Result<Option<StoredResponder>, StoreError> {
    let mut sql = Sql::new(
        store.dialect(),
        &format!("SELECT {COLUMNS} FROM ocsp_responders WHERE issuer_id = "),
    );
    sql.bind_text(issuer_id);
    sql.query()
        .fetch_optional(store.pool())
        .await?
        .map(|r| decode(&r))
        .transpose()
}

/// Replaces the issuer's responder.
pub async fn put(store: &Store, responder: &StoredResponder) -> Result<(), StoreError> {
    let mut sql = Sql::new(
        store.dialect(),
        &format!("INSERT INTO ocsp_responders ({COLUMNS}) VALUES ("),
    );
    sql.bind_text(responder.issuer_id.clone())
        .push(", ")
        .bind_text(responder.certificate_pem.clone())
        .push(", ")
        .bind_text(responder.serial_number.clone())
        .push(", ")
        .bind_text(responder.key_path.clone())
        .push(", ")
        .bind_text(responder.ca_fingerprint_sha256.clone())
        .push(", ")
        .bind_text(responder.not_before.clone())
        .push(", ")
        .bind_text(responder.not_after.clone())
        .push(", ")
        .bind_text(responder.created_at.clone())
        .push(
            ") ON CONFLICT (issuer_id) DO UPDATE SET certificate_pem = excluded.certificate_pem, \
             serial_number = excluded.serial_number, key_path = excluded.key_path, \
             ca_fingerprint_sha256 = excluded.ca_fingerprint_sha256, not_before = excluded.not_before, \
             not_after = excluded.not_after, created_at = excluded.created_at",
        );
    sql.query().execute(store.pool()).await?;
    Ok(())
}
