//! Registering a stored instance in the archive index: its patient, study and series are found
//! or created, the instance row is reserved, and the study's totals follow. Runs in the
//! caller's unit of work; the caller commits only once the file is in place.

use sqlx::{AnyConnection, Row};

use super::archive::OpError;
use super::now_text;
use crate::dicom::header::InstanceHeader;

/// Where the instance's file is and what it weighs.
#[derive(Debug, Clone)]
pub struct FileRecord {
    pub medium: String,
    pub relative_path: String,
    pub size: u64,
    pub sha1: String,
}

/// What registering changed.
#[derive(Debug, Clone, Default)]
pub struct Registration {
    /// False when the SOP Instance UID was already stored: nothing was changed.
    pub stored: bool,
    pub study_created: bool,
    pub series_created: bool,
    pub instance_key: i64,
}

/// Records `header` stored at `file` for `tenant`, received from `calling_aet`.
///
/// A series already filed under another study is a conflict; an instance already stored is
/// reported as such and changes nothing.
pub async fn register_instance(
    conn: &mut AnyConnection,
    tenant: &str,
    calling_aet: &str,
    header: &InstanceHeader,
    file: &FileRecord,
) -> Result<Registration, OpError> {
    if let Some(row) = sqlx::query("SELECT id FROM instances WHERE tenant = $1 AND sop_instance_uid = $2")
        .bind(tenant)
        .bind(&header.sop_instance_uid)
        .fetch_optional(&mut *conn)
        .await?
    {
        return Ok(Registration { stored: false, instance_key: row.try_get(0)?, ..Default::default() });
    }
    let now = now_text();

    let (study_key, study_created) = match sqlx::query("SELECT id FROM studies WHERE tenant = $1 AND study_uid = $2")
        .bind(tenant)
        .bind(&header.study_uid)
        .fetch_optional(&mut *conn)
        .await?
    {
        Some(row) => (row.try_get::<i64, _>(0)?, false),
        None => {
            let patient = patient_key(conn, tenant, header, &now).await?;
            let row = sqlx::query(
                "INSERT INTO studies (tenant, study_uid, patient_fk, accession_number, description, study_date, study_time, \
                 referring_physician, received_at, calling_aet, station_name) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
                 ON CONFLICT (tenant, study_uid) DO NOTHING RETURNING id",
            )
            .bind(tenant)
            .bind(&header.study_uid)
            .bind(patient)
            .bind(&header.accession_number)
            .bind(&header.study_description)
            .bind(&header.study_date)
            .bind(&header.study_time)
            .bind(&header.referring_physician)
            .bind(&now)
            .bind(calling_aet)
            .bind(&header.station_name)
            .fetch_optional(&mut *conn)
            .await?;
            match row {
                Some(row) => (row.try_get::<i64, _>(0)?, true),
                // Created meanwhile by a concurrent association (committed before our insert).
                None => (select_id(conn, "SELECT id FROM studies WHERE tenant = $1 AND study_uid = $2", tenant, &header.study_uid).await?, false),
            }
        }
    };

    let (series_key, series_created) = match sqlx::query("SELECT id, study_fk FROM series WHERE tenant = $1 AND series_uid = $2")
        .bind(tenant)
        .bind(&header.series_uid)
        .fetch_optional(&mut *conn)
        .await?
    {
        Some(row) => {
            let owner: i64 = row.try_get(1)?;
            if owner != study_key {
                return Err(OpError::Conflict(format!(
                    "series `{}` belongs to another study than `{}`",
                    header.series_uid, header.study_uid
                )));
            }
            (row.try_get::<i64, _>(0)?, false)
        }
        None => {
            let row = sqlx::query(
                "INSERT INTO series (tenant, series_uid, study_fk, modality, series_number, description, station_name, \
                 container_identifier, body_part, received_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                 ON CONFLICT (tenant, series_uid) DO NOTHING RETURNING id",
            )
            .bind(tenant)
            .bind(&header.series_uid)
            .bind(study_key)
            .bind(&header.modality)
            .bind(header.series_number)
            .bind(&header.series_description)
            .bind(&header.station_name)
            .bind(&header.container_identifier)
            .bind(&header.body_part)
            .bind(&now)
            .fetch_optional(&mut *conn)
            .await?;
            match row {
                Some(row) => {
                    sqlx::query("UPDATE studies SET series_count = series_count + 1 WHERE id = $1")
                        .bind(study_key)
                        .execute(&mut *conn)
                        .await?;
                    (row.try_get::<i64, _>(0)?, true)
                }
                None => {
                    // Created meanwhile by a concurrent association: it must be in this study too.
                    let row = sqlx::query("SELECT id, study_fk FROM series WHERE tenant = $1 AND series_uid = $2")
                        .bind(tenant)
                        .bind(&header.series_uid)
                        .fetch_one(&mut *conn)
                        .await?;
                    if row.try_get::<i64, _>(1)? != study_key {
                        return Err(OpError::Conflict(format!(
                            "series `{}` belongs to another study than `{}`",
                            header.series_uid, header.study_uid
                        )));
                    }
                    (row.try_get::<i64, _>(0)?, false)
                }
            }
        }
    };

    let attributes = serde_json::Value::Object(header.attributes.clone()).to_string();
    let inserted = sqlx::query(
        "INSERT INTO instances (tenant, sop_instance_uid, sop_class_uid, series_fk, instance_number, medium, file_path, \
         size_bytes, sha1, attributes, transfer_syntax, received_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
         ON CONFLICT (tenant, sop_instance_uid) DO NOTHING RETURNING id",
    )
    .bind(tenant)
    .bind(&header.sop_instance_uid)
    .bind(&header.sop_class_uid)
    .bind(series_key)
    .bind(header.instance_number)
    .bind(&file.medium)
    .bind(&file.relative_path)
    .bind(file.size as i64)
    .bind(&file.sha1)
    .bind(attributes)
    .bind(&header.transfer_syntax)
    .bind(&now)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = inserted else {
        // Stored meanwhile by a concurrent association: the caller rolls back.
        return Ok(Registration { stored: false, ..Default::default() });
    };
    // A deprecated series does not count in its study's size (see series/deprecation).
    sqlx::query(
        "UPDATE studies SET size_bytes = size_bytes + $2 WHERE id = $1 \
         AND NOT EXISTS (SELECT 1 FROM series WHERE id = $3 AND deprecated = 1)",
    )
    .bind(study_key)
    .bind(file.size as i64)
    .bind(series_key)
    .execute(&mut *conn)
    .await?;
    Ok(Registration { stored: true, study_created, series_created, instance_key: row.try_get(0)? })
}

async fn select_id(conn: &mut AnyConnection, sql: &'static str, tenant: &str, uid: &str) -> Result<i64, OpError> {
    let row = sqlx::query(sql).bind(tenant).bind(uid).fetch_one(&mut *conn).await?;
    Ok(row.try_get(0)?)
}

/// The patient of a new study: found by ID and issuer, or created from the header.
async fn patient_key(conn: &mut AnyConnection, tenant: &str, h: &InstanceHeader, now: &str) -> Result<i64, OpError> {
    sqlx::query(
        "INSERT INTO patients (tenant, patient_id, issuer, name, birth_date, sex, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7) ON CONFLICT (tenant, patient_id, issuer) DO NOTHING",
    )
    .bind(tenant)
    .bind(&h.patient_id)
    .bind(&h.issuer)
    .bind(&h.patient_name)
    .bind(h.birth_date.as_deref().filter(|d| super::archive::check_date(d).is_ok()))
    .bind(h.sex.as_deref().filter(|s| matches!(*s, "M" | "F" | "O")))
    .bind(now)
    .execute(&mut *conn)
    .await?;
    let row = sqlx::query("SELECT id FROM patients WHERE tenant = $1 AND patient_id = $2 AND issuer = $3")
        .bind(tenant)
        .bind(&h.patient_id)
        .bind(&h.issuer)
        .fetch_one(&mut *conn)
        .await?;
    Ok(row.try_get(0)?)
}
