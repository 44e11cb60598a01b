//! DICOM value rules (PS3.5 6.2) for the fields plugins write into the archive: each field's
//! keyword and value representation (VR), and what that VR allows. The host enforces them where
//! values enter the archive through a plugin (`host/src/db/values.rs`); the plugins' SDK checks
//! a request's fields with the same rules first, so that a refusal names the field as the client
//! sent it. Values ingested from modalities (C-STORE, STOW-RS) are kept as sent, unchecked.
//!
//! Lengths count characters, not bytes: the archive answers in UTF-8 (Specific Character Set
//! ISO_IR 192), where PS3.5 6.2 limits LO, SH and PN in characters. An empty value passes every
//! rule (whether a field may be empty is its caller's rule, not its VR's).

mod fields;
mod rules;

pub use fields::*;
pub use rules::{Refusal, Vr};

/// A field a plugin writes into the archive: its DICOM keyword, VR and whether it may hold
/// several values (VM 1-n, separated by `\`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    pub keyword: &'static str,
    pub vr: Vr,
    pub multiple: bool,
}

impl Field {
    /// Checks `value` against the field's VR; a refusal names the field by its keyword.
    pub fn check(&self, value: &str) -> Result<(), FieldError> {
        self.check_as(self.keyword, value)
    }

    /// Checks `value` against the field's VR; a refusal names the field `name` (the name a
    /// client sent it under, e.g. `patientName`).
    pub fn check_as(&self, name: &str, value: &str) -> Result<(), FieldError> {
        let refused = |refusal| FieldError { name: name.to_owned(), refusal };
        if self.multiple {
            return value.split('\\').try_for_each(|one| self.vr.check(one)).map_err(refused);
        }
        self.vr.check(value).map_err(refused)
    }

    /// As [`Field::check`], for a value that may be absent.
    pub fn check_opt(&self, value: Option<&str>) -> Result<(), FieldError> {
        value.map_or(Ok(()), |v| self.check(v))
    }
}

/// A value that breaks its field's VR: the field's name and the rule, e.g. "patientName: PN
/// allows at most 64 characters per component group".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub name: String,
    pub refusal: Refusal,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.name, self.refusal)
    }
}

impl std::error::Error for FieldError {}

/// The text of a refusal the host made (it reaches plugins as text, the WIT's `invalid`) with
/// the field renamed as the client sent it: `names` pairs fields with the client's names. None
/// when the text is no field refusal of one of those fields. The `"{name}: "` form it reads is
/// the one [`FieldError`] writes.
pub fn renamed(message: &str, names: &[(Field, &str)]) -> Option<String> {
    names.iter().find_map(|(field, name)| {
        let rule = message.strip_prefix(field.keyword)?.strip_prefix(": ")?;
        Some(format!("{name}: {rule}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_is_renamed_as_the_client_sent_the_field() {
        let refusal = PATIENT_NAME.check(&"X".repeat(65)).unwrap_err().to_string();
        assert_eq!(refusal, "PatientName: PN allows at most 64 characters per component group");
        let names = [(PATIENT_ID, "targetPatientID"), (PATIENT_NAME, "patientName")];
        assert_eq!(
            renamed(&refusal, &names).as_deref(),
            Some("patientName: PN allows at most 64 characters per component group")
        );
        assert_eq!(renamed("PatientNameX: whatever", &names), None);
        assert_eq!(renamed(&refusal, &[(PATIENT_ID, "patientID")]), None);
    }

    #[test]
    fn fields_of_several_values_check_each() {
        assert_eq!(MEDICAL_ALERTS.check("ALLERGY\\DIABETES"), Ok(()));
        let long = format!("ALLERGY\\{}", "x".repeat(65));
        assert!(MEDICAL_ALERTS.check(&long).unwrap_err().to_string().contains("64"), "{:?}", MEDICAL_ALERTS.check(&long));
        assert!(PATIENT_STATE.check("A\\B").is_err(), "a single-valued field refuses a backslash");
    }
}
