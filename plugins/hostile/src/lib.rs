//! A test-only plugin that misbehaves on purpose, to prove that a bad plugin fails only its own
//! request: `test/trap` panics, `test/loop` never returns, `test/alloc` asks for 1 GiB,
//! `test/ungranted` calls the archive it was not granted, `test/ok` behaves, and `test/unchecked`
//! writes whatever values it is sent, checking none (the host's value rules must refuse them).

use std::hint::black_box;

use serde_json::{Value, json};
use wasmpacs_sdk::archive::{Order, PatientFields, StudyFields};
use wasmpacs_sdk::{Plugin, Request, Response, archive, error, events};

struct Hostile;

impl Plugin for Hostile {
    fn handle(request: Request) -> Response {
        match request.path.as_str() {
            "test/trap" => panic!("hostile plugin panics on purpose"),
            "test/loop" => {
                let mut n: u64 = 0;
                loop {
                    n = black_box(n.wrapping_add(1));
                }
            }
            "test/alloc" => {
                let big = vec![1u8; 1 << 30];
                wasmpacs_sdk::json(200, &json!({ "allocated": black_box(big).len() }))
            }
            "test/ungranted" => match archive::find_patients("anyone", None) {
                Ok(found) => wasmpacs_sdk::json(200, &json!({ "found": found.len() })),
                Err(e) => e.into(),
            },
            "test/ok" => wasmpacs_sdk::json(200, &json!({ "ok": true })),
            "test/unchecked" => unchecked(&request).unwrap_or_else(|answer| answer),
            other => error(404, format!("no such test: {other}")),
        }
    }
}

wasmpacs_sdk::export_plugin!(Hostile);

/// `test/unchecked`: the patient, study and order a JSON body names (fields by DICOM keyword)
/// written as sent, and an event, as a careless site plugin would; the host's refusal answers.
fn unchecked(request: &Request) -> Result<Response, Response> {
    let body: Value = serde_json::from_slice(&request.body).map_err(|e| error(400, e.to_string()))?;
    let text = |key: &str| body.get(key).and_then(Value::as_str).map(str::to_owned);
    let required = |key: &str| text(key).unwrap_or_default();
    let patient = archive::create_patient(&PatientFields {
        patient_id: required("PatientID"),
        issuer: required("IssuerOfPatientID"),
        name: required("PatientName"),
        birth_date: text("PatientBirthDate"),
        sex: text("PatientSex"),
    })?;
    archive::create_study(
        patient.key,
        &StudyFields {
            study_uid: required("StudyInstanceUID"),
            accession_number: text("AccessionNumber"),
            description: text("StudyDescription"),
            study_date: text("StudyDate"),
            study_time: text("StudyTime"),
            referring_physician: text("ReferringPhysicianName"),
        },
    )?;
    archive::create_order(&Order {
        study_uid: required("StudyInstanceUID"),
        accession_number: required("AccessionNumber"),
        patient_key: patient.key,
        scheduled_station_ae_title: required("ScheduledStationAETitle"),
        scheduled_station_name: text("ScheduledStationName"),
        start_date: required("ScheduledProcedureStepStartDate"),
        start_time: required("ScheduledProcedureStepStartTime"),
        modality: required("Modality"),
        performing_physician: text("ScheduledPerformingPhysicianName"),
        step_description: required("ScheduledProcedureStepDescription"),
        step_id: text("ScheduledProcedureStepID"),
        requested_procedure_description: text("RequestedProcedureDescription"),
        requested_procedure_id: text("RequestedProcedureID"),
        requesting_physician: text("RequestingPhysician"),
        referring_physician: text("ReferringPhysicianName"),
        admission_id: text("AdmissionID"),
        current_patient_location: text("CurrentPatientLocation"),
        confidentiality_constraint: text("ConfidentialityConstraintOnPatientDataDescription"),
        patient_state: text("PatientState"),
        pregnancy_status: text("PregnancyStatus"),
        medical_alerts: text("MedicalAlerts"),
        placer_order_number: text("PlacerOrderNumberImagingServiceRequest"),
        service_episode_id: text("ServiceEpisodeID"),
        extra: Vec::new(),
    })?;
    events::emit("ORDER_CREATED", text("EventStudyInstanceUID").or(text("StudyInstanceUID")).as_deref(), "{}")?;
    Ok(wasmpacs_sdk::json(200, &json!({ "patientKey": patient.key })))
}
