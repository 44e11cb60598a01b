//! DICOM value rules where values enter the archive (issue 19): each rule refused with a 400
//! naming the field and the rule, through the bundled plugins (the client's field names) and
//! through a plugin that checks nothing (the host's own refusal); nothing written on refusal;
//! the longest valid values kept and served back through the API, the event feed and the
//! worklist (dcmtk findscu); and ingest keeping what a modality sends.

use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use reqwest::StatusCode;
use serde_json::{Value, json};
use wasmpacs_tests::{
    Backend, KEY_A, NODE_A, Options, TestServer, component, findscu_worklist, on_both_backends, orders_manifest,
    patients_manifest, sample,
};

on_both_backends!(
    patients_requests_name_each_refused_field,
    orders_requests_name_each_refused_field,
    the_host_refuses_what_a_plugin_does_not_check,
    the_longest_valid_values_round_trip,
    ingest_keeps_values_beyond_the_rules,
);

const LO_LONG: &str = "LO allows at most 64 characters";
const SH_LONG: &str = "SH allows at most 16 characters";
const AE_LONG: &str = "AE allows at most 16 characters";
const AE_ASCII: &str = "AE allows only printable ASCII characters";
const BACKSLASH: &str = "allows no `\\` (it separates the values of an element)";
const CONTROL: &str = "allows no control characters (CR, LF, TAB, ESC...)";
const PN_GROUP: &str = "PN allows at most 64 characters per component group";
const PN_GROUPS: &str = "PN allows at most 3 component groups (separated by `=`)";
const PN_COMPONENTS: &str = "PN allows at most 5 components per group (separated by `^`)";
const CS: &str = "CS allows only upper-case letters, digits, space and `_`";
const DA: &str = "DA must be a calendar date written YYYYMMDD";
const TM: &str = "TM must be a time written HH, HHMM, HHMMSS or HHMMSS.FFFFFF (1 to 6 fraction digits)";
const UI: &str = "UI allows only digits and `.`, in components that are not empty and have no leading zero";
const UI_LONG: &str = "UI allows at most 64 characters";

fn manifest() -> String {
    format!("{}{}", patients_manifest(&component("patients")), orders_manifest(&component("orders")))
}

async fn server(backend: Backend, manifest: String) -> TestServer {
    let mut options = Options::new(backend);
    options.manifest = Some(manifest);
    TestServer::start_with(options).await.expect("server starts")
}

/// Asserts a 400 whose message is exactly `expected` (the field, then the rule).
fn assert_refused((status, answer): (StatusCode, Value), expected: &str, what: &str) {
    assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {answer}");
    assert_eq!(answer["error"], "Bad Request", "{what}: {answer}");
    assert_eq!(answer["message"], expected, "{what}");
}

/// How many rows the tenant has in `table` (no endpoint lists patients, studies or orders).
async fn rows(s: &TestServer, table: &str) -> i64 {
    let pool = s.connect_db().await;
    let n = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table} WHERE tenant = 'alpha'")))
        .fetch_one(&pool)
        .await
        .expect("count");
    pool.close().await;
    n
}

/// Asserts that nothing was written: no patient, study, order or event, no worklist item.
async fn assert_nothing_written(s: &TestServer) {
    for table in ["patients", "studies", "orders"] {
        assert_eq!(rows(s, table).await, 0, "{table}");
    }
    assert!(s.events_as(KEY_A).await.is_empty(), "no event");
    let (items, output) = findscu_worklist(s.dicom_port, NODE_A, &["PatientName", "PatientID"], &[]).await;
    assert!(items.is_empty(), "no worklist item: {output}");
}

async fn patients_requests_name_each_refused_field(backend: Backend) {
    let s = server(backend, manifest()).await;
    let create = |field: &str, value: String| {
        let mut body = json!({"patientID": "P-1", "patientName": "DOE^JOHN", "idIssuer": "ISSUER", "userName": "u"});
        body[field] = json!(value);
        body
    };
    let cases = [
        ("patientID", "P".repeat(65), format!("patientID: {LO_LONG}")),
        ("patientID", "P\\1".into(), format!("patientID: LO {BACKSLASH}")),
        ("patientID", "P\r1".into(), format!("patientID: LO {CONTROL}")),
        ("patientID", "P\n1".into(), format!("patientID: LO {CONTROL}")),
        ("patientID", "P\u{7}1".into(), format!("patientID: LO {CONTROL}")),
        ("idIssuer", "I".repeat(65), format!("idIssuer: {LO_LONG}")),
        ("patientName", "N".repeat(1_000_000), format!("patientName: {PN_GROUP}")),
        ("patientName", format!("{}^{}", "D".repeat(40), "J".repeat(24)), format!("patientName: {PN_GROUP}")),
        ("patientName", "A=B=C=D".into(), format!("patientName: {PN_GROUPS}")),
        ("patientName", "A^B^C^D^E^F".into(), format!("patientName: {PN_COMPONENTS}")),
        ("patientName", "DOE^JOHN\\ROE^JANE".into(), format!("patientName: PN {BACKSLASH}")),
        ("patientName", "DOE^\tJOHN".into(), format!("patientName: PN {CONTROL}")),
    ];
    for (field, value, expected) in &cases {
        assert_refused(s.post("patients/create", &create(field, value.clone())).await, expected, field);
    }
    assert_eq!(rows(&s, "patients").await, 0);
    assert!(s.events_as(KEY_A).await.is_empty());

    // An update names the refused field as sent, and changes nothing.
    let (status, answer) = s.post("patients/create", &create("patientID", "P-2".into())).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let update = json!({"patientID": "P-2", "patientName": "A=B=C=D", "userName": "u"});
    assert_refused(s.post("patients/update", &update).await, &format!("patientName: {PN_GROUPS}"), "update");
    let (status, answer) =
        s.post("patients/update", &json!({"patientID": "P-2", "patientName": "DOE^JOHN", "userName": "u"})).await;
    assert_eq!((status, &answer["patient"]["patientName"]), (StatusCode::OK, &json!("DOE^JOHN")), "{answer}");

    // Merge and move name the new target's ID as the request does; reconcile, the new study.
    let mut s = s;
    s.seed_study("alpha", "P-3", "1.2.3.77", &[("1.2.3.77.1", 1)]).await;
    let merge = json!({"sourcePatientID": "P-3", "targetPatientID": "T\\1", "userName": "u"});
    assert_refused(s.post("patients/merge", &merge).await, &format!("targetPatientID: LO {BACKSLASH}"), "merge");
    let moved = json!({"studyInstanceUid": "1.2.3.77", "targetPatientID": "T".repeat(65), "patientName": "X^Y", "userName": "u"});
    assert_refused(s.post("studies/move", &moved).await, &format!("targetPatientID: {LO_LONG}"), "move");
    let reconcile = |target: &str, accession: &str| {
        json!({"sourceStudyInstanceUID": "1.2.3.77", "targetStudyInstanceUID": target, "patientID": "P-3",
               "accessionNumber": accession, "userName": "u"})
    };
    assert_refused(
        s.post("studies/reconcile", &reconcile("1.02.3", "A1")).await,
        &format!("targetStudyInstanceUID: {UI}"),
        "uid",
    );
    assert_refused(
        s.post("studies/reconcile", &reconcile("1.2.3.78", &"A".repeat(17))).await,
        &format!("accessionNumber: {SH_LONG}"),
        "an",
    );
    // Nothing of those was written: the two patients, the one study, the two events before.
    assert_eq!((rows(&s, "patients").await, rows(&s, "studies").await), (2, 1));
    let kinds: Vec<Value> = s.events_as(KEY_A).await.iter().map(|e| e["eventType"].clone()).collect();
    assert_eq!(kinds, [json!("PATIENT_CREATED"), json!("PATIENT_UPDATED")]);
    s.stop().await;
}

/// The seed's example order, every field set.
fn order() -> Value {
    json!({
        "ScheduledStationAETitle": "CT-ROOM-1",
        "ScheduledProcedureStepStartDate": "20221205",
        "ScheduledProcedureStepStartTime": "155430",
        "Modality": "CT",
        "ScheduledPerformingPhysiciansName": "TEST",
        "ScheduledProcedureStepDescription": "Procedure step description",
        "ScheduledProcedureStepID": "1234",
        "RequestedProcedureDescription": "Procedure description",
        "RequestedProcedureID": "4567",
        "StudyInstanceUID": "1.2.826.0.1.1",
        "AccessionNumber": "AN1",
        "RequestingPhysician": "REQUESTING^PHYSICIAN",
        "ReferringPhysicianName": "REFERRING^PHYSICIAN",
        "AdmissionID": "789",
        "CurrentPatientLocation": "bar",
        "PatientName": "DOE^JOHN",
        "PatientID": "PID-1",
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

/// Each order field with a value its VR refuses, and the rule.
fn refused_order_fields() -> Vec<(&'static str, String, String)> {
    let lo = |field: &'static str| (field, "L".repeat(65), LO_LONG.to_owned());
    let sh = |field: &'static str| (field, "S".repeat(17), SH_LONG.to_owned());
    vec![
        ("PatientID", "P".repeat(65), LO_LONG.into()),
        ("PatientName", "N".repeat(65), PN_GROUP.into()),
        sh("AccessionNumber"),
        ("AccessionNumber", "AN\\2".into(), format!("SH {BACKSLASH}")),
        ("ScheduledStationAETitle", "A".repeat(17), AE_LONG.into()),
        ("ScheduledStationAETitle", "SALLE-Ä".into(), AE_ASCII.into()),
        ("ScheduledStationAETitle", "CT\\MR".into(), format!("AE {BACKSLASH}")),
        sh("ScheduledStationName"),
        lo("ScheduledProcedureStepDescription"),
        ("ScheduledProcedureStepDescription", "step\ndescription".into(), format!("LO {CONTROL}")),
        sh("ScheduledProcedureStepID"),
        lo("RequestedProcedureDescription"),
        sh("RequestedProcedureID"),
        ("ScheduledPerformingPhysiciansName", "A^B^C^D^E^F".into(), PN_COMPONENTS.into()),
        ("RequestingPhysician", "A=B=C=D".into(), PN_GROUPS.into()),
        ("ReferringPhysicianName", "R".repeat(65), PN_GROUP.into()),
        lo("AdmissionID"),
        lo("CurrentPatientLocation"),
        lo("ConfidentialityConstraintOnPatientDataDescription"),
        lo("PatientState"),
        ("PregnancyStatus", "1\\2".into(), format!("LO {BACKSLASH}")),
        lo("MedicalAlerts"),
        lo("PlacerOrderNumberImagingServiceRequest"),
        lo("ServiceEpisodeID"),
    ]
}

async fn orders_requests_name_each_refused_field(backend: Backend) {
    let s = server(backend, manifest()).await;
    for (field, value, rule) in refused_order_fields() {
        let mut body = order();
        body[field] = json!(value);
        assert_refused(s.post("orders/create", &body).await, &format!("{field}: {rule}"), field);
    }
    // The patient an order created is gone with the refused order.
    assert_nothing_written(&s).await;
    s.stop().await;
}

/// The test-only hostile plugin, whose `test/unchecked` writes a patient, a study, an order and
/// an event with the values it is sent, checking none.
fn unchecked_manifest() -> String {
    format!(
        "\n[[plugin]]\nname = \"hostile\"\ncomponent = \"{}\"\nroutes = [\"POST test/unchecked\"]\ngrants = [\"archive\", \"events\"]\n",
        component("hostile").display()
    )
}

async fn the_host_refuses_what_a_plugin_does_not_check(backend: Backend) {
    let s = server(backend, unchecked_manifest()).await;
    let mut cases: Vec<(&str, String, String)> =
        refused_order_fields().into_iter().filter(|(field, ..)| *field != "ScheduledPerformingPhysiciansName").collect();
    cases.extend([
        ("ScheduledPerformingPhysicianName", "A^B^C^D^E^F".into(), PN_COMPONENTS.into()),
        ("IssuerOfPatientID", "I".repeat(65), LO_LONG.into()),
        ("PatientBirthDate", "1986-01-30".into(), DA.into()),
        ("PatientBirthDate", "19860230".into(), DA.into()),
        ("PatientSex", "m".into(), CS.into()),
        ("StudyInstanceUID", "1.2.abc".into(), UI.into()),
        ("StudyInstanceUID", "1.2.".into(), UI.into()),
        ("StudyInstanceUID", format!("1.{}", "2".repeat(63)), UI_LONG.into()),
        ("StudyDescription", "D".repeat(65), LO_LONG.into()),
        ("StudyDate", "20221305".into(), DA.into()),
        ("StudyTime", "15:54:30".into(), TM.into()),
        ("StudyTime", "155430.1234567".into(), TM.into()),
        ("ScheduledProcedureStepStartDate", "2022125".into(), DA.into()),
        ("ScheduledProcedureStepStartTime", "2554".into(), TM.into()),
        ("Modality", "ct".into(), CS.into()),
        ("Modality", "C".repeat(17), "CS allows at most 16 characters".into()),
        ("EventStudyInstanceUID", "1.2\\3".into(), format!("UI {BACKSLASH}")),
        ("EventStudyInstanceUID", "1.2\r3".into(), format!("UI {CONTROL}")),
    ]);
    for (field, value, rule) in cases {
        let mut body = order();
        body[field] = json!(value);
        // The host names fields by their DICOM keywords (an event's study as its Study UID).
        let name = if field == "EventStudyInstanceUID" { "StudyInstanceUID" } else { field };
        assert_refused(s.post("test/unchecked", &body).await, &format!("{name}: {rule}"), field);
    }
    assert_nothing_written(&s).await;
    let (status, answer) = s.post("test/unchecked", &order()).await;
    assert_eq!(status, StatusCode::OK, "the same plugin with valid values: {answer}");
    assert_eq!((rows(&s, "patients").await, rows(&s, "studies").await, rows(&s, "orders").await), (1, 1, 1));
    s.stop().await;
}

fn text(object: &InMemDicomObject, tag: dicom_core::Tag) -> String {
    object.element(tag).map(|e| e.to_str().unwrap().trim_end_matches(['\0', ' ']).to_owned()).unwrap_or_default()
}

async fn the_longest_valid_values_round_trip(backend: Backend) {
    let s = server(backend, manifest()).await;
    // Lengths count characters: many of these take two or three bytes each in UTF-8.
    let name = format!("{}^{}={}^{}={}", "Ä".repeat(40), "B".repeat(23), "山".repeat(30), "田".repeat(33), "や".repeat(64));
    let lo = |c: &str| c.repeat(64);
    let sh = |c: &str| c.repeat(16);
    let uid = format!("1.2.{}", "3".repeat(60));
    let mut body = order();
    for (field, value) in [
        ("PatientID", lo("é")),
        ("PatientName", name.clone()),
        ("StudyInstanceUID", uid.clone()),
        ("AccessionNumber", sh("Ø")),
        ("ScheduledStationAETitle", sh("A")),
        ("ScheduledStationName", sh("ß")),
        ("ScheduledProcedureStepDescription", lo("ü")),
        ("ScheduledProcedureStepID", sh("9")),
        ("RequestedProcedureDescription", lo("ö")),
        ("RequestedProcedureID", sh("R")),
        ("ScheduledPerformingPhysiciansName", "A^B^C^D^E".into()),
        ("RequestingPhysician", format!("{}^{}", "R".repeat(40), "Q".repeat(23))),
        ("ReferringPhysicianName", "名".repeat(64)),
        ("AdmissionID", lo("a")),
        ("CurrentPatientLocation", lo("c")),
        ("ConfidentialityConstraintOnPatientDataDescription", lo("k")),
        ("PatientState", lo("s")),
        ("MedicalAlerts", lo("m")),
        ("PlacerOrderNumberImagingServiceRequest", lo("p")),
        ("ServiceEpisodeID", lo("e")),
        ("ScheduledProcedureStepStartTime", "235960.999999".into()),
    ] {
        body[field] = json!(value);
    }
    let (status, answer) = s.post("orders/create", &body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["PatientID"], body["PatientID"]);

    // The API: the patient as stored, through an update that keeps every value.
    let update = json!({"patientID": body["PatientID"], "patientName": name, "userName": "u"});
    let (status, answer) = s.post("patients/update", &update).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["patient"]["patientName"], json!(name));
    // The event feed.
    let events = s.events_as(KEY_A).await;
    let created = events.iter().find(|e| e["eventType"] == "ORDER_CREATED").expect("ORDER_CREATED");
    assert_eq!(created["studyInstanceUid"], json!(uid));
    assert_eq!(created["detail"]["patient"]["patientName"], json!(name));

    // The worklist, in UTF-8 (ISO_IR 192), every value whole.
    let (items, output) = findscu_worklist(s.dicom_port, NODE_A, &["PatientName", "PatientID"], &[]).await;
    assert_eq!(items.len(), 1, "{output}");
    let item = &items[0];
    assert_eq!(text(item, tags::SPECIFIC_CHARACTER_SET), "ISO_IR 192");
    for (tag, field) in [
        (tags::PATIENT_ID, "PatientID"),
        (tags::PATIENT_NAME, "PatientName"),
        (tags::STUDY_INSTANCE_UID, "StudyInstanceUID"),
        (tags::ACCESSION_NUMBER, "AccessionNumber"),
        (tags::REQUESTED_PROCEDURE_DESCRIPTION, "RequestedProcedureDescription"),
        (tags::REQUESTED_PROCEDURE_ID, "RequestedProcedureID"),
        (tags::REQUESTING_PHYSICIAN, "RequestingPhysician"),
        (tags::REFERRING_PHYSICIAN_NAME, "ReferringPhysicianName"),
        (tags::ADMISSION_ID, "AdmissionID"),
        (tags::CURRENT_PATIENT_LOCATION, "CurrentPatientLocation"),
        (tags::PATIENT_STATE, "PatientState"),
        (tags::CONFIDENTIALITY_CONSTRAINT_ON_PATIENT_DATA_DESCRIPTION, "ConfidentialityConstraintOnPatientDataDescription"),
        (tags::MEDICAL_ALERTS, "MedicalAlerts"),
        (tags::PLACER_ORDER_NUMBER_IMAGING_SERVICE_REQUEST, "PlacerOrderNumberImagingServiceRequest"),
        (tags::SERVICE_EPISODE_ID, "ServiceEpisodeID"),
    ] {
        assert_eq!(text(item, tag), body[field].as_str().unwrap(), "{field}");
    }
    let step = item.element(tags::SCHEDULED_PROCEDURE_STEP_SEQUENCE).unwrap().items().unwrap()[0].clone();
    for (tag, field) in [
        (tags::SCHEDULED_STATION_AE_TITLE, "ScheduledStationAETitle"),
        (tags::SCHEDULED_STATION_NAME, "ScheduledStationName"),
        (tags::SCHEDULED_PROCEDURE_STEP_DESCRIPTION, "ScheduledProcedureStepDescription"),
        (tags::SCHEDULED_PROCEDURE_STEP_ID, "ScheduledProcedureStepID"),
        (tags::SCHEDULED_PERFORMING_PHYSICIAN_NAME, "ScheduledPerformingPhysiciansName"),
        (tags::SCHEDULED_PROCEDURE_STEP_START_TIME, "ScheduledProcedureStepStartTime"),
    ] {
        assert_eq!(text(&step, tag), body[field].as_str().unwrap(), "{field}");
    }
    s.stop().await;
}

async fn ingest_keeps_values_beyond_the_rules(backend: Backend) {
    let s = server(backend, manifest()).await;
    // A modality's instance with a Patient ID and name longer than LO and PN allow.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("long.dcm");
    std::fs::copy(sample("ele_ct16_CT_small.dcm"), &file).unwrap();
    let (long_id, long_name) = ("I".repeat(70), format!("{}^{}", "N".repeat(70), "G".repeat(10)));
    let edited = std::process::Command::new("dcmodify")
        .args(["-nb", "-m", &format!("PatientID={long_id}"), "-m", &format!("PatientName={long_name}")])
        .arg(&file)
        .output()
        .expect("dcmodify runs (dcmtk)");
    assert!(edited.status.success(), "{}", String::from_utf8_lossy(&edited.stderr));
    let (ok, output) = s.storescu(NODE_A, &[file]).await;
    assert!(ok, "{output}");
    let (status, studies) = s.get(&format!("rs/studies?PatientID={long_id}")).await;
    assert_eq!(status, StatusCode::OK, "{studies}");
    assert_eq!(studies.as_array().map(Vec::len), Some(1), "{studies}");
    assert_eq!(studies[0]["00100010"]["Value"][0]["Alphabetic"], json!(long_name));
    // That patient's other fields can still be updated: only changed values are checked.
    let update = json!({"patientID": long_id, "patientName": long_name, "patientSex": "F", "userName": "u"});
    let (status, answer) = s.post("patients/update", &update).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["patient"]["patientSex"], "F");
    s.stop().await;
}
