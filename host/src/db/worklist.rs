//! The modality worklist query: orders of one tenant matched on the keys a modality sends, with
//! DICOM matching rules (universal, single value, wildcards, UID lists, ranges).

use sqlx::{AnyPool, AssertSqlSafe, Row};

use super::archive::{Order, Patient};

/// What a worklist C-FIND asks for; `None` is universal matching.
#[derive(Debug, Clone, Default)]
pub struct WorklistQuery {
    pub station_ae_title: Option<String>,
    pub station_name: Option<String>,
    pub modality: Option<String>,
    /// `YYYYMMDD`, or a range `A-B`, `-B`, `A-`.
    pub start_date: Option<String>,
    /// `HHMM[SS]`, or a range.
    pub start_time: Option<String>,
    pub patient_id: Option<String>,
    /// Matched case-insensitively, with `*` and `?` wildcards.
    pub patient_name: Option<String>,
    pub accession_number: Option<String>,
    /// One UID or several separated by `\`.
    pub study_uids: Option<String>,
}

/// SQL text plus the values bound to its `$n` parameters.
struct Filter {
    clauses: Vec<String>,
    binds: Vec<String>,
}

impl Filter {
    fn bind(&mut self, value: String) -> String {
        self.binds.push(value);
        format!("${}", self.binds.len())
    }

    /// Single value or wildcard matching of `column` (optionally case-insensitive).
    fn text(&mut self, column: &str, value: &str, case_insensitive: bool) {
        let wildcard = value.contains(['*', '?']);
        let (lhs, wrap): (String, fn(String) -> String) =
            if case_insensitive { (format!("LOWER({column})"), |p| format!("LOWER({p})")) } else { (column.to_owned(), |p| p) };
        if wildcard {
            if value.chars().all(|c| c == '*') {
                return; // `*` alone matches everything
            }
            let p = self.bind(super::like_pattern(value));
            self.clauses.push(format!("{lhs} LIKE {} ESCAPE '\\'", wrap(p)));
        } else {
            let p = self.bind(value.to_owned());
            self.clauses.push(format!("{lhs} = {}", wrap(p)));
        }
    }

    /// Range matching (`A-B`, `-B`, `A-`, or a single value) of a date or time column.
    fn range(&mut self, column: &str, value: &str, normalize: fn(&str, bool) -> String) {
        match value.split_once('-') {
            Some((from, to)) => {
                if !from.is_empty() {
                    let p = self.bind(normalize(from, false));
                    self.clauses.push(format!("{column} >= {p}"));
                }
                if !to.is_empty() {
                    let p = self.bind(normalize(to, true));
                    self.clauses.push(format!("{column} <= {p}"));
                }
            }
            None => {
                if normalize(value, false) == normalize(value, true) {
                    let p = self.bind(value.to_owned());
                    self.clauses.push(format!("{column} = {p}"));
                } else {
                    let (lo, hi) = (self.bind(normalize(value, false)), self.bind(normalize(value, true)));
                    self.clauses.push(format!("{column} >= {lo} AND {column} <= {hi}"));
                }
            }
        }
    }
}

fn same(value: &str, _upper: bool) -> String {
    value.to_owned()
}

/// A time bound as HHMMSS text: missing parts are the lowest (or, for an upper bound, highest)
/// values, so that `1200` as an upper bound includes 12:00:59.
fn time_bound(value: &str, upper: bool) -> String {
    if value.contains('.') {
        return value.to_owned(); // a full time with its fraction is its own bound
    }
    let mut out: String = value.chars().take_while(|c| c.is_ascii_digit()).take(6).collect();
    let fill = if upper { "995959" } else { "000000" };
    out.push_str(&fill[out.len()..]);
    if upper {
        out.push_str(".999999");
    }
    out
}

/// Scheduled orders of `tenant` matching `query`, by scheduled start, with their patients.
pub async fn find(pool: &AnyPool, tenant: &str, query: &WorklistQuery, limit: u32) -> Result<Vec<(Order, Patient)>, sqlx::Error> {
    let mut f = Filter { clauses: Vec::new(), binds: vec![tenant.to_owned()] };
    f.clauses.push("o.tenant = $1".into());
    if let Some(v) = &query.station_ae_title {
        f.text("o.station_aet", v, false);
    }
    if let Some(v) = &query.station_name {
        f.text("o.station_name", v, false);
    }
    if let Some(v) = &query.modality {
        f.text("o.modality", v, false);
    }
    if let Some(v) = &query.start_date {
        f.range("o.start_date", v, same);
    }
    if let Some(v) = &query.start_time {
        f.range("o.start_time", v, time_bound);
    }
    if let Some(v) = &query.patient_id {
        f.text("p.patient_id", v, false);
    }
    if let Some(v) = &query.patient_name {
        f.text("p.name", v, true);
    }
    if let Some(v) = &query.accession_number {
        f.text("o.accession_number", v, false);
    }
    if let Some(v) = &query.study_uids {
        let uids: Vec<String> = v.split('\\').map(|u| u.trim().to_owned()).filter(|u| !u.is_empty()).collect();
        if !uids.is_empty() {
            let params: Vec<String> = uids.into_iter().map(|u| f.bind(u)).collect();
            f.clauses.push(format!("o.study_uid IN ({})", params.join(", ")));
        }
    }
    let sql = format!(
        "SELECT o.body, p.id, p.patient_id, p.issuer, p.name, p.birth_date, p.sex FROM orders o \
         JOIN patients p ON p.id = o.patient_fk WHERE {} ORDER BY o.start_date, o.start_time, o.id LIMIT {limit}",
        f.clauses.join(" AND ")
    );
    // Every value is bound; only our own integer limit is written into the text.
    let mut q = sqlx::query(AssertSqlSafe(sql));
    for value in f.binds {
        q = q.bind(value);
    }
    let rows = q.fetch_all(pool).await?;
    rows.iter()
        .map(|row| {
            let body: String = row.try_get(0)?;
            let mut order: Order = serde_json::from_str(&body).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
            let patient = Patient {
                key: row.try_get(1)?,
                patient_id: row.try_get(2)?,
                issuer: row.try_get(3)?,
                name: row.try_get(4)?,
                birth_date: row.try_get(5)?,
                sex: row.try_get(6)?,
            };
            order.patient_key = patient.key;
            Ok((order, patient))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_bounds_fill_what_is_missing() {
        assert_eq!(time_bound("1200", false), "120000");
        assert_eq!(time_bound("1200", true), "120059.999999");
        assert_eq!(time_bound("155430", true), "155430.999999");
    }
}
