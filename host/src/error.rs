//! The error every request handler can fail with, mapped to a status code and a JSON body.

use hyper::{Response, StatusCode};
use serde_json::json;

use crate::response::{self, Body};

/// A failed request, as the client will see it.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("missing or wrong API key")]
    Unauthorized,
    #[error("no endpoint at {0}")]
    NotFound(String),
    #[error("{0}")]
    NotFoundMessage(String),
    #[error("method {method} is not allowed on {path}; allowed: {allowed}")]
    MethodNotAllowed { method: String, path: String, allowed: String },
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    NotAcceptable(String),
    /// Well-formed, but the target cannot serve it (e.g. an instance without pixel data).
    #[error("{0}")]
    Unprocessable(String),
    /// The stored data is in an encoding this server cannot handle (e.g. a codec not built in).
    #[error("{0}")]
    UnsupportedMedia(String),
    #[error("request body is larger than {0} bytes")]
    PayloadTooLarge(u64),
    #[error("plugin `{plugin}` failed: {reason}")]
    Plugin { plugin: String, reason: String },
    #[error("too many requests in progress, try again")]
    Busy,
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) | ApiError::NotFoundMessage(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::NotAcceptable(_) => StatusCode::NOT_ACCEPTABLE,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::UnsupportedMedia(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Plugin { .. } | ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Busy => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The JSON response for this error: `{"error": <status text>, "message": <what went wrong>,
    /// "requestId": <the request's id>}`.
    pub fn into_response(self) -> Response<Body> {
        let status = self.status();
        let mut body = json!({
            "error": status.canonical_reason().unwrap_or("error"),
            "message": self.to_string(),
        });
        if let Some(id) = crate::request_id::current() {
            body["requestId"] = json!(id);
        }
        if let ApiError::Plugin { plugin, .. } = &self {
            body["plugin"] = json!(plugin);
        }
        let mut response = response::json(status, &body);
        if let ApiError::MethodNotAllowed { allowed, .. } = &self
            && let Ok(value) = allowed.parse()
        {
            response.headers_mut().insert(hyper::header::ALLOW, value);
        }
        if matches!(self, ApiError::Unauthorized) {
            response.headers_mut().insert(hyper::header::WWW_AUTHENTICATE, hyper::header::HeaderValue::from_static("ApiKey"));
        }
        response
    }
}

impl From<crate::db::DbError> for ApiError {
    fn from(e: crate::db::DbError) -> Self {
        tracing::error!(error = %e, "database error");
        ApiError::Internal("database error".into())
    }
}
