//! STOW-RS (`POST stowRsListener/{callingAet}/studies[/{study}]`): each part of a
//! `multipart/related; type="application/dicom"` body is streamed to a staging file, checked, and
//! archived as received from the calling AE; the answer is the standard store response dataset.

use std::sync::Arc;

use http_body_util::BodyExt;
use hyper::header::{CONNECTION, CONTENT_TYPE, HeaderValue};
use hyper::{Response, StatusCode};
use serde_json::{Value, json};

use super::{NativeCall, element, number, path_uid, retrieve_url};
use crate::app::{App, deliver_events};
use crate::db::events::StudyEvent;
use crate::dicom::completeness::Damage;
use crate::dicom::header::InstanceHeader;
use crate::error::ApiError;
use crate::ingest::{Ingest, IngestError, StagedInstance};
use crate::response::Body;
use crate::storage::Algorithm;
use crate::upload::{UploadError, write_field};

/// Failure reasons (0008,1197) of PS3.18 / PS3.4.
mod reason {
    pub const PROCESSING_FAILURE: i64 = 0x0110;
    pub const OUT_OF_RESOURCES: i64 = 0xA700;
    /// "Data set does not match SOP class": another study than the path's, or pixel data that
    /// does not match the image attributes.
    pub const DATA_SET_MISMATCH: i64 = 0xA900;
    pub const CANNOT_UNDERSTAND: i64 = 0xC000;
}

/// What became of one part.
enum PartOutcome {
    /// Archived now, or already archived before (a re-send).
    Stored(Arc<InstanceHeader>),
    Failed {
        header: Option<Arc<InstanceHeader>>,
        reason: i64,
        unsupported_type: bool,
    },
}

/// Serves a STOW-RS request. A refusal may come before the body is read: it then closes the
/// connection, so that the client does not send its next request after an unread body.
pub async fn serve(app: &App, call: NativeCall) -> Result<Response<Body>, ApiError> {
    receive_all(app, call).await.or_else(|e| {
        let mut response = e.into_response();
        response.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
        Ok(response)
    })
}

async fn receive_all(app: &App, call: NativeCall) -> Result<Response<Body>, ApiError> {
    let tenant = call.tenant.name().to_owned();
    let aet = call.param("callingAet").unwrap_or_default().to_owned();
    if !app.config.nodes.iter().any(|n| n.ae_title == aet && n.tenant == tenant) {
        return Err(ApiError::BadRequest(format!("calling AE title `{aet}` is not a configured node of this tenant")));
    }
    let study = path_uid(&call, "study")?.map(str::to_owned);
    let boundary = boundary(call.request.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()))?;
    let base = super::base_url(&call);

    let body = call.request.into_body().into_data_stream();
    let mut multipart = multer::Multipart::new(body, boundary);
    // Each part is archived while the next one is received; the committer groups them.
    let mut parts: Vec<Part> = Vec::new();
    loop {
        let mut field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(e) => return Err(malformed(e, parts.len())),
        };
        let part_type = field.content_type().map(|m| m.essence_str().to_ascii_lowercase());
        if part_type.as_deref().is_some_and(|t| t != "application/dicom") {
            tracing::warn!(tenant, aet, part_type = ?part_type, "STOW part of an unsupported type");
            parts.push(Part::Done(PartOutcome::Failed {
                header: None,
                reason: reason::CANNOT_UNDERSTAND,
                unsupported_type: true,
            }));
            continue;
        }
        let written = match write_field(app.ingest.storage(), &mut field, u64::MAX, Algorithm::Xxh3).await {
            Ok(written) => written,
            Err(UploadError::Body(e)) => return Err(malformed(e, parts.len())),
            Err(UploadError::TooLarge(limit)) => return Err(ApiError::PayloadTooLarge(limit)),
            Err(UploadError::Storage(e)) => {
                tracing::error!(tenant, aet, error = %e, "cannot stage a STOW part");
                parts.push(Part::Done(PartOutcome::Failed {
                    header: None,
                    reason: reason::OUT_OF_RESOURCES,
                    unsupported_type: false,
                }));
                continue;
            }
        };
        drop(field);
        // The part is synced and archived (and its events delivered) while the next one is
        // received, and even if the client goes away now.
        let (ingest, runtime) = (app.ingest.clone(), app.runtime.clone());
        let (part_tenant, part_aet, part_study) = (tenant.clone(), aet.clone(), study.clone());
        parts.push(Part::Storing(tokio::spawn(async move {
            let staged = match written.finish(StagedInstance::completed).await {
                Ok(staged) => staged,
                Err(e) => {
                    tracing::error!(tenant = part_tenant, aet = part_aet, error = %e, "cannot stage a STOW part");
                    return PartOutcome::Failed { header: None, reason: reason::OUT_OF_RESOURCES, unsupported_type: false };
                }
            };
            let (outcome, events) = store(&ingest, &part_tenant, &part_aet, part_study.as_deref(), staged).await;
            deliver_events(&runtime, &part_tenant, events);
            outcome
        })));
        if parts.iter().filter(|p| matches!(p, Part::Storing(_))).count() > MAX_IN_FLIGHT {
            settle_oldest(&mut parts).await;
        }
    }
    if parts.is_empty() {
        return Err(ApiError::BadRequest("the multipart body holds no instance".into()));
    }
    let mut outcomes = Vec::with_capacity(parts.len());
    for part in parts {
        outcomes.push(settle(part).await);
    }
    Ok(answer(&base, study.as_deref(), &outcomes))
}

/// Parts of one request being archived at once, at most.
const MAX_IN_FLIGHT: usize = 64;

/// A part answered already, or being archived.
enum Part {
    Done(PartOutcome),
    Storing(tokio::task::JoinHandle<PartOutcome>),
}

/// Waits for a part being archived.
async fn settle(part: Part) -> PartOutcome {
    match part {
        Part::Done(outcome) => outcome,
        Part::Storing(task) => match task.await {
            Ok(outcome) => outcome,
            Err(e) => {
                tracing::error!(error = %e, "STOW store task failed");
                PartOutcome::Failed { header: None, reason: reason::PROCESSING_FAILURE, unsupported_type: false }
            }
        },
    }
}

/// Settles the oldest part still being archived, keeping its place in the answer.
async fn settle_oldest(parts: &mut [Part]) {
    if let Some(part) = parts.iter_mut().find(|p| matches!(p, Part::Storing(_))) {
        let storing =
            std::mem::replace(part, Part::Done(PartOutcome::Failed { header: None, reason: 0, unsupported_type: false }));
        *part = Part::Done(settle(storing).await);
    }
}

/// The boundary of a `multipart/related` Content-Type; 400 for another type, 415 for parts
/// that are not `application/dicom`.
fn boundary(content_type: Option<&str>) -> Result<String, ApiError> {
    let content_type = content_type.unwrap_or_default();
    let mut pieces = content_type.split(';').map(str::trim);
    let media = pieces.next().unwrap_or_default().to_ascii_lowercase();
    if media != "multipart/related" {
        return Err(ApiError::BadRequest(format!(
            "the body must be multipart/related; type=\"application/dicom\", not `{content_type}`"
        )));
    }
    let mut boundary = None;
    for piece in pieces {
        let Some((name, value)) = piece.split_once('=') else { continue };
        let value = value.trim().trim_matches('"');
        match name.trim().to_ascii_lowercase().as_str() {
            "boundary" if !value.is_empty() => boundary = Some(value.to_owned()),
            "type" if !value.eq_ignore_ascii_case("application/dicom") => {
                return Err(ApiError::UnsupportedMedia(format!(
                    "parts of type `{value}` are not supported: send type=\"application/dicom\""
                )));
            }
            _ => {}
        }
    }
    boundary.ok_or_else(|| ApiError::BadRequest("the multipart/related Content-Type has no boundary".into()))
}

fn malformed(e: multer::Error, parts: usize) -> ApiError {
    ApiError::BadRequest(format!("malformed multipart body after {parts} part(s): {e}"))
}

/// Checks and archives one staged part; returns what became of it and the events it recorded.
async fn store(
    ingest: &Ingest,
    tenant: &str,
    aet: &str,
    study: Option<&str>,
    mut staged: StagedInstance,
) -> (PartOutcome, Vec<StudyEvent>) {
    // Read once here; ingest reuses it.
    let header = match staged.header().await {
        Ok(header) => header,
        Err(IngestError::Invalid(e)) => {
            tracing::warn!(tenant, aet, error = %e, "STOW part is not a DICOM instance");
            return (
                PartOutcome::Failed { header: None, reason: reason::CANNOT_UNDERSTAND, unsupported_type: false },
                Vec::new(),
            );
        }
        Err(IngestError::Damaged { header, damage }) => {
            tracing::warn!(tenant, aet, sop = %header.sop_instance_uid, error = %damage, "STOW instance is damaged");
            let reason = damage_reason(&damage);
            return (PartOutcome::Failed { header: Some(header), reason, unsupported_type: false }, Vec::new());
        }
        Err(e) => {
            tracing::error!(error = %e, "header task failed");
            return (
                PartOutcome::Failed { header: None, reason: reason::PROCESSING_FAILURE, unsupported_type: false },
                Vec::new(),
            );
        }
    };
    if let Some(study) = study.filter(|s| *s != header.study_uid) {
        tracing::warn!(tenant, aet, sop = %header.sop_instance_uid, study, "STOW instance of another study than the path's");
        return (
            PartOutcome::Failed { header: Some(header), reason: reason::DATA_SET_MISMATCH, unsupported_type: false },
            Vec::new(),
        );
    }
    match ingest.store(tenant, aet, staged).await {
        Ok(outcome) => (PartOutcome::Stored(outcome.header), outcome.events),
        Err(e) => {
            let reason = match &e {
                IngestError::Invalid(_) => reason::CANNOT_UNDERSTAND,
                IngestError::Damaged { damage, .. } => damage_reason(damage),
                IngestError::Conflict(_) | IngestError::Database(_) => reason::PROCESSING_FAILURE,
                IngestError::Storage(_) => reason::OUT_OF_RESOURCES,
            };
            tracing::warn!(tenant, aet, sop = %header.sop_instance_uid, error = %e, "STOW instance refused");
            (PartOutcome::Failed { header: Some(header), reason, unsupported_type: false }, Vec::new())
        }
    }
}

/// The failure reason of a damaged instance: 0xC000 when its data set does not parse to its end,
/// 0xA900 when it does but its pixel data does not match its image attributes.
fn damage_reason(damage: &Damage) -> i64 {
    match damage {
        Damage::Structure { .. } | Damage::TooDeep { .. } => reason::CANNOT_UNDERSTAND,
        Damage::PixelData(_) => reason::DATA_SET_MISMATCH,
    }
}

/// The store response dataset: 200 all stored, 202 some failed, 409 none stored (415 when
/// every part was of an unsupported type).
fn answer(base: &str, study: Option<&str>, outcomes: &[PartOutcome]) -> Response<Body> {
    let (mut referenced, mut failed) = (Vec::new(), Vec::new());
    let mut studies: Vec<&str> = study.into_iter().collect();
    for outcome in outcomes {
        match outcome {
            PartOutcome::Stored(h) => {
                if !studies.contains(&h.study_uid.as_str()) {
                    studies.push(&h.study_uid);
                }
                let url = retrieve_url(base, &h.study_uid, Some(&h.series_uid), Some(&h.sop_instance_uid));
                referenced.push(json!({
                    "00081150": element("UI", [h.sop_class_uid.clone()]),
                    "00081155": element("UI", [h.sop_instance_uid.clone()]),
                    "00081190": element("UR", [url]),
                }));
            }
            PartOutcome::Failed { header, reason, .. } => {
                let (class, instance) =
                    header.as_ref().map(|h| (h.sop_class_uid.clone(), h.sop_instance_uid.clone())).unwrap_or_default();
                failed.push(json!({
                    "00081150": element("UI", [class]),
                    "00081155": element("UI", [instance]),
                    "00081197": number("US", Some(*reason)),
                }));
            }
        }
    }
    let mut dataset = serde_json::Map::new();
    if let [only] = studies.as_slice() {
        dataset.insert("00081190".into(), element("UR", [retrieve_url(base, only, None, None)]));
    }
    let status = if failed.is_empty() {
        StatusCode::OK
    } else if !referenced.is_empty() {
        StatusCode::ACCEPTED
    } else if outcomes.iter().all(|o| matches!(o, PartOutcome::Failed { unsupported_type: true, .. })) {
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    } else {
        StatusCode::CONFLICT
    };
    if !failed.is_empty() {
        dataset.insert("00081198".into(), json!({ "vr": "SQ", "Value": failed }));
    }
    if !referenced.is_empty() {
        dataset.insert("00081199".into(), json!({ "vr": "SQ", "Value": referenced }));
    }
    tracing::info!(stored = referenced.len(), failed = failed.len(), status = status.as_u16(), "STOW request");
    super::dicom_json(status, &Value::Object(dataset))
}
