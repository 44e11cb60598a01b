//! Reading what the archive indexes from a stored Part-10 file, without loading pixel data.

use std::path::Path;

use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_object::{DefaultDicomObject, OpenFileOptions};
use serde_json::{Map, Value, json};

/// Why a file's header could not be indexed.
#[derive(Debug, thiserror::Error)]
pub enum HeaderError {
    #[error("not a readable DICOM Part-10 file: {0}")]
    Unreadable(String),
    #[error("the instance has no {0}")]
    Missing(&'static str),
    #[error("the {0} `{1}` is not a UID (digits and dots, at most 64 characters)")]
    InvalidUid(&'static str, String),
}

/// A UID as PS3.5 9.1 spells it: digits and dots, at most 64 characters. Leading zeros, which
/// some devices write, are let through; anything else would not name a file unambiguously.
fn check_uid(name: &'static str, uid: String) -> Result<String, HeaderError> {
    let valid = uid.len() <= 64 && uid.split('.').all(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_digit()));
    if valid { Ok(uid) } else { Err(HeaderError::InvalidUid(name, uid)) }
}

/// The attributes of one instance the archive keeps in its index.
#[derive(Debug, Clone, Default)]
pub struct InstanceHeader {
    pub transfer_syntax: String,
    pub sop_class_uid: String,
    pub sop_instance_uid: String,
    pub study_uid: String,
    pub series_uid: String,
    pub patient_id: String,
    pub issuer: String,
    pub patient_name: String,
    pub birth_date: Option<String>,
    pub sex: Option<String>,
    pub accession_number: Option<String>,
    pub study_description: Option<String>,
    pub study_date: Option<String>,
    pub study_time: Option<String>,
    pub referring_physician: Option<String>,
    pub modality: Option<String>,
    pub series_number: Option<i64>,
    pub series_description: Option<String>,
    pub station_name: Option<String>,
    pub body_part: Option<String>,
    pub container_identifier: Option<String>,
    pub instance_number: Option<i64>,
    /// Instance-level attributes served by `studyInstances`, by their JSON names.
    pub attributes: Map<String, Value>,
}

/// Reads the header of the Part-10 file at `path` (stops before Pixel Data).
pub fn read_header(path: &Path) -> Result<InstanceHeader, HeaderError> {
    let object = OpenFileOptions::new()
        .read_until(tags::PIXEL_DATA)
        .open_file(path)
        .map_err(|e| HeaderError::Unreadable(e.to_string()))?;
    header_of(&object)
}

/// The indexed attributes of an object already in memory.
pub fn header_of(object: &DefaultDicomObject) -> Result<InstanceHeader, HeaderError> {
    let meta = object.meta();
    let text = |tag: Tag| text(object, tag);
    let sop_instance_uid = text(tags::SOP_INSTANCE_UID)
        .or_else(|| non_empty(meta.media_storage_sop_instance_uid()))
        .ok_or(HeaderError::Missing("SOP Instance UID"))
        .and_then(|uid| check_uid("SOP Instance UID", uid))?;
    let sop_class_uid = text(tags::SOP_CLASS_UID)
        .or_else(|| non_empty(meta.media_storage_sop_class_uid()))
        .ok_or(HeaderError::Missing("SOP Class UID"))?;
    let study_uid = text(tags::STUDY_INSTANCE_UID)
        .ok_or(HeaderError::Missing("Study Instance UID"))
        .and_then(|uid| check_uid("Study Instance UID", uid))?;
    let series_uid = text(tags::SERIES_INSTANCE_UID)
        .ok_or(HeaderError::Missing("Series Instance UID"))
        .and_then(|uid| check_uid("Series Instance UID", uid))?;

    let mut attributes = Map::new();
    let mut put = |name: &str, value: Option<String>| {
        if let Some(v) = value {
            attributes.insert(name.to_owned(), json!(v));
        }
    };
    put("acquisitionTime", text(tags::ACQUISITION_TIME));
    put("bodyPartExamined", text(tags::BODY_PART_EXAMINED));
    put("contentDate", text(tags::CONTENT_DATE));
    put("contentTime", text(tags::CONTENT_TIME));
    put("imageLaterality", text(tags::IMAGE_LATERALITY));
    put("imageType", multi_text(object, tags::IMAGE_TYPE));
    put("laterality", text(tags::LATERALITY));
    put("numberOfFrames", text(tags::NUMBER_OF_FRAMES));
    put("protocolName", text(tags::PROTOCOL_NAME));
    put("viewPosition", text(tags::VIEW_POSITION));
    put("codeMeaning", code_meaning(object));
    put("rows", text(tags::ROWS));
    put("columns", text(tags::COLUMNS));

    Ok(InstanceHeader {
        transfer_syntax: meta.transfer_syntax().trim_end_matches(['\0', ' ']).to_owned(),
        sop_class_uid,
        sop_instance_uid,
        study_uid,
        series_uid,
        patient_id: text(tags::PATIENT_ID).unwrap_or_default(),
        issuer: text(tags::ISSUER_OF_PATIENT_ID).unwrap_or_default(),
        patient_name: text(tags::PATIENT_NAME).unwrap_or_default(),
        birth_date: text(tags::PATIENT_BIRTH_DATE),
        sex: text(tags::PATIENT_SEX),
        accession_number: text(tags::ACCESSION_NUMBER),
        study_description: text(tags::STUDY_DESCRIPTION),
        study_date: text(tags::STUDY_DATE),
        study_time: text(tags::STUDY_TIME),
        referring_physician: text(tags::REFERRING_PHYSICIAN_NAME),
        modality: text(tags::MODALITY),
        series_number: text(tags::SERIES_NUMBER).and_then(|v| v.parse().ok()),
        series_description: text(tags::SERIES_DESCRIPTION),
        station_name: text(tags::STATION_NAME),
        body_part: text(tags::BODY_PART_EXAMINED),
        container_identifier: text(tags::CONTAINER_IDENTIFIER),
        instance_number: text(tags::INSTANCE_NUMBER).and_then(|v| v.parse().ok()),
        attributes,
    })
}

fn non_empty(s: &str) -> Option<String> {
    let s = s.trim_end_matches(['\0', ' ']).trim();
    (!s.is_empty()).then(|| s.to_owned())
}

/// A single-valued text attribute, trimmed; `None` when absent or empty.
pub fn text(object: &DefaultDicomObject, tag: Tag) -> Option<String> {
    let element = object.get(tag)?;
    let value = element.to_str().ok()?;
    non_empty(&value)
}

/// A multi-valued attribute as DICOM writes it (values joined by `\`).
fn multi_text(object: &DefaultDicomObject, tag: Tag) -> Option<String> {
    let element = object.get(tag)?;
    let values = element.to_multi_str().ok()?;
    let joined = values.iter().map(|v| v.trim()).collect::<Vec<_>>().join("\\");
    (!joined.is_empty()).then_some(joined)
}

/// Code Meaning of the first item of the Concept Name Code Sequence (structured documents) or,
/// for images, of the View Code Sequence.
fn code_meaning(object: &DefaultDicomObject) -> Option<String> {
    for sequence in [tags::CONCEPT_NAME_CODE_SEQUENCE, tags::VIEW_CODE_SEQUENCE] {
        let Some(element) = object.get(sequence) else { continue };
        let Some(items) = element.items() else { continue };
        if let Some(item) = items.first()
            && let Some(meaning) = item.get(tags::CODE_MEANING)
            && let Ok(value) = meaning.to_str()
            && let Some(v) = non_empty(&value)
        {
            return Some(v);
        }
    }
    None
}
