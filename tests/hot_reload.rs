//! Hot reload under load: a changed patients component takes over without a restart while
//! requests keep succeeding; a broken file is refused and the previous version keeps serving.
//! Components built against an older WIT version keep loading and keep that version's meaning.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use wasmpacs_tests::{Backend, Options, TestServer, component, on_both_backends, patients_manifest};

on_both_backends!(swapping_the_patients_component_under_load, a_component_of_wit_0_1_0_is_served_as_written);

/// A create without a birth date: accepted by the bundled rule, refused by the strict variant.
fn probe(i: usize) -> Value {
    json!({"patientID": format!("PROBE-{i}"), "patientName": "P^ROBE", "userName": "u"})
}

/// Replaces `path` atomically (write beside it, then rename), as a deploy would.
fn replace(path: &std::path::Path, bytes: &[u8]) {
    let tmp = path.with_extension("partial");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

async fn wait_for<F: AsyncFn() -> bool>(what: &str, check: F) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn swapping_the_patients_component_under_load(backend: Backend) {
    let plugin_dir = tempfile::tempdir().unwrap();
    let live = plugin_dir.path().join("patients.wasm");
    std::fs::copy(component("patients"), &live).unwrap();
    let strict = std::fs::read(component("patients-strict")).unwrap();

    let mut options = Options::new(backend);
    options.manifest = Some(patients_manifest(&live));
    options.extra_config = "[reload]\nenabled = true\ndebounce_ms = 50\n".into();
    let s = Arc::new(TestServer::start_with(options).await.expect("server starts"));
    let first_digest = s.admin_plugins().await["plugins"][0]["digest"].as_str().unwrap().to_owned();
    let (status, _) = s.post("patients/create", &probe(0)).await;
    assert_eq!(status, StatusCode::OK, "the bundled rule accepts a create without birth date");

    // Load: creates that satisfy both rules, from two clients, until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let mut load = Vec::new();
    for client in 0..2 {
        let (s, stop, sent) = (s.clone(), stop.clone(), sent.clone());
        load.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) && i < 20_000 {
                let body = json!({"patientID": format!("LOAD-{client}-{i}"), "patientName": "L^OAD",
                                  "patientBirthDate": "19900101", "userName": "u"});
                let (status, answer) = s.post("patients/create", &body).await;
                if status != StatusCode::OK {
                    failures.push(format!("{status} {answer}"));
                }
                sent.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
            failures
        }));
    }

    // Swap in the strict variant: the rule changes without a restart.
    replace(&live, &strict);
    let n = AtomicUsize::new(1);
    wait_for("the strict variant to serve", async || {
        s.post("patients/create", &probe(n.fetch_add(1, Ordering::Relaxed) + 1)).await.0 == StatusCode::BAD_REQUEST
    })
    .await;
    let listing = s.admin_plugins().await;
    let patients = &listing["plugins"][0];
    assert_ne!(patients["digest"], first_digest.as_str());
    assert_eq!(patients["last_reload"]["ok"], true, "{listing}");

    // A partial file (a deploy caught half way) is refused; the strict variant keeps serving.
    std::fs::write(&live, &strict[..strict.len() / 2]).unwrap();
    wait_for("the broken file to be refused", async || s.admin_plugins().await["plugins"][0]["last_reload"]["ok"] == false).await;
    let listing = s.admin_plugins().await;
    assert!(listing["plugins"][0]["last_reload"]["message"].as_str().unwrap().contains("refused"), "{listing}");
    assert_eq!(listing["plugins"][0]["digest"], patients["digest"], "the previous version still serves");
    let (status, answer) = s.post("patients/create", &probe(1000)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert!(answer["message"].as_str().unwrap().contains("patientBirthDate"), "{answer}");

    // Reading the file (as a backup or the loader itself would) triggers no reload. First the
    // changes of that write settle: the watcher may see it as two, and refuse it twice.
    let mut before = s.admin_plugins().await["plugins"][0]["last_reload"].clone();
    loop {
        tokio::time::sleep(Duration::from_millis(400)).await;
        let now = s.admin_plugins().await["plugins"][0]["last_reload"].clone();
        if now == before {
            break;
        }
        before = now;
    }
    let _ = std::fs::read(&live).unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(s.admin_plugins().await["plugins"][0]["last_reload"], before);

    // Back to the bundled rule.
    replace(&live, &std::fs::read(component("patients")).unwrap());
    wait_for("the bundled rule to serve again", async || {
        s.post("patients/create", &probe(n.fetch_add(1, Ordering::Relaxed) + 1)).await.0 == StatusCode::OK
    })
    .await;

    stop.store(true, Ordering::Relaxed);
    for task in load {
        let failures = task.await.unwrap();
        assert!(failures.is_empty(), "requests failed during reloads: {failures:?}");
    }
    assert!(sent.load(Ordering::Relaxed) > 20, "the load ran through the reloads");
    Arc::try_unwrap(s).ok().expect("sole owner").stop().await;
}

/// The test-only `legacy` component, built against WIT 0.1.0 (the bundled ones follow 0.1.1),
/// loads beside the bundled patients plugin and is listed with its own version. Its
/// `update-patient` keeps 0.1.0's meaning, replacing every field, so leaving the sex out clears
/// it, while the bundled `patients/update` (0.1.1) keeps a field left out.
async fn a_component_of_wit_0_1_0_is_served_as_written(backend: Backend) {
    let mut options = Options::new(backend);
    let legacy = format!(
        "\n[[plugin]]\nname = \"legacy\"\ncomponent = \"{}\"\nroutes = [\"POST test/legacy/replace\"]\ngrants = [\"archive\"]\n",
        component("legacy").display()
    );
    options.manifest = Some(patients_manifest(&component("patients")) + &legacy);
    let s = TestServer::start_with(options).await.expect("server starts");
    let listing = s.admin_plugins().await;
    let version = |name: &str| {
        let plugins = listing["plugins"].as_array().unwrap();
        plugins.iter().find(|p| p["name"] == name).map(|p| p["wit_version"].as_str().unwrap().to_owned())
    };
    assert_eq!(version("legacy").as_deref(), Some("0.1.0"), "{listing}");
    assert_eq!(version("patients").as_deref(), Some("0.1.1"), "{listing}");

    let created =
        json!({"patientID": "OLD-1", "patientName": "A^B", "patientSex": "F", "patientBirthDate": "19700101", "userName": "u"});
    assert_eq!(s.post("patients/create", &created).await.0, StatusCode::OK);
    let (status, answer) = s.post("patients/update", &json!({"patientID": "OLD-1", "patientName": "C^D", "userName": "u"})).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!((&answer["patient"]["patientSex"], &answer["patient"]["patientBirthDate"]), (&json!("F"), &json!("19700101")));

    let (status, answer) = s.post("test/legacy/replace", &json!({"patientID": "OLD-1", "patientName": "E^F"})).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer, json!({"patientName": "E^F", "patientBirthDate": null, "patientSex": null}));
    s.stop().await;
}
