//! `GET studyEvents?offsetId=N[&limit=M]`: the tenant's study events after offset N, oldest first.

use hyper::{Response, StatusCode};
use serde_json::json;

use super::single_param;
use crate::app::App;
use crate::auth::Tenant;
use crate::db::events;
use crate::error::ApiError;
use crate::response::{self, Body};

/// Events per page when the client does not say.
const DEFAULT_LIMIT: i64 = 100;
/// Most events per page.
const MAX_LIMIT: i64 = 1000;

pub async fn serve(app: &App, tenant: &Tenant, query: &[(String, String)]) -> Result<Response<Body>, ApiError> {
    let offset = single_param(query, "offsetId")?
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ApiError::BadRequest("parameter `offsetId` is required".into()))?;
    let offset: i64 =
        offset.parse().ok().filter(|o| *o >= 0).ok_or_else(|| {
            ApiError::BadRequest(format!("parameter `offsetId` must be a non-negative integer, not `{offset}`"))
        })?;
    let limit = match single_param(query, "limit")? {
        None => DEFAULT_LIMIT,
        Some(l) => l
            .parse::<i64>()
            .ok()
            .filter(|l| (1..=MAX_LIMIT).contains(l))
            .ok_or_else(|| ApiError::BadRequest(format!("parameter `limit` must be an integer from 1 to {MAX_LIMIT}")))?,
    };
    // One more than the page tells whether another page follows.
    let mut events = events::after(app.db.reader(), tenant.name(), offset, limit + 1)
        .await
        .map_err(|e| ApiError::from(crate::db::DbError::from(e)))?;
    let more = events.len() as i64 > limit;
    events.truncate(limit as usize);
    let next = events.last().map(|e| e.offset).unwrap_or(offset);
    let items: Vec<_> = events
        .iter()
        .map(|e| {
            json!({
                "offsetId": e.offset,
                "eventType": e.kind,
                "studyInstanceUid": e.study_uid,
                "detail": e.detail,
                "createdAt": e.created_at,
            })
        })
        .collect();
    Ok(response::json(StatusCode::OK, &json!({ "offsetId": offset, "nextOffsetId": next, "more": more, "events": items })))
}
