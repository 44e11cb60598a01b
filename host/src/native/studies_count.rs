//! `GET studies/count`: the number of the tenant's studies (with series, not deprecated) that
//! match `receivedAt`, `studySize`, `aet`, `excludeAet`, `stationName`, `excludeStationName`.

use hyper::{Response, StatusCode};
use serde_json::json;

use super::single_param;
use crate::app::App;
use crate::auth::Tenant;
use crate::db::DbError;
use crate::db::count::{CountFilter, count_studies};
use crate::error::ApiError;
use crate::response::{self, Body};

/// Bytes per KB in `studySize`.
const KB: i64 = 1024;

pub async fn serve(app: &App, tenant: &Tenant, query: &[(String, String)]) -> Result<Response<Body>, ApiError> {
    let filter = parse_filter(query).map_err(ApiError::BadRequest)?;
    let started = std::time::Instant::now();
    let count = count_studies(app.db.reader(), app.db.backend(), tenant.name(), &filter)
        .await
        .map_err(|e| ApiError::from(DbError::from(e)))?;
    tracing::debug!(tenant = tenant.name(), count, us = started.elapsed().as_micros() as u64, "studies counted");
    Ok(response::json(StatusCode::OK, &json!({ "study_count": count })))
}

/// The filter the query asks for; the error names the malformed parameter.
pub fn parse_filter(query: &[(String, String)]) -> Result<CountFilter, String> {
    let single = |name: &str| single_param(query, name).map_err(|e| e.to_string());
    let mut filter = CountFilter::default();
    if let Some(value) = single("receivedAt")? {
        let (from, to) = received_range(value)
            .ok_or_else(|| format!("parameter `receivedAt` must be YYYYMMDD-YYYYMMDD (or YYYYMMDD-), not `{value}`"))?;
        if let (from, Some(to)) = (&from, &to)
            && from > to
        {
            return Err(format!("parameter `receivedAt`: the range `{value}` ends before it starts"));
        }
        filter.received_from = Some(from);
        filter.received_to = to;
    }
    if let Some(value) = single("studySize")? {
        let (min, max) = size_range(value).ok_or_else(|| {
            format!("parameter `studySize` must be MIN-MAX or MIN- in KB (non-negative integers), not `{value}`")
        })?;
        if max.is_some_and(|max| max < min) {
            return Err(format!("parameter `studySize`: the range `{value}` ends before it starts"));
        }
        // Inclusive KB bounds: a study of N bytes weighs floor(N / 1024) KB.
        filter.size_min = (min > 0).then(|| min.saturating_mul(KB));
        filter.size_max = max.map(|max| max.saturating_add(1).saturating_mul(KB) - 1);
    }
    filter.aets = list(query, &["aet"])?;
    filter.exclude_aets = list(query, &["excludeAet"])?;
    filter.stations = list(query, &["stationName"])?;
    filter.exclude_stations = list(query, &["excludeStationName", "excludeStation"])?;
    Ok(filter)
}

/// Every value of a repeatable parameter (under any of its names); empty values are refused.
fn list(query: &[(String, String)], names: &[&str]) -> Result<Vec<String>, String> {
    let mut values = Vec::new();
    for (key, value) in query.iter().filter(|(k, _)| names.contains(&k.as_str())) {
        let value = value.trim();
        if value.is_empty() {
            return Err(format!("parameter `{key}` must not be empty"));
        }
        if !values.iter().any(|v| v == value) {
            values.push(value.to_owned());
        }
    }
    Ok(values)
}

/// `YYYYMMDD-YYYYMMDD` or `YYYYMMDD-` as `YYYY-MM-DD` prefixes of the stored RFC 3339 times.
fn received_range(value: &str) -> Option<(String, Option<String>)> {
    let (from, to) = value.split_once('-')?;
    let from = date(from)?;
    let to = if to.is_empty() { None } else { Some(date(to)?) };
    Some((from, to))
}

/// A valid calendar date `YYYYMMDD` as `YYYY-MM-DD`.
fn date(text: &str) -> Option<String> {
    crate::db::archive::is_date(text).then_some(())?;
    Some(format!("{}-{}-{}", &text[..4], &text[4..6], &text[6..]))
}

/// `MIN-MAX` or `MIN-` in KB.
fn size_range(value: &str) -> Option<(i64, Option<i64>)> {
    let (min, max) = value.split_once('-')?;
    let number =
        |t: &str| -> Option<i64> { (!t.is_empty() && t.bytes().all(|b| b.is_ascii_digit())).then(|| t.parse().ok()).flatten() };
    let min = number(min)?;
    let max = if max.is_empty() { None } else { Some(number(max)?) };
    Some((min, max))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn ranges_parse_to_inclusive_exclusive_bounds() {
        let f = parse_filter(&q(&[("receivedAt", "20210101-20211231"), ("studySize", "1-2")])).unwrap();
        assert_eq!(f.received_from.as_deref(), Some("2021-01-01"));
        assert_eq!(f.received_to.as_deref(), Some("2021-12-31"));
        assert_eq!((f.size_min, f.size_max), (Some(1024), Some(3 * 1024 - 1)));
        let f = parse_filter(&q(&[("studySize", "0-")])).unwrap();
        assert_eq!((f.size_min, f.size_max), (None, None));
    }

    #[test]
    fn malformed_values_name_the_parameter() {
        for (k, v) in [
            ("receivedAt", "2021-01-01"),
            ("receivedAt", "20210230-20210301"),
            ("receivedAt", "20210101"),
            ("receivedAt", "20220101-20210101"),
            ("studySize", "a-b"),
            ("studySize", "-5"),
            ("studySize", "10-5"),
            ("studySize", "5"),
            ("aet", ""),
            ("excludeStation", " "),
        ] {
            let e = parse_filter(&q(&[(k, v)])).unwrap_err();
            assert!(e.contains(&format!("`{k}`")), "{k}={v}: {e}");
        }
        let e = parse_filter(&q(&[("receivedAt", "20210101-"), ("receivedAt", "20210101-")])).unwrap_err();
        assert!(e.contains("`receivedAt`"), "{e}");
    }

    #[test]
    fn both_spellings_of_the_station_exclusion_are_accepted() {
        let f = parse_filter(&q(&[("excludeStationName", "A"), ("excludeStation", "B"), ("excludeStation", "A")])).unwrap();
        assert_eq!(f.exclude_stations, vec!["A".to_string(), "B".to_string()]);
    }
}
