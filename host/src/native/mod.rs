//! Handlers compiled into the host: queries and streaming I/O that no plugin needs to decide.

mod admin;
mod study_events;

use hyper::body::Incoming;
use hyper::{Request, Response};

use crate::app::App;
use crate::auth::Tenant;
use crate::error::ApiError;
use crate::response::Body;

pub use admin::plugins as admin_plugins;

/// The native handlers, each routed under `/o3-dpacs-wado/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Native {
    /// `GET studyEvents`
    StudyEvents,
}

impl Native {
    /// Every native handler with the route it serves.
    pub const ROUTES: &[(&str, Native)] = &[("GET studyEvents", Native::StudyEvents)];

    /// Serves a request routed to this handler.
    pub async fn serve(self, app: &App, call: NativeCall) -> Result<Response<Body>, ApiError> {
        match self {
            Native::StudyEvents => study_events::serve(app, &call.tenant, &call.query).await,
        }
    }
}

/// A request routed to a native handler.
pub struct NativeCall {
    pub tenant: Tenant,
    /// Values of the route's `{name}` segments.
    pub params: Vec<(String, String)>,
    /// Decoded query pairs, in order.
    pub query: Vec<(String, String)>,
    /// The request itself (headers, streaming body).
    pub request: Request<Incoming>,
}

impl NativeCall {
    /// The value of a `{name}` route segment.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// The one value of a query parameter that must appear at most once.
pub fn single_param<'a>(query: &'a [(String, String)], name: &str) -> Result<Option<&'a str>, ApiError> {
    let mut values = query.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let first = values.next();
    if values.next().is_some() {
        return Err(ApiError::BadRequest(format!("parameter `{name}` is given more than once")));
    }
    Ok(first)
}
