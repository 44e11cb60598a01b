//! The `events` capability: appends to the study event feed in the request's unit of work.

use super::{Capability, HostError, RequestState};
use crate::db::events;
use crate::runtime::bindings::v0_1_1::wasmpacs::plugin::events as wit;

impl wit::Host for RequestState {
    async fn emit(
        &mut self,
        kind: String,
        study_uid: Option<String>,
        detail: String,
    ) -> wasmtime::Result<Result<i64, HostError>> {
        self.require(Capability::Events)?;
        if kind.trim().is_empty() {
            return Ok(Err(HostError::Invalid("an event needs a kind".into())));
        }
        if let Err(e) = crate::db::values::event_study(study_uid.as_deref()) {
            return Ok(Err(HostError::Invalid(e.to_string())));
        }
        if serde_json::from_str::<serde_json::Value>(&detail).is_err() {
            return Ok(Err(HostError::Invalid("event detail must be JSON".into())));
        }
        let backend = self.db.backend();
        let tenant = self.tenant.clone();
        let plugin = self.plugin.clone();
        let conn = match self.unit().await {
            Ok(conn) => conn,
            Err(e) => return Ok(Err(e)),
        };
        Ok(events::append(conn, backend, &tenant, &kind, study_uid.as_deref(), &detail).await.map_err(|e| {
            tracing::error!(plugin = %plugin, error = %e, "cannot record event");
            HostError::Internal("database error".into())
        }))
    }
}
