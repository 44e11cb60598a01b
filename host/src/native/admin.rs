//! `GET /admin/plugins` (admin key): what is loaded, its version, digest, grants and reloads.

use hyper::{Response, StatusCode};
use serde_json::json;

use crate::app::App;
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
