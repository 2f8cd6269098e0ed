-- Issuance pipeline: job leases and CSRs, version uniqueness, notification de-duplication.

-- The CSR an agent submitted (public material only), the operator's approve/reject reason,
-- and the lease of the processor currently running the job (crash recovery).
ALTER TABLE jobs ADD COLUMN IF NOT EXISTS csr_pem TEXT;
ALTER TABLE jobs ADD COLUMN IF NOT EXISTS reason TEXT;
ALTER TABLE jobs ADD COLUMN IF NOT EXISTS approved_by TEXT;
ALTER TABLE jobs ADD COLUMN IF NOT EXISTS lease_expires_at TEXT;

-- A job produces at most one certificate version, and a serial is never reused by an issuer:
-- both hold even if a job were processed twice after a crash.
ALTER TABLE certificate_versions ADD COLUMN IF NOT EXISTS issuer_id TEXT;
ALTER TABLE certificate_versions ADD COLUMN IF NOT EXISTS job_id TEXT;
CREATE UNIQUE INDEX IF NOT EXISTS uq_certificate_versions_job ON certificate_versions(job_id);
CREATE UNIQUE INDEX IF NOT EXISTS uq_certificate_versions_serial ON certificate_versions(issuer_id, serial_number);

-- One notification per (certificate, event, threshold, version): the renewal check may run
-- any number of times without repeating a warning.
ALTER TABLE notification_events ADD COLUMN IF NOT EXISTS dedup_key TEXT;
CREATE UNIQUE INDEX IF NOT EXISTS uq_notification_events_dedup ON notification_events(dedup_key);

CREATE INDEX IF NOT EXISTS idx_jobs_certificate ON jobs(certificate_id);
CREATE INDEX IF NOT EXISTS idx_notification_events_status ON notification_events(status);
