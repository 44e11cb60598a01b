//! Small builders of data set content shared by the sidecar and the specimen hierarchy: text
//! elements, sequences and coded concepts.

use dicom_core::value::DataSetSequence;
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;

/// A coded concept: (Code Value, Coding Scheme Designator, Code Meaning).
pub struct Code {
    pub value: &'static str,
    pub scheme: &'static str,
    pub meaning: &'static str,
}

/// Puts a text element (replacing one with the same tag).
pub fn text(o: &mut InMemDicomObject, tag: Tag, vr: VR, value: &str) {
    o.put(DataElement::new(tag, vr, PrimitiveValue::from(value)));
}

/// Puts a sequence; an empty one (a Type 2 sequence with nothing to say) when `items` is empty.
pub fn sequence(o: &mut InMemDicomObject, tag: Tag, items: Vec<InMemDicomObject>) {
    let value = if items.is_empty() { DataSetSequence::empty() } else { DataSetSequence::from(items) };
    o.put(DataElement::new(tag, VR::SQ, value));
}

/// A code sequence item.
pub fn code(concept: &Code) -> InMemDicomObject {
    let mut item = InMemDicomObject::new_empty();
    text(&mut item, tags::CODE_VALUE, VR::SH, concept.value);
    text(&mut item, tags::CODING_SCHEME_DESIGNATOR, VR::SH, concept.scheme);
    text(&mut item, tags::CODE_MEANING, VR::LO, concept.meaning);
    item
}

/// The trimmed text of an element; `None` when absent, empty or not text.
pub fn read_text(o: &InMemDicomObject, tag: Tag) -> Option<String> {
    let value = o.get(tag)?.to_str().ok()?;
    let value = value.trim_matches(|c: char| c == '\0' || c.is_whitespace());
    (!value.is_empty()).then(|| value.to_owned())
}
