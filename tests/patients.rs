//! The patients family over HTTP: every endpoint's success and each error status of the seed,
//! on SQLite and PostgreSQL.

use reqwest::StatusCode;
use serde_json::{Value, json};
use wasmpacs_tests::{Backend, TestServer, on_both_backends};

on_both_backends!(
    create_patient_rules,
    concurrent_creates_give_one_patient,
    update_patient_rules,
    updates_of_different_fields_at_once_all_apply,
    merge_patients_rules,
    a_study_moved_during_a_merge_stays_moved,
    one_new_id_named_under_two_issuers_at_once_gives_one_patient,
    move_study_rules,
    studies_moved_at_once_to_a_new_patient_share_it,
    reconcile_study_rules,
    studies_reconciled_at_once_into_a_new_study_all_arrive,
    swap_studies_rules,
    studies_swapped_while_instances_arrive_keep_true_totals,
    instances_arriving_into_swapped_series_count_where_their_series_is,
);

fn kinds(events: &[Value]) -> Vec<(String, Option<String>)> {
    events
        .iter()
        .map(|e| (e["eventType"].as_str().unwrap().to_owned(), e["studyInstanceUid"].as_str().map(str::to_owned)))
        .collect()
}

async fn create_patient_rules(backend: Backend) {
    let s = TestServer::start(backend).await;
    let body = json!({"patientID": "PID-123", "patientName": "DOE^JOHN", "patientBirthDate": "20211224",
                      "patientSex": "M", "idIssuer": "ISSUER", "userName": "user543"});
    let (status, answer) = s.post("patients/create", &body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["patient"]["patientID"], "PID-123");
    assert_eq!(answer["patient"]["patientBirthDate"], "20211224");

    // Same ID and issuer: 409. Same ID under another issuer is another patient.
    let (status, answer) = s.post("patients/create", &body).await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert!(answer["message"].as_str().unwrap().contains("PID-123"), "{answer}");
    let (status, _) = s
        .post(
            "patients/create",
            &json!({"patientID": "PID-123", "patientName": "DOE^JOHN", "idIssuer": "OTHER", "userName": "u"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    // Each mandatory field, missing or blank or of the wrong type, is a 400 naming it.
    for missing in ["patientID", "patientName", "userName"] {
        let mut b = json!({"patientID": "NEW-1", "patientName": "A^B", "userName": "u"});
        b.as_object_mut().unwrap().remove(missing);
        let (status, answer) = s.post("patients/create", &b).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert!(answer["message"].as_str().unwrap().contains(missing), "{answer}");
        b[missing] = json!("   ");
        let (status, _) = s.post("patients/create", &b).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
    for (field, value) in [
        ("patientBirthDate", json!("2021-12-24")),
        ("patientBirthDate", json!("20210230")),
        ("patientSex", json!("X")),
        ("patientID", json!(12)),
    ] {
        let mut b = json!({"patientID": "NEW-2", "patientName": "A^B", "userName": "u"});
        b[field] = value;
        let (status, answer) = s.post("patients/create", &b).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{field}: {answer}");
        assert!(answer["message"].as_str().unwrap().contains(field), "{answer}");
    }
    // Not JSON, not an object, empty.
    for raw in ["{not json", "[1,2]", ""] {
        let response = s
            .http
            .post(format!("{}/patients/create", s.base))
            .header("Authorization", wasmpacs_tests::KEY_A)
            .body(raw)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "body {raw:?}");
        let answer: Value = response.json().await.unwrap();
        assert!(answer["message"].is_string());
    }
    // None of the refused requests left a patient behind: NEW-1 and NEW-2 can still be created.
    for id in ["NEW-1", "NEW-2"] {
        let (status, _) = s.post("patients/create", &json!({"patientID": id, "patientName": "A^B", "userName": "u"})).await;
        assert_eq!(status, StatusCode::OK, "{id}");
    }
    let events = s.events_as(wasmpacs_tests::KEY_A).await;
    assert_eq!(kinds(&events).iter().filter(|(k, _)| k == "PATIENT_CREATED").count(), 4);
    s.stop().await;
}

async fn concurrent_creates_give_one_patient(backend: Backend) {
    let s = TestServer::start(backend).await;
    let body = json!({"patientID": "RACE-1", "patientName": "RACE^ONE", "userName": "u"});
    let attempts = futures::future::join_all((0..16).map(|_| s.post("patients/create", &body))).await;
    let ok = attempts.iter().filter(|(status, _)| *status == StatusCode::OK).count();
    let conflicts = attempts.iter().filter(|(status, _)| *status == StatusCode::CONFLICT).count();
    assert_eq!((ok, conflicts), (1, 15), "{attempts:?}");
    let events = s.events_as(wasmpacs_tests::KEY_A).await;
    assert_eq!(events.len(), 1, "one patient, one event: {events:?}");
    s.stop().await;
}

async fn update_patient_rules(backend: Backend) {
    let s = TestServer::start(backend).await;
    let (status, answer) =
        s.post("patients/update", &json!({"patientID": "NOBODY", "patientName": "A^B", "userName": "u"})).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");

    s.post("patients/create", &json!({"patientID": "PID-1", "patientName": "OLD^NAME", "patientSex": "F", "userName": "u"}))
        .await;
    let (status, answer) = s
        .post(
            "patients/update",
            &json!({"patientID": "PID-1", "patientName": "DOE^JANE", "patientBirthDate": "19800101",
                                         "operatorName": "op", "userName": "u"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["patient"]["patientName"], "DOE^JANE");
    assert_eq!(answer["patient"]["patientBirthDate"], "19800101");
    assert_eq!(answer["patient"]["patientSex"], "F", "an omitted optional field keeps its value");

    // The same ID under two issuers: the ID identifies more than one patient.
    s.post("patients/create", &json!({"patientID": "PID-1", "patientName": "X^Y", "idIssuer": "B", "userName": "u"})).await;
    let (status, answer) = s.post("patients/update", &json!({"patientID": "PID-1", "patientName": "Z^Z", "userName": "u"})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    let (status, _) =
        s.post("patients/update", &json!({"patientID": "PID-1", "idIssuer": "B", "patientName": "Z^Z", "userName": "u"})).await;
    assert_eq!(status, StatusCode::OK, "an issuer disambiguates");

    for missing in ["patientID", "patientName", "userName"] {
        let mut b = json!({"patientID": "PID-1", "patientName": "A^B", "userName": "u"});
        b.as_object_mut().unwrap().remove(missing);
        let (status, answer) = s.post("patients/update", &b).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert!(answer["message"].as_str().unwrap().contains(missing));
    }
    let (status, _) = s
        .post(
            "patients/update",
            &json!({"patientID": "PID-1", "idIssuer": "B", "patientName": "A^B", "patientSex": "Q", "userName": "u"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    s.stop().await;
}

/// Two updates of one patient sent at once, one giving the birth date and one the sex: the
/// patient ends with both (neither update writes back what it read of the other field).
async fn updates_of_different_fields_at_once_all_apply(backend: Backend) {
    const PATIENTS: usize = 8;
    let s = TestServer::start(backend).await;
    let ids: Vec<String> = (0..PATIENTS).map(|i| format!("BOTH-{i}")).collect();
    for id in &ids {
        let (status, answer) = s.post("patients/create", &json!({"patientID": id, "patientName": "A^B", "userName": "u"})).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    }
    let bodies: Vec<Value> = ids
        .iter()
        .flat_map(|id| {
            [
                json!({"patientID": id, "patientName": "A^B", "patientBirthDate": "19700101", "userName": "u"}),
                json!({"patientID": id, "patientName": "A^B", "patientSex": "F", "userName": "u"}),
            ]
        })
        .collect();
    all_succeed_at_once(&s, "patients/update", &bodies).await;
    let patients: Vec<(String, Option<String>, Option<String>)> =
        sqlx::query_as("SELECT patient_id, birth_date, sex FROM patients WHERE patient_id LIKE 'BOTH-%' ORDER BY patient_id")
            .fetch_all(&s.connect_db().await)
            .await
            .unwrap();
    assert_eq!(patients.len(), PATIENTS);
    for (id, birth_date, sex) in patients {
        assert_eq!((birth_date.as_deref(), sex.as_deref()), (Some("19700101"), Some("F")), "patient {id}");
    }
    s.stop().await;
}

async fn merge_patients_rules(backend: Backend) {
    let mut s = TestServer::start(backend).await;
    let merge = |source: &str, target: &str| {
        json!({"sourcePatientID": source, "targetPatientID": target, "patientName": "TEST^NAME",
               "patientBirthDate": "19700101", "patientSex": "O", "operatorName": "operator 5", "userName": "john"})
    };
    // No source patient.
    let (status, answer) = s.post("patients/merge", &merge("GHOST", "PID-124")).await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    // A source patient without studies.
    s.post("patients/create", &json!({"patientID": "EMPTY", "patientName": "E^E", "userName": "u"})).await;
    let (status, answer) = s.post("patients/merge", &merge("EMPTY", "PID-124")).await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert!(answer["message"].as_str().unwrap().contains("no study"), "{answer}");

    s.seed_study("alpha", "PID-123", "1.1", &[("1.1.1", 2)]).await;
    s.seed_study("alpha", "PID-123", "1.2", &[("1.2.1", 1)]).await;
    // Merge into a patient that does not exist yet: it is created, both studies move.
    let (status, answer) = s.post("patients/merge", &merge("PID-123", "PID-124")).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["studies"], json!(["1.1", "1.2"]));
    // The source has no studies left, the target has them: merging back works, again is a 409.
    let (status, _) = s.post("patients/merge", &merge("PID-123", "PID-124")).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _) = s.post("patients/merge", &merge("PID-124", "PID-123")).await;
    assert_eq!(status, StatusCode::OK);

    // Several patients with the source ID, or with the target ID: 409.
    s.post("patients/create", &json!({"patientID": "PID-123", "patientName": "D^D", "idIssuer": "X", "userName": "u"})).await;
    let (status, _) = s.post("patients/merge", &merge("PID-123", "PID-200")).await;
    assert_eq!(status, StatusCode::CONFLICT);
    s.seed_study("alpha", "SRC-2", "2.1", &[("2.1.1", 1)]).await;
    let (status, answer) = s.post("patients/merge", &merge("SRC-2", "PID-123")).await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");

    let (status, _) = s.post("patients/merge", &json!({"sourcePatientID": "SRC-2", "userName": "u"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // A target that does not exist is created from the IDs alone: no name is needed.
    let (status, answer) =
        s.post("patients/merge", &json!({"sourcePatientID": "SRC-2", "targetPatientID": "NAMELESS", "userName": "u"})).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (status, answer) =
        s.post("patients/merge", &json!({"sourcePatientID": "NAMELESS", "targetPatientID": "SRC-2", "userName": "u"})).await;
    assert_eq!(status, StatusCode::OK, "the nameless patient was created with the study: {answer}");
    let events = s.events_as(wasmpacs_tests::KEY_A).await;
    let merged: Vec<_> = kinds(&events).into_iter().filter(|(k, _)| k == "STUDY_MERGED").collect();
    assert_eq!(merged.len(), 6, "two studies merged there and back, one there and back: {merged:?}");
    s.stop().await;
}

/// Sends `merge` and, at the same time, a `studies/move` of each of `studies` to the Patient ID
/// `target`; answers the merge's answer and the moves'.
async fn merge_while_moving(
    s: &TestServer,
    merge: &Value,
    studies: &[String],
    target: impl AsRef<str>,
) -> ((StatusCode, Value), Vec<(StatusCode, Value)>) {
    let target = target.as_ref();
    let moves: Vec<Value> = studies
        .iter()
        .map(|uid| json!({"studyInstanceUid": uid, "targetPatientID": target, "patientName": "M^T", "userName": "u"}))
        .collect();
    tokio::join!(s.post("patients/merge", merge), futures::future::join_all(moves.iter().map(|m| s.post("studies/move", m))))
}

/// A patient merged into another while its studies are each moved to a third patient: every
/// move answered 200, so every study ends with the third patient, whichever request ran first
/// (the merge takes only the studies the source still has when it moves them).
async fn a_study_moved_during_a_merge_stays_moved(backend: Backend) {
    const STUDIES: usize = 6;
    let mut s = TestServer::start(backend).await;
    for round in 0..3 {
        let root = format!("1.2.826.0.1.11.{round}");
        let source = format!("MERGED-{round}");
        let uids: Vec<String> = (0..STUDIES).map(|i| format!("{root}.{i}")).collect();
        for uid in &uids {
            s.seed_study("alpha", &source, uid, &[(&format!("{uid}.1"), 1)]).await;
        }
        let merge = json!({"sourcePatientID": source, "targetPatientID": format!("MERGE-INTO-{round}"), "userName": "u"});
        let (merged, moved) = merge_while_moving(&s, &merge, &uids, format!("MOVED-TO-{round}")).await;
        // All studies may have moved away before the merge looked: then it finds none.
        assert!(matches!(merged.0, StatusCode::OK | StatusCode::CONFLICT), "{merged:?}");
        assert!(moved.iter().all(|(status, _)| *status == StatusCode::OK), "{moved:?}");
        let owners: Vec<(String, String)> = sqlx::query_as(
            "SELECT s.study_uid, p.patient_id FROM studies s JOIN patients p ON p.id = s.patient_fk \
             WHERE s.study_uid LIKE $1 ORDER BY s.study_uid",
        )
        .bind(format!("{root}.%"))
        .fetch_all(&s.connect_db().await)
        .await
        .unwrap();
        assert_eq!(owners.len(), STUDIES);
        for (study, owner) in owners {
            assert_eq!(owner, format!("MOVED-TO-{round}"), "round {round}: study {study} was moved, merge {merged:?}");
        }
    }
    s.stop().await;
}

/// A merge (whose new target takes the source's issuer) and moves (whose new target has none)
/// naming one new Patient ID at once: they create one patient between them, not one per
/// issuer, so the ID keeps identifying one patient.
async fn one_new_id_named_under_two_issuers_at_once_gives_one_patient(backend: Backend) {
    let mut s = TestServer::start(backend).await;
    let db = s.connect_db().await;
    for round in 0..4 {
        let root = format!("1.2.826.0.1.12.{round}");
        let (source, newcomer) = (format!("ISSUED-{round}"), format!("NEWCOMER-{round}"));
        s.seed_study("alpha", &source, &format!("{root}.0"), &[(&format!("{root}.0.1"), 1)]).await;
        sqlx::query("UPDATE patients SET issuer = 'HOSPITAL' WHERE patient_id = $1").bind(&source).execute(&db).await.unwrap();
        let others: Vec<String> = (1..4).map(|i| format!("{root}.{i}")).collect();
        for (i, uid) in others.iter().enumerate() {
            s.seed_study("alpha", &format!("OTHER-{round}-{i}"), uid, &[(&format!("{uid}.1"), 1)]).await;
        }
        let merge = json!({"sourcePatientID": source, "targetPatientID": newcomer, "userName": "u"});
        let (merged, moved) = merge_while_moving(&s, &merge, &others, &newcomer).await;
        assert_eq!(merged.0, StatusCode::OK, "{merged:?}");
        assert!(moved.iter().all(|(status, _)| *status == StatusCode::OK), "{moved:?}");
        let patients: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM patients WHERE patient_id = $1")
            .bind(&newcomer)
            .fetch_one(&db)
            .await
            .unwrap();
        assert_eq!(patients, 1, "round {round}: one patient has the new ID");
    }
    s.stop().await;
}

async fn move_study_rules(backend: Backend) {
    let mut s = TestServer::start(backend).await;
    let body = |study: &str, target: &str| {
        json!({"studyInstanceUid": study, "targetPatientID": target, "patientName": "POE^BLACK",
               "patientBirthDate": "20210801", "patientSex": "M", "userName": "operator"})
    };
    let (status, answer) = s.post("studies/move", &body("9.9.9", "PID3")).await;
    assert_eq!(status, StatusCode::CONFLICT, "study not found is a 409 in the seed: {answer}");

    s.seed_study("alpha", "OWNER", "1.2.826.0.1582626144587", &[("1.2.826.0.1582626144587.1", 3)]).await;
    let (status, answer) = s.post("studies/move", &body("1.2.826.0.1582626144587", "PID3")).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["patient"]["patientID"], "PID3");
    assert_eq!(answer["patient"]["patientName"], "POE^BLACK", "the target patient was created");
    // The study now belongs to PID3: OWNER has nothing left to merge, PID3 has.
    let merge = |src: &str| json!({"sourcePatientID": src, "targetPatientID": "SOMEONE", "patientName": "S^S", "userName": "u"});
    assert_eq!(s.post("patients/merge", &merge("OWNER")).await.0, StatusCode::CONFLICT);

    // Several patients with the target ID: 409.
    s.post("patients/create", &json!({"patientID": "TWIN", "patientName": "T^A", "userName": "u"})).await;
    s.post("patients/create", &json!({"patientID": "TWIN", "patientName": "T^B", "idIssuer": "B", "userName": "u"})).await;
    let (status, _) = s.post("studies/move", &body("1.2.826.0.1582626144587", "TWIN")).await;
    assert_eq!(status, StatusCode::CONFLICT);

    for missing in ["studyInstanceUid", "targetPatientID", "patientName", "userName"] {
        let mut b = body("1.2.826.0.1582626144587", "PID4");
        b.as_object_mut().unwrap().remove(missing);
        let (status, answer) = s.post("studies/move", &b).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert!(answer["message"].as_str().unwrap().contains(missing));
    }
    assert_eq!(s.post("patients/merge", &merge("PID3")).await.0, StatusCode::OK);
    let events = s.events_as(wasmpacs_tests::KEY_A).await;
    assert!(kinds(&events).contains(&("STUDY_MOVED".into(), Some("1.2.826.0.1582626144587".into()))));
    s.stop().await;
}

/// Seeds `n` studies `<root>.<i>`, each of its own patient and with one series of two instances;
/// their UIDs.
async fn seed_studies(s: &mut TestServer, root: &str, n: usize) -> Vec<String> {
    let uids: Vec<String> = (0..n).map(|i| format!("{root}.{i}")).collect();
    for (i, uid) in uids.iter().enumerate() {
        s.seed_study("alpha", &format!("OWNER-{root}-{i}"), uid, &[(&format!("{uid}.1"), 2)]).await;
    }
    uids
}

/// POSTs every one of `bodies` to `path` at once; each must be answered 200.
async fn all_succeed_at_once(s: &TestServer, path: &str, bodies: &[Value]) {
    let answers = futures::future::join_all(bodies.iter().map(|b| s.post(path, b))).await;
    assert!(answers.iter().all(|(status, _)| *status == StatusCode::OK), "{answers:?}");
}

/// Studies moved at once to a Patient ID no patient has yet: every move succeeds, and the
/// studies end with the one patient the first of them created.
async fn studies_moved_at_once_to_a_new_patient_share_it(backend: Backend) {
    const STUDIES: usize = 8;
    let mut s = TestServer::start(backend).await;
    let uids = seed_studies(&mut s, "1.2.826.0.1.8", STUDIES).await;
    let bodies: Vec<Value> = uids
        .iter()
        .map(|uid| json!({"studyInstanceUid": uid, "targetPatientID": "NEWCOMER", "patientName": "NEW^COMER", "userName": "u"}))
        .collect();
    all_succeed_at_once(&s, "studies/move", &bodies).await;
    let owners: i64 = sqlx::query_scalar("SELECT COUNT(DISTINCT patient_fk) FROM studies WHERE study_uid LIKE '1.2.826.0.1.8.%'")
        .fetch_one(&s.connect_db().await)
        .await
        .unwrap();
    assert_eq!(owners, 1, "the studies share one patient");
    let events = s.events_as(wasmpacs_tests::KEY_A).await;
    assert_eq!(kinds(&events).iter().filter(|(k, _)| k == "STUDY_MOVED").count(), STUDIES);
    s.stop().await;
}

/// Studies reconciled at once into one target study that does not exist yet: every reconcile
/// succeeds, and the target ends with every series, counted.
async fn studies_reconciled_at_once_into_a_new_study_all_arrive(backend: Backend) {
    const SOURCES: usize = 6;
    let mut s = TestServer::start(backend).await;
    let sources = seed_studies(&mut s, "1.2.826.0.1.10", SOURCES).await;
    let target = "1.2.826.0.1.10.99";
    let bodies: Vec<Value> = sources
        .iter()
        .map(
            |uid| json!({"sourceStudyInstanceUID": uid, "targetStudyInstanceUID": target, "patientID": "RECON", "userName": "u"}),
        )
        .collect();
    all_succeed_at_once(&s, "studies/reconcile", &bodies).await;
    let (series_count,): (i64,) = sqlx::query_as("SELECT series_count FROM studies WHERE study_uid = $1")
        .bind(target)
        .fetch_one(&s.connect_db().await)
        .await
        .unwrap();
    assert_eq!(series_count, SOURCES as i64, "every series arrived in the target and is counted");
    s.stop().await;
}

async fn reconcile_study_rules(backend: Backend) {
    let mut s = TestServer::start(backend).await;
    let body = |source: &str, target: &str, pid: &str| {
        json!({"sourceStudyInstanceUID": source, "targetStudyInstanceUID": target, "patientID": pid,
               "patientName": "PATIENT^NEW", "patientBirthDate": "19010101", "patientSex": "M",
               "accessionNumber": "AN201191249", "studyDescription": "Reconciled study", "studyDate": "20211229",
               "userName": "operator"})
    };
    let (status, _) = s.post("studies/reconcile", &body("1.950.94590.1", "1.950.94590.2", "RECON-123")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "unknown source study");

    s.seed_study("alpha", "OLD-PID", "1.950.94590.1", &[("1.950.94590.1.1", 2), ("1.950.94590.1.2", 1)]).await;
    // Target does not exist: created for a new patient RECON-123, the series move there.
    let (status, answer) = s.post("studies/reconcile", &body("1.950.94590.1", "1.950.94590.2", "RECON-123")).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["seriesMoved"], 2);
    assert_eq!(answer["targetCreated"], true);
    // Target exists with another patient ID: 409; with its own ID: 200, nothing left to move.
    let (status, answer) = s.post("studies/reconcile", &body("1.950.94590.1", "1.950.94590.2", "OTHER")).await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    let (status, answer) = s.post("studies/reconcile", &body("1.950.94590.1", "1.950.94590.2", "RECON-123")).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["seriesMoved"], 0);
    assert_eq!(answer["targetCreated"], false);

    // Only the four mandatory fields: the new target study goes to a new patient with no name.
    let (status, answer) = s
        .post(
            "studies/reconcile",
            &json!({"sourceStudyInstanceUID": "1.950.94590.2", "targetStudyInstanceUID": "1.950.94590.3",
                                            "patientID": "RECON-BARE", "userName": "operator"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["targetCreated"], true);
    let (status, answer) = s.post("studies/reconcile", &body("1.950.94590.3", "1.950.94590.2", "RECON-123")).await;
    assert_eq!(status, StatusCode::OK, "back to where they were: {answer}");
    assert_eq!(answer["seriesMoved"], 2);
    for missing in ["sourceStudyInstanceUID", "targetStudyInstanceUID", "patientID", "userName"] {
        let mut b = body("1.950.94590.1", "1.950.94590.2", "RECON-123");
        b.as_object_mut().unwrap().remove(missing);
        let (status, answer) = s.post("studies/reconcile", &b).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    }
    let mut bad_date = body("1.950.94590.1", "1.950.94590.3", "RECON-123");
    bad_date["studyDate"] = json!("2021-12-29");
    assert_eq!(s.post("studies/reconcile", &bad_date).await.0, StatusCode::BAD_REQUEST);

    let events = s.events_as(wasmpacs_tests::KEY_A).await;
    let k = kinds(&events);
    assert!(k.contains(&("STUDY_RECONCILED".into(), Some("1.950.94590.2".into()))), "{k:?}");
    assert!(k.contains(&("IMAGE_AVAILABLE".into(), Some("1.950.94590.2".into()))), "{k:?}");
    s.stop().await;
}

async fn swap_studies_rules(backend: Backend) {
    let mut s = TestServer::start(backend).await;
    s.seed_study("alpha", "A", "1.3.76.6.149036212421207", &[("1.3.76.6.1.1", 1), ("1.3.76.6.1.2", 1)]).await;
    s.seed_study("alpha", "B", "1.3.6.1.1.7.1.6358916", &[("1.3.6.1.1.1", 4)]).await;
    let body = json!({"sourceStudyInstanceUID": "1.3.76.6.149036212421207", "targetStudyInstanceUID": "1.3.6.1.1.7.1.6358916", "userName": "Test"});
    let (status, answer) = s.post("studies/swap", &body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    // After the swap, reconciling the (now one-series) source into a new study moves one series.
    let (status, answer) = s
        .post(
            "studies/reconcile",
            &json!({"sourceStudyInstanceUID": "1.3.76.6.149036212421207", "targetStudyInstanceUID": "7.7.7",
                                            "patientID": "A", "userName": "u"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["seriesMoved"], 1, "the source study holds the target's single series now");

    let (status, _) = s
        .post(
            "studies/swap",
            &json!({"sourceStudyInstanceUID": "nope", "targetStudyInstanceUID": "1.3.6.1.1.7.1.6358916", "userName": "T"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = s
        .post(
            "studies/swap",
            &json!({"sourceStudyInstanceUID": "1.3.6.1.1.7.1.6358916", "targetStudyInstanceUID": "nope", "userName": "T"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = s.post("studies/swap", &json!({"sourceStudyInstanceUID": "1.3.6.1.1.7.1.6358916"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let events = s.events_as(wasmpacs_tests::KEY_A).await;
    assert_eq!(kinds(&events).iter().filter(|(k, _)| k == "STUDY_SWAPPED").count(), 2);
    s.stop().await;
}

/// Two studies swapped again and again while four associations store new series into both:
/// every swap and every store succeeds (the two never wait on each other crosswise), and each
/// study's series count and size end as what it holds. (Each series has one instance: a further
/// instance of a series swapped into the other study meanwhile would be refused, as the series
/// belongs to another study than the one it names.)
async fn studies_swapped_while_instances_arrive_keep_true_totals(backend: Backend) {
    let s = TestServer::start(backend).await;
    let dir = tempfile::tempdir().unwrap();
    // 2 studies of 64 series of one instance of 160x160.
    let files = wasmpacs_tests::generate_cts(
        dir.path(),
        &["-n", "128", "--studies", "2", "--series-per-study", "64", "--rows", "160", "--cols", "160"],
    );
    let mut by_study: std::collections::BTreeMap<String, Vec<std::path::PathBuf>> = Default::default();
    for file in files {
        by_study.entry(wasmpacs_tests::uids(&file).0).or_default().push(file);
    }
    let studies: Vec<String> = by_study.keys().cloned().collect();
    assert_eq!(studies.len(), 2);
    // One series of each first, so that both studies exist; the rest alternate between them.
    let firsts: Vec<_> = by_study.values_mut().map(|files| files.remove(0)).collect();
    let (ok, output) = s.storescu(wasmpacs_tests::NODE_A, &firsts).await;
    assert!(ok, "{output}");
    let (a, b) = (&by_study[&studies[0]], &by_study[&studies[1]]);
    let pairs: Vec<[std::path::PathBuf; 2]> = a.iter().zip(b).map(|(x, y)| [x.clone(), y.clone()]).collect();
    let shares: Vec<Vec<_>> = (0..4).map(|k| pairs.iter().skip(k).step_by(4).flatten().cloned().collect()).collect();

    let sending = std::sync::atomic::AtomicBool::new(true);
    let sends = async {
        let sends = futures::future::join_all(shares.iter().map(|share| s.storescu(wasmpacs_tests::NODE_A, share))).await;
        sending.store(false, std::sync::atomic::Ordering::SeqCst);
        sends
    };
    let swaps = swap_while(&s, &studies[0], &studies[1], &sending);
    let (sends, swaps) = tokio::join!(sends, swaps);
    assert!(sends.iter().all(|(ok, _)| *ok), "{sends:?}");
    assert!(swaps.len() >= 3, "the swaps overlapped the stores: {}", swaps.len());
    assert!(swaps.iter().all(|(status, _)| *status == StatusCode::OK), "{swaps:?}");

    let totals = totals_against_held(&s).await;
    assert_eq!(totals.len(), 2, "{totals:?}");
    let series: i64 = totals.iter().map(|t| t.2).sum();
    assert_eq!(series, 128, "every series arrived");
    s.stop().await;
}

/// Swaps the series of studies `a` and `b` again and again while `going` is true; answers
/// each swap's status and body.
async fn swap_while(s: &TestServer, a: &str, b: &str, going: &std::sync::atomic::AtomicBool) -> Vec<(StatusCode, Value)> {
    let body = json!({"sourceStudyInstanceUID": a, "targetStudyInstanceUID": b, "userName": "u"});
    let mut answers = Vec::new();
    while going.load(std::sync::atomic::Ordering::SeqCst) {
        answers.push(s.post("studies/swap", &body).await);
    }
    answers
}

/// Each study of tenant alpha (by UID) with its series count and size as recorded, and as its
/// series and instances are now: (study, series counted, series held, size, bytes held).
/// Asserts that each is counted as held.
async fn totals_against_held(s: &TestServer) -> Vec<(String, i64, i64, i64, i64)> {
    let totals = totals_and_held(&s.connect_db().await).await;
    for (study, series_count, series_held, size, bytes_held) in &totals {
        assert_eq!((series_count, size), (series_held, bytes_held), "study {study}: counted against held");
    }
    totals
}

/// As [`totals_against_held`] without asserting, read in one statement: on both databases, as
/// one snapshot of what was committed.
async fn totals_and_held(db: &sqlx::AnyPool) -> Vec<(String, i64, i64, i64, i64)> {
    sqlx::query_as(
        "SELECT st.study_uid, st.series_count, (SELECT COUNT(*) FROM series se WHERE se.study_fk = st.id), \
         st.size_bytes, CAST(COALESCE((SELECT SUM(i.size_bytes) FROM instances i JOIN series se ON se.id = i.series_fk \
         WHERE se.study_fk = st.id), 0) AS BIGINT) FROM studies st WHERE st.tenant = 'alpha' ORDER BY st.study_uid",
    )
    .fetch_all(db)
    .await
    .unwrap()
}

/// Instances keep arriving into the series of three studies while the first two and the last two
/// swap their series again and again, at once: each instance is stored into its series where the
/// series is when it arrives, or refused when its series is in another study by then (its study
/// no longer holds it), every swap succeeds (none deadlocks with another or with ingest), and each
/// study's size is the weight of what it holds, in every snapshot read meanwhile (the next swap
/// recounts, so a wrong total shows only until then). Before, an instance added while a swap was
/// under way could count in the study its series had just left.
async fn instances_arriving_into_swapped_series_count_where_their_series_is(backend: Backend) {
    let s = TestServer::start(backend).await;
    let dir = tempfile::tempdir().unwrap();
    // 3 studies of 2 series of 80 instances of 160x160.
    let files = wasmpacs_tests::generate_cts(
        dir.path(),
        &["-n", "480", "--studies", "3", "--series-per-study", "2", "--rows", "160", "--cols", "160"],
    );
    let mut by_series: std::collections::BTreeMap<(String, String), Vec<std::path::PathBuf>> = Default::default();
    for file in files {
        let (study, series, _) = wasmpacs_tests::uids(&file);
        by_series.entry((study, series)).or_default().push(file);
    }
    assert_eq!(by_series.len(), 6);
    let studies: std::collections::BTreeSet<String> = by_series.keys().map(|(study, _)| study.clone()).collect();
    let studies: Vec<String> = studies.into_iter().collect();
    // One instance of each series first, so that every series exists; the rest then arrive
    // over 4 associations, each sending into every series in turn.
    let firsts: Vec<_> = by_series.values_mut().map(|files| files.remove(0)).collect();
    let (ok, output) = s.storescu(wasmpacs_tests::NODE_A, &firsts).await;
    assert!(ok, "{output}");
    let rest: Vec<Vec<std::path::PathBuf>> = by_series.into_values().collect();
    let interleaved: Vec<std::path::PathBuf> =
        (0..rest[0].len()).flat_map(|i| rest.iter().map(move |files| files[i].clone())).collect();
    let shares: Vec<Vec<_>> = (0..4).map(|k| interleaved.iter().skip(k).step_by(4).cloned().collect()).collect();

    let sending = std::sync::atomic::AtomicBool::new(true);
    let sends = async {
        // Refused instances make storescu fail; what was stored is read back below.
        futures::future::join_all(shares.iter().map(|share| s.storescu_past_refusals(wasmpacs_tests::NODE_A, share))).await;
        sending.store(false, std::sync::atomic::Ordering::SeqCst);
    };
    let swaps = async {
        let (first, last) =
            tokio::join!(swap_while(&s, &studies[0], &studies[1], &sending), swap_while(&s, &studies[1], &studies[2], &sending));
        [first, last].concat()
    };
    let watch = async {
        let db = s.connect_db().await;
        let (mut looks, mut wrong) = (0, Vec::new());
        while sending.load(std::sync::atomic::Ordering::SeqCst) {
            looks += 1;
            wrong.extend(totals_and_held(&db).await.into_iter().filter(|t| (t.1, t.3) != (t.2, t.4)));
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        (looks, wrong)
    };
    let ((), swaps, (looks, wrong)) = tokio::join!(sends, swaps, watch);
    assert!(looks >= 10, "the totals were read while instances arrived: {looks} looks");
    assert!(wrong.is_empty(), "{} of {looks} looks saw totals other than held: {wrong:?}", wrong.len());
    assert!(swaps.len() >= 6, "the swaps overlapped the stores: {}", swaps.len());
    assert!(swaps.iter().all(|(status, _)| *status == StatusCode::OK), "{swaps:?}");

    let totals = totals_against_held(&s).await;
    assert_eq!(totals.len(), 3, "{totals:?}");
    assert_eq!(totals.iter().map(|t| t.2).sum::<i64>(), 6, "every series stays: {totals:?}");
    let db = s.connect_db().await;
    let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM instances WHERE tenant = 'alpha'").fetch_one(&db).await.unwrap();
    assert!(stored > 6, "instances arrived during the swaps: {stored}");
    s.stop().await;
}
