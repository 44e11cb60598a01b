//! Modality Worklist (C-FIND, 1.2.840.10008.5.1.4.31): reading a modality's query identifier
//! and writing one answer per scheduled order, with the standard structure (patient, visit,
//! imaging service request, requested procedure, Scheduled Procedure Step Sequence).

use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_encoding::TransferSyntaxIndex;
use dicom_object::InMemDicomObject;
use dicom_object::mem::InMemElement;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;

use crate::db::archive::{Order, Patient};
use crate::db::worklist::WorklistQuery;

/// The Modality Worklist Information Model - FIND SOP class.
pub const MWL_FIND: &str = "1.2.840.10008.5.1.4.31";

/// Most items one query answers.
pub const MAX_MATCHES: u32 = 10_000;

/// Why an identifier could not be read.
#[derive(Debug, thiserror::Error)]
pub enum IdentifierError {
    #[error("unknown transfer syntax {0}")]
    TransferSyntax(String),
    #[error("unreadable identifier: {0}")]
    Unreadable(String),
}

/// Decodes a C-FIND identifier sent in `transfer_syntax`.
pub fn read_identifier(bytes: &[u8], transfer_syntax: &str) -> Result<InMemDicomObject, IdentifierError> {
    let ts =
        TransferSyntaxRegistry.get(transfer_syntax).ok_or_else(|| IdentifierError::TransferSyntax(transfer_syntax.to_owned()))?;
    InMemDicomObject::read_dataset_with_ts(bytes, ts).map_err(|e| IdentifierError::Unreadable(e.to_string()))
}

/// Encodes an answer identifier in `transfer_syntax`.
pub fn write_identifier(object: &InMemDicomObject, transfer_syntax: &str) -> Result<Vec<u8>, IdentifierError> {
    let ts =
        TransferSyntaxRegistry.get(transfer_syntax).ok_or_else(|| IdentifierError::TransferSyntax(transfer_syntax.to_owned()))?;
    let mut out = Vec::new();
    object.write_dataset_with_ts(&mut out, ts).map_err(|e| IdentifierError::Unreadable(e.to_string()))?;
    Ok(out)
}

fn key(object: &InMemDicomObject, tag: Tag) -> Option<String> {
    let element = object.get(tag)?;
    let text = element.to_str().ok()?;
    let text = text.trim_matches(|c: char| c == '\0' || c == ' ');
    (!text.is_empty()).then(|| text.to_owned())
}

/// The matching keys of an identifier (empty keys are universal matches).
pub fn query_of(identifier: &InMemDicomObject) -> WorklistQuery {
    let step =
        identifier.get(tags::SCHEDULED_PROCEDURE_STEP_SEQUENCE).and_then(|e| e.items().and_then(|items| items.first().cloned()));
    let in_step = |tag| step.as_ref().and_then(|s| key(s, tag));
    WorklistQuery {
        station_ae_title: in_step(tags::SCHEDULED_STATION_AE_TITLE),
        station_name: in_step(tags::SCHEDULED_STATION_NAME),
        modality: in_step(tags::MODALITY),
        start_date: in_step(tags::SCHEDULED_PROCEDURE_STEP_START_DATE),
        start_time: in_step(tags::SCHEDULED_PROCEDURE_STEP_START_TIME),
        patient_id: key(identifier, tags::PATIENT_ID),
        patient_name: key(identifier, tags::PATIENT_NAME),
        accession_number: key(identifier, tags::ACCESSION_NUMBER),
        study_uids: key(identifier, tags::STUDY_INSTANCE_UID),
    }
}

fn text(tag: Tag, vr: VR, value: &Option<String>) -> InMemElement {
    DataElement::new(tag, vr, PrimitiveValue::from(value.clone().unwrap_or_default()))
}

fn set(tag: Tag, vr: VR, value: &str) -> InMemElement {
    DataElement::new(tag, vr, PrimitiveValue::from(value))
}

/// One worklist item for an order and its patient: every field the order was created with.
pub fn answer(order: &Order, patient: &Patient) -> InMemDicomObject {
    let step = InMemDicomObject::from_element_iter([
        set(tags::MODALITY, VR::CS, &order.modality),
        set(tags::SCHEDULED_STATION_AE_TITLE, VR::AE, &order.scheduled_station_ae_title),
        set(tags::SCHEDULED_PROCEDURE_STEP_START_DATE, VR::DA, &order.start_date),
        set(tags::SCHEDULED_PROCEDURE_STEP_START_TIME, VR::TM, &order.start_time),
        text(tags::SCHEDULED_PERFORMING_PHYSICIAN_NAME, VR::PN, &order.performing_physician),
        set(tags::SCHEDULED_PROCEDURE_STEP_DESCRIPTION, VR::LO, &order.step_description),
        text(tags::SCHEDULED_PROCEDURE_STEP_ID, VR::SH, &order.step_id),
        text(tags::SCHEDULED_STATION_NAME, VR::SH, &order.scheduled_station_name),
    ]);
    let mut elements = vec![
        set(tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 192"),
        set(tags::ACCESSION_NUMBER, VR::SH, &order.accession_number),
        text(tags::REFERRING_PHYSICIAN_NAME, VR::PN, &order.referring_physician),
        set(tags::PATIENT_NAME, VR::PN, &patient.name),
        set(tags::PATIENT_ID, VR::LO, &patient.patient_id),
        text(tags::PATIENT_BIRTH_DATE, VR::DA, &patient.birth_date),
        text(tags::PATIENT_SEX, VR::CS, &patient.sex),
        text(tags::MEDICAL_ALERTS, VR::LO, &order.medical_alerts),
        text(tags::PREGNANCY_STATUS, VR::US, &None),
        text(tags::CONFIDENTIALITY_CONSTRAINT_ON_PATIENT_DATA_DESCRIPTION, VR::LO, &order.confidentiality_constraint),
        text(tags::PATIENT_STATE, VR::LO, &order.patient_state),
        set(tags::STUDY_INSTANCE_UID, VR::UI, &order.study_uid),
        text(tags::REQUESTING_PHYSICIAN, VR::PN, &order.requesting_physician),
        text(tags::REQUESTED_PROCEDURE_DESCRIPTION, VR::LO, &order.requested_procedure_description),
        text(tags::REQUESTED_PROCEDURE_ID, VR::SH, &order.requested_procedure_id),
        text(tags::ADMISSION_ID, VR::LO, &order.admission_id),
        text(tags::CURRENT_PATIENT_LOCATION, VR::LO, &order.current_patient_location),
        text(tags::PLACER_ORDER_NUMBER_IMAGING_SERVICE_REQUEST, VR::LO, &order.placer_order_number),
        text(tags::SERVICE_EPISODE_ID, VR::LO, &order.service_episode_id),
        DataElement::new(tags::SCHEDULED_PROCEDURE_STEP_SEQUENCE, VR::SQ, dicom_core::value::DataSetSequence::from(vec![step])),
    ];
    if !patient.issuer.is_empty() {
        elements.push(set(tags::ISSUER_OF_PATIENT_ID, VR::LO, &patient.issuer));
    }
    // Pregnancy Status is a US code in DICOM; the order carries free text, so it is not sent
    // unless it is one of the codes (1 not pregnant, 2 possibly, 3 definitely, 4 unknown).
    elements.retain(|e| e.header().tag != tags::PREGNANCY_STATUS);
    if let Some(code) =
        order.pregnancy_status.as_deref().and_then(|s| s.trim().parse::<u16>().ok()).filter(|c| (1..=4).contains(c))
    {
        elements.push(DataElement::new(tags::PREGNANCY_STATUS, VR::US, PrimitiveValue::from(code)));
    }
    InMemDicomObject::from_element_iter(elements)
}
