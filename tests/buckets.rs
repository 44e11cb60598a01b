//! Buckets through HTTP, against a real S3 protocol server (moto_server): a study received from
//! a real `storescu` is relocated to a bucket, served from there (WADO-RS, metadata, preview),
//! checked there by `wasmpacs check`, and relocated back to a physical medium byte for byte;
//! every bucket failure of the seed is a 409 that leaves the study whole where it was.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use wasmpacs_tests::s3::S3Server;
use wasmpacs_tests::{Backend, KEY_A, NODE_A, Options, TestServer, on_both_backends, parse_multipart, sample, uids};

on_both_backends!(
    a_study_relocated_to_a_bucket_is_served_from_it_and_comes_back_whole,
    bucket_errors_leave_the_study_where_it_was,
);

/// A server with the buckets `config` describes.
async fn with_buckets(backend: Backend, config: String) -> TestServer {
    let mut options = Options::new(backend);
    options.extra_config = config;
    TestServer::start_with(options).await.expect("server starts")
}

/// The CT (two instances of one study) and the MR, stored with `storescu`.
async fn store_samples(s: &TestServer) -> Vec<PathBuf> {
    let files = vec![
        sample("ele_ct16_CT_small.dcm"),
        sample("jpegll70_ct16_CT_small_dcmcjpeg.dcm"),
        sample("ele_mr16_examples_overlay.dcm"),
    ];
    let (ok, output) = s.storescu(NODE_A, &files).await;
    assert!(ok, "{output}");
    files
}

/// Every file under `root` (staging excluded), by relative path, with its bytes.
fn files_under(root: &Path) -> BTreeMap<String, Vec<u8>> {
    wasmpacs_tests::files_under(root)
        .into_iter()
        .map(|path| (path.strip_prefix(root).unwrap().to_string_lossy().into_owned(), std::fs::read(&path).unwrap()))
        .collect()
}

fn staging_empty(root: &Path) -> bool {
    std::fs::read_dir(root.join(".staging")).map(|d| d.count() == 0).unwrap_or(true)
}

/// Waits (up to 10 s) until `condition` holds; `what` says what did not.
async fn eventually<F: Future<Output = bool>>(mut condition: impl FnMut() -> F, what: impl Fn() -> String) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !condition().await {
        assert!(Instant::now() < deadline, "{}", what());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the keys of `bucket` are `expected`.
async fn keys_become(s3: &S3Server, bucket: &str, expected: &[String]) {
    eventually(|| async { s3.keys(bucket).await == expected }, || format!("bucket {bucket} does not hold {expected:?}")).await;
}

/// Waits until `root` holds `n` files.
async fn files_become(root: &Path, n: usize) {
    eventually(
        || async { wasmpacs_tests::files_under(root).len() == n },
        || format!("{} does not hold {n} files", root.display()),
    )
    .await;
}

async fn get(s: &TestServer, path: &str) -> (StatusCode, String, Vec<u8>) {
    let response = s.http.get(format!("{}/{path}", s.base)).header("Authorization", KEY_A).send().await.unwrap();
    let status = response.status();
    let content_type = response.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    (status, content_type, response.bytes().await.unwrap().to_vec())
}

fn relocated(events: &[Value]) -> Vec<&Value> {
    events.iter().filter(|e| e["eventType"] == "STUDY_RELOCATED").collect()
}

async fn a_study_relocated_to_a_bucket_is_served_from_it_and_comes_back_whole(backend: Backend) {
    let s3 = S3Server::start().await;
    s3.create_bucket("pacs-online").await;
    s3.create_bucket("pacs-other").await;
    let config = s3.config("online-bucket", "pacs-online", "archive") + &s3.config("other-bucket", "pacs-other", "");
    let s = with_buckets(backend, config).await;
    let files = store_samples(&s).await;
    let (ct_study, _, ct_sop) = uids(&files[0]);
    let archive = s.data_dir.path().join("archive");
    let before = files_under(&archive);
    let ct_files: BTreeMap<String, Vec<u8>> =
        before.iter().filter(|(k, _)| k.contains(&ct_study)).map(|(k, v)| (k.clone(), v.clone())).collect();
    assert_eq!((before.len(), ct_files.len()), (3, 2));

    let request = json!({"studyInstanceUid": ct_study, "bucketName": "online-bucket", "author": "JaneDoe"});
    let (status, body) = s.post("studies/relocation", &request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"message": "relocation successful", "request": request}));

    // In the bucket under its prefix, in the study's folder, byte for byte (each object under a
    // name of its own), and gone from the disk.
    let keys = s3.keys("pacs-online").await;
    assert_eq!(keys.len(), 2, "{keys:?}");
    let mut objects = BTreeSet::new();
    for key in &keys {
        let folder = key.rsplit_once('/').unwrap().0;
        assert!(ct_files.keys().any(|k| format!("archive/{}", k.rsplit_once('/').unwrap().0) == folder), "{key}");
        objects.insert(s3.object("pacs-online", key).await);
    }
    assert!(objects == ct_files.values().cloned().collect(), "the objects are the stored files");
    files_become(&archive, 1).await;
    assert!(staging_empty(&archive));

    // Served from the bucket: WADO-RS byte for byte, metadata, preview; still counted.
    let (status, content_type, body) = get(&s, &format!("rs/studies/{ct_study}")).await;
    assert_eq!(status, StatusCode::OK);
    let served: BTreeSet<Vec<u8>> = parse_multipart(&content_type, &body).into_iter().collect();
    assert!(served == ct_files.values().cloned().collect(), "WADO-RS serves the stored files");
    let (status, _, body) = get(&s, &format!("rs/studies/{ct_study}/metadata")).await;
    assert_eq!(status, StatusCode::OK);
    let metadata: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(metadata.as_array().map(Vec::len), Some(2), "{metadata}");
    assert_eq!(metadata[0]["0020000D"]["Value"][0], json!(ct_study));
    let (status, content_type, body) = get(&s, &format!("preview?objectUID={ct_sop}")).await;
    assert_eq!((status, content_type.as_str()), (StatusCode::OK, "image/jpeg"));
    assert!(image::load_from_memory(&body).is_ok(), "the preview is a JPEG");
    let (_, count) = s.get("studies/count").await;
    assert_eq!(count["study_count"], 2);
    eventually(|| async { staging_empty(&archive) }, || "what was fetched to be read is gone".into()).await;

    // The check looks into the bucket: everything named is there, whole.
    let (code, report) = s.check(&["--verify-digests"]);
    assert_eq!(code, 0, "{report}");
    assert_eq!((report["rows_checked"].as_u64(), report["digests_verified"].as_u64()), (Some(3), Some(3)), "{report}");
    assert_eq!(report["orphans"]["count"], 0, "{report}");

    // From one bucket to another: not supported (409), and nothing moves.
    let (status, body) =
        s.post("studies/relocation", &json!({"studyInstanceUid": ct_study, "bucketName": "other-bucket", "author": "a"})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body["message"].as_str().unwrap().contains("not supported"), "{body}");
    assert!(s3.keys("pacs-other").await.is_empty());
    assert_eq!(s3.keys("pacs-online").await, keys);

    // Back to a physical medium: byte for byte where they were, and the objects go.
    let request = json!({"studyInstanceUid": ct_study, "physicalMediumName": "default", "author": "JohnDoe"});
    let (status, body) = s.post("studies/relocation", &request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let back = files_under(&archive);
    assert_eq!(back.len(), 3);
    assert!(back.values().collect::<BTreeSet<_>>() == before.values().collect(), "back on the disk, byte for byte");
    keys_become(&s3, "pacs-online", &[]).await;
    let (status, content_type, body) = get(&s, &format!("rs/studies/{ct_study}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(parse_multipart(&content_type, &body).into_iter().collect::<BTreeSet<_>>() == served);

    // A file over 16 MiB goes up in parts, and comes back down, byte for byte.
    let dir = tempfile::tempdir().unwrap();
    let large = wasmpacs_tests::generate_cts(
        dir.path(),
        &["-n", "1", "--studies", "1", "--series-per-study", "1", "--rows", "3000", "--cols", "3000"],
    );
    let (ok, output) = s.storescu(NODE_A, &large).await;
    assert!(ok, "{output}");
    let (large_study, _, _) = uids(&large[0]);
    let stored = files_under(&archive);
    let bytes = stored.iter().find(|(k, _)| k.contains(&large_study)).map(|(_, v)| v.clone()).unwrap();
    assert!(bytes.len() > 17 << 20, "{} bytes", bytes.len());
    let (_, _, metadata_from_disk) = get(&s, &format!("rs/studies/{large_study}/metadata")).await;
    let request = json!({"studyInstanceUid": large_study, "bucketName": "other-bucket", "author": "JaneDoe"});
    let (status, body) = s.post("studies/relocation", &request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let large_keys = s3.keys("pacs-other").await;
    assert_eq!(large_keys.len(), 1);
    assert!(s3.object("pacs-other", &large_keys[0]).await == bytes, "the object is the file");
    // Its metadata, read from the first bytes of the object, is what the file on disk gave.
    let (status, _, metadata_from_bucket) = get(&s, &format!("rs/studies/{large_study}/metadata")).await;
    assert_eq!(status, StatusCode::OK);
    let (from_disk, from_bucket): (Value, Value) =
        (serde_json::from_slice(&metadata_from_disk).unwrap(), serde_json::from_slice(&metadata_from_bucket).unwrap());
    assert_eq!(from_bucket, from_disk);
    assert_eq!(from_bucket[0]["00280010"]["Value"][0], 3000, "{from_bucket}");
    let request = json!({"studyInstanceUid": large_study, "physicalMediumName": "default", "author": "JaneDoe"});
    let (status, body) = s.post("studies/relocation", &request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, content_type, body) = get(&s, &format!("rs/studies/{large_study}")).await;
    assert!(parse_multipart(&content_type, &body) == vec![bytes], "served whole from the disk again");
    keys_become(&s3, "pacs-other", &[]).await;

    let events = s.events_as(KEY_A).await;
    let moves = relocated(&events);
    assert_eq!(moves.len(), 4, "{events:?}");
    assert_eq!(moves[0]["detail"]["bucketName"], "online-bucket");
    assert_eq!(moves[0]["detail"]["instances"], 2);
    assert_eq!(moves[1]["detail"]["physicalMediumName"], "default");
    assert_eq!(moves[1]["detail"]["from"], json!(["online-bucket"]));
    s.stop().await;
}

async fn bucket_errors_leave_the_study_where_it_was(backend: Backend) {
    let s3 = S3Server::start().await;
    s3.create_bucket("pacs-online").await;
    // `absent-bucket` names an S3 bucket that does not exist.
    let config = s3.config("online-bucket", "pacs-online", "") + &s3.config("absent-bucket", "pacs-absent", "");
    let s = with_buckets(backend, config).await;
    let files = store_samples(&s).await;
    let (ct_study, _, ct_sop) = uids(&files[0]);
    let archive = s.data_dir.path().join("archive");
    let before = files_under(&archive);
    let base = |bucket: &str| json!({"studyInstanceUid": ct_study, "bucketName": bucket, "author": "JaneDoe"});

    // No such bucket configured, and a bucket the S3 service does not have: 409 bucket error.
    for bucket in ["nope", "absent-bucket"] {
        let (status, body) = s.post("studies/relocation", &base(bucket)).await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert!(body["message"].as_str().unwrap().contains("bucket error"), "{body}");
    }
    assert!(files_under(&archive) == before, "the study stays where it was");
    assert!(staging_empty(&archive));
    assert!(relocated(&s.events_as(KEY_A).await).is_empty());
    let (status, _, _) = get(&s, &format!("preview?objectUID={ct_sop}")).await;
    assert_eq!(status, StatusCode::OK);

    // A damaged file met half way: 409, and what was already written to the bucket goes again.
    let (ct_path, ct_bytes) =
        before.iter().find(|(k, _)| k.contains(&ct_study)).map(|(k, v)| (archive.join(k), v.clone())).unwrap();
    let mut damaged = ct_bytes.clone();
    let last = damaged.len() - 1;
    damaged[last] ^= 0xFF;
    std::fs::write(&ct_path, &damaged).unwrap();
    let (status, body) = s.post("studies/relocation", &base("online-bucket")).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body["message"].as_str().unwrap().contains("does not match its recorded digest"), "{body}");
    keys_become(&s3, "pacs-online", &[]).await;
    std::fs::write(&ct_path, &ct_bytes).unwrap();
    assert!(files_under(&archive) == before);

    // In the bucket, then an object lost and a stray one added: the check finds both.
    let (status, body) = s.post("studies/relocation", &base("online-bucket")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let keys = s3.keys("pacs-online").await;
    assert_eq!(keys.len(), 2);
    s3.delete("pacs-online", &keys[0]).await;
    let stray = format!("{}/9.9.9/9.9.9.9/9.9.9.9.9_0-0-0.dcm", keys[0].split('/').next().unwrap());
    s3.put("pacs-online", &stray, b"not named".to_vec()).await;
    let (code, report) = s.check(&["--grace-minutes", "0"]);
    assert_eq!(code, 1, "{report}");
    assert_eq!(report["missing"]["count"], 1, "{report}");
    assert_eq!(report["missing"]["listed"][0]["medium"], "online-bucket", "{report}");
    assert_eq!(report["missing"]["listed"][0]["path"], json!(keys[0]), "{report}");
    assert_eq!(report["orphans"]["listed"], json!([format!("online-bucket:{stray}")]), "{report}");
    // The bucket the service does not have cannot be listed, and says so.
    assert_eq!(report["unlisted"]["count"], 1, "{report}");
    assert!(report["unlisted"]["listed"][0].as_str().unwrap().starts_with("absent-bucket:"), "{report}");

    // A study whose object is lost is not streamed half way: 500 naming the instance.
    let (status, _, body) = get(&s, &format!("rs/studies/{ct_study}")).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(String::from_utf8_lossy(&body).contains("missing"), "{}", String::from_utf8_lossy(&body));
    s.stop().await;
}
