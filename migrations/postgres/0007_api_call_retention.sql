-- API-call retention (postgres dialect; mirrors the other 0007_api_call_retention.sql).
--
-- api_calls stays append-only except for retention pruning: a row may be deleted only when
-- it is older than the cutoff in the one-row api_call_retention table. That cutoff only
-- moves forward and never to less than 24 hours before now, so no statement can empty the
-- recent log. audit_events is untouched and stays fully append-only.

CREATE TABLE IF NOT EXISTS api_call_retention (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    cutoff TEXT NOT NULL
);
INSERT INTO api_call_retention (id, cutoff) VALUES (1, '1970-01-01T00:00:00.000Z')
    ON CONFLICT (id) DO NOTHING;

-- The seeded row is the only one: no inserts, deletes or truncation. The cutoff is a
-- canonical timestamp, moves only forward, and stays at least 24 hours old.
CREATE OR REPLACE FUNCTION certctl_api_call_retention_guard() RETURNS trigger AS $$
BEGIN
    IF TG_OP <> 'UPDATE' THEN
        RAISE EXCEPTION 'api_call_retention is append-only: it holds exactly one row';
    END IF;
    IF NEW.id IS DISTINCT FROM OLD.id
        OR NEW.cutoff !~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z$'
        OR NEW.cutoff < OLD.cutoff
        OR NEW.cutoff > to_char((now() AT TIME ZONE 'UTC') - interval '24 hours',
                                'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
    THEN
        RAISE EXCEPTION 'api_call_retention is append-only: the cutoff only moves forward and never past 24 hours ago';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS api_call_retention_guard ON api_call_retention;
CREATE TRIGGER api_call_retention_guard BEFORE INSERT OR UPDATE OR DELETE ON api_call_retention
    FOR EACH ROW EXECUTE FUNCTION certctl_api_call_retention_guard();
DROP TRIGGER IF EXISTS api_call_retention_no_truncate ON api_call_retention;
CREATE TRIGGER api_call_retention_no_truncate BEFORE TRUNCATE ON api_call_retention
    FOR EACH STATEMENT EXECUTE FUNCTION certctl_refuse_change();

-- Deleting an api_calls row is refused unless it is older than the cutoff (a missing
-- cutoff row refuses everything). Updates and TRUNCATE stay refused as before.
CREATE OR REPLACE FUNCTION certctl_api_calls_prune_only() RETURNS trigger AS $$
BEGIN
    IF OLD.timestamp < COALESCE((SELECT cutoff FROM api_call_retention WHERE id = 1), '') THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'api_calls is append-only (only rows older than the retention cutoff may be pruned)';
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS api_calls_append_only ON api_calls;
DROP TRIGGER IF EXISTS api_calls_no_update ON api_calls;
CREATE TRIGGER api_calls_no_update BEFORE UPDATE ON api_calls
    FOR EACH ROW EXECUTE FUNCTION certctl_refuse_change();
DROP TRIGGER IF EXISTS api_calls_no_delete ON api_calls;
CREATE TRIGGER api_calls_no_delete BEFORE DELETE ON api_calls
    FOR EACH ROW EXECUTE FUNCTION certctl_api_calls_prune_only();
