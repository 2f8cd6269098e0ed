-- Encryption at rest of connector-config secrets (postgres dialect; mirrors the other
-- 0006_config_encryption.sql).

-- At most one row: the installation's PBKDF2 salt and a key check (a known plaintext
-- sealed under the derived key), so a wrong CERTCTL_CONFIG_ENCRYPTION_KEY is refused at
-- start. Its presence means the database holds encrypted values.
CREATE TABLE IF NOT EXISTS config_encryption (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    kdf TEXT NOT NULL,
    iterations BIGINT NOT NULL,
    salt TEXT NOT NULL,
    key_check TEXT NOT NULL,
    created_at TEXT NOT NULL
);
