//! Domain operations on patients, studies, series, instances and orders, each scoped to one
//! tenant and run inside the caller's unit of work. Plugins reach these through the `archive`
//! capability; nothing here knows about WebAssembly.

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AssertSqlSafe, Row};

use super::{is_postgres, is_unique_violation, lock_studies, now_text, series_locked_in_key_order, values};

/// Why a domain operation failed.
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("database error: {0}")]
    Sql(#[from] sqlx::Error),
}

type OpResult<T> = Result<T, OpError>;

/// A value that breaks its DICOM VR (see [`values`]) is an invalid argument.
impl From<wasmpacs_vr::FieldError> for OpError {
    fn from(e: wasmpacs_vr::FieldError) -> Self {
        OpError::Invalid(e.to_string())
    }
}

/// A patient's demographics.
#[derive(Debug, Clone, PartialEq)]
pub struct Patient {
    pub key: i64,
    pub patient_id: String,
    pub issuer: String,
    pub name: String,
    pub birth_date: Option<String>,
    pub sex: Option<String>,
}

/// Demographics to create or update a patient with.
#[derive(Debug, Clone)]
pub struct PatientFields {
    pub patient_id: String,
    pub issuer: String,
    pub name: String,
    pub birth_date: Option<String>,
    pub sex: Option<String>,
}

/// A study with its series and instance counts.
#[derive(Debug, Clone)]
pub struct Study {
    pub key: i64,
    pub study_uid: String,
    pub patient_key: i64,
    pub accession_number: Option<String>,
    pub description: Option<String>,
    pub study_date: Option<String>,
    pub study_time: Option<String>,
    pub referring_physician: Option<String>,
    pub deprecated: bool,
    pub series_count: u32,
    pub instance_count: u32,
}

/// Attributes of a study created without images (e.g. a reconciliation target).
#[derive(Debug, Clone)]
pub struct StudyFields {
    pub study_uid: String,
    pub accession_number: Option<String>,
    pub description: Option<String>,
    pub study_date: Option<String>,
    pub study_time: Option<String>,
    pub referring_physician: Option<String>,
}

/// A series.
#[derive(Debug, Clone)]
pub struct Series {
    pub key: i64,
    pub series_uid: String,
    pub study_key: i64,
    pub modality: Option<String>,
    pub series_number: Option<i32>,
    pub description: Option<String>,
    pub container_identifier: Option<String>,
    pub deprecated: bool,
    pub instance_count: u32,
}

/// A stored instance.
#[derive(Debug, Clone)]
pub struct Instance {
    pub key: i64,
    pub sop_instance_uid: String,
    pub sop_class_uid: String,
    pub series_uid: String,
    pub study_uid: String,
    pub instance_number: Option<i32>,
    pub size: u64,
    pub deprecated: bool,
}

/// A scheduled order (worklist item). Stored whole as JSON beside the indexed columns.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Order {
    pub study_uid: String,
    pub accession_number: String,
    pub patient_key: i64,
    pub scheduled_station_ae_title: String,
    pub scheduled_station_name: Option<String>,
    pub start_date: String,
    pub start_time: String,
    pub modality: String,
    pub performing_physician: Option<String>,
    pub step_description: String,
    pub step_id: Option<String>,
    pub requested_procedure_description: Option<String>,
    pub requested_procedure_id: Option<String>,
    pub requesting_physician: Option<String>,
    pub referring_physician: Option<String>,
    pub admission_id: Option<String>,
    pub current_patient_location: Option<String>,
    pub confidentiality_constraint: Option<String>,
    pub patient_state: Option<String>,
    pub pregnancy_status: Option<String>,
    pub medical_alerts: Option<String>,
    pub placer_order_number: Option<String>,
    pub service_episode_id: Option<String>,
    pub extra: Vec<(String, String)>,
}

const PATIENT_COLUMNS: &str = "id, patient_id, issuer, name, birth_date, sex";

fn patient(row: &AnyRow) -> OpResult<Patient> {
    Ok(Patient {
        key: row.try_get(0)?,
        patient_id: row.try_get(1)?,
        issuer: row.try_get(2)?,
        name: row.try_get(3)?,
        birth_date: row.try_get(4)?,
        sex: row.try_get(5)?,
    })
}

/// Holds a Patient ID of a tenant, under every issuer, until the unit of work ends (PostgreSQL,
/// with an advisory lock keyed by a hash of both; SQLite has a single writer). A unit holding it
/// takes series rows, study rows and the event feed's lock after it, never before (see
/// [`lock_studies`]).
pub async fn lock_patient_id(conn: &mut AnyConnection, tenant: &str, patient_id: &str) -> OpResult<()> {
    if !is_postgres(conn) {
        return Ok(());
    }
    sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2 || '/' || $3))")
        .bind(PATIENT_ID_LOCKS)
        .bind(tenant)
        .bind(patient_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The first key of the advisory locks on Patient IDs (see [`lock_patient_id`]).
const PATIENT_ID_LOCKS: i32 = 7411002;

/// Patients with this ID, under one issuer or any.
pub async fn find_patients(
    conn: &mut AnyConnection,
    tenant: &str,
    patient_id: &str,
    issuer: Option<&str>,
) -> OpResult<Vec<Patient>> {
    let rows = match issuer {
        Some(issuer) => {
            sqlx::query(AssertSqlSafe(format!(
                "SELECT {PATIENT_COLUMNS} FROM patients WHERE tenant = $1 AND patient_id = $2 AND issuer = $3 ORDER BY id"
            )))
            .bind(tenant)
            .bind(patient_id)
            .bind(issuer)
            .fetch_all(&mut *conn)
            .await?
        }
        None => {
            sqlx::query(AssertSqlSafe(format!(
                "SELECT {PATIENT_COLUMNS} FROM patients WHERE tenant = $1 AND patient_id = $2 ORDER BY id"
            )))
            .bind(tenant)
            .bind(patient_id)
            .fetch_all(&mut *conn)
            .await?
        }
    };
    rows.iter().map(patient).collect()
}

/// A patient by key.
pub async fn get_patient(conn: &mut AnyConnection, tenant: &str, key: i64) -> OpResult<Patient> {
    let row = sqlx::query(AssertSqlSafe(format!("SELECT {PATIENT_COLUMNS} FROM patients WHERE tenant = $1 AND id = $2")))
        .bind(tenant)
        .bind(key)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| OpError::NotFound(format!("no patient with key {key}")))?;
    patient(&row)
}

/// Creates a patient; `Conflict` when the ID and issuer are taken (also under a race: the
/// unique index decides, and the loser of the race gets the conflict).
pub async fn create_patient(conn: &mut AnyConnection, tenant: &str, f: &PatientFields) -> OpResult<Patient> {
    values::patient(f)?;
    validate_patient(f)?;
    let now = now_text();
    let row = sqlx::query(
        "INSERT INTO patients (tenant, patient_id, issuer, name, birth_date, sex, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7) \
         ON CONFLICT (tenant, patient_id, issuer) DO NOTHING RETURNING id",
    )
    .bind(tenant)
    .bind(&f.patient_id)
    .bind(&f.issuer)
    .bind(&f.name)
    .bind(&f.birth_date)
    .bind(&f.sex)
    .bind(&now)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        return Err(OpError::Conflict(format!("a patient with ID `{}` and issuer `{}` already exists", f.patient_id, f.issuer)));
    };
    Ok(Patient {
        key: row.try_get(0)?,
        patient_id: f.patient_id.clone(),
        issuer: f.issuer.clone(),
        name: f.name.clone(),
        birth_date: f.birth_date.clone(),
        sex: f.sex.clone(),
    })
}

/// What [`update_patient`] does with a birth date or sex left out (`None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeftOut {
    /// Kept as the row has it when updated, not as the caller read it: updates of different
    /// fields at once all apply (WIT 0.1.1 on).
    Kept,
    /// Cleared, every field replaced (WIT 0.1.0, whose plugins send what they want kept).
    Cleared,
}

/// Updates a patient's demographics: ID, issuer and name replaced, a birth date or sex left out
/// kept or cleared as `left_out` says.
pub async fn update_patient(
    conn: &mut AnyConnection,
    tenant: &str,
    key: i64,
    f: &PatientFields,
    left_out: LeftOut,
) -> OpResult<Patient> {
    validate_patient(f)?;
    values::patient_update(f, &get_patient(conn, tenant, key).await?)?;
    let sql = match left_out {
        LeftOut::Kept => {
            "UPDATE patients SET patient_id = $3, issuer = $4, name = $5, birth_date = COALESCE($6, birth_date), \
             sex = COALESCE($7, sex), updated_at = $8 WHERE tenant = $1 AND id = $2"
        }
        LeftOut::Cleared => {
            "UPDATE patients SET patient_id = $3, issuer = $4, name = $5, birth_date = $6, sex = $7, updated_at = $8 \
             WHERE tenant = $1 AND id = $2"
        }
    };
    let result = sqlx::query(sql)
        .bind(tenant)
        .bind(key)
        .bind(&f.patient_id)
        .bind(&f.issuer)
        .bind(&f.name)
        .bind(&f.birth_date)
        .bind(&f.sex)
        .bind(now_text())
        .execute(&mut *conn)
        .await;
    match result {
        Ok(r) if r.rows_affected() == 0 => Err(OpError::NotFound(format!("no patient with key {key}"))),
        Ok(_) => get_patient(conn, tenant, key).await,
        Err(e) if is_unique_violation(&e) => {
            Err(OpError::Conflict(format!("a patient with ID `{}` and issuer `{}` already exists", f.patient_id, f.issuer)))
        }
        Err(e) => Err(e.into()),
    }
}

fn validate_patient(f: &PatientFields) -> OpResult<()> {
    // A name may be empty, as in DICOM (Type 2) and as ingest files patients; the APIs that
    // require one (patients/create, patients/update) say so themselves.
    if f.patient_id.trim().is_empty() {
        return Err(OpError::Invalid("a patient needs a non-empty ID".into()));
    }
    // Beyond CS: Patient Sex's enumerated values.
    if let Some(s) = &f.sex
        && !matches!(s.as_str(), "M" | "F" | "O")
    {
        return Err(OpError::Invalid(format!("sex `{s}` is not one of M, F, O")));
    }
    Ok(())
}

/// Whether `d` is a DICOM DA value (YYYYMMDD, a real calendar day).
pub fn is_date(d: &str) -> bool {
    !d.is_empty() && wasmpacs_vr::Vr::DA.check(d).is_ok()
}

const STUDY_SELECT: &str = "SELECT s.id, s.study_uid, s.patient_fk, s.accession_number, s.description, \
    s.study_date, s.study_time, s.referring_physician, s.deprecated, \
    (SELECT COUNT(*) FROM series se WHERE se.study_fk = s.id) AS series_count, \
    (SELECT COUNT(*) FROM instances i JOIN series se ON i.series_fk = se.id WHERE se.study_fk = s.id) AS instance_count \
    FROM studies s";

fn study(row: &AnyRow) -> OpResult<Study> {
    Ok(Study {
        key: row.try_get(0)?,
        study_uid: row.try_get(1)?,
        patient_key: row.try_get(2)?,
        accession_number: row.try_get(3)?,
        description: row.try_get(4)?,
        study_date: row.try_get(5)?,
        study_time: row.try_get(6)?,
        referring_physician: row.try_get(7)?,
        deprecated: row.try_get::<i64, _>(8)? != 0,
        series_count: row.try_get::<i64, _>(9)? as u32,
        instance_count: row.try_get::<i64, _>(10)? as u32,
    })
}

/// A study by UID.
pub async fn find_study(conn: &mut AnyConnection, tenant: &str, study_uid: &str) -> OpResult<Option<Study>> {
    let row = sqlx::query(AssertSqlSafe(format!("{STUDY_SELECT} WHERE s.tenant = $1 AND s.study_uid = $2")))
        .bind(tenant)
        .bind(study_uid)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(study).transpose()
}

/// Studies with this accession number.
pub async fn find_studies_by_accession(conn: &mut AnyConnection, tenant: &str, accession: &str) -> OpResult<Vec<Study>> {
    let rows =
        sqlx::query(AssertSqlSafe(format!("{STUDY_SELECT} WHERE s.tenant = $1 AND s.accession_number = $2 ORDER BY s.id")))
            .bind(tenant)
            .bind(accession)
            .fetch_all(&mut *conn)
            .await?;
    rows.iter().map(study).collect()
}

/// Studies of a patient.
pub async fn studies_of_patient(conn: &mut AnyConnection, tenant: &str, patient_key: i64) -> OpResult<Vec<Study>> {
    let rows = sqlx::query(AssertSqlSafe(format!("{STUDY_SELECT} WHERE s.tenant = $1 AND s.patient_fk = $2 ORDER BY s.id")))
        .bind(tenant)
        .bind(patient_key)
        .fetch_all(&mut *conn)
        .await?;
    rows.iter().map(study).collect()
}

async fn require_study_key(conn: &mut AnyConnection, tenant: &str, key: i64) -> OpResult<()> {
    sqlx::query("SELECT id FROM studies WHERE tenant = $1 AND id = $2")
        .bind(tenant)
        .bind(key)
        .fetch_optional(&mut *conn)
        .await?
        .map(|_| ())
        .ok_or_else(|| OpError::NotFound(format!("no study with key {key}")))
}

/// Creates an empty study for a patient.
pub async fn create_study(conn: &mut AnyConnection, tenant: &str, patient_key: i64, f: &StudyFields) -> OpResult<Study> {
    if f.study_uid.trim().is_empty() {
        return Err(OpError::Invalid("a study needs a Study Instance UID".into()));
    }
    values::study(f)?;
    get_patient(conn, tenant, patient_key).await?;
    let inserted = sqlx::query(
        "INSERT INTO studies (tenant, study_uid, patient_fk, accession_number, description, study_date, \
         study_time, referring_physician, received_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
         ON CONFLICT (tenant, study_uid) DO NOTHING RETURNING id",
    )
    .bind(tenant)
    .bind(&f.study_uid)
    .bind(patient_key)
    .bind(&f.accession_number)
    .bind(&f.description)
    .bind(&f.study_date)
    .bind(&f.study_time)
    .bind(&f.referring_physician)
    .bind(now_text())
    .fetch_optional(&mut *conn)
    .await?;
    if inserted.is_none() {
        return Err(OpError::Conflict(format!("study `{}` already exists", f.study_uid)));
    }
    find_study(conn, tenant, &f.study_uid).await?.ok_or_else(|| OpError::NotFound(format!("study `{}` vanished", f.study_uid)))
}

/// Locks a study's row until the unit of work ends (see [`lock_studies`]).
pub async fn lock_study(conn: &mut AnyConnection, tenant: &str, study_key: i64) -> OpResult<()> {
    require_study_key(conn, tenant, study_key).await?;
    Ok(lock_studies(conn, &[study_key]).await?)
}

/// Hooks a study to another patient.
pub async fn assign_study(conn: &mut AnyConnection, tenant: &str, study_key: i64, patient_key: i64) -> OpResult<()> {
    get_patient(conn, tenant, patient_key).await?;
    let r = sqlx::query("UPDATE studies SET patient_fk = $3 WHERE tenant = $1 AND id = $2")
        .bind(tenant)
        .bind(study_key)
        .bind(patient_key)
        .execute(&mut *conn)
        .await?;
    if r.rows_affected() == 0 {
        return Err(OpError::NotFound(format!("no study with key {study_key}")));
    }
    orders_follow(conn, tenant, study_key, patient_key).await
}

/// The orders scheduled for a study follow it to its new patient.
async fn orders_follow(conn: &mut AnyConnection, tenant: &str, study_key: i64, patient_key: i64) -> OpResult<()> {
    sqlx::query(
        "UPDATE orders SET patient_fk = $3 WHERE tenant = $1 AND study_uid = (SELECT study_uid FROM studies WHERE id = $2)",
    )
    .bind(tenant)
    .bind(study_key)
    .bind(patient_key)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Hooks every study of the patient `from` to the patient `to`; their orders follow. The studies
/// are locked first, in key order (see [`lock_studies`]), and each moves only if it is still the
/// patient's then: a study another request moved away meanwhile stays where it went. Returns the
/// studies moved.
pub async fn move_studies_of_patient(conn: &mut AnyConnection, tenant: &str, from: i64, to: i64) -> OpResult<Vec<Study>> {
    get_patient(conn, tenant, to).await?;
    let mut held: Vec<i64> = sqlx::query_scalar("SELECT id FROM studies WHERE tenant = $1 AND patient_fk = $2")
        .bind(tenant)
        .bind(from)
        .fetch_all(&mut *conn)
        .await?;
    lock_studies(conn, &held).await?;
    held.sort_unstable();
    let mut moved = Vec::with_capacity(held.len());
    for key in held {
        let r = sqlx::query("UPDATE studies SET patient_fk = $3 WHERE tenant = $1 AND id = $2 AND patient_fk = $4")
            .bind(tenant)
            .bind(key)
            .bind(to)
            .bind(from)
            .execute(&mut *conn)
            .await?;
        if r.rows_affected() == 1 {
            moved.push(key);
        }
    }
    let mut studies = Vec::with_capacity(moved.len());
    for key in moved {
        orders_follow(conn, tenant, key, to).await?;
        let row = sqlx::query(AssertSqlSafe(format!("{STUDY_SELECT} WHERE s.tenant = $1 AND s.id = $2")))
            .bind(tenant)
            .bind(key)
            .fetch_one(&mut *conn)
            .await?;
        studies.push(study(&row)?);
    }
    Ok(studies)
}

/// Moves every series of `from` into `to`; returns how many moved. Their rows are locked first,
/// in key order (see [`series_locked_in_key_order`]), then the studies'.
pub async fn move_all_series(conn: &mut AnyConnection, tenant: &str, from: i64, to: i64) -> OpResult<u32> {
    require_study_key(conn, tenant, from).await?;
    require_study_key(conn, tenant, to).await?;
    let moving = series_locked_in_key_order(conn, "tenant = $1 AND study_fk = $2");
    let r = sqlx::query(AssertSqlSafe(format!("UPDATE series SET study_fk = $3 WHERE {moving}")))
        .bind(tenant)
        .bind(from)
        .bind(to)
        .execute(&mut *conn)
        .await?;
    refresh_sizes(conn, from, to).await?;
    Ok(r.rows_affected() as u32)
}

/// Exchanges the series of two studies, locking them as [`move_all_series`] does.
pub async fn swap_series(conn: &mut AnyConnection, tenant: &str, a: i64, b: i64) -> OpResult<()> {
    require_study_key(conn, tenant, a).await?;
    require_study_key(conn, tenant, b).await?;
    let moving = series_locked_in_key_order(conn, "tenant = $1 AND study_fk IN ($2, $3)");
    let swap = format!("UPDATE series SET study_fk = CASE WHEN study_fk = $2 THEN $3 ELSE $2 END WHERE {moving}");
    sqlx::query(AssertSqlSafe(swap)).bind(tenant).bind(a).bind(b).execute(&mut *conn).await?;
    refresh_sizes(conn, a, b).await
}

/// Recomputes the stored size (slide files included) and series count of two studies after series
/// moved between them, from their series that are not deprecated (as `series/deprecation` does),
/// once their rows are locked (see [`lock_studies`]).
async fn refresh_sizes(conn: &mut AnyConnection, a: i64, b: i64) -> OpResult<()> {
    lock_studies(conn, &[a, b]).await?;
    sqlx::query(
        "UPDATE studies SET size_bytes = CAST(COALESCE((SELECT SUM(i.size_bytes + COALESCE(sf.size_bytes, 0)) FROM instances i \
         JOIN series se ON i.series_fk = se.id LEFT JOIN slide_files sf ON sf.instance_fk = i.id \
         WHERE se.study_fk = studies.id AND se.deprecated = 0), 0) AS BIGINT), \
         series_count = (SELECT COUNT(*) FROM series se WHERE se.study_fk = studies.id AND se.deprecated = 0) \
         WHERE id IN ($1, $2)",
    )
    .bind(a)
    .bind(b)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

const SERIES_SELECT: &str = "SELECT se.id, se.series_uid, se.study_fk, se.modality, se.series_number, \
    se.description, se.container_identifier, se.deprecated, \
    (SELECT COUNT(*) FROM instances i WHERE i.series_fk = se.id) FROM series se";

fn series(row: &AnyRow) -> OpResult<Series> {
    Ok(Series {
        key: row.try_get(0)?,
        series_uid: row.try_get(1)?,
        study_key: row.try_get(2)?,
        modality: row.try_get(3)?,
        series_number: row.try_get::<Option<i64>, _>(4)?.map(|n| n as i32),
        description: row.try_get(5)?,
        container_identifier: row.try_get(6)?,
        deprecated: row.try_get::<i64, _>(7)? != 0,
        instance_count: row.try_get::<i64, _>(8)? as u32,
    })
}

/// Series of a study.
pub async fn list_series(conn: &mut AnyConnection, tenant: &str, study_key: i64) -> OpResult<Vec<Series>> {
    let rows = sqlx::query(AssertSqlSafe(format!(
        "{SERIES_SELECT} WHERE se.tenant = $1 AND se.study_fk = $2 ORDER BY se.series_number, se.id"
    )))
    .bind(tenant)
    .bind(study_key)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(series).collect()
}

/// Series with this Container Identifier.
pub async fn find_series_by_container(conn: &mut AnyConnection, tenant: &str, container: &str) -> OpResult<Vec<Series>> {
    let rows = sqlx::query(AssertSqlSafe(format!(
        "{SERIES_SELECT} WHERE se.tenant = $1 AND se.container_identifier = $2 ORDER BY se.id"
    )))
    .bind(tenant)
    .bind(container)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(series).collect()
}

/// Instances of a study.
pub async fn list_instances(conn: &mut AnyConnection, tenant: &str, study_key: i64) -> OpResult<Vec<Instance>> {
    let rows = sqlx::query(
        "SELECT i.id, i.sop_instance_uid, i.sop_class_uid, se.series_uid, s.study_uid, i.instance_number, \
         i.size_bytes, i.deprecated + se.deprecated FROM instances i JOIN series se ON i.series_fk = se.id \
         JOIN studies s ON se.study_fk = s.id WHERE i.tenant = $1 AND s.id = $2 \
         ORDER BY se.series_number, se.id, i.instance_number, i.id",
    )
    .bind(tenant)
    .bind(study_key)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(Instance {
                key: row.try_get(0)?,
                sop_instance_uid: row.try_get(1)?,
                sop_class_uid: row.try_get(2)?,
                series_uid: row.try_get(3)?,
                study_uid: row.try_get(4)?,
                instance_number: row.try_get::<Option<i64>, _>(5)?.map(|n| n as i32),
                size: row.try_get::<i64, _>(6)? as u64,
                deprecated: row.try_get::<i64, _>(7)? != 0,
            })
        })
        .collect()
}

/// Creates an order; `Conflict` when one exists for the Study Instance UID.
pub async fn create_order(conn: &mut AnyConnection, tenant: &str, order: &Order) -> OpResult<()> {
    values::order(order)?;
    let body = serde_json::to_string(order).map_err(|e| OpError::Invalid(e.to_string()))?;
    // One statement checks that the patient is the tenant's and inserts; why nothing was
    // inserted is asked only when that happens.
    let inserted = sqlx::query(
        "INSERT INTO orders (tenant, study_uid, patient_fk, station_aet, start_date, start_time, modality, \
         accession_number, station_name, body, created_at) \
         SELECT $1, $2, p.id, $4, $5, $6, $7, $8, $9, $10, $11 FROM patients p WHERE p.tenant = $1 AND p.id = $3 \
         ON CONFLICT (tenant, study_uid) DO NOTHING RETURNING id",
    )
    .bind(tenant)
    .bind(&order.study_uid)
    .bind(order.patient_key)
    .bind(&order.scheduled_station_ae_title)
    .bind(&order.start_date)
    .bind(&order.start_time)
    .bind(&order.modality)
    .bind(&order.accession_number)
    .bind(&order.scheduled_station_name)
    .bind(body)
    .bind(now_text())
    .fetch_optional(&mut *conn)
    .await?;
    if inserted.is_some() {
        return Ok(());
    }
    get_patient(conn, tenant, order.patient_key).await?;
    Err(OpError::Conflict(format!("an order for study `{}` already exists", order.study_uid)))
}

/// The order for a Study Instance UID, with its current patient.
pub async fn find_order(conn: &mut AnyConnection, tenant: &str, study_uid: &str) -> OpResult<Option<Order>> {
    let row = sqlx::query("SELECT body, patient_fk FROM orders WHERE tenant = $1 AND study_uid = $2")
        .bind(tenant)
        .bind(study_uid)
        .fetch_optional(&mut *conn)
        .await?;
    let Some(row) = row else { return Ok(None) };
    let body: String = row.try_get(0)?;
    let mut order: Order = serde_json::from_str(&body).map_err(|e| OpError::Invalid(e.to_string()))?;
    order.patient_key = row.try_get(1)?;
    Ok(Some(order))
}

/// Deletes the order for a Study Instance UID; false when there was none.
pub async fn delete_order(conn: &mut AnyConnection, tenant: &str, study_uid: &str) -> OpResult<bool> {
    let r = sqlx::query("DELETE FROM orders WHERE tenant = $1 AND study_uid = $2")
        .bind(tenant)
        .bind(study_uid)
        .execute(&mut *conn)
        .await?;
    Ok(r.rows_affected() > 0)
}

#[cfg(test)]
mod tests {
    use super::is_date;

    #[test]
    fn dates_must_be_real_calendar_days() {
        assert!(is_date("20240229"));
        assert!(!is_date("20230229"));
        assert!(!is_date("2023-01-01"));
        assert!(!is_date("20231301"));
        assert!(!is_date("20231200"));
    }
}
