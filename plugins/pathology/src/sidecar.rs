//! The Part-10 sidecar the PACS generates for a slide it stores from metadata: the client's
//! attributes and specimen hierarchy, plus what the archive fixes (the custom SOP class,
//! Modality SM, Referenced File ID naming the slide file) and derives when not given (UIDs,
//! numbers, creation and content date/time), in Explicit VR Little Endian.

use dicom_core::VR;
use dicom_dictionary_std::tags;
use dicom_object::meta::FileMetaTableBuilder;
use dicom_object::{InMemDicomObject, Tag};
use wasmpacs_sdk::{Response, error};

use crate::elements::{read_text, sequence, text};
use crate::metadata::Metadata;
use crate::{attributes, hierarchy, uid};
use wasmpacs_sdk::clock::Stamp;

/// SOP Class UID of the PACS's slide sidecars (custom, from the seed).
pub const SOP_CLASS: &str = "1.2.826.0.1.3680043.2.619.20220407.1";
const MODALITY: &str = "SM";
const UTF8: &str = "ISO_IR 192";
const EXPLICIT_VR_LITTLE_ENDIAN: &str = "1.2.840.10008.1.2.1";
/// The wasmpacs implementation (the same as the host's DICOM listener announces).
const IMPLEMENTATION_CLASS_UID: &str = "2.25.329628117552550639259218041455443066116.1";
const IMPLEMENTATION_VERSION_NAME: &str = "WASMPACS_PATH_01";

/// A sidecar built but for its Study Instance UID, which may need the archive (see `finish`).
pub struct Draft {
    object: InMemDicomObject,
}

impl Draft {
    /// Builds the data set from the metadata; a 400 when an attribute is invalid or contradicts
    /// what the archive fixes. `file_name` is the slide file's (or MIRAX archive's) name.
    pub fn new(metadata: &Metadata, file_name: &str, now: &Stamp) -> Result<Self, Response> {
        let mut o = attributes::resolve(&metadata.attributes)?;
        let utf8 = !metadata.is_ascii() || !file_name.is_ascii();
        let fixed: [(Tag, &str, &str); 3] = [
            (tags::SOP_CLASS_UID, "SOPClassUID", SOP_CLASS),
            (tags::MODALITY, "Modality", MODALITY),
            (tags::REFERENCED_FILE_ID, "ReferencedFileID", file_name),
        ];
        let mut problems: Vec<String> = fixed
            .iter()
            .filter(|(tag, _, value)| read_text(&o, *tag).is_some_and(|given| given != *value))
            .map(|(_, keyword, value)| format!("`{keyword}` is always `{value}` here"))
            .collect();
        if read_text(&o, tags::SPECIFIC_CHARACTER_SET).is_some_and(|given| given != UTF8) {
            problems.push(format!("`SpecificCharacterSet` can only be `{UTF8}`: the sidecar's text is UTF-8"));
        }
        if !metadata.hierarchy.is_empty() && o.get(tags::SPECIMEN_DESCRIPTION_SEQUENCE).is_some() {
            problems
                .push("give the specimens either as `hierarchy` or as `SpecimenDescriptionSequence` attributes, not both".into());
        }
        if !problems.is_empty() {
            return Err(error(400, format!("invalid metadata attributes: {}", problems.join("; "))));
        }

        if utf8 || o.get(tags::SPECIFIC_CHARACTER_SET).is_some() {
            text(&mut o, tags::SPECIFIC_CHARACTER_SET, VR::CS, UTF8);
        }
        text(&mut o, tags::SOP_CLASS_UID, VR::UI, SOP_CLASS);
        text(&mut o, tags::MODALITY, VR::CS, MODALITY);
        text(&mut o, tags::REFERENCED_FILE_ID, VR::CS, file_name);
        if !metadata.hierarchy.is_empty() {
            let items = hierarchy::specimen_descriptions(&metadata.hierarchy, &metadata.accession_number);
            sequence(&mut o, tags::SPECIMEN_DESCRIPTION_SEQUENCE, items);
        }

        let container = &metadata.container_identifier;
        // The offset is stated only when every date and time is the archive's own (UTC).
        let client_times = [
            tags::INSTANCE_CREATION_DATE,
            tags::INSTANCE_CREATION_TIME,
            tags::CONTENT_DATE,
            tags::CONTENT_TIME,
            tags::TIMEZONE_OFFSET_FROM_UTC,
        ]
        .into_iter()
        .any(|tag| o.get(tag).is_some());
        let derived: [(Tag, VR, String); 8] = [
            (tags::SERIES_INSTANCE_UID, VR::UI, uid::series(container)),
            (tags::SOP_INSTANCE_UID, VR::UI, uid::sop_instance(container)),
            (tags::SERIES_NUMBER, VR::IS, "1".into()),
            (tags::INSTANCE_NUMBER, VR::IS, "1".into()),
            (tags::INSTANCE_CREATION_DATE, VR::DA, now.date.clone()),
            (tags::INSTANCE_CREATION_TIME, VR::TM, now.time.clone()),
            (tags::CONTENT_DATE, VR::DA, now.date.clone()),
            (tags::CONTENT_TIME, VR::TM, now.time.clone()),
        ];
        for (tag, vr, value) in derived {
            if read_text(&o, tag).is_none() {
                text(&mut o, tag, vr, &value);
            }
        }
        if !client_times {
            text(&mut o, tags::TIMEZONE_OFFSET_FROM_UTC, VR::SH, "+0000");
        }
        // Type 2 attributes of the Specimen Module: present, empty when there is nothing to say.
        for tag in [tags::ISSUER_OF_THE_CONTAINER_IDENTIFIER_SEQUENCE, tags::CONTAINER_TYPE_CODE_SEQUENCE] {
            if o.get(tag).is_none() {
                sequence(&mut o, tag, Vec::new());
            }
        }
        Ok(Draft { object: o })
    }

    /// True when the client gave no Study Instance UID.
    pub fn needs_study_uid(&self) -> bool {
        read_text(&self.object, tags::STUDY_INSTANCE_UID).is_none()
    }

    /// The Part-10 bytes, with `study_uid` when the client gave none.
    pub fn finish(mut self, study_uid: Option<&str>) -> Result<Vec<u8>, Response> {
        if let Some(study_uid) = study_uid.filter(|_| self.needs_study_uid()) {
            text(&mut self.object, tags::STUDY_INSTANCE_UID, VR::UI, study_uid);
        }
        let meta = FileMetaTableBuilder::new()
            .transfer_syntax(EXPLICIT_VR_LITTLE_ENDIAN)
            .implementation_class_uid(IMPLEMENTATION_CLASS_UID)
            .implementation_version_name(IMPLEMENTATION_VERSION_NAME);
        let file = self.object.with_meta(meta).map_err(|e| error(500, format!("cannot build the sidecar's file meta: {e}")))?;
        let mut bytes = Vec::with_capacity(4096);
        file.write_all(&mut bytes).map_err(|e| error(500, format!("cannot encode the sidecar: {e}")))?;
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect;
    use crate::slide::Kind;

    fn now() -> Stamp {
        Stamp { date: "20240301".into(), time: "101500.000000".into() }
    }

    fn metadata(json: &str) -> Metadata {
        Metadata::parse(json).unwrap_or_else(|r| panic!("{}", String::from_utf8_lossy(&r.body)))
    }

    fn read(bytes: &[u8]) -> dicom_object::DefaultDicomObject {
        dicom_object::OpenFileOptions::new().read_preamble(dicom_object::file::ReadPreamble::Always).from_reader(bytes).unwrap()
    }

    #[test]
    fn a_sidecar_from_the_seed_example_reads_back() {
        let m = metadata(
            r#"{"attributes": {"AccessionNumber": "I23-00102", "ContainerIdentifier": "I23-00102-A-1-1",
                "PatientBirthDate": "20240115", "PatientID": "Test", "PatientName": "Müller^Anna", "PatientSex": "M"},
               "hierarchy": {"specimen": {"alias": "B", "bodySite": "Colon", "identifier": "213", "procedure": "Excision"},
                             "slide": {"identifier": "222", "stain": {"code": "EE"}}}}"#,
        );
        let draft =
            Draft::new(&m, "I23-00102-A-1-1.svs", &now()).unwrap_or_else(|r| panic!("{}", String::from_utf8_lossy(&r.body)));
        assert!(draft.needs_study_uid());
        let study = uid::study("I23-00102");
        let bytes = draft.finish(Some(&study)).unwrap();
        let o = read(&bytes);
        let get = |tag| read_text(&o, tag).unwrap();
        assert_eq!(get(tags::SPECIFIC_CHARACTER_SET), "ISO_IR 192");
        assert_eq!(get(tags::PATIENT_NAME), "Müller^Anna");
        assert_eq!(get(tags::SOP_CLASS_UID), SOP_CLASS);
        assert_eq!(get(tags::MODALITY), "SM");
        assert_eq!(get(tags::STUDY_INSTANCE_UID), study);
        assert_eq!(get(tags::SERIES_INSTANCE_UID), uid::series("I23-00102-A-1-1"));
        assert_eq!(get(tags::SOP_INSTANCE_UID), uid::sop_instance("I23-00102-A-1-1"));
        assert_eq!(get(tags::REFERENCED_FILE_ID), "I23-00102-A-1-1.svs");
        assert_eq!(get(tags::CONTENT_DATE), "20240301");
        assert_eq!(o.meta().media_storage_sop_class_uid(), SOP_CLASS);
        let specimens = o.element(tags::SPECIMEN_DESCRIPTION_SEQUENCE).unwrap().items().unwrap();
        assert_eq!(specimens.len(), 2);
        assert_eq!(read_text(&specimens[0], tags::SPECIMEN_IDENTIFIER).unwrap(), "213");
        assert_eq!(read_text(&specimens[0], tags::SPECIMEN_SHORT_DESCRIPTION).unwrap(), "B");
        let site = specimens[0].element(tags::PRIMARY_ANATOMIC_STRUCTURE_SEQUENCE).unwrap().items().unwrap();
        assert_eq!(read_text(&site[0], tags::CODE_MEANING).unwrap(), "Colon");
        let steps = specimens[1].element(tags::SPECIMEN_PREPARATION_SEQUENCE).unwrap().items().unwrap()[0]
            .element(tags::SPECIMEN_PREPARATION_STEP_CONTENT_ITEM_SEQUENCE)
            .unwrap()
            .items()
            .unwrap();
        assert_eq!(read_text(&steps[2], tags::TEXT_VALUE).unwrap(), "EE");
        let sidecar = inspect::check(&bytes, "i23-00102-a-1-1.SVS", Kind::Single)
            .unwrap_or_else(|r| panic!("{}", String::from_utf8_lossy(&r.body)));
        assert_eq!(sidecar.container_identifier.as_deref(), Some("I23-00102-A-1-1"));
        let refused = inspect::check(&bytes, "I23-00102-A-1-1.svs", Kind::Mirax).unwrap_err();
        assert!(String::from_utf8_lossy(&refused.body).contains("not the slide type"));
        let refused = inspect::check(&bytes, "other.svs", Kind::Single).unwrap_err();
        assert!(String::from_utf8_lossy(&refused.body).contains("does not reference the sent file"));
    }

    #[test]
    fn given_values_win_and_fixed_ones_are_guarded() {
        let m = metadata(
            r#"{"attributes": {"AccessionNumber": "A", "ContainerIdentifier": "C", "PatientID": "P",
                "StudyInstanceUID": "1.2.3", "SeriesNumber": 7, "Modality": "SM"}}"#,
        );
        let draft = Draft::new(&m, "c.zip", &now()).unwrap_or_else(|r| panic!("{}", String::from_utf8_lossy(&r.body)));
        assert!(!draft.needs_study_uid());
        let o = read(&draft.finish(Some("9.9")).unwrap());
        assert_eq!(read_text(&o, tags::STUDY_INSTANCE_UID).unwrap(), "1.2.3");
        assert_eq!(read_text(&o, tags::SERIES_NUMBER).unwrap(), "7");
        assert!(o.get(tags::SPECIFIC_CHARACTER_SET).is_none());
        let m = metadata(
            r#"{"attributes": {"AccessionNumber": "A", "ContainerIdentifier": "C", "PatientID": "P", "Modality": "CT"}}"#,
        );
        let refused = Draft::new(&m, "c.svs", &now()).err().unwrap();
        assert_eq!(refused.status, 400);
        assert!(String::from_utf8_lossy(&refused.body).contains("`Modality` is always `SM`"));
    }
}
