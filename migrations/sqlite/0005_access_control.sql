-- Access control: API keys carry a role, may expire, are revoked (never deleted, so the
-- audit trail keeps naming them) and rotated. Names are unique among live keys only.
-- Agents can be retired: the record stays, its keys die.
CREATE TABLE api_keys_v2 (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'viewer', 'agent')),
    agent_id TEXT REFERENCES agents(id),
    created_at TEXT NOT NULL,
    created_by TEXT,
    expires_at TEXT,
    last_used_at TEXT,
    rotated_at TEXT,
    revoked_at TEXT
);
INSERT INTO api_keys_v2 (id, name, key_hash, role, agent_id, created_at)
SELECT id, name, key_hash,
       CASE WHEN agent_id IS NOT NULL THEN 'agent' WHEN admin <> 0 THEN 'admin' ELSE 'operator' END,
       agent_id, created_at
FROM api_keys;
DROP TABLE api_keys;
ALTER TABLE api_keys_v2 RENAME TO api_keys;
CREATE UNIQUE INDEX IF NOT EXISTS idx_api_keys_live_name ON api_keys(name) WHERE revoked_at IS NULL;
CREATE INDEX IF NOT EXISTS idx_api_keys_agent ON api_keys(agent_id);

ALTER TABLE agents ADD COLUMN retired_at TEXT;
