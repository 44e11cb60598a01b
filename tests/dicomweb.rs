//! DICOMweb through HTTP, as clients use it: STOW-RS of several instances per request, QIDO-RS
//! with every supported filter, WADO-RS returning the stored bytes and their metadata, the
//! failure answers, tenant isolation, and the `dicomweb-client` Python package round trip.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use reqwest::StatusCode;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wasmpacs_tests::{
    Backend, KEY_A, KEY_B, NODE_A, NODE_B, TestServer, on_both_backends, parse_multipart, repo_root, sample, uids,
};

on_both_backends!(
    stow_then_qido_finds_with_every_filter,
    wado_returns_the_stored_bytes_and_metadata,
    restow_and_failures_leave_nothing_behind,
    a_refused_instance_fails_alone_among_many,
    stow_checks_node_media_type_and_study,
    tenants_and_deprecation_hide_studies,
    chunked_stow_without_content_length,
    interrupted_stow_leaves_nothing,
    dicomweb_client_round_trip,
);

const BOUNDARY: &str = "wasmpacs-test-boundary-7d3f";
const DICOM_JSON: &str = "application/dicom+json";

/// Four studies; CT_small twice (two instances of one series).
fn samples() -> Vec<PathBuf> {
    [
        "ele_ct16_CT_small.dcm",
        "jpegll70_ct16_CT_small_dcmcjpeg.dcm",
        "ele_mr16_examples_overlay.dcm",
        "ile_rtdose32_15frames_rtdose.dcm",
        "j2k91_rgb_SC_rgb_gdcm_KY.dcm",
    ]
    .into_iter()
    .map(sample)
    .collect()
}

/// A multipart/related body of `(content type, bytes)` parts.
fn multipart(parts: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut body = Vec::new();
    for (content_type, bytes) in parts {
        body.extend_from_slice(format!("--{BOUNDARY}\r\nContent-Type: {content_type}\r\n\r\n").as_bytes());
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

fn dicom_parts(files: &[PathBuf]) -> Vec<(&'static str, Vec<u8>)> {
    files.iter().map(|f| ("application/dicom", std::fs::read(f).unwrap())).collect()
}

/// POSTs a STOW request; returns status, Content-Type and the JSON body.
async fn stow_raw(s: &TestServer, key: &str, path: &str, content_type: &str, body: Vec<u8>) -> (StatusCode, String, Value) {
    let response = s
        .http
        .post(format!("{}/{path}", s.base))
        .header("Authorization", key)
        .header("Content-Type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let content_type = header(&response, "content-type");
    let body = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap_or(Value::Null);
    (status, content_type, body)
}

async fn stow(s: &TestServer, aet: &str, parts: &[(&str, Vec<u8>)]) -> (StatusCode, Value) {
    let content_type = format!("multipart/related; type=\"application/dicom\"; boundary={BOUNDARY}");
    let (status, ct, body) = stow_raw(s, KEY_A, &format!("stowRsListener/{aet}/studies"), &content_type, multipart(parts)).await;
    if status != StatusCode::BAD_REQUEST {
        assert_eq!(ct, DICOM_JSON, "STOW answers DICOM JSON: {body}");
    }
    (status, body)
}

fn header(response: &reqwest::Response, name: &str) -> String {
    response.headers().get(name).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default()
}

/// GETs a QIDO path as `key`; asserts 200 and the exact DICOM JSON content type.
async fn qido_as(s: &TestServer, key: &str, path: &str) -> Vec<Value> {
    let response = s.http.get(format!("{}/rs/{path}", s.base)).header("Authorization", key).send().await.unwrap();
    let status = response.status();
    let content_type = header(&response, "content-type");
    let body: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap_or(Value::Null);
    assert_eq!(status, StatusCode::OK, "{path}: {body}");
    assert_eq!(content_type, DICOM_JSON, "{path}");
    body.as_array().cloned().unwrap_or_else(|| panic!("{path}: not an array: {body}"))
}

async fn qido(s: &TestServer, path: &str) -> Vec<Value> {
    qido_as(s, KEY_A, path).await
}

/// The first value of a tag in a DICOM JSON object.
fn value<'a>(object: &'a Value, tag: &str) -> &'a Value {
    &object[tag]["Value"][0]
}

fn uid_set(results: &[Value], tag: &str) -> BTreeSet<String> {
    results.iter().map(|r| value(r, tag).as_str().unwrap_or_default().to_owned()).collect()
}

async fn count_rows(s: &TestServer, table: &str) -> i64 {
    let pool = s.connect_db().await;
    let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}"))).fetch_one(&pool).await.unwrap();
    pool.close().await;
    n
}

async fn execute(s: &TestServer, sql: &str, uid: &str) {
    let pool = s.connect_db().await;
    sqlx::query(sqlx::AssertSqlSafe(sql.to_owned())).bind(uid).execute(&pool).await.unwrap();
    pool.close().await;
}

async fn stow_samples(s: &TestServer) -> Vec<PathBuf> {
    let files = samples();
    let (status, body) = stow(s, NODE_A, &dicom_parts(&files)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let referenced = body["00081199"]["Value"].as_array().expect("ReferencedSOPSequence");
    assert_eq!(referenced.len(), files.len());
    assert!(body.get("00081198").is_none(), "no FailedSOPSequence: {body}");
    files
}

async fn stow_then_qido_finds_with_every_filter(backend: Backend) {
    let s = TestServer::start(backend).await;
    let files = stow_samples(&s).await;
    let (ct_study, ct_series, ct_sop) = uids(&files[0]);
    let (mr_study, _, _) = uids(&files[2]);
    let (rt_study, _, rt_sop) = uids(&files[3]);
    let (ot_study, _, _) = uids(&files[4]);

    let all = qido(&s, "studies").await;
    assert_eq!(all.len(), 4);
    let ct = all.iter().find(|r| value(r, "0020000D") == ct_study.as_str()).expect("CT study");
    assert_eq!(ct["00100010"], serde_json::json!({"vr": "PN", "Value": [{"Alphabetic": "CompressedSamples^CT1"}]}));
    assert_eq!(ct["00100020"]["vr"], "LO");
    assert_eq!(ct["00080020"], serde_json::json!({"vr": "DA", "Value": ["20040119"]}));
    assert_eq!(ct["00080061"], serde_json::json!({"vr": "CS", "Value": ["CT"]}));
    assert_eq!(ct["00201206"], serde_json::json!({"vr": "IS", "Value": [1]}));
    assert_eq!(ct["00201208"], serde_json::json!({"vr": "IS", "Value": [2]}));
    assert_eq!(ct["00081190"]["vr"], "UR");
    assert!(value(ct, "00081190").as_str().unwrap().ends_with(&format!("/o3-dpacs-wado/rs/studies/{ct_study}")));
    for tag in ["00080030", "00080050", "00080090", "00100030", "00100040"] {
        assert!(ct.get(tag).is_some(), "study return key {tag}: {ct}");
    }
    assert!(ct.get("00081030").is_none(), "StudyDescription only when asked for");

    let studies = |q: &'static str| {
        let s = &s;
        async move { uid_set(&qido(s, &format!("studies?{q}")).await, "0020000D") }
    };
    let set = |uids: &[&String]| uids.iter().map(|u| u.to_string()).collect::<BTreeSet<_>>();
    // Wildcards, case-insensitive on names.
    assert_eq!(studies("PatientName=compressed*").await, set(&[&ct_study]));
    assert_eq!(studies("PatientName=*SAMPLES%5ECT?").await, set(&[&ct_study]));
    assert_eq!(studies("PatientName=compressedsamples%5Ect1").await, set(&[&ct_study]));
    assert_eq!(studies("00100020=id11111").await, set(&[&rt_study]));
    assert_eq!(studies("PatientID=id1*").await, set(&[&rt_study]));
    // Dates: single, range, open ends.
    assert_eq!(studies("StudyDate=20040119").await, set(&[&ct_study]));
    assert_eq!(studies("StudyDate=20040101-20051231").await, set(&[&ct_study, &mr_study]));
    assert_eq!(studies("StudyDate=20170101-").await, set(&[&ot_study]));
    assert_eq!(studies("StudyDate=-20040119").await, set(&[&ct_study, &rt_study]));
    // UID lists, comma separated or repeated.
    let both = format!("studies?StudyInstanceUID={ct_study},{rt_study}");
    assert_eq!(uid_set(&qido(&s, &both).await, "0020000D"), set(&[&ct_study, &rt_study]));
    let repeated = format!("studies?StudyInstanceUID={ct_study}&StudyInstanceUID={ot_study}");
    assert_eq!(uid_set(&qido(&s, &repeated).await, "0020000D"), set(&[&ct_study, &ot_study]));
    assert_eq!(studies("AccessionNumber=8000000000330109").await, set(&[&mr_study]));
    assert_eq!(studies("ModalitiesInStudy=CT").await, set(&[&ct_study]));
    assert_eq!(studies("ModalitiesInStudy=MR,OT").await, set(&[&mr_study, &ot_study]));
    assert_eq!(studies("StudyDescription=ABDOMEN*").await, set(&[&mr_study]));
    assert_eq!(studies("PatientName=nobody*&fuzzymatching=true").await, BTreeSet::new());

    // Paging: limit and offset walk every study exactly once.
    let mut paged = BTreeSet::new();
    for offset in [0, 2] {
        let page = qido(&s, &format!("studies?limit=2&offset={offset}")).await;
        assert_eq!(page.len(), 2);
        paged.extend(uid_set(&page, "0020000D"));
    }
    assert_eq!(paged.len(), 4);
    assert!(qido(&s, "studies?limit=2&offset=4").await.is_empty());

    // includefield: by keyword, by tag, and all.
    let with = qido(&s, &format!("studies?StudyInstanceUID={mr_study}&includefield=StudyDescription")).await;
    assert_eq!(with[0]["00081030"], serde_json::json!({"vr": "LO", "Value": ["abdomen^liver"]}));
    let with = qido(&s, &format!("studies?StudyInstanceUID={mr_study}&includefield=00081030")).await;
    assert!(with[0].get("00081030").is_some());
    let with = qido(&s, &format!("studies?StudyInstanceUID={mr_study}&includefield=all")).await;
    assert!(with[0].get("00081030").is_some());

    // Series and instances, scoped and not.
    let series = qido(&s, &format!("studies/{ct_study}/series")).await;
    assert_eq!(series.len(), 1);
    assert_eq!(value(&series[0], "0020000E"), ct_series.as_str());
    assert_eq!(series[0]["00080060"], serde_json::json!({"vr": "CS", "Value": ["CT"]}));
    assert_eq!(series[0]["00201209"], serde_json::json!({"vr": "IS", "Value": [2]}));
    assert!(series[0].get("00200011").is_some() && series[0].get("0008103E").is_some());
    assert_eq!(qido(&s, "series").await.len(), 4);
    assert_eq!(uid_set(&qido(&s, "series?Modality=RTDOSE").await, "0020000D"), set(&[&rt_study]));
    let all_series = qido(&s, "series?Modality=CT").await;
    assert!(all_series[0].get("00100010").is_some(), "series in all studies carry the study keys");

    let instances = qido(&s, &format!("studies/{ct_study}/series/{ct_series}/instances")).await;
    assert_eq!(instances.len(), 2);
    assert!(uid_set(&instances, "00080018").contains(&ct_sop));
    let one = instances.iter().find(|i| value(i, "00080018") == ct_sop.as_str()).unwrap();
    assert_eq!(one["00080016"], serde_json::json!({"vr": "UI", "Value": ["1.2.840.10008.5.1.4.1.1.2"]}));
    assert_eq!(one["00280010"], serde_json::json!({"vr": "US", "Value": [128]}));
    assert_eq!(one["00280011"], serde_json::json!({"vr": "US", "Value": [128]}));
    assert_eq!(one["00200013"], serde_json::json!({"vr": "IS", "Value": [1]}));
    assert!(
        value(one, "00081190")
            .as_str()
            .unwrap()
            .ends_with(&format!("/rs/studies/{ct_study}/series/{ct_series}/instances/{ct_sop}"))
    );
    assert_eq!(qido(&s, &format!("studies/{ct_study}/instances")).await.len(), 2);
    assert_eq!(qido(&s, "instances").await.len(), 5);
    let dose = qido(&s, &format!("instances?SOPInstanceUID={rt_sop}")).await;
    assert_eq!(dose.len(), 1);
    assert_eq!(dose[0]["00280008"], serde_json::json!({"vr": "IS", "Value": [15]}));
    assert!(qido(&s, "studies/1.2.3.4/series").await.is_empty(), "an unknown study has no series");

    // Bad parameters: 400 naming them.
    for (query, named) in [
        ("studies?StudyDate=2004", "StudyDate"),
        ("studies?StudyDate=20041301", "StudyDate"),
        ("studies?limit=-1", "limit"),
        ("studies?offset=x", "offset"),
        ("studies?NoSuchAttribute=1", "NoSuchAttribute"),
        ("studies?includefield=Bogus", "Bogus"),
        ("studies?StudyInstanceUID=abc", "StudyInstanceUID"),
        ("studies?fuzzymatching=maybe", "fuzzymatching"),
        ("series?SeriesNumber=one", "SeriesNumber"),
        ("studies?PatientID=a&PatientID=b", "PatientID"),
    ] {
        let (status, body) = s.get(&format!("rs/{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert!(body["message"].as_str().unwrap().contains(named), "{query}: {body}");
    }
    s.stop().await;
}

async fn wado_returns_the_stored_bytes_and_metadata(backend: Backend) {
    let s = TestServer::start(backend).await;
    let files = stow_samples(&s).await;
    let (ct_study, ct_series, ct_sop) = uids(&files[0]);
    let get = |path: String, accept: &'static str| {
        let s = &s;
        async move {
            let mut request = s.http.get(format!("{}/rs/{path}", s.base)).header("Authorization", KEY_A);
            if !accept.is_empty() {
                request = request.header("Accept", accept);
            }
            let response = request.send().await.unwrap();
            let status = response.status();
            let content_type = header(&response, "content-type");
            (status, content_type, response.bytes().await.unwrap().to_vec())
        }
    };
    let any_syntax = "multipart/related; type=\"application/dicom\"; transfer-syntax=*";

    // One instance: byte-identical.
    let (status, content_type, body) = get(format!("studies/{ct_study}/series/{ct_series}/instances/{ct_sop}"), any_syntax).await;
    assert_eq!(status, StatusCode::OK);
    assert!(content_type.starts_with("multipart/related; type=\"application/dicom\""), "{content_type}");
    let parts = parse_multipart(&content_type, &body);
    assert_eq!(parts, vec![std::fs::read(&files[0]).unwrap()]);

    // A study and a series: every file, byte-identical (the 321 KB overlay file spans chunks).
    let sent: BTreeSet<Vec<u8>> = files[..2].iter().map(|f| std::fs::read(f).unwrap()).collect();
    for path in [format!("studies/{ct_study}"), format!("studies/{ct_study}/series/{ct_series}")] {
        let (status, content_type, body) = get(path.clone(), "").await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(parse_multipart(&content_type, &body).into_iter().collect::<BTreeSet<_>>(), sent, "{path}");
    }
    let (mr_study, _, _) = uids(&files[2]);
    let (_, content_type, body) = get(format!("studies/{mr_study}"), any_syntax).await;
    assert_eq!(parse_multipart(&content_type, &body), vec![std::fs::read(&files[2]).unwrap()]);

    // The stored transfer syntax named explicitly is fine; another one is not transcoded: 406.
    let explicit = "multipart/related; type=\"application/dicom\"; transfer-syntax=1.2.840.10008.1.2.1";
    let (status, _, _) = get(format!("studies/{ct_study}/series/{ct_series}/instances/{ct_sop}"), explicit).await;
    assert_eq!(status, StatusCode::OK);
    let jpeg = "multipart/related; type=\"application/dicom\"; transfer-syntax=1.2.840.10008.1.2.4.50";
    let (status, content_type, body) = get(format!("studies/{ct_study}"), jpeg).await;
    assert_eq!(status, StatusCode::NOT_ACCEPTABLE);
    assert_eq!(content_type, "application/json");
    assert!(String::from_utf8_lossy(&body).contains("transfer syntax"));
    let (status, _, _) = get(format!("studies/{ct_study}"), "application/json").await;
    assert_eq!(status, StatusCode::NOT_ACCEPTABLE);

    // Metadata: the header attributes, no pixel data, at every level.
    let (status, content_type, body) = get(format!("studies/{ct_study}/metadata"), "application/dicom+json").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, DICOM_JSON);
    let metadata: Vec<Value> = serde_json::from_slice(&body).unwrap();
    assert_eq!(metadata.len(), 2);
    for item in &metadata {
        assert_eq!(value(item, "0020000D"), ct_study.as_str());
        assert_eq!(item["00280010"], serde_json::json!({"vr": "US", "Value": [128]}));
        assert_eq!(item["00100010"]["Value"][0]["Alphabetic"], "CompressedSamples^CT1");
        assert!(item.get("7FE00010").is_none(), "no pixel data");
        assert!(item.get("00020010").is_none(), "no file meta group");
    }
    for path in [
        format!("studies/{ct_study}/series/{ct_series}/metadata"),
        format!("studies/{ct_study}/series/{ct_series}/instances/{ct_sop}/metadata"),
    ] {
        let (status, _, body) = get(path.clone(), "").await;
        assert_eq!(status, StatusCode::OK, "{path}");
        let metadata: Vec<Value> = serde_json::from_slice(&body).unwrap();
        assert!(metadata.iter().any(|m| value(m, "00080018") == ct_sop.as_str()), "{path}");
    }

    // Unknown study, series, instance: 404 JSON.
    for path in [
        "studies/1.2.3".to_owned(),
        format!("studies/{ct_study}/series/1.2.3"),
        format!("studies/{ct_study}/series/{ct_series}/instances/1.2.3"),
        "studies/1.2.3/metadata".to_owned(),
        format!("studies/{ct_study}/series/{ct_series}/instances/1.2.3/metadata"),
    ] {
        let (status, body) = s.get(&format!("rs/{path}")).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
        assert!(body["message"].as_str().unwrap().contains("1.2.3"), "{body}");
    }
    s.stop().await;
}

async fn restow_and_failures_leave_nothing_behind(backend: Backend) {
    let s = TestServer::start(backend).await;
    let ct = sample("ele_ct16_CT_small.dcm");
    let (status, _) = stow(&s, NODE_A, &dicom_parts(std::slice::from_ref(&ct))).await;
    assert_eq!(status, StatusCode::OK);
    let files = s.archived_files();
    let stored = std::fs::read(&files[0]).unwrap();
    let (instances, events) = (count_rows(&s, "instances").await, s.events_as(KEY_A).await.len());

    // Re-sending the same instance succeeds and changes nothing.
    let (status, body) = stow(&s, NODE_A, &dicom_parts(std::slice::from_ref(&ct))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(value(&body["00081199"]["Value"][0], "00081155"), uids(&ct).2.as_str());
    assert_eq!(s.archived_files(), files);
    assert_eq!(std::fs::read(&files[0]).unwrap(), stored);
    assert_eq!(count_rows(&s, "instances").await, instances);
    assert_eq!(s.events_as(KEY_A).await.len(), events);

    // A part that is not DICOM, alone: 409, failure 0xC000, no file, no row.
    let garbage = b"this is not a DICOM file at all".repeat(100);
    let (status, body) = stow(&s, NODE_A, &[("application/dicom", garbage.clone())]).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let failed = body["00081198"]["Value"].as_array().expect("FailedSOPSequence");
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["00081197"], serde_json::json!({"vr": "US", "Value": [0xC000]}));
    assert!(body.get("00081199").is_none());

    // With a good instance beside it: 202, one referenced, one failed.
    let mr = sample("ile_mr16_MR_small_implicit.dcm");
    let mut parts = dicom_parts(std::slice::from_ref(&mr));
    parts.push(("application/dicom", garbage));
    let (status, body) = stow(&s, NODE_A, &parts).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["00081199"]["Value"].as_array().unwrap().len(), 1);
    assert_eq!(body["00081198"]["Value"].as_array().unwrap().len(), 1);

    // A Part-10 file cut short is refused too.
    let truncated = std::fs::read(&ct).unwrap()[..200].to_vec();
    let (status, _) = stow(&s, NODE_A, &[("application/dicom", truncated)]).await;
    assert_eq!(status, StatusCode::CONFLICT);

    assert_eq!(s.archived_files().len(), 2, "the CT and the MR only");
    assert!(s.staging_is_empty(), "staging is emptied");
    assert_eq!(count_rows(&s, "instances").await, instances + 1);
    s.stop().await;
}

/// A copy of `source` as a new instance (new SOP Instance UID) of `study`, keeping the
/// source's series UID, made with dcmodify.
fn in_other_study(source: &Path, study: &str, sop: &str, dir: &Path) -> Vec<u8> {
    let target = dir.join(format!("{sop}.dcm"));
    std::fs::copy(source, &target).unwrap();
    let status = std::process::Command::new("dcmodify")
        .args(["-nb", "-m", &format!("(0020,000D)={study}"), "-m", &format!("(0008,0018)={sop}")])
        .arg(&target)
        .status()
        .expect("dcmodify runs (apt-get install dcmtk)");
    assert!(status.success());
    std::fs::read(&target).unwrap()
}

/// Many instances in one request are committed together; one among them whose series is
/// filed under another study is refused alone, and the others are stored.
async fn a_refused_instance_fails_alone_among_many(backend: Backend) {
    let s = TestServer::start(backend).await;
    let ct = sample("ele_ct16_CT_small.dcm");
    let (status, _) = stow(&s, NODE_A, &dicom_parts(std::slice::from_ref(&ct))).await;
    assert_eq!(status, StatusCode::OK);
    let (instances, files) = (count_rows(&s, "instances").await, s.archived_files().len());

    let dir = tempfile::tempdir().unwrap();
    let good: Vec<PathBuf> = samples().into_iter().skip(2).collect();
    let mut parts = dicom_parts(&good);
    // The CT's series under another study: refused, it cannot belong to two studies.
    let misfiled = in_other_study(&ct, "1.2.826.0.1.3680043.8.498.77", "1.2.826.0.1.3680043.8.498.78", dir.path());
    parts.insert(1, ("application/dicom", misfiled));
    let (status, body) = stow(&s, NODE_A, &parts).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let referenced = body["00081199"]["Value"].as_array().expect("ReferencedSOPSequence");
    let failed = body["00081198"]["Value"].as_array().expect("FailedSOPSequence");
    assert_eq!(referenced.len(), good.len(), "{body}");
    assert_eq!(uid_set(referenced, "00081155"), good.iter().map(|f| uids(f).2).collect());
    assert_eq!(failed.len(), 1);
    assert_eq!(value(&failed[0], "00081155"), "1.2.826.0.1.3680043.8.498.78");
    assert_eq!(failed[0]["00081197"], serde_json::json!({"vr": "US", "Value": [0x0110]}));

    assert_eq!(count_rows(&s, "instances").await, instances + good.len() as i64);
    assert_eq!(s.archived_files().len(), files + good.len());
    assert_eq!(qido(&s, "studies?StudyInstanceUID=1.2.826.0.1.3680043.8.498.77").await.len(), 0, "no trace of the refused study");
    assert!(s.staging_is_empty(), "staging is emptied");
    s.stop().await;
}

async fn stow_checks_node_media_type_and_study(backend: Backend) {
    let s = TestServer::start(backend).await;
    let ct = sample("ele_ct16_CT_small.dcm");
    let related = format!("multipart/related; type=\"application/dicom\"; boundary={BOUNDARY}");
    let body = || multipart(&dicom_parts(std::slice::from_ref(&ct)));

    // Unknown calling AE title, and a node of another tenant: 400 naming it.
    for aet in ["NOBODY", NODE_B] {
        let (status, content_type, answer) =
            stow_raw(&s, KEY_A, &format!("stowRsListener/{aet}/studies"), &related, body()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert_eq!(content_type, "application/json");
        assert!(answer["message"].as_str().unwrap().contains(aet), "{answer}");
    }
    let path = format!("stowRsListener/{NODE_A}/studies");
    // Not multipart/related: 400. Parts of another type: 415.
    let (status, _, answer) = stow_raw(&s, KEY_A, &path, "application/dicom", std::fs::read(&ct).unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    let (status, _, answer) = stow_raw(&s, KEY_A, &path, "multipart/related; type=\"application/dicom\"", body()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "no boundary: {answer}");
    let xml = format!("multipart/related; type=\"application/dicom+xml\"; boundary={BOUNDARY}");
    let (status, _, answer) = stow_raw(&s, KEY_A, &path, &xml, body()).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{answer}");
    let (status, _) = stow(&s, NODE_A, &[("text/plain", b"hello".to_vec())]).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let (status, _, answer) = stow_raw(&s, KEY_A, &path, &related, format!("--{BOUNDARY}--\r\n").into_bytes()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "no parts: {answer}");

    // A study in the path: an instance of another study fails with 0xA900; its own study is fine.
    let (study, _, sop) = uids(&ct);
    let other = format!("stowRsListener/{NODE_A}/studies/1.2.3.4.5");
    let (status, content_type, answer) = stow_raw(&s, KEY_A, &other, &related, body()).await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert_eq!(content_type, DICOM_JSON);
    assert_eq!(answer["00081198"]["Value"][0]["00081197"], serde_json::json!({"vr": "US", "Value": [0xA900]}));
    assert_eq!(value(&answer["00081198"]["Value"][0], "00081155"), sop.as_str());
    assert!(s.archived_files().is_empty() && s.staging_is_empty());
    assert_eq!(count_rows(&s, "instances").await, 0);
    let own = format!("stowRsListener/{NODE_A}/studies/{study}");
    let (status, _, answer) = stow_raw(&s, KEY_A, &own, &related, body()).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(value(&answer, "00081190").as_str().unwrap().ends_with(&format!("/rs/studies/{study}")));

    // Without an API key: 401.
    let response = s.http.post(format!("{}/{own}", s.base)).header("Content-Type", related).body(body()).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    s.stop().await;
}

async fn tenants_and_deprecation_hide_studies(backend: Backend) {
    let s = TestServer::start(backend).await;
    let files = stow_samples(&s).await;
    let (ct_study, ct_series, ct_sop) = uids(&files[0]);

    // Tenant beta sees nothing of alpha's.
    assert!(qido_as(&s, KEY_B, "studies").await.is_empty());
    assert!(qido_as(&s, KEY_B, "instances").await.is_empty());
    assert!(qido_as(&s, KEY_B, &format!("studies?StudyInstanceUID={ct_study}")).await.is_empty());
    for path in [
        format!("studies/{ct_study}"),
        format!("studies/{ct_study}/metadata"),
        format!("studies/{ct_study}/series/{ct_series}/instances/{ct_sop}"),
    ] {
        let (status, _) = s.get_as(KEY_B, &format!("rs/{path}")).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
    // Beta stores the same instance under its own node: its own copy.
    let content_type = format!("multipart/related; type=\"application/dicom\"; boundary={BOUNDARY}");
    let (status, _, body) =
        stow_raw(&s, KEY_B, &format!("stowRsListener/{NODE_B}/studies"), &content_type, multipart(&dicom_parts(&files[..1])))
            .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(qido_as(&s, KEY_B, "studies").await.len(), 1);
    assert_eq!(qido(&s, "studies").await.len(), 4);

    // Deprecated instance, series and study are not returned.
    execute(&s, "UPDATE instances SET deprecated = 1 WHERE sop_instance_uid = $1 AND tenant = 'alpha'", &ct_sop).await;
    assert_eq!(qido(&s, &format!("studies/{ct_study}/instances")).await.len(), 1);
    let (status, _) = s.get(&format!("rs/studies/{ct_study}/series/{ct_series}/instances/{ct_sop}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    execute(&s, "UPDATE series SET deprecated = 1 WHERE series_uid = $1 AND tenant = 'alpha'", &ct_series).await;
    assert!(qido(&s, &format!("studies/{ct_study}/series")).await.is_empty());
    execute(&s, "UPDATE studies SET deprecated = 1 WHERE study_uid = $1 AND tenant = 'alpha'", &ct_study).await;
    assert_eq!(qido(&s, "studies").await.len(), 3);
    let (status, _) = s.get(&format!("rs/studies/{ct_study}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(qido_as(&s, KEY_B, "studies").await.len(), 1, "beta's copy is not deprecated");
    s.stop().await;
}

async fn chunked_stow_without_content_length(backend: Backend) {
    let s = TestServer::start(backend).await;
    let files = samples();
    let body = multipart(&dicom_parts(&files));
    let mut stream = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let head = format!(
        "POST /o3-dpacs-wado/stowRsListener/{NODE_A}/studies HTTP/1.1\r\nHost: {}\r\nAuthorization: {KEY_A}\r\n\
         Content-Type: multipart/related; type=\"application/dicom\"; boundary={BOUNDARY}\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        s.addr
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    for chunk in body.chunks(7_777) {
        stream.write_all(format!("{:x}\r\n", chunk.len()).as_bytes()).await.unwrap();
        stream.write_all(chunk).await.unwrap();
        stream.write_all(b"\r\n").await.unwrap();
    }
    stream.write_all(b"0\r\n\r\n").await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.to_ascii_lowercase().contains("content-type: application/dicom+json\r\n"), "{answer}");
    assert_eq!(qido(&s, "instances").await.len(), files.len());
    s.stop().await;
}

async fn interrupted_stow_leaves_nothing(backend: Backend) {
    let s = TestServer::start(backend).await;
    let body = multipart(&dicom_parts(&[sample("ele_mr16_examples_overlay.dcm")]));
    let mut stream = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let head = format!(
        "POST /o3-dpacs-wado/stowRsListener/{NODE_A}/studies HTTP/1.1\r\nHost: {}\r\nAuthorization: {KEY_A}\r\n\
         Content-Type: multipart/related; type=\"application/dicom\"; boundary={BOUNDARY}\r\nContent-Length: {}\r\n\r\n",
        s.addr,
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    // Half the instance (past the first write batch boundary is not needed: any cut must clean up).
    stream.write_all(&body[..body.len() / 2]).await.unwrap();
    stream.flush().await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    drop(stream);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !s.staging_is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(s.staging_is_empty(), "the staged part is removed");
    assert!(s.archived_files().is_empty());
    assert_eq!(count_rows(&s, "instances").await, 0);
    assert_eq!(count_rows(&s, "studies").await, 0);
    s.stop().await;
}

async fn dicomweb_client_round_trip(backend: Backend) {
    let s = TestServer::start(backend).await;
    let files: Vec<PathBuf> = [
        "ele_ct16_CT_small.dcm",
        "jpegll70_ct16_CT_small_dcmcjpeg.dcm",
        "j2k90_mr16_MR_small_jp2klossless.dcm",
        "rle_rgb_SC_rgb_rle.dcm",
        "ile_mr16_MR_small_implicit.dcm",
        "ele_mr16_examples_overlay.dcm",
    ]
    .into_iter()
    .map(sample)
    .collect();
    let output = tokio::process::Command::new("python3")
        .arg(repo_root().join("tests/data/dicomweb_example.py"))
        .arg(&s.base)
        .arg(KEY_A)
        .arg(NODE_A)
        .args(&files)
        .output()
        .await
        .expect("python3 runs");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "dicomweb-client round trip failed:\n{text}");
    assert!(text.contains("ROUND TRIP OK"), "{text}");
    assert_eq!(qido(&s, "instances").await.len(), files.len());
    s.stop().await;
}
