//! `POST studies/relocation`: every file of a study (by UID or accession number), instances and
//! non-DICOM slide files alike, is moved to another physical medium. Files are copied and checked against their recorded SHA-1 first,
//! without holding the index's write lock; then, in one unit of work, files that arrived
//! meanwhile are copied too, the copies are placed, the index is pointed at them and the event
//! recorded. Only once that commits are the old files removed, a minute later and only if no row
//! points at them: a failure at any point leaves the study whole where it was.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;

use hyper::Response;
use serde_json::json;

use super::Fields;
use crate::app::App;
use crate::db::Database;
use crate::db::events::{self, StudyEvent};
use crate::db::lifecycle::{self, FileKey, Lookup, StoredFile, StudyKey, StudyRow};
use crate::error::ApiError;
use crate::ingest::PlacedFile;
use crate::native::NativeCall;
use crate::response::Body;
use crate::storage::{Algorithm, StagingFile, Storage};

/// Files copied between two progress lines in the log.
const PROGRESS_EVERY: usize = 200;

/// The seed answers a failure while relocating with 409 ("system error relocating study").
fn system_error(e: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %e, "relocation failed");
    ApiError::Conflict(format!("system error relocating the study: {e}"))
}

pub async fn relocate_study(app: &App, call: NativeCall) -> Result<Response<Body>, ApiError> {
    let tenant = call.tenant.name().to_owned();
    let mut fields = Fields::read(app, call).await?;
    let (by, value) = fields.one_of("studyInstanceUid", "accessionNumber");
    let (target_kind, target) = fields.one_of("bucketName", "physicalMediumName");
    let author = fields.required("author");
    fields.check("relocation")?;
    if target_kind == "bucketName" {
        return Err(ApiError::Conflict(format!("bucket error: no bucket named `{target}` is configured")));
    }
    let storage = app.ingest.storage().clone();
    if !storage.media().any(|m| m == target) {
        return Err(ApiError::NotFoundMessage(format!("physical medium not found: no medium named `{target}`")));
    }
    let key = if by == "studyInstanceUid" { StudyKey::Uid(&value) } else { StudyKey::Accession(&value) };

    // First, without the write lock: copy every file that is not on the target yet.
    let (study, files) = {
        let mut conn = app.db.reader().acquire().await.map_err(system_error)?;
        let study = match lifecycle::find_study(&mut conn, &tenant, key).await.map_err(system_error)? {
            Lookup::Found(study) => study,
            Lookup::NotFound => return Err(ApiError::NotFoundMessage(format!("study not found: no study with {by} `{value}`"))),
            Lookup::Many => return Err(ApiError::Conflict(format!("multiple studies found with accessionNumber `{value}`"))),
        };
        let files = lifecycle::study_files(&mut conn, study.key).await.map_err(system_error)?;
        (study, files)
    };
    tracing::info!(tenant, study = %study.study_uid, target, files = files.len(), author, "relocating study");
    let mut copies = copy_all(&storage, files, &target).await?;
    // Files that arrived meanwhile are copied too, still without the lock, a few rounds at most.
    for _ in 0..COPY_ROUNDS {
        let mut conn = app.db.reader().acquire().await.map_err(system_error)?;
        let files = lifecycle::study_files(&mut conn, study.key).await.map_err(system_error)?;
        drop(conn);
        let late: Vec<StoredFile> = files.into_iter().filter(|f| !copies.contains_key(&f.key())).collect();
        if late.iter().all(|f| f.medium == target) {
            break;
        }
        copies.extend(copy_all(&storage, late, &target).await?);
    }

    // The rest runs to its end even if the client goes away: a commit must be followed by its
    // clean-up, never cut between the two.
    let keep = std::time::Duration::from_secs(app.config.storage.relocation_keep_s);
    let relocation = Relocation { db: app.db.clone(), storage, tenant: tenant.clone(), study, target, author, keep };
    let event = tokio::spawn(relocation.commit(copies)).await.map_err(system_error)??;
    if let Some(event) = event {
        app.deliver_events(&tenant, vec![event]);
    }
    Ok(fields.success("relocation successful"))
}

/// Rounds of copying files that arrived while the study was being copied, before the lock.
const COPY_ROUNDS: usize = 3;

/// A relocation whose files are copied, ready to be committed.
struct Relocation {
    db: Database,
    storage: Storage,
    tenant: String,
    study: StudyRow,
    target: String,
    author: String,
    /// How long the old copies stay after the commit, for readers that found them just before
    /// (a WADO stream opens its files one after another): `[storage] relocation_keep_s`.
    keep: std::time::Duration,
}

impl Relocation {
    /// In one unit of work: copies what is still missing, places the copies, points the index at
    /// them and records the event; then removes the old copies a while later. `None` when the
    /// study was on the target already.
    async fn commit(self, mut copies: HashMap<FileKey, StagingFile>) -> Result<Option<StudyEvent>, ApiError> {
        let Relocation { db, storage, tenant, study, target, author, keep } = self;
        let mut unit = db.begin().await.map_err(system_error)?;
        let files = lifecycle::study_files(&mut unit, study.key).await.map_err(system_error)?;
        let moving: Vec<StoredFile> = files.into_iter().filter(|f| f.medium != target).collect();
        let late: Vec<StoredFile> = moving.iter().filter(|f| !copies.contains_key(&f.key())).cloned().collect();
        copies.extend(copy_all(&storage, late, &target).await?);
        if moving.is_empty() {
            tracing::info!(tenant, study = %study.study_uid, target, "study already on the medium");
            return Ok(None);
        }
        let moves: Vec<(PathBuf, String)> =
            moving.iter().map(|f| (copies[&f.key()].path().to_owned(), f.relative_path.clone())).collect();
        let (storage_c, target_c) = (storage.clone(), target.clone());
        tokio::task::spawn_blocking(move || storage_c.place_all(&target_c, &moves))
            .await
            .map_err(system_error)?
            .map_err(system_error)?;
        // Placed: the copies are no longer in staging; until the unit commits they are removed on failure.
        let placed: Vec<PlacedFile> = moving
            .iter()
            .map(|f| {
                if let Some(copy) = copies.remove(&f.key()) {
                    copy.keep();
                }
                PlacedFile::new(storage.clone(), target.clone(), f.relative_path.clone())
            })
            .collect();
        for file in &moving {
            lifecycle::set_medium(&mut unit, file, &target).await.map_err(system_error)?;
        }
        let from: BTreeSet<&str> = moving.iter().map(|f| f.medium.as_str()).collect();
        let detail = json!({ "physicalMediumName": target, "from": from, "instances": moving.len(), "author": author });
        let event = events::record(&mut unit, db.backend(), &tenant, "STUDY_RELOCATED", &study.study_uid, detail)
            .await
            .map_err(system_error)?;
        unit.commit().await.map_err(system_error)?;
        placed.into_iter().for_each(PlacedFile::keep);
        tracing::info!(tenant, study = %study.study_uid, target, instances = moving.len(), author, "study relocated");
        tokio::spawn(remove_old_copies(db, storage, moving, keep));
        Ok(Some(event))
    }
}

/// Removes the old copies of relocated files after `keep`, each only if no row
/// points at it again by then (a relocation back, say). A stop before that leaves them behind,
/// unreferenced, which loses nothing.
async fn remove_old_copies(db: Database, storage: Storage, files: Vec<StoredFile>, keep: std::time::Duration) {
    tokio::time::sleep(keep).await;
    let mut removed = 0usize;
    for file in files {
        match lifecycle::is_referenced(db.reader(), &file.medium, &file.relative_path).await {
            Ok(false) => {
                let storage = storage.clone();
                let _ = tokio::task::spawn_blocking(move || storage.remove(&file.medium, &file.relative_path)).await;
                removed += 1;
            }
            Ok(true) => {}
            Err(e) => tracing::warn!(path = %file.relative_path, error = %e, "old copy kept: cannot check whether it is referenced"),
        }
    }
    tracing::info!(removed, "old copies of a relocated study removed");
}

/// Copies files not on `target` yet into staging files there, each checked against its recorded
/// digest, off the async threads, logging progress. Copies are removed if dropped unused.
async fn copy_all(storage: &Storage, files: Vec<StoredFile>, target: &str) -> Result<HashMap<FileKey, StagingFile>, ApiError> {
    let (storage, target) = (storage.clone(), target.to_owned());
    tokio::task::spawn_blocking(move || {
        let pending: Vec<&StoredFile> = files.iter().filter(|f| f.medium != target).collect();
        let mut copies = HashMap::with_capacity(pending.len());
        let mut bytes = 0u64;
        for (done, file) in pending.iter().enumerate() {
            let algorithm = Algorithm::of_recorded(&file.digest).ok_or_else(|| {
                system_error(format!("`{}` on medium `{}` has no digest to check a copy against", file.relative_path, file.medium))
            })?;
            let (copy, len, digest) =
                storage.copy_to_staging(&file.medium, &file.relative_path, &target, algorithm).map_err(system_error)?;
            if digest != file.digest {
                return Err(system_error(format!(
                    "`{}` on medium `{}` does not match its recorded digest: the stored file may be damaged",
                    file.relative_path, file.medium
                )));
            }
            bytes += len;
            copies.insert(file.key(), copy);
            if (done + 1) % PROGRESS_EVERY == 0 {
                tracing::info!(copied = done + 1, of = pending.len(), bytes, target, "relocation in progress");
            }
        }
        Ok(copies)
    })
    .await
    .map_err(system_error)?
}
