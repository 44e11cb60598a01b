//! The metadata's specimen hierarchy as the Specimen Module's Specimen Description Sequence
//! (PS3.3 C.7.6.22): one item per level given, in the order specimen, block, slide.
//!
//! Each item carries the level's identifier (Specimen Identifier), a derived Specimen UID, its
//! alias (Specimen Short Description) and procedure (Specimen Detailed Description). The
//! specimen's body site is a Primary Anatomic Structure item holding only a Code Meaning: the
//! client gives free text, no code. The slide's stain is a staining preparation step
//! (TID 8001/8004): Specimen Identifier, Processing type = Staining, and the stain code as the
//! TEXT form of "Using substance", since the client's code comes without a coding scheme.

use dicom_core::VR;
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;

use crate::elements::{Code, code, sequence, text};
use crate::metadata::Level;
use crate::uid;

const SPECIMEN_IDENTIFIER: Code = Code { value: "121041", scheme: "DCM", meaning: "Specimen Identifier" };
const PROCESSING_TYPE: Code = Code { value: "111701", scheme: "DCM", meaning: "Processing type" };
const STAINING: Code = Code { value: "127790008", scheme: "SCT", meaning: "Staining" };
const USING_SUBSTANCE: Code = Code { value: "424361007", scheme: "SCT", meaning: "Using substance" };

/// The items of the Specimen Description Sequence. `accession_number` scopes the Specimen UIDs
/// to the case.
pub fn specimen_descriptions(levels: &[Level], accession_number: &str) -> Vec<InMemDicomObject> {
    levels.iter().map(|level| description(level, accession_number)).collect()
}

fn description(level: &Level, accession_number: &str) -> InMemDicomObject {
    let mut item = InMemDicomObject::new_empty();
    text(&mut item, tags::SPECIMEN_IDENTIFIER, VR::LO, &level.identifier);
    sequence(&mut item, tags::ISSUER_OF_THE_SPECIMEN_IDENTIFIER_SEQUENCE, Vec::new());
    text(&mut item, tags::SPECIMEN_UID, VR::UI, &uid::specimen(accession_number, level.name, &level.identifier));
    if let Some(alias) = &level.alias {
        text(&mut item, tags::SPECIMEN_SHORT_DESCRIPTION, VR::LO, alias);
    }
    if let Some(procedure) = &level.procedure {
        text(&mut item, tags::SPECIMEN_DETAILED_DESCRIPTION, VR::UT, procedure);
    }
    let anatomy = level.body_site.iter().map(|site| {
        let mut structure = InMemDicomObject::new_empty();
        text(&mut structure, tags::CODE_MEANING, VR::LO, site);
        structure
    });
    sequence(&mut item, tags::PRIMARY_ANATOMIC_STRUCTURE_SEQUENCE, anatomy.collect());
    let preparation = level.stain.iter().map(|stain| staining(&level.identifier, stain));
    sequence(&mut item, tags::SPECIMEN_PREPARATION_SEQUENCE, preparation.collect());
    item
}

/// A Specimen Preparation Sequence item: the staining step.
fn staining(identifier: &str, stain: &str) -> InMemDicomObject {
    let mut steps = Vec::with_capacity(3);
    let mut identified = content_item("TEXT", &SPECIMEN_IDENTIFIER);
    text(&mut identified, tags::TEXT_VALUE, VR::UT, identifier);
    steps.push(identified);
    let mut processing = content_item("CODE", &PROCESSING_TYPE);
    sequence(&mut processing, tags::CONCEPT_CODE_SEQUENCE, vec![code(&STAINING)]);
    steps.push(processing);
    let mut substance = content_item("TEXT", &USING_SUBSTANCE);
    text(&mut substance, tags::TEXT_VALUE, VR::UT, stain);
    steps.push(substance);
    let mut item = InMemDicomObject::new_empty();
    sequence(&mut item, tags::SPECIMEN_PREPARATION_STEP_CONTENT_ITEM_SEQUENCE, steps);
    item
}

fn content_item(value_type: &str, name: &Code) -> InMemDicomObject {
    let mut item = InMemDicomObject::new_empty();
    text(&mut item, tags::VALUE_TYPE, VR::CS, value_type);
    sequence(&mut item, tags::CONCEPT_NAME_CODE_SEQUENCE, vec![code(name)]);
    item
}
