-- API-call retention (sqlite dialect; mirrors the other 0007_api_call_retention.sql).
--
-- api_calls stays append-only except for retention pruning: a row may be deleted only when
-- it is older than the cutoff in the one-row api_call_retention table. That cutoff only
-- moves forward and never to less than 24 hours before now, so no statement can empty the
-- recent log. audit_events is untouched and stays fully append-only.

CREATE TABLE IF NOT EXISTS api_call_retention (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    cutoff TEXT NOT NULL
);
INSERT OR IGNORE INTO api_call_retention (id, cutoff) VALUES (1, '1970-01-01T00:00:00.000Z');

-- The seeded row is the only one: no inserts (INSERT OR REPLACE included), no deletes.
CREATE TRIGGER IF NOT EXISTS api_call_retention_no_insert BEFORE INSERT ON api_call_retention
BEGIN
    SELECT RAISE(ABORT, 'api_call_retention is append-only: it holds exactly one row');
END;
CREATE TRIGGER IF NOT EXISTS api_call_retention_no_delete BEFORE DELETE ON api_call_retention
BEGIN
    SELECT RAISE(ABORT, 'api_call_retention is append-only: it holds exactly one row');
END;
-- The cutoff is a canonical timestamp, moves only forward, and stays at least 24 hours old.
CREATE TRIGGER IF NOT EXISTS api_call_retention_forward_only BEFORE UPDATE ON api_call_retention
WHEN NEW.id IS NOT OLD.id
    OR NEW.cutoff NOT GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9]Z'
    OR NEW.cutoff < OLD.cutoff
    OR NEW.cutoff > strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-24 hours')
BEGIN
    SELECT RAISE(ABORT, 'api_call_retention is append-only: the cutoff only moves forward and never past 24 hours ago');
END;

-- Deleting an api_calls row is refused unless it is older than the cutoff (a missing
-- cutoff row refuses everything).
DROP TRIGGER IF EXISTS api_calls_no_delete;
CREATE TRIGGER api_calls_no_delete BEFORE DELETE ON api_calls
WHEN OLD.timestamp >= COALESCE((SELECT cutoff FROM api_call_retention WHERE id = 1), '')
BEGIN
    SELECT RAISE(ABORT, 'api_calls is append-only (only rows older than the retention cutoff may be pruned)');
END;
