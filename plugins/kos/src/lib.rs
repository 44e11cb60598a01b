//! The KOS family of the PACS APIs as a wasmpacs plugin: `POST studies/createKos` builds a Key
//! Object Selection document over a study and stores it in the study as a new KO series;
//! `GET studies/kos` builds the same kind of document and returns it without storing it (the
//! manifest of an IHE XDS-I.b RAD-68 transaction). The rules (see `rules`) live here; the host
//! only reads the archive index and stores the finished instance.

mod document;
mod failure;
mod rules;
mod uid;

use serde_json::json;
use wasmpacs_sdk::{Header, Plugin, Request, Response, archive, events, settings};

use document::{Document, Reference};
use failure::{Code, Failure};
use rules::ItemKind;

struct Kos;

impl Plugin for Kos {
    fn handle(request: Request) -> Response {
        let answer = match (request.method.as_str(), request.path.as_str()) {
            ("POST", "studies/createKos") => create(&request),
            ("GET", "studies/kos") => generate(&request),
            (method, path) => Err(Failure::new(Code::InternalGeneric, format!("the kos plugin does not serve {method} {path}"))),
        };
        answer.unwrap_or_else(Failure::into_response)
    }
}

wasmpacs_sdk::export_plugin!(Kos);

/// `POST studies/createKos`: a new KOS over the study, stored in it as a new KO series.
fn create(request: &Request) -> Result<Response, Failure> {
    let body: serde_json::Value = serde_json::from_slice(&request.body)
        .map_err(|e| Failure::new(Code::MalformedJson, format!("the request body is not valid JSON: {e}")))?;
    let field = |key: &str| {
        body.get(key)
            .and_then(|v| v.as_str())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| Failure::new(Code::MalformedJson, format!("`{key}` is missing or is not a non-blank string")))
    };
    let study_uid = field("studyInstanceUid")?;
    let calling_ae = field("callingAE")?;
    let kos = build(&study_uid, Purpose::Store)?;
    let stored = archive::store_instance(&calling_ae, &kos.part10).map_err(Failure::store)?;
    let detail = json!({
        "sopInstanceUid": stored.sop_instance_uid,
        "seriesInstanceUid": stored.series_uid,
        "callingAE": calling_ae,
        "title": rules::TITLE.meaning,
        "referencedInstances": kos.referenced,
    });
    events::emit("KOS_CREATED", Some(&study_uid), &detail.to_string())
        .map_err(|e| Failure::new(Code::InternalSql, format!("cannot record the KOS_CREATED event: {e:?}")))?;
    Ok(wasmpacs_sdk::json(200, &json!({ "success": true, "sopInstanceUid": stored.sop_instance_uid })))
}

/// `GET studies/kos?studyUid=`: the KOS over the study as `application/dicom`, not stored.
fn generate(request: &Request) -> Result<Response, Failure> {
    let study_uid = request
        .query_param("studyUid")
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| Failure::new(Code::MissingParameter, "the query parameter `studyUid` is required"))?;
    let kos = build(study_uid, Purpose::Answer)?;
    Ok(Response {
        status: 200,
        headers: vec![
            Header { name: "content-type".into(), value: "application/dicom".into() },
            Header { name: "content-disposition".into(), value: format!("attachment; filename=\"{}\"", kos.sop_instance_uid) },
        ],
        body: kos.part10,
    })
}

/// A built document.
struct Built {
    sop_instance_uid: String,
    part10: Vec<u8>,
    referenced: usize,
}

/// What a document is built for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Purpose {
    /// To be stored in the study, as a new series.
    Store,
    /// To be answered only.
    Answer,
}

/// Reads the study from the archive and builds its KOS as the rules say.
fn build(study_uid: &str, purpose: Purpose) -> Result<Built, Failure> {
    let study = archive::find_study(study_uid)
        .map_err(|e| Failure::archive("cannot read the study", e))?
        .filter(|s| !s.deprecated)
        .ok_or_else(|| Failure::new(Code::StudyNotFound, format!("study `{study_uid}` not found")))?;
    if purpose == Purpose::Store {
        // Two documents stored at once in the study take the next Series Number in turn.
        archive::lock_study(study.key).map_err(|e| Failure::archive("cannot lock the study", e))?;
    }
    let patient = archive::get_patient(study.patient_key).map_err(|e| Failure::archive("cannot read the patient", e))?;
    let instances = archive::list_instances(study.key).map_err(|e| Failure::archive("cannot list the instances", e))?;
    let series = archive::list_series(study.key).map_err(|e| Failure::archive("cannot list the series", e))?;
    let references: Vec<Reference> = instances
        .iter()
        .filter(|i| rules::include(i))
        .map(|i| Reference {
            series_uid: i.series_uid.clone(),
            sop_class_uid: i.sop_class_uid.clone(),
            sop_instance_uid: i.sop_instance_uid.clone(),
            kind: ItemKind::of(&i.sop_class_uid),
        })
        .collect();
    if references.is_empty() {
        return Err(Failure::new(
            Code::StudyNotFound,
            format!("study `{study_uid}` has no instances a Key Object Selection document can reference"),
        ));
    }
    let root = settings::get("uid_root").filter(|r| !r.trim().is_empty()).unwrap_or_else(|| uid::DEFAULT_ROOT.to_owned());
    let root = root.trim();
    uid::check_root(root).map_err(|e| Failure::new(Code::InternalGeneric, e))?;
    let new_uid = || uid::new_uid(root).map_err(|e| Failure::new(Code::InternalGeneric, e));
    let (sop_instance_uid, series_uid) = (new_uid()?, new_uid()?);
    let document = Document {
        patient: &patient,
        study: &study,
        sop_instance_uid: sop_instance_uid.clone(),
        series_uid,
        series_number: rules::series_number(&series),
        series_description: rules::SERIES_DESCRIPTION,
        instance_number: 1,
        title: &rules::TITLE,
        retrieve_ae_title: settings::get("retrieve_ae_title").map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()),
        references,
        created: wasmpacs_sdk::clock::now(),
    };
    let referenced = document.references.len();
    let part10 = document.to_part10().map_err(|e| Failure::new(Code::InternalDicom, e))?;
    Ok(Built { sop_instance_uid, part10, referenced })
}
