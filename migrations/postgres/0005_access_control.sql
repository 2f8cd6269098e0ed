-- Access control: API keys carry a role, may expire, are revoked (never deleted, so the
-- audit trail keeps naming them) and rotated. Names are unique among live keys only.
-- Agents can be retired: the record stays, its keys die.
ALTER TABLE api_keys ADD COLUMN IF NOT EXISTS role TEXT;
UPDATE api_keys SET role = CASE WHEN agent_id IS NOT NULL THEN 'agent' WHEN admin THEN 'admin' ELSE 'operator' END
WHERE role IS NULL;
ALTER TABLE api_keys ALTER COLUMN role SET NOT NULL;
ALTER TABLE api_keys DROP CONSTRAINT IF EXISTS api_keys_role_check;
ALTER TABLE api_keys ADD CONSTRAINT api_keys_role_check CHECK (role IN ('admin', 'operator', 'viewer', 'agent'));
ALTER TABLE api_keys ALTER COLUMN admin SET DEFAULT FALSE;
ALTER TABLE api_keys ADD COLUMN IF NOT EXISTS created_by TEXT;
ALTER TABLE api_keys ADD COLUMN IF NOT EXISTS expires_at TEXT;
ALTER TABLE api_keys ADD COLUMN IF NOT EXISTS last_used_at TEXT;
ALTER TABLE api_keys ADD COLUMN IF NOT EXISTS rotated_at TEXT;
ALTER TABLE api_keys ADD COLUMN IF NOT EXISTS revoked_at TEXT;
ALTER TABLE api_keys DROP CONSTRAINT IF EXISTS api_keys_name_key;
CREATE UNIQUE INDEX IF NOT EXISTS idx_api_keys_live_name ON api_keys(name) WHERE revoked_at IS NULL;
CREATE INDEX IF NOT EXISTS idx_api_keys_agent ON api_keys(agent_id);

ALTER TABLE agents ADD COLUMN IF NOT EXISTS retired_at TEXT;
