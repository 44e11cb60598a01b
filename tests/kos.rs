//! The KOS family (`POST studies/createKos`, `GET studies/kos`) end to end: instances sent over
//! DICOM by storescu, documents checked by dciodvfy, dcmdump and pydicom, their evidence read
//! back, stored ones found in the archive, every error code, and the example variant hot-swapped.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use wasmpacs_tests::{
    Backend, KEY_A, KEY_B, NODE_A, Options, SERVER_AE, TestServer, component, kos_manifest, on_both_backends, testset,
};

on_both_backends!(
    generated_kos_is_conformant_and_not_stored,
    created_kos_is_stored_without_deprecated_instances_or_earlier_kos,
    errors_answer_with_the_seed_codes,
    failed_create_leaves_no_file_and_no_row,
    documents_created_at_once_take_distinct_series_numbers,
    swapping_in_the_key_images_variant_changes_the_title,
);

const KOS_CLASS: &str = "1.2.840.10008.5.1.4.1.1.88.59";
/// The study of pydicom's CT_small and its transcoded copies: one series of 6 CT images.
const CT_STUDY: &str = "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322";
/// The `uid_root` of the test manifest.
const UID_ROOT: &str = "1.2.826.0.1.3680043.10.1418.";
const ALL_GRANTS: &[&str] = &["archive", "events", "log", "settings"];

async fn server(backend: Backend, component_path: &Path, grants: &[&str], extra_config: &str) -> TestServer {
    let mut options = Options::new(backend);
    options.manifest = Some(kos_manifest(component_path, grants));
    options.extra_config = extra_config.to_owned();
    TestServer::start_with(options).await.expect("server starts")
}

/// The CT_small family of the sample set (one study, one series, six transfer syntaxes).
fn ct_files() -> Vec<PathBuf> {
    testset().into_iter().filter(|p| p.file_name().unwrap().to_string_lossy().contains("CT_small")).collect()
}

/// Two more series for the CT study (copies of CT_small with new series and instance UIDs)
/// and pydicom's SR document moved into it (a non-image object), written under `dir`.
fn more_series(dir: &Path) -> Vec<PathBuf> {
    let ct = testset().into_iter().find(|p| p.ends_with("ele_ct16_CT_small.dcm")).expect("CT_small");
    let sr = testset().into_iter().find(|p| p.ends_with("ele_sr_test-SR.dcm")).expect("test-SR");
    let mut files = Vec::new();
    for (n, source, extra) in [(1, &ct, None), (2, &ct, None), (3, &sr, Some(format!("(0020,000D)={CT_STUDY}")))] {
        let target = dir.join(format!("more-{n}.dcm"));
        std::fs::copy(source, &target).unwrap();
        let mut command = Command::new("dcmodify");
        command.args(["-nb", "-gse", "-gin"]);
        if let Some(assignment) = extra {
            command.args(["-m", &assignment]);
        }
        assert!(command.arg(&target).status().expect("dcmodify runs").success());
        files.push(target);
    }
    files
}

async fn store(s: &TestServer, files: &[PathBuf]) {
    let (ok, output) = s.storescu(NODE_A, files).await;
    assert!(ok, "storescu failed: {output}");
}

/// What a test needs to know of a KOS document.
#[derive(Debug)]
struct Kos {
    sop_instance_uid: String,
    sop_class_uid: String,
    series_uid: String,
    study_uid: String,
    modality: String,
    patient_id: String,
    /// (Code Value, Code Meaning) of the Document Title.
    title: (String, String),
    /// (series, SOP class, SOP instance) of the evidence.
    evidence: BTreeSet<(String, String, String)>,
    retrieve_ae_titles: BTreeSet<String>,
    /// (Value Type, SOP instance) of the content items.
    items: Vec<(String, String)>,
}

fn text(o: &InMemDicomObject, tag: dicom_core::Tag) -> String {
    o.element_opt(tag)
        .ok()
        .flatten()
        .and_then(|e| e.to_str().ok())
        .map(|v| v.trim_end_matches(['\0', ' ']).to_owned())
        .unwrap_or_default()
}

fn items(o: &InMemDicomObject, tag: dicom_core::Tag) -> Vec<InMemDicomObject> {
    o.element_opt(tag).ok().flatten().and_then(|e| e.items().map(|i| i.to_vec())).unwrap_or_default()
}

fn read_kos(path: &Path) -> Kos {
    let file = dicom_object::open_file(path).unwrap_or_else(|e| panic!("{} is not DICOM: {e}", path.display()));
    assert_eq!(file.meta().media_storage_sop_class_uid().trim_end_matches('\0'), KOS_CLASS);
    let o: &InMemDicomObject = &file;
    let title = items(o, tags::CONCEPT_NAME_CODE_SEQUENCE)
        .first()
        .map(|c| (text(c, tags::CODE_VALUE), text(c, tags::CODE_MEANING)))
        .unwrap_or_default();
    let mut evidence = BTreeSet::new();
    let mut retrieve_ae_titles = BTreeSet::new();
    for study in items(o, tags::CURRENT_REQUESTED_PROCEDURE_EVIDENCE_SEQUENCE) {
        assert_eq!(text(&study, tags::STUDY_INSTANCE_UID), text(o, tags::STUDY_INSTANCE_UID));
        for series in items(&study, tags::REFERENCED_SERIES_SEQUENCE) {
            retrieve_ae_titles.insert(text(&series, tags::RETRIEVE_AE_TITLE));
            for sop in items(&series, tags::REFERENCED_SOP_SEQUENCE) {
                evidence.insert((
                    text(&series, tags::SERIES_INSTANCE_UID),
                    text(&sop, tags::REFERENCED_SOP_CLASS_UID),
                    text(&sop, tags::REFERENCED_SOP_INSTANCE_UID),
                ));
            }
        }
    }
    let content = items(o, tags::CONTENT_SEQUENCE)
        .iter()
        .map(|item| {
            let sop = items(item, tags::REFERENCED_SOP_SEQUENCE);
            (text(item, tags::VALUE_TYPE), sop.first().map(|r| text(r, tags::REFERENCED_SOP_INSTANCE_UID)).unwrap_or_default())
        })
        .collect();
    Kos {
        sop_instance_uid: text(o, tags::SOP_INSTANCE_UID),
        sop_class_uid: text(o, tags::SOP_CLASS_UID),
        series_uid: text(o, tags::SERIES_INSTANCE_UID),
        study_uid: text(o, tags::STUDY_INSTANCE_UID),
        modality: text(o, tags::MODALITY),
        patient_id: text(o, tags::PATIENT_ID),
        title,
        evidence,
        retrieve_ae_titles,
        items: content,
    }
}

/// Checks a document with the three outside readers: dciodvfy reports no error, dcmdump and
/// pydicom read it; then reads it.
fn validate(path: &Path) -> Kos {
    let output = Command::new("dciodvfy").arg(path).output().expect("dciodvfy runs (apt-get install dicom3tools)");
    let report = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    let errors: Vec<&str> = report.lines().filter(|l| l.contains("Error")).collect();
    println!("dciodvfy {}:\n{report}", path.display());
    assert!(errors.is_empty(), "dciodvfy reports errors on {}:\n{report}", path.display());
    assert!(report.contains("KeyObjectSelectionDocument"), "dciodvfy checked it as a KOS:\n{report}");
    let dump = Command::new("dcmdump").arg(path).output().expect("dcmdump runs");
    assert!(dump.status.success(), "dcmdump: {}", String::from_utf8_lossy(&dump.stderr));
    let py = Command::new("python3")
        .args(["-c", "import pydicom,sys; ds=pydicom.dcmread(sys.argv[1]); print(ds.SOPClassUID, len(ds.ContentSequence))"])
        .arg(path)
        .output()
        .expect("python3 runs");
    assert!(py.status.success(), "pydicom: {}", String::from_utf8_lossy(&py.stderr));
    assert!(String::from_utf8_lossy(&py.stdout).starts_with(KOS_CLASS));
    read_kos(path)
}

/// The kind of a `studyEvents` entry.
fn kind(event: &Value) -> &str {
    event.get("eventType").or_else(|| event.get("kind")).and_then(Value::as_str).unwrap_or_default()
}

/// `GET studies/kos?studyUid=` as tenant `key`.
async fn get_kos(s: &TestServer, key: &str, query: &str) -> (StatusCode, HeaderMap, Vec<u8>) {
    let response = s.http.get(format!("{}/studies/kos{query}", s.base)).header("Authorization", key).send().await.expect("sent");
    let (status, headers) = (response.status(), response.headers().clone());
    (status, headers, response.bytes().await.expect("body").to_vec())
}

/// Generates the study's KOS, checks the answer and the document, and reads it.
async fn generated(s: &TestServer, study: &str) -> Kos {
    let (status, headers, body) = get_kos(s, KEY_A, &format!("?studyUid={study}")).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert_eq!(headers["content-type"], "application/dicom");
    let path = s.data_dir.path().join(format!("generated-{}.dcm", body.len()));
    std::fs::write(&path, &body).unwrap();
    let kos = validate(&path);
    assert_eq!(headers["content-disposition"].to_str().unwrap(), format!("attachment; filename=\"{}\"", kos.sop_instance_uid));
    kos
}

/// The evidence the study's instances call for: every stored instance of `files` but those named.
fn expected_evidence(files: &[PathBuf], except: &[&str]) -> BTreeSet<(String, String, String)> {
    files
        .iter()
        .map(|f| dicom_object::OpenFileOptions::new().read_until(tags::PIXEL_DATA).open_file(f).expect("sample"))
        .map(|o| (text(&o, tags::SERIES_INSTANCE_UID), text(&o, tags::SOP_CLASS_UID), text(&o, tags::SOP_INSTANCE_UID)))
        .filter(|(_, _, sop)| !except.contains(&sop.as_str()))
        .collect()
}

/// Where a stored instance's file is (the archive's layout), when it is there.
fn stored_file(s: &TestServer, kos: &Kos) -> PathBuf {
    s.data_dir
        .path()
        .join("archive/alpha")
        .join(&kos.study_uid)
        .join(&kos.series_uid)
        .join(format!("{}.dcm", kos.sop_instance_uid))
}

/// Every `.dcm` file under the archive medium.
fn archive_files(s: &TestServer) -> BTreeSet<PathBuf> {
    fn walk(dir: &Path, found: &mut BTreeSet<PathBuf>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, found);
            } else if path.extension().is_some_and(|e| e == "dcm") {
                found.insert(path);
            }
        }
    }
    let mut found = BTreeSet::new();
    walk(&s.data_dir.path().join("archive"), &mut found);
    found
}

async fn generated_kos_is_conformant_and_not_stored(backend: Backend) {
    let mut s = server(backend, &component("kos"), ALL_GRANTS, "").await;
    let files = ct_files();
    store(&s, &files).await;

    // Single series.
    let kos = generated(&s, CT_STUDY).await;
    assert_eq!(kos.sop_class_uid, KOS_CLASS);
    assert_eq!(kos.modality, "KO");
    assert_eq!(kos.study_uid, CT_STUDY);
    assert_eq!(kos.patient_id, "1CT1", "patient attributes come from the study");
    assert_eq!(kos.title, ("113030".into(), "Manifest".into()));
    assert!(kos.sop_instance_uid.starts_with(UID_ROOT) && kos.series_uid.starts_with(UID_ROOT), "{kos:?}");
    assert!(kos.sop_instance_uid.len() <= 64 && kos.sop_instance_uid != kos.series_uid);
    assert_eq!(kos.evidence, expected_evidence(&files, &[]));
    assert_eq!(kos.retrieve_ae_titles, BTreeSet::from([SERVER_AE.to_owned()]));
    assert_eq!(kos.items.len(), files.len());
    assert!(kos.items.iter().all(|(kind, _)| kind == "IMAGE"), "{:?}", kos.items);

    // Generated, not stored: no row, no file, no event; a second one is a new document.
    assert_eq!(s.instance_rows("alpha", &kos.sop_instance_uid).await, 0);
    assert!(!stored_file(&s, &kos).exists());
    assert!(s.events_as(KEY_A).await.iter().all(|e| kind(e) != "KOS_CREATED"));
    let again = generated(&s, CT_STUDY).await;
    assert_ne!(again.sop_instance_uid, kos.sop_instance_uid, "every document gets its own UID");

    // Several series, one of them a non-image object (a COMPOSITE item).
    let dir = tempfile::tempdir().unwrap();
    let more = more_series(dir.path());
    store(&s, &more).await;
    let all: Vec<PathBuf> = files.iter().chain(&more).cloned().collect();
    let kos = generated(&s, CT_STUDY).await;
    assert_eq!(kos.evidence, expected_evidence(&all, &[]));
    assert_eq!(kos.evidence.iter().map(|(series, _, _)| series).collect::<BTreeSet<_>>().len(), 4);
    assert_eq!(kos.items.iter().filter(|(kind, _)| kind == "COMPOSITE").count(), 1, "{:?}", kos.items);
    assert_eq!(s.study_instance_rows("alpha", CT_STUDY).await, all.len() as i64, "nothing stored by GET");
    s.stop().await;
}

async fn created_kos_is_stored_without_deprecated_instances_or_earlier_kos(backend: Backend) {
    let mut s = server(backend, &component("kos"), ALL_GRANTS, "").await;
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<PathBuf> = ct_files().into_iter().chain(more_series(dir.path())).collect();
    store(&s, &files).await;
    let deprecated = expected_evidence(&files[..1], &[]).into_iter().next().unwrap().2;
    s.deprecate_instance("alpha", &deprecated).await;

    let (status, answer) = s.post("studies/createKos", &json!({"studyInstanceUid": CT_STUDY, "callingAE": "NGV"})).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["success"], true, "{answer}");
    let sop = answer["sopInstanceUid"].as_str().expect("sopInstanceUid").to_owned();

    // Stored: a row, a file in the archive, a conformant document without the deprecated instance.
    assert_eq!(s.instance_rows("alpha", &sop).await, 1);
    let path = s.stored_file("alpha", &sop).await;
    assert!(archive_files(&s).contains(&path), "the KOS file is in the archive");
    let first = validate(&path);
    assert_eq!(first.sop_instance_uid, sop);
    assert_eq!(first.evidence, expected_evidence(&files, &[&deprecated]));
    assert_eq!(first.items.len(), files.len() - 1);

    // The event feed says so.
    let events = s.events_as(KEY_A).await;
    let created: Vec<&Value> = events.iter().filter(|e| kind(e) == "KOS_CREATED").collect();
    assert_eq!(created.len(), 1, "{events:?}");
    assert_eq!(created[0]["detail"]["sopInstanceUid"], sop.as_str());

    // The query API lists it, in its own KO series; WADO-RS serves it.
    let (status, listing) = s.get(&format!("studyInstances?studyUid={CT_STUDY}")).await;
    assert_eq!(status, StatusCode::OK, "{listing}");
    let listed = listing.as_array().expect("array").iter().find(|i| i["sopInstanceUid"] == sop.as_str()).cloned();
    let listed = listed.unwrap_or_else(|| panic!("studyInstances lists the KOS: {listing}"));
    assert_eq!(listed["modality"], "KO");
    assert_eq!(listed["seriesInstanceUid"], first.series_uid.as_str());
    let wado = s
        .http
        .get(format!("{}/rs/studies/{CT_STUDY}/series/{}/instances/{sop}", s.base, first.series_uid))
        .header("Authorization", KEY_A)
        .send()
        .await
        .expect("sent");
    assert_eq!(wado.status(), StatusCode::OK);
    let body = wado.bytes().await.unwrap();
    assert!(body.windows(sop.len()).any(|w| w == sop.as_bytes()), "WADO-RS returns the KOS");

    // A second KOS leaves the first out (earlier KOS are not referenced), and so does GET.
    let (status, answer) = s.post("studies/createKos", &json!({"studyInstanceUid": CT_STUDY, "callingAE": "NGV"})).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let second_sop = answer["sopInstanceUid"].as_str().unwrap().to_owned();
    assert_ne!(second_sop, sop);
    let path = s.stored_file("alpha", &second_sop).await;
    assert!(archive_files(&s).contains(&path), "second KOS file");
    let second = validate(&path);
    assert_eq!(second.evidence, first.evidence, "the first KOS is not referenced by the second");
    assert_ne!(second.series_uid, first.series_uid, "each KOS gets a new series");
    assert_eq!(generated(&s, CT_STUDY).await.evidence, first.evidence);
    assert_eq!(s.study_instance_rows("alpha", CT_STUDY).await, files.len() as i64 + 2);
    s.stop().await;
}

/// Several KOS created at once for one study: each is stored in a series of its own, and no two
/// of those series share a Series Number.
async fn documents_created_at_once_take_distinct_series_numbers(backend: Backend) {
    const DOCUMENTS: usize = 4;
    let s = server(backend, &component("kos"), ALL_GRANTS, "").await;
    store(&s, &ct_files()).await;
    let body = json!({"studyInstanceUid": CT_STUDY, "callingAE": "NGV"});
    let answers = futures::future::join_all((0..DOCUMENTS).map(|_| s.post("studies/createKos", &body))).await;
    assert!(answers.iter().all(|(status, _)| *status == StatusCode::OK), "{answers:?}");
    let numbers: Vec<Option<i64>> = sqlx::query_scalar(
        "SELECT se.series_number FROM series se JOIN studies st ON st.id = se.study_fk \
         WHERE st.study_uid = $1 AND se.modality = 'KO' ORDER BY se.series_number",
    )
    .bind(CT_STUDY)
    .fetch_all(&s.connect_db().await)
    .await
    .unwrap();
    assert_eq!(numbers.len(), DOCUMENTS, "{numbers:?}");
    let distinct: BTreeSet<_> = numbers.iter().collect();
    assert_eq!(distinct.len(), DOCUMENTS, "each KO series has its own number: {numbers:?}");
    s.stop().await;
}

async fn errors_answer_with_the_seed_codes(backend: Backend) {
    let mut s = server(backend, &component("kos"), ALL_GRANTS, "").await;
    store(&s, &ct_files()).await;
    let expect = |status: StatusCode, answer: &Value, code: StatusCode, error_code: &str| {
        assert_eq!(status, code, "{answer}");
        assert_eq!(answer["success"], false, "{answer}");
        assert_eq!(answer["errorCode"], error_code, "{answer}");
    };
    // MALFORMED_JSON: not JSON, not an object, missing, blank or non-string fields.
    for body in [
        "not json",
        "[1]",
        "{}",
        r#"{"studyInstanceUid": "1.2"}"#,
        r#"{"callingAE": "NGV"}"#,
        r#"{"studyInstanceUid": " ", "callingAE": "NGV"}"#,
        r#"{"studyInstanceUid": 12, "callingAE": "NGV"}"#,
    ] {
        let response =
            s.http.post(format!("{}/studies/createKos", s.base)).header("Authorization", KEY_A).body(body).send().await.unwrap();
        let status = response.status();
        let answer: Value = response.json().await.unwrap();
        expect(status, &answer, StatusCode::BAD_REQUEST, "MALFORMED_JSON");
    }
    // STUDY_NOT_FOUND: an unknown study, another tenant's study.
    let (status, answer) = s.post("studies/createKos", &json!({"studyInstanceUid": "1.2.3.4", "callingAE": "NGV"})).await;
    expect(status, &answer, StatusCode::NOT_FOUND, "STUDY_NOT_FOUND");
    let (status, answer) =
        s.post_as(KEY_B, "studies/createKos", &json!({"studyInstanceUid": CT_STUDY, "callingAE": "NGV"})).await;
    expect(status, &answer, StatusCode::NOT_FOUND, "STUDY_NOT_FOUND");
    // GET: 400 without studyUid, 404 for an unknown study or another tenant's, JSON bodies.
    for (key, query, code) in [
        (KEY_A, "", StatusCode::BAD_REQUEST),
        (KEY_A, "?studyUid=", StatusCode::BAD_REQUEST),
        (KEY_A, "?studyUid=1.2.3.4", StatusCode::NOT_FOUND),
        (KEY_B, &format!("?studyUid={CT_STUDY}"), StatusCode::NOT_FOUND),
    ] {
        let (status, headers, body) = get_kos(&s, key, query).await;
        assert_eq!(status, code, "{query}");
        assert_eq!(headers["content-type"], "application/json");
        let answer: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(answer["success"], false);
        let expected = if code == StatusCode::NOT_FOUND { "STUDY_NOT_FOUND" } else { "MISSING_PARAMETER" };
        assert_eq!(answer["errorCode"], expected, "{answer}");
    }
    // A study whose instances are all deprecated has nothing to reference.
    for (_, _, sop) in expected_evidence(&ct_files(), &[]) {
        s.deprecate_instance("alpha", &sop).await;
    }
    let (status, answer) = s.post("studies/createKos", &json!({"studyInstanceUid": CT_STUDY, "callingAE": "NGV"})).await;
    expect(status, &answer, StatusCode::NOT_FOUND, "STUDY_NOT_FOUND");
    let (status, _, _) = get_kos(&s, KEY_A, &format!("?studyUid={CT_STUDY}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(s.events_as(KEY_A).await.iter().all(|e| kind(e) != "KOS_CREATED"));
    s.stop().await;

    // INTERNAL_GENERIC_ERROR: a site setting that cannot make UIDs.
    let mut options = Options::new(backend);
    let manifest = kos_manifest(&component("kos"), ALL_GRANTS).replace("1.2.826.0.1.3680043.10.1418", "1.2.not.a.root");
    options.manifest = Some(manifest);
    let s = TestServer::start_with(options).await.expect("server starts");
    store(&s, &ct_files()).await;
    let (status, answer) = s.post("studies/createKos", &json!({"studyInstanceUid": CT_STUDY, "callingAE": "NGV"})).await;
    expect(status, &answer, StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_GENERIC_ERROR");
    assert!(answer["message"].as_str().unwrap().contains("uid_root"), "{answer}");
    s.stop().await;
}

async fn failed_create_leaves_no_file_and_no_row(backend: Backend) {
    // INTERNAL_IO_ERROR: the study's folder in the archive cannot be created (a file is in the
    // way): 500, and nothing of the KOS is left, neither a row nor an event.
    let mut s = server(backend, &component("kos"), ALL_GRANTS, "").await;
    let files = ct_files();
    store(&s, &files).await;
    let before = archive_files(&s);
    let study_dir = s.data_dir.path().join("archive/alpha").join(CT_STUDY);
    let aside = s.data_dir.path().join("aside");
    std::fs::rename(&study_dir, &aside).unwrap();
    std::fs::write(&study_dir, b"in the way").unwrap();
    let (status, answer) = s.post("studies/createKos", &json!({"studyInstanceUid": CT_STUDY, "callingAE": "NGV"})).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{answer}");
    assert_eq!(answer["errorCode"], "INTERNAL_IO_ERROR", "{answer}");
    std::fs::remove_file(&study_dir).unwrap();
    std::fs::rename(&aside, &study_dir).unwrap();
    assert_eq!(archive_files(&s), before);
    assert_eq!(s.study_instance_rows("alpha", CT_STUDY).await, files.len() as i64);
    let events = s.events_as(KEY_A).await;
    assert!(events.iter().all(|e| kind(e) != "KOS_CREATED" && e["detail"]["modality"] != "KO"), "{events:?}");
    let staging: Vec<_> = std::fs::read_dir(s.data_dir.path().join("archive/.staging")).unwrap().collect();
    assert!(staging.is_empty(), "no staged leftovers: {staging:?}");
    s.stop().await;

    // A plugin that fails after its KOS was placed (here: it may not emit events, so the
    // KOS_CREATED event traps it): the unit is rolled back and the placed file removed.
    let mut s = server(backend, &component("kos"), &["archive", "log", "settings"], "").await;
    store(&s, &files).await;
    let before = archive_files(&s);
    let (status, answer) = s.post("studies/createKos", &json!({"studyInstanceUid": CT_STUDY, "callingAE": "NGV"})).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{answer}");
    assert!(answer["message"].as_str().unwrap_or_default().contains("events"), "{answer}");
    assert_eq!(archive_files(&s), before, "the placed KOS file was removed");
    assert_eq!(s.study_instance_rows("alpha", CT_STUDY).await, files.len() as i64, "no row left");
    let events = s.events_as(KEY_A).await;
    assert!(events.iter().all(|e| kind(e) != "KOS_CREATED" && e["detail"]["modality"] != "KO"), "{events:?}");
    s.stop().await;
}

async fn swapping_in_the_key_images_variant_changes_the_title(backend: Backend) {
    let plugin_dir = tempfile::tempdir().unwrap();
    let live = plugin_dir.path().join("kos.wasm");
    std::fs::copy(component("kos"), &live).unwrap();
    let s = server(backend, &live, ALL_GRANTS, "[reload]\nenabled = true\ndebounce_ms = 50\n").await;
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<PathBuf> = ct_files().into_iter().chain(more_series(dir.path())).collect();
    store(&s, &files).await;
    let manifest = generated(&s, CT_STUDY).await;
    assert_eq!(manifest.title.1, "Manifest");
    assert_eq!(manifest.evidence.len(), files.len(), "the manifest references the SR too");

    // Replace the component atomically, as a deploy would; no restart.
    let tmp = live.with_extension("partial");
    std::fs::copy(component("kos-of-interest"), &tmp).unwrap();
    std::fs::rename(&tmp, &live).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let key_images = loop {
        let kos = generated(&s, CT_STUDY).await;
        if kos.title.0 == "113000" {
            break kos;
        }
        assert!(Instant::now() < deadline, "the variant did not take over");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(key_images.title, ("113000".into(), "Of Interest".into()));
    assert_eq!(key_images.evidence.len(), files.len() - 1, "key images only: the SR is left out");
    assert!(key_images.items.iter().all(|(kind, _)| kind == "IMAGE"));
    let (status, answer) = s.post("studies/createKos", &json!({"studyInstanceUid": CT_STUDY, "callingAE": "NGV"})).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    s.stop().await;
}
