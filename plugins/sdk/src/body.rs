//! JSON request bodies: parse an object, read typed fields, and report every missing or
//! malformed field in one 400 answer.

use serde_json::{Map, Value};

use crate::{Request, Response, error};

/// A request body that is a JSON object.
pub struct JsonBody(Map<String, Value>);

impl JsonBody {
    /// Parses the body; a 400 when it is empty, not JSON, or not an object.
    pub fn parse(request: &Request) -> Result<Self, Response> {
        if request.body.iter().all(u8::is_ascii_whitespace) {
            return Err(error(400, "the request body is empty; a JSON object is expected"));
        }
        match serde_json::from_slice::<Value>(&request.body) {
            Ok(Value::Object(map)) => Ok(JsonBody(map)),
            Ok(_) => Err(error(400, "the request body must be a JSON object")),
            Err(e) => Err(error(400, format!("the request body is not valid JSON: {e}"))),
        }
    }

    /// The raw value of a field.
    pub fn value(&self, key: &str) -> Option<&Value> {
        self.0.get(key)
    }

    /// A text field, trimmed; `None` when absent, null or blank.
    pub fn text(&self, key: &str) -> Option<String> {
        match self.0.get(key) {
            Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_owned()),
            _ => None,
        }
    }

    /// Checks that each of `mandatory` is a non-blank string and that every other present field
    /// in `optional` is a string (or null); one 400 lists every problem.
    pub fn check(&self, mandatory: &[&str], optional: &[&str]) -> Result<(), Response> {
        let mut missing = Vec::new();
        let mut malformed = Vec::new();
        for key in mandatory {
            match self.0.get(*key) {
                Some(Value::String(s)) if !s.trim().is_empty() => {}
                Some(Value::String(_)) | Some(Value::Null) | None => missing.push(*key),
                Some(_) => malformed.push(format!("`{key}` must be a string")),
            }
        }
        for key in optional {
            match self.0.get(*key) {
                None | Some(Value::Null) | Some(Value::String(_)) => {}
                Some(_) => malformed.push(format!("`{key}` must be a string")),
            }
        }
        if missing.is_empty() && malformed.is_empty() {
            return Ok(());
        }
        let mut parts = Vec::new();
        if !missing.is_empty() {
            parts.push(format!(
                "missing mandatory field{}: {}",
                if missing.len() > 1 { "s" } else { "" },
                missing.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
            ));
        }
        parts.extend(malformed);
        Err(error(400, parts.join("; ")))
    }
}

/// True for a DICOM DA value: YYYYMMDD, a real calendar day.
pub fn is_date(d: &str) -> bool {
    !d.is_empty() && crate::vr::Vr::DA.check(d).is_ok()
}
