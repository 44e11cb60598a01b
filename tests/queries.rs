//! The native query endpoints over HTTP, after real C-STORE ingest with dcmtk's storescu:
//! `studies/count` (each filter alone and combined, range edges, excluded studies, every 400),
//! `studyInstances` (attributes as sent), `preview` (a JPEG of the expected size for every
//! sample transfer syntax with pixel data; 400/404/415/422), `studyEvents` paging.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_object::DefaultDicomObject;
use reqwest::StatusCode;
use serde_json::{Value, json};
use wasmpacs_tests::{Backend, KEY_A, KEY_B, NODE_A, Options, TestServer, on_both_backends, testset, transfer_syntax_of};

on_both_backends!(
    study_count_filters_and_edges,
    study_instances_match_what_was_sent,
    previews_of_every_sample,
    study_events_page_through,
);

/// Extra calling AE titles of tenant alpha, for the `aet` filters.
const NODES: &str = r#"
[[node]]
ae_title = "FEED1"
tenant = "alpha"
[[node]]
ae_title = "FEED2"
tenant = "alpha"
[[node]]
ae_title = "UPLOAD1"
tenant = "alpha"
"#;

const UID_ROOT: &str = "1.2.826.0.1.3680043.8.498.424242";

async fn start(backend: Backend) -> TestServer {
    let mut options = Options::new(backend);
    options.extra_config = NODES.to_owned();
    TestServer::start_with(options).await.expect("server starts")
}

fn sample(name_part: &str) -> PathBuf {
    testset()
        .into_iter()
        .find(|p| p.file_name().unwrap().to_string_lossy().contains(name_part))
        .unwrap_or_else(|| panic!("sample {name_part} in the test set"))
}

/// A copy of `source` in `dir` with new study/series/SOP UIDs, station name (removed when
/// `None`) and instance number, made with dcmodify.
fn variant(
    source: &Path,
    dir: &Path,
    study: &str,
    series: &str,
    sop: &str,
    station: Option<&str>,
    number: Option<u32>,
) -> PathBuf {
    let target = dir.join(format!("{sop}.dcm"));
    std::fs::copy(source, &target).expect("copy sample");
    let mut command = std::process::Command::new("dcmodify");
    command.args(["-q", "-nb"]);
    for (tag, value) in [("0020,000D", study), ("0020,000E", series), ("0008,0018", sop)] {
        command.args(["-i", &format!("({tag})={value}")]);
    }
    match station {
        Some(s) => command.args(["-i", &format!("(0008,1010)={s}")]),
        None => command.args(["-ea", "(0008,1010)"]),
    };
    if let Some(n) = number {
        command.args(["-i", &format!("(0020,0013)={n}")]);
    }
    let status = command.arg(&target).status().expect("dcmodify runs (apt-get install dcmtk)");
    assert!(status.success(), "dcmodify {}", target.display());
    target
}

async fn send(s: &TestServer, aet: &str, files: &[PathBuf]) {
    let (ok, output) = s.storescu(aet, files).await;
    assert!(ok, "storescu as {aet}: {output}");
}

async fn sql(s: &TestServer, statement: &str) {
    let pool = s.connect_db().await;
    sqlx::query(sqlx::AssertSqlSafe(statement.to_owned())).execute(&pool).await.expect(statement);
    pool.close().await;
}

/// Five studies sent by three AEs from three stations (one without), returned by number 1..=5.
async fn ingest_five_studies(s: &TestServer, dir: &Path) -> Vec<String> {
    let ct = sample("ele_ct16_CT_small");
    let plan: [(&str, Option<&str>, u32); 5] = [
        ("FEED1", Some("MOD1"), 1),
        ("FEED1", Some("MOD2"), 2),
        ("FEED2", Some("MOD1"), 1),
        ("UPLOAD1", Some("PACS1"), 1),
        ("FEED2", None, 1),
    ];
    let mut studies = Vec::new();
    for (n, (aet, station, instances)) in plan.iter().enumerate() {
        let study = format!("{UID_ROOT}.{}", n + 1);
        let files: Vec<PathBuf> = (0..*instances)
            .map(|i| variant(&ct, dir, &study, &format!("{study}.1"), &format!("{study}.1.{}", i + 1), *station, Some(i + 1)))
            .collect();
        send(s, aet, &files).await;
        studies.push(study);
    }
    studies
}

async fn count(s: &TestServer, query: &str) -> i64 {
    let (status, body) = s.get(&format!("studies/count?{query}")).await;
    assert_eq!(status, StatusCode::OK, "{query}: {body}");
    body["study_count"].as_i64().unwrap_or_else(|| panic!("{query}: {body}"))
}

async fn study_count_filters_and_edges(backend: Backend) {
    let mut s = start(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let studies = ingest_five_studies(&s, dir.path()).await;

    // As received: the calling AE and station of each study.
    assert_eq!(count(&s, "").await, 5);
    assert_eq!(count(&s, "aet=FEED1").await, 2);
    assert_eq!(count(&s, "aet=FEED1&aet=FEED2").await, 4);
    assert_eq!(count(&s, "excludeAet=FEED1").await, 3);
    assert_eq!(count(&s, "excludeAet=FEED1&excludeAet=UPLOAD1").await, 2);
    assert_eq!(count(&s, "stationName=MOD1").await, 2);
    assert_eq!(count(&s, "stationName=MOD1&stationName=PACS1").await, 3);
    // A study without a station is not one of the excluded stations.
    assert_eq!(count(&s, "excludeStationName=MOD1").await, 3);
    assert_eq!(count(&s, "excludeStation=MOD1&excludeStation=PACS1").await, 2);
    assert_eq!(count(&s, "excludeStationName=MOD1&excludeStation=PACS1").await, 2);
    assert_eq!(count(&s, "aet=FEED1&stationName=MOD2").await, 1);
    assert_eq!(count(&s, "aet=NOBODY").await, 0);
    let (status, other) = s.get_as(KEY_B, "studies/count").await;
    assert_eq!((status, other), (StatusCode::OK, json!({ "study_count": 0 })), "tenants are isolated");

    // Range edges: received times and sizes set exactly.
    let received = [
        "2021-01-01T00:00:00.000Z",
        "2021-12-31T23:59:59.999Z",
        "2022-01-01T00:00:00.000Z",
        "2020-12-31T23:59:59.999Z",
        "2021-06-15T12:00:00.000Z",
    ];
    let sizes = [10 * 1024, 11 * 1024 - 1, 11 * 1024, 0, 5 * 1024 + 1];
    for (n, study) in studies.iter().enumerate() {
        sql(
            &s,
            &format!("UPDATE studies SET received_at = '{}', size_bytes = {} WHERE study_uid = '{study}'", received[n], sizes[n]),
        )
        .await;
    }
    assert_eq!(count(&s, "receivedAt=20210101-20220101").await, 3, "from inclusive, to exclusive");
    assert_eq!(count(&s, "receivedAt=20210101-20211231").await, 2);
    assert_eq!(count(&s, "receivedAt=20201231-20210101").await, 1);
    assert_eq!(count(&s, "receivedAt=20220101-").await, 1, "open end");
    assert_eq!(count(&s, "receivedAt=20210101-20210101").await, 0, "empty range");
    assert_eq!(count(&s, "studySize=10-10").await, 2, "inclusive KB: 10240 and 11263 bytes are 10 KB");
    assert_eq!(count(&s, "studySize=0-9").await, 2);
    assert_eq!(count(&s, "studySize=11-").await, 1);
    assert_eq!(count(&s, "studySize=0-").await, 5);
    assert_eq!(count(&s, "studySize=5-5").await, 1);
    // Combined.
    assert_eq!(count(&s, "receivedAt=20210101-20220101&studySize=10-11&aet=FEED1&aet=FEED2&excludeStationName=PACS1").await, 2);
    assert_eq!(count(&s, "receivedAt=20210101-20220101&studySize=0-10&aet=FEED1&stationName=MOD2&excludeAet=UPLOAD1").await, 1);
    assert_eq!(count(&s, "receivedAt=20200101-20230101&studySize=0-&excludeAet=FEED1&excludeStation=MOD1").await, 2);

    // Studies without series and deprecated studies are never counted.
    s.seed_study("alpha", "P-EMPTY", &format!("{UID_ROOT}.90"), &[]).await;
    s.seed_study("alpha", "P-DEPRECATED", &format!("{UID_ROOT}.91"), &[(&format!("{UID_ROOT}.91.1"), 1)]).await;
    s.seed_study("alpha", "P-FIXTURE", &format!("{UID_ROOT}.92"), &[(&format!("{UID_ROOT}.92.1"), 1)]).await;
    sql(&s, &format!("UPDATE studies SET deprecated = 1 WHERE study_uid = '{UID_ROOT}.91'")).await;
    assert_eq!(count(&s, "").await, 6, "the fixture study with a series counts, the empty and deprecated ones do not");
    // Likewise through the filters (the fixtures were received now, with no AE title).
    assert_eq!(count(&s, "receivedAt=20250101-").await, 1, "of the fixtures received now, only the one with a series");
    assert_eq!(count(&s, "excludeAet=FEED1").await, 4, "the three of before, and the fixture with a series");
    assert_eq!(count(&s, "studySize=0-&excludeStation=MOD1").await, 4, "the three of before, and the fixture with a series");
    sql(&s, &format!("UPDATE studies SET deprecated = 1 WHERE study_uid = '{}'", studies[0])).await;
    assert_eq!(count(&s, "aet=FEED1").await, 1);

    // Every malformed value is a 400 naming its parameter.
    for (query, parameter) in [
        ("receivedAt=2021-01-01", "receivedAt"),
        ("receivedAt=20210101", "receivedAt"),
        ("receivedAt=20210230-20210301", "receivedAt"),
        ("receivedAt=2021010-20210301", "receivedAt"),
        ("receivedAt=20220101-20210101", "receivedAt"),
        ("receivedAt=20210101-&receivedAt=20220101-", "receivedAt"),
        ("studySize=abc", "studySize"),
        ("studySize=-5", "studySize"),
        ("studySize=10-5", "studySize"),
        ("studySize=1.5-2", "studySize"),
        ("studySize=0-&studySize=1-", "studySize"),
        ("aet=", "aet"),
        ("excludeAet=", "excludeAet"),
        ("stationName=", "stationName"),
        ("excludeStationName=", "excludeStationName"),
        ("excludeStation=", "excludeStation"),
    ] {
        let (status, body) = s.get(&format!("studies/count?{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert_eq!(body["error"], "Bad Request", "{query}: {body}");
        let message = body["message"].as_str().unwrap_or_default();
        assert!(message.contains(&format!("`{parameter}`")), "{query}: {body}");
    }
    s.stop().await;
}

/// Text of a single-valued attribute, trimmed (None when absent or empty).
fn text(object: &DefaultDicomObject, tag: Tag) -> Option<String> {
    let value = object.element_opt(tag).ok()??.to_str().ok()?;
    let value = value.trim_matches(['\0', ' ']).trim().to_owned();
    (!value.is_empty()).then_some(value)
}

/// What `studyInstances` must say about the instance in `path`, attribute by attribute (JSON).
fn expected_instance(path: &Path) -> BTreeMap<&'static str, Value> {
    let o = dicom_object::OpenFileOptions::new().read_until(tags::PIXEL_DATA).open_file(path).unwrap();
    let t = |tag| json!(text(&o, tag));
    let image_type = o
        .element_opt(tags::IMAGE_TYPE)
        .ok()
        .flatten()
        .and_then(|e| e.to_multi_str().ok())
        .map(|v| v.iter().map(|s| s.trim().to_owned()).collect::<Vec<_>>().join("\\"));
    let code_meaning = [tags::CONCEPT_NAME_CODE_SEQUENCE, tags::VIEW_CODE_SEQUENCE].iter().find_map(|seq| {
        let item = o.element_opt(*seq).ok()??.items()?.first()?.clone();
        let meaning = item.element_opt(tags::CODE_MEANING).ok()??.to_str().ok()?.trim().to_owned();
        (!meaning.is_empty()).then_some(meaning)
    });
    let number = |tag| json!(text(&o, tag).and_then(|v| v.parse::<i64>().ok()));
    BTreeMap::from([
        ("acquisitionTime", t(tags::ACQUISITION_TIME)),
        ("bodyPartExamined", t(tags::BODY_PART_EXAMINED)),
        ("codeMeaning", json!(code_meaning)),
        ("contentDate", t(tags::CONTENT_DATE)),
        ("contentTime", t(tags::CONTENT_TIME)),
        ("imageLaterality", t(tags::IMAGE_LATERALITY)),
        ("imageType", json!(image_type.filter(|v| !v.is_empty()))),
        ("laterality", t(tags::LATERALITY)),
        ("modality", t(tags::MODALITY)),
        ("numberOfFrames", number(tags::NUMBER_OF_FRAMES)),
        ("protocolName", t(tags::PROTOCOL_NAME)),
        ("seriesDescription", t(tags::SERIES_DESCRIPTION)),
        ("seriesInstanceUid", t(tags::SERIES_INSTANCE_UID)),
        ("seriesNumber", number(tags::SERIES_NUMBER)),
        ("sopClassUid", t(tags::SOP_CLASS_UID)),
        ("sopInstanceUid", t(tags::SOP_INSTANCE_UID)),
        ("studyDescription", t(tags::STUDY_DESCRIPTION)),
        ("studyInstanceUid", t(tags::STUDY_INSTANCE_UID)),
        ("viewPosition", t(tags::VIEW_POSITION)),
    ])
}

/// Study- and series-level attributes come from the first instance received of their study or
/// series; they are checked against the values any file of that study or series carries.
const SHARED: &[&str] = &["modality", "seriesDescription", "seriesNumber", "studyDescription"];

/// Sends the whole sample set as NODE_A; returns the files the archive accepted (by SOP UID).
async fn ingest_testset(s: &TestServer) -> Vec<PathBuf> {
    let files = testset();
    let (_, output) = s.storescu(NODE_A, &files).await;
    // Big endian is retired and optional; every other sample must be archived.
    let mut stored = Vec::new();
    for file in files {
        let expected = expected_instance(&file);
        let study = expected["studyInstanceUid"].as_str().unwrap().to_owned();
        let (status, body) = s.get(&format!("studyInstances?studyUid={study}")).await;
        let found = status == StatusCode::OK
            && body.as_array().unwrap().iter().any(|i| i["sopInstanceUid"] == expected["sopInstanceUid"]);
        if found {
            stored.push(file);
        } else {
            assert_eq!(transfer_syntax_of(&file), "1.2.840.10008.1.2.2", "{} not archived: {output}", file.display());
        }
    }
    stored
}

async fn study_instances_match_what_was_sent(backend: Backend) {
    let s = start(backend).await;
    let stored = ingest_testset(&s).await;
    assert!(stored.len() >= 30, "{} samples archived", stored.len());

    let mut by_study: BTreeMap<String, Vec<BTreeMap<&str, Value>>> = BTreeMap::new();
    for file in &stored {
        let e = expected_instance(file);
        by_study.entry(e["studyInstanceUid"].as_str().unwrap().to_owned()).or_default().push(e);
    }
    for (study, expected) in &by_study {
        let (status, body) = s.get(&format!("studyInstances?studyUid={study}")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let answered = body.as_array().expect("a JSON array");
        assert_eq!(answered.len(), expected.len(), "{study}: {body}");
        for e in expected {
            let sop = &e["sopInstanceUid"];
            let item = answered.iter().find(|i| &i["sopInstanceUid"] == sop).unwrap_or_else(|| panic!("{sop} in {body}"));
            let keys: BTreeSet<&str> = item.as_object().unwrap().keys().map(String::as_str).collect();
            assert_eq!(keys, e.keys().copied().collect(), "exactly the seed's attributes");
            for (name, value) in e {
                if SHARED.contains(name) {
                    let level = if *name == "studyDescription" { "studyInstanceUid" } else { "seriesInstanceUid" };
                    let candidates: Vec<&Value> =
                        expected.iter().filter(|other| other[level] == e[level]).map(|other| &other[*name]).collect();
                    assert!(candidates.contains(&&item[*name]), "{sop} {name}: {} not in {candidates:?}", item[*name]);
                } else {
                    assert_eq!(&item[*name], value, "{sop} {name}");
                }
            }
        }
    }

    let (status, body) = s.get("studyInstances").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["message"].as_str().unwrap().contains("`studyUid`"), "{body}");
    let (status, _) = s.get("studyInstances?studyUid=").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, body) = s.get("studyInstances?studyUid=1.2.3.4.404").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"], "Not Found", "{body}");
    let some_study = by_study.keys().next().unwrap();
    let (status, _) = s.get_as(KEY_B, &format!("studyInstances?studyUid={some_study}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "another tenant's study is not found");
    s.stop().await;
}

/// The size a thumbnail of `columns` x `rows` must have: longest side at most 256, ratio kept.
fn thumbnail_size(columns: u32, rows: u32) -> (u32, u32) {
    if columns.max(rows) <= 256 {
        return (columns, rows);
    }
    let ratio = f64::min(256.0 / columns as f64, 256.0 / rows as f64);
    (((columns as f64 * ratio).round() as u32).max(1), ((rows as f64 * ratio).round() as u32).max(1))
}

async fn get_preview(s: &TestServer, query: &str) -> (StatusCode, Option<String>, Vec<u8>) {
    let response = s.http.get(format!("{}/preview?{query}", s.base)).header("Authorization", KEY_A).send().await.unwrap();
    let status = response.status();
    let kind = response.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned());
    (status, kind, response.bytes().await.unwrap().to_vec())
}

async fn previews_of_every_sample(backend: Backend) {
    let s = start(backend).await;
    let stored = ingest_testset(&s).await;
    let mut rendered = BTreeSet::new();
    for file in &stored {
        let o = dicom_object::OpenFileOptions::new().read_until(tags::PIXEL_DATA).open_file(file).unwrap();
        let sop = text(&o, tags::SOP_INSTANCE_UID).unwrap();
        let ts = transfer_syntax_of(file);
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let (status, kind, body) = get_preview(&s, &format!("objectUID={sop}")).await;
        let has_pixels = text(&o, tags::ROWS).is_some();
        if !has_pixels {
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{name}");
            let body: Value = serde_json::from_slice(&body).unwrap();
            assert!(body["message"].as_str().unwrap().contains("no pixel data"), "{name}: {body}");
            continue;
        }
        if name.starts_with("jpegext_nm16") {
            // 12-bit JPEG Extended: the pure-Rust JPEG decoder reads 8-bit (and lossless) only.
            assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{name}");
            let body: Value = serde_json::from_slice(&body).unwrap();
            assert!(body["message"].as_str().unwrap().contains("SamplePrecision(12)"), "{name}: {body}");
            continue;
        }
        assert_eq!(status, StatusCode::OK, "{name}: {}", String::from_utf8_lossy(&body));
        assert_eq!(kind.as_deref(), Some("image/jpeg"), "{name}");
        let image = image::load_from_memory_with_format(&body, image::ImageFormat::Jpeg)
            .unwrap_or_else(|e| panic!("{name}: not a JPEG: {e}"));
        let columns: u32 = text(&o, tags::COLUMNS).unwrap().parse().unwrap();
        let rows: u32 = text(&o, tags::ROWS).unwrap().parse().unwrap();
        assert_eq!((image.width(), image.height()), thumbnail_size(columns, rows), "{name}: {columns}x{rows}");
        if name.starts_with("jpegbase_rgb_SC_jpeg_no_color_transform") {
            // RGB JPEG without colour markers: a near-white picture (as pydicom renders it), not
            // the magenta of an unwanted YCbCr conversion.
            let rgb = image.to_rgb8();
            let n = rgb.pixels().len() as f64;
            let mean = |c: usize| rgb.pixels().map(|p| p.0[c] as f64).sum::<f64>() / n;
            let (r, g, b) = (mean(0), mean(1), mean(2));
            assert!((r - g).abs() < 20.0 && (g - b).abs() < 20.0, "{name}: mean colour {r:.0},{g:.0},{b:.0}");
        }
        if text(&o, tags::PHOTOMETRIC_INTERPRETATION).is_some_and(|p| p.starts_with("MONOCHROME")) {
            // Windowed (stored or min-max), a picture spans the grey scale: neither black,
            // white nor one grey all over.
            let grey = image.to_luma8();
            let (low, high) = grey.pixels().fold((u8::MAX, u8::MIN), |(low, high), p| (low.min(p.0[0]), high.max(p.0[0])));
            assert!(high - low >= 64, "{name}: grey levels {low}..{high} only");
        }
        rendered.insert(ts);
    }
    let every_codec = [
        "1.2.840.10008.1.2",
        "1.2.840.10008.1.2.1",
        "1.2.840.10008.1.2.1.99",
        "1.2.840.10008.1.2.4.50",
        "1.2.840.10008.1.2.4.70",
        "1.2.840.10008.1.2.4.80",
        "1.2.840.10008.1.2.4.81",
        "1.2.840.10008.1.2.4.90",
        "1.2.840.10008.1.2.4.91",
        "1.2.840.10008.1.2.5",
    ];
    for ts in every_codec {
        assert!(rendered.contains(ts), "a preview in transfer syntax {ts}; rendered: {rendered:?}");
    }

    // A series: the instance with the lowest instance number (sizes tell them apart).
    let dir = tempfile::tempdir().unwrap();
    let (study, series) = (format!("{UID_ROOT}.7"), format!("{UID_ROOT}.7.1"));
    let files = [
        variant(
            &sample("ele_rgb_us_examples_rgb_color"),
            dir.path(),
            &study,
            &series,
            &format!("{series}.1"),
            Some("US1"),
            Some(2),
        ),
        variant(
            &sample("j2k90_ybrrct_us_examples_jpeg2k"),
            dir.path(),
            &study,
            &series,
            &format!("{series}.2"),
            Some("US1"),
            Some(5),
        ),
        variant(&sample("ele_ct16_CT_small"), dir.path(), &study, &series, &format!("{series}.3"), Some("US1"), Some(1)),
    ];
    for file in &files {
        send(&s, NODE_A, std::slice::from_ref(file)).await;
    }
    let (status, _, body) = get_preview(&s, &format!("seriesUID={series}")).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let image = image::load_from_memory_with_format(&body, image::ImageFormat::Jpeg).unwrap();
    assert_eq!((image.width(), image.height()), (128, 128), "instance number 1 (the 128x128 CT)");
    // objectUID wins over seriesUID.
    let (status, _, body) = get_preview(&s, &format!("seriesUID={series}&objectUID={series}.2")).await;
    assert_eq!(status, StatusCode::OK);
    let image = image::load_from_memory_with_format(&body, image::ImageFormat::Jpeg).unwrap();
    assert_eq!((image.width(), image.height()), thumbnail_size(640, 480));

    for (query, expected) in [
        ("", StatusCode::BAD_REQUEST),
        ("objectUID=", StatusCode::BAD_REQUEST),
        ("objectUID=1.2.3.404", StatusCode::NOT_FOUND),
        ("seriesUID=1.2.3.404", StatusCode::NOT_FOUND),
    ] {
        let (status, kind, body) = get_preview(&s, query).await;
        assert_eq!(status, expected, "{query}");
        assert_eq!(kind.as_deref(), Some("application/json"), "{query}");
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert!(body["message"].is_string(), "{query}: {body}");
    }
    let response =
        s.http.get(format!("{}/preview?objectUID={series}.3", s.base)).header("Authorization", KEY_B).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND, "another tenant's instance is not found");
    s.stop().await;
}

async fn study_events_page_through(backend: Backend) {
    let s = start(backend).await;
    let dir = tempfile::tempdir().unwrap();
    ingest_five_studies(&s, dir.path()).await;
    // One STUDY_RECEIVED and one SERIES_RECEIVED per study.
    let all = s.events_as(KEY_A).await;
    assert_eq!(all.len(), 10, "{all:?}");
    let mut paged = Vec::new();
    let mut offset = 0;
    let mut pages = 0;
    loop {
        let (status, body) = s.get(&format!("studyEvents?offsetId={offset}&limit=3")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["offsetId"], offset);
        let events = body["events"].as_array().unwrap().clone();
        assert!(events.len() <= 3);
        pages += 1;
        paged.extend(events.iter().cloned());
        if !body["more"].as_bool().unwrap() {
            assert_eq!(body["nextOffsetId"], events.last().map(|e| e["offsetId"].clone()).unwrap_or(json!(offset)));
            break;
        }
        assert_eq!(events.len(), 3, "a full page before the last");
        offset = body["nextOffsetId"].as_i64().unwrap();
    }
    assert_eq!(pages, 4, "10 events in pages of 3");
    assert_eq!(paged, all, "pages add up to the whole feed, oldest first");
    let offsets: Vec<i64> = paged.iter().map(|e| e["offsetId"].as_i64().unwrap()).collect();
    assert!(offsets.windows(2).all(|w| w[0] < w[1]), "strictly increasing: {offsets:?}");
    let kinds: BTreeSet<&str> = paged.iter().map(|e| e["eventType"].as_str().unwrap()).collect();
    assert_eq!(kinds, BTreeSet::from(["SERIES_RECEIVED", "STUDY_RECEIVED"]));
    let (status, body) = s.get(&format!("studyEvents?offsetId={}", offsets.last().unwrap())).await;
    assert_eq!((status, body["events"].as_array().unwrap().len(), &body["more"]), (StatusCode::OK, 0, &json!(false)));
    assert!(s.events_as(KEY_B).await.is_empty(), "tenants are isolated");
    for query in ["", "offsetId=", "offsetId=abc", "offsetId=-1", "offsetId=0&limit=0", "offsetId=0&limit=x"] {
        let (status, body) = s.get(&format!("studyEvents?{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert!(body["message"].is_string(), "{query}: {body}");
    }
    s.stop().await;
}
