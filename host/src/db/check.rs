//! What the storage check (`wasmpacs check`) reads of the index: every file a row names, page by
//! page, and which paths of a batch found on a medium some row names.

use std::collections::HashSet;

use sqlx::{AnyPool, Row};

/// A file the index names: an instance's own file, or the non-DICOM slide stored beside its
/// sidecar instance.
#[derive(Debug, Clone)]
pub struct IndexedFile {
    pub instance_key: i64,
    pub slide: bool,
    pub tenant: String,
    pub sop_instance_uid: String,
    pub medium: String,
    pub relative_path: String,
    pub size: i64,
    /// As recorded (see [`crate::storage::digest`]).
    pub digest: String,
}

/// Instance files after instance key `after`, in key order, at most `limit`.
pub async fn instance_files(pool: &AnyPool, after: i64, limit: i64) -> Result<Vec<IndexedFile>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, tenant, sop_instance_uid, medium, file_path, size_bytes, digest FROM instances \
         WHERE id > $1 ORDER BY id LIMIT $2",
    )
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter().map(|row| indexed(row, false)).collect()
}

/// Slide files after sidecar instance key `after`, in key order, at most `limit`.
pub async fn slide_files(pool: &AnyPool, after: i64, limit: i64) -> Result<Vec<IndexedFile>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT i.id, i.tenant, i.sop_instance_uid, sf.medium, sf.file_path, sf.size_bytes, sf.sha1 \
         FROM slide_files sf JOIN instances i ON i.id = sf.instance_fk \
         WHERE sf.instance_fk > $1 ORDER BY sf.instance_fk LIMIT $2",
    )
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter().map(|row| indexed(row, true)).collect()
}

fn indexed(row: &sqlx::any::AnyRow, slide: bool) -> Result<IndexedFile, sqlx::Error> {
    Ok(IndexedFile {
        instance_key: row.try_get(0)?,
        slide,
        tenant: row.try_get(1)?,
        sop_instance_uid: row.try_get(2)?,
        medium: row.try_get(3)?,
        relative_path: row.try_get(4)?,
        size: row.try_get(5)?,
        digest: row.try_get(6)?,
    })
}

/// Where the file of `file` is now (a relocation may have moved it since it was read).
pub async fn current_place(pool: &AnyPool, file: &IndexedFile) -> Result<Option<(String, String)>, sqlx::Error> {
    let sql = if file.slide {
        "SELECT medium, file_path FROM slide_files WHERE instance_fk = $1"
    } else {
        "SELECT medium, file_path FROM instances WHERE id = $1"
    };
    let row = sqlx::query(sql).bind(file.instance_key).fetch_optional(pool).await?;
    row.map(|row| Ok((row.try_get(0)?, row.try_get(1)?))).transpose()
}

/// Which of `paths` (relative to `medium`) some instance or slide row names, or are old copies
/// of relocated files whose removal is scheduled (not orphans: they go once due). Served by the
/// `(medium, file_path)` indexes.
pub async fn named_paths(pool: &AnyPool, medium: &str, paths: &[String]) -> Result<HashSet<String>, sqlx::Error> {
    let mut named = HashSet::new();
    if paths.is_empty() {
        return Ok(named);
    }
    let list: Vec<String> = (0..paths.len()).map(|i| format!("${}", i + 2)).collect();
    for table in ["instances", "slide_files", "file_removals"] {
        let sql = format!("SELECT file_path FROM {table} WHERE medium = $1 AND file_path IN ({})", list.join(", "));
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(medium);
        for path in paths {
            query = query.bind(path);
        }
        for row in query.fetch_all(pool).await? {
            named.insert(row.try_get::<String, _>(0)?);
        }
    }
    Ok(named)
}
