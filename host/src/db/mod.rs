//! The archive index in SQL: connection pools for SQLite (default) or PostgreSQL, migrations,
//! and units of work. The submodules hold the queries, written once for both dialects.

pub mod archive;
pub mod check;
pub mod count;
pub mod events;
pub mod forward;
pub mod index;
pub mod lifecycle;
pub mod qido;
pub mod query;
pub mod removals;
pub mod retrieve;
pub mod slides;
pub mod values;
pub mod worklist;

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{Any, AnyPool, Executor, Transaction};

pub use crate::config::SqliteSync;
use index::direct::{DirectError, DirectWriter};

/// A database failure.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot connect to the database: {0}")]
    Connect(#[source] sqlx::Error),
    #[error("cannot migrate the database: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("cannot create the database folder {0}: {1}")]
    Folder(String, #[source] std::io::Error),
    #[error("unsupported database URL `{0}`: use sqlite://... or postgres://...")]
    UnsupportedUrl(String),
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
}

/// The migrations of each dialect, embedded at build time: applied at start, and compared with
/// what the database has applied by `/ready`.
static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

/// Which SQL engine is behind the pools.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// One unit of work: a transaction that commits only when asked to.
pub type UnitOfWork = Transaction<'static, Any>;

/// A connection taken from the writers' pool and held across several units of work (the ingest
/// committer holds one through a burst of groups, sparing a trip through the pool per group).
pub type WriterConnection = sqlx::pool::PoolConnection<Any>;

/// Connection pools to the archive index.
#[derive(Clone, Debug)]
pub struct Database {
    backend: Backend,
    /// Pool for units of work. On SQLite a single connection: SQLite has one writer at a time,
    /// and queueing in the pool is far cheaper than retrying on SQLITE_BUSY.
    writer: AnyPool,
    /// Pool for read-only queries.
    reader: AnyPool,
    /// SQLite on a file: where, and how durable its commits are (for [`Database::direct_writer`]).
    sqlite_file: Option<(PathBuf, SqliteSync)>,
}

impl Database {
    /// Connects to `url` (creating a SQLite file and its folder when needed) and applies the
    /// migrations of its dialect.
    pub async fn connect(url: &str, max_connections: u32, sync: SqliteSync) -> Result<Self, DbError> {
        install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(DbError::UnsupportedUrl(url.to_owned()));
        };
        let db = match backend {
            Backend::Sqlite => {
                let url = sqlite_url(url)?;
                let writer = sqlite_pool(&url, 1, sync).await?;
                SQLITE_MIGRATIONS.run(&writer).await?;
                let reader = sqlite_pool(&url, max_connections.max(1), sync).await?;
                let sqlite_file = sqlite_path(&url).map(|path| (path, sync));
                Database { backend, writer, reader, sqlite_file }
            }
            Backend::Postgres => {
                // Units of work look rows up by key: each of their statements is planned once
                // per connection (a generic plan) rather than at every execution, as PostgreSQL
                // would for ingest's registering statement. Queries (ranges, patterns) keep
                // plans made for their values.
                let writer = postgres_pool(url, max_connections, Some("SET plan_cache_mode = force_generic_plan")).await?;
                POSTGRES_MIGRATIONS.run(&writer).await?;
                let reader = postgres_pool(url, max_connections, None).await?;
                Database { backend, writer, reader, sqlite_file: None }
            }
        };
        Ok(db)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The versions of this binary's migrations that the database has not applied: not empty
    /// when another host has not migrated it yet, or it was restored from an older backup.
    pub async fn pending_migrations(&self) -> Result<Vec<i64>, DbError> {
        let applied: Vec<i64> =
            sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success").fetch_all(&self.reader).await?;
        let embedded = match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        Ok(embedded
            .iter()
            .filter(|m| !m.migration_type.is_down_migration() && !applied.contains(&m.version))
            .map(|m| m.version)
            .collect())
    }

    /// Pool for read-only queries.
    pub fn reader(&self) -> &AnyPool {
        &self.reader
    }

    /// Starts a unit of work. On SQLite it takes the write lock at once (`BEGIN IMMEDIATE`) so
    /// that a read-then-write never fails half way on a lock upgrade.
    pub async fn begin(&self) -> Result<UnitOfWork, DbError> {
        Ok(match self.backend {
            Backend::Sqlite => self.writer.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.writer.begin().await?,
        })
    }

    /// Takes a writer connection from the pool, to run several units of work on it in turn
    /// ([`Database::begin_on`]); other writers wait until it is dropped.
    pub async fn writer_connection(&self) -> Result<WriterConnection, DbError> {
        Ok(self.writer.acquire().await?)
    }

    /// Starts a unit of work on a held writer connection, as [`Database::begin`] does.
    pub async fn begin_on<'c>(&self, conn: &'c mut WriterConnection) -> Result<Transaction<'c, Any>, DbError> {
        Ok(match self.backend {
            Backend::Sqlite => sqlx::Connection::begin_with(&mut **conn, "BEGIN IMMEDIATE").await?,
            Backend::Postgres => sqlx::Connection::begin(&mut **conn).await?,
        })
    }

    /// SQLite on a file: opens the ingest committer's own connection ([`DirectWriter`]); `None`
    /// on PostgreSQL or an in-memory database. Blocking.
    pub fn direct_writer(&self) -> Option<Result<DirectWriter, DirectError>> {
        self.sqlite_file.as_ref().map(|(path, sync)| DirectWriter::open(path, *sync))
    }

    /// True once [`Database::close`] was called: the server is stopping.
    pub fn is_closed(&self) -> bool {
        self.writer.is_closed()
    }

    /// Closes the pools, waiting for connections in use to be returned.
    pub async fn close(&self) {
        self.writer.close().await;
        self.reader.close().await;
    }
}

/// The file of a SQLite URL; `None` for an in-memory database.
/// The file of a `sqlite:` URL (none for another URL, or an in-memory database).
pub fn sqlite_path(url: &str) -> Option<PathBuf> {
    if !url.starts_with("sqlite:") {
        return None;
    }
    let path = url.trim_start_matches("sqlite://").trim_start_matches("sqlite:");
    let path = path.split('?').next().unwrap_or_default();
    (!path.is_empty() && !path.starts_with(":memory:")).then(|| PathBuf::from(path))
}

/// Adds `mode=rwc` so that the file is created, and creates its folder.
fn sqlite_url(url: &str) -> Result<String, DbError> {
    if let Some(path) = sqlite_path(url)
        && let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
    {
        std::fs::create_dir_all(parent).map_err(|e| DbError::Folder(parent.display().to_string(), e))?;
    }
    Ok(if url.contains("mode=") {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    })
}

/// A PostgreSQL pool of `max` connections (at least two), each set up with `setup` when given.
async fn postgres_pool(url: &str, max: u32, setup: Option<&'static str>) -> Result<AnyPool, DbError> {
    AnyPoolOptions::new()
        .test_before_acquire(false)
        .max_connections(max.max(2))
        .acquire_timeout(Duration::from_secs(30))
        .after_connect(move |conn, _meta| {
            Box::pin(async move {
                if let Some(setup) = setup {
                    conn.execute(setup).await?;
                }
                Ok(())
            })
        })
        .connect(url)
        .await
        .map_err(DbError::Connect)
}

async fn sqlite_pool(url: &str, max: u32, sync: SqliteSync) -> Result<AnyPool, DbError> {
    let pragmas = match sync {
        SqliteSync::Full => {
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 30000;"
        }
        SqliteSync::Normal => {
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 30000;"
        }
    };
    AnyPoolOptions::new()
        .test_before_acquire(false)
        .max_connections(max)
        .min_connections(1)
        .acquire_timeout(Duration::from_secs(30))
        .after_connect(move |conn, _meta| {
            Box::pin(async move {
                conn.execute(pragmas).await?;
                Ok(())
            })
        })
        .connect(url)
        .await
        .map_err(DbError::Connect)
}

/// Now, as the text timestamps are stored in (RFC 3339, UTC, milliseconds): sortable as text.
pub fn now_text() -> String {
    text_in(std::time::Duration::ZERO)
}

/// The time `wait` from now, in the form of [`now_text`] (a job's or a removal's due time).
pub fn text_in(wait: std::time::Duration) -> String {
    humantime::format_rfc3339_millis(SystemTime::now() + wait).to_string()
}

/// Locks the rows of the studies `keys` until the unit of work ends (PostgreSQL; SQLite has a
/// single writer). Each statement after it sees every change committed before the lock was
/// granted: a recount of a study's series and bytes made then counts what another request
/// changed meanwhile, and a request counting the same study waits until this one commits. The
/// rows are locked one by one in key order, so that two units never wait on each other crosswise,
/// and `FOR NO KEY UPDATE`, as an update of the totals would: a unit that only points a row at the
/// study (its series moved there, holding the study's key share) does not block it. The order
/// every unit of the host keeps (plugins are asked to in the README): a Patient ID
/// ([`archive::lock_patient_id`]), then series rows in key order (a unit moving series locks
/// them as [`series_locked_in_key_order`] says, ingest shares those it adds to), then study rows
/// in key order (ingest adds to its studies' totals that way too), then the event feed's lock
/// ([`events::append`]), so call this before recording an event; the count of countable
/// studies changes at commit, last.
pub async fn lock_studies(conn: &mut sqlx::AnyConnection, keys: &[i64]) -> Result<(), sqlx::Error> {
    if !is_postgres(conn) {
        return Ok(());
    }
    let mut keys = keys.to_vec();
    keys.sort_unstable();
    keys.dedup();
    for key in keys {
        sqlx::query("SELECT id FROM studies WHERE id = $1 FOR NO KEY UPDATE").bind(key).execute(&mut *conn).await?;
    }
    Ok(())
}

/// The `WHERE` condition of a statement moving the series that match `condition` (of study
/// columns and the statement's parameters): on PostgreSQL, the rows a subquery has locked in key
/// order (`FOR NO KEY UPDATE`) before the statement updates them, so that it holds no series
/// while it waits for another. Ingest shares the rows of the series it adds instances to before
/// it locks their studies, waits for such a move to commit, and adds to the study each series is
/// in by then. The statement sees one snapshot: a series brought under `condition` after it
/// began stays where it is. Run it before [`lock_studies`] (see there for the order).
pub fn series_locked_in_key_order(conn: &sqlx::AnyConnection, condition: &str) -> String {
    if is_postgres(conn) {
        format!("id IN (SELECT id FROM series WHERE {condition} ORDER BY id FOR NO KEY UPDATE) AND {condition}")
    } else {
        condition.to_owned()
    }
}

/// True when `conn` is a PostgreSQL connection (row and advisory locks matter there; SQLite has
/// a single writer).
pub fn is_postgres(conn: &sqlx::AnyConnection) -> bool {
    conn.backend_name() == <sqlx::Postgres as sqlx::Database>::NAME
}

/// True when `e` is a unique-constraint violation.
pub fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

/// A DICOM wildcard value (`*` any run, `?` one character) as a `LIKE` pattern escaped with `\\`.
pub fn like_pattern(value: &str) -> String {
    let mut pattern = String::with_capacity(value.len() + 4);
    for c in value.chars() {
        match c {
            '*' => pattern.push('%'),
            '?' => pattern.push('_'),
            '%' | '_' | '\\' => {
                pattern.push('\\');
                pattern.push(c);
            }
            c => pattern.push(c),
        }
    }
    pattern
}
