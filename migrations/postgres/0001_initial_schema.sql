-- certctl initial schema (PostgreSQL dialect). Mirrors migrations/sqlite/0001_initial_schema.sql.
-- Timestamps are canonical RFC 3339 UTC text (see certctl-core::timestamp); JSON is stored as text.

CREATE TABLE IF NOT EXISTS teams (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    description TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS owners (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    email TEXT,
    team_id TEXT REFERENCES teams(id),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS issuers (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    type TEXT NOT NULL,
    config TEXT NOT NULL DEFAULT '{}',
    enabled BOOLEAN NOT NULL DEFAULT TRUE,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS renewal_policies (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    renewal_window_days BIGINT NOT NULL DEFAULT 30,
    auto_renew BOOLEAN NOT NULL DEFAULT TRUE,
    max_retries BIGINT NOT NULL DEFAULT 3,
    retry_interval_seconds BIGINT NOT NULL DEFAULT 3600,
    alert_thresholds_days TEXT NOT NULL DEFAULT '[30,14,7,0]',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS certificate_profiles (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    description TEXT,
    allowed_key_algorithms TEXT NOT NULL DEFAULT '[]',
    max_ttl_seconds BIGINT,
    required_sans TEXT NOT NULL DEFAULT '[]',
    allowed_ekus TEXT NOT NULL DEFAULT '["serverAuth"]',
    requires_approval BOOLEAN NOT NULL DEFAULT FALSE,
    enabled BOOLEAN NOT NULL DEFAULT TRUE,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS agents (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    hostname TEXT,
    status TEXT NOT NULL DEFAULT 'Offline',
    os TEXT,
    architecture TEXT,
    ip_address TEXT,
    version TEXT,
    last_heartbeat_at TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS deployment_targets (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    type TEXT NOT NULL,
    agent_id TEXT REFERENCES agents(id),
    config TEXT NOT NULL DEFAULT '{}',
    enabled BOOLEAN NOT NULL DEFAULT TRUE,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS managed_certificates (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    common_name TEXT NOT NULL,
    sans TEXT NOT NULL DEFAULT '[]',
    environment TEXT,
    owner_id TEXT REFERENCES owners(id),
    team_id TEXT REFERENCES teams(id),
    issuer_id TEXT REFERENCES issuers(id),
    renewal_policy_id TEXT REFERENCES renewal_policies(id),
    profile_id TEXT REFERENCES certificate_profiles(id),
    status TEXT NOT NULL DEFAULT 'Pending',
    expires_at TEXT,
    tags TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_managed_certificates_status ON managed_certificates(status);
CREATE INDEX IF NOT EXISTS idx_managed_certificates_expires_at ON managed_certificates(expires_at);

CREATE TABLE IF NOT EXISTS certificate_versions (
    id TEXT PRIMARY KEY,
    certificate_id TEXT NOT NULL REFERENCES managed_certificates(id),
    serial_number TEXT NOT NULL,
    fingerprint_sha256 TEXT NOT NULL,
    pem_chain TEXT NOT NULL,
    csr_pem TEXT,
    key_algorithm TEXT,
    key_size BIGINT,
    not_before TEXT NOT NULL,
    not_after TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_certificate_versions_certificate ON certificate_versions(certificate_id);

CREATE TABLE IF NOT EXISTS certificate_target_mappings (
    certificate_id TEXT NOT NULL REFERENCES managed_certificates(id),
    target_id TEXT NOT NULL REFERENCES deployment_targets(id),
    created_at TEXT NOT NULL,
    PRIMARY KEY (certificate_id, target_id)
);

CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    certificate_id TEXT NOT NULL REFERENCES managed_certificates(id),
    target_id TEXT REFERENCES deployment_targets(id),
    agent_id TEXT REFERENCES agents(id),
    status TEXT NOT NULL DEFAULT 'Pending',
    attempts BIGINT NOT NULL DEFAULT 0,
    max_attempts BIGINT NOT NULL DEFAULT 3,
    last_error TEXT,
    scheduled_at TEXT,
    started_at TEXT,
    completed_at TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_jobs_status ON jobs(status);

CREATE TABLE IF NOT EXISTS policy_rules (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    type TEXT NOT NULL,
    config TEXT NOT NULL DEFAULT '{}',
    severity TEXT NOT NULL DEFAULT 'Warning',
    enabled BOOLEAN NOT NULL DEFAULT TRUE,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS policy_violations (
    id TEXT PRIMARY KEY,
    certificate_id TEXT NOT NULL REFERENCES managed_certificates(id),
    rule_id TEXT NOT NULL REFERENCES policy_rules(id),
    message TEXT NOT NULL,
    severity TEXT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS notification_events (
    id TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    certificate_id TEXT REFERENCES managed_certificates(id),
    channel TEXT NOT NULL DEFAULT 'email',
    recipient TEXT,
    message TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'Pending',
    read BOOLEAN NOT NULL DEFAULT FALSE,
    attempts BIGINT NOT NULL DEFAULT 0,
    last_error TEXT,
    next_attempt_at TEXT,
    sent_at TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    key_hash TEXT NOT NULL UNIQUE,
    admin BOOLEAN NOT NULL DEFAULT FALSE,
    agent_id TEXT REFERENCES agents(id),
    created_at TEXT NOT NULL
);

-- Append-only trail of every mutation. The triggers below make the database itself refuse changes.
CREATE TABLE IF NOT EXISTS audit_events (
    id TEXT PRIMARY KEY,
    actor TEXT NOT NULL,
    actor_type TEXT NOT NULL,
    action TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    details TEXT NOT NULL DEFAULT '{}',
    timestamp TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_audit_events_timestamp ON audit_events(timestamp);
CREATE INDEX IF NOT EXISTS idx_audit_events_resource ON audit_events(resource_type, resource_id);

CREATE OR REPLACE FUNCTION certctl_refuse_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS audit_events_append_only ON audit_events;
CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION certctl_refuse_change();
-- Row triggers do not fire on TRUNCATE; refuse that too.
DROP TRIGGER IF EXISTS audit_events_no_truncate ON audit_events;
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION certctl_refuse_change();

-- One row per API call (method, path, actor, body hash, status, latency); append-only as well.
CREATE TABLE IF NOT EXISTS api_calls (
    id TEXT PRIMARY KEY,
    request_id TEXT NOT NULL,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    actor TEXT NOT NULL,
    body_sha256 TEXT,
    status BIGINT NOT NULL,
    latency_ms BIGINT NOT NULL,
    timestamp TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_api_calls_timestamp ON api_calls(timestamp);

DROP TRIGGER IF EXISTS api_calls_append_only ON api_calls;
CREATE TRIGGER api_calls_append_only BEFORE UPDATE OR DELETE ON api_calls
    FOR EACH ROW EXECUTE FUNCTION certctl_refuse_change();
-- Row triggers do not fire on TRUNCATE; refuse that too.
DROP TRIGGER IF EXISTS api_calls_no_truncate ON api_calls;
CREATE TRIGGER api_calls_no_truncate BEFORE TRUNCATE ON api_calls
    FOR EACH STATEMENT EXECUTE FUNCTION certctl_refuse_change();
