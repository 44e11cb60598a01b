//! WADO-RS lookups: where the stored files of a study, a series or one instance of a tenant are,
//! deprecated rows left out, in series then instance order.

use sqlx::{AnyPool, AssertSqlSafe, Row};

/// One stored instance file.
#[derive(Debug, Clone)]
pub struct StoredFile {
    pub sop_instance_uid: String,
    pub sop_class_uid: String,
    pub series_uid: String,
    pub medium: String,
    pub relative_path: String,
    pub transfer_syntax: String,
    pub size: i64,
}

/// The files of `study_uid`, narrowed to `series_uid` and then to `sop_instance_uid` when given.
pub async fn files(
    pool: &AnyPool,
    tenant: &str,
    study_uid: &str,
    series_uid: Option<&str>,
    sop_instance_uid: Option<&str>,
) -> Result<Vec<StoredFile>, sqlx::Error> {
    let mut sql = String::from(
        "SELECT i.sop_instance_uid, i.sop_class_uid, se.series_uid, i.medium, i.file_path, i.transfer_syntax, i.size_bytes \
         FROM instances i JOIN series se ON se.id = i.series_fk JOIN studies st ON st.id = se.study_fk \
         WHERE i.tenant = $1 AND st.study_uid = $2 AND i.deprecated = 0 AND se.deprecated = 0 AND st.deprecated = 0",
    );
    if series_uid.is_some() {
        sql.push_str(" AND se.series_uid = $3");
    }
    if sop_instance_uid.is_some() {
        sql.push_str(if series_uid.is_some() { " AND i.sop_instance_uid = $4" } else { " AND i.sop_instance_uid = $3" });
    }
    sql.push_str(" ORDER BY se.id, COALESCE(i.instance_number, 0), i.id");
    let mut query = sqlx::query(AssertSqlSafe(sql)).bind(tenant).bind(study_uid);
    if let Some(series) = series_uid {
        query = query.bind(series);
    }
    if let Some(sop) = sop_instance_uid {
        query = query.bind(sop);
    }
    query
        .fetch_all(pool)
        .await?
        .iter()
        .map(|row| {
            Ok(StoredFile {
                sop_instance_uid: row.try_get(0)?,
                sop_class_uid: row.try_get(1)?,
                series_uid: row.try_get(2)?,
                medium: row.try_get(3)?,
                relative_path: row.try_get(4)?,
                transfer_syntax: row.try_get(5)?,
                size: row.try_get(6)?,
            })
        })
        .collect()
}
