//! What makes an orders/create body valid: the seed's mandatory fields, and DICOM value formats
//! for the fields the worklist serves. One 400 names every problem.

use wasmpacs_sdk::vr::Vr;
use wasmpacs_sdk::{JsonBody, Response, error, is_date};

/// The seed's mandatory fields.
const MANDATORY: &[&str] = &[
    "PatientID",
    "StudyInstanceUID",
    "PatientName",
    "ScheduledStationAETitle",
    "ScheduledProcedureStepDescription",
    "ScheduledProcedureStepStartDate",
    "ScheduledProcedureStepStartTime",
    "Modality",
    "AccessionNumber",
];

/// What the strict variant also requires.
const STRICT_MANDATORY: &[&str] = if cfg!(feature = "strict") { &["ReferringPhysicianName"] } else { &[] };

const OPTIONAL: &[&str] = &[
    "ScheduledPerformingPhysiciansName",
    "ScheduledPerformingPhysicianName",
    "ScheduledProcedureStepID",
    "RequestedProcedureDescription",
    "RequestedProcedureID",
    "RequestingPhysician",
    "ReferringPhysicianName",
    "AdmissionID",
    "CurrentPatientLocation",
    "PatientBirthDate",
    "PatientSex",
    "ConfidentialityConstraintOnPatientDataDescription",
    "PatientState",
    "PregnancyStatus",
    "MedicalAlerts",
    "PlacerOrderNumberImagingServiceRequest",
    "ServiceEpisodeID",
    "ScheduledStationName",
];

/// Modalities (DICOM defined terms of Modality, PS3.3 C.7.3.1.1.1) accepted on a worklist.
const MODALITIES: &[&str] = &[
    "AR",
    "ASMT",
    "AU",
    "BDUS",
    "BI",
    "BMD",
    "CR",
    "CT",
    "CTPROTOCOL",
    "DG",
    "DOC",
    "DX",
    "ECG",
    "EPS",
    "ES",
    "FID",
    "GM",
    "HC",
    "HD",
    "IO",
    "IOL",
    "IVOCT",
    "IVUS",
    "KER",
    "KO",
    "LEN",
    "LS",
    "MG",
    "MR",
    "M3D",
    "NM",
    "OAM",
    "OCT",
    "OP",
    "OPM",
    "OPT",
    "OPTBSV",
    "OPTENF",
    "OPV",
    "OSS",
    "OT",
    "PA",
    "PLAN",
    "POS",
    "PR",
    "PT",
    "PX",
    "REG",
    "RESP",
    "RF",
    "RG",
    "RTDOSE",
    "RTIMAGE",
    "RTINTENT",
    "RTPLAN",
    "RTRAD",
    "RTRECORD",
    "RTSEGANN",
    "RTSTRUCT",
    "RWV",
    "SEG",
    "SM",
    "SMR",
    "SR",
    "SRF",
    "STAIN",
    "TEXTUREMAP",
    "TG",
    "US",
    "VA",
    "XA",
    "XAPROTOCOL",
    "XC",
];

/// True for a DICOM TM value: HH, HHMM or HHMMSS, the last with an optional fraction of one to
/// six digits (PS3.5 6.2).
pub fn is_time(t: &str) -> bool {
    !t.is_empty() && Vr::TM.check(t).is_ok()
}

/// A valid TM value as stored: HH and HHMM completed to HHMMSS with zeros, so that stored times
/// compare as the worklist's time ranges expect.
pub fn full_time(t: &str) -> String {
    match t.len() {
        2 | 4 => format!("{t}{}", &"0000"[..6 - t.len()]),
        _ => t.to_owned(),
    }
}

/// True for a DICOM UID: digits and dots, at most 64 characters, no empty or zero-led component.
pub fn is_uid(uid: &str) -> bool {
    !uid.is_empty() && Vr::UI.check(uid).is_ok()
}

/// Checks an orders/create body: what the worklist needs beyond the DICOM value rules, which the
/// host applies to every field (AE title, Accession Number and the rest) when the order is written.
pub fn order(body: &JsonBody) -> Result<(), Response> {
    body.check(&[MANDATORY, STRICT_MANDATORY].concat(), OPTIONAL)?;
    let mut problems = Vec::new();
    let mut check = |key: &str, ok: bool, expected: &str| {
        if let (Some(value), false) = (body.text(key), ok) {
            problems.push(format!("`{key}` must be {expected}, not `{value}`"));
        }
    };
    let text = |key: &str| body.text(key).unwrap_or_default();
    check("ScheduledProcedureStepStartDate", is_date(&text("ScheduledProcedureStepStartDate")), "a YYYYMMDD date");
    check(
        "ScheduledProcedureStepStartTime",
        is_time(&text("ScheduledProcedureStepStartTime")),
        "a DICOM time (HH, HHMM or HHMMSS[.ffffff])",
    );
    check("Modality", MODALITIES.contains(&text("Modality").to_ascii_uppercase().as_str()), "a DICOM modality code");
    check("StudyInstanceUID", is_uid(&text("StudyInstanceUID")), "a DICOM UID");
    check("PatientBirthDate", body.text("PatientBirthDate").is_none_or(|d| is_date(&d)), "a YYYYMMDD date");
    check(
        "PatientSex",
        body.text("PatientSex").is_none_or(|s| matches!(s.to_ascii_uppercase().as_str(), "M" | "F" | "O")),
        "M, F or O",
    );
    if problems.is_empty() { Ok(()) } else { Err(error(400, problems.join("; "))) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_uids() {
        assert!(is_time("155430") && is_time("155430.123456") && is_time("000000") && is_time("1554") && is_time("15"));
        assert!(!is_time("255430") && !is_time("1560") && !is_time("24") && !is_time("155430.") && !is_time("1554.5"));
        assert!(!is_time("15:54:30") && !is_time("155") && !is_time("") && !is_time("155430.1234567"));
        assert_eq!(
            (full_time("15"), full_time("1554"), full_time("155430.5")),
            ("150000".into(), "155400".into(), "155430.5".into())
        );
        assert!(is_uid("1.2.752.24.5.2584605181.20150129083013.816906") && is_uid("2.25.0"));
        assert!(!is_uid("1..2") && !is_uid("1.02") && !is_uid("abc") && !is_uid(&"1.".repeat(40)));
    }
}
