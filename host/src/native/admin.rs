//! The admin endpoints (admin key): `GET /admin/plugins`, what is loaded, its version, digest,
//! grants and reloads; `GET /admin/forward`, the latest forward jobs and what became of them.

use hyper::{Response, StatusCode};
use serde_json::json;

use crate::app::App;
use crate::error::ApiError;
use crate::response::{self, Body};

pub fn plugins(app: &App) -> Response<Body> {
    response::json(
        StatusCode::OK,
        &json!({
            "pooling": app.runtime.pooling(),
            "reload": app.config.reload.enabled,
            "plugins": app.runtime.describe(),
        }),
    )
}

/// The latest 100 forward jobs, newest first.
pub async fn forward_jobs(app: &App) -> Result<Response<Body>, ApiError> {
    let jobs = crate::db::forward::latest(app.db.reader(), 100).await.map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(response::json(StatusCode::OK, &json!({ "jobs": jobs })))
}
