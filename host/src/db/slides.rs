//! Non-DICOM pathology slides in the index: the slide file (a single WSI file or a MIRAX ZIP
//! archive) stored beside the DICOM sidecar instance that describes it.

use sqlx::{AnyConnection, AnyPool, Row};

use super::now_text;

/// A slide file and where it is stored.
#[derive(Debug, Clone)]
pub struct SlideFile {
    pub medium: String,
    pub file_path: String,
    /// The name the client gave the file.
    pub file_name: String,
    pub content_type: Option<String>,
    pub size: u64,
    pub sha1: String,
    /// A MIRAX ZIP archive rather than a single slide file.
    pub mirax: bool,
}

impl SlideFile {
    /// The media type the file is served and forwarded as: `application/zip` for a MIRAX
    /// archive, else the type the client gave (checked when recorded), else octet-stream.
    pub fn media_type(&self) -> &str {
        match (&self.content_type, self.mirax) {
            (_, true) => "application/zip",
            (Some(given), false) => given,
            (None, false) => "application/octet-stream",
        }
    }
}

/// True for a `type/subtype` media type made of token characters (no parameters).
pub fn is_media_type(text: &str) -> bool {
    let token = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b));
    text.split_once('/').is_some_and(|(kind, sub)| token(kind) && token(sub))
}

const COLUMNS: &str = "sf.medium, sf.file_path, sf.file_name, sf.content_type, sf.size_bytes, sf.sha1, sf.mirax";

fn slide_file(row: &sqlx::any::AnyRow) -> Result<SlideFile, sqlx::Error> {
    Ok(SlideFile {
        medium: row.try_get(0)?,
        file_path: row.try_get(1)?,
        file_name: row.try_get(2)?,
        content_type: row.try_get(3)?,
        size: row.try_get::<i64, _>(4)? as u64,
        sha1: row.try_get(5)?,
        mirax: row.try_get::<i64, _>(6)? != 0,
    })
}

/// Records `slide` as the file of the sidecar instance `instance_key`. Its weight counts in the
/// study's size from the sidecar's registration (see [`crate::ingest::Ingest::store_in`]), which
/// adds to the study before the unit records its events (see [`crate::db::lock_studies`]).
pub async fn record(conn: &mut AnyConnection, instance_key: i64, slide: &SlideFile) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO slide_files (instance_fk, medium, file_path, file_name, content_type, size_bytes, sha1, mirax, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(instance_key)
    .bind(&slide.medium)
    .bind(&slide.file_path)
    .bind(&slide.file_name)
    .bind(&slide.content_type)
    .bind(slide.size as i64)
    .bind(&slide.sha1)
    .bind(i64::from(slide.mirax))
    .bind(now_text())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The slide file of the sidecar instance `instance_key`, if it has one.
pub async fn of_instance(conn: &mut AnyConnection, instance_key: i64) -> Result<Option<SlideFile>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM slide_files sf WHERE sf.instance_fk = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(instance_key).fetch_optional(&mut *conn).await?;
    row.as_ref().map(slide_file).transpose()
}

/// The slide file of the live series `series_key`, if it is a non-DICOM slide.
pub async fn of_series(pool: &AnyPool, series_key: i64) -> Result<Option<SlideFile>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM slide_files sf JOIN instances i ON i.id = sf.instance_fk \
         WHERE i.series_fk = $1 AND i.deprecated = 0 ORDER BY i.id LIMIT 1"
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(series_key).fetch_optional(pool).await?;
    row.as_ref().map(slide_file).transpose()
}

/// A live non-DICOM slide of a series with its sidecar instance's file.
#[derive(Debug, Clone)]
pub struct StoredSlide {
    pub sop_instance_uid: String,
    pub sidecar_medium: String,
    pub sidecar_path: String,
    pub slide: SlideFile,
}

/// The live non-DICOM slides of the tenant's series `series_uid`, oldest first.
pub async fn of_series_uid(pool: &AnyPool, tenant: &str, series_uid: &str) -> Result<Vec<StoredSlide>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLUMNS}, i.sop_instance_uid, i.medium, i.file_path FROM slide_files sf \
         JOIN instances i ON i.id = sf.instance_fk JOIN series se ON se.id = i.series_fk \
         WHERE se.tenant = $1 AND se.series_uid = $2 AND i.deprecated = 0 AND se.deprecated = 0 ORDER BY i.id"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(tenant).bind(series_uid).fetch_all(pool).await?;
    rows.iter()
        .map(|row| {
            Ok(StoredSlide {
                slide: slide_file(row)?,
                sop_instance_uid: row.try_get(7)?,
                sidecar_medium: row.try_get(8)?,
                sidecar_path: row.try_get(9)?,
            })
        })
        .collect()
}

/// The Study and Series Instance UIDs the instance `instance_key` is filed under.
pub async fn filed_under(conn: &mut AnyConnection, instance_key: i64) -> Result<Option<(String, String)>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT st.study_uid, se.series_uid FROM instances i JOIN series se ON se.id = i.series_fk \
         JOIN studies st ON st.id = se.study_fk WHERE i.id = $1",
    )
    .bind(instance_key)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|row| Ok((row.try_get(0)?, row.try_get(1)?))).transpose()
}

/// The live series (in live studies) of the tenant with container identifier `container` that
/// hold a live non-DICOM slide, oldest first.
pub async fn series_with_container(conn: &mut AnyConnection, tenant: &str, container: &str) -> Result<Vec<String>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT se.series_uid FROM series se JOIN studies st ON st.id = se.study_fk \
         WHERE se.tenant = $1 AND se.container_identifier = $2 AND se.deprecated = 0 AND st.deprecated = 0 \
         AND EXISTS (SELECT 1 FROM instances i JOIN slide_files sf ON sf.instance_fk = i.id \
                     WHERE i.series_fk = se.id AND i.deprecated = 0) \
         ORDER BY se.id",
    )
    .bind(tenant)
    .bind(container)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(|row| row.try_get(0)).collect()
}
