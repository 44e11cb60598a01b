//! The study lifecycle in the index: finding the series or study a request names, marking it
//! deprecated (hidden from every query and count, files kept), and the files of a study that a
//! relocation moves to another medium.

use sqlx::{AnyConnection, Row};

use super::lock_studies;

/// What a lookup by a key that need not be unique found.
#[derive(Debug)]
pub enum Lookup<T> {
    Found(T),
    NotFound,
    /// More than one row has the key (a container identifier, an accession number).
    Many,
}

/// How a request names a series.
#[derive(Debug, Clone, Copy)]
pub enum SeriesKey<'a> {
    Uid(&'a str),
    Container(&'a str),
}

/// How a request names a study.
#[derive(Debug, Clone, Copy)]
pub enum StudyKey<'a> {
    Uid(&'a str),
    Accession(&'a str),
}

/// A series and the study it belongs to.
#[derive(Debug, Clone)]
pub struct SeriesRow {
    pub key: i64,
    pub series_uid: String,
    pub deprecated: bool,
    pub study_key: i64,
    pub study_uid: String,
    pub study_deprecated: bool,
}

#[derive(Debug, Clone)]
pub struct StudyRow {
    pub key: i64,
    pub study_uid: String,
    pub deprecated: bool,
}

/// One stored file of a study.
#[derive(Debug, Clone)]
pub struct StoredFile {
    pub instance_key: i64,
    /// The instance's own file, or the non-DICOM slide file stored beside its sidecar.
    pub slide: bool,
    pub medium: String,
    pub relative_path: String,
    /// The digest recorded when it was stored (see [`crate::storage::digest`]).
    pub digest: String,
}

/// Tells the files of a study apart: the instance, and whether it is its slide file.
pub type FileKey = (i64, bool);

impl StoredFile {
    pub fn key(&self) -> FileKey {
        (self.instance_key, self.slide)
    }
}

pub async fn find_series(conn: &mut AnyConnection, tenant: &str, by: SeriesKey<'_>) -> Result<Lookup<SeriesRow>, sqlx::Error> {
    let (column, value) = match by {
        SeriesKey::Uid(uid) => ("se.series_uid", uid),
        SeriesKey::Container(id) => ("se.container_identifier", id),
    };
    let sql = format!(
        "SELECT se.id, se.series_uid, se.deprecated, st.id, st.study_uid, st.deprecated \
         FROM series se JOIN studies st ON st.id = se.study_fk WHERE se.tenant = $1 AND {column} = $2 ORDER BY se.id"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(tenant).bind(value).fetch_all(&mut *conn).await?;
    let rows = rows
        .iter()
        .map(|row| {
            Ok(SeriesRow {
                key: row.try_get(0)?,
                series_uid: row.try_get(1)?,
                deprecated: row.try_get::<i64, _>(2)? != 0,
                study_key: row.try_get(3)?,
                study_uid: row.try_get(4)?,
                study_deprecated: row.try_get::<i64, _>(5)? != 0,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    Ok(one_live(rows, |s| s.deprecated || s.study_deprecated))
}

pub async fn find_study(conn: &mut AnyConnection, tenant: &str, by: StudyKey<'_>) -> Result<Lookup<StudyRow>, sqlx::Error> {
    let (column, value) = match by {
        StudyKey::Uid(uid) => ("study_uid", uid),
        StudyKey::Accession(number) => ("accession_number", number),
    };
    let sql = format!("SELECT id, study_uid, deprecated FROM studies WHERE tenant = $1 AND {column} = $2 ORDER BY id");
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(tenant).bind(value).fetch_all(&mut *conn).await?;
    let rows = rows
        .iter()
        .map(|row| Ok(StudyRow { key: row.try_get(0)?, study_uid: row.try_get(1)?, deprecated: row.try_get::<i64, _>(2)? != 0 }))
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    Ok(one_live(rows, |s| s.deprecated))
}

/// The one row a key names: among rows not deprecated when there are any (an accession number
/// reused after its study was deprecated names the new study), else the deprecated one, so
/// that the caller can say it is deprecated already.
fn one_live<T>(rows: Vec<T>, deprecated: impl Fn(&T) -> bool) -> Lookup<T> {
    let (mut live, mut gone): (Vec<T>, Vec<T>) = rows.into_iter().partition(|row| !deprecated(row));
    match (live.len(), gone.len()) {
        (1, _) => Lookup::Found(live.pop().expect("one row")),
        (0, 0) => Lookup::NotFound,
        (0, 1) => Lookup::Found(gone.pop().expect("one row")),
        _ => Lookup::Many,
    }
}

/// Marks a series deprecated and recomputes the series count and size of its study from what is
/// left: of the study it is in when marked, which is `series.study_key` unless a request moved
/// it since it was found. That study's UID; `None` when the series was deprecated already (by a
/// concurrent request, say).
pub async fn deprecate_series(conn: &mut AnyConnection, series: &SeriesRow) -> Result<Option<String>, sqlx::Error> {
    let study_key: Option<i64> =
        sqlx::query_scalar("UPDATE series SET deprecated = 1 WHERE id = $1 AND deprecated = 0 RETURNING study_fk")
            .bind(series.key)
            .fetch_optional(&mut *conn)
            .await?;
    let Some(study_key) = study_key else { return Ok(None) };
    refresh_totals(conn, study_key).await?;
    if study_key == series.study_key {
        return Ok(Some(series.study_uid.clone()));
    }
    let study_uid =
        sqlx::query_scalar("SELECT study_uid FROM studies WHERE id = $1").bind(study_key).fetch_one(&mut *conn).await?;
    Ok(Some(study_uid))
}

/// Marks a study deprecated. False when it was deprecated already.
pub async fn deprecate_study(conn: &mut AnyConnection, study: &StudyRow) -> Result<bool, sqlx::Error> {
    let changed = sqlx::query("UPDATE studies SET deprecated = 1 WHERE id = $1 AND deprecated = 0")
        .bind(study.key)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    Ok(changed == 1)
}

/// The series count and size in bytes (slide files included) of a study, from its series that
/// are not deprecated, once its row is locked (see [`lock_studies`]).
async fn refresh_totals(conn: &mut AnyConnection, study_key: i64) -> Result<(), sqlx::Error> {
    lock_studies(conn, &[study_key]).await?;
    sqlx::query(
        "UPDATE studies SET size_bytes = CAST(COALESCE((SELECT SUM(i.size_bytes + COALESCE(sf.size_bytes, 0)) FROM instances i \
         JOIN series se ON i.series_fk = se.id LEFT JOIN slide_files sf ON sf.instance_fk = i.id \
         WHERE se.study_fk = studies.id AND se.deprecated = 0), 0) AS BIGINT), \
         series_count = (SELECT COUNT(*) FROM series se WHERE se.study_fk = studies.id AND se.deprecated = 0) \
         WHERE id = $1",
    )
    .bind(study_key)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Every stored file of a study, deprecated ones included: each instance's file, and the slide
/// file of each non-DICOM slide's sidecar.
pub async fn study_files(conn: &mut AnyConnection, study_key: i64) -> Result<Vec<StoredFile>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT i.id, 0, i.medium, i.file_path, i.digest FROM instances i JOIN series se ON se.id = i.series_fk \
         WHERE se.study_fk = $1 \
         UNION ALL SELECT sf.instance_fk, 1, sf.medium, sf.file_path, sf.sha1 FROM slide_files sf \
         JOIN instances i ON i.id = sf.instance_fk JOIN series se ON se.id = i.series_fk WHERE se.study_fk = $1 \
         ORDER BY 1, 2",
    )
    .bind(study_key)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(StoredFile {
                instance_key: row.try_get(0)?,
                slide: row.try_get::<i64, _>(1)? != 0,
                medium: row.try_get(2)?,
                relative_path: row.try_get(3)?,
                digest: row.try_get(4)?,
            })
        })
        .collect()
}

/// Records that a file is now at `relative_path` on `medium`.
pub async fn set_place(
    conn: &mut AnyConnection,
    file: &StoredFile,
    medium: &str,
    relative_path: &str,
) -> Result<(), sqlx::Error> {
    let sql = if file.slide {
        "UPDATE slide_files SET medium = $2, file_path = $3 WHERE instance_fk = $1"
    } else {
        "UPDATE instances SET medium = $2, file_path = $3 WHERE id = $1"
    };
    sqlx::query(sql).bind(file.instance_key).bind(medium).bind(relative_path).execute(&mut *conn).await?;
    Ok(())
}

/// True when an instance or slide row points at the file `relative_path` on `medium`.
pub async fn is_referenced(pool: &sqlx::AnyPool, medium: &str, relative_path: &str) -> Result<bool, sqlx::Error> {
    let row = sqlx::query(
        "SELECT 1 FROM instances WHERE medium = $1 AND file_path = $2 \
         UNION ALL SELECT 1 FROM slide_files WHERE medium = $1 AND file_path = $2 LIMIT 1",
    )
    .bind(medium)
    .bind(relative_path)
    .fetch_optional(pool)
    .await?;
    Ok(row.is_some())
}
