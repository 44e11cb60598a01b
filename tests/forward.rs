//! `POST series/forward` through HTTP, with dcmtk's `storescp` as the destination node: a series
//! received from `storescu` is queued, sent in the transfer syntaxes it was stored in, and
//! arrives whole (also from a bucket, moto_server's); the seed's 400, 404 and 500 answers; a node
//! that does not answer is tried the configured number of times and the job marked failed.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dicom_dictionary_std::tags;
use reqwest::StatusCode;
use serde_json::{Value, json};
use wasmpacs_tests::{Backend, KEY_A, NODE_A, Options, TestServer, on_both_backends, sample, uids};

on_both_backends!(
    a_series_arrives_whole_at_its_node,
    a_series_in_a_bucket_is_fetched_one_file_at_a_time,
    refusals_follow_the_seed,
    an_unreachable_node_fails_after_its_attempts,
);

/// A port nothing listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// dcmtk's storescp as AE `DEST`, writing what it receives into `dir`; killed when dropped.
struct StoreScp(Child);

impl StoreScp {
    fn start(port: u16, dir: &Path) -> Self {
        let child = Command::new("storescp")
            .env("TCP_NODELAY", "1")
            .args(["-aet", "DEST", "+xa", "-od"])
            .arg(dir)
            .arg(port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("storescp runs (apt-get install dcmtk)");
        // Wait until it listens.
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "storescp did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self(child)
    }
}

impl Drop for StoreScp {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A server whose forward job sends to `DEST` at `port`, with `forward` as its `[forward]` table.
async fn server(backend: Backend, forward: &str, port: u16) -> TestServer {
    let mut options = Options::new(backend);
    options.extra_config =
        format!("\n{forward}\n[[node]]\nae_title = \"DEST\"\nhost = \"127.0.0.1\"\nport = {port}\ntenant = \"alpha\"\n");
    TestServer::start_with(options).await.expect("server starts")
}

async fn forward(s: &TestServer, body: &Value) -> (StatusCode, Value) {
    s.post("series/forward", body).await
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().flatten().map(|e| e.path()).filter(|p| p.is_file()).collect();
    files.sort();
    files
}

/// Asserts that `received` holds exactly the instances `sent`, each in its transfer syntax with
/// the same identity and pixel data.
fn arrived_whole(received: &Path, sent: &[PathBuf]) {
    let arrived = files_in(received);
    assert_eq!(arrived.len(), sent.len(), "{arrived:?}");
    for original in sent {
        let (_, _, sop) = uids(original);
        let copy = arrived.iter().find(|f| uids(f).2 == sop).unwrap_or_else(|| panic!("{sop} did not arrive"));
        let (original, copy) = (dicom_object::open_file(original).unwrap(), dicom_object::open_file(copy).unwrap());
        assert_eq!(copy.meta().transfer_syntax(), original.meta().transfer_syntax());
        for tag in [tags::PATIENT_NAME, tags::STUDY_INSTANCE_UID, tags::ROWS, tags::PIXEL_DATA] {
            assert_eq!(copy.element(tag).unwrap().value(), original.element(tag).unwrap().value(), "{tag}");
        }
    }
}

async fn a_series_arrives_whole_at_its_node(backend: Backend) {
    let (port, received) = (free_port(), tempfile::tempdir().unwrap());
    let _scp = StoreScp::start(port, received.path());
    let s = server(backend, "[forward]\nnode = \"DEST\"", port).await;
    // One series in two transfer syntaxes (explicit little endian, JPEG lossless), and another study.
    let sent = [sample("ele_ct16_CT_small.dcm"), sample("jpegll70_ct16_CT_small_dcmcjpeg.dcm")];
    let other = sample("ele_mr16_examples_overlay.dcm");
    let (ok, output) = s.storescu(NODE_A, &[sent[0].clone(), sent[1].clone(), other]).await;
    assert!(ok, "{output}");
    let (study, series, _) = uids(&sent[0]);

    let request = json!({"seriesInstanceUID": series, "author": "john"});
    let (status, body) = forward(&s, &request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["request"], request);
    let job = s.wait_for_job("done").await;
    assert_eq!((job["sent"].as_i64(), job["node"].as_str(), job["attempts"].as_i64()), (Some(2), Some("DEST"), Some(1)), "{job}");

    // Exactly the series, each instance in its stored transfer syntax with the same pixel data.
    arrived_whole(received.path(), &sent);
    let events = s.events_as(KEY_A).await;
    let forwarded: Vec<&Value> = events.iter().filter(|e| e["eventType"] == "SERIES_FORWARDED").collect();
    assert_eq!(forwarded.len(), 1, "{events:?}");
    assert_eq!(forwarded[0]["studyInstanceUid"], json!(study));
    assert_eq!(forwarded[0]["detail"], json!({"seriesInstanceUid": series, "node": "DEST", "instances": 2, "author": "john"}));
    s.stop().await;
}

/// A series relocated to a bucket is sent from there, each object fetched in its turn and its
/// copy removed; a lost object fails the job at once (trying again would not find it).
async fn a_series_in_a_bucket_is_fetched_one_file_at_a_time(backend: Backend) {
    let s3 = wasmpacs_tests::s3::S3Server::start().await;
    s3.create_bucket("pacs-online").await;
    let (port, received) = (free_port(), tempfile::tempdir().unwrap());
    let _scp = StoreScp::start(port, received.path());
    let s =
        server(backend, &format!("[forward]\nnode = \"DEST\"\n{}", s3.config("online-bucket", "pacs-online", "")), port).await;
    let sent = [sample("ele_ct16_CT_small.dcm"), sample("jpegll70_ct16_CT_small_dcmcjpeg.dcm")];
    let (ok, output) = s.storescu(NODE_A, &sent).await;
    assert!(ok, "{output}");
    let (study, series, _) = uids(&sent[0]);
    let (status, body) =
        s.post("studies/relocation", &json!({"studyInstanceUid": study, "bucketName": "online-bucket", "author": "a"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let (status, body) = forward(&s, &json!({"seriesInstanceUID": series, "author": "john"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let job = s.wait_for_job("done").await;
    assert_eq!(job["sent"].as_i64(), Some(2), "{job}");
    arrived_whole(received.path(), &sent);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !s.staging_is_empty() {
        assert!(Instant::now() < deadline, "the copies fetched to be sent are removed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // An object lost from the bucket: the job fails on its first attempt.
    let keys = s3.keys("pacs-online").await;
    s3.delete("pacs-online", &keys[1]).await;
    let (status, body) = forward(&s, &json!({"seriesInstanceUID": series, "author": "john"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let job = s.wait_for_job("failed").await;
    assert_eq!(job["attempts"].as_i64(), Some(1), "{job}");
    assert!(job["last_error"].as_str().unwrap_or_default().contains("stored file"), "{job}");
    s.stop().await;
}

async fn refusals_follow_the_seed(backend: Backend) {
    let port = free_port();
    let ct = sample("ele_ct16_CT_small.dcm");
    let (_, series, _) = uids(&ct);
    let message = |body: &Value| body["message"].as_str().unwrap_or_default().to_owned();

    // No forward job configured: 500, after the body is checked (400).
    let s = TestServer::start(backend).await;
    let (status, body) = forward(&s, &json!({"seriesInstanceUID": series})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(message(&body).contains("author"), "{body}");
    let (status, body) = forward(&s, &json!({"author": "john"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(message(&body).contains("seriesInstanceUID"), "{body}");
    let (status, body) = forward(&s, &json!({"seriesInstanceUID": series, "author": "john"})).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert!(message(&body).contains("forward job not configured"), "{body}");
    let (status, body) = forward(&s, &json!({"containerIdentifier": "ABC-001-001", "author": "john"})).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert!(message(&body).contains("forward job not configured"), "{body}");
    s.stop().await;

    // A job without a node, and a job naming a node that is not configured: 500.
    let s = server(backend, "[forward]\nattempts = 1", port).await;
    let (status, body) = forward(&s, &json!({"seriesInstanceUID": series, "author": "john"})).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert!(message(&body).contains("forward node not configured"), "{body}");
    s.stop().await;
    let s = server(backend, "[forward]\nnode = \"ELSEWHERE\"", port).await;
    let (status, body) = forward(&s, &json!({"seriesInstanceUID": series, "author": "john"})).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert!(message(&body).contains("forward node not found"), "{body}");
    s.stop().await;

    // Configured: an unknown series (or another tenant's) is a 404 and queues nothing.
    let s = server(backend, "[forward]\nnode = \"DEST\"", port).await;
    let (status, body) = forward(&s, &json!({"seriesInstanceUID": "1.2.3.4.5", "author": "john"})).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (ok, output) = s.storescu(NODE_A, &[ct]).await;
    assert!(ok, "{output}");
    let (status, _) =
        s.post_as(wasmpacs_tests::KEY_B, "series/forward", &json!({"seriesInstanceUID": series, "author": "john"})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(s.forward_jobs().await.is_empty());
    s.stop().await;
}

async fn an_unreachable_node_fails_after_its_attempts(backend: Backend) {
    // Nothing listens on the node's port.
    let port = free_port();
    let s = server(backend, "[forward]\nnode = \"DEST\"\nattempts = 2\nretry_delay_s = 1", port).await;
    let ct = sample("ele_ct16_CT_small.dcm");
    let (ok, output) = s.storescu(NODE_A, std::slice::from_ref(&ct)).await;
    assert!(ok, "{output}");
    let (_, series, _) = uids(&ct);
    let (status, body) = forward(&s, &json!({"seriesInstanceUID": series, "author": "john"})).await;
    assert_eq!(status, StatusCode::OK, "queued even though the node is down: {body}");
    let job = s.wait_for_job("failed").await;
    assert_eq!(job["attempts"].as_i64(), Some(2), "{job}");
    assert_eq!(job["sent"].as_i64(), Some(0), "{job}");
    assert!(job["last_error"].as_str().unwrap_or_default().contains("cannot associate"), "{job}");
    assert!(s.events_as(KEY_A).await.iter().all(|e| e["eventType"] != "SERIES_FORWARDED"));
    s.stop().await;
}
