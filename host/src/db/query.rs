//! Read-only lookups of the query endpoints: the instances of a study (`studyInstances`) and the
//! file to render for an instance or a series (`preview`).

use serde_json::{Map, Value};
use sqlx::{AnyPool, Row};

/// One instance of a study with its series and study attributes, as `studyInstances` serves it.
#[derive(Debug, Clone)]
pub struct InstanceRow {
    pub study_uid: String,
    pub study_description: Option<String>,
    pub series_uid: String,
    pub series_number: Option<i64>,
    pub series_description: Option<String>,
    pub modality: Option<String>,
    pub sop_instance_uid: String,
    pub sop_class_uid: String,
    /// Instance-level attributes recorded at ingest, by their JSON names.
    pub attributes: Map<String, Value>,
}

/// The key of the tenant's study `study_uid`, if it exists and is not deprecated.
pub async fn study_key(pool: &AnyPool, tenant: &str, study_uid: &str) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar("SELECT id FROM studies WHERE tenant = $1 AND study_uid = $2 AND deprecated = 0")
        .bind(tenant)
        .bind(study_uid)
        .fetch_optional(pool)
        .await
}

/// The study's instances that are not deprecated (nor in a deprecated series), ordered by series
/// number, instance number and UID.
pub async fn study_instances(pool: &AnyPool, study: i64) -> Result<Vec<InstanceRow>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT st.study_uid, st.description, se.series_uid, se.series_number, se.description, se.modality, \
                i.sop_instance_uid, i.sop_class_uid, i.attributes \
         FROM series se JOIN studies st ON st.id = se.study_fk JOIN instances i ON i.series_fk = se.id \
         WHERE se.study_fk = $1 AND se.deprecated = 0 AND i.deprecated = 0 \
         ORDER BY se.series_number, se.id, i.instance_number, i.sop_instance_uid",
    )
    .bind(study)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            let attributes: String = row.try_get(8)?;
            let attributes = match serde_json::from_str(&attributes) {
                Ok(Value::Object(map)) => map,
                _ => Map::new(),
            };
            Ok(InstanceRow {
                study_uid: row.try_get(0)?,
                study_description: row.try_get(1)?,
                series_uid: row.try_get(2)?,
                series_number: row.try_get(3)?,
                series_description: row.try_get(4)?,
                modality: row.try_get(5)?,
                sop_instance_uid: row.try_get(6)?,
                sop_class_uid: row.try_get(7)?,
                attributes,
            })
        })
        .collect()
}

/// Where an instance's file is.
#[derive(Debug, Clone)]
pub struct StoredFile {
    pub sop_instance_uid: String,
    pub medium: String,
    pub file_path: String,
    pub transfer_syntax: String,
}

const FILE_COLUMNS: &str = "i.sop_instance_uid, i.medium, i.file_path, i.transfer_syntax";

fn stored_file(row: &sqlx::any::AnyRow) -> Result<StoredFile, sqlx::Error> {
    Ok(StoredFile {
        sop_instance_uid: row.try_get(0)?,
        medium: row.try_get(1)?,
        file_path: row.try_get(2)?,
        transfer_syntax: row.try_get(3)?,
    })
}

/// The file of the tenant's instance `sop_uid`.
pub async fn instance_file(pool: &AnyPool, tenant: &str, sop_uid: &str) -> Result<Option<StoredFile>, sqlx::Error> {
    let sql = format!(
        "SELECT {FILE_COLUMNS} FROM instances i JOIN series se ON se.id = i.series_fk JOIN studies st ON st.id = se.study_fk \
         WHERE i.tenant = $1 AND i.sop_instance_uid = $2 AND i.deprecated = 0 AND se.deprecated = 0 AND st.deprecated = 0"
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(tenant).bind(sop_uid).fetch_optional(pool).await?;
    row.as_ref().map(stored_file).transpose()
}

/// The files of the tenant's slides (series) whose container identifier is `barcode`, none
/// deprecated, with the key of the series each belongs to, grouped by series.
pub async fn slide_files(pool: &AnyPool, tenant: &str, barcode: &str) -> Result<Vec<(i64, StoredFile)>, sqlx::Error> {
    let sql = format!(
        "SELECT {FILE_COLUMNS}, se.id FROM series se JOIN studies st ON st.id = se.study_fk JOIN instances i ON i.series_fk = se.id \
         WHERE se.tenant = $1 AND se.container_identifier = $2 AND se.deprecated = 0 AND st.deprecated = 0 AND i.deprecated = 0 \
         ORDER BY se.id, i.id"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(tenant).bind(barcode).fetch_all(pool).await?;
    rows.iter().map(|row| Ok((row.try_get(4)?, stored_file(row)?))).collect()
}

/// The file of the instance with the lowest instance number (unnumbered ones last) of the
/// tenant's series `series_uid`; `Ok(None)` when the series is unknown or has no instance.
pub async fn series_first_file(pool: &AnyPool, tenant: &str, series_uid: &str) -> Result<Option<StoredFile>, sqlx::Error> {
    let sql = format!(
        "SELECT {FILE_COLUMNS} FROM series se JOIN studies st ON st.id = se.study_fk JOIN instances i ON i.series_fk = se.id \
         WHERE se.tenant = $1 AND se.series_uid = $2 AND i.deprecated = 0 AND se.deprecated = 0 AND st.deprecated = 0 \
         ORDER BY CASE WHEN i.instance_number IS NULL THEN 1 ELSE 0 END, i.instance_number, i.id LIMIT 1"
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(tenant).bind(series_uid).fetch_optional(pool).await?;
    row.as_ref().map(stored_file).transpose()
}
