//! PostgreSQL: the instances of existing studies and series registered by one statement, which
//! also adds their bytes to their studies and commits on its own (one round trip instead of a
//! unit's five or more). Anything else (a new study or series, a re-send) is left for the
//! general way ([`super::Registrar::register_all`]).

use sqlx::{AnyConnection, Row};

use super::{Entry, Inserted, Registration, bind_row_values, inserted_key};
use crate::db::archive::OpError;
use crate::db::now_text;

/// Values bound per instance.
const COLUMNS: usize = 13;

/// The statement for `rows` instances: each is inserted when its series exists in its study
/// (and its SOP Instance UID is new), and each study gains the bytes of its instances in series
/// that are not deprecated, as [`super::Registrar::finish`] adds them (an instance reaching the
/// committer has no file stored beside it, see [`super::FileRecord::beside`]). The series rows are
/// shared, then the studies locked, each in key order (`standing`, `locked`: rows are locked as
/// the sort hands them out, and what follows joins them), as [`crate::db::lock_studies`] says
/// every unit does. Shared, a series row is read as last committed: a swap, move or deprecation
/// under way when the statement began is waited for, and the bytes go to the study the series
/// is in after it (or nowhere, deprecated), which recounted without them. In whatever order the
/// planner would update the studies, a unit recounting two of them cannot hold one while this
/// statement holds the other.
fn statement(rows: usize) -> String {
    let values: Vec<String> = (0..rows)
        .map(|row| {
            let params: Vec<String> = (1..=COLUMNS)
                .map(|column| {
                    // instance_number and size_bytes: typed, for the arithmetic and the insert.
                    let cast = if matches!(column, 6 | 9) { "::bigint" } else { "" };
                    format!("${}{cast}", row * COLUMNS + column)
                })
                .collect();
            format!("({})", params.join(", "))
        })
        .collect();
    format!(
        "WITH v (tenant, sop_instance_uid, sop_class_uid, study_uid, series_uid, instance_number, medium, file_path, \
         size_bytes, digest, attributes, transfer_syntax, received_at) AS (VALUES {}), \
         ins AS (INSERT INTO instances (tenant, sop_instance_uid, sop_class_uid, series_fk, instance_number, medium, \
         file_path, size_bytes, digest, attributes, transfer_syntax, received_at) \
         SELECT v.tenant, v.sop_instance_uid, v.sop_class_uid, se.id, v.instance_number, v.medium, v.file_path, \
         v.size_bytes, v.digest, v.attributes, v.transfer_syntax, v.received_at \
         FROM v JOIN series se ON se.tenant = v.tenant AND se.series_uid = v.series_uid \
         JOIN studies st ON st.id = se.study_fk AND st.study_uid = v.study_uid \
         ON CONFLICT (tenant, sop_instance_uid) DO NOTHING \
         RETURNING id, tenant, sop_instance_uid, file_path, series_fk, size_bytes), \
         standing AS (SELECT se.id, se.study_fk, se.deprecated FROM series se \
         WHERE se.id IN (SELECT series_fk FROM ins) ORDER BY se.id FOR SHARE), \
         gained AS (SELECT se.study_fk, sum(ins.size_bytes) AS bytes FROM ins JOIN standing se ON se.id = ins.series_fk \
         WHERE se.deprecated = 0 GROUP BY se.study_fk), \
         locked AS (SELECT s.id FROM studies s WHERE s.id IN (SELECT study_fk FROM gained) ORDER BY s.id FOR NO KEY UPDATE), \
         added AS (UPDATE studies s SET size_bytes = s.size_bytes + g.bytes \
         FROM gained g JOIN locked l ON l.id = g.study_fk WHERE s.id = g.study_fk) \
         SELECT id, tenant, sop_instance_uid, file_path FROM ins",
        values.join(", ")
    )
}

/// Registers those of `entries` whose study and series exist, with the series in that study,
/// with one statement outside any unit of work (`conn` must not be in one): it commits on its
/// own, all or nothing. Answers `None` for each other entry, left for the general way: something
/// to create, a conflict, or a re-send (stored already, or another entry of the same instance).
/// PostgreSQL takes up to 65,535 parameters: 5,041 entries.
pub async fn register_existing(conn: &mut AnyConnection, entries: &[Entry<'_>]) -> Result<Vec<Option<Registration>>, OpError> {
    let now = now_text();
    // Only placeholders are built into the text; every value is bound.
    let mut query = sqlx::query(sqlx::AssertSqlSafe(statement(entries.len())));
    for entry in entries {
        let Entry { tenant, header, .. } = *entry;
        query = query
            .bind(tenant)
            .bind(&header.sop_instance_uid)
            .bind(&header.sop_class_uid)
            .bind(&header.study_uid)
            .bind(&header.series_uid);
        query = bind_row_values(query, entry, &now);
    }
    let mut inserted = Inserted::with_capacity(entries.len());
    for row in query.fetch_all(&mut *conn).await? {
        inserted.insert((row.try_get(1)?, row.try_get(2)?), (row.try_get(0)?, row.try_get(3)?));
    }
    let registration = |instance_key| Registration { stored: true, instance_key, ..Default::default() };
    Ok(entries.iter().map(|entry| inserted_key(&inserted, entry).map(registration)).collect())
}
