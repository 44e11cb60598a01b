//! Guest SDK for wasmpacs plugins: the WIT 0.1.1 bindings, an `export_plugin!` macro, and small
//! helpers that keep plugin code about decisions rather than plumbing.
//!
//! ```ignore
//! struct MyPlugin;
//! impl wasmpacs_sdk::Plugin for MyPlugin {
//!     fn handle(request: Request) -> Response { json(200, &serde_json::json!({"ok": true})) }
//! }
//! wasmpacs_sdk::export_plugin!(MyPlugin);
//! ```

mod body;
pub mod clock;
pub mod patients;

/// Generated bindings of `wasmpacs:plugin@0.1.1`.
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit/v0.1.1",
        world: "plugin",
        pub_export_macro: true,
        export_macro_name: "export_bindings",
        default_bindings_module: "wasmpacs_sdk::bindings",
    });
}

pub use bindings::wasmpacs::plugin::{archive, events, log, settings, staging, types};
pub use body::{JsonBody, is_date};
pub use types::{Header, HostError, Request, Response, StudyEvent};
/// DICOM value rules: the fields the host checks (see [`HostError::naming`]).
pub use wasmpacs_vr as vr;

/// What a plugin implements; `export_plugin!` turns it into the component's exports.
pub trait Plugin {
    /// Answers one HTTP request routed to the plugin. A status of 400 or more rolls back every
    /// archive change the request made.
    fn handle(request: Request) -> Response;

    /// Called for the event kinds listed in the plugin's `hooks` in plugins.toml.
    fn on_event(_event: StudyEvent) -> Result<(), String> {
        Ok(())
    }
}

/// Exports a type implementing [`Plugin`] as the component's handler and hooks.
#[macro_export]
macro_rules! export_plugin {
    ($ty:ident) => {
        impl $crate::bindings::exports::wasmpacs::plugin::handler::Guest for $ty {
            fn handle(request: $crate::Request) -> $crate::Response {
                <$ty as $crate::Plugin>::handle(request)
            }
        }
        impl $crate::bindings::exports::wasmpacs::plugin::hooks::Guest for $ty {
            fn on_event(event: $crate::StudyEvent) -> Result<(), String> {
                <$ty as $crate::Plugin>::on_event(event)
            }
        }
        $crate::bindings::export_bindings!($ty with_types_in $crate::bindings);
    };
}

/// A JSON response.
pub fn json(status: u16, value: &serde_json::Value) -> Response {
    Response {
        status,
        headers: vec![Header { name: "content-type".into(), value: "application/json".into() }],
        body: serde_json::to_vec(value).unwrap_or_default(),
    }
}

/// A JSON error response: `{"error": <status text>, "message": <message>}`.
pub fn error(status: u16, message: impl Into<String>) -> Response {
    json(status, &serde_json::json!({ "error": reason(status), "message": message.into() }))
}

fn reason(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        404 => "Not Found",
        409 => "Conflict",
        500 => "Internal Server Error",
        _ => "Error",
    }
}

impl From<HostError> for Response {
    /// The answer for a failed host operation: 409, 404, 400 or 500.
    fn from(e: HostError) -> Self {
        match e {
            HostError::Conflict(m) => error(409, m),
            HostError::NotFound(m) => error(404, m),
            HostError::Invalid(m) => error(400, m),
            HostError::Internal(m) => error(500, m),
        }
    }
}

impl HostError {
    /// The same error, with a field the host refused (named by its DICOM keyword, e.g.
    /// "PatientName: PN allows at most 64 characters per component group") named as the client
    /// sent it: `names` pairs fields with the request's names, e.g. `(vr::PATIENT_NAME,
    /// "patientName")`.
    pub fn naming(self, names: &[(vr::Field, &str)]) -> HostError {
        match self {
            HostError::Invalid(m) => HostError::Invalid(vr::renamed(&m, names).unwrap_or(m)),
            other => other,
        }
    }
}

impl Request {
    /// The first value of a query parameter.
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// A request header (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|h| h.name.eq_ignore_ascii_case(name)).map(|h| h.value.as_str())
    }
}

/// Writes to the host log at info level.
pub fn info(message: &str) {
    log::log(log::Level::Info, message);
}
