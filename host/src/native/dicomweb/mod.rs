//! DICOMweb (PS3.18) served natively: STOW-RS at `stowRsListener/{callingAet}/studies`, QIDO-RS
//! and WADO-RS under `rs/`. This module routes among them and holds what they share: DICOM JSON
//! elements, the `application/dicom+json` answer and the URLs the answers point at.

mod qido;
mod stow;
mod wado;

use hyper::header::{CONTENT_TYPE, HOST};
use hyper::{Response, StatusCode};
use serde_json::{Value, json};

use super::NativeCall;
use crate::app::App;
use crate::db::qido::Level;
use crate::error::ApiError;
use crate::response::{self, Body};
use crate::router::API_PREFIX;

/// A DICOMweb resource served natively.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DicomWeb {
    /// STOW-RS, optionally restricted to the study in the path.
    Store,
    /// QIDO-RS at a level.
    Search(Level),
    /// WADO-RS of the instances of a study, series or instance.
    Retrieve(Level),
    /// WADO-RS metadata of a study, series or instance.
    Metadata(Level),
}

/// Serves a DICOMweb request.
pub async fn serve(resource: DicomWeb, app: &App, call: NativeCall) -> Result<Response<Body>, ApiError> {
    match resource {
        DicomWeb::Store => stow::serve(app, call).await,
        DicomWeb::Search(level) => qido::serve(app, &call, level).await,
        DicomWeb::Retrieve(level) => wado::instances(app, &call, level).await,
        DicomWeb::Metadata(level) => wado::metadata(app, &call, level).await,
    }
}

/// The media type of DICOM JSON answers, exactly (clients compare it verbatim: no charset).
pub const DICOM_JSON: &str = "application/dicom+json";

/// A DICOM JSON answer.
fn dicom_json(status: StatusCode, value: &Value) -> Response<Body> {
    let bytes = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, DICOM_JSON)
        .body(response::full(bytes))
        .expect("static response parts are valid")
}

/// A DICOM JSON element with text values (`vr` only when there is no value).
fn element(vr: &str, values: impl IntoIterator<Item = String>) -> Value {
    let values: Vec<Value> = values
        .into_iter()
        .filter(|v| !v.is_empty())
        .map(|v| if vr == "PN" { json!({ "Alphabetic": v }) } else { json!(v) })
        .collect();
    if values.is_empty() { json!({ "vr": vr }) } else { json!({ "vr": vr, "Value": values }) }
}

/// A DICOM JSON element with one number (IS, US: JSON numbers).
fn number(vr: &str, value: Option<i64>) -> Value {
    match value {
        Some(n) => json!({ "vr": vr, "Value": [n] }),
        None => json!({ "vr": vr }),
    }
}

/// Where this server's API is, as the client reached it: `http://host/o3-dpacs-wado`.
fn base_url(call: &NativeCall) -> String {
    let headers = call.request.headers();
    let host = headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| call.request.uri().authority().map(|a| a.to_string()))
        .unwrap_or_else(|| "localhost".to_owned());
    let scheme = headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
        .filter(|s| matches!(*s, "http" | "https"))
        .unwrap_or("http");
    format!("{scheme}://{host}{}", API_PREFIX.trim_end_matches('/'))
}

/// The WADO-RS URL of a study, series or instance.
fn retrieve_url(base: &str, study: &str, series: Option<&str>, instance: Option<&str>) -> String {
    let mut url = format!("{base}/rs/studies/{study}");
    if let Some(series) = series {
        url.push_str(&format!("/series/{series}"));
        if let Some(instance) = instance {
            url.push_str(&format!("/instances/{instance}"));
        }
    }
    url
}

/// True for a valid UID: 1 to 64 characters, digits and dots.
fn is_uid(value: &str) -> bool {
    !value.is_empty() && value.len() <= 64 && value.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}

/// A UID from a path segment; 400 naming the segment when it is not one.
fn path_uid<'a>(call: &'a NativeCall, name: &str) -> Result<Option<&'a str>, ApiError> {
    match call.param(name) {
        Some(uid) if !is_uid(uid) => Err(ApiError::BadRequest(format!("`{uid}` in the path is not a valid {name} UID"))),
        other => Ok(other),
    }
}
