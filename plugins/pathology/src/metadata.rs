//! The `metadata` part: a JSON object with the slide's DICOM `attributes` (by keyword, nested
//! ones as `Sequence/Keyword` paths) and its optional specimen `hierarchy`. Parsed and checked
//! here as JSON; `attributes` turns the keyword paths into DICOM elements.

use serde_json::{Map, Value};
use wasmpacs_sdk::{Response, error};

/// The attributes every slide must be given.
const MANDATORY: [&str; 3] = ["PatientID", "AccessionNumber", "ContainerIdentifier"];

/// The parsed metadata.
pub struct Metadata {
    /// Keyword paths and their values, as given (an empty list for `null` or `[]`).
    pub attributes: Vec<(String, Vec<String>)>,
    /// Two of the mandatory attributes (PatientID is the third), trimmed: UIDs derive from them.
    pub accession_number: String,
    pub container_identifier: String,
    /// The levels present, in the order specimen, block, slide.
    pub hierarchy: Vec<Level>,
}

/// One level of the specimen hierarchy.
pub struct Level {
    /// "specimen", "block" or "slide".
    pub name: &'static str,
    pub identifier: String,
    pub alias: Option<String>,
    pub procedure: Option<String>,
    /// Free text; read on the specimen level only.
    pub body_site: Option<String>,
    /// The stain's code; read on the slide level only.
    pub stain: Option<String>,
}

impl Metadata {
    /// Parses and checks the part's text; a 400 that names every problem found.
    pub fn parse(text: &str) -> Result<Self, Response> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let root = match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(root)) => root,
            Ok(_) => return Err(error(400, "the `metadata` part must be a JSON object")),
            Err(e) => return Err(error(400, format!("the `metadata` part is not valid JSON: {e}"))),
        };
        let Some(Value::Object(given)) = root.get("attributes") else {
            return Err(error(400, "the metadata must hold an `attributes` object"));
        };
        let mut problems = Vec::new();
        let mut attributes = Vec::with_capacity(given.len());
        for (path, value) in given {
            match values(value) {
                Some(values) => attributes.push((path.clone(), values)),
                None => problems.push(format!("`{path}` must be a string, a number, null or an array of strings and numbers")),
            }
        }
        let single = |keyword: &str| -> Option<String> {
            match attributes.iter().find(|(path, _)| path == keyword).map(|(_, v)| v.as_slice()) {
                Some([value]) if !value.trim().is_empty() => Some(value.trim().to_owned()),
                _ => None,
            }
        };
        let mandatory = MANDATORY.map(single);
        let missing: Vec<&str> = MANDATORY.iter().zip(&mandatory).filter(|(_, v)| v.is_none()).map(|(k, _)| *k).collect();
        if !missing.is_empty() {
            problems.insert(0, format!("the attributes must hold a non-empty, single-valued {}", missing.join(", ")));
        }
        let hierarchy = hierarchy(root.get("hierarchy"), &mut problems);
        match mandatory {
            [Some(_), Some(accession_number), Some(container_identifier)] if problems.is_empty() => {
                Ok(Metadata { attributes, accession_number, container_identifier, hierarchy })
            }
            _ => Err(error(400, format!("invalid metadata: {}", problems.join("; ")))),
        }
    }

    /// True when every text given is ASCII (else the sidecar declares UTF-8).
    pub fn is_ascii(&self) -> bool {
        self.attributes.iter().all(|(_, values)| values.iter().all(|v| v.is_ascii()))
            && self.hierarchy.iter().all(|level| {
                [
                    Some(&level.identifier),
                    level.alias.as_ref(),
                    level.procedure.as_ref(),
                    level.body_site.as_ref(),
                    level.stain.as_ref(),
                ]
                .into_iter()
                .flatten()
                .all(|t| t.is_ascii())
            })
    }
}

/// A JSON value as DICOM values: a string, a number in decimal, an array of those; `null` is
/// no value. `None` for anything else.
fn values(value: &Value) -> Option<Vec<String>> {
    match value {
        Value::Null => Some(Vec::new()),
        Value::Array(items) => items.iter().map(scalar).collect(),
        other => scalar(other).map(|v| vec![v]),
    }
}

fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The `hierarchy` object's levels; problems are added to `problems`.
fn hierarchy(value: Option<&Value>, problems: &mut Vec<String>) -> Vec<Level> {
    let object = match value {
        None | Some(Value::Null) => return Vec::new(),
        Some(Value::Object(object)) => object,
        Some(_) => {
            problems.push("`hierarchy` must be an object".to_owned());
            return Vec::new();
        }
    };
    let mut levels = Vec::new();
    for name in ["specimen", "block", "slide"] {
        let level = match object.get(name) {
            None | Some(Value::Null) => continue,
            Some(Value::Object(level)) => level,
            Some(_) => {
                problems.push(format!("`hierarchy.{name}` must be an object"));
                continue;
            }
        };
        let mut text = |key: &str| optional_text(level, &format!("hierarchy.{name}.{key}"), key, problems);
        let identifier = text("identifier");
        let alias = text("alias");
        let procedure = text("procedure");
        let body_site = if name == "specimen" { text("bodySite") } else { None };
        let stain = if name == "slide" { stain(level.get("stain"), problems) } else { None };
        match identifier {
            Some(identifier) => levels.push(Level { name, identifier, alias, procedure, body_site, stain }),
            None => problems.push(format!("`hierarchy.{name}.identifier` is required")),
        }
    }
    levels
}

/// The slide's stain: `{"code": ...}`.
fn stain(value: Option<&Value>, problems: &mut Vec<String>) -> Option<String> {
    match value {
        None | Some(Value::Null) => None,
        Some(Value::Object(stain)) => {
            let code = optional_text(stain, "hierarchy.slide.stain.code", "code", problems);
            if code.is_none() {
                problems.push("`hierarchy.slide.stain.code` is required when a stain is given".to_owned());
            }
            code
        }
        Some(_) => {
            problems.push("`hierarchy.slide.stain` must be an object".to_owned());
            None
        }
    }
}

/// A trimmed, non-blank string (or number) field; `None` when absent, null or blank.
fn optional_text(object: &Map<String, Value>, label: &str, key: &str, problems: &mut Vec<String>) -> Option<String> {
    match object.get(key) {
        None | Some(Value::Null) => None,
        Some(value) => match scalar(value) {
            Some(text) if text.trim().is_empty() => None,
            Some(text) => Some(text.trim().to_owned()),
            None => {
                problems.push(format!("`{label}` must be a string"));
                None
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = r#"{
        "attributes": {
            "AccessionNumber": "I23-00102", "ContainerIdentifier": "I23-00102-A-1-1",
            "PatientBirthDate": "20240115", "PatientID": "Test", "PatientName": "TEST^TEST",
            "PatientSex": "M", "StudyDescription": "Test"
        },
        "hierarchy": {
            "specimen": {"alias": "B", "bodySite": "Specimen B Body Site", "identifier": "213", "procedure": "Specimen procedure"},
            "block": {"alias": "B-1", "identifier": "456", "procedure": "Block procedure"},
            "slide": {"alias": "B-1-1", "identifier": "222", "procedure": "Slide procedure", "stain": {"code": "EE"}}
        }
    }"#;

    #[test]
    fn the_seed_example_parses() {
        let m = Metadata::parse(SEED).unwrap_or_else(|r| panic!("{}", String::from_utf8_lossy(&r.body)));
        assert_eq!(m.accession_number, "I23-00102");
        assert_eq!(m.container_identifier, "I23-00102-A-1-1");
        assert_eq!(m.hierarchy.iter().map(|l| l.name).collect::<Vec<_>>(), ["specimen", "block", "slide"]);
        assert_eq!(m.hierarchy[0].body_site.as_deref(), Some("Specimen B Body Site"));
        assert_eq!(m.hierarchy[2].stain.as_deref(), Some("EE"));
        assert!(m.is_ascii());
    }

    #[test]
    fn problems_are_named() {
        let answer = |text: &str| match Metadata::parse(text) {
            Ok(_) => panic!("accepted {text}"),
            Err(r) => (r.status, String::from_utf8_lossy(&r.body).into_owned()),
        };
        let (status, body) = answer(r#"{"attributes": {"PatientID": " ", "AccessionNumber": 12}}"#);
        assert_eq!(status, 400);
        assert!(body.contains("PatientID, ContainerIdentifier"), "{body}");
        let (_, body) = answer(
            r#"{"attributes": {"PatientID": "p", "AccessionNumber": "a", "ContainerIdentifier": "c", "X": {}},
                "hierarchy": {"block": {"alias": "x"}}}"#,
        );
        assert!(body.contains("`X`") && body.contains("hierarchy.block.identifier"), "{body}");
        assert_eq!(answer("[1]").0, 400);
        assert_eq!(answer("{").0, 400);
    }

    #[test]
    fn numbers_and_arrays_become_texts() {
        let m = Metadata::parse(
            r#"{"attributes": {"PatientID": 42, "AccessionNumber": "a", "ContainerIdentifier": "c",
                "ImageType": ["ORIGINAL", "PRIMARY"], "PatientWeight": 70.5, "StudyID": null}}"#,
        )
        .unwrap_or_else(|r| panic!("{}", String::from_utf8_lossy(&r.body)));
        let get = |k: &str| m.attributes.iter().find(|(p, _)| p == k).map(|(_, v)| v.clone()).unwrap();
        assert_eq!(get("PatientID"), ["42"]);
        assert_eq!(get("ImageType"), ["ORIGINAL", "PRIMARY"]);
        assert_eq!(get("PatientWeight"), ["70.5"]);
        assert!(get("StudyID").is_empty());
    }
}
