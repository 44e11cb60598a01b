//! The storage check (`wasmpacs check`): compares the archive's files with the index, both ways.
//! Every file a row names must be on its medium with its recorded size (and, when asked, its
//! recorded digest and, for an instance on a filesystem medium, a data set that parses to its
//! end: see [`crate::dicom::completeness`]); every file on a medium must be named by a row. A
//! file no row names (left by a crash between placing a file and committing its row, or by a
//! lost COMMIT answer) is reported and, when asked, set aside in the medium's `.orphans` folder: the check never
//! deletes a file. It opens the index read-only (no migration, no file created) and may run
//! beside a live server: a file
//! placed or written within the grace period may be one whose row is being committed right now,
//! and is only counted. (The old copies of a study relocated within `relocation_keep_s`, kept
//! for readers that found them just before, are no longer named and may be set aside.)
//! Buckets are checked the same way, by their listing; an object no row names is reported, and
//! never moved. Files in the media's staging folders (uploads and copies under way, or left by a
//! crash: removed by a server once idle for `[storage] staging_grace_s`) are listed with their
//! sizes, and left alone.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use futures::StreamExt;
use serde::Serialize;
use tokio::sync::mpsc;

use std::collections::BTreeMap;

use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;

use crate::config::Config;
use crate::db::check::{self as index, IndexedFile};
use crate::storage::digest::{Algorithm, Hasher};
use crate::storage::{Bucket, ORPHANS, STAGING, SetAside, Storage, changed_at, set_aside};

/// What to do besides looking.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// Read every named file whole and compare its digest with the recorded one; walk each
    /// instance's data set on a filesystem medium too, which finds a copy an older version
    /// stored cut short (its digest recorded of the cut bytes).
    pub verify_digests: bool,
    /// Move files no row names (and older than `grace`) to the medium's `.orphans` folder.
    pub set_aside_orphans: bool,
    /// Age below which a file no row names is taken for one being committed.
    pub grace: Duration,
}

/// Why the check could not run to its end.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("cannot open the index {url}: {source}")]
    Open { url: String, source: sqlx::Error },
    #[error("reading the index: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("a check task failed: {0}")]
    Task(String),
    #[error("there is no archive here: {0} does not exist")]
    NoArchive(PathBuf),
}

/// Findings of each kind listed in the report, at most (all are counted).
const LISTED: usize = 1000;

/// Rows read from the index at a time.
const PAGE: i64 = 500;

/// Files found on a medium looked up in the index at a time.
const BATCH: usize = 500;

/// Files between two progress lines in the log.
const PROGRESS_EVERY: u64 = 10_000;

/// What the check found.
#[derive(Debug, Default, Serialize)]
pub struct CheckReport {
    /// Files the index names (instances and slides), each looked at on its medium.
    pub rows_checked: u64,
    /// Files found on the media (staging and set-aside folders excluded).
    pub files_checked: u64,
    /// Named files read whole and digested.
    pub digests_verified: u64,
    /// A row names a file that is not there.
    pub missing: Findings<Finding>,
    /// The file's length is not the recorded one.
    pub wrong_size: Findings<Finding>,
    /// The file's digest is not the recorded one.
    pub damaged: Findings<Finding>,
    /// The file's data set is not whole (cut, malformed, or its pixel data short), though its
    /// digest may match: checked with the digests.
    pub incomplete: Findings<Finding>,
    /// The file is there but cannot be read.
    pub unreadable: Findings<Finding>,
    /// Files of the archive's layout that no row names, older than the grace period.
    pub orphans: Findings<String>,
    /// Orphans moved to their medium's `.orphans` folder.
    pub orphans_set_aside: u64,
    /// Files no row names, younger than the grace period (maybe being committed): left alone.
    pub unnamed_recent: u64,
    /// Files on a medium that are not of the archive's layout: not the archive's, left alone.
    pub foreign: Findings<String>,
    /// Folders or entries on a medium that could not be listed (what is under them is unchecked).
    pub unlisted: Findings<String>,
    /// Files in the media's staging folders: under way, or left by a crash (see [`check_staging`]).
    pub staging: Findings<StagingFinding>,
    /// Their bytes in all.
    pub staging_bytes: u64,
}

/// A file in a medium's staging folder.
#[derive(Debug, Serialize)]
pub struct StagingFinding {
    pub medium: String,
    /// Its path under the medium's root.
    pub path: String,
    pub bytes: u64,
    /// Seconds since it was last modified: one idle for longer than `[storage] staging_grace_s`
    /// was left by a crash, and the next server start (or a running server's sweep) removes it.
    pub idle_s: u64,
}

impl CheckReport {
    /// True when every file the index names is there, whole.
    pub fn is_whole(&self) -> bool {
        self.missing.count == 0
            && self.wrong_size.count == 0
            && self.damaged.count == 0
            && self.incomplete.count == 0
            && self.unreadable.count == 0
            && self.unlisted.count == 0
    }
}

/// A count, and the first [`LISTED`] of what was counted.
#[derive(Debug, Serialize)]
pub struct Findings<T> {
    pub count: u64,
    pub listed: Vec<T>,
}

impl<T> Default for Findings<T> {
    fn default() -> Self {
        Self { count: 0, listed: Vec::new() }
    }
}

impl<T> Findings<T> {
    fn add(&mut self, finding: T) {
        self.count += 1;
        if self.listed.len() < LISTED {
            self.listed.push(finding);
        }
    }
}

/// A named file that is not as the index says.
#[derive(Debug, Serialize)]
pub struct Finding {
    pub tenant: String,
    pub sop_instance_uid: String,
    /// The non-DICOM slide file stored beside the instance, rather than the instance's own.
    pub slide: bool,
    pub medium: String,
    pub path: String,
    pub detail: String,
}

impl Finding {
    fn of(file: &IndexedFile, detail: String) -> Self {
        Self {
            tenant: file.tenant.clone(),
            sop_instance_uid: file.sop_instance_uid.clone(),
            slide: file.slide,
            medium: file.medium.clone(),
            path: file.relative_path.clone(),
            detail,
        }
    }
}

/// Runs the check on the archive `config` describes.
pub async fn run(config: &Config, options: &CheckOptions) -> Result<CheckReport, CheckError> {
    // A check looks; it does not create an empty archive where a config points by mistake.
    let url = config.database_url();
    let expected = crate::db::sqlite_path(&url).into_iter().chain(Storage::roots_of(&config.storage).into_values());
    if let Some(absent) = expected.into_iter().find(|path| !path.exists()) {
        return Err(CheckError::NoArchive(absent));
    }
    let index = open_read_only(&url).await?;
    let roots = Storage::roots_of(&config.storage);
    let buckets = Storage::buckets_of(&config.storage);
    let mut report = CheckReport::default();
    let result = async {
        check_named_files(&index, &roots, &buckets, options, &mut report).await?;
        check_media(&index, &roots, options, &mut report).await?;
        check_staging(&roots, &mut report).await?;
        check_buckets(&index, &buckets, options, &mut report).await
    }
    .await;
    index.close().await;
    result.map(|()| report)
}

/// A pool that only reads the index: no migration (a server on an older version keeps its
/// schema), no file created, read-only on SQLite.
async fn open_read_only(url: &str) -> Result<AnyPool, CheckError> {
    sqlx::any::install_default_drivers();
    let url = match crate::db::sqlite_path(url) {
        Some(path) => format!("sqlite://{}?mode=ro", path.display()),
        None => url.to_owned(),
    };
    AnyPoolOptions::new().max_connections(2).connect(&url).await.map_err(|source| CheckError::Open { url, source })
}

/// How a named file was found.
enum Verdict {
    Intact,
    /// Not there, and why (no such file, or a medium the config no longer names).
    Missing(&'static str),
    WrongSize(u64),
    Damaged(String),
    Incomplete(String),
    Unreadable(io::Error),
}

/// Looks at every file the index names, page by page.
async fn check_named_files(
    index: &AnyPool,
    roots: &BTreeMap<String, PathBuf>,
    buckets: &BTreeMap<String, Result<Bucket, String>>,
    options: &CheckOptions,
    report: &mut CheckReport,
) -> Result<(), CheckError> {
    for slides in [false, true] {
        let mut after = 0;
        loop {
            let page = match slides {
                false => index::instance_files(index, after, PAGE).await?,
                true => index::slide_files(index, after, PAGE).await?,
            };
            let Some(last) = page.last() else { break };
            after = last.instance_key;
            let verify = options.verify_digests;
            let (in_buckets, on_disk): (Vec<IndexedFile>, Vec<IndexedFile>) =
                page.into_iter().partition(|f| buckets.contains_key(&f.medium));
            let roots = roots.clone();
            let mut verdicts = tokio::task::spawn_blocking(move || {
                on_disk.into_iter().map(|file| (examine(&roots, &file, verify), file)).collect::<Vec<_>>()
            })
            .await
            .map_err(|e| CheckError::Task(e.to_string()))?;
            let objects = futures::stream::iter(in_buckets)
                .map(|file| async move { (examine_object(&buckets[&file.medium], &file, verify).await, file) })
                .buffer_unordered(OBJECTS_IN_FLIGHT);
            verdicts.extend(objects.collect::<Vec<_>>().await);
            for (verdict, file) in verdicts {
                report.rows_checked += 1;
                match verdict {
                    Verdict::Intact => report.digests_verified += u64::from(options.verify_digests),
                    // Unless a relocation moved it meanwhile.
                    Verdict::Missing(_) if moved_since(index, &file).await? => {}
                    Verdict::Missing(why) => {
                        tracing::error!(sop = %file.sop_instance_uid, medium = %file.medium, path = %file.relative_path, why, "a file the index names is missing");
                        report.missing.add(Finding::of(&file, why.into()));
                    }
                    Verdict::WrongSize(len) => {
                        tracing::error!(sop = %file.sop_instance_uid, path = %file.relative_path, len, recorded = file.size, "a stored file has the wrong size");
                        report.wrong_size.add(Finding::of(&file, format!("{len} bytes, {} recorded", file.size)));
                    }
                    Verdict::Damaged(digest) => {
                        tracing::error!(sop = %file.sop_instance_uid, path = %file.relative_path, digest, recorded = file.digest, "a stored file does not match its digest");
                        report.damaged.add(Finding::of(&file, format!("digest {digest}, {} recorded", file.digest)));
                    }
                    Verdict::Incomplete(damage) => {
                        tracing::error!(sop = %file.sop_instance_uid, path = %file.relative_path, %damage, "a stored instance is not whole");
                        report.incomplete.add(Finding::of(&file, damage));
                    }
                    Verdict::Unreadable(e) => {
                        tracing::error!(sop = %file.sop_instance_uid, path = %file.relative_path, error = %e, "a stored file cannot be read");
                        report.unreadable.add(Finding::of(&file, e.to_string()));
                    }
                }
                if report.rows_checked.is_multiple_of(PROGRESS_EVERY) {
                    tracing::info!(rows = report.rows_checked, "checking the files the index names");
                }
            }
        }
    }
    tracing::info!(
        rows = report.rows_checked,
        missing = report.missing.count,
        damaged = report.damaged.count,
        "files the index names checked"
    );
    Ok(())
}

/// True when the row of a file found missing names another place now.
async fn moved_since(index: &AnyPool, file: &IndexedFile) -> Result<bool, CheckError> {
    let now = index::current_place(index, file).await?;
    Ok(now.is_none_or(|(medium, path)| medium != file.medium || path != file.relative_path))
}

/// Looks at one named file: there, of its recorded length and (with `verify`) digest. Blocking.
fn examine(roots: &BTreeMap<String, PathBuf>, file: &IndexedFile, verify: bool) -> Verdict {
    let Some(path) = roots.get(&file.medium).map(|root| root.join(&file.relative_path)) else {
        return Verdict::Missing("the config names no such medium");
    };
    let len = match std::fs::metadata(&path) {
        Ok(meta) if meta.is_file() => meta.len(),
        Ok(_) => return Verdict::Missing("not a file"),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Verdict::Missing("no such file"),
        Err(e) => return Verdict::Unreadable(e),
    };
    match digest_to_check(file, len, verify) {
        Ok(algorithm) => match digest_verdict(file, digest_of(&path, algorithm)) {
            Verdict::Intact if !file.slide => structure_verdict(&path),
            verdict => verdict,
        },
        Err(verdict) => verdict,
    }
}

/// The verdict on an instance's file whose digest matches: is its data set whole?
fn structure_verdict(path: &Path) -> Verdict {
    match crate::dicom::completeness::check_file(path) {
        Ok(Ok(())) => Verdict::Intact,
        Ok(Err(damage)) => Verdict::Incomplete(damage.to_string()),
        Err(e) => Verdict::Unreadable(e),
    }
}

/// What a named file of `len` bytes still needs: its digest, with the algorithm its recorded
/// one names; or the verdict already (wrong size, intact without `verify`, no digest recorded).
fn digest_to_check(file: &IndexedFile, len: u64, verify: bool) -> Result<Algorithm, Verdict> {
    if i64::try_from(len).ok() != Some(file.size) {
        return Err(Verdict::WrongSize(len));
    }
    if !verify {
        return Err(Verdict::Intact);
    }
    Algorithm::of_recorded(&file.digest).ok_or_else(|| Verdict::Damaged(format!("(none: `{}` is not a digest)", file.digest)))
}

/// The verdict on a named file from the digest of its bytes.
fn digest_verdict(file: &IndexedFile, digest: io::Result<String>) -> Verdict {
    match digest {
        Ok(digest) if digest == file.digest => Verdict::Intact,
        Ok(digest) => Verdict::Damaged(digest),
        Err(e) => Verdict::Unreadable(e),
    }
}

/// Objects of a bucket looked at at once.
const OBJECTS_IN_FLIGHT: usize = 8;

/// Looks at one named object in a bucket, as [`examine`] does a file.
async fn examine_object(bucket: &Result<Bucket, String>, file: &IndexedFile, verify: bool) -> Verdict {
    let bucket = match bucket {
        Ok(bucket) => bucket,
        Err(why) => return Verdict::Unreadable(io::Error::other(format!("the bucket's configuration cannot be loaded: {why}"))),
    };
    let len = match bucket.size(&file.relative_path).await {
        Ok(Some(len)) => len,
        Ok(None) => return Verdict::Missing("no such object"),
        Err(e) => return Verdict::Unreadable(io::Error::other(e)),
    };
    let algorithm = match digest_to_check(file, len, verify) {
        Ok(algorithm) => algorithm,
        Err(verdict) => return verdict,
    };
    let digested = async {
        let (_, mut bytes) = bucket.read(&file.relative_path, None).await.map_err(io::Error::other)?;
        let mut hasher = Hasher::new(algorithm);
        while let Some(chunk) = bytes.next().await {
            hasher.update(&chunk?);
        }
        Ok::<_, io::Error>(hasher.finish())
    };
    digest_verdict(file, digested.await)
}

fn digest_of(path: &Path, algorithm: Algorithm) -> io::Result<String> {
    let mut hasher = Hasher::new(algorithm);
    io::copy(&mut std::fs::File::open(path)?, &mut hasher)?;
    Ok(hasher.finish())
}

/// What the walk of a medium finds.
enum Found {
    File {
        relative: String,
        inode: u64,
        /// When its content or its name last changed ([`changed_at`]).
        changed: SystemTime,
    },
    /// A folder or entry that could not be listed.
    Unlisted(String),
}

/// Walks every medium and looks up each file found in the index, a batch at a time.
async fn check_media(
    index: &AnyPool,
    roots: &BTreeMap<String, PathBuf>,
    options: &CheckOptions,
    report: &mut CheckReport,
) -> Result<(), CheckError> {
    let started = SystemTime::now();
    for (medium, root) in roots {
        let (sender, mut batches) = mpsc::channel::<Vec<Found>>(4);
        let walk_root = root.clone();
        let walker = tokio::task::spawn_blocking(move || walk(&walk_root, &sender));
        while let Some(batch) = batches.recv().await {
            let mut ours = Vec::with_capacity(batch.len());
            for found in batch {
                match found {
                    Found::Unlisted(what) => {
                        tracing::error!(medium, what, "cannot list part of a medium");
                        report.unlisted.add(format!("{medium}:{what}"));
                    }
                    Found::File { relative, inode, changed } => {
                        report.files_checked += 1;
                        if report.files_checked.is_multiple_of(PROGRESS_EVERY) {
                            tracing::info!(medium, files = report.files_checked, "checking the files on the media");
                        }
                        if of_the_layout(&relative) {
                            ours.push((relative, inode, changed));
                        } else {
                            report.foreign.add(format!("{medium}:{relative}"));
                        }
                    }
                }
            }
            let paths: Vec<String> = ours.iter().map(|(relative, ..)| relative.clone()).collect();
            let named = index::named_paths(index, medium, &paths).await?;
            for (relative, inode, changed) in ours.into_iter().filter(|(relative, ..)| !named.contains(relative)) {
                if started.duration_since(changed).unwrap_or_default() < options.grace {
                    report.unnamed_recent += 1;
                    continue;
                }
                tracing::warn!(medium, path = %relative, "no row names this file");
                report.orphans.add(format!("{medium}:{relative}"));
                if options.set_aside_orphans {
                    set_aside_orphan(index, medium, root, &relative, inode, options.grace, report).await?;
                }
            }
        }
        walker.await.map_err(|e| CheckError::Task(e.to_string()))?;
    }
    tracing::info!(files = report.files_checked, orphans = report.orphans.count, "files on the media checked");
    Ok(())
}

/// Lists the files in every medium's staging folder, with their sizes: what a server is receiving
/// or copying now, or what a killed one left (never indexed; its space is taken until a server
/// sweeps it).
async fn check_staging(roots: &BTreeMap<String, PathBuf>, report: &mut CheckReport) -> Result<(), CheckError> {
    let roots = roots.clone();
    let found = tokio::task::spawn_blocking(move || {
        let list = |(medium, root): (String, PathBuf)| {
            crate::storage::sweep::list(&root.join(STAGING)).into_iter().map(move |file| (medium.clone(), file))
        };
        roots.into_iter().flat_map(list).collect::<Vec<_>>()
    })
    .await
    .map_err(|e| CheckError::Task(e.to_string()))?;
    for (medium, file) in found {
        let path = format!("{STAGING}/{}", file.path.file_name().unwrap_or_default().to_string_lossy());
        let idle_s = file.idle.as_secs();
        tracing::warn!(medium, path, bytes = file.bytes, idle_s, "a file in staging");
        report.staging_bytes += file.bytes;
        report.staging.add(StagingFinding { medium, path, bytes: file.bytes, idle_s });
    }
    Ok(())
}

/// Lists every bucket and looks up each object in the index, a batch at a time. Objects no row
/// names are reported only: set-aside is for filesystem media. A bucket whose listing fails is
/// reported (`unlisted`) and the check goes on.
async fn check_buckets(
    index: &AnyPool,
    buckets: &BTreeMap<String, Result<Bucket, String>>,
    options: &CheckOptions,
    report: &mut CheckReport,
) -> Result<(), CheckError> {
    let started = SystemTime::now();
    for (name, bucket) in buckets {
        let bucket = match bucket {
            Ok(bucket) => bucket,
            Err(why) => {
                tracing::error!(bucket = name, why, "bucket configuration cannot be loaded");
                report.unlisted.add(format!("{name}: (configuration cannot be loaded: {why})"));
                continue;
            }
        };
        let mut listing = bucket.list().ready_chunks(BATCH);
        'listing: while let Some(batch) = listing.next().await {
            let mut ours = Vec::with_capacity(batch.len());
            for listed in batch {
                let (relative, _, written) = match listed {
                    Ok(listed) => listed,
                    Err(e) => {
                        tracing::error!(bucket = name, error = %e, "cannot list a bucket");
                        report.unlisted.add(format!("{name}: ({e})"));
                        break 'listing;
                    }
                };
                report.files_checked += 1;
                if of_the_layout(&relative) {
                    ours.push((relative, written));
                } else {
                    report.foreign.add(format!("{name}:{relative}"));
                }
            }
            let paths: Vec<String> = ours.iter().map(|(relative, _)| relative.clone()).collect();
            let named = index::named_paths(index, name, &paths).await?;
            for (relative, written) in ours.into_iter().filter(|(relative, _)| !named.contains(relative)) {
                if started.duration_since(written).unwrap_or_default() < options.grace {
                    report.unnamed_recent += 1;
                } else {
                    tracing::warn!(bucket = name, path = %relative, "no row names this object");
                    report.orphans.add(format!("{name}:{relative}"));
                }
            }
        }
    }
    Ok(())
}

/// Sets an orphan aside, unless a row names it by now or it changed since it was found.
async fn set_aside_orphan(
    index: &AnyPool,
    medium: &str,
    root: &Path,
    relative: &str,
    inode: u64,
    grace: Duration,
    report: &mut CheckReport,
) -> Result<(), CheckError> {
    if !index::named_paths(index, medium, &[relative.to_owned()]).await?.is_empty() {
        return Ok(());
    }
    let (root, path) = (root.to_owned(), relative.to_owned());
    let moved = tokio::task::spawn_blocking(move || set_aside(&root, &path, inode, grace))
        .await
        .map_err(|e| CheckError::Task(e.to_string()))?;
    match moved {
        Ok(SetAside::Moved(to)) => {
            tracing::info!(to = %to.display(), "orphan set aside");
            report.orphans_set_aside += 1;
        }
        Ok(SetAside::Changed) => tracing::info!(medium, path = relative, "left in place: it changed since it was found"),
        // Reported, and left where it is.
        Err(e) => tracing::error!(medium, path = relative, error = %e, "cannot set an orphan aside"),
    }
    Ok(())
}

/// True for a path the archive's layout gives a stored file: `<tenant>/<study>/<series>/<name>`
/// ending in `.dcm` (an instance) or `.slide` (a non-DICOM slide). Anything else on a medium was
/// not put there by the archive, and the check leaves it alone.
fn of_the_layout(relative: &str) -> bool {
    relative.split('/').count() == 4 && (relative.ends_with(".dcm") || relative.ends_with(".slide"))
}

/// Lists the regular files under `root` (its staging and set-aside folders excluded), sending
/// them in batches of [`BATCH`], with what could not be listed. Files and folders gone since
/// their folder was read (beside a live server, files come and go) are passed over. Blocking;
/// stops when the receiver goes.
fn walk(root: &Path, batches: &mpsc::Sender<Vec<Found>>) {
    use std::os::unix::fs::MetadataExt;
    let relative_of = |path: &Path| path.strip_prefix(root).unwrap_or(path).to_string_lossy().into_owned();
    let mut folders = vec![root.to_owned()];
    let mut batch = Vec::with_capacity(BATCH);
    while let Some(folder) = folders.pop() {
        let entries = match std::fs::read_dir(&folder) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => {
                batch.push(Found::Unlisted(format!("{}/ ({e})", relative_of(&folder))));
                continue;
            }
        };
        for entry in entries {
            let listed = entry.and_then(|entry| Ok((entry.path(), entry.metadata()?)));
            let (path, meta) = match listed {
                Ok(listed) => listed,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => {
                    batch.push(Found::Unlisted(format!("{}/ ({e})", relative_of(&folder))));
                    continue;
                }
            };
            if folder == *root && (path.ends_with(STAGING) || path.ends_with(ORPHANS)) {
                continue;
            }
            if meta.is_dir() {
                folders.push(path);
            } else if meta.is_file() {
                batch.push(Found::File { relative: relative_of(&path), inode: meta.ino(), changed: changed_at(&meta) });
            }
            if batch.len() >= BATCH && batches.blocking_send(std::mem::replace(&mut batch, Vec::with_capacity(BATCH))).is_err() {
                return;
            }
        }
    }
    if !batch.is_empty() {
        let _ = batches.blocking_send(batch);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_files_of_the_archive_layout_are_taken_for_its_own() {
        assert!(of_the_layout("alpha/1.2/1.2.3/1.2.3.4_1f-2-3.dcm"));
        assert!(of_the_layout("alpha/1.2/1.2.3/1.2.3.4.slide"));
        assert!(!of_the_layout("wasmpacs.db"));
        assert!(!of_the_layout("alpha/1.2/notes.txt"));
        assert!(!of_the_layout("a/b/c/d/e.dcm"));
    }
}
