//! Pathology storage (`POST pathoRsListener/{CALLING_AET}/studies`, the `pathology` plugin)
//! through HTTP with `multipart/form-data` uploads: a single slide file, a MIRAX archive and the
//! sidecar variant are stored, listed, and served back byte for byte by `GET wholeslide`; the
//! fingerprint checks, the seed's 400s and 409s, and no file or row left by a refused upload.

use std::io::Write;

use dicom_dictionary_std::tags;
use reqwest::StatusCode;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};
use sha1::{Digest, Sha1};
use wasmpacs_tests::{Backend, KEY_A, KEY_B, NODE_A, Options, TestServer, files_under, on_both_backends, pathology_manifest};

on_both_backends!(
    a_slide_is_stored_listed_and_served_back,
    a_mirax_archive_is_stored_and_checked,
    a_sidecar_stores_the_slide_it_describes,
    refusals_follow_the_seed_and_leave_nothing,
    slides_are_forwarded_to_another_archive,
    slides_follow_their_study
);

const CUSTOM_SOP_CLASS: &str = "1.2.826.0.1.3680043.2.619.20220407.1";

async fn start(backend: Backend) -> TestServer {
    start_with(backend, "").await
}

/// A server with the pathology plugin and `extra_config` (see [`Options::extra_config`]).
async fn start_with(backend: Backend, extra_config: &str) -> TestServer {
    let mut options = Options::new(backend);
    options.extra_config = extra_config.to_owned();
    options.manifest = Some(pathology_manifest());
    TestServer::start_with(options).await.expect("server starts")
}

/// The seed's example metadata, for `container` in the case `accession`.
fn metadata(accession: &str, container: &str) -> Value {
    json!({
        "attributes": {
            "AccessionNumber": accession,
            "ContainerIdentifier": container,
            "PatientBirthDate": "20240115",
            "PatientID": "PATHO-1",
            "PatientName": "TEST^TEST",
            "PatientSex": "M",
            "StudyDescription": "Test"
        },
        "hierarchy": {
            "specimen": {"alias": "B", "bodySite": "Specimen B Body Site", "identifier": "213", "procedure": "Specimen procedure"},
            "block": {"alias": "B-1", "identifier": "456", "procedure": "Block procedure"},
            "slide": {"alias": "B-1-1", "identifier": "222", "procedure": "Slide procedure", "stain": {"code": "EE"}}
        }
    })
}

/// Bytes that stand for a slide file (the archive stores them as they are).
fn slide_bytes(seed: u8, len: usize) -> Vec<u8> {
    let mut state = u32::from(seed) * 2_654_435_761 + 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as u8
        })
        .collect()
}

fn sha1_hex(bytes: &[u8]) -> String {
    hex::encode(Sha1::digest(bytes))
}

/// A MIRAX archive: `<name>.mrxs` and its data folder, stored without compression.
fn mirax(name: &str, with_descriptor: bool) -> (Vec<u8>, Vec<u8>) {
    let descriptor = format!("[GENERAL]\nSLIDE_ID = {name}\n").into_bytes();
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    if with_descriptor {
        zip.start_file(format!("{name}.mrxs"), options).unwrap();
        zip.write_all(&descriptor).unwrap();
    }
    zip.add_directory(format!("{name}/"), options).unwrap();
    for (file, seed) in [("Slidedat.ini", 1), ("Index.dat", 2), ("Data0000.dat", 3)] {
        zip.start_file(format!("{name}/{file}"), options).unwrap();
        zip.write_all(&slide_bytes(seed, 300_000)).unwrap();
    }
    (zip.finish().unwrap().into_inner(), descriptor)
}

/// A form with the seed's example `metadata` for `container` and the slide `file`.
fn slide_form(accession: &str, container: &str, name: &str, content_type: &str, bytes: Vec<u8>) -> Form {
    Form::new().part("metadata", json_part(&metadata(accession, container))).part("file", file_part(name, content_type, bytes))
}

fn json_part(value: &Value) -> Part {
    Part::text(value.to_string()).mime_str("application/json").unwrap()
}

fn file_part(name: &str, content_type: &str, bytes: Vec<u8>) -> Part {
    Part::bytes(bytes).file_name(name.to_owned()).mime_str(content_type).unwrap()
}

async fn upload(s: &TestServer, key: &str, aet: &str, form: Form) -> (StatusCode, Value) {
    let response = s
        .http
        .post(format!("{}/pathoRsListener/{aet}/studies", s.base))
        .header("Authorization", key)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

async fn wholeslide(s: &TestServer, key: &str, barcode: &str) -> reqwest::Response {
    s.http.get(format!("{}/wholeslide?barcode={barcode}", s.base)).header("Authorization", key).send().await.unwrap()
}

/// The archived sidecar of `sop`, as a DICOM object.
fn sidecar_of(s: &TestServer, sop: &str) -> (Vec<u8>, dicom_object::DefaultDicomObject) {
    let stored = |name: &str| name.starts_with(&format!("{sop}_")) && name.ends_with(".dcm");
    let path = s
        .archived_files()
        .into_iter()
        .find(|f| f.file_name().and_then(|n| n.to_str()).is_some_and(stored))
        .expect("the sidecar is archived");
    (std::fs::read(&path).unwrap(), dicom_object::open_file(&path).expect("the sidecar is a DICOM file"))
}

fn text(o: &dicom_object::InMemDicomObject, tag: dicom_core::Tag) -> String {
    o.element(tag).map(|e| e.to_str().unwrap().trim_end_matches(['\0', ' ']).to_owned()).unwrap_or_default()
}

async fn a_slide_is_stored_listed_and_served_back(backend: Backend) {
    let s = start(backend).await;
    let bytes = slide_bytes(7, 3_000_000);
    let form = || {
        slide_form("I23-00102", "I23-00102-A-1-1", "I23-00102-A-1-1.svs", "application/octet-stream", bytes.clone())
            .text("fileHash", sha1_hex(&bytes).to_uppercase())
            .text("fileLength", bytes.len().to_string())
    };
    let (status, body) = upload(&s, KEY_A, NODE_A, form()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let study = body["studyInstanceUid"].as_str().expect("study UID").to_owned();
    let sop = body["sopInstanceUid"].as_str().expect("SOP UID").to_owned();
    assert!(study.starts_with("2.25.") && study.len() <= 64, "{study}");

    // The sidecar describes the slide: the seed's SOP class, SM, the file's name, the metadata.
    let (_, sidecar) = sidecar_of(&s, &sop);
    assert_eq!(text(&sidecar, tags::SOP_CLASS_UID), CUSTOM_SOP_CLASS);
    assert_eq!(text(&sidecar, tags::MODALITY), "SM");
    assert_eq!(text(&sidecar, tags::REFERENCED_FILE_ID), "I23-00102-A-1-1.svs");
    assert_eq!(text(&sidecar, tags::CONTAINER_IDENTIFIER), "I23-00102-A-1-1");
    assert_eq!(text(&sidecar, tags::ACCESSION_NUMBER), "I23-00102");
    assert_eq!(text(&sidecar, tags::PATIENT_ID), "PATHO-1");
    assert_eq!(text(&sidecar, tags::PATIENT_NAME), "TEST^TEST");
    assert_eq!(text(&sidecar, tags::STUDY_INSTANCE_UID), study);
    let specimens =
        sidecar.element(tags::SPECIMEN_DESCRIPTION_SEQUENCE).expect("specimen description").items().expect("items").to_vec();
    let identifiers: Vec<String> = specimens.iter().map(|item| text(item, tags::SPECIMEN_IDENTIFIER)).collect();
    assert_eq!(identifiers, ["213", "456", "222"], "specimen, block and slide");

    // The archive lists it, and wholeslide serves the very bytes with their name.
    let (status, listing) = s.get(&format!("studyInstances?studyUid={study}")).await;
    assert_eq!(status, StatusCode::OK, "{listing}");
    assert_eq!(listing.as_array().map(Vec::len), Some(1), "{listing}");
    assert_eq!(listing[0]["sopInstanceUid"], sop.as_str());
    assert_eq!(listing[0]["modality"], "SM");
    let response = wholeslide(&s, KEY_A, "I23-00102-A-1-1").await;
    assert_eq!(response.status(), StatusCode::OK);
    let header = |name: &str| response.headers().get(name).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    assert_eq!(header("content-disposition"), "attachment; filename=\"I23-00102-A-1-1.svs\"");
    assert_eq!(header("content-length"), bytes.len().to_string());
    assert!(response.bytes().await.unwrap() == bytes, "the slide's bytes as sent");
    assert_eq!(wholeslide(&s, KEY_B, "I23-00102-A-1-1").await.status(), StatusCode::NOT_FOUND, "another tenant's slide");

    // The study counts the slide's weight, and its arrival is in the event feed.
    let (status, count) = s.get("studies/count?studySize=2900-").await;
    assert_eq!(status, StatusCode::OK, "{count}");
    assert_eq!(count["study_count"], 1, "{count}");
    let events = s.events_as(KEY_A).await;
    assert!(events.iter().any(|e| e["eventType"] == "STUDY_RECEIVED" && e["studyInstanceUid"] == study.as_str()), "{events:?}");

    // Sending it again changes nothing; the same barcode with another file is a conflict.
    let files_before = s.archived_files();
    let (status, again) = upload(&s, KEY_A, NODE_A, form()).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["sopInstanceUid"], sop.as_str());
    let other = slide_bytes(8, 1000);
    let form = slide_form("I23-00102", "I23-00102-A-1-1", "I23-00102-A-1-1.svs", "application/octet-stream", other);
    let (status, body) = upload(&s, KEY_A, NODE_A, form).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(s.archived_files(), files_before);
    assert!(s.staging_is_empty());

    // A second slide of the same case joins the same study.
    let form =
        slide_form("I23-00102", "I23-00102-A-1-2", "I23-00102-A-1-2.svs", "application/octet-stream", slide_bytes(9, 5000));
    let (status, body) = upload(&s, KEY_A, NODE_A, form).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["studyInstanceUid"], study.as_str());
    s.stop().await;
}

async fn a_mirax_archive_is_stored_and_checked(backend: Backend) {
    let s = start(backend).await;
    let (archive, descriptor) = mirax("CASE-7", true);
    let form = |hash: String, length: usize| {
        slide_form("ACC-7", "CASE-7-A-1-1", "CASE-7.zip", "application/zip", archive.clone())
            .text("fileHash", hash)
            .text("fileLength", length.to_string())
    };
    // The hash is the descriptor's, the length the archive's: the other way round is refused.
    let (status, body) = upload(&s, KEY_A, NODE_A, form(sha1_hex(&archive), archive.len())).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body["message"].as_str().unwrap_or_default().to_lowercase().contains("hash"), "{body}");
    let (status, body) = upload(&s, KEY_A, NODE_A, form(sha1_hex(&descriptor), descriptor.len())).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body["message"].as_str().unwrap_or_default().to_lowercase().contains("length"), "{body}");
    assert!(s.archived_files().is_empty(), "a refused archive leaves no file");

    let (status, body) = upload(&s, KEY_A, NODE_A, form(sha1_hex(&descriptor), archive.len())).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, sidecar) = sidecar_of(&s, body["sopInstanceUid"].as_str().unwrap());
    assert_eq!(text(&sidecar, tags::REFERENCED_FILE_ID), "CASE-7.zip");
    let response = wholeslide(&s, KEY_A, "CASE-7-A-1-1").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/zip");
    assert_eq!(response.headers()["content-disposition"], "attachment; filename=\"CASE-7.zip\"");
    assert!(response.bytes().await.unwrap() == archive, "the archive as sent");

    // An archive without its .mrxs descriptor is a 400.
    let (bare, _) = mirax("CASE-8", false);
    let form = slide_form("ACC-8", "CASE-8-A-1-1", "CASE-8.zip", "application/zip", bare);
    let (status, body) = upload(&s, KEY_A, NODE_A, form).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["message"].as_str().unwrap_or_default().contains(".mrxs"), "{body}");
    assert!(s.staging_is_empty());
    s.stop().await;
}

async fn a_sidecar_stores_the_slide_it_describes(backend: Backend) {
    // A first server generates the sidecar; a second one (another archive) receives it.
    let first = start(backend).await;
    let bytes = slide_bytes(11, 200_000);
    let form = slide_form("ACC-11", "CASE-11-A-1-1", "CASE-11.svs", "application/octet-stream", bytes.clone());
    let (status, body) = upload(&first, KEY_A, NODE_A, form).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (sidecar, object) = sidecar_of(&first, body["sopInstanceUid"].as_str().unwrap());
    first.stop().await;

    let s = start(backend).await;
    // A sidecar that names another file, or a MIRAX archive for a single-file slide: 400.
    let form = Form::new()
        .part("sidecar", file_part("sidecar.dcm", "application/dicom", sidecar.clone()))
        .part("file", file_part("OTHER.svs", "application/octet-stream", bytes.clone()));
    let (status, body) = upload(&s, KEY_A, NODE_A, form).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (archive, _) = mirax("CASE-11", true);
    let form = Form::new()
        .part("sidecar", file_part("sidecar.dcm", "application/dicom", sidecar.clone()))
        .part("file", file_part("CASE-11.svs", "application/zip", archive));
    let (status, body) = upload(&s, KEY_A, NODE_A, form).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    // Not a DICOM file at all.
    let form = Form::new()
        .part("sidecar", file_part("sidecar.dcm", "application/dicom", b"not dicom".to_vec()))
        .part("file", file_part("CASE-11.svs", "application/octet-stream", bytes.clone()));
    let (status, body) = upload(&s, KEY_A, NODE_A, form).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(s.archived_files().is_empty());

    // The slide is stored with the sidecar's own identifiers, and served back.
    let form = Form::new()
        .part("sidecar", file_part("sidecar.dcm", "application/dicom", sidecar))
        .part("file", file_part("CASE-11.svs", "application/octet-stream", bytes.clone()))
        .text("fileHash", sha1_hex(&bytes));
    let (status, body) = upload(&s, KEY_A, NODE_A, form).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["studyInstanceUid"], text(&object, tags::STUDY_INSTANCE_UID).as_str());
    assert_eq!(body["seriesInstanceUid"], text(&object, tags::SERIES_INSTANCE_UID).as_str());
    assert_eq!(body["sopInstanceUid"], text(&object, tags::SOP_INSTANCE_UID).as_str());
    let response = wholeslide(&s, KEY_A, "CASE-11-A-1-1").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.bytes().await.unwrap() == bytes);
    s.stop().await;
}

async fn refusals_follow_the_seed_and_leave_nothing(backend: Backend) {
    let s = start(backend).await;
    let message = |body: &Value| body["message"].as_str().unwrap_or_default().to_owned();
    let file = || file_part("S.svs", "application/octet-stream", slide_bytes(3, 4000));
    let bytes = slide_bytes(3, 4000);

    // Parts missing or malformed, required attributes missing, unknown keywords: 400.
    let cases: Vec<(&str, Form)> = vec![
        ("file", Form::new().part("metadata", json_part(&metadata("A-1", "C-1")))),
        ("metadata", Form::new().part("file", file())),
        ("metadata", Form::new().part("metadata", Part::text("{not json")).part("file", file())),
        ("AccessionNumber", Form::new().part("metadata", json_part(&json!({"attributes": {"PatientID": "P", "ContainerIdentifier": "C-1"}}))).part("file", file())),
        ("ContainerIdentifier", Form::new().part("metadata", json_part(&json!({"attributes": {"PatientID": "P", "AccessionNumber": "A-1"}}))).part("file", file())),
        ("PatientID", Form::new().part("metadata", json_part(&json!({"attributes": {"AccessionNumber": "A-1", "ContainerIdentifier": "C-1"}}))).part("file", file())),
        ("NoSuchKeyword", Form::new().part("metadata", json_part(&json!({"attributes": {"PatientID": "P", "AccessionNumber": "A-1", "ContainerIdentifier": "C-1", "NoSuchKeyword": "x"}}))).part("file", file())),
    ];
    for (named, form) in cases {
        let (status, body) = upload(&s, KEY_A, NODE_A, form).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{named}: {body}");
        assert!(message(&body).contains(named), "{named}: {body}");
    }
    // A calling AE that is not a node of the tenant, and a body that is not a form.
    let form = Form::new().part("metadata", json_part(&metadata("A-1", "C-1"))).part("file", file());
    let (status, body) = upload(&s, KEY_A, "NOT_A_NODE", form).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(message(&body).contains("NOT_A_NODE"), "{body}");
    let (status, body) = s.post_text(KEY_A, "pathoRsListener/MODALITY_A/studies", "application/json", "{}".into()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    // The CALLING_AET part of the URL left empty, or out: 400 naming it.
    for url in [format!("{}/pathoRsListener//studies", s.base), format!("{}/pathoRsListener/studies", s.base)] {
        let form = Form::new().part("metadata", json_part(&metadata("A-1", "C-1"))).part("file", file());
        let response = s.http.post(&url).header("Authorization", KEY_A).multipart(form).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{url}");
        let body: Value = response.json().await.unwrap();
        assert!(message(&body).contains("callingAet"), "{url}: {body}");
    }

    // A form field over 16 MiB, and a form of more than 16 parts: 413 and 400.
    let form = Form::new().part("metadata", Part::text("x".repeat(17 << 20))).part("file", file());
    let (status, body) = upload(&s, KEY_A, NODE_A, form).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    let form = (0..17).fold(Form::new(), |form, i| form.text(format!("extra{i}"), "x"));
    let (status, body) = upload(&s, KEY_A, NODE_A, form).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(message(&body).contains("16 parts"), "{body}");

    // Fingerprints that do not match the file: 409.
    for (hash, length, named) in [(sha1_hex(b"other"), bytes.len(), "hash"), (sha1_hex(&bytes), bytes.len() + 1, "length")] {
        let form = slide_form("A-1", "C-1", "S.svs", "application/octet-stream", bytes.clone())
            .text("fileHash", hash)
            .text("fileLength", length.to_string());
        let (status, body) = upload(&s, KEY_A, NODE_A, form).await;
        assert_eq!(status, StatusCode::CONFLICT, "{named}: {body}");
        assert!(message(&body).to_lowercase().contains(named), "{named}: {body}");
    }

    // Metadata in conflict with the archive: a series filed under another study.
    let form = Form::new().part("metadata", json_part(&metadata("A-1", "C-1"))).part("file", file());
    let (status, body) = upload(&s, KEY_A, NODE_A, form).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let series = body["seriesInstanceUid"].as_str().unwrap().to_owned();
    let mut conflicting = metadata("A-2", "C-2");
    conflicting["attributes"]["SeriesInstanceUID"] = json!(series);
    let form = Form::new().part("metadata", json_part(&conflicting)).part("file", file());
    let (status, body) = upload(&s, KEY_A, NODE_A, form).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    // Only the one accepted slide is left: its sidecar and its file, and one instance row.
    let files = s.archived_files();
    assert_eq!(files.len(), 2, "{files:?}");
    assert!(files.iter().any(|f| f.extension().is_some_and(|e| e == "slide")));
    assert!(s.staging_is_empty());
    let pool = s.connect_db().await;
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM instances").fetch_one(&pool).await.unwrap();
    assert_eq!(rows, 1);
    let studies: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM studies").fetch_one(&pool).await.unwrap();
    assert_eq!(studies, 1, "refused slides create no study");
    s.stop().await;
}

async fn slides_are_forwarded_to_another_archive(backend: Backend) {
    // The peer archive, reached over HTTP at its own pathoRsListener with its API key.
    let peer = start(backend).await;
    let endpoint = format!("{}/pathoRsListener/{NODE_A}/studies", peer.base);
    let forward = |key: &str| {
        format!(
            "\n[forward]\nslide_endpoint = \"{endpoint}\"\nslide_authorization = \"{key}\"\nattempts = 2\nretry_delay_s = 1\n"
        )
    };
    let s = start_with(backend, &forward(KEY_A)).await;
    let bytes = slide_bytes(21, 2_000_000);
    let form = slide_form("ACC-21", "CASE-21-A-1-1", "CASE-21.svs", "application/octet-stream", bytes.clone());
    let (status, stored) = upload(&s, KEY_A, NODE_A, form).await;
    assert_eq!(status, StatusCode::OK, "{stored}");
    let (archive, _) = mirax("CASE-22", true);
    let form = slide_form("ACC-21", "CASE-22-A-1-1", "CASE-22.zip", "application/zip", archive.clone());
    let (status, body) = upload(&s, KEY_A, NODE_A, form).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    for (barcode, sent) in [("CASE-21-A-1-1", &bytes), ("CASE-22-A-1-1", &archive)] {
        let (status, body) = s.post("series/forward", &json!({"containerIdentifier": barcode, "author": "john"})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let job = s.wait_for_job("done").await;
        assert_eq!(job["state"], "done", "{job}");
        assert_eq!(job["kind"], "slides");
        assert_eq!(job["container_identifier"], barcode);
        // The peer serves the same bytes, under the same identifiers.
        let response = wholeslide(&peer, KEY_A, barcode).await;
        assert_eq!(response.status(), StatusCode::OK, "{barcode}");
        assert!(response.bytes().await.unwrap() == *sent, "{barcode}: the bytes as first sent");
    }
    let (status, listing) = peer.get(&format!("studyInstances?studyUid={}", stored["studyInstanceUid"].as_str().unwrap())).await;
    assert_eq!(status, StatusCode::OK, "{listing}");
    assert!(listing.as_array().unwrap().iter().any(|i| i["sopInstanceUid"] == stored["sopInstanceUid"]), "{listing}");
    let events = s.events_as(KEY_A).await;
    let forwarded: Vec<&Value> = events.iter().filter(|e| e["eventType"] == "SERIES_FORWARDED").collect();
    assert_eq!(forwarded.len(), 2, "{events:?}");
    assert_eq!(forwarded[0]["detail"]["containerIdentifier"], "CASE-21-A-1-1");

    // 404 for an unknown container identifier; a peer that refuses the key fails the job.
    let (status, body) = s.post("series/forward", &json!({"containerIdentifier": "NOPE", "author": "john"})).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    s.stop().await;
    let s = start_with(backend, &forward("wrong-key")).await;
    let form = slide_form("ACC-23", "CASE-23-A-1-1", "CASE-23.svs", "application/octet-stream", slide_bytes(23, 1000));
    let (status, body) = upload(&s, KEY_A, NODE_A, form).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = s.post("series/forward", &json!({"containerIdentifier": "CASE-23-A-1-1", "author": "john"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let job = s.wait_for_job("failed").await;
    assert_eq!(job["state"], "failed", "{job}");
    assert_eq!(job["attempts"], 2, "{job}");
    // The peer answers 401 before reading the upload; the client sees that answer, or the
    // connection closed under it while still sending, depending on timing.
    let error = job["last_error"].as_str().unwrap_or_default();
    assert!(error.contains("401") || error.contains("cannot send"), "{job}");
    assert!(wholeslide(&peer, KEY_A, "CASE-23-A-1-1").await.status() == StatusCode::NOT_FOUND);
    s.stop().await;

    // Without an endpoint, or without a forward job at all: 500, as the seed says.
    for (config, expected) in
        [("\n[forward]\nnode = \"X\"\n", "forward endpoint not configured"), ("", "forward job not configured")]
    {
        let s = start_with(backend, config).await;
        let (status, body) = s.post("series/forward", &json!({"containerIdentifier": "CASE-21-A-1-1", "author": "john"})).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
        assert!(body["message"].as_str().unwrap_or_default().contains(expected), "{body}");
        s.stop().await;
    }
    peer.stop().await;
}

async fn slides_follow_their_study(backend: Backend) {
    let nearline = tempfile::tempdir().unwrap();
    let config = format!("\n[[storage.medium]]\nname = \"nearline\"\npath = \"{}\"\n", nearline.path().display());
    let s = start_with(backend, &config).await;
    let (big, small) = (slide_bytes(31, 3_000_000), slide_bytes(32, 1_500_000));
    let send = |accession: &'static str, container: &'static str, bytes: &Vec<u8>| {
        slide_form(accession, container, &format!("{container}.svs"), "application/octet-stream", bytes.clone())
    };
    let (status, first) = upload(&s, KEY_A, NODE_A, send("ACC-31", "CASE-31-A-1-1", &big)).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let (status, body) = upload(&s, KEY_A, NODE_A, send("ACC-31", "CASE-31-A-1-2", &small)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let study = first["studyInstanceUid"].as_str().unwrap().to_owned();

    // The same slide sent again under another case is a conflict, not a second answer.
    let (status, body) = upload(&s, KEY_A, NODE_A, send("ACC-OTHER", "CASE-31-A-1-1", &big)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    // The study weighs both slides (4.5 MB: 4394 KB); a deprecated slide leaves its weight.
    let count = |range: &'static str| {
        let s = &s;
        async move {
            let (status, body) = s.get(&format!("studies/count?studySize={range}")).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            body["study_count"].as_i64().unwrap()
        }
    };
    assert_eq!(count("4390-").await, 1);
    let (status, body) =
        s.post("series/deprecation", &json!({"containerIdentifier": "CASE-31-A-1-2", "author": "a", "reason": "b"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(count("4390-").await, 0);
    assert_eq!(count("2900-2960").await, 1, "the remaining slide's 3 MB (2929 KB) and its sidecar");

    // Relocation moves the slide file with its sidecar; wholeslide serves it from there.
    let request = json!({"studyInstanceUid": study, "physicalMediumName": "nearline", "author": "a"});
    let (status, body) = s.post("studies/relocation", &request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let moved = files_under(nearline.path());
    assert!(moved.iter().any(|p| p.extension().is_some_and(|e| e == "slide")), "{moved:?}");
    let response = wholeslide(&s, KEY_A, "CASE-31-A-1-1").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.bytes().await.unwrap() == big);
    s.stop().await;
}
