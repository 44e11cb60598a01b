//! The Key Object Selection Document (PS3.3 A.35.4) as Part-10 bytes: Patient, General Study,
//! Key Object Document Series, General Equipment, Key Object Document, SR Document Content
//! (TID 2010) and SOP Common modules, in Explicit VR Little Endian with a complete file meta.

use dicom_core::value::DataSetSequence;
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use dicom_object::meta::FileMetaTableBuilder;
use wasmpacs_sdk::archive::{Patient, Study};

use crate::rules::{Concept, ItemKind, KOS_SOP_CLASS};
use wasmpacs_sdk::clock::Stamp;

const EXPLICIT_VR_LITTLE_ENDIAN: &str = "1.2.840.10008.1.2.1";
/// The wasmpacs implementation (the same as the host's DICOM listener announces).
const IMPLEMENTATION_CLASS_UID: &str = "2.25.329628117552550639259218041455443066116.1";
const IMPLEMENTATION_VERSION_NAME: &str = "WASMPACS_KOS_01";
const MANUFACTURER: &str = "wasmpacs";

/// One referenced instance.
pub struct Reference {
    pub series_uid: String,
    pub sop_class_uid: String,
    pub sop_instance_uid: String,
    pub kind: ItemKind,
}

/// Everything a document is made of; the decisions were taken before (see `rules`).
pub struct Document<'a> {
    pub patient: &'a Patient,
    pub study: &'a Study,
    pub sop_instance_uid: String,
    pub series_uid: String,
    pub series_number: i32,
    pub series_description: &'a str,
    pub instance_number: i32,
    pub title: &'a Concept,
    /// Retrieve AE Title of the referenced series, when the site configured one.
    pub retrieve_ae_title: Option<String>,
    /// In order; instances of a series need not be adjacent.
    pub references: Vec<Reference>,
    pub created: Stamp,
}

impl Document<'_> {
    /// The document as a Part-10 file.
    pub fn to_part10(&self) -> Result<Vec<u8>, String> {
        let object = self.dataset();
        let meta = FileMetaTableBuilder::new()
            .transfer_syntax(EXPLICIT_VR_LITTLE_ENDIAN)
            .implementation_class_uid(IMPLEMENTATION_CLASS_UID)
            .implementation_version_name(IMPLEMENTATION_VERSION_NAME);
        let file = object.with_meta(meta).map_err(|e| format!("cannot build the file meta: {e}"))?;
        let mut bytes = Vec::with_capacity(2048 + self.references.len() * 400);
        file.write_all(&mut bytes).map_err(|e| format!("cannot encode the KOS: {e}"))?;
        Ok(bytes)
    }

    fn dataset(&self) -> InMemDicomObject {
        let (patient, study) = (self.patient, self.study);
        let mut o = InMemDicomObject::new_empty();
        // SOP Common
        if needs_utf8(&[&patient.name, &patient.patient_id, &patient.issuer])
            || needs_utf8(&[study.description.as_deref().unwrap_or(""), study.referring_physician.as_deref().unwrap_or("")])
        {
            text(&mut o, tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 192");
        }
        text(&mut o, tags::SOP_CLASS_UID, VR::UI, KOS_SOP_CLASS);
        text(&mut o, tags::SOP_INSTANCE_UID, VR::UI, &self.sop_instance_uid);
        text(&mut o, tags::INSTANCE_CREATION_DATE, VR::DA, &self.created.date);
        text(&mut o, tags::INSTANCE_CREATION_TIME, VR::TM, &self.created.time);
        text(&mut o, tags::TIMEZONE_OFFSET_FROM_UTC, VR::SH, "+0000");
        // Patient
        text(&mut o, tags::PATIENT_NAME, VR::PN, &patient.name);
        text(&mut o, tags::PATIENT_ID, VR::LO, &patient.patient_id);
        if !patient.issuer.is_empty() {
            text(&mut o, tags::ISSUER_OF_PATIENT_ID, VR::LO, &patient.issuer);
        }
        optional(&mut o, tags::PATIENT_BIRTH_DATE, VR::DA, patient.birth_date.as_deref());
        optional(&mut o, tags::PATIENT_SEX, VR::CS, patient.sex.as_deref());
        // General Study
        text(&mut o, tags::STUDY_INSTANCE_UID, VR::UI, &study.study_uid);
        optional(&mut o, tags::STUDY_DATE, VR::DA, study.study_date.as_deref());
        optional(&mut o, tags::STUDY_TIME, VR::TM, study.study_time.as_deref());
        optional(&mut o, tags::REFERRING_PHYSICIAN_NAME, VR::PN, study.referring_physician.as_deref());
        optional(&mut o, tags::STUDY_ID, VR::SH, None);
        optional(&mut o, tags::ACCESSION_NUMBER, VR::SH, study.accession_number.as_deref());
        if let Some(description) = study.description.as_deref().filter(|d| !d.is_empty()) {
            text(&mut o, tags::STUDY_DESCRIPTION, VR::LO, description);
        }
        // Key Object Document Series
        text(&mut o, tags::MODALITY, VR::CS, "KO");
        text(&mut o, tags::SERIES_INSTANCE_UID, VR::UI, &self.series_uid);
        text(&mut o, tags::SERIES_NUMBER, VR::IS, &self.series_number.to_string());
        text(&mut o, tags::SERIES_DESCRIPTION, VR::LO, self.series_description);
        sequence(&mut o, tags::REFERENCED_PERFORMED_PROCEDURE_STEP_SEQUENCE, Vec::new());
        // General Equipment
        text(&mut o, tags::MANUFACTURER, VR::LO, MANUFACTURER);
        // Key Object Document
        text(&mut o, tags::INSTANCE_NUMBER, VR::IS, &self.instance_number.to_string());
        text(&mut o, tags::CONTENT_DATE, VR::DA, &self.created.date);
        text(&mut o, tags::CONTENT_TIME, VR::TM, &self.created.time);
        sequence(&mut o, tags::CURRENT_REQUESTED_PROCEDURE_EVIDENCE_SEQUENCE, vec![self.evidence()]);
        // SR Document Content: the root container and one item per referenced instance
        text(&mut o, tags::VALUE_TYPE, VR::CS, "CONTAINER");
        sequence(&mut o, tags::CONCEPT_NAME_CODE_SEQUENCE, vec![code(self.title)]);
        text(&mut o, tags::CONTINUITY_OF_CONTENT, VR::CS, "SEPARATE");
        let mut template = InMemDicomObject::new_empty();
        text(&mut template, tags::MAPPING_RESOURCE, VR::CS, "DCMR");
        text(&mut template, tags::TEMPLATE_IDENTIFIER, VR::CS, "2010");
        sequence(&mut o, tags::CONTENT_TEMPLATE_SEQUENCE, vec![template]);
        sequence(&mut o, tags::CONTENT_SEQUENCE, self.references.iter().map(content_item).collect());
        o
    }

    /// The one study of the evidence, its series in order of first reference, their instances.
    fn evidence(&self) -> InMemDicomObject {
        let mut series: Vec<(&str, Vec<&Reference>)> = Vec::new();
        for reference in &self.references {
            match series.iter_mut().find(|(uid, _)| *uid == reference.series_uid) {
                Some((_, members)) => members.push(reference),
                None => series.push((&reference.series_uid, vec![reference])),
            }
        }
        let series_items = series
            .into_iter()
            .map(|(uid, members)| {
                let mut item = InMemDicomObject::new_empty();
                if let Some(ae) = self.retrieve_ae_title.as_deref() {
                    text(&mut item, tags::RETRIEVE_AE_TITLE, VR::AE, ae);
                }
                text(&mut item, tags::SERIES_INSTANCE_UID, VR::UI, uid);
                let sops = members.iter().map(|r| sop_reference(r)).collect();
                sequence(&mut item, tags::REFERENCED_SOP_SEQUENCE, sops);
                item
            })
            .collect();
        let mut study = InMemDicomObject::new_empty();
        text(&mut study, tags::STUDY_INSTANCE_UID, VR::UI, &self.study.study_uid);
        sequence(&mut study, tags::REFERENCED_SERIES_SEQUENCE, series_items);
        study
    }
}

/// An IMAGE, WAVEFORM or COMPOSITE item CONTAINS-ed by the root (TID 2010).
fn content_item(reference: &Reference) -> InMemDicomObject {
    let mut item = InMemDicomObject::new_empty();
    text(&mut item, tags::RELATIONSHIP_TYPE, VR::CS, "CONTAINS");
    text(&mut item, tags::VALUE_TYPE, VR::CS, reference.kind.value_type());
    sequence(&mut item, tags::REFERENCED_SOP_SEQUENCE, vec![sop_reference(reference)]);
    item
}

fn sop_reference(reference: &Reference) -> InMemDicomObject {
    let mut item = InMemDicomObject::new_empty();
    text(&mut item, tags::REFERENCED_SOP_CLASS_UID, VR::UI, &reference.sop_class_uid);
    text(&mut item, tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, &reference.sop_instance_uid);
    item
}

fn code(concept: &Concept) -> InMemDicomObject {
    let mut item = InMemDicomObject::new_empty();
    text(&mut item, tags::CODE_VALUE, VR::SH, concept.value);
    text(&mut item, tags::CODING_SCHEME_DESIGNATOR, VR::SH, concept.scheme);
    text(&mut item, tags::CODE_MEANING, VR::LO, concept.meaning);
    item
}

fn text(o: &mut InMemDicomObject, tag: Tag, vr: VR, value: &str) {
    o.put(DataElement::new(tag, vr, PrimitiveValue::from(value)));
}

/// A Type 2 attribute: the value, or present and empty.
fn optional(o: &mut InMemDicomObject, tag: Tag, vr: VR, value: Option<&str>) {
    match value.filter(|v| !v.is_empty()) {
        Some(v) => text(o, tag, vr, v),
        None => {
            o.put(DataElement::new(tag, vr, PrimitiveValue::Empty));
        }
    }
}

fn sequence(o: &mut InMemDicomObject, tag: Tag, items: Vec<InMemDicomObject>) {
    let value = if items.is_empty() { DataSetSequence::empty() } else { DataSetSequence::from(items) };
    o.put(DataElement::new(tag, VR::SQ, value));
}

fn needs_utf8(values: &[&str]) -> bool {
    values.iter().any(|v| !v.is_ascii())
}
