//! The patients family of the PACS APIs as a wasmpacs plugin: `patients/create`,
//! `patients/update`, `patients/merge`, `studies/move`, `studies/reconcile` and `studies/swap`.
//! Every rule and status code of the seed lives here; the host only does the archive work.

use serde_json::{Value, json};
use wasmpacs_sdk::archive::{self, Patient, PatientFields, Study, StudyFields};
use wasmpacs_sdk::patients;
use wasmpacs_sdk::{HostError, JsonBody, Plugin, Request, Response, error, events, is_date, vr};

struct Patients;

/// A handler's outcome: the success answer, or the error answer (also a `Response`).
type Answer = Result<Response, Response>;

impl Plugin for Patients {
    fn handle(request: Request) -> Response {
        let answer = match (request.method.as_str(), request.path.as_str()) {
            ("POST", "patients/create") => create(&request),
            ("POST", "patients/update") => update(&request),
            ("POST", "patients/merge") => merge(&request),
            ("POST", "studies/move") => move_study(&request),
            ("POST", "studies/reconcile") => reconcile(&request),
            ("POST", "studies/swap") => swap(&request),
            (method, path) => Err(error(404, format!("the patients plugin does not serve {method} {path}"))),
        };
        answer.unwrap_or_else(|e| e)
    }
}

wasmpacs_sdk::export_plugin!(Patients);

/// Mandatory fields of `patients/create`; the strict variant also wants the birth date.
#[cfg(not(feature = "strict"))]
const CREATE_MANDATORY: &[&str] = &["patientID", "patientName", "userName"];
#[cfg(feature = "strict")]
const CREATE_MANDATORY: &[&str] = &["patientID", "patientName", "userName", "patientBirthDate"];

/// `POST patients/create`: a new patient, unless the ID is taken under that issuer (409).
fn create(request: &Request) -> Answer {
    let body = JsonBody::parse(request)?;
    body.check(CREATE_MANDATORY, &["patientBirthDate", "patientSex", "idIssuer"])?;
    let (birth_date, sex) = demographics(&body)?;
    let fields = PatientFields {
        patient_id: body.text("patientID").unwrap_or_default(),
        issuer: body.text("idIssuer").unwrap_or_default(),
        name: body.text("patientName").unwrap_or_default(),
        birth_date,
        sex,
    };
    let patient = archive::create_patient(&fields).map_err(|e| e.naming(&patient_names("patientID")))?;
    emit("PATIENT_CREATED", None, json!({ "patient": patient_json(&patient), "userName": body.text("userName") }))?;
    Ok(wasmpacs_sdk::json(200, &json!({ "message": "patient created", "patient": patient_json(&patient) })))
}

/// `POST patients/update`: new demographics for the one patient with this ID (409 when the ID
/// names several). Orders of the patient show the new demographics, as they refer to it.
fn update(request: &Request) -> Answer {
    let body = JsonBody::parse(request)?;
    body.check(&["patientID", "patientName", "userName"], &["patientBirthDate", "patientSex", "operatorName", "idIssuer"])?;
    let (birth_date, sex) = demographics(&body)?;
    let patient_id = body.text("patientID").unwrap_or_default();
    let issuer = body.text("idIssuer");
    let patient = one_patient(&patient_id, issuer.as_deref())?
        .ok_or_else(|| error(404, format!("no patient with patientID `{patient_id}`")))?;
    let fields = PatientFields {
        patient_id: patient.patient_id.clone(),
        issuer: patient.issuer.clone(),
        name: body.text("patientName").unwrap_or_default(),
        // Left out, they keep what the patient has then (not what was read here).
        birth_date,
        sex,
    };
    let updated = archive::update_patient(patient.key, &fields).map_err(|e| e.naming(&patient_names("patientID")))?;
    let detail = json!({
        "patient": patient_json(&updated),
        "previous": patient_json(&patient),
        "userName": body.text("userName"),
        "operatorName": body.text("operatorName"),
    });
    emit_for_studies("PATIENT_UPDATED", &archive::studies_of_patient(updated.key)?, &detail)?;
    Ok(wasmpacs_sdk::json(200, &json!({ "message": "patient updated", "patient": patient_json(&updated) })))
}

/// `POST patients/merge`: every study of the source patient moves to the target patient, which
/// is created when it does not exist.
fn merge(request: &Request) -> Answer {
    let body = JsonBody::parse(request)?;
    body.check(
        &["sourcePatientID", "targetPatientID", "userName"],
        &["patientName", "patientBirthDate", "patientSex", "operatorName"],
    )?;
    let (birth_date, sex) = demographics(&body)?;
    let source_id = body.text("sourcePatientID").unwrap_or_default();
    let target_id = body.text("targetPatientID").unwrap_or_default();
    if source_id == target_id {
        return Err(error(400, "sourcePatientID and targetPatientID are the same patient"));
    }
    let source = match archive::find_patients(&source_id, None)?.as_slice() {
        [] => return Err(error(409, format!("no patient found with source patientID `{source_id}`"))),
        [one] => one.clone(),
        many => return Err(error(409, format!("source patientID `{source_id}` identifies {} patients", many.len()))),
    };
    let studies = archive::studies_of_patient(source.key)?;
    if studies.is_empty() {
        return Err(error(409, format!("no study found for source patient `{source_id}`")));
    }
    // Created, when missing, with what the request gives: the seed asks for no name (PatientName
    // may be empty).
    let fields = PatientFields {
        patient_id: target_id.clone(),
        issuer: source.issuer.clone(),
        name: body.text("patientName").unwrap_or_default(),
        birth_date,
        sex,
    };
    let target = patients::find_or_create(&fields, "target patientID", &patient_names("targetPatientID"))?;
    // The studies the source still has now: one moved away meanwhile by another request stays.
    let studies = archive::move_studies_of_patient(source.key, target.key)?;
    if studies.is_empty() {
        return Err(error(409, format!("no study found for source patient `{source_id}`")));
    }
    let detail = json!({
        "source": patient_json(&source),
        "target": patient_json(&target),
        "userName": body.text("userName"),
        "operatorName": body.text("operatorName"),
    });
    emit_for_studies("STUDY_MERGED", &studies, &detail)?;
    Ok(wasmpacs_sdk::json(
        200,
        &json!({
            "message": "patients merged",
            "sourcePatientID": source_id,
            "targetPatientID": target_id,
            "studies": studies.iter().map(|s| s.study_uid.clone()).collect::<Vec<_>>(),
        }),
    ))
}

/// `POST studies/move`: the study goes to the patient with the target ID, created when missing.
/// The seed answers 409 both for an unknown study and for an ambiguous patient ID.
fn move_study(request: &Request) -> Answer {
    let body = JsonBody::parse(request)?;
    body.check(&["studyInstanceUid", "targetPatientID", "patientName", "userName"], &["patientBirthDate", "patientSex"])?;
    let (birth_date, sex) = demographics(&body)?;
    let study_uid = body.text("studyInstanceUid").unwrap_or_default();
    let target_id = body.text("targetPatientID").unwrap_or_default();
    let study = archive::find_study(&study_uid)?.ok_or_else(|| error(409, format!("study `{study_uid}` not found")))?;
    let fields = PatientFields {
        patient_id: target_id.clone(),
        issuer: String::new(),
        name: body.text("patientName").unwrap_or_default(),
        birth_date,
        sex,
    };
    let target = patients::find_or_create(&fields, "targetPatientID", &patient_names("targetPatientID"))?;
    let previous = archive::get_patient(study.patient_key)?;
    if previous.key != target.key {
        archive::assign_study(study.key, target.key)?;
        emit(
            "STUDY_MOVED",
            Some(&study_uid),
            json!({ "from": patient_json(&previous), "to": patient_json(&target), "userName": body.text("userName") }),
        )?;
    }
    Ok(wasmpacs_sdk::json(
        200,
        &json!({
            "message": if previous.key != target.key { "study moved" } else { "study already belongs to the target patient" },
            "studyInstanceUid": study_uid,
            "patient": patient_json(&target),
        }),
    ))
}

/// `POST studies/reconcile`: every series of the source study moves to the target study, which
/// is created (and hooked to the patient with this ID, created if needed) when it does not exist.
fn reconcile(request: &Request) -> Answer {
    let body = JsonBody::parse(request)?;
    body.check(
        &["sourceStudyInstanceUID", "targetStudyInstanceUID", "patientID", "userName"],
        &["patientName", "patientBirthDate", "patientSex", "accessionNumber", "studyDescription", "studyDate"],
    )?;
    let (birth_date, sex) = demographics(&body)?;
    let study_date = body.text("studyDate");
    if let Some(d) = study_date.as_deref().filter(|d| !is_date(d)) {
        return Err(error(400, format!("`studyDate` must be a YYYYMMDD date, not `{d}`")));
    }
    let source_uid = body.text("sourceStudyInstanceUID").unwrap_or_default();
    let target_uid = body.text("targetStudyInstanceUID").unwrap_or_default();
    let patient_id = body.text("patientID").unwrap_or_default();
    if source_uid == target_uid {
        return Err(error(400, "sourceStudyInstanceUID and targetStudyInstanceUID are the same study"));
    }
    let source = archive::find_study(&source_uid)?.ok_or_else(|| error(404, format!("source study `{source_uid}` not found")))?;
    // A target created is made of what the request gives: `patientName` is not mandatory here.
    let patient = PatientFields {
        patient_id: patient_id.clone(),
        issuer: String::new(),
        name: body.text("patientName").unwrap_or_default(),
        birth_date,
        sex,
    };
    let study = StudyFields {
        study_uid: target_uid.clone(),
        accession_number: body.text("accessionNumber"),
        description: body.text("studyDescription"),
        study_date,
        study_time: None,
        referring_physician: None,
    };
    let (target, created) = reconcile_target(&study, &patient)?;
    let moved = archive::move_all_series(source.key, target.key)?;
    let detail = json!({
        "sourceStudyInstanceUID": source_uid,
        "targetStudyInstanceUID": target_uid,
        "seriesMoved": moved,
        "targetCreated": created,
        "userName": body.text("userName"),
    });
    emit("STUDY_RECONCILED", Some(&source_uid), detail.clone())?;
    emit("STUDY_RECONCILED", Some(&target_uid), detail.clone())?;
    // The image availability notice for the target study.
    emit("IMAGE_AVAILABLE", Some(&target_uid), detail)?;
    Ok(wasmpacs_sdk::json(
        200,
        &json!({
            "message": "study reconciled",
            "sourceStudyInstanceUID": source_uid,
            "targetStudyInstanceUID": target_uid,
            "seriesMoved": moved,
            "targetCreated": created,
        }),
    ))
}

/// The target study of a reconcile: the one with the UID of `study` when it belongs to the
/// patient with the ID of `patient`, else one made of `study` (and of `patient`, when missing);
/// and whether it was created. When another request creates the study between the look-up and
/// the creation (two reconciles into one new study at once), the creation is refused as a
/// conflict and the study the other request created is taken.
fn reconcile_target(study: &StudyFields, patient: &PatientFields) -> Result<(Study, bool), Response> {
    let (target_uid, patient_id) = (&study.study_uid, &patient.patient_id);
    let mut attempts = 2;
    loop {
        attempts -= 1;
        if let Some(target) = archive::find_study(target_uid)? {
            let owner = archive::get_patient(target.patient_key)?;
            if owner.patient_id != *patient_id {
                return Err(error(
                    409,
                    format!("target study `{target_uid}` belongs to patientID `{}`, not `{patient_id}`", owner.patient_id),
                ));
            }
            return Ok((target, false));
        }
        let owner = patients::find_or_create(patient, "patientID", &patient_names("patientID"))?;
        match archive::create_study(owner.key, study) {
            Ok(created) => return Ok((created, true)),
            Err(HostError::Conflict(_)) if attempts > 0 => continue,
            Err(e) => return Err(e.naming(&STUDY_NAMES).into()),
        }
    }
}

/// `POST studies/swap`: the series of the two studies change places.
fn swap(request: &Request) -> Answer {
    let body = JsonBody::parse(request)?;
    body.check(&["sourceStudyInstanceUID", "targetStudyInstanceUID", "userName"], &[])?;
    let source_uid = body.text("sourceStudyInstanceUID").unwrap_or_default();
    let target_uid = body.text("targetStudyInstanceUID").unwrap_or_default();
    if source_uid == target_uid {
        return Err(error(400, "sourceStudyInstanceUID and targetStudyInstanceUID are the same study"));
    }
    let source = archive::find_study(&source_uid)?.ok_or_else(|| error(404, format!("study `{source_uid}` not found")))?;
    let target = archive::find_study(&target_uid)?.ok_or_else(|| error(404, format!("study `{target_uid}` not found")))?;
    archive::swap_series(source.key, target.key)?;
    let detail = json!({
        "sourceStudyInstanceUID": source_uid,
        "targetStudyInstanceUID": target_uid,
        "userName": body.text("userName"),
    });
    emit("STUDY_SWAPPED", Some(&source_uid), detail.clone())?;
    emit("STUDY_SWAPPED", Some(&target_uid), detail)?;
    Ok(wasmpacs_sdk::json(
        200,
        &json!({
            "message": "series swapped",
            "sourceStudyInstanceUID": source_uid,
            "targetStudyInstanceUID": target_uid,
        }),
    ))
}

/// The optional birth date and sex, checked: a 400 names the malformed one.
fn demographics(body: &JsonBody) -> Result<(Option<String>, Option<String>), Response> {
    let birth_date = body.text("patientBirthDate");
    if let Some(d) = birth_date.as_deref().filter(|d| !is_date(d)) {
        return Err(error(400, format!("`patientBirthDate` must be a YYYYMMDD date, not `{d}`")));
    }
    let sex = body.text("patientSex").map(|s| s.to_ascii_uppercase());
    if let Some(s) = sex.as_deref().filter(|s| !matches!(*s, "M" | "F" | "O")) {
        return Err(error(400, format!("`patientSex` must be M, F or O, not `{s}`")));
    }
    Ok((birth_date, sex))
}

/// The patient with this ID (and issuer, when given): none, one, or a 409 when several.
fn one_patient(patient_id: &str, issuer: Option<&str>) -> Result<Option<Patient>, Response> {
    match archive::find_patients(patient_id, issuer)?.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(one.clone())),
        many => Err(error(409, format!("patientID `{patient_id}` identifies {} patients", many.len()))),
    }
}

/// How this family's requests name the patient fields the host checks, the Patient ID as `id`:
/// a value the host refuses is named so in the 400.
fn patient_names(id: &str) -> [(vr::Field, &str); 5] {
    [
        (vr::PATIENT_ID, id),
        (vr::ISSUER_OF_PATIENT_ID, "idIssuer"),
        (vr::PATIENT_NAME, "patientName"),
        (vr::PATIENT_BIRTH_DATE, "patientBirthDate"),
        (vr::PATIENT_SEX, "patientSex"),
    ]
}

/// How `studies/reconcile` names the fields of the target study it creates.
const STUDY_NAMES: [(vr::Field, &str); 4] = [
    (vr::STUDY_INSTANCE_UID, "targetStudyInstanceUID"),
    (vr::ACCESSION_NUMBER, "accessionNumber"),
    (vr::STUDY_DESCRIPTION, "studyDescription"),
    (vr::STUDY_DATE, "studyDate"),
];

fn patient_json(p: &Patient) -> Value {
    json!({
        "patientID": p.patient_id,
        "idIssuer": p.issuer,
        "patientName": p.name,
        "patientBirthDate": p.birth_date,
        "patientSex": p.sex,
    })
}

fn emit(kind: &str, study_uid: Option<&str>, detail: Value) -> Result<(), Response> {
    events::emit(kind, study_uid, &detail.to_string())?;
    Ok(())
}

/// One event per study; a single patient-level event when there are none.
fn emit_for_studies(kind: &str, studies: &[Study], detail: &Value) -> Result<(), Response> {
    if studies.is_empty() {
        return emit(kind, None, detail.clone());
    }
    for study in studies {
        emit(kind, Some(&study.study_uid), detail.clone())?;
    }
    Ok(())
}
