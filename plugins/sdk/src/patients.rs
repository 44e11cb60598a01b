//! Finding a patient by Patient ID, or creating it: what orders, merges, moves and reconciles do
//! with the patient a request names.

use crate::archive::{self, Patient, PatientFields};
use crate::HostError;

/// Why no single patient came of [`find_or_create`].
#[derive(Debug)]
pub enum PatientLookup {
    /// The Patient ID belongs to this many patients (of different issuers).
    Ambiguous(usize),
    /// The host refused or failed.
    Host(HostError),
}

impl From<HostError> for PatientLookup {
    fn from(e: HostError) -> Self {
        Self::Host(e)
    }
}

/// The patient with `fields.patient_id` (of any issuer), or a new one made of `fields`. When
/// another request creates that patient between the look-up and the creation (two requests
/// naming one new patient at once), the creation is refused as a conflict and the patient the
/// other request created is taken.
pub fn find_or_create(fields: &PatientFields) -> Result<Patient, PatientLookup> {
    for _ in 0..2 {
        match archive::find_patients(&fields.patient_id, None)?.as_slice() {
            [] => {}
            [one] => return Ok(one.clone()),
            many => return Err(PatientLookup::Ambiguous(many.len())),
        }
        match archive::create_patient(fields) {
            Ok(created) => return Ok(created),
            Err(HostError::Conflict(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    // Created by another request and gone again (merged away) before it could be read.
    Err(PatientLookup::Host(HostError::Conflict(format!(
        "the patient with PatientID `{}` changed while this request ran; send it again",
        fields.patient_id
    ))))
}
