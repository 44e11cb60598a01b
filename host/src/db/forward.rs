//! The forward queue in the database: series waiting to be sent to a DICOM node, or non-DICOM
//! slides to an HTTP endpoint, claimed one at a time by the forwarding worker, and what each
//! job became.

use sqlx::{AnyConnection, AnyPool, Row};

use super::now_text;

/// What a job sends, and where.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardKind {
    /// The series' instances, by C-STORE to the DICOM node `node`.
    Dicom,
    /// The series' non-DICOM slides, each with its sidecar, to the HTTP endpoint `node`.
    Slides,
}

impl ForwardKind {
    fn as_str(self) -> &'static str {
        match self {
            ForwardKind::Dicom => "dicom",
            ForwardKind::Slides => "slides",
        }
    }

    fn parse(text: &str) -> Self {
        if text == "slides" { ForwardKind::Slides } else { ForwardKind::Dicom }
    }
}

/// A queued series to send.
#[derive(Debug, Clone)]
pub struct ForwardJob {
    pub id: i64,
    pub tenant: String,
    pub kind: ForwardKind,
    pub series_uid: String,
    /// The slide's container identifier, for a `Slides` job.
    pub container_identifier: Option<String>,
    /// AE title of the DICOM node, or URL of the HTTP endpoint.
    pub node: String,
    pub author: String,
    /// Attempts made so far, this one included.
    pub attempts: i64,
}

/// A job as `GET /admin/forward` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ForwardJobState {
    pub id: i64,
    pub tenant: String,
    pub kind: String,
    pub series_uid: String,
    pub container_identifier: Option<String>,
    pub node: String,
    pub author: String,
    pub state: String,
    pub attempts: i64,
    pub sent: i64,
    pub last_error: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// What to queue: the series, how and where to send it.
pub struct NewJob<'a> {
    pub kind: ForwardKind,
    pub series_uid: &'a str,
    pub container_identifier: Option<&'a str>,
    pub node: &'a str,
    pub author: &'a str,
}

/// Queues a job inside the caller's unit of work.
pub async fn enqueue(conn: &mut AnyConnection, tenant: &str, job: &NewJob<'_>) -> Result<i64, sqlx::Error> {
    let NewJob { kind, series_uid, container_identifier, node, author } = *job;
    let now = now_text();
    let row = sqlx::query(
        "INSERT INTO forward_queue (tenant, series_uid, node, author, state, attempts, sent, not_before, created_at, updated_at, \
         kind, container_identifier) VALUES ($1, $2, $3, $4, 'queued', 0, 0, $5, $5, $5, $6, $7) RETURNING id",
    )
    .bind(tenant)
    .bind(series_uid)
    .bind(node)
    .bind(author)
    .bind(&now)
    .bind(kind.as_str())
    .bind(container_identifier)
    .fetch_one(&mut *conn)
    .await?;
    row.try_get(0)
}

/// Claims the oldest job due now, inside the caller's unit of work; `None` when none is.
pub async fn claim_next(conn: &mut AnyConnection) -> Result<Option<ForwardJob>, sqlx::Error> {
    let now = now_text();
    let Some(row) = sqlx::query(
        "SELECT id, tenant, series_uid, node, author, attempts, kind, container_identifier FROM forward_queue \
         WHERE state = 'queued' AND not_before <= $1 ORDER BY id LIMIT 1",
    )
    .bind(&now)
    .fetch_optional(&mut *conn)
    .await?
    else {
        return Ok(None);
    };
    let id: i64 = row.try_get(0)?;
    let claimed = sqlx::query(
        "UPDATE forward_queue SET state = 'sending', attempts = attempts + 1, updated_at = $2 WHERE id = $1 AND state = 'queued'",
    )
    .bind(id)
    .bind(&now)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if claimed == 0 {
        return Ok(None);
    }
    Ok(Some(ForwardJob {
        id,
        tenant: row.try_get(1)?,
        series_uid: row.try_get(2)?,
        node: row.try_get(3)?,
        author: row.try_get(4)?,
        attempts: row.try_get::<i64, _>(5)? + 1,
        kind: ForwardKind::parse(&row.try_get::<String, _>(6)?),
        container_identifier: row.try_get(7)?,
    }))
}

/// Records how a job ended (`done`, `failed`) or puts it back (`queued`, due at `not_before`).
pub async fn settle(
    conn: &mut AnyConnection,
    id: i64,
    state: &str,
    sent: i64,
    error: Option<&str>,
    not_before: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE forward_queue SET state = $2, sent = $3, last_error = $4, not_before = $5, updated_at = $6 WHERE id = $1",
    )
    .bind(id)
    .bind(state)
    .bind(sent)
    .bind(error)
    .bind(not_before)
    .bind(now_text())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Jobs interrupted by a stop are sent again.
pub async fn requeue_interrupted(conn: &mut AnyConnection) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query("UPDATE forward_queue SET state = 'queued' WHERE state = 'sending'")
        .execute(&mut *conn)
        .await?
        .rows_affected())
}

/// The latest jobs, newest first.
pub async fn latest(pool: &AnyPool, limit: i64) -> Result<Vec<ForwardJobState>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, tenant, series_uid, node, author, state, attempts, sent, last_error, created_at, updated_at, \
         kind, container_identifier \
         FROM forward_queue ORDER BY id DESC LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(ForwardJobState {
                id: row.try_get(0)?,
                tenant: row.try_get(1)?,
                series_uid: row.try_get(2)?,
                node: row.try_get(3)?,
                author: row.try_get(4)?,
                state: row.try_get(5)?,
                attempts: row.try_get(6)?,
                sent: row.try_get(7)?,
                last_error: row.try_get(8)?,
                created_at: row.try_get(9)?,
                updated_at: row.try_get(10)?,
                kind: row.try_get(11)?,
                container_identifier: row.try_get(12)?,
            })
        })
        .collect()
}
