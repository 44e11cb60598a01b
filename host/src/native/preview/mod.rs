//! `GET preview?objectUID=|seriesUID=`: a JPEG thumbnail of an instance, or of the instance with
//! the lowest instance number of a series; rendered off the async workers.

mod render;

use hyper::{Response, StatusCode, header};

use super::single_param;
use crate::app::App;
use crate::auth::Tenant;
use crate::db::DbError;
use crate::db::query::{instance_file, series_first_file};
use crate::error::ApiError;
use crate::response::{self, Body};

pub use render::{RenderError, Thumbnail};

pub async fn serve(app: &App, tenant: &Tenant, query: &[(String, String)]) -> Result<Response<Body>, ApiError> {
    let value = |name: &str| -> Result<Option<String>, ApiError> {
        Ok(single_param(query, name)?.map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned))
    };
    let (object_uid, series_uid) = (value("objectUID")?, value("seriesUID")?);
    let db = |e: sqlx::Error| ApiError::from(DbError::from(e));
    let file = match (&object_uid, &series_uid) {
        (Some(sop), _) => instance_file(app.db.reader(), tenant.name(), sop)
            .await
            .map_err(db)?
            .ok_or_else(|| ApiError::NotFoundMessage(format!("no instance `{sop}`")))?,
        (None, Some(series)) => series_first_file(app.db.reader(), tenant.name(), series)
            .await
            .map_err(db)?
            .ok_or_else(|| ApiError::NotFoundMessage(format!("no series `{series}` with instances")))?,
        (None, None) => return Err(ApiError::BadRequest("parameter `objectUID` or `seriesUID` is required".into())),
    };
    let local = app.ingest.storage().local(&file.medium, &file.file_path).await.map_err(|e| {
        tracing::error!(sop = %file.sop_instance_uid, error = %e, "stored file cannot be read");
        ApiError::Internal(format!("the file of instance `{}` cannot be read: {e}", file.sop_instance_uid))
    })?;
    let thumbnail = Thumbnail { max_side: app.config.preview.max_side, quality: app.config.preview.quality };
    let sop = file.sop_instance_uid.clone();
    let started = std::time::Instant::now();
    let rendered = tokio::task::spawn_blocking(move || thumbnail.render(local.path(), &sop))
        .await
        .map_err(|e| ApiError::Internal(format!("preview task failed: {e}")))?;
    let jpeg = rendered.map_err(|e| {
        tracing::info!(sop = %file.sop_instance_uid, ts = %file.transfer_syntax, error = %e, "no preview");
        match e {
            RenderError::NoPixelData(_) => ApiError::Unprocessable(e.to_string()),
            RenderError::UnsupportedCodec { .. } | RenderError::UnsupportedEncoding { .. } => {
                ApiError::UnsupportedMedia(e.to_string())
            }
            RenderError::Undecodable { .. } => ApiError::Unprocessable(e.to_string()),
            RenderError::Unreadable(_) => ApiError::Internal(e.to_string()),
        }
    })?;
    tracing::debug!(sop = %file.sop_instance_uid, bytes = jpeg.len(), us = started.elapsed().as_micros() as u64, "preview rendered");
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "image/jpeg")
        .body(response::full(jpeg))
        .expect("static response parts are valid"))
}
