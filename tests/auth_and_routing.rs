//! Authentication, tenant isolation, routing errors, start-up refusals, and the real binary.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use wasmpacs_tests::{Backend, KEY_A, KEY_B, Options, TestServer, component, on_both_backends, patients_manifest, repo_root};

on_both_backends!(every_path_needs_a_valid_key, tenants_never_see_each_other, unknown_paths_and_methods_are_json_errors);

/// Every route of the seed (and some that do not exist).
const ROUTES: &[(&str, &str)] = &[
    ("GET", "studies/count"),
    ("GET", "studyInstances"),
    ("GET", "studyEvents?offsetId=0"),
    ("GET", "preview"),
    ("GET", "wholeslide"),
    ("POST", "series/deprecation"),
    ("POST", "studies/deprecation"),
    ("POST", "studies/relocation"),
    ("POST", "series/forward"),
    ("POST", "orders/create"),
    ("DELETE", "orders/delete"),
    ("POST", "patients/create"),
    ("POST", "patients/merge"),
    ("POST", "patients/update"),
    ("POST", "studies/move"),
    ("POST", "studies/reconcile"),
    ("POST", "studies/swap"),
    ("POST", "studies/createKos"),
    ("GET", "studies/kos"),
    ("POST", "pathoRsListener/AET/studies"),
    ("POST", "stowRsListener/AET/studies"),
    ("GET", "no/such/path"),
    ("GET", ""),
];

async fn every_path_needs_a_valid_key(backend: Backend) {
    let s = TestServer::start(backend).await;
    for (method, path) in ROUTES {
        for key in [None, Some("wrong-key"), Some(""), Some("key-alph")] {
            let mut request = s.http.request(Method::from_bytes(method.as_bytes()).unwrap(), format!("{}/{path}", s.base));
            if let Some(key) = key {
                request = request.header("Authorization", key);
            }
            let response = request.body("{}").send().await.unwrap();
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{method} {path} with {key:?}");
            let body: Value = response.json().await.expect("a JSON body");
            assert!(body["message"].as_str().unwrap().contains("API key"), "{body}");
        }
    }
    // The admin endpoint has its own key: a tenant key is not enough.
    let response = s.http.get(format!("http://{}/admin/plugins", s.addr)).header("Authorization", KEY_A).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    s.stop().await;
}

async fn tenants_never_see_each_other(backend: Backend) {
    let mut s = TestServer::start(backend).await;
    s.seed_study("alpha", "SHARED-ID", "1.2.3.4", &[("1.2.3.4.1", 1)]).await;
    let patient = json!({"patientID": "SHARED-ID", "patientName": "B^ONLY", "userName": "b"});
    // Beta may create the same patient ID: its own archive does not have it.
    let (status, answer) = s.post_as(KEY_B, "patients/create", &patient).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    // Alpha already has it (from the fixture).
    let (status, _) = s.post_as(KEY_A, "patients/create", &patient).await;
    assert_eq!(status, StatusCode::CONFLICT);
    // Beta cannot move, swap, reconcile or merge alpha's study.
    let (status, _) = s
        .post_as(
            KEY_B,
            "studies/move",
            &json!({"studyInstanceUid": "1.2.3.4", "targetPatientID": "X", "patientName": "X^X", "userName": "b"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "alpha's study does not exist for beta");
    let (status, _) = s
        .post_as(KEY_B, "studies/reconcile", &json!({"sourceStudyInstanceUID": "1.2.3.4", "targetStudyInstanceUID": "9", "patientID": "SHARED-ID", "userName": "b"}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = s
        .post_as(
            KEY_B,
            "patients/merge",
            &json!({"sourcePatientID": "SHARED-ID", "targetPatientID": "Y", "patientName": "Y^Y", "userName": "b"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "beta's SHARED-ID has no studies");
    // Beta's update changes beta's patient only.
    let (status, _) = s
        .post_as(KEY_B, "patients/update", &json!({"patientID": "SHARED-ID", "patientName": "B^RENAMED", "userName": "b"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    // Alpha's study is still alpha's and still movable by alpha.
    let (status, answer) = s
        .post_as(
            KEY_A,
            "studies/move",
            &json!({"studyInstanceUid": "1.2.3.4", "targetPatientID": "A2", "patientName": "A^TWO", "userName": "a"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    // Each tenant's event feed holds its own events only.
    let alpha = s.events_as(KEY_A).await;
    let beta = s.events_as(KEY_B).await;
    assert_eq!(alpha.iter().map(|e| e["eventType"].as_str().unwrap()).collect::<Vec<_>>(), vec!["STUDY_MOVED"]);
    assert_eq!(
        beta.iter().map(|e| e["eventType"].as_str().unwrap()).collect::<Vec<_>>(),
        vec!["PATIENT_CREATED", "PATIENT_UPDATED"]
    );
    s.stop().await;
}

async fn unknown_paths_and_methods_are_json_errors(backend: Backend) {
    let s = TestServer::start(backend).await;
    let (status, body) = s.get("no/such/path").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["message"].as_str().unwrap().contains("no/such/path"), "{body}");
    let response = s.http.get(format!("{}/patients/create", s.base)).header("Authorization", KEY_A).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(response.headers()["allow"], "POST");
    let body: Value = response.json().await.unwrap();
    assert!(body["message"].as_str().unwrap().contains("POST"), "{body}");
    // studyEvents: offsetId is required and must be a number.
    for query in [
        "studyEvents",
        "studyEvents?offsetId=",
        "studyEvents?offsetId=abc",
        "studyEvents?offsetId=-1",
        "studyEvents?offsetId=0&limit=0",
    ] {
        let (status, body) = s.get(query).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert!(body["message"].is_string());
    }
    // A body over the configured limit is refused before it reaches a plugin.
    let big = "x".repeat(17 * 1024 * 1024);
    let response =
        s.http.post(format!("{}/patients/create", s.base)).header("Authorization", KEY_A).body(big).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    s.stop().await;
}

#[tokio::test]
async fn event_pages_follow_each_other_without_gaps() {
    let s = TestServer::start(Backend::Sqlite).await;
    for i in 0..25 {
        let (status, _) =
            s.post("patients/create", &json!({"patientID": format!("P{i}"), "patientName": "A^B", "userName": "u"})).await;
        assert_eq!(status, StatusCode::OK);
    }
    let mut offset = 0;
    let mut seen = Vec::new();
    loop {
        let (status, page) = s.get(&format!("studyEvents?offsetId={offset}&limit=10")).await;
        assert_eq!(status, StatusCode::OK);
        let events = page["events"].as_array().unwrap();
        assert!(events.len() <= 10);
        if events.is_empty() {
            break;
        }
        seen.extend(events.iter().map(|e| e["offsetId"].as_i64().unwrap()));
        offset = page["nextOffsetId"].as_i64().unwrap();
    }
    assert_eq!(seen.len(), 25);
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "strictly increasing: {seen:?}");
    s.stop().await;
}

#[tokio::test]
async fn a_route_claimed_twice_or_a_bad_manifest_stops_the_start() {
    let patients = component("patients");
    let twice = format!(
        "{}\n[[plugin]]\nname = \"other\"\ncomponent = \"{}\"\nroutes = [\"POST studies/swap\"]\n",
        patients_manifest(&patients),
        patients.display()
    );
    let mut options = Options::new(Backend::Sqlite);
    options.manifest = Some(twice);
    let err = TestServer::start_with(options).await.err().expect("refused").to_string();
    let chain = format!("{err:#}");
    assert!(chain.contains("studies/swap") || err.contains("other"), "{chain}");

    let mut options = Options::new(Backend::Sqlite);
    options.manifest = Some(patients_manifest(&repo_root().join("plugins/dist/missing.wasm")));
    let err = format!("{:#}", TestServer::start_with(options).await.err().expect("refused"));
    assert!(err.contains("missing.wasm"), "{err}");

    let mut options = Options::new(Backend::Sqlite);
    options.manifest = Some(patients_manifest(&patients).replace("\"log\"]", "\"log\", \"telepathy\"]"));
    let err = format!("{:#}", TestServer::start_with(options).await.err().expect("refused"));
    assert!(err.contains("telepathy"), "{err}");

    // A file that is not a component is refused with the reason.
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"\0asm not really").unwrap();
    let mut options = Options::new(Backend::Sqlite);
    options.manifest = Some(patients_manifest(&junk));
    let err = format!("{:#}", TestServer::start_with(options).await.err().expect("refused"));
    assert!(err.contains("patients") && err.contains("component"), "{err}");
}

/// The real binary: `--help`, environment overrides, serving, and a clean exit on SIGTERM.
#[tokio::test]
async fn the_binary_serves_with_env_overrides_and_stops_on_sigterm() {
    let binary = repo_root().join("target/release/wasmpacs");
    assert!(binary.exists(), "{} is missing: `make test` builds it first", binary.display());
    let help = Command::new(&binary).arg("serve").arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("--config") && help.contains("WASMPACS_"), "{help}");

    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("plugins.toml");
    std::fs::write(&manifest, patients_manifest(&component("patients"))).unwrap();
    let config = dir.path().join("wasmpacs.toml");
    std::fs::write(&config, "[http]\nlisten = \"127.0.0.1:1\"\n[[tenant]]\nname = \"default\"\napi_key = \"from-file\"\n")
        .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = Command::new(&binary)
        .args(["serve", "--config"])
        .arg(&config)
        .env("WASMPACS_HTTP_LISTEN", format!("127.0.0.1:{port}"))
        .env("WASMPACS_TENANT_0_API_KEY", "from-env")
        .env("WASMPACS_PLUGINS_MANIFEST", manifest.display().to_string())
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut log = Vec::new();
    while !log.iter().any(|l: &String| l.contains("wasmpacs listening")) {
        assert!(Instant::now() < deadline, "server did not start: {log:?}");
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            log.push(line);
        }
    }
    assert!(dir.path().join("data/wasmpacs.db").exists(), "SQLite created in the default data directory");
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/o3-dpacs-wado/patients/create");
    let body = json!({"patientID": "BIN-1", "patientName": "B^IN", "userName": "u"}).to_string();
    let r = http.post(&url).header("Authorization", "from-file").body(body.clone()).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "the environment replaced the file's key");
    let r = http.post(&url).header("Authorization", "from-env").body(body).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let started = Instant::now();
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "no exit after SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exit.success(), "clean exit: {exit:?}");
    while let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
        log.push(line);
    }
    assert!(log.iter().any(|l| l.contains("shutting down")), "{log:?}");
}
