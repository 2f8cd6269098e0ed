//! Storage: one sqlx pool over SQLite (default) or PostgreSQL, migrations, and one
//! repository module per aggregate.
//!
//! The `Any` driver lets one code path serve both backends; the few dialect differences
//! (placeholders, booleans) live in [`sql`]. Schema lives in `migrations/{sqlite,postgres}`.

pub mod agents;
pub mod api_calls;
pub mod api_keys;
pub mod audit;
pub mod certificates;
pub mod config_encryption;
pub mod crl_cache;
pub mod jobs;
pub mod notifications;
pub mod ocsp_responders;
pub mod records;
pub mod revocations;
pub mod sql;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, ConnectOptions as _, Executor as _};

pub use sql::Dialect;

/// Why a storage operation failed, in terms the API can map to a status.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// No row with that id.
    #[error("{resource} {id} not found")]
    NotFound {
        /// Singular resource name.
        resource: String,
        /// The id looked up.
        id: String,
    },
    /// A uniqueness or reference constraint refused the change.
    #[error("{0}")]
    Conflict(String),
    /// The database cannot be reached (down, restarting, pool exhausted).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The database refused a change to an append-only table.
    #[error("append-only table: {0}")]
    AppendOnly(String),
    /// Anything else the database reported; a bug or a broken schema.
    #[error("database error: {0}")]
    Database(String),
    /// A stored value could not be decoded (e.g. malformed JSON in a JSON column).
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        use sqlx::error::ErrorKind;
        match e {
            sqlx::Error::Database(db) => {
                let msg = db.message().to_owned();
                if msg.contains("append-only") {
                    return StoreError::AppendOnly(msg);
                }
                match db.kind() {
                    ErrorKind::UniqueViolation => {
                        StoreError::Conflict(format!("already exists ({msg})"))
                    }
                    ErrorKind::ForeignKeyViolation => {
                        StoreError::Conflict(format!("still referenced by other records ({msg})"))
                    }
                    _ if is_connection_class(db.as_ref()) => StoreError::Unavailable(msg),
                    _ => StoreError::Database(msg),
                }
            }
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::Protocol(_) => StoreError::Unavailable(e.to_string()),
            other => StoreError::Database(other.to_string()),
        }
    }
}

/// PostgreSQL SQLSTATE class 08 (connection exception) and 57P (operator intervention,
/// e.g. the server shutting down) mean "unavailable", not "bug".
fn is_connection_class(db: &dyn sqlx::error::DatabaseError) -> bool {
    db.code()
        .is_some_and(|c| c.starts_with("08") || c.starts_with("57P"))
}

/// The shared handle every repository works through.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    dialect: Dialect,
    /// Which channels new notifications fan out to (set once the notifiers are configured).
    routing: std::sync::Arc<std::sync::RwLock<std::sync::Arc<notifications::Routing>>>,
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

/// The SQLite URL for the default database file inside the data dir.
pub fn default_sqlite_url(data_dir: &Path) -> String {
    format!(
        "sqlite://{}?mode=rwc",
        data_dir.join("certctl.db").display()
    )
}

impl Store {
    /// Connects (creating a SQLite file if needed) and brings the schema up to date.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let dialect = Dialect::from_url(url).ok_or_else(|| {
            StoreError::Database(format!(
                "unsupported database URL \"{}\": use sqlite://… or postgres://…",
                redact(url)
            ))
        })?;
        let options = AnyConnectOptions::from_str(url)
            .map_err(|e| StoreError::Database(format!("bad database URL: {e}")))?
            .log_statements(tracing::log::LevelFilter::Trace)
            .log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_secs(1));
        let max = match dialect {
            Dialect::Sqlite => 8,
            Dialect::Postgres => 16,
        };
        let pool = AnyPoolOptions::new()
            .max_connections(max)
            .acquire_timeout(Duration::from_secs(2))
            .test_before_acquire(true)
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if dialect == Dialect::Sqlite {
                        conn.execute("PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;")
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        if dialect == Dialect::Sqlite {
            pool.execute("PRAGMA journal_mode = WAL;").await?;
        }
        let store = Self {
            pool,
            dialect,
            routing: Default::default(),
        };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let migrator = match self.dialect {
            Dialect::Sqlite => &SQLITE_MIGRATIONS,
            Dialect::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator
            .run(&self.pool)
            .await
            .map_err(|e| StoreError::Database(format!("migration failed: {e}")))
    }

    /// Which backend this is.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The pool, for repositories.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Starts a transaction that will write. On SQLite it takes the write lock up front
    /// (`BEGIN IMMEDIATE`): a deferred transaction that reads and then writes cannot wait
    /// for a concurrent writer and fails at once with "database is locked", whereas
    /// `BEGIN IMMEDIATE` waits for the lock under `busy_timeout`.
    pub async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
        match self.dialect {
            Dialect::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Dialect::Postgres => self.pool.begin().await,
        }
    }

    /// Readiness probe: a trivial query that must answer within `budget`.
    pub async fn ping(&self, budget: Duration) -> Result<(), StoreError> {
        match tokio::time::timeout(budget, sqlx::query("SELECT 1").execute(&self.pool)).await {
            Ok(result) => result.map(|_| ()).map_err(StoreError::from),
            Err(_) => Err(StoreError::Unavailable(format!(
                "no answer within {} ms",
                budget.as_millis()
            ))),
        }
    }

    /// Sets the channels new notifications fan out to (every clone of this store sees it).
    pub fn set_notification_routing(&self, routing: notifications::Routing) {
        let routing = std::sync::Arc::new(routing);
        match self.routing.write() {
            Ok(mut guard) => *guard = routing,
            Err(poisoned) => *poisoned.into_inner() = routing,
        }
    }

    /// The channels new notifications fan out to.
    pub fn notification_routing(&self) -> std::sync::Arc<notifications::Routing> {
        match self.routing.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Closes the pool, waiting for connections to be returned.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Hides a password in a database URL before it reaches a log or an error message.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let creds = &url[scheme_end + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:****{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn redact_hides_passwords_only() {
        assert_eq!(
            super::redact("postgres://u:secret@h/db"),
            "postgres://u:****@h/db"
        );
        assert_eq!(super::redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(super::redact("sqlite://x.db"), "sqlite://x.db");
    }
}
