//! A sidecar the client sends instead of metadata (one the PACS generated before): it must be a
//! Part-10 file of the slide sidecar class that identifies the patient, study, series and
//! instance, and references the sent file, by name, as the same kind of slide. It is stored as
//! sent; this only checks it.

use dicom_dictionary_std::tags;
use dicom_object::OpenFileOptions;
use dicom_object::file::ReadPreamble;
use wasmpacs_sdk::{Response, error};

use crate::elements::read_text;
use crate::sidecar::SOP_CLASS;
use crate::slide::Kind;

/// What the answer needs from an accepted sidecar.
#[derive(Debug)]
pub struct Sidecar {
    pub container_identifier: Option<String>,
}

/// Checks `bytes` against the `file` part named `file_name`, of kind `kind`; a 400 saying what
/// is wrong.
pub fn check(bytes: &[u8], file_name: &str, kind: Kind) -> Result<Sidecar, Response> {
    if bytes.get(128..132) != Some(b"DICM".as_slice()) {
        return Err(error(400, "the sidecar is not a DICOM file (no DICM prefix after the 128-byte preamble)"));
    }
    let object = OpenFileOptions::new()
        .read_preamble(ReadPreamble::Always)
        .from_reader(bytes)
        .map_err(|e| error(400, format!("the sidecar is not a DICOM file: {e}")))?;
    let sop_class = read_text(&object, tags::SOP_CLASS_UID).unwrap_or_default();
    if sop_class != SOP_CLASS {
        return Err(error(
            400,
            format!("the sidecar's SOP Class UID is `{sop_class}`, not the slide sidecar class `{SOP_CLASS}`"),
        ));
    }
    let required = [
        (tags::PATIENT_ID, "PatientID"),
        (tags::STUDY_INSTANCE_UID, "StudyInstanceUID"),
        (tags::SERIES_INSTANCE_UID, "SeriesInstanceUID"),
        (tags::SOP_INSTANCE_UID, "SOPInstanceUID"),
    ];
    let missing: Vec<&str> = required.iter().filter(|(tag, _)| read_text(&object, *tag).is_none()).map(|(_, k)| *k).collect();
    if !missing.is_empty() {
        return Err(error(400, format!("the sidecar lacks {}", missing.join(", "))));
    }
    let referenced = referenced_name(&object)
        .ok_or_else(|| error(400, "the sidecar does not reference the sent file: it has no ReferencedFileID"))?;
    if !referenced.eq_ignore_ascii_case(file_name) {
        return Err(error(
            400,
            format!("the sidecar does not reference the sent file: it references `{referenced}`, the file part is `{file_name}`"),
        ));
    }
    let described = Kind::of_referenced(&referenced);
    if described != kind {
        return Err(error(
            400,
            format!(
                "the uploaded file is not the slide type the sidecar describes: the sidecar describes a {} (`{referenced}`), the file part is a {}",
                described.label(),
                kind.label()
            ),
        ));
    }
    Ok(Sidecar { container_identifier: read_text(&object, tags::CONTAINER_IDENTIFIER) })
}

/// The file name in Referenced File ID: its last component, without folders.
fn referenced_name(object: &dicom_object::InMemDicomObject) -> Option<String> {
    let components = object.get(tags::REFERENCED_FILE_ID)?.to_multi_str().ok()?;
    let last =
        components.iter().rev().map(|c| c.trim_matches(|c: char| c == '\0' || c.is_whitespace())).find(|c| !c.is_empty())?;
    let name = last.rsplit(['/', '\\']).next().unwrap_or(last).trim();
    (!name.is_empty()).then(|| name.to_owned())
}
