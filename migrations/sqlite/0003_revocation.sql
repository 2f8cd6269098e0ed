-- Revocation (SQLite dialect; mirrors postgres/0003_revocation.sql): one row per revoked
-- serial, bulk revocation runs and their per-certificate outcomes, the pre-generated CRL of
-- each issuer with its generation log, and each issuer's delegated OCSP responder.

-- Every issued version of a revoked certificate gets a row: a serial is revoked at most once
-- per issuer. `not_after` lets CRLs drop entries once the certificate has expired anyway;
-- `crl_exempt` marks short-lived certificates (profile TTL < 1 h), which CRLs never list.
CREATE TABLE IF NOT EXISTS certificate_revocations (
    id TEXT PRIMARY KEY,
    certificate_id TEXT NOT NULL REFERENCES managed_certificates(id),
    version_id TEXT,
    serial_number TEXT NOT NULL,
    issuer_id TEXT NOT NULL,
    reason TEXT NOT NULL,
    reason_code INTEGER NOT NULL,
    revoked_at TEXT NOT NULL,
    revoked_by TEXT NOT NULL,
    not_after TEXT,
    crl_exempt INTEGER NOT NULL DEFAULT 0,
    bulk_revocation_id TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS uq_certificate_revocations_serial ON certificate_revocations(issuer_id, serial_number);
CREATE INDEX IF NOT EXISTS idx_certificate_revocations_certificate ON certificate_revocations(certificate_id);

-- A bulk revocation: the criteria as given, counts, and Running → Completed.
CREATE TABLE IF NOT EXISTS bulk_revocations (
    id TEXT PRIMARY KEY,
    criteria TEXT NOT NULL,
    reason TEXT NOT NULL,
    reason_code INTEGER NOT NULL,
    status TEXT NOT NULL,
    affected INTEGER NOT NULL DEFAULT 0,
    succeeded INTEGER NOT NULL DEFAULT 0,
    skipped INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    requested_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    completed_at TEXT
);
CREATE INDEX IF NOT EXISTS idx_bulk_revocations_created ON bulk_revocations(created_at);

-- One row per certificate a bulk revocation selected: Pending, then Revoked, Skipped or Failed.
CREATE TABLE IF NOT EXISTS bulk_revocation_items (
    bulk_revocation_id TEXT NOT NULL REFERENCES bulk_revocations(id),
    certificate_id TEXT NOT NULL,
    outcome TEXT NOT NULL,
    message TEXT,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (bulk_revocation_id, certificate_id)
);

-- The current CRL of each issuer (DER, base64), with a CRL number that only grows.
CREATE TABLE IF NOT EXISTS crl_cache (
    issuer_id TEXT PRIMARY KEY,
    crl_number INTEGER NOT NULL,
    der_base64 TEXT NOT NULL,
    this_update TEXT NOT NULL,
    next_update TEXT NOT NULL,
    generated_at TEXT NOT NULL,
    generation_duration_ms INTEGER NOT NULL,
    revoked_count INTEGER NOT NULL
);

-- Every generation attempt, successful or not, for operators.
CREATE TABLE IF NOT EXISTS crl_generation_events (
    id TEXT PRIMARY KEY,
    issuer_id TEXT NOT NULL,
    crl_number INTEGER,
    revoked_count INTEGER,
    duration_ms INTEGER NOT NULL,
    cause TEXT NOT NULL,
    succeeded INTEGER NOT NULL,
    error TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_crl_generation_events_created ON crl_generation_events(created_at);

-- The delegated OCSP responder certificate of each issuer; its key is a 0600 file at key_path.
CREATE TABLE IF NOT EXISTS ocsp_responders (
    issuer_id TEXT PRIMARY KEY,
    certificate_pem TEXT NOT NULL,
    serial_number TEXT NOT NULL,
    key_path TEXT NOT NULL,
    ca_fingerprint_sha256 TEXT NOT NULL,
    not_before TEXT NOT NULL,
    not_after TEXT NOT NULL,
    created_at TEXT NOT NULL
);
