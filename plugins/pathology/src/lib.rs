//! The digital pathology family of the PACS APIs as a wasmpacs plugin:
//! `POST pathoRsListener/{callingAet}/studies` stores a non-DICOM slide file, or a MIRAX archive,
//! together with a DICOM sidecar describing it. The sidecar is either built here from the
//! `metadata` part (attributes, specimen hierarchy, derived UIDs) or sent back by the client as
//! the `sidecar` part. The host has already streamed every part to a staged file; it registers
//! the sidecar as an instance and files the slide beside it (`archive::store-slide`).

mod attributes;
mod elements;
mod hierarchy;
mod inspect;
mod integrity;
mod metadata;
mod parts;
mod sidecar;
mod slide;
mod uid;

use serde_json::json;
use wasmpacs_sdk::{Plugin, Request, Response, archive, error, info};

use metadata::Metadata;
use parts::{Description, Parts};
use sidecar::Draft;
use slide::Kind;

struct Pathology;

type Answer = Result<Response, Response>;

impl Plugin for Pathology {
    fn handle(request: Request) -> Response {
        let segments: Vec<&str> = request.path.split('/').collect();
        let answer = match (request.method.as_str(), segments.as_slice()) {
            ("POST", ["pathoRsListener", _, "studies"]) => store(&request),
            (method, _) => Err(error(404, format!("the pathology plugin does not serve {method} {}", request.path))),
        };
        answer.unwrap_or_else(|e| e)
    }
}

wasmpacs_sdk::export_plugin!(Pathology);

/// How the sidecar comes about.
enum Prepared {
    /// Built from the metadata; its Study Instance UID may still be needed.
    Built { metadata: Metadata, draft: Draft },
    /// Sent by the client, stored unchanged.
    Sent { bytes: Vec<u8>, container_identifier: Option<String> },
}

/// `POST pathoRsListener/{callingAet}/studies`: checks the parts (400), the file against the
/// client's hash and length (409), then stores the slide with its sidecar.
fn store(request: &Request) -> Answer {
    let calling_ae = request
        .params
        .iter()
        .find(|(name, _)| name == "callingAet")
        .map(|(_, value)| value.trim())
        .filter(|value| !value.is_empty())
        .ok_or_else(|| error(400, "the calling AE title is missing: pathoRsListener/<CALLING_AET>/studies"))?;
    let parts = Parts::sort(&request.files)?;
    let file_name = parts::file_name(parts.file)?;
    let kind = Kind::of_upload(parts.file);

    let prepared = match parts.description {
        Description::Metadata(part) => {
            let metadata = Metadata::parse(&parts::text(part)?)?;
            let draft = Draft::new(&metadata, &file_name, &wasmpacs_sdk::clock::now())?;
            Prepared::Built { metadata, draft }
        }
        Description::Sidecar(part) => {
            let bytes = parts::sidecar(part)?;
            let checked = inspect::check(&bytes, &file_name, kind)?;
            Prepared::Sent { bytes, container_identifier: checked.container_identifier }
        }
    };
    let descriptor = match kind {
        Kind::Mirax => Some(slide::mirax_descriptor(parts.file)?),
        Kind::Single => None,
    };
    integrity::check(&parts, descriptor.as_deref())?;

    let (sidecar, container_identifier) = match prepared {
        Prepared::Built { metadata, draft } => {
            let study_uid = if draft.needs_study_uid() { Some(study_uid(&metadata.accession_number)?) } else { None };
            (draft.finish(study_uid.as_deref())?, Some(metadata.container_identifier))
        }
        Prepared::Sent { bytes, container_identifier } => (bytes, container_identifier),
    };
    let stored = archive::store_slide(calling_ae, parts.file.id, &sidecar)?;
    info(&format!(
        "stored {} `{file_name}` (container {}) from {calling_ae} as {} in study {}",
        kind.label(),
        container_identifier.as_deref().unwrap_or("unknown"),
        stored.sop_instance_uid,
        stored.study_uid,
    ));
    Ok(wasmpacs_sdk::json(
        200,
        &json!({
            "studyInstanceUid": stored.study_uid,
            "seriesInstanceUid": stored.series_uid,
            "sopInstanceUid": stored.sop_instance_uid,
            "containerIdentifier": container_identifier,
        }),
    ))
}

/// The study a slide of this case joins: the one live study with the Accession Number, else a
/// UID derived from it (the same for every slide of the case).
fn study_uid(accession_number: &str) -> Result<String, Response> {
    let studies = archive::find_studies_by_accession(accession_number)?;
    let mut live = studies.into_iter().filter(|s| !s.deprecated);
    Ok(match (live.next(), live.next()) {
        (Some(study), None) => study.study_uid,
        _ => uid::study(accession_number),
    })
}
