//! The orders family of the PACS APIs as a wasmpacs plugin: `orders/create` and `orders/delete`,
//! and the rule for when an order leaves the modality worklist (here: when images of its study
//! arrive; the `strict` variant keeps it until it is deleted).

mod validate;

use serde_json::json;
use wasmpacs_sdk::archive::{self, Order, Patient, PatientFields};
use wasmpacs_sdk::patients;
use wasmpacs_sdk::{JsonBody, Plugin, Request, Response, StudyEvent, error, events, vr};

struct Orders;

type Answer = Result<Response, Response>;

impl Plugin for Orders {
    fn handle(request: Request) -> Response {
        let answer = match (request.method.as_str(), request.path.as_str()) {
            ("POST", "orders/create") => create(&request),
            ("DELETE", "orders/delete") => delete(&request),
            (method, path) => Err(error(404, format!("the orders plugin does not serve {method} {path}"))),
        };
        answer.unwrap_or_else(|e| e)
    }

    /// A study arrived: its order, if any, is done and leaves the worklist.
    fn on_event(event: StudyEvent) -> Result<(), String> {
        if cfg!(feature = "strict") || event.kind != "STUDY_RECEIVED" {
            return Ok(());
        }
        let Some(study_uid) = event.study_uid else { return Ok(()) };
        let removed = archive::delete_order(&study_uid).map_err(|e| format!("{e:?}"))?;
        if removed {
            let detail = json!({ "reason": "images received", "eventOffset": event.offset });
            events::emit("ORDER_COMPLETED", Some(&study_uid), &detail.to_string()).map_err(|e| format!("{e:?}"))?;
        }
        Ok(())
    }
}

wasmpacs_sdk::export_plugin!(Orders);

/// `POST orders/create`: a new worklist item; its patient is matched by PatientID or created.
fn create(request: &Request) -> Answer {
    if let Some(content_type) = request.header("content-type") {
        let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        if !matches!(essence.as_str(), "text/json" | "application/json") {
            return Err(error(
                415,
                format!("Content-Type `{content_type}` is not supported; send text/json or application/json"),
            ));
        }
    }
    let body = JsonBody::parse(request)?;
    validate::order(&body)?;
    let text = |key: &str| body.text(key);
    let patient_id = text("PatientID").unwrap_or_default();
    let fields = PatientFields {
        patient_id: patient_id.clone(),
        issuer: String::new(),
        name: text("PatientName").unwrap_or_default(),
        birth_date: text("PatientBirthDate"),
        sex: text("PatientSex").map(|s| s.to_ascii_uppercase()),
    };
    // The body names fields by their DICOM keywords, as the host's refusals do.
    let patient = patients::find_or_create(&fields, "PatientID", &[])?;
    let order = Order {
        study_uid: text("StudyInstanceUID").unwrap_or_default(),
        accession_number: text("AccessionNumber").unwrap_or_default(),
        patient_key: patient.key,
        scheduled_station_ae_title: text("ScheduledStationAETitle").unwrap_or_default(),
        scheduled_station_name: text("ScheduledStationName"),
        start_date: text("ScheduledProcedureStepStartDate").unwrap_or_default(),
        start_time: validate::full_time(&text("ScheduledProcedureStepStartTime").unwrap_or_default()),
        modality: text("Modality").unwrap_or_default().to_ascii_uppercase(),
        performing_physician: text("ScheduledPerformingPhysiciansName").or_else(|| text("ScheduledPerformingPhysicianName")),
        step_description: text("ScheduledProcedureStepDescription").unwrap_or_default(),
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
    };
    // The one field the body may name otherwise than by its keyword.
    let performing =
        ["ScheduledPerformingPhysiciansName", "ScheduledPerformingPhysicianName"].into_iter().find(|k| text(k).is_some());
    let names = performing.map(|name| (vr::SCHEDULED_PERFORMING_PHYSICIAN_NAME, name));
    archive::create_order(&order).map_err(|e| e.naming(names.as_slice()))?;
    let detail = json!({
        "patient": patient_json(&patient),
        "accessionNumber": order.accession_number,
        "scheduledStationAETitle": order.scheduled_station_ae_title,
        "modality": order.modality,
        "start": format!("{} {}", order.start_date, order.start_time),
    });
    events::emit("ORDER_CREATED", Some(&order.study_uid), &detail.to_string())?;
    Ok(wasmpacs_sdk::json(
        200,
        &json!({
            "message": "order created",
            "StudyInstanceUID": order.study_uid,
            "AccessionNumber": order.accession_number,
            "PatientID": patient.patient_id,
        }),
    ))
}

/// `DELETE orders/delete?studyUid=`: the order leaves the worklist.
fn delete(request: &Request) -> Answer {
    let study_uid = request
        .query_param("studyUid")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| error(400, "parameter `studyUid` is required"))?;
    if !archive::delete_order(study_uid)? {
        return Err(error(404, format!("no order with StudyInstanceUID `{study_uid}`")));
    }
    events::emit("ORDER_DELETED", Some(study_uid), &json!({ "reason": "deleted through the API" }).to_string())?;
    Ok(wasmpacs_sdk::json(200, &json!({ "message": "order deleted", "StudyInstanceUID": study_uid })))
}

fn patient_json(p: &Patient) -> serde_json::Value {
    json!({ "patientID": p.patient_id, "patientName": p.name })
}
