//! The probes, answered without a key: `GET /health` (the process is up and serving) and
//! `GET /ready` (the database answers with this binary's migrations applied, every filesystem
//! medium takes a new file, every plugin is loaded). Not ready is a 503 naming each failing
//! part; the causes go to the log, never into the body.

use std::time::Duration;

use hyper::{Response, StatusCode};
use serde_json::{Map, Value, json};

use crate::app::App;
use crate::response::{self, Body};

/// Longest wait for the database's answer: a probe must answer while the database does not.
const DATABASE_WAIT: Duration = Duration::from_secs(3);

/// A probe's path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    Health,
    Ready,
}

impl Probe {
    /// The probe served at `path`, if any.
    pub fn at(path: &str) -> Option<Self> {
        match path {
            "/health" => Some(Probe::Health),
            "/ready" => Some(Probe::Ready),
            _ => None,
        }
    }

    pub async fn answer(self, app: &App) -> Response<Body> {
        match self {
            Probe::Health => response::json(StatusCode::OK, &json!({ "status": "up" })),
            Probe::Ready => ready(app).await,
        }
    }
}

/// Each part's state (`"ok"` or what is wrong), and 503 with the failing parts named when any is.
async fn ready(app: &App) -> Response<Body> {
    let mut checks = Map::new();
    let mut failing = Vec::new();
    let mut note = |part: String, problem: Option<String>| {
        if let Some(problem) = &problem {
            failing.push(format!("{part}: {problem}"));
        }
        checks.insert(part, json!(problem.as_deref().unwrap_or("ok")));
    };

    let (database, migrations) = match tokio::time::timeout(DATABASE_WAIT, app.db.pending_migrations()).await {
        Ok(Ok(pending)) if pending.is_empty() => (None, None),
        Ok(Ok(pending)) => (None, Some(format!("not applied: {pending:?}"))),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "ready: the database does not answer");
            (Some("does not answer".to_owned()), Some("unknown".to_owned()))
        }
        Err(_) => {
            tracing::warn!(wait = ?DATABASE_WAIT, "ready: the database did not answer in time");
            (Some("does not answer in time".to_owned()), Some("unknown".to_owned()))
        }
    };
    note("database".to_owned(), database);
    note("migrations".to_owned(), migrations);

    let storage = app.ingest.storage().clone();
    let media: Vec<String> = storage.media().map(str::to_owned).collect();
    let probed = tokio::task::spawn_blocking(move || media.into_iter().map(|m| (storage.probe(&m), m)).collect::<Vec<_>>()).await;
    for (result, medium) in probed.unwrap_or_default() {
        let problem = result.err().map(|e| {
            tracing::warn!(%medium, error = %e, "ready: a medium is not writable");
            "not writable".to_owned()
        });
        note(format!("medium {medium}"), problem);
    }

    for plugin in app.runtime.describe() {
        let problem = plugin.digest.is_empty().then(|| "not loaded".to_owned());
        note(format!("plugin {}", plugin.name), problem);
    }

    let status = if failing.is_empty() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let state = if failing.is_empty() { "ready" } else { "not ready" };
    response::json(status, &json!({ "status": state, "failing": failing, "checks": Value::Object(checks) }))
}
