//! Handlers compiled into the host: queries and streaming I/O that no plugin needs to decide.

mod admin;
mod dicomweb;
mod lifecycle;
mod preview;
mod studies_count;
mod study_events;
mod study_instances;
mod wholeslide;

use hyper::{Request, Response};

use crate::app::App;
use crate::auth::Tenant;
use crate::db::qido::Level;
use crate::error::ApiError;
use crate::response::Body;

pub use admin::{forward_jobs as admin_forward_jobs, plugins as admin_plugins};
pub use dicomweb::DicomWeb;

/// The native handlers, each routed under `/o3-dpacs-wado/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Native {
    /// `GET studyEvents`
    StudyEvents,
    /// `GET studies/count`
    StudiesCount,
    /// `GET studyInstances`
    StudyInstances,
    /// `GET preview`
    Preview,
    /// `GET wholeslide`
    WholeSlide,
    /// `POST series/deprecation`
    SeriesDeprecation,
    /// `POST studies/deprecation`
    StudyDeprecation,
    /// `POST studies/relocation`
    StudyRelocation,
    /// `POST series/forward`
    SeriesForward,
    /// DICOMweb: STOW-RS, QIDO-RS, WADO-RS.
    DicomWeb(DicomWeb),
}

impl Native {
    /// Every native handler with the route it serves.
    pub const ROUTES: &[(&str, Native)] = &[
        ("GET studyEvents", Native::StudyEvents),
        ("GET studies/count", Native::StudiesCount),
        ("GET studyInstances", Native::StudyInstances),
        ("GET preview", Native::Preview),
        ("GET wholeslide", Native::WholeSlide),
        ("POST series/deprecation", Native::SeriesDeprecation),
        ("POST studies/deprecation", Native::StudyDeprecation),
        ("POST studies/relocation", Native::StudyRelocation),
        ("POST series/forward", Native::SeriesForward),
        ("POST stowRsListener/{callingAet}/studies", Native::DicomWeb(DicomWeb::Store)),
        ("POST stowRsListener/{callingAet}/studies/{study}", Native::DicomWeb(DicomWeb::Store)),
        ("GET rs/studies", Native::DicomWeb(DicomWeb::Search(Level::Study))),
        ("GET rs/series", Native::DicomWeb(DicomWeb::Search(Level::Series))),
        ("GET rs/instances", Native::DicomWeb(DicomWeb::Search(Level::Instance))),
        ("GET rs/studies/{study}/series", Native::DicomWeb(DicomWeb::Search(Level::Series))),
        ("GET rs/studies/{study}/instances", Native::DicomWeb(DicomWeb::Search(Level::Instance))),
        ("GET rs/studies/{study}/series/{series}/instances", Native::DicomWeb(DicomWeb::Search(Level::Instance))),
        ("GET rs/studies/{study}", Native::DicomWeb(DicomWeb::Retrieve(Level::Study))),
        ("GET rs/studies/{study}/series/{series}", Native::DicomWeb(DicomWeb::Retrieve(Level::Series))),
        ("GET rs/studies/{study}/series/{series}/instances/{instance}", Native::DicomWeb(DicomWeb::Retrieve(Level::Instance))),
        ("GET rs/studies/{study}/metadata", Native::DicomWeb(DicomWeb::Metadata(Level::Study))),
        ("GET rs/studies/{study}/series/{series}/metadata", Native::DicomWeb(DicomWeb::Metadata(Level::Series))),
        (
            "GET rs/studies/{study}/series/{series}/instances/{instance}/metadata",
            Native::DicomWeb(DicomWeb::Metadata(Level::Instance)),
        ),
    ];

    /// Serves a request routed to this handler.
    pub async fn serve(self, app: &App, call: NativeCall) -> Result<Response<Body>, ApiError> {
        match self {
            Native::StudyEvents => study_events::serve(app, &call.tenant, &call.query).await,
            Native::StudiesCount => studies_count::serve(app, &call.tenant, &call.query).await,
            Native::StudyInstances => study_instances::serve(app, &call.tenant, &call.query).await,
            Native::Preview => preview::serve(app, &call.tenant, &call.query).await,
            Native::WholeSlide => wholeslide::serve(app, &call.tenant, &call.query).await,
            Native::SeriesDeprecation => lifecycle::deprecate_series(app, call).await,
            Native::StudyDeprecation => lifecycle::deprecate_study(app, call).await,
            Native::StudyRelocation => lifecycle::relocate_study(app, call).await,
            Native::SeriesForward => lifecycle::forward_series(app, call).await,
            Native::DicomWeb(resource) => dicomweb::serve(resource, app, call).await,
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
    pub request: Request<crate::net::body::RequestBody>,
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
