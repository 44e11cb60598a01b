//! The archived fields a plugin writes: each one's DICOM keyword and VR (PS3.6), as the
//! worklist, QIDO-RS and the event feed serve them.

use crate::{Field, Vr};

/// `NAME = "Keyword" VR;`, or `VR 1-n` for a field that may hold several values.
macro_rules! fields {
    ($($(#[$doc:meta])* $name:ident = $keyword:literal $vr:ident $($n:literal - n)?;)*) => {
        $($(#[$doc])* pub const $name: Field = Field { keyword: $keyword, vr: Vr::$vr, multiple: fields!(@multiple $($n)?) };)*
    };
    (@multiple) => { false };
    (@multiple $n:literal) => { true };
}

fields! {
    // The patient.
    PATIENT_ID = "PatientID" LO;
    ISSUER_OF_PATIENT_ID = "IssuerOfPatientID" LO;
    PATIENT_NAME = "PatientName" PN;
    PATIENT_BIRTH_DATE = "PatientBirthDate" DA;
    PATIENT_SEX = "PatientSex" CS;
    // The study.
    STUDY_INSTANCE_UID = "StudyInstanceUID" UI;
    ACCESSION_NUMBER = "AccessionNumber" SH;
    STUDY_DESCRIPTION = "StudyDescription" LO;
    STUDY_DATE = "StudyDate" DA;
    STUDY_TIME = "StudyTime" TM;
    REFERRING_PHYSICIAN_NAME = "ReferringPhysicianName" PN;
    // The order: imaging service request, requested procedure, visit and patient state.
    REQUESTING_PHYSICIAN = "RequestingPhysician" PN;
    REQUESTED_PROCEDURE_DESCRIPTION = "RequestedProcedureDescription" LO;
    REQUESTED_PROCEDURE_ID = "RequestedProcedureID" SH;
    PLACER_ORDER_NUMBER = "PlacerOrderNumberImagingServiceRequest" LO;
    ADMISSION_ID = "AdmissionID" LO;
    SERVICE_EPISODE_ID = "ServiceEpisodeID" LO;
    CURRENT_PATIENT_LOCATION = "CurrentPatientLocation" LO;
    CONFIDENTIALITY_CONSTRAINT = "ConfidentialityConstraintOnPatientDataDescription" LO;
    PATIENT_STATE = "PatientState" LO;
    MEDICAL_ALERTS = "MedicalAlerts" LO 1-n;
    /// US in DICOM; the order keeps the text it was given and the worklist sends it only when it
    /// is one of the codes 1 to 4, so it is held to LO's rules.
    PREGNANCY_STATUS = "PregnancyStatus" LO;
    // The Scheduled Procedure Step.
    SCHEDULED_STATION_AE_TITLE = "ScheduledStationAETitle" AE;
    SCHEDULED_STATION_NAME = "ScheduledStationName" SH;
    SCHEDULED_START_DATE = "ScheduledProcedureStepStartDate" DA;
    SCHEDULED_START_TIME = "ScheduledProcedureStepStartTime" TM;
    MODALITY = "Modality" CS;
    SCHEDULED_PERFORMING_PHYSICIAN_NAME = "ScheduledPerformingPhysicianName" PN;
    SCHEDULED_STEP_DESCRIPTION = "ScheduledProcedureStepDescription" LO;
    SCHEDULED_STEP_ID = "ScheduledProcedureStepID" SH;
}
