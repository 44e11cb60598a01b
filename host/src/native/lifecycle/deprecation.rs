//! `POST series/deprecation` and `POST studies/deprecation`: a series (by UID or container
//! identifier) or a study (by UID or accession number) is marked deprecated, with its author and
//! reason recorded in the event feed. Deprecated data is hidden from every query and count; its
//! files are kept.

use hyper::Response;
use serde_json::json;

use super::Fields;
use crate::app::App;
use crate::db::lifecycle::{self, Lookup, SeriesKey, StudyKey};
use crate::db::{UnitOfWork, events};
use crate::error::ApiError;
use crate::native::NativeCall;
use crate::response::Body;

/// The seed answers a failure of the database with 409 ("system error deprecating").
fn system_error(what: &str) -> impl FnOnce(sqlx::Error) -> ApiError + '_ {
    move |e| {
        tracing::error!(error = %e, "deprecation failed");
        ApiError::Conflict(format!("system error deprecating the {what}: {e}"))
    }
}

pub async fn deprecate_series(app: &App, call: NativeCall) -> Result<Response<Body>, ApiError> {
    let tenant = call.tenant.name().to_owned();
    let mut fields = Fields::read(app, call).await?;
    let (by, value) = fields.one_of("seriesInstanceUid", "containerIdentifier");
    let author = fields.required("author");
    let reason = fields.required("reason");
    fields.check("deprecation")?;
    let key = if by == "seriesInstanceUid" { SeriesKey::Uid(&value) } else { SeriesKey::Container(&value) };

    let mut unit = app.db.begin().await.map_err(|e| ApiError::Conflict(format!("system error deprecating the series: {e}")))?;
    let series = match lifecycle::find_series(&mut unit, &tenant, key).await.map_err(system_error("series"))? {
        Lookup::Found(series) => series,
        Lookup::NotFound => return Err(ApiError::NotFoundMessage(format!("series not found: no series with {by} `{value}`"))),
        Lookup::Many => {
            return Err(ApiError::Conflict(format!("multiple series found with containerIdentifier `{value}`")));
        }
    };
    if series.study_deprecated {
        return Err(ApiError::Conflict(format!(
            "the study `{}` of series `{}` is deprecated already",
            series.study_uid, series.series_uid
        )));
    }
    let deprecated = match series.deprecated {
        true => None,
        false => lifecycle::deprecate_series(&mut unit, &series).await.map_err(system_error("series"))?,
    };
    let Some(study_uid) = deprecated else {
        return Err(ApiError::Conflict(format!("series `{}` has already a deprecation", series.series_uid)));
    };
    let detail = json!({ "seriesInstanceUid": series.series_uid, "author": author, "reason": reason });
    record_and_commit(app, unit, &tenant, "SERIES_DEPRECATED", &study_uid, detail, "series").await?;
    tracing::info!(tenant, series = %series.series_uid, study = %study_uid, author, reason, "series deprecated");
    Ok(fields.success("deprecation successful"))
}

pub async fn deprecate_study(app: &App, call: NativeCall) -> Result<Response<Body>, ApiError> {
    let tenant = call.tenant.name().to_owned();
    let mut fields = Fields::read(app, call).await?;
    let (by, value) = fields.one_of("studyInstanceUid", "accessionNumber");
    let author = fields.required("author");
    let reason = fields.required("reason");
    fields.check("deprecation")?;
    let key = if by == "studyInstanceUid" { StudyKey::Uid(&value) } else { StudyKey::Accession(&value) };

    let mut unit = app.db.begin().await.map_err(|e| ApiError::Conflict(format!("system error deprecating the study: {e}")))?;
    let study = match lifecycle::find_study(&mut unit, &tenant, key).await.map_err(system_error("study"))? {
        Lookup::Found(study) => study,
        Lookup::NotFound => return Err(ApiError::NotFoundMessage(format!("study not found: no study with {by} `{value}`"))),
        Lookup::Many => return Err(ApiError::Conflict(format!("multiple studies found with accessionNumber `{value}`"))),
    };
    if study.deprecated || !lifecycle::deprecate_study(&mut unit, &study).await.map_err(system_error("study"))? {
        return Err(ApiError::Conflict(format!("study `{}` has already a deprecation", study.study_uid)));
    }
    let detail = json!({ "author": author, "reason": reason });
    record_and_commit(app, unit, &tenant, "STUDY_DEPRECATED", &study.study_uid, detail, "study").await?;
    tracing::info!(tenant, study = %study.study_uid, author, reason, "study deprecated");
    Ok(fields.success("deprecation successful"))
}

/// Records the deprecation's event, commits the unit, and hands the event to the plugins.
async fn record_and_commit(
    app: &App,
    mut unit: UnitOfWork,
    tenant: &str,
    kind: &str,
    study_uid: &str,
    detail: serde_json::Value,
    what: &str,
) -> Result<(), ApiError> {
    let event = events::record(&mut unit, app.db.backend(), tenant, kind, study_uid, detail).await.map_err(system_error(what))?;
    unit.commit().await.map_err(system_error(what))?;
    app.deliver_events(tenant, vec![event]);
    Ok(())
}
