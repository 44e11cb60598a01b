//! The SQLite ingest committer's own connection: instances of studies and series that exist
//! already are registered with plain synchronous calls on the committer's thread, so no
//! statement waits for a trip to sqlx's worker thread and back. Anything else (a new study or
//! series, a series filed elsewhere) goes the general way ([`Registrar::register_all`]).

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, Statement, ToSql};

use super::{
    ADD_SERIES, ADD_SIZE, Entry, FILED, Filed, INSERT_CHUNK, Inserted, Registrar, Registration, STORED_INSTANCE,
    insert_instances_sql,
};
use crate::db::{SqliteSync, now_text};

/// A failure of the direct connection.
#[derive(Debug, thiserror::Error)]
#[error("database failure: {0}")]
pub struct DirectError(#[from] rusqlite::Error);

/// A second connection to the SQLite index, for the ingest committer only. It writes only while
/// the committer holds the pool's writer connection, so the two never contend for the lock.
pub struct DirectWriter {
    conn: Connection,
}

impl DirectWriter {
    /// Opens the index at `path` with the pool's settings (`sync`, foreign keys, busy timeout).
    pub fn open(path: &Path, sync: SqliteSync) -> Result<Self, DirectError> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags)?;
        conn.busy_timeout(Duration::from_secs(30))?;
        let synchronous = match sync {
            SqliteSync::Full => "FULL",
            SqliteSync::Normal => "NORMAL",
        };
        conn.execute_batch(&format!("PRAGMA synchronous = {synchronous}; PRAGMA foreign_keys = ON;"))?;
        // One insert statement per group size, up to a chunk, plus the few others.
        conn.set_prepared_statement_cache_capacity(INSERT_CHUNK + 8);
        Ok(Self { conn })
    }

    /// Begins a unit of work, taking the write lock at once (as the pool's units do).
    pub fn begin(&mut self) -> Result<DirectUnit<'_>, DirectError> {
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        Ok(DirectUnit { conn: &mut self.conn, open: true })
    }
}

/// A unit of work on the direct connection, rolled back when dropped uncommitted.
pub struct DirectUnit<'c> {
    /// Held mutably so that the unit can be held across an await in a task sent to another
    /// thread (the connection is not `Sync`).
    conn: &'c mut Connection,
    open: bool,
}

impl DirectUnit<'_> {
    pub fn commit(mut self) -> Result<(), DirectError> {
        self.open = false;
        if let Err(e) = self.conn.execute_batch("COMMIT") {
            // A commit that failed may leave the transaction open (SQLITE_BUSY, say).
            if !self.conn.is_autocommit() {
                let _ = self.conn.execute_batch("ROLLBACK");
            }
            return Err(e.into());
        }
        Ok(())
    }
}

impl Drop for DirectUnit<'_> {
    fn drop(&mut self) {
        if self.open
            && !self.conn.is_autocommit()
            && let Err(e) = self.conn.execute_batch("ROLLBACK")
        {
            tracing::error!(error = %e, "cannot roll back a unit of work on the committer's connection");
        }
    }
}

impl Registrar {
    /// Registers in `unit`, as [`Registrar::register_all`] would, those of `entries` whose
    /// study and series exist already with the series in that study; answers `None` for each
    /// other one (something to create, or a conflict), left for the general way.
    pub fn register_existing(
        &mut self,
        unit: &DirectUnit<'_>,
        entries: &[Entry<'_>],
    ) -> Result<Vec<Option<Registration>>, DirectError> {
        let conn = &*unit.conn;
        let mut keys = Vec::with_capacity(entries.len());
        for entry in entries {
            let Entry { tenant, header, .. } = *entry;
            let found = match self.known(tenant, header) {
                Ok(Some(keys)) => Some(keys),
                Ok(None) => {
                    let mut lookup = conn.prepare_cached(FILED)?;
                    bind_numbered(&mut lookup, &[&tenant, &header.study_uid, &header.series_uid])?;
                    let mut rows = lookup.raw_query();
                    let filed = match rows.next()? {
                        Some(row) => Filed::of(row.get(0)?, row.get(1)?, row.get(2)?),
                        None => Filed::of(None, None, None),
                    };
                    let keys = filed.in_its_study();
                    if let Some((study, series)) = keys {
                        self.remember(tenant, header, study, series);
                    }
                    keys
                }
                Err(_) => None,
            };
            keys.push(found);
        }
        let existing: Vec<(usize, (i64, i64))> = keys.iter().enumerate().filter_map(|(i, k)| k.map(|k| (i, k))).collect();
        let now = now_text();
        let mut registrations: Vec<Option<Registration>> = vec![None; entries.len()];
        for chunk in existing.chunks(INSERT_CHUNK) {
            let inserted = insert_instances(conn, entries, chunk, &now)?;
            for &(i, keys) in chunk {
                let Entry { tenant, header, .. } = entries[i];
                let registration = match self.settle(&inserted, &entries[i], keys) {
                    Some(stored) => stored,
                    None => {
                        let mut lookup = conn.prepare_cached(STORED_INSTANCE)?;
                        bind_numbered(&mut lookup, &[&tenant, &header.sop_instance_uid])?;
                        let mut rows = lookup.raw_query();
                        let key = match rows.next()? {
                            Some(row) => row.get(0)?,
                            None => 0,
                        };
                        Registration { stored: false, instance_key: key, ..Default::default() }
                    }
                };
                registrations[i] = Some(registration);
            }
        }
        Ok(registrations)
    }

    /// [`Registrar::finish`] in a unit of the direct connection, SQLite's only writer while it
    /// runs: each series is still in the study this unit found it in, so its bytes go there.
    pub fn finish_direct(&mut self, unit: &DirectUnit<'_>) -> Result<(), DirectError> {
        for (study_key, gain) in std::mem::take(&mut self.gains) {
            if gain.series_created > 0 {
                let mut add_series = unit.conn.prepare_cached(ADD_SERIES)?;
                bind_numbered(&mut add_series, &[&study_key, &gain.series_created])?;
                add_series.raw_execute()?;
            }
            let mut add_size = unit.conn.prepare_cached(ADD_SIZE)?;
            for (series_key, bytes) in gain.bytes {
                bind_numbered(&mut add_size, &[&study_key, &bytes, &series_key])?;
                add_size.raw_execute()?;
            }
        }
        Ok(())
    }
}

/// Inserts the rows of the `rows` of `entries` (each with its study and series keys) with one
/// statement, binding what `super::insert_instances` binds; answers the rows inserted.
fn insert_instances(
    conn: &Connection,
    entries: &[Entry<'_>],
    rows: &[(usize, (i64, i64))],
    now: &str,
) -> Result<Inserted, DirectError> {
    let attributes: Vec<String> = rows.iter().map(|&(i, _)| super::attributes_json(entries[i].header)).collect();
    let sizes: Vec<i64> = rows.iter().map(|&(i, _)| entries[i].file.size as i64).collect();
    let mut values: Vec<&dyn ToSql> = Vec::with_capacity(rows.len() * 12);
    for (row, (i, (_, series_key))) in rows.iter().enumerate() {
        let Entry { tenant, header, file, .. } = &entries[*i];
        values.extend([
            tenant as &dyn ToSql,
            &header.sop_instance_uid,
            &header.sop_class_uid,
            series_key,
            &header.instance_number,
            &file.medium,
            &file.relative_path,
            &sizes[row],
            &file.digest,
            &attributes[row],
            &header.transfer_syntax,
            &now,
        ]);
    }
    let mut statement = conn.prepare_cached(&insert_instances_sql(rows.len()))?;
    bind_numbered(&mut statement, &values)?;
    let mut found = statement.raw_query();
    let mut inserted = HashMap::with_capacity(rows.len());
    while let Some(row) = found.next()? {
        inserted.insert((row.get(1)?, row.get(2)?), (row.get(0)?, row.get(3)?));
    }
    Ok(inserted)
}

/// Binds `values` to the parameters `$1`, `$2`, … of `statement` by their numbers, as sqlx does
/// with the same text (SQLite itself numbers `$N` parameters in their order of first appearance).
/// Each parameter's name is read by its index, so binding costs one step per parameter.
fn bind_numbered(statement: &mut Statement<'_>, values: &[&dyn ToSql]) -> Result<(), DirectError> {
    statement.clear_bindings();
    for index in 1..=statement.parameter_count() {
        let name = statement.parameter_name(index).unwrap_or_default().to_owned();
        let number = name.strip_prefix('$').and_then(|n| n.parse::<usize>().ok()).and_then(|n| n.checked_sub(1));
        let value = number.and_then(|n| values.get(n)).ok_or(rusqlite::Error::InvalidParameterName(name))?;
        statement.raw_bind_parameter(index, value)?;
    }
    Ok(())
}
