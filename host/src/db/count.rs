//! `studies/count` in SQL: one `COUNT(*)` over the partial, covering `studies_count_*` indexes
//! (migration 0003), so that a count reads index entries only, never the table; without a filter,
//! the tenant's counter that triggers keep (`study_counts`, migration 0007).

use sqlx::AnyPool;

use super::Backend;

/// The filters of a count; an empty list or `None` does not filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CountFilter {
    /// `received_at >= from` (an RFC 3339 date prefix, `YYYY-MM-DD`).
    pub received_from: Option<String>,
    /// `received_at < to` (`YYYY-MM-DD`).
    pub received_to: Option<String>,
    /// `size_bytes >= min`.
    pub size_min: Option<i64>,
    /// `size_bytes <= max`.
    pub size_max: Option<i64>,
    pub aets: Vec<String>,
    pub exclude_aets: Vec<String>,
    pub stations: Vec<String>,
    pub exclude_stations: Vec<String>,
}

/// The index that serves a filter best: an include list is the most selective, then the date
/// range, then the size range. Named on SQLite (`INDEXED BY`), whose planner has no statistics
/// unless ANALYZE ran; PostgreSQL's planner chooses among the same indexes by itself.
fn best_index(f: &CountFilter) -> &'static str {
    if !f.aets.is_empty() {
        "studies_count_aet_cover"
    } else if !f.stations.is_empty() {
        "studies_count_station_cover"
    } else if f.received_from.is_some() || f.received_to.is_some() || (f.size_min.is_none() && f.size_max.is_none()) {
        "studies_count_received_cover"
    } else {
        "studies_count_size_cover"
    }
}

/// The SQL text and its bind values (all text or integers, in `$n` order).
pub fn count_sql(backend: Backend, filter: &CountFilter) -> (String, Vec<Bind>) {
    if *filter == CountFilter::default() {
        return ("SELECT COALESCE((SELECT countable FROM study_counts WHERE tenant = $1), 0)".to_owned(), Vec::new());
    }
    let mut sql = String::from("SELECT COUNT(*) FROM studies");
    if backend == Backend::Sqlite {
        sql.push_str(" INDEXED BY ");
        sql.push_str(best_index(filter));
    }
    // Literal predicates: they must match the partial indexes' WHERE for the indexes to apply.
    sql.push_str(" WHERE tenant = $1 AND deprecated = 0 AND series_count > 0");
    let mut binds = Vec::new();
    let next = |binds: &mut Vec<Bind>, value: Bind| {
        binds.push(value);
        format!("${}", binds.len() + 1)
    };
    if let Some(from) = &filter.received_from {
        let p = next(&mut binds, Bind::Text(from.clone()));
        sql.push_str(&format!(" AND received_at >= {p}"));
    }
    if let Some(to) = &filter.received_to {
        let p = next(&mut binds, Bind::Text(to.clone()));
        sql.push_str(&format!(" AND received_at < {p}"));
    }
    if let Some(min) = filter.size_min {
        let p = next(&mut binds, Bind::Int(min));
        sql.push_str(&format!(" AND size_bytes >= {p}"));
    }
    if let Some(max) = filter.size_max {
        let p = next(&mut binds, Bind::Int(max));
        sql.push_str(&format!(" AND size_bytes <= {p}"));
    }
    for (column, values, include) in [
        ("calling_aet", &filter.aets, true),
        ("calling_aet", &filter.exclude_aets, false),
        ("station_name", &filter.stations, true),
        ("station_name", &filter.exclude_stations, false),
    ] {
        if values.is_empty() {
            continue;
        }
        let list: Vec<String> = values.iter().map(|v| next(&mut binds, Bind::Text(v.clone()))).collect();
        let list = list.join(", ");
        if include {
            sql.push_str(&format!(" AND {column} IN ({list})"));
        } else {
            // A study without the value is not one of the excluded ones.
            sql.push_str(&format!(" AND ({column} IS NULL OR {column} NOT IN ({list}))"));
        }
    }
    (sql, binds)
}

/// A value bound to a placeholder of [`count_sql`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bind {
    Text(String),
    Int(i64),
}

/// Number of the tenant's studies that have series, are not deprecated, and match `filter`.
pub async fn count_studies(pool: &AnyPool, backend: Backend, tenant: &str, filter: &CountFilter) -> Result<i64, sqlx::Error> {
    let (sql, binds) = count_sql(backend, filter);
    let mut query = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql)).bind(tenant.to_owned());
    for bind in binds {
        query = match bind {
            Bind::Text(t) => query.bind(t),
            Bind::Int(i) => query.bind(i),
        };
    }
    query.fetch_one(pool).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_is_bound_in_order() {
        let filter = CountFilter {
            received_from: Some("2021-01-01".into()),
            size_max: Some(2047),
            aets: vec!["A".into(), "B".into()],
            exclude_stations: vec!["S".into()],
            ..Default::default()
        };
        let (sql, binds) = count_sql(Backend::Sqlite, &filter);
        assert!(sql.contains("INDEXED BY studies_count_aet_cover"), "{sql}");
        assert!(sql.contains("received_at >= $2 AND size_bytes <= $3 AND calling_aet IN ($4, $5)"), "{sql}");
        assert!(sql.ends_with("AND (station_name IS NULL OR station_name NOT IN ($6))"), "{sql}");
        assert_eq!(binds.len(), 5);
        let (sql, _) = count_sql(Backend::Postgres, &CountFilter { size_min: Some(0), ..Default::default() });
        assert!(!sql.contains("INDEXED BY"));
        let (sql, _) = count_sql(Backend::Sqlite, &CountFilter::default());
        assert!(sql.contains("FROM study_counts"), "{sql}");
    }
}
