//! `POST series/forward`: queues a series (`seriesInstanceUID`) for the configured forward job,
//! which sends it to its DICOM node in the background (see [`crate::forward`]), or the
//! non-DICOM slides with a `containerIdentifier` for the job's HTTP endpoint. The seed answers
//! configuration problems with 500.

use hyper::Response;

use super::Fields;
use crate::app::App;
use crate::db::forward::{self, ForwardKind, NewJob};
use crate::db::lifecycle::{self, Lookup, SeriesKey};
use crate::error::ApiError;
use crate::native::NativeCall;
use crate::response::Body;

pub async fn forward_series(app: &App, call: NativeCall) -> Result<Response<Body>, ApiError> {
    let tenant = call.tenant.name().to_owned();
    let mut fields = Fields::read(app, call).await?;
    let (by, value) = fields.one_of("seriesInstanceUID", "containerIdentifier");
    let author = fields.required("author");
    fields.check("forward")?;
    let job = app.config.forward.as_ref().ok_or_else(|| ApiError::Internal("forward job not configured".into()))?;
    if by == "containerIdentifier" {
        let endpoint =
            job.slide_endpoint.as_deref().ok_or_else(|| ApiError::Internal("forward endpoint not configured".into()))?;
        return forward_slides(app, &tenant, &value, endpoint, &author).await.map(|()| fields.success("forward queued"));
    }
    let node = job.node.as_deref().ok_or_else(|| ApiError::Internal("forward node not configured".into()))?;
    if !app.config.nodes.iter().any(|n| n.ae_title == node && !n.host.is_empty() && n.port != 0) {
        return Err(ApiError::Internal(format!("forward node not found: no [[node]] `{node}` with a host and port")));
    }
    let mut unit = app.db.begin().await.map_err(|e| database_error(&e))?;
    match lifecycle::find_series(&mut unit, &tenant, SeriesKey::Uid(&value)).await.map_err(|e| database_error(&e))? {
        Lookup::Found(series) if !series.deprecated && !series.study_deprecated => {}
        _ => return Err(ApiError::NotFoundMessage(format!("series not found: no series with seriesInstanceUID `{value}`"))),
    }
    let job = NewJob { kind: ForwardKind::Dicom, series_uid: &value, container_identifier: None, node, author: &author };
    let id = forward::enqueue(&mut unit, &tenant, &job).await.map_err(|e| database_error(&e))?;
    unit.commit().await.map_err(|e| database_error(&e))?;
    app.forwarder.wake();
    tracing::info!(tenant, job = id, series = %value, node, author, "series queued for forwarding");
    Ok(fields.success("forward queued"))
}

/// Queues the non-DICOM slides with container identifier `container`: one job per live series
/// that holds one (a slide is normally one series; a DICOM copy of it may share the barcode).
async fn forward_slides(app: &App, tenant: &str, container: &str, endpoint: &str, author: &str) -> Result<(), ApiError> {
    let mut unit = app.db.begin().await.map_err(|e| database_error(&e))?;
    let series = crate::db::slides::series_with_container(&mut unit, tenant, container).await.map_err(|e| database_error(&e))?;
    if series.is_empty() {
        return Err(ApiError::NotFoundMessage(format!("container identifier not found: no non-DICOM slide has `{container}`")));
    }
    // The endpoint without credentials a URL may carry: jobs and events are shown to admins.
    let shown = crate::forward::slides::without_credentials(endpoint);
    let mut ids = Vec::with_capacity(series.len());
    for series_uid in &series {
        let job = NewJob { kind: ForwardKind::Slides, series_uid, container_identifier: Some(container), node: &shown, author };
        ids.push(forward::enqueue(&mut unit, tenant, &job).await.map_err(|e| database_error(&e))?);
    }
    unit.commit().await.map_err(|e| database_error(&e))?;
    app.forwarder.wake();
    tracing::info!(tenant, jobs = ?ids, container, endpoint = %shown, author, "slides queued for forwarding");
    Ok(())
}

/// The seed answers a database failure with 500 "database error".
fn database_error(e: &dyn std::fmt::Display) -> ApiError {
    tracing::error!(error = %e, "forward request failed");
    ApiError::Internal(format!("database error: {e}"))
}
