//! Why a KOS request failed: the seed's error codes, their HTTP statuses, and the JSON answer
//! `{"success": false, "errorCode": ..., "message": ...}`.

use serde_json::json;
use wasmpacs_sdk::{HostError, Response, json};

/// The error codes of the seed's KOS APIs (plus one for the query parameter of `studies/kos`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    StudyNotFound,
    MalformedJson,
    MissingParameter,
    InternalIo,
    InternalSql,
    InternalDicom,
    InternalGeneric,
}

impl Code {
    fn as_str(self) -> &'static str {
        match self {
            Code::StudyNotFound => "STUDY_NOT_FOUND",
            Code::MalformedJson => "MALFORMED_JSON",
            Code::MissingParameter => "MISSING_PARAMETER",
            Code::InternalIo => "INTERNAL_IO_ERROR",
            Code::InternalSql => "INTERNAL_SQL_ERROR",
            Code::InternalDicom => "INTERNAL_DICOM_ERROR",
            Code::InternalGeneric => "INTERNAL_GENERIC_ERROR",
        }
    }

    fn status(self) -> u16 {
        match self {
            Code::StudyNotFound => 404,
            Code::MalformedJson | Code::MissingParameter => 400,
            Code::InternalIo | Code::InternalSql | Code::InternalDicom | Code::InternalGeneric => 500,
        }
    }
}

/// A failed request: its code and a message for people.
#[derive(Debug)]
pub struct Failure {
    pub code: Code,
    pub message: String,
}

impl Failure {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }

    /// A failed read of the archive index (find study, patient, series, instances).
    pub fn archive(what: &str, e: HostError) -> Self {
        match e {
            HostError::NotFound(m) => Failure::new(Code::StudyNotFound, format!("{what}: {m}")),
            HostError::Internal(m) => Failure::new(Code::InternalSql, format!("{what}: {m}")),
            HostError::Invalid(m) | HostError::Conflict(m) => Failure::new(Code::InternalGeneric, format!("{what}: {m}")),
        }
    }

    /// A failed `store-instance`: the host reads the document (invalid: a DICOM problem), then
    /// registers it (database) and places its file (storage, named so in the message).
    pub fn store(e: HostError) -> Self {
        match e {
            HostError::Invalid(m) => Failure::new(Code::InternalDicom, format!("the archive refused the KOS: {m}")),
            HostError::Internal(m) if m.starts_with("storage") => Failure::new(Code::InternalIo, m),
            HostError::Internal(m) => Failure::new(Code::InternalSql, m),
            HostError::Conflict(m) | HostError::NotFound(m) => Failure::new(Code::InternalGeneric, m),
        }
    }

    /// The answer; its status (400 or more) rolls back anything the request changed.
    pub fn into_response(self) -> Response {
        json(
            self.code.status(),
            &json!({
                "success": false,
                "errorCode": self.code.as_str(),
                "message": self.message,
            }),
        )
    }
}
