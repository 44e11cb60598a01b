//! The metadata's attributes as DICOM elements: each key is a keyword of the standard data
//! dictionary, or a `Sequence/Nested` path (any depth) whose every step but the last is a
//! sequence; all paths into one sequence fill its single item. Values are written as given, in
//! the form the element's VR takes (text, binary numbers, tags).

use std::collections::BTreeMap;

use dicom_core::dictionary::{DataDictionary, TagRange};
use dicom_core::value::{C, DataSetSequence};
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::StandardDataDictionary;
use dicom_object::InMemDicomObject;
use wasmpacs_sdk::{Response, error, is_date};

use crate::uid;

/// Deepest sequence nesting a path may reach.
const MAX_DEPTH: usize = 8;

/// The data set the attributes describe; a 400 naming every unknown keyword and every value
/// that does not fit its element.
pub fn resolve(given: &[(String, Vec<String>)]) -> Result<InMemDicomObject, Response> {
    let mut root = Node::default();
    let mut unknown = Vec::new();
    let mut problems = Vec::new();
    for (path, values) in given {
        match root.insert(path, values) {
            Ok(()) => {}
            Err(Problem::Unknown(keyword)) => unknown.push(format!("`{keyword}`")),
            Err(Problem::Invalid(message)) => problems.push(message),
        }
    }
    if !unknown.is_empty() {
        problems.insert(0, format!("not DICOM keywords: {}", unknown.join(", ")));
    }
    if !problems.is_empty() {
        return Err(error(400, format!("invalid metadata attributes: {}", problems.join("; "))));
    }
    Ok(root.into_object())
}

enum Problem {
    /// A keyword the standard dictionary does not know.
    Unknown(String),
    Invalid(String),
}

/// A data set being filled: elements by tag, a sequence holding its one item.
#[derive(Default)]
struct Node(BTreeMap<Tag, Entry>);

enum Entry {
    Value(VR, PrimitiveValue),
    Sequence(Node),
}

impl Node {
    fn insert(&mut self, path: &str, values: &[String]) -> Result<(), Problem> {
        let steps: Vec<&str> = path.split('/').collect();
        if steps.iter().any(|s| s.is_empty()) {
            return Err(Problem::Invalid(format!("`{path}` is not a keyword or a `Sequence/Keyword` path")));
        }
        if steps.len() > MAX_DEPTH + 1 {
            return Err(Problem::Invalid(format!("`{path}` nests sequences deeper than {MAX_DEPTH} levels")));
        }
        let (leaf, sequences) = steps.split_last().expect("split yields at least one step");
        let mut node = self;
        for keyword in sequences {
            let (tag, vr) = lookup(keyword, path)?;
            if vr != VR::SQ {
                return Err(Problem::Invalid(format!("`{keyword}` in `{path}` is not a sequence")));
            }
            node = match node.0.entry(tag).or_insert_with(|| Entry::Sequence(Node::default())) {
                Entry::Sequence(item) => item,
                Entry::Value(..) => {
                    return Err(Problem::Invalid(format!("`{keyword}` in `{path}` is given a value too")));
                }
            };
        }
        let (tag, vr) = lookup(leaf, path)?;
        if vr == VR::SQ {
            return Err(Problem::Invalid(format!("`{path}` is a sequence: give the attributes of its item as `{path}/Keyword`")));
        }
        let value = primitive(path, vr, values).map_err(Problem::Invalid)?;
        node.0.insert(tag, Entry::Value(vr, value));
        Ok(())
    }

    fn into_object(self) -> InMemDicomObject {
        let mut object = InMemDicomObject::new_empty();
        for (tag, entry) in self.0 {
            object.put(match entry {
                Entry::Value(vr, value) => DataElement::new(tag, vr, value),
                Entry::Sequence(item) => DataElement::new(tag, VR::SQ, DataSetSequence::from(vec![item.into_object()])),
            });
        }
        object
    }
}

/// The tag and VR of a keyword usable in a data set (not file meta, not a repeating group).
/// `...AET` is read as `...AETitle`, as the seed's own example writes `ScheduledStationAET`.
fn lookup(keyword: &str, path: &str) -> Result<(Tag, VR), Problem> {
    let dictionary = StandardDataDictionary;
    let entry = dictionary
        .by_name(keyword)
        .or_else(|| keyword.ends_with("AET").then(|| dictionary.by_name(&format!("{keyword}itle"))).flatten())
        .ok_or_else(|| Problem::Unknown(keyword.to_owned()))?;
    let TagRange::Single(tag) = entry.tag else {
        return Err(Problem::Invalid(format!("`{keyword}` in `{path}` is a repeating-group attribute, not supported here")));
    };
    if matches!(tag.group(), 0x0000 | 0x0002 | 0xFFFE) || tag.element() == 0 {
        return Err(Problem::Invalid(format!("`{keyword}` in `{path}` is not a data set attribute")));
    }
    let vr = entry.vr.exact().ok_or_else(|| {
        Problem::Invalid(format!("`{keyword}` in `{path}` holds pixel or overlay data, which the metadata cannot give"))
    })?;
    Ok((tag, vr))
}

/// The values as the element's VR holds them. All-blank values make an empty element.
fn primitive(path: &str, vr: VR, values: &[String]) -> Result<PrimitiveValue, String> {
    if values.iter().all(|v| v.trim().is_empty()) {
        return Ok(PrimitiveValue::Empty);
    }
    let texts = || PrimitiveValue::Strs(values.iter().cloned().collect());
    let each = |check: &dyn Fn(&str) -> bool, what: &str| -> Result<(), String> {
        match values.iter().find(|v| !check(v.trim())) {
            Some(bad) => Err(format!("`{path}` must be {what}, not `{bad}`")),
            None => Ok(()),
        }
    };
    Ok(match vr {
        VR::AE | VR::AS | VR::CS | VR::DT | VR::LO | VR::LT | VR::PN | VR::SH | VR::ST | VR::TM | VR::UC | VR::UR | VR::UT => {
            texts()
        }
        VR::DA => {
            each(&|v| is_date(v), "a date YYYYMMDD")?;
            PrimitiveValue::Strs(values.iter().map(|v| v.trim().to_owned()).collect())
        }
        VR::IS => {
            each(&|v| v.parse::<i32>().is_ok(), "an integer")?;
            texts()
        }
        VR::DS => {
            each(&is_decimal, "a decimal number")?;
            texts()
        }
        VR::UI => {
            each(&uid::is_valid, "a UID")?;
            PrimitiveValue::Strs(values.iter().map(|v| v.trim().to_owned()).collect())
        }
        VR::US => PrimitiveValue::U16(numbers(path, values)?),
        VR::SS => PrimitiveValue::I16(numbers(path, values)?),
        VR::UL => PrimitiveValue::U32(numbers(path, values)?),
        VR::SL => PrimitiveValue::I32(numbers(path, values)?),
        VR::UV => PrimitiveValue::U64(numbers(path, values)?),
        VR::SV => PrimitiveValue::I64(numbers(path, values)?),
        VR::FL => PrimitiveValue::F32(finite(path, numbers(path, values)?, f32::is_finite)?),
        VR::FD => PrimitiveValue::F64(finite(path, numbers(path, values)?, f64::is_finite)?),
        VR::AT => PrimitiveValue::Tags(values.iter().map(|v| tag(path, v.trim())).collect::<Result<_, _>>()?),
        other => return Err(format!("`{path}` has VR {other:?}, which the metadata cannot give")),
    })
}

/// Every value parsed as a number of the element's binary type.
fn numbers<T: std::str::FromStr>(path: &str, values: &[String]) -> Result<C<T>, String> {
    values
        .iter()
        .map(|v| v.trim().parse::<T>().map_err(|_| format!("`{path}` must be a number of its VR's range, not `{v}`")))
        .collect()
}

fn finite<T: Copy>(path: &str, values: C<T>, is_finite: fn(T) -> bool) -> Result<C<T>, String> {
    if values.iter().all(|v| is_finite(*v)) { Ok(values) } else { Err(format!("`{path}` must be a finite number")) }
}

/// An attribute tag as `GGGGEEEE` (hexadecimal).
fn tag(path: &str, text: &str) -> Result<Tag, String> {
    let parse = |hex: &str| u16::from_str_radix(hex, 16).ok();
    match (text.len(), text.get(..4).and_then(parse), text.get(4..).and_then(parse)) {
        (8, Some(group), Some(element)) if text.bytes().all(|b| b.is_ascii_hexdigit()) => Ok(Tag(group, element)),
        _ => Err(format!("`{path}` must be a tag as 8 hexadecimal digits GGGGEEEE, not `{text}`")),
    }
}

/// A DS value: a finite decimal number, digits with an optional sign, point and exponent.
fn is_decimal(text: &str) -> bool {
    text.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.' | b'e' | b'E'))
        && text.parse::<f64>().is_ok_and(f64::is_finite)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dicom_core::header::HasLength;
    use dicom_dictionary_std::tags;

    fn given(pairs: &[(&str, &[&str])]) -> Vec<(String, Vec<String>)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect())).collect()
    }

    fn message(r: Response) -> String {
        String::from_utf8_lossy(&r.body).into_owned()
    }

    #[test]
    fn keywords_paths_and_vrs() {
        let o = resolve(&given(&[
            ("PatientID", &["P1"]),
            ("ImageType", &["ORIGINAL", "PRIMARY"]),
            ("Rows", &["512"]),
            ("PatientBirthDate", &["20240115"]),
            ("ScheduledProcedureStepSequence/ScheduledStationAET", &["SCANNER"]),
            ("ScheduledProcedureStepSequence/ScheduledProtocolCodeSequence/CodeValue", &["X1"]),
            ("ScheduledProcedureStepSequence/Modality", &["SM"]),
        ]))
        .unwrap_or_else(|r| panic!("{}", message(r)));
        assert_eq!(o.element(tags::PATIENT_ID).unwrap().to_str().unwrap(), "P1");
        assert_eq!(o.element(tags::IMAGE_TYPE).unwrap().to_multi_str().unwrap().len(), 2);
        assert_eq!(o.element(tags::ROWS).unwrap().to_int::<u16>().unwrap(), 512);
        let items = o.element(tags::SCHEDULED_PROCEDURE_STEP_SEQUENCE).unwrap().items().unwrap();
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].element(tags::MODALITY).unwrap().to_str().unwrap(), "SM");
        assert_eq!(items[0].element(tags::SCHEDULED_STATION_AE_TITLE).unwrap().to_str().unwrap(), "SCANNER");
        let codes = items[0].element(tags::SCHEDULED_PROTOCOL_CODE_SEQUENCE).unwrap().items().unwrap();
        assert_eq!(codes[0].element(tags::CODE_VALUE).unwrap().to_str().unwrap(), "X1");
    }

    #[test]
    fn bad_keywords_and_values_are_named() {
        let m = message(
            resolve(&given(&[
                ("PatientIdentifier", &["x"]),
                ("PatientBirthDate", &["2024-01-15"]),
                ("PatientID/Modality", &["x"]),
                ("ScheduledProcedureStepSequence", &["x"]),
                ("Rows", &["-1"]),
                ("PixelData", &["x"]),
                ("TransferSyntaxUID", &["1.2"]),
                ("SeriesNumber", &["one"]),
                ("PatientWeight", &["inf"]),
                ("StudyInstanceUID", &["1.02"]),
            ]))
            .unwrap_err(),
        );
        for part in [
            "not DICOM keywords: `PatientIdentifier`",
            "`PatientBirthDate` must be a date",
            "`PatientID` in `PatientID/Modality` is not a sequence",
            "`ScheduledProcedureStepSequence` is a sequence",
            "`Rows` must be a number",
            "`PixelData`",
            "`TransferSyntaxUID` in",
            "`SeriesNumber` must be an integer",
            "`PatientWeight` must be a decimal",
            "`StudyInstanceUID` must be a UID",
        ] {
            assert!(m.contains(part), "{part} not in {m}");
        }
    }

    #[test]
    fn blank_values_are_empty_elements() {
        let o = resolve(&given(&[("PatientBirthDate", &[""]), ("PatientSex", &[])])).unwrap_or_else(|r| panic!("{}", message(r)));
        assert!(o.element(tags::PATIENT_BIRTH_DATE).unwrap().is_empty());
        assert!(o.element(tags::PATIENT_SEX).unwrap().is_empty());
    }
}
