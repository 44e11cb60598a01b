//! The DICOM value rules (crate `wasmpacs-vr`, PS3.5 6.2) applied to what a plugin writes into
//! the archive: patients, studies created without images, orders, and the study UIDs of events.
//! A value that breaks its field's VR is refused before anything is written, naming the field by
//! its DICOM keyword and the rule. Ingest (C-STORE, STOW-RS, `store-instance`) keeps what
//! modalities send and is not checked; rows written before these rules are not revisited.

use wasmpacs_vr::{self as vr, Field, FieldError, Refusal};

use super::archive::{Order, Patient, PatientFields, StudyFields};

/// Checks each field of a list, the first refusal answering.
fn each(fields: &[(Field, Option<&str>)]) -> Result<(), FieldError> {
    fields.iter().try_for_each(|(field, value)| field.check_opt(*value))
}

/// A patient's demographics.
pub fn patient(f: &PatientFields) -> Result<(), FieldError> {
    each(&[
        (vr::PATIENT_ID, Some(f.patient_id.as_str())),
        (vr::ISSUER_OF_PATIENT_ID, Some(f.issuer.as_str())),
        (vr::PATIENT_NAME, Some(f.name.as_str())),
        (vr::PATIENT_BIRTH_DATE, f.birth_date.as_deref()),
        (vr::PATIENT_SEX, f.sex.as_deref()),
    ])
}

/// A patient's new demographics: only the values that change are checked, so that a patient
/// ingest filed with values beyond the rules can still have its other fields updated.
pub fn patient_update(new: &PatientFields, current: &Patient) -> Result<(), FieldError> {
    fn changed<'a>(new: Option<&'a str>, old: Option<&str>) -> Option<&'a str> {
        new.filter(|n| Some(*n) != old)
    }
    each(&[
        (vr::PATIENT_ID, changed(Some(new.patient_id.as_str()), Some(current.patient_id.as_str()))),
        (vr::ISSUER_OF_PATIENT_ID, changed(Some(new.issuer.as_str()), Some(current.issuer.as_str()))),
        (vr::PATIENT_NAME, changed(Some(new.name.as_str()), Some(current.name.as_str()))),
        (vr::PATIENT_BIRTH_DATE, changed(new.birth_date.as_deref(), current.birth_date.as_deref())),
        (vr::PATIENT_SEX, changed(new.sex.as_deref(), current.sex.as_deref())),
    ])
}

/// A study created without images.
pub fn study(f: &StudyFields) -> Result<(), FieldError> {
    each(&[
        (vr::STUDY_INSTANCE_UID, Some(f.study_uid.as_str())),
        (vr::ACCESSION_NUMBER, f.accession_number.as_deref()),
        (vr::STUDY_DESCRIPTION, f.description.as_deref()),
        (vr::STUDY_DATE, f.study_date.as_deref()),
        (vr::STUDY_TIME, f.study_time.as_deref()),
        (vr::REFERRING_PHYSICIAN_NAME, f.referring_physician.as_deref()),
    ])
}

/// An order: every field the worklist serves. `extra` attributes are not served and not checked.
pub fn order(o: &Order) -> Result<(), FieldError> {
    each(&[
        (vr::STUDY_INSTANCE_UID, Some(o.study_uid.as_str())),
        (vr::ACCESSION_NUMBER, Some(o.accession_number.as_str())),
        (vr::SCHEDULED_STATION_AE_TITLE, Some(o.scheduled_station_ae_title.as_str())),
        (vr::SCHEDULED_STATION_NAME, o.scheduled_station_name.as_deref()),
        (vr::SCHEDULED_START_DATE, Some(o.start_date.as_str())),
        (vr::SCHEDULED_START_TIME, Some(o.start_time.as_str())),
        (vr::MODALITY, Some(o.modality.as_str())),
        (vr::SCHEDULED_PERFORMING_PHYSICIAN_NAME, o.performing_physician.as_deref()),
        (vr::SCHEDULED_STEP_DESCRIPTION, Some(o.step_description.as_str())),
        (vr::SCHEDULED_STEP_ID, o.step_id.as_deref()),
        (vr::REQUESTED_PROCEDURE_DESCRIPTION, o.requested_procedure_description.as_deref()),
        (vr::REQUESTED_PROCEDURE_ID, o.requested_procedure_id.as_deref()),
        (vr::REQUESTING_PHYSICIAN, o.requesting_physician.as_deref()),
        (vr::REFERRING_PHYSICIAN_NAME, o.referring_physician.as_deref()),
        (vr::ADMISSION_ID, o.admission_id.as_deref()),
        (vr::CURRENT_PATIENT_LOCATION, o.current_patient_location.as_deref()),
        (vr::CONFIDENTIALITY_CONSTRAINT, o.confidentiality_constraint.as_deref()),
        (vr::PATIENT_STATE, o.patient_state.as_deref()),
        (vr::PREGNANCY_STATUS, o.pregnancy_status.as_deref()),
        (vr::MEDICAL_ALERTS, o.medical_alerts.as_deref()),
        (vr::PLACER_ORDER_NUMBER, o.placer_order_number.as_deref()),
        (vr::SERVICE_EPISODE_ID, o.service_episode_id.as_deref()),
    ])
}

/// The study an event is about. It may be a study ingest filed, its UID kept as the modality
/// sent it, so only what splits or breaks a value is refused: control characters and `\`.
pub fn event_study(study_uid: Option<&str>) -> Result<(), FieldError> {
    match vr::STUDY_INSTANCE_UID.check_opt(study_uid) {
        Err(e) if matches!(e.refusal, Refusal::Control { .. } | Refusal::Backslash { .. }) => Err(e),
        _ => Ok(()),
    }
}
