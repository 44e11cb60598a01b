//! Old copies of relocated files waiting to be removed (see [`crate::removal`]): scheduled in the
//! relocation's unit of work, taken once due, forgotten once removed.

use sqlx::{AnyConnection, AnyPool, Row};

/// A file to remove once due.
#[derive(Debug, Clone)]
pub struct Removal {
    pub id: i64,
    pub medium: String,
    pub relative_path: String,
}

/// Schedules the removal of `files` (medium, relative path) at `due_at` (RFC 3339, as
/// [`super::now_text`]), in the caller's unit of work.
pub async fn schedule(conn: &mut AnyConnection, files: &[(&str, &str)], due_at: &str) -> Result<(), sqlx::Error> {
    for (medium, relative_path) in files {
        sqlx::query("INSERT INTO file_removals (medium, file_path, due_at) VALUES ($1, $2, $3)")
            .bind(*medium)
            .bind(*relative_path)
            .bind(due_at)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Removals due by `now`, oldest first, at most `limit`.
pub async fn due(pool: &AnyPool, now: &str, limit: i64) -> Result<Vec<Removal>, sqlx::Error> {
    let rows = sqlx::query("SELECT id, medium, file_path FROM file_removals WHERE due_at <= $1 ORDER BY due_at, id LIMIT $2")
        .bind(now)
        .bind(limit)
        .fetch_all(pool)
        .await?;
    rows.iter().map(|row| Ok(Removal { id: row.try_get(0)?, medium: row.try_get(1)?, relative_path: row.try_get(2)? })).collect()
}

/// When the next removal is due, if any is scheduled.
pub async fn next_due(pool: &AnyPool) -> Result<Option<String>, sqlx::Error> {
    let row = sqlx::query("SELECT due_at FROM file_removals ORDER BY due_at LIMIT 1").fetch_optional(pool).await?;
    row.map(|row| row.try_get(0)).transpose()
}

/// Forgets removals, in the caller's unit of work: done, or no longer wanted (a row names the
/// file again).
pub async fn forget(conn: &mut AnyConnection, ids: &[i64]) -> Result<(), sqlx::Error> {
    for id in ids {
        sqlx::query("DELETE FROM file_removals WHERE id = $1").bind(id).execute(&mut *conn).await?;
    }
    Ok(())
}

/// Moves removals that failed to `due_at`, in the caller's unit of work.
pub async fn postpone(conn: &mut AnyConnection, ids: &[i64], due_at: &str) -> Result<(), sqlx::Error> {
    for id in ids {
        sqlx::query("UPDATE file_removals SET due_at = $1 WHERE id = $2").bind(due_at).bind(id).execute(&mut *conn).await?;
    }
    Ok(())
}
