//! `POST series/forward`: queues a series (`seriesInstanceUID`) for the configured forward job,
//! which sends it to its DICOM node in the background (see [`crate::forward`]). A
//! `containerIdentifier` asks for the non-DICOM slides forward, for which no job can be
//! configured in this build. The seed answers configuration problems with 500.

use hyper::Response;

use super::Fields;
use crate::app::App;
use crate::db::forward;
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
    if by == "containerIdentifier" {
        return Err(ApiError::Internal("forward job not configured: no job forwards non-DICOM slides".into()));
    }
    let job = app.config.forward.as_ref().ok_or_else(|| ApiError::Internal("forward job not configured".into()))?;
    let node = job.node.as_deref().ok_or_else(|| ApiError::Internal("forward node not configured".into()))?;
    if !app.config.nodes.iter().any(|n| n.ae_title == node && !n.host.is_empty() && n.port != 0) {
        return Err(ApiError::Internal(format!("forward node not found: no [[node]] `{node}` with a host and port")));
    }
    let database_error = |e: &dyn std::fmt::Display| {
        tracing::error!(error = %e, "forward request failed");
        ApiError::Internal(format!("database error: {e}"))
    };
    let mut unit = app.db.begin().await.map_err(|e| database_error(&e))?;
    match lifecycle::find_series(&mut unit, &tenant, SeriesKey::Uid(&value)).await.map_err(|e| database_error(&e))? {
        Lookup::Found(series) if !series.deprecated && !series.study_deprecated => {}
        _ => return Err(ApiError::NotFoundMessage(format!("series not found: no series with seriesInstanceUID `{value}`"))),
    }
    let id = forward::enqueue(&mut unit, &tenant, &value, node, &author).await.map_err(|e| database_error(&e))?;
    unit.commit().await.map_err(|e| database_error(&e))?;
    app.forwarder.wake();
    tracing::info!(tenant, job = id, series = %value, node, author, "series queued for forwarding");
    Ok(fields.success("forward queued"))
}
