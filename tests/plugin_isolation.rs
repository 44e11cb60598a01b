//! A plugin that traps, loops forever, allocates without bound or calls a capability it was not
//! granted fails its own request with a 500 naming it; the server and other requests carry on.

use reqwest::StatusCode;
use serde_json::json;
use wasmpacs_tests::{Backend, Options, TestServer, component, hostile_manifest, on_both_backends, patients_manifest};

on_both_backends!(hostile_plugins_fail_only_their_own_requests);

fn manifest() -> String {
    format!("{}{}", patients_manifest(&component("patients")), hostile_manifest(500, 32))
}

async fn hostile_plugins_fail_only_their_own_requests(backend: Backend) {
    let mut options = Options::new(backend);
    options.manifest = Some(manifest());
    let s = TestServer::start_with(options).await.expect("server starts");

    let cases = [
        ("test/trap", "panicked"),
        ("test/loop", "time limit of 500 ms"),
        ("test/alloc", "memory limit of 32 MiB"),
        ("test/ungranted", "capability `archive` is not granted to plugin `hostile`"),
    ];
    // All hostile requests at once, interleaved with well-behaved ones on the other plugin.
    let hostile = futures::future::join_all(cases.iter().map(|(path, _)| s.get(path)));
    let bodies: Vec<_> =
        (0..20).map(|i| json!({"patientID": format!("OK-{i}"), "patientName": "A^B", "userName": "u"})).collect();
    let healthy = futures::future::join_all(bodies.iter().map(|body| s.post("patients/create", body)));
    let (hostile, healthy) = tokio::join!(hostile, healthy);
    for ((path, expected), (status, body)) in cases.iter().zip(&hostile) {
        assert_eq!(*status, StatusCode::INTERNAL_SERVER_ERROR, "{path}: {body}");
        assert_eq!(body["plugin"], "hostile", "{path}: {body}");
        let message = body["message"].as_str().unwrap();
        assert!(message.contains(expected), "{path}: expected `{expected}` in `{message}`");
    }
    assert!(healthy.iter().all(|(status, _)| *status == StatusCode::OK), "{healthy:?}");

    // The same plugin serves its next request normally, and so does every other.
    let (status, body) = s.get("test/ok").await;
    assert_eq!((status, body["ok"].as_bool()), (StatusCode::OK, Some(true)));
    for round in 0..3 {
        for (path, _) in &cases {
            assert_eq!(s.get(path).await.0, StatusCode::INTERNAL_SERVER_ERROR);
        }
        let (status, _) = s
            .post("patients/create", &json!({"patientID": format!("AFTER-{round}"), "patientName": "A^B", "userName": "u"}))
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    let events = s.events_as(wasmpacs_tests::KEY_A).await;
    assert_eq!(events.len(), 23, "every healthy create recorded its event, nothing else was written");
    s.stop().await;
}
