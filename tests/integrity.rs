//! Integrity of what is acknowledged: an instance cut short (inside its header, inside its pixel
//! data, one byte short; native, JPEG and RLE) or whose pixel data is shorter than its image is
//! refused over STOW-RS and over C-STORE (raw bytes through a dicom-ul association, since
//! storescu will not send a cut file), leaving no row and no file; the whole file sent next is
//! stored whole. A stored copy cut short (as an older version kept it, digest and size of the cut
//! bytes) is reported by `wasmpacs check --verify-digests` and replaced by a re-send.

use std::path::{Path, PathBuf};

use dicom_ul::association::client::ClientAssociationOptions;
use dicom_ul::pdu::{PDataValue, PDataValueType, Pdu};
use reqwest::StatusCode;
use serde_json::Value;
use wasmpacs_tests::{Backend, KEY_A, NODE_A, SERVER_AE, TestServer, on_both_backends, parse_multipart, sample, uids};

on_both_backends!(
    cut_instances_are_refused_over_stow,
    cut_instances_are_refused_over_c_store,
    a_damaged_stored_copy_is_found_and_replaced
);

const BOUNDARY: &str = "wasmpacs-integrity-boundary";
const CANNOT_UNDERSTAND: i64 = 0xC000;
const DATA_SET_MISMATCH: i64 = 0xA900;

/// Native, JPEG lossless and RLE copies of CT_small.
fn files() -> Vec<PathBuf> {
    ["ele_ct16_CT_small.dcm", "jpegll70_ct16_CT_small_dcmcjpeg.dcm", "rle_ct16_CT_small_dcmcrle.dcm"]
        .into_iter()
        .map(sample)
        .collect()
}

/// Where the data set starts: after the preamble, prefix and file meta group.
fn data_set_start(bytes: &[u8]) -> usize {
    assert_eq!(&bytes[128..132], b"DICM");
    let mut at = 132;
    while u16::from_le_bytes([bytes[at], bytes[at + 1]]) == 0x0002 {
        let vr = &bytes[at + 4..at + 6];
        at += if matches!(vr, b"OB" | b"UN" | b"UT" | b"SQ" | b"OW") {
            12 + u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap()) as usize
        } else {
            8 + u16::from_le_bytes([bytes[at + 6], bytes[at + 7]]) as usize
        };
    }
    at
}

/// Where Pixel Data's header starts (explicit VR little endian).
fn pixel_data_at(bytes: &[u8]) -> usize {
    bytes
        .windows(6)
        .rposition(|w| w == [0xE0, 0x7F, 0x10, 0x00, b'O', b'W'] || w == [0xE0, 0x7F, 0x10, 0x00, b'O', b'B'])
        .expect("Pixel Data")
}

/// The cuts of a file: inside the header (between its start and Pixel Data), inside the pixel
/// data, one byte short.
fn cuts(bytes: &[u8]) -> Vec<(&'static str, usize)> {
    let (start, pixels) = (data_set_start(bytes), pixel_data_at(bytes));
    vec![
        ("inside the header", (start + pixels) / 2 + 1),
        ("inside the pixel data", pixels + (bytes.len() - pixels) / 2),
        ("one byte short", bytes.len() - 1),
    ]
}

/// A native file whose elements are all whole but whose Pixel Data is two bytes short of its image.
fn short_pixels(bytes: &[u8]) -> Vec<u8> {
    let at = pixel_data_at(bytes);
    let len = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap()) - 2;
    let mut out = bytes[..at + 12 + len as usize].to_vec();
    out[at + 8..at + 12].copy_from_slice(&len.to_le_bytes());
    out
}

async fn stow(s: &TestServer, bytes: &[u8]) -> (StatusCode, Value) {
    let mut body = format!("--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n").into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    let response = s
        .http
        .post(format!("{}/stowRsListener/{NODE_A}/studies", s.base))
        .header("Authorization", KEY_A)
        .header("Content-Type", format!("multipart/related; type=\"application/dicom\"; boundary={BOUNDARY}"))
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, serde_json::from_slice(&response.bytes().await.unwrap()).unwrap_or(Value::Null))
}

/// The failure reason of the only failed part of a STOW answer.
fn failure_reason(answer: &Value) -> i64 {
    let failed = answer["00081198"]["Value"].as_array().unwrap_or_else(|| panic!("no Failed SOP Sequence: {answer}"));
    assert_eq!(failed.len(), 1, "{answer}");
    failed[0]["00081197"]["Value"][0].as_i64().unwrap_or_else(|| panic!("no reason: {answer}"))
}

/// The bytes WADO-RS serves for an instance.
async fn wado(s: &TestServer, file: &Path) -> Vec<u8> {
    let (study, series, sop) = uids(file);
    let response = s
        .http
        .get(format!("{}/rs/studies/{study}/series/{series}/instances/{sop}", s.base))
        .header("Authorization", KEY_A)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
    let mut parts = parse_multipart(&content_type, &response.bytes().await.unwrap());
    assert_eq!(parts.len(), 1);
    parts.remove(0)
}

/// Asserts that nothing of `file`'s instance is stored: no row (QIDO and studyInstances find
/// nothing), no file, no staging leftover.
async fn nothing_stored(s: &TestServer, file: &Path, what: &str) {
    let (study, _, sop) = uids(file);
    let response =
        s.http.get(format!("{}/rs/instances?SOPInstanceUID={sop}", s.base)).header("Authorization", KEY_A).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let found: Value = response.json().await.unwrap();
    assert_eq!(found, Value::Array(vec![]), "{what}: QIDO finds the instance");
    let (status, _) = s.get(&format!("studyInstances?studyUid={study}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{what}: the study exists");
    assert!(s.archived_files().is_empty(), "{what}: files stored: {:?}", s.archived_files());
    assert!(s.staging_is_empty(), "{what}: a staging file is left");
    assert!(s.events_as(KEY_A).await.is_empty(), "{what}: an event was recorded");
}

async fn cut_instances_are_refused_over_stow(backend: Backend) {
    let s = TestServer::start(backend).await;
    for file in files() {
        let bytes = std::fs::read(&file).unwrap();
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        for (where_, cut) in cuts(&bytes) {
            let (status, answer) = stow(&s, &bytes[..cut]).await;
            let what = format!("{name} cut {where_} ({cut} of {} bytes)", bytes.len());
            assert_eq!(status, StatusCode::CONFLICT, "{what}: {answer}");
            assert_eq!(failure_reason(&answer), CANNOT_UNDERSTAND, "{what}: {answer}");
            assert!(answer.get("00081199").is_none(), "{what}: listed as stored: {answer}");
            nothing_stored(&s, &file, &what).await;
        }
    }
    // Whole elements, pixel data short of the image: parses, does not match its class.
    let native = &files()[0];
    let (status, answer) = stow(&s, &short_pixels(&std::fs::read(native).unwrap())).await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert_eq!(failure_reason(&answer), DATA_SET_MISMATCH, "{answer}");
    assert_eq!(answer["00081198"]["Value"][0]["00081155"]["Value"][0], uids(native).2, "the failed instance is named");
    nothing_stored(&s, native, "short pixel data").await;
    // The whole files, sent next, are stored whole.
    for file in files() {
        let bytes = std::fs::read(&file).unwrap();
        let (status, answer) = stow(&s, &bytes).await;
        assert_eq!(status, StatusCode::OK, "{}: {answer}", file.display());
        assert!(wado(&s, &file).await == bytes, "{}: WADO-RS serves other bytes", file.display());
    }
    assert_eq!(s.archived_files().len(), files().len());
    s.stop().await;
}

/// A C-STORE-RQ command (implicit VR little endian, with a data set) for a CT instance.
fn store_command(sop_instance_uid: &str, message_id: u16) -> Vec<u8> {
    let mut body = Vec::new();
    let mut put = |element: u16, value: Vec<u8>| {
        body.extend_from_slice(&0u16.to_le_bytes());
        body.extend_from_slice(&element.to_le_bytes());
        body.extend_from_slice(&(value.len() as u32).to_le_bytes());
        body.extend_from_slice(&value);
    };
    let uid = |s: &str| {
        let mut v = s.as_bytes().to_vec();
        if v.len() % 2 == 1 {
            v.push(0);
        }
        v
    };
    put(0x0002, uid("1.2.840.10008.5.1.4.1.1.2"));
    put(0x0100, 0x0001u16.to_le_bytes().to_vec());
    put(0x0110, message_id.to_le_bytes().to_vec());
    put(0x0700, 0u16.to_le_bytes().to_vec());
    put(0x0800, 0u16.to_le_bytes().to_vec());
    put(0x1000, uid(sop_instance_uid));
    let mut out = vec![0, 0, 0, 0, 4, 0, 0, 0];
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

/// The Status (0000,0900) of a DIMSE response command.
fn status_of(command: &[u8]) -> u16 {
    let mut at = 0;
    while at + 8 <= command.len() {
        let (group, element) =
            (u16::from_le_bytes([command[at], command[at + 1]]), u16::from_le_bytes([command[at + 2], command[at + 3]]));
        let len = u32::from_le_bytes(command[at + 4..at + 8].try_into().unwrap()) as usize;
        if (group, element) == (0x0000, 0x0900) {
            return u16::from_le_bytes([command[at + 8], command[at + 9]]);
        }
        at += 8 + len;
    }
    panic!("no status in the response")
}

/// Sends `data_set` as one C-STORE of the instance `sop` in `transfer_syntax` over a fresh
/// association; answers the response's status.
async fn c_store(s: &TestServer, transfer_syntax: &str, sop: &str, data_set: &[u8]) -> u16 {
    let mut association = ClientAssociationOptions::new()
        .calling_ae_title(NODE_A)
        .called_ae_title(SERVER_AE)
        .with_presentation_context("1.2.840.10008.5.1.4.1.1.2", vec![transfer_syntax])
        .establish_with_async(&format!("127.0.0.1:{}", s.dicom_port))
        .await
        .expect("association");
    let context = association.presentation_contexts()[0].id;
    let pdv = |value_type, is_last, data| Pdu::PData {
        data: vec![PDataValue { presentation_context_id: context, value_type, is_last, data }],
    };
    association.send(&pdv(PDataValueType::Command, true, store_command(sop, 1))).await.unwrap();
    // In fragments well under the PDU size, the last one flagged as such.
    let chunks: Vec<&[u8]> = data_set.chunks(8 * 1024).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        association.send(&pdv(PDataValueType::Data, i + 1 == chunks.len(), chunk.to_vec())).await.unwrap();
    }
    let status = match association.receive().await.expect("a response") {
        Pdu::PData { data } => status_of(&data[0].data),
        other => panic!("unexpected {other:?}"),
    };
    let _ = association.release().await;
    status
}

async fn cut_instances_are_refused_over_c_store(backend: Backend) {
    let s = TestServer::start(backend).await;
    let transfer_syntaxes = ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.5"];
    for (file, ts) in files().into_iter().zip(transfer_syntaxes) {
        let bytes = std::fs::read(&file).unwrap();
        let start = data_set_start(&bytes);
        let sop = uids(&file).2;
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        for (where_, cut) in cuts(&bytes) {
            let what = format!("{name} cut {where_} ({cut} of {} bytes)", bytes.len());
            let status = c_store(&s, ts, &sop, &bytes[start..cut]).await;
            assert_eq!(status, CANNOT_UNDERSTAND as u16, "{what}: status {status:#06x}");
            nothing_stored(&s, &file, &what).await;
        }
    }
    let native = &files()[0];
    let short = short_pixels(&std::fs::read(native).unwrap());
    let status = c_store(&s, transfer_syntaxes[0], &uids(native).2, &short[data_set_start(&short)..]).await;
    assert_eq!(status, DATA_SET_MISMATCH as u16, "short pixel data: status {status:#06x}");
    nothing_stored(&s, native, "short pixel data").await;
    // The whole data sets, sent next, are stored: the stored file holds the very data set sent.
    for (file, ts) in files().into_iter().zip(transfer_syntaxes) {
        let bytes = std::fs::read(&file).unwrap();
        let data_set = &bytes[data_set_start(&bytes)..];
        assert_eq!(c_store(&s, ts, &uids(&file).2, data_set).await, 0x0000, "{}", file.display());
        let stored = wado(&s, &file).await;
        assert!(stored[data_set_start(&stored)..] == *data_set, "{}: another data set stored", file.display());
    }
    s.stop().await;
}

/// The digest the archive records of `bytes` (XXH3-128, as ingest computes it).
fn recorded_digest(bytes: &[u8]) -> String {
    let mut hasher = wasmpacs::storage::digest::Hasher::new(wasmpacs::storage::digest::Algorithm::Xxh3);
    hasher.update(bytes);
    hasher.finish()
}

/// Study size as the index holds it.
async fn study_size(s: &TestServer, study: &str) -> i64 {
    let pool = s.connect_db().await;
    let size =
        sqlx::query_scalar("SELECT size_bytes FROM studies WHERE study_uid = $1").bind(study).fetch_one(&pool).await.unwrap();
    pool.close().await;
    size
}

async fn a_damaged_stored_copy_is_found_and_replaced(backend: Backend) {
    let mut s = TestServer::start(backend).await;
    let file = sample("jpegll70_ct16_CT_small_dcmcjpeg.dcm");
    let bytes = std::fs::read(&file).unwrap();
    let (study, _, sop) = uids(&file);
    assert_eq!(stow(&s, &bytes).await.0, StatusCode::OK);
    let whole_size = study_size(&s, &study).await;
    assert_eq!(whole_size, bytes.len() as i64);
    let (code, report) = s.check(&["--verify-digests"]);
    assert_eq!(code, 0, "{report}");

    // What an older version kept of an instance cut short: the cut bytes, their size and digest.
    let stored = s.stored_file("alpha", &sop).await;
    let cut = &bytes[..3000];
    std::fs::write(&stored, cut).unwrap();
    let pool = s.connect_db().await;
    sqlx::query("UPDATE instances SET size_bytes = $1, digest = $2 WHERE sop_instance_uid = $3")
        .bind(cut.len() as i64)
        .bind(recorded_digest(cut))
        .bind(&sop)
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("UPDATE studies SET size_bytes = $1 WHERE study_uid = $2")
        .bind(cut.len() as i64)
        .bind(&study)
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;

    // Its size and digest match the row: only the walk of its data set finds it.
    let (code, report) = s.check(&[]);
    assert_eq!(code, 0, "without --verify-digests only sizes are compared: {report}");
    let (code, report) = s.check(&["--verify-digests"]);
    assert_eq!(code, 1, "{report}");
    assert_eq!(report["incomplete"]["count"], 1, "{report}");
    assert_eq!(report["incomplete"]["listed"][0]["sop_instance_uid"], sop.as_str(), "{report}");
    assert_eq!(report["damaged"]["count"], 0, "{report}");

    // A re-send replaces it: the whole copy is served, the study weighs it, the cut copy is gone.
    let (status, answer) = stow(&s, &bytes).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(wado(&s, &file).await == bytes, "WADO-RS serves the whole copy");
    assert_eq!(study_size(&s, &study).await, whole_size);
    assert_eq!(s.archived_files().len(), 1, "{:?}", s.archived_files());
    assert!(!stored.exists(), "the damaged copy is removed");
    let replaced = s.stored_file("alpha", &sop).await;
    assert_eq!(std::fs::read(&replaced).unwrap(), bytes);
    let (code, report) = s.check(&["--verify-digests"]);
    assert_eq!(code, 0, "{report}");

    // A re-send over an intact copy changes nothing.
    assert_eq!(stow(&s, &bytes).await.0, StatusCode::OK);
    assert_eq!(s.stored_file("alpha", &sop).await, replaced);
    assert_eq!(s.archived_files().len(), 1);
    assert_eq!(study_size(&s, &study).await, whole_size);
    assert_eq!(s.instance_rows("alpha", &sop).await, 1);
    s.stop().await;
}
