//! QIDO-RS searches over the archive index: the studies, series or instances of one tenant that
//! match a set of attribute filters, one page at a time, deprecated rows left out. The SQL is
//! built from fixed fragments; every value the client sent is bound, never interpolated.

use serde_json::{Map, Value};
use sqlx::any::AnyRow;
use sqlx::{AnyPool, AssertSqlSafe, Row};

use super::Backend;
use super::like_pattern;

/// What a search returns: one result per study, series or instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Study,
    Series,
    Instance,
}

/// An indexed column a filter can test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    PatientName,
    PatientId,
    PatientBirthDate,
    PatientSex,
    StudyUid,
    StudyDate,
    AccessionNumber,
    StudyDescription,
    ReferringPhysician,
    SeriesUid,
    Modality,
    SeriesDescription,
    SeriesNumber,
    SopInstanceUid,
    SopClassUid,
    InstanceNumber,
}

impl Column {
    fn sql(self) -> &'static str {
        match self {
            Column::PatientName => "p.name",
            Column::PatientId => "p.patient_id",
            Column::PatientBirthDate => "p.birth_date",
            Column::PatientSex => "p.sex",
            Column::StudyUid => "st.study_uid",
            Column::StudyDate => "st.study_date",
            Column::AccessionNumber => "st.accession_number",
            Column::StudyDescription => "st.description",
            Column::ReferringPhysician => "st.referring_physician",
            Column::SeriesUid => "se.series_uid",
            Column::Modality => "se.modality",
            Column::SeriesDescription => "se.description",
            Column::SeriesNumber => "se.series_number",
            Column::SopInstanceUid => "i.sop_instance_uid",
            Column::SopClassUid => "i.sop_class_uid",
            Column::InstanceNumber => "i.instance_number",
        }
    }

    /// The lowest level whose search can test this column.
    pub fn level(self) -> Level {
        match self {
            Column::SeriesUid | Column::Modality | Column::SeriesDescription | Column::SeriesNumber => Level::Series,
            Column::SopInstanceUid | Column::SopClassUid | Column::InstanceNumber => Level::Instance,
            _ => Level::Study,
        }
    }
}

/// One matching condition.
#[derive(Debug, Clone)]
pub enum Filter {
    /// Equal to the value; case-insensitively when `fold`.
    Equals { column: Column, value: String, fold: bool },
    /// A DICOM wildcard value (`*` any run, `?` one character); case-insensitively when `fold`.
    Wildcard { column: Column, value: String, fold: bool },
    /// Equal to one of the values.
    AnyOf(Column, Vec<String>),
    /// Within an inclusive range, either end open (text comparison: DICOM dates sort as text).
    Range(Column, Option<String>, Option<String>),
    /// An integer column equal to the value.
    Number(Column, i64),
    /// The study has a series, not deprecated, of one of these modalities.
    ModalitiesInStudy(Vec<String>),
}

/// A search: level, filters and page.
#[derive(Debug, Clone)]
pub struct Search {
    pub level: Level,
    pub filters: Vec<Filter>,
    pub limit: i64,
    pub offset: i64,
}

/// One result; the fields of levels below the search level are empty.
#[derive(Debug, Clone, Default)]
pub struct Found {
    pub study_key: i64,
    pub study_uid: String,
    pub study_date: Option<String>,
    pub study_time: Option<String>,
    pub accession_number: Option<String>,
    pub referring_physician: Option<String>,
    pub study_description: Option<String>,
    pub patient_name: Option<String>,
    pub patient_id: Option<String>,
    pub patient_birth_date: Option<String>,
    pub patient_sex: Option<String>,
    /// Modalities of the study's series (study level only).
    pub modalities: Vec<String>,
    pub study_series: Option<i64>,
    pub study_instances: Option<i64>,
    pub series_uid: Option<String>,
    pub modality: Option<String>,
    pub series_description: Option<String>,
    pub series_number: Option<i64>,
    pub series_instances: Option<i64>,
    pub sop_class_uid: Option<String>,
    pub sop_instance_uid: Option<String>,
    pub instance_number: Option<i64>,
    /// Instance-level attributes kept at ingest (`rows`, `columns`, `numberOfFrames`, ...).
    pub attributes: Map<String, Value>,
}

const STUDY_COLUMNS: &str = "st.id AS study_key, st.study_uid, st.study_date, st.study_time, st.accession_number, \
    st.referring_physician, st.description AS study_description, p.name AS patient_name, p.patient_id, \
    p.birth_date, p.sex";
const SERIES_COLUMNS: &str = "se.series_uid, se.modality, se.description AS series_description, se.series_number";

/// Runs `search` for `tenant`.
pub async fn search(pool: &AnyPool, backend: Backend, tenant: &str, search: &Search) -> Result<Vec<Found>, sqlx::Error> {
    let (select, from) = match search.level {
        Level::Study => (
            format!(
                "{STUDY_COLUMNS}, \
                 (SELECT COUNT(*) FROM series se WHERE se.study_fk = st.id AND se.deprecated = 0) AS n_series, \
                 (SELECT COUNT(*) FROM instances i JOIN series se ON se.id = i.series_fk \
                  WHERE se.study_fk = st.id AND se.deprecated = 0 AND i.deprecated = 0) AS n_instances"
            ),
            "studies st JOIN patients p ON p.id = st.patient_fk WHERE st.tenant = $1 AND st.deprecated = 0",
        ),
        Level::Series => (
            format!(
                "{STUDY_COLUMNS}, {SERIES_COLUMNS}, \
                 (SELECT COUNT(*) FROM instances i WHERE i.series_fk = se.id AND i.deprecated = 0) AS n_instances"
            ),
            "series se JOIN studies st ON st.id = se.study_fk JOIN patients p ON p.id = st.patient_fk \
             WHERE se.tenant = $1 AND se.deprecated = 0 AND st.deprecated = 0",
        ),
        Level::Instance => (
            format!("{STUDY_COLUMNS}, {SERIES_COLUMNS}, i.sop_class_uid, i.sop_instance_uid, i.instance_number, i.attributes"),
            "instances i JOIN series se ON se.id = i.series_fk JOIN studies st ON st.id = se.study_fk \
             JOIN patients p ON p.id = st.patient_fk \
             WHERE i.tenant = $1 AND i.deprecated = 0 AND se.deprecated = 0 AND st.deprecated = 0",
        ),
    };
    let order = match search.level {
        Level::Study => "st.id",
        Level::Series => "se.id",
        Level::Instance => "i.id",
    };
    let mut binds = Binds(vec![Bind::Text(tenant.to_owned())]);
    let mut sql = format!("SELECT {select} FROM {from}");
    for filter in &search.filters {
        sql.push_str(" AND ");
        sql.push_str(&condition(filter, backend, &mut binds));
    }
    let limit = binds.push(Bind::Int(search.limit));
    let offset = binds.push(Bind::Int(search.offset));
    sql.push_str(&format!(" ORDER BY {order} LIMIT {limit} OFFSET {offset}"));

    let rows = binds.apply(sqlx::query(AssertSqlSafe(sql))).fetch_all(pool).await?;
    let mut found = rows.iter().map(|row| found(row, search.level)).collect::<Result<Vec<_>, _>>()?;
    if search.level == Level::Study && !found.is_empty() {
        add_modalities(pool, &mut found).await?;
    }
    Ok(found)
}

/// The SQL condition of `filter`, its values added to `binds`.
fn condition(filter: &Filter, backend: Backend, binds: &mut Binds) -> String {
    match filter {
        Filter::Equals { column, value, fold: false } => format!("{} = {}", column.sql(), binds.text(value)),
        Filter::Equals { column, value, fold: true } => format!("LOWER({}) = LOWER({})", column.sql(), binds.text(value)),
        Filter::Wildcard { column, value, fold: true } => {
            format!("LOWER({}) LIKE LOWER({}) ESCAPE '\\'", column.sql(), binds.text(&like_pattern(value)))
        }
        // Case-sensitive: SQLite's LIKE folds ASCII case, its GLOB does not.
        Filter::Wildcard { column, value, fold: false } => match backend {
            Backend::Sqlite => format!("{} GLOB {}", column.sql(), binds.text(&glob_pattern(value))),
            Backend::Postgres => format!("{} LIKE {} ESCAPE '\\'", column.sql(), binds.text(&like_pattern(value))),
        },
        Filter::AnyOf(column, values) => format!("{} IN ({})", column.sql(), binds.list(values)),
        Filter::Range(column, from, to) => {
            let mut parts = Vec::new();
            if let Some(from) = from {
                parts.push(format!("{} >= {}", column.sql(), binds.text(from)));
            }
            if let Some(to) = to {
                parts.push(format!("{} <= {}", column.sql(), binds.text(to)));
            }
            if parts.is_empty() { "1 = 1".to_owned() } else { parts.join(" AND ") }
        }
        Filter::Number(column, value) => format!("{} = {}", column.sql(), binds.push(Bind::Int(*value))),
        Filter::ModalitiesInStudy(values) => format!(
            "EXISTS (SELECT 1 FROM series ms WHERE ms.study_fk = st.id AND ms.deprecated = 0 AND ms.modality IN ({}))",
            binds.list(values)
        ),
    }
}

/// The distinct modalities of each study's series, in one query for the page.
async fn add_modalities(pool: &AnyPool, found: &mut [Found]) -> Result<(), sqlx::Error> {
    let mut binds = Binds(Vec::new());
    let keys: Vec<String> = found.iter().map(|f| binds.push(Bind::Int(f.study_key))).collect();
    let sql = format!(
        "SELECT DISTINCT study_fk, modality FROM series WHERE deprecated = 0 AND modality IS NOT NULL \
         AND study_fk IN ({}) ORDER BY study_fk, modality",
        keys.join(", ")
    );
    for row in binds.apply(sqlx::query(AssertSqlSafe(sql))).fetch_all(pool).await? {
        let (study, modality): (i64, String) = (row.try_get(0)?, row.try_get(1)?);
        if let Some(f) = found.iter_mut().find(|f| f.study_key == study) {
            f.modalities.push(modality);
        }
    }
    Ok(())
}

fn found(row: &AnyRow, level: Level) -> Result<Found, sqlx::Error> {
    let mut f = Found {
        study_key: row.try_get("study_key")?,
        study_uid: row.try_get("study_uid")?,
        study_date: row.try_get("study_date")?,
        study_time: row.try_get("study_time")?,
        accession_number: row.try_get("accession_number")?,
        referring_physician: row.try_get("referring_physician")?,
        study_description: row.try_get("study_description")?,
        patient_name: row.try_get("patient_name")?,
        patient_id: row.try_get("patient_id")?,
        patient_birth_date: row.try_get("birth_date")?,
        patient_sex: row.try_get("sex")?,
        ..Found::default()
    };
    if level == Level::Study {
        f.study_series = Some(row.try_get("n_series")?);
        f.study_instances = Some(row.try_get("n_instances")?);
    }
    if level >= Level::Series {
        f.series_uid = row.try_get("series_uid")?;
        f.modality = row.try_get("modality")?;
        f.series_description = row.try_get("series_description")?;
        f.series_number = row.try_get("series_number")?;
    }
    if level == Level::Series {
        f.series_instances = Some(row.try_get("n_instances")?);
    }
    if level == Level::Instance {
        f.sop_class_uid = row.try_get("sop_class_uid")?;
        f.sop_instance_uid = row.try_get("sop_instance_uid")?;
        f.instance_number = row.try_get("instance_number")?;
        let attributes: String = row.try_get("attributes")?;
        if let Ok(Value::Object(map)) = serde_json::from_str(&attributes) {
            f.attributes = map;
        }
    }
    Ok(f)
}

/// A DICOM wildcard value as a SQLite `GLOB` pattern (`*` and `?` mean the same; `[` is quoted).
fn glob_pattern(value: &str) -> String {
    value.replace('[', "[[]")
}

enum Bind {
    Text(String),
    Int(i64),
}

/// Values to bind, in placeholder order (`$1` is the tenant).
struct Binds(Vec<Bind>);

impl Binds {
    /// Adds a value; returns its placeholder.
    fn push(&mut self, bind: Bind) -> String {
        self.0.push(bind);
        format!("${}", self.0.len())
    }

    fn text(&mut self, value: &str) -> String {
        self.push(Bind::Text(value.to_owned()))
    }

    fn list(&mut self, values: &[String]) -> String {
        values.iter().map(|v| self.text(v)).collect::<Vec<_>>().join(", ")
    }

    fn apply<'q>(
        self,
        mut query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
        for bind in self.0 {
            query = match bind {
                Bind::Text(text) => query.bind(text),
                Bind::Int(int) => query.bind(int),
            };
        }
        query
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_become_escaped_patterns() {
        assert_eq!(glob_pattern("A[1]*"), "A[[]1]*");
        assert_eq!(like_pattern("DOE*"), "DOE%");
        assert_eq!(like_pattern("D?E"), "D_E");
        assert_eq!(like_pattern("50%_a\\"), "50\\%\\_a\\\\");
    }
}
