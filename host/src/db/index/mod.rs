//! Registering stored instances in the archive index: their patient, study and series are found
//! or created, the instance rows are reserved, and the studies' totals follow. Runs in the
//! caller's unit of work; the caller commits only once the files are in place.

use std::collections::{BTreeMap, HashMap};

use sqlx::{AnyConnection, Row};

use super::archive::OpError;
use super::now_text;
use crate::dicom::header::InstanceHeader;

pub mod direct;
pub mod one_statement;
pub mod replace;

/// Where the instance's file is and what it weighs.
#[derive(Debug, Clone)]
pub struct FileRecord {
    pub medium: String,
    pub relative_path: String,
    pub size: u64,
    /// Its digest, in its recorded form (see [`crate::storage::digest`]).
    pub digest: String,
    /// Bytes of files stored beside it that count in its study's size too (a slide's file,
    /// recorded with its sidecar instance).
    pub beside: u64,
}

impl FileRecord {
    /// What the instance adds to its study's size.
    fn weight(&self) -> u64 {
        self.size + self.beside
    }
}

/// One instance to register: its header, where its file is, and who sent it for which tenant.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    pub tenant: &'a str,
    pub calling_aet: &'a str,
    pub header: &'a InstanceHeader,
    pub file: &'a FileRecord,
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

/// Registers the instances of one unit of work. It remembers the studies and series it has
/// looked up or created, so that each further instance of them costs a single statement, and it
/// sums the series and bytes each study gains, written once by [`Registrar::finish`], which
/// must run before the unit commits. Only `finish` updates existing study rows: it shares the
/// rows of the series it added to, then updates the studies, each in key order, the order units
/// of work take them in (see [`crate::db::lock_studies`]), so that none keeping it waits on this
/// one crosswise. Valid for one unit of work, or for several in turn while no other writer can
/// change studies and series in between (the SQLite committer holding the only writer
/// connection); a unit that does not commit must make it [`Registrar::forget`].
#[derive(Debug, Default)]
pub struct Registrar {
    /// (tenant, Study Instance UID) -> study key.
    studies: HashMap<(String, String), i64>,
    /// (tenant, Series Instance UID) -> (series key, its study's key).
    series: HashMap<(String, String), (i64, i64)>,
    /// Study key -> what it gains once this unit finishes, in key order.
    gains: BTreeMap<i64, StudyGain>,
}

/// What the instances registered add to a study, not written yet.
#[derive(Debug, Default)]
struct StudyGain {
    /// Series created in it.
    series_created: i64,
    /// Series key -> bytes of its new instances.
    bytes: BTreeMap<i64, i64>,
}

impl Registrar {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records instances (each stored at its file for its tenant, received from its calling AE
    /// title), answering in their order. A series already filed under another study is a
    /// conflict; an instance already stored is reported as such and changes nothing. Instances
    /// whose study and series exist already are inserted together, with one statement; the
    /// first instance of a new study or series is registered on its own.
    pub async fn register_all(&mut self, conn: &mut AnyConnection, entries: &[Entry<'_>]) -> Result<Vec<Registration>, OpError> {
        let now = now_text();
        let mut registrations: Vec<Option<Registration>> = vec![None; entries.len()];
        // (entry, study key, series key) of the instances inserted together.
        let mut together = Vec::with_capacity(entries.len());
        for (i, entry) in entries.iter().enumerate() {
            let Entry { tenant, calling_aet, header, file } = *entry;
            if let Some((study_key, series_key)) = self.known(tenant, header)? {
                together.push((i, study_key, series_key));
                continue;
            }
            match filed(conn, tenant, header).await?.in_its_study() {
                // The common case, both known and the series in its study: the instance insert
                // tells a re-send apart.
                Some((study, series)) => {
                    self.remember(tenant, header, study, series);
                    together.push((i, study, series));
                }
                None => registrations[i] = Some(self.register_new(conn, tenant, calling_aet, header, file, &now).await?),
            }
        }
        for chunk in together.chunks(INSERT_CHUNK) {
            let rows: Vec<(&Entry<'_>, i64)> = chunk.iter().map(|&(i, _, series_key)| (&entries[i], series_key)).collect();
            let inserted = insert_instances(conn, &rows, &now).await?;
            for &(i, study_key, series_key) in chunk {
                let Entry { tenant, header, .. } = entries[i];
                let registration = match self.settle(&inserted, &entries[i], (study_key, series_key)) {
                    Some(stored) => stored,
                    None => {
                        let key = stored_instance(conn, tenant, &header.sop_instance_uid).await?.unwrap_or_default();
                        Registration { stored: false, instance_key: key, ..Default::default() }
                    }
                };
                registrations[i] = Some(registration);
            }
        }
        Ok(registrations.into_iter().map(|r| r.expect("every entry registered")).collect())
    }

    /// Registers an instance whose study or series is new (or whose series is filed under
    /// another study), creating what is missing.
    async fn register_new(
        &mut self,
        conn: &mut AnyConnection,
        tenant: &str,
        calling_aet: &str,
        header: &InstanceHeader,
        file: &FileRecord,
        now: &str,
    ) -> Result<Registration, OpError> {
        // An instance stored already (its series moved since, say) is a re-send, not a conflict.
        if let Some(key) = stored_instance(conn, tenant, &header.sop_instance_uid).await? {
            return Ok(Registration { stored: false, instance_key: key, ..Default::default() });
        }
        let (study_key, study_created) = study_key(conn, tenant, calling_aet, header, now).await?;
        let (series_key, series_created) = series_key(conn, tenant, study_key, header, now).await?;
        if series_created {
            self.gains.entry(study_key).or_default().series_created += 1;
        }
        self.remember(tenant, header, study_key, series_key);
        let entry = Entry { tenant, calling_aet, header, file };
        let Some(instance_key) = inserted_key(&insert_instances(conn, &[(&entry, series_key)], now).await?, &entry) else {
            // Stored meanwhile by a concurrent unit: a re-send.
            let key = stored_instance(conn, tenant, &header.sop_instance_uid).await?.unwrap_or_default();
            return Ok(Registration { stored: false, instance_key: key, ..Default::default() });
        };
        self.gain_bytes((study_key, series_key), file.weight());
        Ok(Registration { stored: true, study_created, series_created, instance_key })
    }

    /// The registration of `entry`, inserted into the series `keys` (study, series) by a
    /// statement that answered `inserted`, whose bytes then count towards its study; `None` for
    /// a re-send (stored already, or another entry of the same instance was inserted).
    fn settle(&mut self, inserted: &Inserted, entry: &Entry<'_>, keys: (i64, i64)) -> Option<Registration> {
        let instance_key = inserted_key(inserted, entry)?;
        self.gain_bytes(keys, entry.file.weight());
        Some(Registration { stored: true, instance_key, ..Default::default() })
    }

    /// Counts `bytes` of a new instance of the series `keys` (study, series) towards its study.
    fn gain_bytes(&mut self, (study_key, series_key): (i64, i64), bytes: u64) {
        *self.gains.entry(study_key).or_default().bytes.entry(series_key).or_default() += bytes as i64;
    }

    fn remember(&mut self, tenant: &str, header: &InstanceHeader, study_key: i64, series_key: i64) {
        self.studies.insert((tenant.to_owned(), header.study_uid.clone()), study_key);
        self.series.insert((tenant.to_owned(), header.series_uid.clone()), (series_key, study_key));
    }

    /// Forgets every study and series it knew, and the bytes not written yet: for a unit of work
    /// that did not commit, whose keys may not exist.
    pub fn forget(&mut self) {
        *self = Self::default();
    }

    /// Adds to each study, in key order, the series created in it and the bytes its instances
    /// registered here weigh. The bytes of a series go to the study it is in once its row is
    /// shared (see [`where_series_are`]): a swap or move that committed since it was looked up
    /// took it, with the instances just added, elsewhere, and recounted without them. A deprecated
    /// series does not count in its study's size (see series/deprecation).
    pub async fn finish(&mut self, conn: &mut AnyConnection) -> Result<(), OpError> {
        let gains = std::mem::take(&mut self.gains);
        let series: Vec<i64> = gains.values().flat_map(|gain| gain.bytes.keys().copied()).collect();
        let standing = where_series_are(conn, &series).await?;
        // Study key -> (series created, bytes).
        let mut totals: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
        for (study_key, gain) in gains {
            if gain.series_created > 0 {
                totals.entry(study_key).or_default().0 += gain.series_created;
            }
            for (series_key, bytes) in gain.bytes {
                if let Some(&(study_key, false)) = standing.get(&series_key) {
                    totals.entry(study_key).or_default().1 += bytes;
                }
            }
        }
        for (study_key, (series, bytes)) in totals {
            sqlx::query(ADD_TOTALS).bind(study_key).bind(series).bind(bytes).execute(&mut *conn).await?;
        }
        Ok(())
    }

    /// The study and series keys of `header` when both were seen in this unit; a series seen
    /// under another study is a conflict.
    fn known(&self, tenant: &str, header: &InstanceHeader) -> Result<Option<(i64, i64)>, OpError> {
        let key = |uid: &str| (tenant.to_owned(), uid.to_owned());
        let (Some(&study_key), Some(&(series_key, owner))) =
            (self.studies.get(&key(&header.study_uid)), self.series.get(&key(&header.series_uid)))
        else {
            return Ok(None);
        };
        if owner != study_key {
            return Err(series_elsewhere(header));
        }
        Ok(Some((study_key, series_key)))
    }
}

/// Adds the bytes of a series' new instances (`$2`) to its study (`$1`), unless the series (`$3`)
/// is deprecated (the SQLite committer's way, see [`Registrar::finish_direct`]).
const ADD_SIZE: &str = "UPDATE studies SET size_bytes = size_bytes + $2 WHERE id = $1 \
     AND NOT EXISTS (SELECT 1 FROM series WHERE id = $3 AND deprecated = 1)";

/// Adds series created (`$2`) and bytes (`$3`) to a study's totals (`$1`).
const ADD_TOTALS: &str = "UPDATE studies SET series_count = series_count + $2, size_bytes = size_bytes + $3 WHERE id = $1";

/// Adds series created (`$2`) to a study's count (`$1`) (the SQLite committer's way).
const ADD_SERIES: &str = "UPDATE studies SET series_count = series_count + $2 WHERE id = $1";

/// The keys of a study (`$2`), of a series (`$3`) and of the series' study, for a tenant (`$1`).
const FILED: &str = "SELECT (SELECT id FROM studies WHERE tenant = $1 AND study_uid = $2), \
     (SELECT id FROM series WHERE tenant = $1 AND series_uid = $3), \
     (SELECT study_fk FROM series WHERE tenant = $1 AND series_uid = $3)";

/// The key of a stored instance, by tenant (`$1`) and SOP Instance UID (`$2`).
const STORED_INSTANCE: &str = "SELECT id FROM instances WHERE tenant = $1 AND sop_instance_uid = $2";

fn series_elsewhere(header: &InstanceHeader) -> OpError {
    OpError::Conflict(format!("series `{}` belongs to another study than `{}`", header.series_uid, header.study_uid))
}

/// Where an instance's study and series stand in the index, found with one statement
/// ([`FILED`]).
struct Filed {
    study: Option<i64>,
    /// The series' key and its study's.
    series: Option<(i64, i64)>,
}

impl Filed {
    /// From the three columns of [`FILED`].
    fn of(study: Option<i64>, series: Option<i64>, owner: Option<i64>) -> Self {
        Self { study, series: series.zip(owner) }
    }

    /// The keys (study, series) when both exist and the series is in that study.
    fn in_its_study(&self) -> Option<(i64, i64)> {
        match (self.study, self.series) {
            (Some(study), Some((series, owner))) if owner == study => Some((study, series)),
            _ => None,
        }
    }
}

async fn filed(conn: &mut AnyConnection, tenant: &str, header: &InstanceHeader) -> Result<Filed, OpError> {
    let row = sqlx::query(FILED).bind(tenant).bind(&header.study_uid).bind(&header.series_uid).fetch_one(&mut *conn).await?;
    Ok(Filed::of(row.try_get(0)?, row.try_get(1)?, row.try_get(2)?))
}

/// The study each of the series `keys` is in, and whether it is deprecated, as committed now,
/// with one statement (one parameter per series a unit added to: a committer group's at most):
/// on PostgreSQL their rows are shared in key order until the unit of work ends, so that no unit
/// moves or deprecates them before this one commits (one doing so already is waited for), and
/// their studies are locked after them (see [`crate::db::lock_studies`] for the order).
async fn where_series_are(conn: &mut AnyConnection, keys: &[i64]) -> Result<HashMap<i64, (i64, bool)>, OpError> {
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    let shared = if crate::db::is_postgres(conn) { " FOR SHARE" } else { "" };
    let list: Vec<String> = (1..=keys.len()).map(|i| format!("${i}")).collect();
    let sql = format!("SELECT id, study_fk, deprecated FROM series WHERE id IN ({}) ORDER BY id{shared}", list.join(", "));
    // Only placeholders are built into the text; every value is bound.
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for key in keys {
        query = query.bind(*key);
    }
    let mut standing = HashMap::with_capacity(keys.len());
    for row in query.fetch_all(&mut *conn).await? {
        standing.insert(row.try_get(0)?, (row.try_get(1)?, row.try_get::<i64, _>(2)? != 0));
    }
    Ok(standing)
}

/// The key of the instance `sop_instance_uid` when it is stored already.
async fn stored_instance(conn: &mut AnyConnection, tenant: &str, sop_instance_uid: &str) -> Result<Option<i64>, OpError> {
    let row = sqlx::query(STORED_INSTANCE).bind(tenant).bind(sop_instance_uid).fetch_optional(&mut *conn).await?;
    Ok(row.map(|row| row.try_get(0)).transpose()?)
}

/// The study of `header`, found or created (with its patient); true when created.
async fn study_key(
    conn: &mut AnyConnection,
    tenant: &str,
    calling_aet: &str,
    header: &InstanceHeader,
    now: &str,
) -> Result<(i64, bool), OpError> {
    const FIND: &str = "SELECT id FROM studies WHERE tenant = $1 AND study_uid = $2";
    if let Some(row) = sqlx::query(FIND).bind(tenant).bind(&header.study_uid).fetch_optional(&mut *conn).await? {
        return Ok((row.try_get(0)?, false));
    }
    let patient = patient_key(conn, tenant, header, now).await?;
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
    .bind(now)
    .bind(calling_aet)
    .bind(&header.station_name)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(match row {
        Some(row) => (row.try_get(0)?, true),
        // Created meanwhile by a concurrent unit (committed before our insert).
        None => (select_id(conn, FIND, tenant, &header.study_uid).await?, false),
    })
}

/// The series of `header` in the study `study_key`, found or created; true when created. A
/// series filed under another study is a conflict.
async fn series_key(
    conn: &mut AnyConnection,
    tenant: &str,
    study_key: i64,
    header: &InstanceHeader,
    now: &str,
) -> Result<(i64, bool), OpError> {
    const FIND: &str = "SELECT id, study_fk FROM series WHERE tenant = $1 AND series_uid = $2";
    let owned = |row: sqlx::any::AnyRow| -> Result<i64, OpError> {
        if row.try_get::<i64, _>(1)? != study_key {
            return Err(series_elsewhere(header));
        }
        Ok(row.try_get(0)?)
    };
    if let Some(row) = sqlx::query(FIND).bind(tenant).bind(&header.series_uid).fetch_optional(&mut *conn).await? {
        return Ok((owned(row)?, false));
    }
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
    .bind(now)
    .fetch_optional(&mut *conn)
    .await?;
    match row {
        // Counted in its study by `Registrar::finish`.
        Some(row) => Ok((row.try_get(0)?, true)),
        // Created meanwhile by a concurrent unit: it must be in this study too.
        None => Ok((owned(sqlx::query(FIND).bind(tenant).bind(&header.series_uid).fetch_one(&mut *conn).await?)?, false)),
    }
}

/// Instances inserted with one statement, at most (12 parameters each).
const INSERT_CHUNK: usize = 64;

/// The statement inserting `rows` instances (12 values each, in the order `insert_instances`
/// binds them) that answers the key, tenant, SOP Instance UID and file path of each row
/// inserted ([`Inserted`]).
fn insert_instances_sql(rows: usize) -> String {
    const COLUMNS: usize = 12;
    let values: Vec<String> = (0..rows)
        .map(|row| {
            let params: Vec<String> = (1..=COLUMNS).map(|column| format!("${}", row * COLUMNS + column)).collect();
            format!("({})", params.join(", "))
        })
        .collect();
    format!(
        "INSERT INTO instances (tenant, sop_instance_uid, sop_class_uid, series_fk, instance_number, medium, file_path, \
         size_bytes, digest, attributes, transfer_syntax, received_at) VALUES {} \
         ON CONFLICT (tenant, sop_instance_uid) DO NOTHING RETURNING id, tenant, sop_instance_uid, file_path",
        values.join(", ")
    )
}

/// Inserts the rows of instances (each with its series' key) with one statement; answers the
/// rows inserted. An instance stored already is left out, and so are all entries of an instance
/// but one.
async fn insert_instances(conn: &mut AnyConnection, rows: &[(&Entry<'_>, i64)], now: &str) -> Result<Inserted, OpError> {
    let sql = insert_instances_sql(rows.len());
    // Only placeholders are built into the text; every value is bound.
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for (entry, series_key) in rows {
        let Entry { tenant, header, .. } = **entry;
        query = query.bind(tenant).bind(&header.sop_instance_uid).bind(&header.sop_class_uid).bind(*series_key);
        query = bind_row_values(query, entry, now);
    }
    let mut inserted = HashMap::with_capacity(rows.len());
    for row in query.fetch_all(&mut *conn).await? {
        inserted.insert((row.try_get(1)?, row.try_get(2)?), (row.try_get(0)?, row.try_get(3)?));
    }
    Ok(inserted)
}

/// Binds the values of an instance's row that follow its keys, in the order both insert
/// statements take them: instance number, medium, path, size, digest, attributes, transfer
/// syntax and time received.
fn bind_row_values<'q>(
    query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    entry: &Entry<'q>,
    now: &'q str,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    let Entry { header, file, .. } = *entry;
    query
        .bind(header.instance_number)
        .bind(&file.medium)
        .bind(&file.relative_path)
        .bind(file.size as i64)
        .bind(&file.digest)
        .bind(attributes_json(header))
        .bind(&header.transfer_syntax)
        .bind(now)
}

/// The rows an insert statement inserted: (tenant, SOP Instance UID) -> (key, file path).
type Inserted = HashMap<(String, String), (i64, String)>;

/// The key of the row inserted for `entry`, if its file is the one the row records: of several
/// entries of one instance in a statement, the database inserts one, in an order SQL does not
/// promise, and the others are re-sends.
fn inserted_key(inserted: &Inserted, entry: &Entry<'_>) -> Option<i64> {
    match inserted.get(&(entry.tenant.to_owned(), entry.header.sop_instance_uid.clone())) {
        Some((key, path)) if *path == entry.file.relative_path => Some(*key),
        _ => None,
    }
}

/// The instance's indexed attributes, as stored (a JSON object).
fn attributes_json(header: &InstanceHeader) -> String {
    serde_json::to_string(&header.attributes).unwrap_or_else(|_| "{}".to_owned())
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
    .bind(h.birth_date.as_deref().filter(|d| super::archive::is_date(d)))
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
