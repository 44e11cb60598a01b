//! `GET studyInstances?studyUid=`: a JSON array with one object per instance of the study,
//! carrying exactly the seed's attributes (absent values are `null`).

use hyper::{Response, StatusCode};
use serde_json::{Map, Value, json};

use super::single_param;
use crate::app::App;
use crate::auth::Tenant;
use crate::db::DbError;
use crate::db::query::{InstanceRow, study_instances, study_key};
use crate::error::ApiError;
use crate::response::{self, Body};

/// Instance-level attributes recorded at ingest, under the names the seed gives them.
const RECORDED: &[&str] = &[
    "acquisitionTime",
    "bodyPartExamined",
    "codeMeaning",
    "contentDate",
    "contentTime",
    "imageLaterality",
    "imageType",
    "laterality",
    "protocolName",
    "viewPosition",
];

pub async fn serve(app: &App, tenant: &Tenant, query: &[(String, String)]) -> Result<Response<Body>, ApiError> {
    let study_uid = single_param(query, "studyUid")?
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ApiError::BadRequest("parameter `studyUid` is required".into()))?;
    let db = |e: sqlx::Error| ApiError::from(DbError::from(e));
    let study = study_key(app.db.reader(), tenant.name(), study_uid)
        .await
        .map_err(db)?
        .ok_or_else(|| ApiError::NotFoundMessage(format!("no study `{study_uid}`")))?;
    let instances = study_instances(app.db.reader(), study).await.map_err(db)?;
    let items: Vec<Value> = instances.iter().map(to_json).collect();
    Ok(response::json(StatusCode::OK, &Value::Array(items)))
}

/// The seed's attributes of one instance: numbers for `numberOfFrames` and `seriesNumber`,
/// text otherwise (multi-valued `imageType` as DICOM writes it, values joined by `\`).
fn to_json(row: &InstanceRow) -> Value {
    let mut object = Map::new();
    for name in RECORDED {
        let value = row.attributes.get(*name).cloned().unwrap_or(Value::Null);
        object.insert((*name).to_owned(), value);
    }
    let frames = row.attributes.get("numberOfFrames").and_then(|v| match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    });
    object.insert("numberOfFrames".into(), json!(frames));
    object.insert("modality".into(), json!(row.modality));
    object.insert("seriesDescription".into(), json!(row.series_description));
    object.insert("seriesInstanceUid".into(), json!(row.series_uid));
    object.insert("seriesNumber".into(), json!(row.series_number));
    object.insert("sopClassUid".into(), json!(row.sop_class_uid));
    object.insert("sopInstanceUid".into(), json!(row.sop_instance_uid));
    object.insert("studyDescription".into(), json!(row.study_description));
    object.insert("studyInstanceUid".into(), json!(row.study_uid));
    Value::Object(object)
}
