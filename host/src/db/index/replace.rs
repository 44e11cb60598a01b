//! Pointing an instance's row at a new copy of its file: a re-send that replaces a damaged
//! stored copy (see `ingest::repair`). The study's size follows the new copy's.

use sqlx::{AnyConnection, AnyPool, Row};

use super::{FileRecord, where_series_are};
use crate::db::archive::OpError;
use crate::db::lock_studies;

/// Where an instance's file is, as its row records it.
#[derive(Debug, Clone)]
pub struct StoredFile {
    pub medium: String,
    pub relative_path: String,
    pub size: u64,
    pub digest: String,
}

/// The file the row of the instance `key` names, as committed now.
pub async fn stored_file(reader: &AnyPool, key: i64) -> Result<Option<StoredFile>, OpError> {
    let row = sqlx::query("SELECT medium, file_path, size_bytes, digest FROM instances WHERE id = $1")
        .bind(key)
        .fetch_optional(reader)
        .await?;
    let Some(row) = row else { return Ok(None) };
    Ok(Some(StoredFile {
        medium: row.try_get(0)?,
        relative_path: row.try_get(1)?,
        size: row.try_get::<i64, _>(2)? as u64,
        digest: row.try_get(3)?,
    }))
}

/// Points the row of the instance `key` at `new` in the unit of work `conn`, if it still names
/// `old` (a concurrent re-send or relocation may have moved it: then false, nothing changed),
/// and moves its study's size by the difference (unless its series is deprecated, and so not
/// counted). Its series row is shared and then its study row locked first, as every unit that
/// adds to a study's totals does (see [`lock_studies`]), so a move cannot slip in between.
pub async fn replace_file(conn: &mut AnyConnection, key: i64, old: &StoredFile, new: &FileRecord) -> Result<bool, OpError> {
    let row = sqlx::query("SELECT series_fk FROM instances WHERE id = $1").bind(key).fetch_optional(&mut *conn).await?;
    let Some(row) = row else { return Ok(false) };
    let series: i64 = row.try_get(0)?;
    let Some(&(study, deprecated)) = where_series_are(conn, &[series]).await?.get(&series) else { return Ok(false) };
    lock_studies(conn, &[study]).await?;
    let replaced = sqlx::query(
        "UPDATE instances SET medium = $1, file_path = $2, size_bytes = $3, digest = $4 \
         WHERE id = $5 AND medium = $6 AND file_path = $7 AND size_bytes = $8",
    )
    .bind(&new.medium)
    .bind(&new.relative_path)
    .bind(new.size as i64)
    .bind(&new.digest)
    .bind(key)
    .bind(&old.medium)
    .bind(&old.relative_path)
    .bind(old.size as i64)
    .execute(&mut *conn)
    .await?;
    if replaced.rows_affected() != 1 {
        return Ok(false);
    }
    if !deprecated {
        sqlx::query("UPDATE studies SET size_bytes = size_bytes + $2 WHERE id = $1")
            .bind(study)
            .bind(new.size as i64 - old.size as i64)
            .execute(&mut *conn)
            .await?;
    }
    Ok(true)
}
