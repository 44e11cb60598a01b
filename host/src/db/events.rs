//! The study event feed: an append-only table read by offset (`GET studyEvents`).

use sqlx::{AnyConnection, AnyPool, Row};

use super::{Backend, now_text};

/// One recorded event.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StudyEvent {
    pub offset: i64,
    pub kind: String,
    pub study_uid: Option<String>,
    pub detail: serde_json::Value,
    pub created_at: String,
}

/// Appends an event inside the caller's unit of work and returns its offset.
///
/// On PostgreSQL a transaction-scoped advisory lock serialises writers of the feed until they
/// commit, so offsets become visible in increasing order: a reader that has seen offset N never
/// later finds a committed event below N.
pub async fn append(
    conn: &mut AnyConnection,
    backend: Backend,
    tenant: &str,
    kind: &str,
    study_uid: Option<&str>,
    detail: &str,
) -> Result<i64, sqlx::Error> {
    if backend == Backend::Postgres {
        sqlx::query("SELECT pg_advisory_xact_lock(7411001)").execute(&mut *conn).await?;
    }
    let row = sqlx::query(
        "INSERT INTO study_events (tenant, kind, study_uid, detail, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(tenant)
    .bind(kind)
    .bind(study_uid)
    .bind(detail)
    .bind(now_text())
    .fetch_one(&mut *conn)
    .await?;
    row.try_get(0)
}

/// Appends an event (see [`append`]) and returns it as recorded, to hand to plugin hooks once
/// the unit of work commits.
pub async fn record(
    conn: &mut AnyConnection,
    backend: Backend,
    tenant: &str,
    kind: &str,
    study_uid: &str,
    detail: serde_json::Value,
) -> Result<StudyEvent, sqlx::Error> {
    let offset = append(conn, backend, tenant, kind, Some(study_uid), &detail.to_string()).await?;
    Ok(StudyEvent { offset, kind: kind.to_owned(), study_uid: Some(study_uid.to_owned()), detail, created_at: now_text() })
}

/// Events of a tenant after `offset`, oldest first, at most `limit`.
pub async fn after(pool: &AnyPool, tenant: &str, offset: i64, limit: i64) -> Result<Vec<StudyEvent>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, kind, study_uid, detail, created_at FROM study_events \
         WHERE tenant = $1 AND id > $2 ORDER BY id LIMIT $3",
    )
    .bind(tenant)
    .bind(offset)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            let detail: String = row.try_get(3)?;
            Ok(StudyEvent {
                offset: row.try_get(0)?,
                kind: row.try_get(1)?,
                study_uid: row.try_get(2)?,
                detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::String(detail)),
                created_at: row.try_get(4)?,
            })
        })
        .collect()
}
