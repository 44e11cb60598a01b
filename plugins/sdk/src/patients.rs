//! Finding a patient by Patient ID, or creating it: what orders, merges, moves and reconciles do
//! with the patient a request names.

use crate::archive::{self, Patient, PatientFields};
use crate::{HostError, Response, error, vr};

/// The patient with `fields.patient_id` (of any issuer), or a new one made of `fields`; as an
/// answer, 409 when the ID belongs to several patients (named as the request's `id_label`, e.g.
/// "target patientID"), and the host's refusal otherwise, a refused field named as `names` say
/// (see [`HostError::naming`]). When another request creates that
/// patient between the look-up and the creation (two requests naming one new patient at once),
/// the creation is refused as a conflict and the patient the other request created is taken.
/// The ID is held first (`lock-patient-id`), so that requests naming one new ID under different
/// issuers at once create one patient, not one per issuer.
pub fn find_or_create(fields: &PatientFields, id_label: &str, names: &[(vr::Field, &str)]) -> Result<Patient, Response> {
    archive::lock_patient_id(&fields.patient_id)?;
    let mut attempts = 2;
    loop {
        attempts -= 1;
        match archive::find_patients(&fields.patient_id, None)?.as_slice() {
            [] => {}
            [one] => return Ok(one.clone()),
            many => return Err(error(409, format!("{id_label} `{}` identifies {} patients", fields.patient_id, many.len()))),
        }
        match archive::create_patient(fields) {
            Ok(created) => return Ok(created),
            Err(HostError::Conflict(_)) if attempts > 0 => continue,
            Err(e) => return Err(e.naming(names).into()),
        }
    }
}
