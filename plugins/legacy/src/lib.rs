//! Test-only plugin built against WIT 0.1.0 itself, not the SDK (which follows the newest
//! version): a plugin written before 0.1.1, which the host must keep serving with 0.1.0's
//! meaning. `POST test/legacy/replace` replaces a patient's demographics with the name given and
//! no birth date or sex, which under 0.1.0 clears them.

wit_bindgen::generate!({
    path: "../../wit/v0.1.0",
    world: "plugin",
});

use serde_json::{Value, json};
use wasmpacs::plugin::archive::{self, PatientFields};
use wasmpacs::plugin::types::{Header, Request, Response, StudyEvent};

struct Legacy;

impl exports::wasmpacs::plugin::handler::Guest for Legacy {
    fn handle(request: Request) -> Response {
        replace(&request).unwrap_or_else(|answer| answer)
    }
}

impl exports::wasmpacs::plugin::hooks::Guest for Legacy {
    fn on_event(_event: StudyEvent) -> Result<(), String> {
        Ok(())
    }
}

export!(Legacy);

/// `{"patientID", "patientName"}`: the one patient with that ID gets that name, and no birth
/// date or sex.
fn replace(request: &Request) -> Result<Response, Response> {
    let body: Value = serde_json::from_slice(&request.body).map_err(|e| answer(400, json!({"message": e.to_string()})))?;
    let text = |key: &str| body.get(key).and_then(Value::as_str).map(str::to_owned);
    let (Some(patient_id), Some(name)) = (text("patientID"), text("patientName")) else {
        return Err(answer(400, json!({"message": "`patientID` and `patientName` are required"})));
    };
    let found = archive::find_patients(&patient_id, None).map_err(host_error)?;
    let [patient] = found.as_slice() else {
        return Err(answer(404, json!({"message": format!("{} patients have ID `{patient_id}`", found.len())})));
    };
    let fields = PatientFields { patient_id, issuer: patient.issuer.clone(), name, birth_date: None, sex: None };
    let updated = archive::update_patient(patient.key, &fields).map_err(host_error)?;
    Ok(answer(200, json!({"patientName": updated.name, "patientBirthDate": updated.birth_date, "patientSex": updated.sex})))
}

fn host_error(e: archive::HostError) -> Response {
    answer(500, json!({"message": format!("{e:?}")}))
}

fn answer(status: u16, body: Value) -> Response {
    let headers = vec![Header { name: "content-type".into(), value: "application/json".into() }];
    Response { status, headers, body: body.to_string().into_bytes() }
}
