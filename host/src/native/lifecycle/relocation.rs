//! `POST studies/relocation`: every file of a study (by UID or accession number), instances and
//! non-DICOM slide files alike, is moved to another physical medium or to a bucket. Files are
//! copied and checked against their recorded digest first, without holding the index's write
//! lock; then, in one unit of work, files that arrived meanwhile are copied too, the copies are
//! placed, the index is pointed at them, the event recorded and the old files' removal scheduled
//! ([`crate::removal`]: `relocation_keep_s` later, and only if no row points at them by then). A
//! failure at any point leaves the study whole where it was. Every copy, in a bucket or on a
//! medium, has a name of its own (see [`renamed`]), so that no other relocation's clean-up can
//! take it, nor it another's. A
//! study in a bucket moves to a physical medium, never to another bucket (the seed's
//! "relocation not supported").

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};

use futures::StreamExt;
use hyper::Response;
use serde_json::json;

use super::Fields;
use crate::app::App;
use crate::db::Database;
use crate::db::events::{self, StudyEvent};
use crate::db::lifecycle::{self, FileKey, Lookup, StoredFile, StudyKey, StudyRow};
use crate::db::removals;
use crate::error::ApiError;
use crate::ingest::PlacedFile;
use crate::native::NativeCall;
use crate::removal::Remover;
use crate::response::Body;
use crate::storage::{Algorithm, StagingFile, Storage, StorageError, renamed};

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
    let storage = app.ingest.storage().clone();
    if target_kind == "bucketName" {
        if let Some(why) = storage.unusable_bucket(&target) {
            return Err(ApiError::Conflict(format!(
                "bucket error: the configuration of bucket `{target}` cannot be loaded: {why}"
            )));
        }
        if storage.bucket(&target).is_none() {
            return Err(ApiError::Conflict(format!("bucket error: no bucket named `{target}` is configured")));
        }
    } else if !storage.media().any(|m| m == target) {
        return Err(ApiError::NotFoundMessage(format!("physical medium not found: no medium named `{target}`")));
    }
    let key = if by == "studyInstanceUid" { StudyKey::Uid(&value) } else { StudyKey::Accession(&value) };
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
    refuse_bucket_to_bucket(&storage, &files, &target)?;

    // The rest runs to its end even if the client goes away: copies in flight finish (an upload
    // cut half way would leave its parts in the bucket) and are kept or removed, and a commit is
    // followed by its clean-up.
    let keep = std::time::Duration::from_secs(app.config.storage.relocation_keep_s);
    let relocation = Relocation {
        db: app.db.clone(),
        storage,
        remover: app.remover.clone(),
        tenant: tenant.clone(),
        study,
        target,
        target_kind,
        author,
        keep,
    };
    let event = tokio::spawn(relocation.run(files)).await.map_err(system_error)??;
    if let Some(event) = event {
        app.deliver_events(&tenant, vec![event]);
    }
    Ok(fields.success("relocation successful"))
}

/// Rounds of copying files that arrived while the study was being copied, before the lock.
const COPY_ROUNDS: usize = 3;

/// A relocation of a study to a medium or bucket.
struct Relocation {
    db: Database,
    storage: Storage,
    remover: Remover,
    tenant: String,
    study: StudyRow,
    target: String,
    /// `physicalMediumName` or `bucketName`, as the request named the target.
    target_kind: &'static str,
    author: String,
    /// How long the old copies stay after the commit, for readers that found them just before
    /// (a WADO stream opens its files one after another): `[storage] relocation_keep_s`.
    keep: std::time::Duration,
}

impl Relocation {
    /// Copies the study's `files` without holding the index's write lock, then those that
    /// arrived meanwhile (a few rounds at most), then commits.
    async fn run(self, files: Vec<StoredFile>) -> Result<Option<StudyEvent>, ApiError> {
        let (storage, target) = (&self.storage, self.target.as_str());
        tracing::info!(tenant = self.tenant, study = %self.study.study_uid, target, files = files.len(), author = self.author, "relocating study");
        let mut copies = copy_all(storage, files, target).await?;
        for _ in 0..COPY_ROUNDS {
            let mut conn = self.db.reader().acquire().await.map_err(system_error)?;
            let files = lifecycle::study_files(&mut conn, self.study.key).await.map_err(system_error)?;
            drop(conn);
            refuse_bucket_to_bucket(storage, &files, target)?;
            let late: Vec<StoredFile> = files.into_iter().filter(|f| !copies.contains_key(&f.key())).collect();
            if late.iter().all(|f| f.medium == target) {
                break;
            }
            copies.extend(copy_all(storage, late, target).await?);
        }
        self.commit(copies).await
    }

    /// In one unit of work, with the study's row locked: copies what is still missing, places the
    /// copies, points the index at them, records the event and schedules the old copies' removal
    /// (see [`crate::removal`]).
    /// `None` when the study was on the target already.
    async fn commit(self, mut copies: HashMap<FileKey, Copied>) -> Result<Option<StudyEvent>, ApiError> {
        let Relocation { db, storage, remover, tenant, study, target, target_kind, author, keep } = self;
        let mut unit = db.begin().await.map_err(system_error)?;
        // Another relocation of the study commits first, or waits until this one has: the files
        // read next are where the index points now, so that no copy is left named by no row.
        crate::db::lock_studies(&mut unit, &[study.key]).await.map_err(system_error)?;
        let files = lifecycle::study_files(&mut unit, study.key).await.map_err(system_error)?;
        refuse_bucket_to_bucket(&storage, &files, &target)?;
        let moving: Vec<StoredFile> = files.into_iter().filter(|f| f.medium != target).collect();
        let late: Vec<StoredFile> = moving.iter().filter(|f| !copies.contains_key(&f.key())).cloned().collect();
        copies.extend(copy_all(&storage, late, &target).await?);
        if moving.is_empty() {
            tracing::info!(tenant, study = %study.study_uid, target, "study already on the medium");
            return Ok(None);
        }
        // Until the unit commits, what is placed is removed again on failure.
        let mut placed = Vec::with_capacity(moving.len());
        let (mut moves, mut places) = (Vec::new(), Vec::with_capacity(moving.len()));
        for file in &moving {
            match copies.remove(&file.key()).expect("every moving file was copied") {
                Copied::Uploaded { object, relative } => {
                    placed.push(object);
                    places.push((file, relative));
                }
                // A name of its own here too: the old copy's removal, due later, can then never
                // take it (a relocation back to the medium the file came from, say).
                Copied::Staged(copy) => {
                    let relative = renamed(&file.relative_path);
                    moves.push((copy.keep(), relative.clone()));
                    places.push((file, relative));
                }
            }
        }
        if !moves.is_empty() {
            let (storage_c, target_c, moved) = (storage.clone(), target.clone(), moves.clone());
            let result = tokio::task::spawn_blocking(move || storage_c.place_all(&target_c, &moved)).await.map_err(system_error);
            if let Err(e) = result.and_then(|r| r.map_err(system_error)) {
                moves.iter().for_each(|(staged, _)| drop(std::fs::remove_file(staged)));
                return Err(e);
            }
            placed.extend(moves.into_iter().map(|(_, relative)| PlacedFile::new(storage.clone(), target.clone(), relative)));
        }
        for (file, relative) in &places {
            lifecycle::set_place(&mut unit, file, &target, relative).await.map_err(system_error)?;
        }
        let from: BTreeSet<&str> = moving.iter().map(|f| f.medium.as_str()).collect();
        let mut detail = json!({ "from": from, "instances": moving.len(), "author": author });
        detail[target_kind] = json!(target);
        let event = events::record(&mut unit, db.backend(), &tenant, "STUDY_RELOCATED", &study.study_uid, detail)
            .await
            .map_err(system_error)?;
        // The old copies go once due, even across a restart (see `crate::removal`).
        let old: Vec<(&str, &str)> = moving.iter().map(|f| (f.medium.as_str(), f.relative_path.as_str())).collect();
        removals::schedule(&mut unit, &old, &crate::db::text_in(keep)).await.map_err(system_error)?;
        unit.commit().await.map_err(system_error)?;
        placed.into_iter().for_each(PlacedFile::keep);
        tracing::info!(tenant, study = %study.study_uid, target, instances = moving.len(), author, "study relocated");
        remover.wake();
        Ok(Some(event))
    }
}

/// A file copied for a relocation, not yet named by the index.
enum Copied {
    /// In a staging file on the target medium, to be placed under a new name in the file's folder.
    Staged(StagingFile),
    /// In the target bucket already, as the object `relative` (removed unless kept).
    Uploaded { object: PlacedFile, relative: String },
}

/// The seed's 409 "relocation not supported": a file in a bucket goes to a physical medium only.
fn refuse_bucket_to_bucket(storage: &Storage, files: &[StoredFile], target: &str) -> Result<(), ApiError> {
    if storage.bucket(target).is_none() {
        return Ok(());
    }
    match files
        .iter()
        .find(|f| f.medium != target && (storage.bucket(&f.medium).is_some() || storage.unusable_bucket(&f.medium).is_some()))
    {
        Some(file) => Err(ApiError::Conflict(format!(
            "relocation not supported: the study is in bucket `{}` and cannot move to another bucket; relocate it to a physical medium first",
            file.medium
        ))),
        None => Ok(()),
    }
}

/// Files copied at once (the round trips to a bucket overlap).
const COPIES_IN_FLIGHT: usize = 4;

/// Copies the files not on `target` yet there, each checked against its recorded digest:
/// into staging files on a physical medium, or straight into a bucket, logging progress. After
/// a failure no further copy starts and those in flight run to their end; then every copy made
/// is removed. Copies are removed if dropped unused.
async fn copy_all(storage: &Storage, files: Vec<StoredFile>, target: &str) -> Result<HashMap<FileKey, Copied>, ApiError> {
    let pending: Vec<StoredFile> = files.into_iter().filter(|f| f.medium != target).collect();
    let total = pending.len();
    let failed = AtomicBool::new(false);
    let mut copying = futures::stream::iter(pending)
        .take_while(|_| std::future::ready(!failed.load(Ordering::Relaxed)))
        .map(|file| copy_one(storage, file, target))
        .buffer_unordered(COPIES_IN_FLIGHT);
    let (mut copies, mut bytes, mut first_error) = (HashMap::with_capacity(total), 0u64, None);
    while let Some(copied) = copying.next().await {
        match copied {
            Ok((key, copy, len)) => {
                copies.insert(key, copy);
                bytes += len;
                if copies.len() % PROGRESS_EVERY == 0 {
                    tracing::info!(copied = copies.len(), of = total, bytes, target, "relocation in progress");
                }
            }
            Err(e) => {
                failed.store(true, Ordering::Relaxed);
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(copies),
    }
}

/// Copies one file to `target` and checks the bytes read against its recorded digest.
async fn copy_one(storage: &Storage, file: StoredFile, target: &str) -> Result<(FileKey, Copied, u64), ApiError> {
    let algorithm = Algorithm::of_recorded(&file.digest).ok_or_else(|| {
        system_error(format!("`{}` on medium `{}` has no digest to check a copy against", file.relative_path, file.medium))
    })?;
    let (copy, len, digest) = if let Some(bucket) = storage.bucket(target) {
        let source = storage.absolute(&file.medium, &file.relative_path).map_err(system_error)?;
        let relative = renamed(&file.relative_path);
        // Removed again unless the relocation commits, also when the digest does not match.
        let object = PlacedFile::new(storage.clone(), target.to_owned(), relative.clone());
        let (len, digest) = bucket.upload(&source, &relative, algorithm).await.map_err(copy_failed(target))?;
        (Copied::Uploaded { object, relative }, len, digest)
    } else if let Some(bucket) = storage.bucket(&file.medium) {
        let (stage, target_c) = (storage.clone(), target.to_owned());
        let mut copy =
            tokio::task::spawn_blocking(move || stage.stage(&target_c)).await.map_err(system_error)?.map_err(system_error)?;
        let (len, digest) =
            bucket.download(&file.relative_path, &mut copy, algorithm).await.map_err(copy_failed(&file.medium))?;
        (Copied::Staged(copy), len, digest)
    } else {
        let (storage, relative, medium, target) =
            (storage.clone(), file.relative_path.clone(), file.medium.clone(), target.to_owned());
        let (copy, len, digest) =
            tokio::task::spawn_blocking(move || storage.copy_to_staging(&medium, &relative, &target, algorithm))
                .await
                .map_err(system_error)?
                .map_err(system_error)?;
        (Copied::Staged(copy), len, digest)
    };
    if digest != file.digest {
        return Err(system_error(format!(
            "`{}` on medium `{}` does not match its recorded digest: the stored file may be damaged",
            file.relative_path, file.medium
        )));
    }
    Ok((file.key(), copy, len))
}

/// A copy to or from `bucket` failed: the seed's "bucket error" when the bucket refused or
/// could not be reached, a system error otherwise.
fn copy_failed(bucket: &str) -> impl FnOnce(StorageError) -> ApiError + '_ {
    move |e| match e {
        StorageError::Bucket { .. } => {
            tracing::error!(error = %e, bucket, "relocation failed");
            ApiError::Conflict(format!("bucket error: {e}"))
        }
        e => system_error(e),
    }
}
