//! The study lifecycle: `POST series/deprecation`, `POST studies/deprecation`,
//! `POST studies/relocation` and `POST series/forward`. Host operations on stored data, each one unit of work that records
//! its event, answered with the seed's message and the request echoed back.

mod deprecation;
mod forward;
mod relocation;

use hyper::{Response, StatusCode};
use serde_json::{Map, Value, json};

use super::NativeCall;
use crate::app::App;
use crate::dispatch::read_body;
use crate::error::ApiError;
use crate::response::{self, Body};

pub use deprecation::{deprecate_series, deprecate_study};
pub use forward::forward_series;
pub use relocation::relocate_study;

/// The fields of a JSON request body.
struct Fields {
    body: Map<String, Value>,
    /// What is wrong with the request, all of it, for one 400.
    problems: Vec<String>,
    /// The fields used, echoed back in the answer.
    echo: Map<String, Value>,
}

impl Fields {
    /// Reads the body of `call`: 400 unless it is a JSON object.
    async fn read(app: &App, call: NativeCall) -> Result<Self, ApiError> {
        let bytes = read_body(call.request.into_body(), app.config.http.max_body_bytes).await?;
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(body)) => Ok(Self { body, problems: Vec::new(), echo: Map::new() }),
            Ok(_) => Err(ApiError::BadRequest("the request body must be a JSON object".into())),
            Err(e) => Err(ApiError::BadRequest(format!("the request body is not valid JSON: {e}"))),
        }
    }

    /// A non-empty string field, or `None` when absent.
    fn text(&mut self, name: &str) -> Option<String> {
        match self.body.get(name) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if !s.trim().is_empty() => {
                self.echo.insert(name.to_owned(), json!(s));
                Some(s.clone())
            }
            Some(_) => {
                self.problems.push(format!("`{name}` must be a non-empty string"));
                None
            }
        }
    }

    /// A mandatory non-empty string field.
    fn required(&mut self, name: &str) -> String {
        let value = self.text(name);
        if value.is_none() && !self.problems.iter().any(|p| p.contains(&format!("`{name}`"))) {
            self.problems.push(format!("`{name}` is mandatory"));
        }
        value.unwrap_or_default()
    }

    /// Exactly one of two fields: which one was given, and its value.
    fn one_of(&mut self, first: &'static str, second: &'static str) -> (&'static str, String) {
        match (self.text(first), self.text(second)) {
            (Some(value), None) => (first, value),
            (None, Some(value)) => (second, value),
            (Some(_), Some(_)) => {
                self.problems.push(format!("give only one of `{first}` and `{second}`"));
                (first, String::new())
            }
            (None, None) => {
                if !self.problems.iter().any(|p| p.contains(&format!("`{first}`")) || p.contains(&format!("`{second}`"))) {
                    self.problems.push(format!("one of `{first}` and `{second}` is mandatory"));
                }
                (first, String::new())
            }
        }
    }

    /// 400 naming every problem found, if any.
    fn check(&self, what: &str) -> Result<(), ApiError> {
        if self.problems.is_empty() {
            Ok(())
        } else {
            Err(ApiError::BadRequest(format!("invalid {what} request: {}", self.problems.join("; "))))
        }
    }

    /// The 200 answer: the seed's message and the request as understood.
    fn success(self, message: &str) -> Response<Body> {
        response::json(StatusCode::OK, &json!({ "message": message, "request": Value::Object(self.echo) }))
    }
}
