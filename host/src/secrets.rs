//! Secrets inside connector configs (issuers' and targets' `config`): which keys are secret,
//! how they are encrypted at rest, masked in every answer and audit event, and revealed to
//! the code that needs them.
//!
//! - **Which keys.** A built-in connector lists its own (the ACME issuer's `eab_hmac_key`,
//!   see [`crate::domain::issuer::secret_config_fields`]); a plugin marks top-level
//!   properties of its config JSON Schema with `"writeOnly": true` or `"x-secret": true`
//!   ([`schema_secret_fields`]).
//! - **At rest.** With `CERTCTL_CONFIG_ENCRYPTION_KEY` set, each secret value is serialised
//!   as JSON and sealed with AES-256-GCM (ring) under a key derived by PBKDF2-HMAC-SHA256
//!   from the passphrase and a random per-installation salt; a fresh 96-bit nonce per
//!   value. The stored form replaces the value in the config JSON:
//!   `"enc:v1:<base64(nonce ‖ ciphertext ‖ tag)>"`. The resource, its id and the key are
//!   the associated data, so a ciphertext copied to another key or record does not open.
//!   Without the key, secrets are stored in clear (the server says so at start).
//! - **Out.** Answers and audit details show `"***"` ([`MASK`]) for every secret value;
//!   a `"***"` sent back on update keeps the stored value.
//! - **In use.** Internal consumers (the issuer registry, the agent's work) call
//!   [`ConfigSecrets::reveal`] — the one way to the plaintext.
//!
//! What is not here: the SQL of the key-check row (`store/config_encryption.rs`), the
//! I/O at start ([`startup`]), and finding a plugin's schema (`plugins.rs`).

pub mod startup;

use std::num::NonZeroU32;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom as _, SystemRandom};
use serde_json::{Map, Value, json};

/// What every answer and audit event shows instead of a secret value; sent back on update,
/// it means "keep the stored value".
pub const MASK: &str = "***";

/// Prefix of an encrypted value in a stored config (version 1: AES-256-GCM, PBKDF2 key).
pub const SEALED_PREFIX: &str = "enc:v1:";

/// The field of issuers and targets that holds the connector config.
pub const CONFIG_FIELD: &str = "config";

/// PBKDF2-HMAC-SHA256 iterations for new installations (OWASP 2023 guidance). The count
/// is stored with the salt, so raising it later does not lock out existing databases.
pub const KDF_ITERATIONS: u32 = 600_000;

/// Name of the key-derivation function recorded with the salt.
pub const KDF_NAME: &str = "pbkdf2-hmac-sha256";

/// Shortest passphrase accepted: PBKDF2 slows guessing down, it cannot save a short key.
pub const MIN_KEY_CHARS: usize = 16;

/// The environment variable the key comes from (named in every message about it).
pub const KEY_VARIABLE: &str = "CERTCTL_CONFIG_ENCRYPTION_KEY";

const SALT_LEN: usize = 16;
const KEY_CHECK_PLAINTEXT: &str = "certctl config encryption key check";
const KEY_CHECK_AAD: &[u8] = b"certctl/key-check/v1";

/// Why a secret could not be sealed, revealed, or the key not set up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SecretsError {
    /// The configured passphrase is too short to be a key.
    #[error("{KEY_VARIABLE} must be at least {MIN_KEY_CHARS} characters long")]
    KeyTooShort,
    /// The configured key does not open the key check stored in the database.
    #[error(
        "{KEY_VARIABLE} does not match the key this database's connector secrets were encrypted with (the stored key check does not decrypt); start with the original key"
    )]
    WrongKey,
    /// The database holds encrypted secrets but no key is configured.
    #[error(
        "this database holds connector secrets encrypted under {KEY_VARIABLE}, but {KEY_VARIABLE} is not set; start with the same key"
    )]
    KeyMissing,
    /// The stored salt, iteration count or key check is malformed.
    #[error("stored config-encryption parameters are unusable: {0}")]
    CorruptKeyRecord(String),
    /// A stored encrypted value does not decrypt (tampered with, or moved from elsewhere).
    #[error(
        "{field}: the encrypted value does not decrypt (altered, or copied from another field or record)"
    )]
    Undecryptable {
        /// `config.<key>`.
        field: String,
    },
    /// A stored value is encrypted but this server has no key.
    #[error("{field}: the value is encrypted but {KEY_VARIABLE} is not set")]
    NoKey {
        /// `config.<key>`.
        field: String,
    },
    /// The operating system's random generator failed.
    #[error("the system random generator failed")]
    Random,
    /// A value sent by a caller uses the prefix reserved for encrypted values.
    #[error("{field}: values starting with \"{SEALED_PREFIX}\" are reserved for encrypted secrets")]
    ReservedPrefix {
        /// `config.<key>`.
        field: String,
    },
    /// `"***"` was sent for a secret that has no stored value to keep.
    #[error("{field}: \"{MASK}\" keeps the stored secret, but none is stored; send the value")]
    NothingToKeep {
        /// `config.<key>`.
        field: String,
    },
}

impl SecretsError {
    /// Whether the caller's input is at fault (a 400), rather than the server's state.
    pub fn is_input_error(&self) -> bool {
        matches!(
            self,
            SecretsError::ReservedPrefix { .. } | SecretsError::NothingToKeep { .. }
        )
    }
}

fn field_name(key: &str) -> String {
    format!("{CONFIG_FIELD}.{key}")
}

/// The record a config belongs to; bound into every ciphertext as associated data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfigOwner<'a> {
    /// Singular resource name (`issuer`, `target`).
    pub resource: &'a str,
    /// The record's id.
    pub id: &'a str,
}

impl ConfigOwner<'_> {
    fn aad(&self, key: &str) -> Vec<u8> {
        format!("certctl/config/v1\0{}\0{}\0{key}", self.resource, self.id).into_bytes()
    }
}

/// What the database keeps so the key can be re-derived and recognised at every start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    /// Key-derivation function ([`KDF_NAME`]).
    pub kdf: String,
    /// PBKDF2 iterations.
    pub iterations: u32,
    /// Base64 of the random per-installation salt.
    pub salt: String,
    /// A known plaintext sealed under the derived key (`enc:v1:…`).
    pub key_check: String,
}

/// AES-256-GCM under the installation's derived key.
pub struct ConfigCipher {
    key: LessSafeKey,
    rng: SystemRandom,
}

impl std::fmt::Debug for ConfigCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigCipher").finish_non_exhaustive()
    }
}

impl ConfigCipher {
    /// Derives the key from a passphrase and salt (PBKDF2-HMAC-SHA256).
    pub fn derive(passphrase: &str, salt: &[u8], iterations: NonZeroU32) -> Self {
        let mut key = [0u8; 32];
        ring::pbkdf2::derive(
            ring::pbkdf2::PBKDF2_HMAC_SHA256,
            iterations,
            salt,
            passphrase.as_bytes(),
            &mut key,
        );
        let unbound = UnboundKey::new(&AES_256_GCM, &key);
        key.fill(0);
        Self {
            // 32 bytes is AES-256-GCM's key length, so this cannot fail.
            key: LessSafeKey::new(unbound.unwrap_or_else(|_| unreachable!("32-byte key"))),
            rng: SystemRandom::new(),
        }
    }

    /// A new installation's key: a random salt, the derived key and the record to store.
    pub fn create(passphrase: &str) -> Result<(Self, KeyRecord), SecretsError> {
        check_passphrase(passphrase)?;
        let mut salt = [0u8; SALT_LEN];
        SystemRandom::new()
            .fill(&mut salt)
            .map_err(|_| SecretsError::Random)?;
        let iterations = NonZeroU32::new(KDF_ITERATIONS).unwrap_or(NonZeroU32::MIN);
        let cipher = Self::derive(passphrase, &salt, iterations);
        let key_check = cipher.encrypt(&json!(KEY_CHECK_PLAINTEXT), KEY_CHECK_AAD)?;
        let record = KeyRecord {
            kdf: KDF_NAME.to_owned(),
            iterations: iterations.get(),
            salt: STANDARD.encode(salt),
            key_check,
        };
        Ok((cipher, record))
    }

    /// The key of an existing installation, refused unless it opens the stored key check.
    pub fn open(passphrase: &str, record: &KeyRecord) -> Result<Self, SecretsError> {
        check_passphrase(passphrase)?;
        if record.kdf != KDF_NAME {
            return Err(SecretsError::CorruptKeyRecord(format!(
                "unknown key derivation \"{}\"",
                record.kdf
            )));
        }
        let iterations = NonZeroU32::new(record.iterations)
            .ok_or_else(|| SecretsError::CorruptKeyRecord("zero iterations".into()))?;
        let salt = STANDARD
            .decode(&record.salt)
            .map_err(|e| SecretsError::CorruptKeyRecord(format!("salt: {e}")))?;
        let cipher = Self::derive(passphrase, &salt, iterations);
        match cipher.decrypt(&record.key_check, KEY_CHECK_AAD) {
            Some(v) if v == json!(KEY_CHECK_PLAINTEXT) => Ok(cipher),
            _ => Err(SecretsError::WrongKey),
        }
    }

    /// Seals one JSON value: `enc:v1:<base64(nonce ‖ ciphertext ‖ tag)>`.
    pub fn encrypt(&self, value: &Value, aad: &[u8]) -> Result<String, SecretsError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng
            .fill(&mut nonce)
            .map_err(|_| SecretsError::Random)?;
        let mut data = value.to_string().into_bytes();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut data,
            )
            .map_err(|_| SecretsError::Random)?;
        let mut out = Vec::with_capacity(NONCE_LEN + data.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&data);
        Ok(format!("{SEALED_PREFIX}{}", STANDARD.encode(out)))
    }

    /// Opens a value sealed by [`ConfigCipher::encrypt`]; `None` when it is not one, was
    /// altered, was sealed under another key, or with other associated data.
    pub fn decrypt(&self, sealed: &str, aad: &[u8]) -> Option<Value> {
        let raw = STANDARD.decode(sealed.strip_prefix(SEALED_PREFIX)?).ok()?;
        if raw.len() < NONCE_LEN {
            return None;
        }
        let (nonce, rest) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut data = rest.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(aad), &mut data)
            .ok()?;
        serde_json::from_slice(plain).ok()
    }
}

fn check_passphrase(passphrase: &str) -> Result<(), SecretsError> {
    if passphrase.chars().count() < MIN_KEY_CHARS {
        return Err(SecretsError::KeyTooShort);
    }
    Ok(())
}

/// What the server must do with the key-check row at start, decided from the configured
/// key and the stored row.
#[derive(Debug)]
pub enum KeySetup {
    /// No key and no encrypted data: secrets are stored in clear (warn about it).
    Clear,
    /// First start with a key: store this record (unless another replica was first).
    Create(ConfigCipher, KeyRecord),
    /// The key opens the stored record.
    Open(ConfigCipher),
}

/// Decides [`KeySetup`]; a wrong key or a missing one for an encrypted database is an error.
pub fn setup(key: Option<&str>, stored: Option<&KeyRecord>) -> Result<KeySetup, SecretsError> {
    match (key.filter(|k| !k.is_empty()), stored) {
        (None, None) => Ok(KeySetup::Clear),
        (None, Some(_)) => Err(SecretsError::KeyMissing),
        (Some(key), None) => {
            let (cipher, record) = ConfigCipher::create(key)?;
            Ok(KeySetup::Create(cipher, record))
        }
        (Some(key), Some(record)) => ConfigCipher::open(key, record).map(KeySetup::Open),
    }
}

/// A connector config: the JSON object of an issuer's or target's `config`.
pub type Config = Map<String, Value>;

/// A record's config before a write, as stored and in plaintext.
#[derive(Debug, Clone, Copy)]
pub struct Previous<'a> {
    /// The stored form (sealed values as `enc:v1:…`).
    pub stored: &'a Config,
    /// Its plaintext ([`ConfigSecrets::reveal`]).
    pub plain: &'a Config,
}

/// The server's way to seal and reveal connector configs, with or without a key.
#[derive(Debug, Default)]
pub struct ConfigSecrets {
    cipher: Option<ConfigCipher>,
}

impl ConfigSecrets {
    /// Secrets stored in clear (no key configured).
    pub fn clear() -> Self {
        Self { cipher: None }
    }

    /// Secrets encrypted under `cipher`.
    pub fn encrypted(cipher: ConfigCipher) -> Self {
        Self {
            cipher: Some(cipher),
        }
    }

    /// Whether new secret values are encrypted.
    pub fn encrypts(&self) -> bool {
        self.cipher.is_some()
    }

    /// The stored form of a plaintext config: each non-null secret value sealed (when a key
    /// is configured). With `previous` (the stored config and its plaintext), a secret whose
    /// plaintext did not change keeps its stored ciphertext, so sending a record back
    /// unchanged is no change.
    pub fn seal(
        &self,
        owner: ConfigOwner<'_>,
        plain: &Config,
        previous: Option<Previous<'_>>,
        secret: &[String],
    ) -> Result<Config, SecretsError> {
        check_reserved(plain)?;
        let Some(cipher) = &self.cipher else {
            return Ok(plain.clone());
        };
        let mut out = plain.clone();
        for (key, value) in out.iter_mut() {
            if value.is_null() || !secret.iter().any(|s| s == key) {
                continue;
            }
            let kept = previous.and_then(|previous| {
                let stored = previous.stored.get(key)?.as_str()?;
                (stored.starts_with(SEALED_PREFIX) && previous.plain.get(key) == Some(value))
                    .then(|| stored.to_owned())
            });
            *value = Value::String(match kept {
                Some(stored) => stored,
                None => cipher.encrypt(value, &owner.aad(key))?,
            });
        }
        Ok(out)
    }

    /// The plaintext of a stored config: every sealed value opened. This is the only way
    /// internal consumers (issuer connectors, the agent's work) get at secret values.
    pub fn reveal(
        &self,
        owner: ConfigOwner<'_>,
        stored: &Map<String, Value>,
    ) -> Result<Map<String, Value>, SecretsError> {
        let mut out = stored.clone();
        for (key, value) in out.iter_mut() {
            let Some(sealed) = value.as_str().filter(|s| s.starts_with(SEALED_PREFIX)) else {
                continue;
            };
            let cipher = self.cipher.as_ref().ok_or_else(|| SecretsError::NoKey {
                field: field_name(key),
            })?;
            *value = cipher.decrypt(sealed, &owner.aad(key)).ok_or_else(|| {
                SecretsError::Undecryptable {
                    field: field_name(key),
                }
            })?;
        }
        Ok(out)
    }

    /// [`ConfigSecrets::reveal`] for a config held as a JSON value (non-objects pass as is).
    pub fn reveal_value(
        &self,
        owner: ConfigOwner<'_>,
        stored: &Value,
    ) -> Result<Value, SecretsError> {
        match stored {
            Value::Object(map) => self.reveal(owner, map).map(Value::Object),
            other => Ok(other.clone()),
        }
    }

    /// Whether a stored config holds secrets that are not encrypted although a key is
    /// configured (stored before the key was set): they are sealed on their next write.
    pub fn needs_sealing(&self, stored: &Map<String, Value>, secret: &[String]) -> bool {
        self.cipher.is_some()
            && secret.iter().any(|key| {
                stored
                    .get(key)
                    .is_some_and(|v| !v.is_null() && !is_sealed(v))
            })
    }
}

fn is_sealed(value: &Value) -> bool {
    value.as_str().is_some_and(|s| s.starts_with(SEALED_PREFIX))
}

/// Refuses caller-supplied top-level values that look encrypted (only the server writes
/// those, so a reveal never meets a value it did not seal).
pub fn check_reserved(config: &Map<String, Value>) -> Result<(), SecretsError> {
    match config.iter().find(|(_, v)| is_sealed(v)) {
        Some((key, _)) => Err(SecretsError::ReservedPrefix {
            field: field_name(key),
        }),
        None => Ok(()),
    }
}

/// Replaces each secret `"***"` in a config sent by a caller with the value it stands for
/// (from `current`, the stored record's plaintext config); refused when there is none.
pub fn unmask(
    config: &Map<String, Value>,
    current: Option<&Map<String, Value>>,
    secret: &[String],
) -> Result<Map<String, Value>, SecretsError> {
    let mut out = config.clone();
    for (key, value) in out.iter_mut() {
        if value.as_str() != Some(MASK) || !secret.iter().any(|s| s == key) {
            continue;
        }
        match current.and_then(|c| c.get(key)).filter(|v| !v.is_null()) {
            Some(kept) => *value = kept.clone(),
            None => {
                return Err(SecretsError::NothingToKeep {
                    field: field_name(key),
                });
            }
        }
    }
    Ok(out)
}

fn masked(key: &str, value: &Value, secret: &[String]) -> Value {
    if !value.is_null() && (is_sealed(value) || secret.iter().any(|s| s == key)) {
        Value::String(MASK.to_owned())
    } else {
        value.clone()
    }
}

/// A config as answers and audit events show it: secret (and any sealed) values `"***"`.
pub fn redact(config: &Value, secret: &[String]) -> Value {
    match config {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), masked(k, v, secret)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// What changed between two configs, key by key, as `{"key": {"from": …, "to": …}}`
/// (absent is `null`), secret values masked: the audit trail names a changed secret
/// without its value.
pub fn redacted_diff(old: &Value, new: &Value, secret: &[String]) -> Value {
    let empty = Map::new();
    let old = old.as_object().unwrap_or(&empty);
    let new = new.as_object().unwrap_or(&empty);
    let mut keys: Vec<&String> = old.keys().chain(new.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut out = Map::new();
    for key in keys {
        let (from, to) = (
            old.get(key).unwrap_or(&Value::Null),
            new.get(key).unwrap_or(&Value::Null),
        );
        if from != to {
            out.insert(
                key.clone(),
                json!({"from": masked(key, from, secret), "to": masked(key, to, secret)}),
            );
        }
    }
    Value::Object(out)
}

/// The secret top-level properties of a plugin's config JSON Schema: those marked
/// `"writeOnly": true` or `"x-secret": true`, sorted.
pub fn schema_secret_fields(schema: &Value) -> Vec<String> {
    let mut out: Vec<String> = schema
        .get("properties")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter(|(_, p)| {
            p.get("writeOnly") == Some(&Value::Bool(true))
                || p.get("x-secret") == Some(&Value::Bool(true))
        })
        .map(|(k, _)| k.clone())
        .collect();
    out.sort();
    out
}

/// The secret config keys of a connector: the built-in list for its type plus what its
/// plugin's schema marks (`plugin_schema`, when a plugin of that id is known).
pub fn secret_fields(
    resource: &str,
    connector_type: &str,
    plugin_schema: Option<&Value>,
) -> Vec<String> {
    let builtin: &[&str] = match resource {
        "issuers" | "issuer" => crate::domain::issuer::secret_config_fields(connector_type),
        _ => &[],
    };
    let mut out: Vec<String> = builtin.iter().map(|s| (*s).to_owned()).collect();
    out.extend(plugin_schema.map(schema_secret_fields).unwrap_or_default());
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cipher() -> ConfigCipher {
        ConfigCipher::derive(
            "correct horse battery staple",
            b"0123456789abcdef",
            NonZeroU32::new(1).unwrap(),
        )
    }

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    const OWNER: ConfigOwner<'static> = ConfigOwner {
        resource: "issuer",
        id: "iss-a",
    };

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn round_trip_any_json_value_with_a_fresh_nonce_each_time() {
        let c = cipher();
        for v in [
            json!("s3cret"),
            json!(42),
            json!({"a": [1, true]}),
            json!(null),
        ] {
            let a = c.encrypt(&v, b"aad").unwrap();
            let b = c.encrypt(&v, b"aad").unwrap();
            assert!(a.starts_with(SEALED_PREFIX));
            assert_ne!(a, b, "random nonce per value");
            assert_eq!(c.decrypt(&a, b"aad"), Some(v));
        }
    }

    #[test]
    fn tampering_other_aad_and_other_keys_do_not_open() {
        let c = cipher();
        let sealed = c.encrypt(&json!("s3cret"), b"aad").unwrap();
        assert_eq!(c.decrypt(&sealed, b"other"), None);
        let other =
            ConfigCipher::derive("another passphrase!", b"0123456789abcdef", NonZeroU32::MIN);
        assert_eq!(other.decrypt(&sealed, b"aad"), None);
        let mut raw = STANDARD.decode(&sealed[SEALED_PREFIX.len()..]).unwrap();
        let last = raw.len() - 1;
        raw[last] ^= 1;
        let tampered = format!("{SEALED_PREFIX}{}", STANDARD.encode(raw));
        assert_eq!(c.decrypt(&tampered, b"aad"), None);
        assert_eq!(c.decrypt("enc:v1:!!", b"aad"), None);
        assert_eq!(c.decrypt("enc:v1:AAAA", b"aad"), None);
        assert_eq!(c.decrypt("plain", b"aad"), None);
    }

    #[test]
    fn setup_creates_opens_and_refuses() {
        assert!(matches!(setup(None, None), Ok(KeySetup::Clear)));
        assert!(matches!(setup(Some(""), None), Ok(KeySetup::Clear)));
        assert_eq!(
            setup(Some("short"), None).unwrap_err(),
            SecretsError::KeyTooShort
        );
        let KeySetup::Create(_, record) = setup(Some("a long enough passphrase"), None).unwrap()
        else {
            panic!("create");
        };
        assert_eq!(record.iterations, KDF_ITERATIONS);
        assert_eq!(STANDARD.decode(&record.salt).unwrap().len(), SALT_LEN);
        // Open with a cheap record of the same shape (the real count is slow in debug).
        let (_, cheap) = {
            let c = cipher();
            let check = c
                .encrypt(&json!(KEY_CHECK_PLAINTEXT), KEY_CHECK_AAD)
                .unwrap();
            (
                c,
                KeyRecord {
                    kdf: KDF_NAME.into(),
                    iterations: 1,
                    salt: STANDARD.encode(b"0123456789abcdef"),
                    key_check: check,
                },
            )
        };
        assert!(matches!(
            setup(Some("correct horse battery staple"), Some(&cheap)),
            Ok(KeySetup::Open(_))
        ));
        assert_eq!(
            setup(Some("the wrong passphrase!!"), Some(&cheap)).unwrap_err(),
            SecretsError::WrongKey
        );
        assert_eq!(
            setup(None, Some(&cheap)).unwrap_err(),
            SecretsError::KeyMissing
        );
        let bad = KeyRecord {
            iterations: 0,
            ..cheap.clone()
        };
        assert!(matches!(
            setup(Some("correct horse battery staple"), Some(&bad)),
            Err(SecretsError::CorruptKeyRecord(_))
        ));
        assert!(SecretsError::WrongKey.to_string().contains(KEY_VARIABLE));
        assert!(SecretsError::KeyMissing.to_string().contains(KEY_VARIABLE));
    }

    #[test]
    fn seal_encrypts_only_secret_values_and_reveal_opens_them() {
        let s = ConfigSecrets::encrypted(cipher());
        let secret = names(&["eab_hmac_key"]);
        let plain =
            obj(json!({"directory_url": "https://ca", "eab_hmac_key": "hmac", "eab_kid": "k"}));
        let stored = s.seal(OWNER, &plain, None, &secret).unwrap();
        assert_eq!(stored["directory_url"], "https://ca");
        assert_eq!(stored["eab_kid"], "k");
        assert!(is_sealed(&stored["eab_hmac_key"]));
        assert!(!stored["eab_hmac_key"].as_str().unwrap().contains("hmac"));
        assert_eq!(s.reveal(OWNER, &stored).unwrap(), plain);
        // Bound to the record and the key.
        let other = ConfigOwner {
            resource: "issuer",
            id: "iss-b",
        };
        assert!(matches!(
            s.reveal(other, &stored),
            Err(SecretsError::Undecryptable { field }) if field == "config.eab_hmac_key"
        ));
        let mut moved = stored.clone();
        moved.insert("eab_kid".into(), stored["eab_hmac_key"].clone());
        assert!(matches!(
            s.reveal(OWNER, &moved),
            Err(SecretsError::Undecryptable { field }) if field == "config.eab_kid"
        ));
        // Without a key: stored in clear, and an encrypted value cannot be revealed.
        let clear = ConfigSecrets::clear();
        assert_eq!(clear.seal(OWNER, &plain, None, &secret).unwrap(), plain);
        assert!(matches!(
            clear.reveal(OWNER, &stored),
            Err(SecretsError::NoKey { .. })
        ));
    }

    #[test]
    fn unchanged_secrets_keep_their_ciphertext_and_clear_ones_get_sealed() {
        let s = ConfigSecrets::encrypted(cipher());
        let secret = names(&["token"]);
        let plain = obj(json!({"token": "t1", "dir": "/a"}));
        let stored = s.seal(OWNER, &plain, None, &secret).unwrap();
        let again = s
            .seal(
                OWNER,
                &plain,
                Some(Previous {
                    stored: &stored,
                    plain: &plain,
                }),
                &secret,
            )
            .unwrap();
        assert_eq!(again, stored, "no change, same stored form");
        let changed = obj(json!({"token": "t2", "dir": "/a"}));
        let next = s
            .seal(
                OWNER,
                &changed,
                Some(Previous {
                    stored: &stored,
                    plain: &plain,
                }),
                &secret,
            )
            .unwrap();
        assert_ne!(next["token"], stored["token"]);
        // Stored in clear before the key was set: sealed on the next write.
        assert!(s.needs_sealing(&plain, &secret));
        assert!(!s.needs_sealing(&stored, &secret));
        let sealed = s
            .seal(
                OWNER,
                &plain,
                Some(Previous {
                    stored: &plain,
                    plain: &plain,
                }),
                &secret,
            )
            .unwrap();
        assert!(is_sealed(&sealed["token"]));
    }

    #[test]
    fn mask_keeps_the_stored_value_and_reserved_values_are_refused() {
        let secret = names(&["token"]);
        let current = obj(json!({"token": "t1"}));
        let sent = obj(json!({"token": "***", "dir": "***"}));
        assert_eq!(
            unmask(&sent, Some(&current), &secret).unwrap(),
            obj(json!({"token": "t1", "dir": "***"})),
            "only secret keys are masks"
        );
        assert_eq!(
            unmask(&sent, None, &secret).unwrap_err(),
            SecretsError::NothingToKeep {
                field: "config.token".into()
            }
        );
        let s = ConfigSecrets::clear();
        let err = s
            .seal(OWNER, &obj(json!({"dir": "enc:v1:AAAA"})), None, &secret)
            .unwrap_err();
        assert!(err.is_input_error(), "{err}");
    }

    #[test]
    fn redaction_and_diff_never_show_secret_values() {
        let secret = names(&["token"]);
        let shown = redact(
            &json!({"token": "t1", "dir": "/a", "other": "enc:v1:xyz", "unset": null}),
            &secret,
        );
        assert_eq!(
            shown,
            json!({"token": "***", "dir": "/a", "other": "***", "unset": null})
        );
        let diff = redacted_diff(
            &json!({"token": "t1", "dir": "/a", "same": 1}),
            &json!({"token": "t2", "dir": "/b", "same": 1, "new": true}),
            &secret,
        );
        assert_eq!(
            diff,
            json!({
                "dir": {"from": "/a", "to": "/b"},
                "new": {"from": null, "to": true},
                "token": {"from": "***", "to": "***"},
            })
        );
        assert!(!diff.to_string().contains("t1") && !diff.to_string().contains("t2"));
    }

    #[test]
    fn schemas_mark_secrets_with_write_only_or_x_secret() {
        let schema = json!({"type": "object", "properties": {
            "dir": {"type": "string"},
            "api_token": {"type": "string", "writeOnly": true},
            "password": {"type": "string", "x-secret": true},
            "public": {"type": "string", "writeOnly": false},
        }});
        assert_eq!(
            schema_secret_fields(&schema),
            names(&["api_token", "password"])
        );
        assert!(schema_secret_fields(&json!({})).is_empty());
        assert_eq!(
            secret_fields("issuers", "acme", None),
            names(&["eab_hmac", "eab_hmac_key"])
        );
        assert_eq!(
            secret_fields("targets", "template", Some(&schema)),
            names(&["api_token", "password"])
        );
        assert!(secret_fields("targets", "nginx", None).is_empty());
    }
}
