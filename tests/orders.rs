//! The orders family over HTTP and the modality worklist over DICOM (dcmtk findscu -W): every
//! seed status, matching as modalities query, the completion rule when images arrive, tenant
//! isolation, C-FIND cancel, and a hot-swapped rule.

use std::time::Duration;

use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use reqwest::StatusCode;
use serde_json::{Value, json};
use wasmpacs_tests::{
    Backend, KEY_A, NODE_A, NODE_B, Options, TestServer, component, findscu_worklist, on_both_backends, orders_manifest,
    patients_manifest, testset, transfer_syntax_of,
};

on_both_backends!(
    a_cancelled_find_stops_answering,
    create_and_delete_follow_the_seed,
    a_reader_of_the_feed_misses_no_event_of_concurrent_writers,
    the_worklist_serves_what_was_ordered,
    an_order_leaves_the_worklist_when_its_images_arrive,
    swapping_the_orders_rule_without_a_restart,
);

fn manifest() -> String {
    format!("{}{}", patients_manifest(&component("patients")), orders_manifest(&component("orders")))
}

async fn server(backend: Backend) -> TestServer {
    let mut options = Options::new(backend);
    options.manifest = Some(manifest());
    TestServer::start_with(options).await.expect("server starts")
}

/// The seed's example order, with a given Study Instance UID and a few fields to vary.
fn order(study_uid: &str, modality: &str, station: &str, date: &str, patient: (&str, &str)) -> Value {
    json!({
        "ScheduledStationAETitle": station,
        "ScheduledProcedureStepStartDate": date,
        "ScheduledProcedureStepStartTime": "155430",
        "Modality": modality,
        "ScheduledPerformingPhysiciansName": "TEST",
        "ScheduledProcedureStepDescription": "Procedure step description",
        "ScheduledProcedureStepID": "1234",
        "RequestedProcedureDescription": "Procedure description",
        "RequestedProcedureID": "4567",
        "StudyInstanceUID": study_uid,
        "AccessionNumber": format!("AN{}", study_uid.rsplit('.').next().unwrap()),
        "RequestingPhysician": "REQUESTING^PHYSICIAN",
        "ReferringPhysicianName": "REFERRING^PHYSICIAN",
        "AdmissionID": "789",
        "CurrentPatientLocation": "bar",
        "PatientName": patient.1,
        "PatientID": patient.0,
        "PatientBirthDate": "19860130",
        "PatientSex": "M",
        "ConfidentialityConstraintOnPatientDataDescription": "No constraint",
        "PatientState": "Some state",
        "PregnancyStatus": "4",
        "MedicalAlerts": "Some medical alert",
        "PlacerOrderNumberImagingServiceRequest": "2345566",
        "ServiceEpisodeID": "episode id",
        "ScheduledStationName": "STATION-NAME"
    })
}

/// POSTs an order with the seed's content type.
async fn create(s: &TestServer, key: &str, body: &Value) -> (StatusCode, Value) {
    s.post_text(key, "orders/create", "text/json; charset=utf-8", body.to_string()).await
}

async fn delete(s: &TestServer, query: &str) -> (StatusCode, Value) {
    let response = s.http.delete(format!("{}/orders/delete{query}", s.base)).header("Authorization", KEY_A).send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn text(object: &InMemDicomObject, tag: dicom_core::Tag) -> String {
    object.element(tag).map(|e| e.to_str().unwrap().trim_end_matches(['\0', ' ']).to_owned()).unwrap_or_default()
}

fn step(object: &InMemDicomObject) -> InMemDicomObject {
    object.element(tags::SCHEDULED_PROCEDURE_STEP_SEQUENCE).unwrap().items().unwrap()[0].clone()
}

fn study_uids(answers: &[InMemDicomObject]) -> Vec<String> {
    let mut uids: Vec<String> = answers.iter().map(|a| text(a, tags::STUDY_INSTANCE_UID)).collect();
    uids.sort();
    uids
}

async fn create_and_delete_follow_the_seed(backend: Backend) {
    let s = server(backend).await;
    let body = order("1.2.752.24.5.2584605181.20150129083013.816906", "CT", "STATION-AET", "20221205", ("NONE", "SURNAME^NAME"));
    let (status, answer) = create(&s, KEY_A, &body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    // application/json is accepted too; the same StudyInstanceUID again is a 409.
    let (status, answer) = s.post("orders/create", &body).await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");

    // Every mandatory field missing is a 400 naming it, and so is every malformed value.
    for missing in [
        "PatientID",
        "StudyInstanceUID",
        "PatientName",
        "ScheduledStationAETitle",
        "ScheduledProcedureStepDescription",
        "ScheduledProcedureStepStartDate",
        "ScheduledProcedureStepStartTime",
        "Modality",
        "AccessionNumber",
    ] {
        let mut b = order("1.2.3.4.5", "CT", "ST", "20221205", ("P", "A^B"));
        b.as_object_mut().unwrap().remove(missing);
        let (status, answer) = create(&s, KEY_A, &b).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{missing}: {answer}");
        assert!(answer["message"].as_str().unwrap().contains(missing), "{answer}");
    }
    for (field, value) in [
        ("ScheduledProcedureStepStartDate", "2022-12-05"),
        ("ScheduledProcedureStepStartDate", "20221305"),
        ("ScheduledProcedureStepStartTime", "15:54"),
        ("ScheduledProcedureStepStartTime", "256000"),
        ("Modality", "XYZ"),
        ("StudyInstanceUID", "1.2.abc"),
        ("PatientBirthDate", "1986"),
        ("ScheduledStationAETitle", "A-STATION-TITLE-TOO-LONG"),
    ] {
        let mut b = order("1.2.3.4.6", "CT", "ST", "20221205", ("P", "A^B"));
        b[field] = json!(value);
        let (status, answer) = create(&s, KEY_A, &b).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{field}={value}: {answer}");
        assert!(answer["message"].as_str().unwrap().contains(field), "{answer}");
    }
    let (status, _) = create(&s, KEY_A, &json!(null)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let empty = s.http.post(format!("{}/orders/create", s.base)).header("Authorization", KEY_A).send().await.unwrap();
    assert_eq!(empty.status(), StatusCode::BAD_REQUEST, "no request body");
    let xml = s
        .http
        .post(format!("{}/orders/create", s.base))
        .header("Authorization", KEY_A)
        .header("Content-Type", "application/xml")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(xml.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);

    // Race: concurrent creates of one order give one 200 and the rest 409.
    let racing = order("1.2.3.4.7", "MR", "ST", "20221205", ("RACE", "R^ACE"));
    let results = futures::future::join_all((0..8).map(|_| create(&s, KEY_A, &racing))).await;
    let ok = results.iter().filter(|(s, _)| *s == StatusCode::OK).count();
    assert_eq!(ok, 1, "{results:?}");
    assert!(results.iter().all(|(s, _)| *s == StatusCode::OK || *s == StatusCode::CONFLICT));

    // Delete: 400 without studyUid, 404 for none, 200 once.
    assert_eq!(delete(&s, "").await.0, StatusCode::BAD_REQUEST);
    assert_eq!(delete(&s, "?studyUid=").await.0, StatusCode::BAD_REQUEST);
    assert_eq!(delete(&s, "?studyUid=9.9.9").await.0, StatusCode::NOT_FOUND);
    assert_eq!(delete(&s, "?studyUid=1.2.3.4.7").await.0, StatusCode::OK);
    assert_eq!(delete(&s, "?studyUid=1.2.3.4.7").await.0, StatusCode::NOT_FOUND);
    // The order is gone, so it can be created again.
    assert_eq!(create(&s, KEY_A, &racing).await.0, StatusCode::OK);

    let kinds: Vec<String> = s.events_as(KEY_A).await.iter().map(|e| e["eventType"].as_str().unwrap().to_owned()).collect();
    assert_eq!(kinds.iter().filter(|k| *k == "ORDER_CREATED").count(), 3, "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| *k == "ORDER_DELETED").count(), 1, "{kinds:?}");
    s.stop().await;
}

/// Writers recording events at once (orders created and deleted by many clients, each in a unit
/// of work of its own) while a reader follows the feed: each event the reader is shown lies
/// past every one shown before, and when the writers are done the reader has been shown every
/// event. An event that committed below an offset the reader had passed would be missed.
async fn a_reader_of_the_feed_misses_no_event_of_concurrent_writers(backend: Backend) {
    const WRITERS: usize = 8;
    const ORDERS: usize = 12;
    let s = std::sync::Arc::new(server(backend).await);
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (s, done) = (s.clone(), done.clone());
        tokio::spawn(async move {
            let (mut seen, mut offset) = (Vec::new(), 0i64);
            loop {
                // Read the flag first: a poll after the writers are done sees every event.
                let last = done.load(std::sync::atomic::Ordering::SeqCst);
                let (status, body) = s.get(&format!("studyEvents?offsetId={offset}&limit=1000")).await;
                assert_eq!(status, StatusCode::OK, "{body}");
                for event in body["events"].as_array().unwrap() {
                    let at = event["offsetId"].as_i64().unwrap();
                    assert!(at > offset, "event {at} shown after {offset}");
                    offset = at;
                    seen.push(at);
                }
                if last && !body["more"].as_bool().unwrap() {
                    return seen;
                }
            }
        })
    };
    let writers = (0..WRITERS).map(|w| {
        let s = s.clone();
        async move {
            for n in 0..ORDERS {
                let uid = format!("1.2.826.0.1.7.{w}.{n}");
                let (status, answer) = create(&s, KEY_A, &order(&uid, "CT", "ST", "20221205", ("P-FEED", "FEED^P"))).await;
                assert_eq!(status, StatusCode::OK, "{answer}");
                if n % 3 == 0 {
                    assert_eq!(delete(&s, &format!("?studyUid={uid}")).await.0, StatusCode::OK);
                }
            }
        }
    });
    futures::future::join_all(writers).await;
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let seen = reader.await.expect("reader");
    let all: Vec<i64> = s.events_as(KEY_A).await.iter().map(|e| e["offsetId"].as_i64().unwrap()).collect();
    assert_eq!(all.len(), WRITERS * ORDERS * 4 / 3, "one event per create and per delete");
    assert_eq!(seen, all, "the reader was shown every event, in the order of the feed");
    std::sync::Arc::try_unwrap(s).ok().expect("sole owner").stop().await;
}

async fn the_worklist_serves_what_was_ordered(backend: Backend) {
    let s = server(backend).await;
    let orders = [
        order("1.2.826.0.1.1", "CT", "CT-ROOM-1", "20221205", ("PID-1", "DOE^JOHN")),
        order("1.2.826.0.1.2", "MR", "MR-ROOM-1", "20221206", ("PID-2", "ROE^JANE")),
        order("1.2.826.0.1.3", "CT", "CT-ROOM-1", "20221207", ("PID-3", "DOE^JANE")),
        // A TM value may be as short as HH: kept as 150000, within 15:00-15:01.
        {
            let mut o = order("1.2.826.0.1.4", "US", "US-ROOM-1", "20221210", ("PID-4", "SMITH^ANNA"));
            o["ScheduledProcedureStepStartTime"] = json!("15");
            o
        },
    ];
    for o in &orders {
        assert_eq!(create(&s, KEY_A, o).await.0, StatusCode::OK);
    }
    let port = s.dicom_port;
    let sps = |key: &str| format!("ScheduledProcedureStepSequence[0].{key}");

    // All items (universal matching) carry every field the order was created with.
    let (all, output) = findscu_worklist(port, NODE_A, &["PatientName", "PatientID", &sps("Modality=")], &[]).await;
    assert_eq!(all.len(), 4, "{output}");
    let first = all.iter().find(|a| text(a, tags::STUDY_INSTANCE_UID) == "1.2.826.0.1.1").unwrap();
    for (tag, expected) in [
        (tags::PATIENT_NAME, "DOE^JOHN"),
        (tags::PATIENT_ID, "PID-1"),
        (tags::PATIENT_BIRTH_DATE, "19860130"),
        (tags::PATIENT_SEX, "M"),
        (tags::ACCESSION_NUMBER, "AN1"),
        (tags::REFERRING_PHYSICIAN_NAME, "REFERRING^PHYSICIAN"),
        (tags::REQUESTING_PHYSICIAN, "REQUESTING^PHYSICIAN"),
        (tags::REQUESTED_PROCEDURE_DESCRIPTION, "Procedure description"),
        (tags::REQUESTED_PROCEDURE_ID, "4567"),
        (tags::ADMISSION_ID, "789"),
        (tags::CURRENT_PATIENT_LOCATION, "bar"),
        (tags::MEDICAL_ALERTS, "Some medical alert"),
        (tags::PATIENT_STATE, "Some state"),
        (tags::PLACER_ORDER_NUMBER_IMAGING_SERVICE_REQUEST, "2345566"),
        (tags::SERVICE_EPISODE_ID, "episode id"),
        (tags::CONFIDENTIALITY_CONSTRAINT_ON_PATIENT_DATA_DESCRIPTION, "No constraint"),
        (tags::PREGNANCY_STATUS, "4"),
    ] {
        assert_eq!(text(first, tag), expected, "{tag}");
    }
    let item = step(first);
    for (tag, expected) in [
        (tags::MODALITY, "CT"),
        (tags::SCHEDULED_STATION_AE_TITLE, "CT-ROOM-1"),
        (tags::SCHEDULED_PROCEDURE_STEP_START_DATE, "20221205"),
        (tags::SCHEDULED_PROCEDURE_STEP_START_TIME, "155430"),
        (tags::SCHEDULED_PERFORMING_PHYSICIAN_NAME, "TEST"),
        (tags::SCHEDULED_PROCEDURE_STEP_DESCRIPTION, "Procedure step description"),
        (tags::SCHEDULED_PROCEDURE_STEP_ID, "1234"),
        (tags::SCHEDULED_STATION_NAME, "STATION-NAME"),
    ] {
        assert_eq!(text(&item, tag), expected, "{tag}");
    }
    let fourth = all.iter().find(|a| text(a, tags::STUDY_INSTANCE_UID) == "1.2.826.0.1.4").unwrap();
    assert_eq!(text(&step(fourth), tags::SCHEDULED_PROCEDURE_STEP_START_TIME), "150000");

    // By modality, by station AE title, by date range (inclusive), by single date, by time range.
    let by = |keys: Vec<String>| async move {
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let (answers, output) = findscu_worklist(port, NODE_A, &keys, &[]).await;
        assert!(output.is_empty() || !output.contains("E: "), "{output}");
        study_uids(&answers)
    };
    assert_eq!(by(vec![sps("Modality=CT")]).await, ["1.2.826.0.1.1", "1.2.826.0.1.3"]);
    assert_eq!(by(vec![sps("ScheduledStationAETitle=MR-ROOM-1")]).await, ["1.2.826.0.1.2"]);
    assert_eq!(by(vec![sps("ScheduledProcedureStepStartDate=20221206-20221207")]).await, ["1.2.826.0.1.2", "1.2.826.0.1.3"]);
    assert_eq!(by(vec![sps("ScheduledProcedureStepStartDate=-20221205")]).await, ["1.2.826.0.1.1"]);
    assert_eq!(by(vec![sps("ScheduledProcedureStepStartDate=20221207-")]).await, ["1.2.826.0.1.3", "1.2.826.0.1.4"]);
    assert_eq!(by(vec![sps("ScheduledProcedureStepStartDate=20221210")]).await, ["1.2.826.0.1.4"]);
    assert_eq!(by(vec![sps("ScheduledProcedureStepStartTime=1500-1600")]).await.len(), 4);
    assert_eq!(by(vec![sps("ScheduledProcedureStepStartTime=1500-1501")]).await, ["1.2.826.0.1.4"]);
    assert!(by(vec![sps("ScheduledProcedureStepStartTime=0800-0900")]).await.is_empty());
    assert_eq!(by(vec![sps("ScheduledStationName=STATION-NAME"), sps("Modality=US")]).await, ["1.2.826.0.1.4"]);
    // Patient name with wildcards, case-insensitive; patient ID; accession; study UID list.
    assert_eq!(by(vec!["PatientName=doe*".into()]).await, ["1.2.826.0.1.1", "1.2.826.0.1.3"]);
    assert_eq!(by(vec!["PatientName=*JANE".into()]).await, ["1.2.826.0.1.2", "1.2.826.0.1.3"]);
    assert_eq!(by(vec!["PatientName=R?E^JANE".into()]).await, ["1.2.826.0.1.2"]);
    assert_eq!(by(vec!["PatientID=PID-4".into()]).await, ["1.2.826.0.1.4"]);
    assert_eq!(by(vec!["AccessionNumber=AN3".into()]).await, ["1.2.826.0.1.3"]);
    assert_eq!(by(vec!["StudyInstanceUID=1.2.826.0.1.2\\1.2.826.0.1.4".into()]).await, ["1.2.826.0.1.2", "1.2.826.0.1.4"]);

    // Another tenant's node sees none of these orders; an unknown AE cannot ask.
    let (beta, _) = findscu_worklist(port, NODE_B, &["PatientName"], &[]).await;
    assert!(beta.is_empty());
    let (none, output) = findscu_worklist(port, "STRANGER", &["PatientName"], &[]).await;
    assert!(none.is_empty() && output.contains("Rejected"), "{output}");

    // A patient update shows in the worklist; a deleted order is gone.
    let (status, answer) =
        s.post("patients/update", &json!({"patientID": "PID-1", "patientName": "DOE^JOHNNY", "userName": "u"})).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (answers, _) = findscu_worklist(port, NODE_A, &["PatientID=PID-1", "PatientName"], &[]).await;
    assert_eq!(text(&answers[0], tags::PATIENT_NAME), "DOE^JOHNNY");
    assert_eq!(delete(&s, "?studyUid=1.2.826.0.1.2").await.0, StatusCode::OK);
    assert_eq!(by(vec!["PatientName".into()]).await, ["1.2.826.0.1.1", "1.2.826.0.1.3", "1.2.826.0.1.4"]);
    s.stop().await;
}

async fn a_cancelled_find_stops_answering(backend: Backend) {
    let mut s = server(backend).await;
    // Enough answers to outrun the socket buffers, so the cancel arrives while answers remain.
    const ORDERS: u32 = 12_000;
    s.seed_orders("alpha", "BULK-ROOM", ORDERS).await;
    let sps = "ScheduledProcedureStepSequence[0].ScheduledStationAETitle=BULK-ROOM";
    let (answers, output) = findscu_worklist(s.dicom_port, NODE_A, &["PatientName", sps], &["-v", "--cancel", "2"]).await;
    assert!(
        answers.len() >= 2 && answers.len() < ORDERS as usize,
        "{} answers\n{}",
        answers.len(),
        &output[output.len().saturating_sub(2000)..]
    );
    assert!(output.contains("Cancel"), "{}", &output[output.len().saturating_sub(2000)..]);
    // Without cancelling, a query is answered up to the cap of 10,000 items.
    let (all, _) = findscu_worklist(s.dicom_port, NODE_A, &["PatientName", sps], &[]).await;
    assert_eq!(all.len(), 10_000);
    s.stop().await;
}

async fn an_order_leaves_the_worklist_when_its_images_arrive(backend: Backend) {
    let s = server(backend).await;
    let sample = testset().into_iter().find(|f| transfer_syntax_of(f) == "1.2.840.10008.1.2.1").unwrap();
    let study_uid = {
        let object = dicom_object::OpenFileOptions::new().read_until(tags::PIXEL_DATA).open_file(&sample).unwrap();
        object.element(tags::STUDY_INSTANCE_UID).unwrap().to_str().unwrap().trim_end_matches('\0').to_owned()
    };
    assert_eq!(
        create(&s, KEY_A, &order(&study_uid, "CT", "CT-ROOM-1", "20221205", ("PID-1", "DOE^JOHN"))).await.0,
        StatusCode::OK
    );
    assert_eq!(
        create(&s, KEY_A, &order("1.2.826.0.9.9", "CT", "CT-ROOM-1", "20221205", ("PID-2", "DOE^JANE"))).await.0,
        StatusCode::OK
    );
    let (answers, _) = findscu_worklist(s.dicom_port, NODE_A, &["PatientName"], &[]).await;
    assert_eq!(answers.len(), 2);
    let (ok, output) = s.storescu(NODE_A, &[sample]).await;
    assert!(ok, "{output}");
    // The hook runs after the store; wait for the order to leave.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (answers, _) = findscu_worklist(s.dicom_port, NODE_A, &["PatientName"], &[]).await;
        if study_uids(&answers) == ["1.2.826.0.9.9"] {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the order did not leave the worklist: {:?}", study_uids(&answers));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let kinds: Vec<(String, Option<String>)> = s
        .events_as(KEY_A)
        .await
        .iter()
        .map(|e| (e["eventType"].as_str().unwrap().to_owned(), e["studyInstanceUid"].as_str().map(str::to_owned)))
        .collect();
    assert!(kinds.contains(&("ORDER_COMPLETED".into(), Some(study_uid))), "{kinds:?}");
    s.stop().await;
}

async fn swapping_the_orders_rule_without_a_restart(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("orders.wasm");
    std::fs::copy(component("orders"), &live).unwrap();
    let mut options = Options::new(backend);
    options.manifest = Some(format!("{}{}", patients_manifest(&component("patients")), orders_manifest(&live)));
    options.extra_config = "[reload]\nenabled = true\ndebounce_ms = 50\n".into();
    let s = TestServer::start_with(options).await.expect("server starts");
    let without_referrer = |uid: &str| {
        let mut b = order(uid, "CT", "ST", "20221205", ("P", "A^B"));
        b.as_object_mut().unwrap().remove("ReferringPhysicianName");
        b
    };
    assert_eq!(create(&s, KEY_A, &without_referrer("1.2.5.1")).await.0, StatusCode::OK);
    let tmp = dir.path().join("orders.new");
    std::fs::copy(component("orders-strict"), &tmp).unwrap();
    std::fs::rename(&tmp, &live).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut n = 1;
    loop {
        n += 1;
        let (status, answer) = create(&s, KEY_A, &without_referrer(&format!("1.2.5.{n}"))).await;
        if status == StatusCode::BAD_REQUEST {
            assert!(answer["message"].as_str().unwrap().contains("ReferringPhysicianName"), "{answer}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the strict rule did not take over");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    s.stop().await;
}
