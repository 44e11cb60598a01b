//! QIDO-RS (`GET rs/studies`, `rs/series`, `rs/instances` and their scoped forms): query
//! parameters become index filters, results become DICOM JSON with each level's return keys.

use dicom_core::Tag;
use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry};
use dicom_dictionary_std::StandardDataDictionary;
use hyper::header::HeaderValue;
use hyper::{Response, StatusCode};
use serde_json::{Map, Value};

use super::{NativeCall, element, number, path_uid, retrieve_url};
use crate::app::App;
use crate::db::qido::{self, Column, Filter, Found, Level, Search};
use crate::error::ApiError;
use crate::response::Body;

/// Most results in one answer; more are asked for with `offset`.
const MAX_LIMIT: i64 = 1000;

/// How a query value is matched.
#[derive(Clone, Copy)]
enum Matching {
    /// UID list matching (comma or backslash separated; repeated parameters add to the list).
    Uids(Column),
    /// Single value or wildcard (`*`, `?`); case-insensitive when `fold`.
    Text(Column, bool),
    /// One value or a list of code strings.
    Codes(Column),
    /// Date or date range `YYYYMMDD-YYYYMMDD`, either end open.
    Date(Column),
    /// An integer.
    Integer(Column),
    /// Modalities in Study: a study with a series of one of the modalities.
    Modalities,
    /// Returned, but not matched on.
    None,
}

/// An attribute QIDO knows: its tag, its level, how it is matched and where its value (with its VR) comes from.
struct Attribute {
    tag: u32,
    level: Level,
    /// Returned at its level without being asked for.
    default: bool,
    matching: Matching,
    value: fn(&Found) -> Value,
}

fn text(vr: &'static str, value: &Option<String>) -> Value {
    element(vr, value.clone())
}

fn attribute_number(vr: &'static str, f: &Found, key: &str) -> Value {
    let value = f.attributes.get(key).and_then(|v| v.as_str()).and_then(|s| s.trim().parse::<i64>().ok());
    number(vr, value)
}

fn attribute_text(vr: &'static str, f: &Found, key: &str) -> Value {
    let value = f.attributes.get(key).and_then(|v| v.as_str()).unwrap_or_default();
    element(vr, value.split('\\').map(str::to_owned))
}

/// Every attribute QIDO returns or matches, in tag order.
const ATTRIBUTES: &[Attribute] = &[
    Attribute {
        tag: 0x0008_0016,
        level: Level::Instance,
        default: true,
        matching: Matching::Uids(Column::SopClassUid),
        value: |f| text("UI", &f.sop_class_uid),
    },
    Attribute {
        tag: 0x0008_0018,
        level: Level::Instance,
        default: true,
        matching: Matching::Uids(Column::SopInstanceUid),
        value: |f| text("UI", &f.sop_instance_uid),
    },
    Attribute {
        tag: 0x0008_0020,
        level: Level::Study,
        default: true,
        matching: Matching::Date(Column::StudyDate),
        value: |f| text("DA", &f.study_date),
    },
    Attribute {
        tag: 0x0008_0023,
        level: Level::Instance,
        default: false,
        matching: Matching::None,
        value: |f| attribute_text("DA", f, "contentDate"),
    },
    Attribute {
        tag: 0x0008_0030,
        level: Level::Study,
        default: true,
        matching: Matching::None,
        value: |f| text("TM", &f.study_time),
    },
    Attribute {
        tag: 0x0008_0032,
        level: Level::Instance,
        default: false,
        matching: Matching::None,
        value: |f| attribute_text("TM", f, "acquisitionTime"),
    },
    Attribute {
        tag: 0x0008_0033,
        level: Level::Instance,
        default: false,
        matching: Matching::None,
        value: |f| attribute_text("TM", f, "contentTime"),
    },
    Attribute {
        tag: 0x0008_0050,
        level: Level::Study,
        default: true,
        matching: Matching::Text(Column::AccessionNumber, false),
        value: |f| text("SH", &f.accession_number),
    },
    Attribute {
        tag: 0x0008_0060,
        level: Level::Series,
        default: true,
        matching: Matching::Codes(Column::Modality),
        value: |f| text("CS", &f.modality),
    },
    Attribute {
        tag: 0x0008_0061,
        level: Level::Study,
        default: true,
        matching: Matching::Modalities,
        value: |f| element("CS", f.modalities.clone()),
    },
    Attribute {
        tag: 0x0008_0090,
        level: Level::Study,
        default: true,
        matching: Matching::Text(Column::ReferringPhysician, true),
        value: |f| text("PN", &f.referring_physician),
    },
    Attribute {
        tag: 0x0008_1030,
        level: Level::Study,
        default: false,
        matching: Matching::Text(Column::StudyDescription, true),
        value: |f| text("LO", &f.study_description),
    },
    Attribute {
        tag: 0x0008_103E,
        level: Level::Series,
        default: true,
        matching: Matching::Text(Column::SeriesDescription, true),
        value: |f| text("LO", &f.series_description),
    },
    Attribute {
        tag: 0x0008_0008,
        level: Level::Instance,
        default: false,
        matching: Matching::None,
        value: |f| attribute_text("CS", f, "imageType"),
    },
    Attribute {
        tag: 0x0010_0010,
        level: Level::Study,
        default: true,
        matching: Matching::Text(Column::PatientName, true),
        value: |f| text("PN", &f.patient_name),
    },
    Attribute {
        tag: 0x0010_0020,
        level: Level::Study,
        default: true,
        matching: Matching::Text(Column::PatientId, false),
        value: |f| text("LO", &f.patient_id),
    },
    Attribute {
        tag: 0x0010_0030,
        level: Level::Study,
        default: true,
        matching: Matching::Date(Column::PatientBirthDate),
        value: |f| text("DA", &f.patient_birth_date),
    },
    Attribute {
        tag: 0x0010_0040,
        level: Level::Study,
        default: true,
        matching: Matching::Codes(Column::PatientSex),
        value: |f| text("CS", &f.patient_sex),
    },
    Attribute {
        tag: 0x0018_0015,
        level: Level::Instance,
        default: false,
        matching: Matching::None,
        value: |f| attribute_text("CS", f, "bodyPartExamined"),
    },
    Attribute {
        tag: 0x0018_1030,
        level: Level::Instance,
        default: false,
        matching: Matching::None,
        value: |f| attribute_text("LO", f, "protocolName"),
    },
    Attribute {
        tag: 0x0018_5101,
        level: Level::Instance,
        default: false,
        matching: Matching::None,
        value: |f| attribute_text("CS", f, "viewPosition"),
    },
    Attribute {
        tag: 0x0020_000D,
        level: Level::Study,
        default: true,
        matching: Matching::Uids(Column::StudyUid),
        value: |f| element("UI", [f.study_uid.clone()]),
    },
    Attribute {
        tag: 0x0020_000E,
        level: Level::Series,
        default: true,
        matching: Matching::Uids(Column::SeriesUid),
        value: |f| text("UI", &f.series_uid),
    },
    Attribute {
        tag: 0x0020_0011,
        level: Level::Series,
        default: true,
        matching: Matching::Integer(Column::SeriesNumber),
        value: |f| number("IS", f.series_number),
    },
    Attribute {
        tag: 0x0020_0013,
        level: Level::Instance,
        default: true,
        matching: Matching::Integer(Column::InstanceNumber),
        value: |f| number("IS", f.instance_number),
    },
    Attribute {
        tag: 0x0020_0060,
        level: Level::Instance,
        default: false,
        matching: Matching::None,
        value: |f| attribute_text("CS", f, "laterality"),
    },
    Attribute {
        tag: 0x0020_1206,
        level: Level::Study,
        default: true,
        matching: Matching::None,
        value: |f| number("IS", f.study_series),
    },
    Attribute {
        tag: 0x0020_1208,
        level: Level::Study,
        default: true,
        matching: Matching::None,
        value: |f| number("IS", f.study_instances),
    },
    Attribute {
        tag: 0x0020_1209,
        level: Level::Series,
        default: true,
        matching: Matching::None,
        value: |f| number("IS", f.series_instances),
    },
    Attribute {
        tag: 0x0020_0062,
        level: Level::Instance,
        default: false,
        matching: Matching::None,
        value: |f| attribute_text("CS", f, "imageLaterality"),
    },
    Attribute {
        tag: 0x0028_0008,
        level: Level::Instance,
        default: true,
        matching: Matching::None,
        value: |f| attribute_number("IS", f, "numberOfFrames"),
    },
    Attribute {
        tag: 0x0028_0010,
        level: Level::Instance,
        default: true,
        matching: Matching::None,
        value: |f| attribute_number("US", f, "rows"),
    },
    Attribute {
        tag: 0x0028_0011,
        level: Level::Instance,
        default: true,
        matching: Matching::None,
        value: |f| attribute_number("US", f, "columns"),
    },
];

/// Retrieve URL (0008,1190), returned at every level.
const RETRIEVE_URL: u32 = 0x0008_1190;

/// A parsed QIDO request.
struct Query {
    search: Search,
    /// Tags to return besides each level's defaults.
    include: Vec<u32>,
    include_all: bool,
    /// Matching keys that are valid attributes but not supported (reported in a `Warning`).
    unsupported: Vec<String>,
    /// The client asked for more than [`MAX_LIMIT`] (or nothing) and the page was capped.
    capped: bool,
}

/// Serves a QIDO-RS search at `level`, scoped by the path's study and series.
pub async fn serve(app: &App, call: &NativeCall, level: Level) -> Result<Response<Body>, ApiError> {
    let mut query = parse(&call.query, level)?;
    let study = path_uid(call, "study")?;
    let series = path_uid(call, "series")?;
    if let Some(study) = study {
        query.search.filters.push(Filter::AnyOf(Column::StudyUid, vec![study.to_owned()]));
    }
    if let Some(series) = series {
        query.search.filters.push(Filter::AnyOf(Column::SeriesUid, vec![series.to_owned()]));
    }
    // One more than asked tells whether the page was cut.
    query.search.limit += 1;
    let mut found = qido::search(app.db.reader(), app.db.backend(), call.tenant.name(), &query.search)
        .await
        .map_err(|e| ApiError::from(crate::db::DbError::from(e)))?;
    let more = found.len() as i64 > query.search.limit - 1;
    found.truncate((query.search.limit - 1).max(0) as usize);
    tracing::debug!(tenant = call.tenant.name(), ?level, results = found.len(), "QIDO search");

    // Upper levels' defaults are returned when the search is not scoped to them.
    let upper = |l: Level| match l {
        Level::Study => level == Level::Study || study.is_none(),
        Level::Series => level == Level::Series || (level == Level::Instance && series.is_none()),
        Level::Instance => level == Level::Instance,
    };
    let base = super::base_url(call);
    let results: Vec<Value> = found
        .iter()
        .map(|f| {
            let mut object = Map::new();
            for a in ATTRIBUTES.iter().filter(|a| a.level <= level) {
                let wanted = (a.default && upper(a.level))
                    || query.include_all
                    || query.include.contains(&a.tag)
                    || (a.tag == 0x0020_000D)
                    || (a.tag == 0x0020_000E && level >= Level::Series);
                if wanted {
                    object.insert(format!("{:08X}", a.tag), (a.value)(f));
                }
            }
            let url = retrieve_url(&base, &f.study_uid, f.series_uid.as_deref(), f.sop_instance_uid.as_deref());
            object.insert(format!("{RETRIEVE_URL:08X}"), element("UR", [url]));
            Value::Object(object)
        })
        .collect();

    let mut response = super::dicom_json(StatusCode::OK, &Value::Array(results));
    let mut warnings = Vec::new();
    if !query.unsupported.is_empty() {
        warnings.push(format!("The following attribute keys are not supported: {}", query.unsupported.join(", ")));
    }
    if more && query.capped {
        warnings.push("There are additional results that can be requested".to_owned());
    }
    for warning in warnings {
        if let Ok(value) = HeaderValue::from_str(&format!("299 wasmpacs \"{warning}\"")) {
            response.headers_mut().append(hyper::header::WARNING, value);
        }
    }
    Ok(response)
}

/// Turns the query parameters into a search; 400 naming the first bad parameter.
fn parse(params: &[(String, String)], level: Level) -> Result<Query, ApiError> {
    let bad = |name: &str, why: &str| ApiError::BadRequest(format!("query parameter `{name}` {why}"));
    let mut query = Query {
        search: Search { level, filters: Vec::new(), limit: MAX_LIMIT, offset: 0 },
        include: Vec::new(),
        include_all: false,
        unsupported: Vec::new(),
        capped: true,
    };
    let mut seen: Vec<u32> = Vec::new();
    let mut uid_lists: Vec<(Column, Vec<String>)> = Vec::new();
    for (name, value) in params {
        match name.as_str() {
            "limit" | "offset" => {
                let n: i64 = value.parse().ok().filter(|n| *n >= 0).ok_or_else(|| bad(name, "must be a non-negative integer"))?;
                if name == "limit" {
                    query.capped = n > MAX_LIMIT;
                    query.search.limit = n.min(MAX_LIMIT);
                } else {
                    query.search.offset = n;
                }
            }
            "fuzzymatching" => {
                if !matches!(value.as_str(), "true" | "false") {
                    return Err(bad(name, "must be `true` or `false`"));
                }
            }
            "includefield" => {
                for field in value.split(',').map(str::trim).filter(|f| !f.is_empty()) {
                    if field == "all" {
                        query.include_all = true;
                    } else {
                        let tag = tag_of(field).ok_or_else(|| bad(name, &format!("names an unknown attribute `{field}`")))?;
                        query.include.push(tag);
                    }
                }
            }
            _ => {
                let tag = tag_of(name).ok_or_else(|| ApiError::BadRequest(format!("unknown query parameter `{name}`")))?;
                let Some(attribute) = ATTRIBUTES.iter().find(|a| a.tag == tag && a.level <= level) else {
                    query.unsupported.push(name.clone());
                    continue;
                };
                query.include.push(tag);
                let is_uid_list = matches!(attribute.matching, Matching::Uids(_));
                if seen.contains(&tag) && !is_uid_list {
                    return Err(bad(name, "is given more than once"));
                }
                seen.push(tag);
                if value.is_empty() {
                    continue; // universal matching: returned, not filtered
                }
                match attribute.matching {
                    Matching::Uids(column) => {
                        let uids = list(value);
                        if let Some(wrong) = uids.iter().find(|u| !super::is_uid(u)) {
                            return Err(bad(name, &format!("holds `{wrong}`, which is not a UID")));
                        }
                        match uid_lists.iter_mut().find(|(c, _)| *c == column) {
                            Some((_, all)) => all.extend(uids),
                            None => uid_lists.push((column, uids)),
                        }
                    }
                    Matching::Text(column, fold) => query.search.filters.push(if value.contains(['*', '?']) {
                        Filter::Wildcard { column, value: value.clone(), fold }
                    } else {
                        Filter::Equals { column, value: value.clone(), fold }
                    }),
                    Matching::Codes(column) => query.search.filters.push(Filter::AnyOf(column, list(value))),
                    Matching::Modalities => query.search.filters.push(Filter::ModalitiesInStudy(list(value))),
                    Matching::Date(column) => {
                        let (from, to) =
                            date_range(value).ok_or_else(|| bad(name, "must be a date YYYYMMDD or a range YYYYMMDD-YYYYMMDD"))?;
                        query.search.filters.push(Filter::Range(column, from, to));
                    }
                    Matching::Integer(column) => {
                        let n = value.trim().parse().map_err(|_| bad(name, "must be an integer"))?;
                        query.search.filters.push(Filter::Number(column, n));
                    }
                    Matching::None => query.unsupported.push(name.clone()),
                }
            }
        }
    }
    for (column, uids) in uid_lists {
        query.search.filters.push(Filter::AnyOf(column, uids));
    }
    Ok(query)
}

/// The tag named by a keyword (`PatientID`) or by eight hex digits (`00100020`).
fn tag_of(name: &str) -> Option<u32> {
    if name.len() == 8 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
        return u32::from_str_radix(name, 16).ok();
    }
    StandardDataDictionary.by_name(name).map(|e| {
        let Tag(group, element) = e.tag();
        (u32::from(group) << 16) | u32::from(element)
    })
}

/// Values of a list parameter: separated by commas or backslashes, blanks dropped.
fn list(value: &str) -> Vec<String> {
    value.split([',', '\\']).map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned).collect()
}

/// `YYYYMMDD`, `YYYYMMDD-`, `-YYYYMMDD` or `YYYYMMDD-YYYYMMDD` as inclusive bounds.
fn date_range(value: &str) -> Option<(Option<String>, Option<String>)> {
    let date = |d: &str| -> Option<Option<String>> {
        if d.is_empty() {
            return Some(None);
        }
        let ok = d.len() == 8 && d.bytes().all(|b| b.is_ascii_digit()) && crate::db::archive::is_date(d);
        ok.then(|| Some(d.to_owned()))
    };
    match value.split_once('-') {
        None => {
            let d = date(value)??;
            Some((Some(d.clone()), Some(d)))
        }
        Some((from, to)) => {
            let (from, to) = (date(from)?, date(to)?);
            if from.is_none() && to.is_none() {
                return None;
            }
            Some((from, to))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_ranges() {
        assert_eq!(date_range("20200101"), Some((Some("20200101".into()), Some("20200101".into()))));
        assert_eq!(date_range("20200101-"), Some((Some("20200101".into()), None)));
        assert_eq!(date_range("-20200101"), Some((None, Some("20200101".into()))));
        assert_eq!(date_range("2020-01-01"), None);
        assert_eq!(date_range("-"), None);
        assert_eq!(date_range("20201301"), None);
    }

    #[test]
    fn keywords_and_tags() {
        assert_eq!(tag_of("PatientID"), Some(0x0010_0020));
        assert_eq!(tag_of("0020000d"), Some(0x0020_000D));
        assert_eq!(tag_of("NoSuchThing"), None);
    }
}
