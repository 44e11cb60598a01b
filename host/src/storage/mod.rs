//! Storage media: named filesystem roots where instance files live, the layout of files under a
//! root, and the one way a file gets there: staged beside the medium, fsynced, then renamed
//! into place, so a reader never sees a partial file. Buckets ([`bucket`]) are media too, which
//! studies are relocated to; readers reach a file on either through [`Storage::read`] and
//! [`Storage::local`].

pub mod bucket;
pub mod digest;
mod staged;
pub mod sweep;

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub use bucket::Bucket;
pub use digest::Algorithm;
pub use staged::{StagedWriter, StagingFile, unique_token};

use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt};

use crate::config::StorageConfig;

/// The media files can be stored on.
#[derive(Debug, Clone)]
pub struct Storage {
    media: BTreeMap<String, PathBuf>,
    /// Every configured bucket, or why its configuration cannot be loaded (the seed's "bucket
    /// error" when a request names it).
    buckets: BTreeMap<String, Result<Bucket, String>>,
    default: String,
    /// Folders being created, or created, whose entry in their parent is not synced yet (see
    /// [`Storage::place_all`]).
    fresh_folders: Arc<Mutex<BTreeSet<PathBuf>>>,
}

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("no storage medium named `{0}`")]
    UnknownMedium(String),
    #[error("storage I/O on {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("bucket `{name}`: {source}")]
    Bucket { name: String, source: object_store::Error },
}

impl StorageError {
    /// True for a failure that may pass: a bucket that could not be reached or refused for now,
    /// rather than one without the object.
    pub fn is_transient(&self) -> bool {
        matches!(self, StorageError::Bucket { source, .. } if !matches!(source, object_store::Error::NotFound { .. }))
    }
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> StorageError + '_ {
    move |source| StorageError::Io { path: path.to_owned(), source }
}

impl Storage {
    /// The configured media plus `default` (`<data_dir>/archive`) unless configured otherwise.
    /// Creates the roots and their staging folders, and removes what a crash left in those
    /// (see [`sweep`]).
    pub fn new(config: &StorageConfig) -> Result<Self, StorageError> {
        let media = Self::roots_of(config);
        let default = config.default_medium.clone().unwrap_or_else(|| "default".to_owned());
        if !media.contains_key(&default) {
            return Err(StorageError::UnknownMedium(default));
        }
        for root in media.values() {
            let staging = root.join(STAGING);
            std::fs::create_dir_all(&staging).map_err(io_at(&staging))?;
            sweep::sweep(&staging, std::time::Duration::from_secs(config.staging_grace_s));
        }
        Ok(Self { media, buckets: Self::buckets_of(config), default, fresh_folders: Arc::default() })
    }

    /// The client of each bucket `config` names, or why its configuration cannot be loaded
    /// (logged). Nothing is sent until a bucket is used.
    pub fn buckets_of(config: &StorageConfig) -> BTreeMap<String, Result<Bucket, String>> {
        let open = |config: &crate::config::BucketConfig| {
            Bucket::open(config).map_err(|e| {
                tracing::error!(bucket = %config.name, error = %e, "bucket configuration cannot be loaded");
                e.to_string()
            })
        };
        config.buckets.iter().map(|b| (b.name.clone(), open(b))).collect()
    }

    /// The root folder of each medium `config` names: `default` (`<data_dir>/archive`) unless
    /// configured otherwise, and the configured ones.
    pub fn roots_of(config: &StorageConfig) -> BTreeMap<String, PathBuf> {
        let mut media = BTreeMap::new();
        media.insert("default".to_owned(), config.data_dir.join("archive"));
        for medium in &config.media {
            media.insert(medium.name.clone(), medium.path.clone());
        }
        media
    }

    /// The medium new files go to.
    pub fn default_medium(&self) -> &str {
        &self.default
    }

    /// Names of every filesystem medium.
    pub fn media(&self) -> impl Iterator<Item = &str> {
        self.media.keys().map(String::as_str)
    }

    /// Writes and removes a small file in `medium`'s staging folder: fails when new files
    /// could not be received there (a full, read-only or missing file system).
    pub fn probe(&self, medium: &str) -> Result<(), StorageError> {
        use std::io::Write;
        let root = self.media.get(medium).ok_or_else(|| StorageError::UnknownMedium(medium.to_owned()))?;
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
        let path = root.join(STAGING).join(format!("ready-{}-{nanos}", std::process::id()));
        let written = std::fs::File::create_new(&path).and_then(|mut file| file.write_all(b"ready"));
        let removed = std::fs::remove_file(&path);
        written.and(removed).map_err(io_at(&path))
    }

    /// The bucket named `name`, if `name` is one.
    pub fn bucket(&self, name: &str) -> Option<&Bucket> {
        self.buckets.get(name)?.as_ref().ok()
    }

    /// Why the configured bucket `name` cannot be used, if it cannot.
    pub fn unusable_bucket(&self, name: &str) -> Option<&str> {
        self.buckets.get(name)?.as_ref().err().map(String::as_str)
    }

    /// The size of a stored file, on a filesystem medium or in a bucket; `None` when it is not there.
    pub async fn size(&self, medium: &str, relative: &str) -> Result<Option<u64>, StorageError> {
        if let Some(bucket) = self.bucket(medium) {
            return bucket.size(relative).await;
        }
        let path = self.absolute(medium, relative)?;
        match tokio::fs::metadata(&path).await {
            Ok(meta) if meta.is_file() => Ok(Some(meta.len())),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StorageError::Io { path, source: e }),
        }
    }

    /// A stored file as its length and a stream of chunks of its bytes.
    pub async fn read(&self, medium: &str, relative: &str) -> Result<(u64, BoxStream<'static, io::Result<Bytes>>), StorageError> {
        if let Some(bucket) = self.bucket(medium) {
            return bucket.read(relative, None).await;
        }
        let path = self.absolute(medium, relative)?;
        let file = tokio::fs::File::open(&path).await.map_err(io_at(&path))?;
        let len = file.metadata().await.map_err(io_at(&path))?.len();
        Ok((len, tokio_util::io::ReaderStream::with_capacity(file, READ_CHUNK).boxed()))
    }

    /// A stored file as a file on disk, for readers that need one (a DICOM parser): the file
    /// itself on a filesystem medium; for a bucket, a copy fetched into staging on the default
    /// medium, removed when the [`LocalFile`] is dropped.
    pub async fn local(&self, medium: &str, relative: &str) -> Result<LocalFile, StorageError> {
        self.local_prefix(medium, relative, None).await
    }

    /// Like [`Storage::local`], but of a file in a bucket only its first `first` bytes are
    /// fetched: enough to read the header of a large image.
    pub async fn local_prefix(&self, medium: &str, relative: &str, first: Option<u64>) -> Result<LocalFile, StorageError> {
        let Some(bucket) = self.bucket(medium) else {
            return Ok(LocalFile { path: self.absolute(medium, relative)?, fetched: None, whole: true });
        };
        let (storage, default) = (self.clone(), self.default.clone());
        let mut fetched = tokio::task::spawn_blocking(move || storage.stage(&default))
            .await
            .map_err(|e| StorageError::Io { path: PathBuf::from(STAGING), source: io::Error::other(e) })??;
        let (len, size) = bucket.fetch(relative, &mut fetched, first).await?;
        Ok(LocalFile { path: fetched.path().to_owned(), fetched: Some(fetched), whole: len == size })
    }

    fn root(&self, medium: &str) -> Result<&PathBuf, StorageError> {
        self.media.get(medium).ok_or_else(|| StorageError::UnknownMedium(medium.to_owned()))
    }

    /// A new staging file on `medium` (same filesystem, so the final rename is atomic).
    pub fn stage(&self, medium: &str) -> Result<StagingFile, StorageError> {
        let dir = self.root(medium)?.join(STAGING);
        StagingFile::create(&dir).map_err(io_at(&dir))
    }

    /// Where a stored file is, from its medium and relative path.
    pub fn absolute(&self, medium: &str, relative: &str) -> Result<PathBuf, StorageError> {
        Ok(self.root(medium)?.join(relative))
    }

    /// Moves complete, fsynced staged files to their relative paths on `medium`: folders are
    /// created as needed, every file is renamed into place, then each folder that changed is
    /// synced once, so that the whole group survives a crash at the cost of one sync per folder.
    /// An existing file is replaced. On an error the files already moved are removed again.
    ///
    /// A file may go into a folder another placement has just created and not yet synced the
    /// parent of (two stores of a new series at once). Its parent is then synced here too:
    /// otherwise this placement's row could commit first, and a crash lose the folder with the
    /// file (on a file system without a journal, where one sync does not carry another's
    /// changes). Such folders are noted before they are created, and forgotten once synced.
    pub fn place_all(&self, medium: &str, moves: &[(PathBuf, String)]) -> Result<Vec<PathBuf>, StorageError> {
        let mut changed = BTreeSet::new();
        let mut placed = Vec::with_capacity(moves.len());
        let result = (|| {
            for (staged, relative) in moves {
                let (target, folders) = self.place_unsynced(staged, medium, relative)?;
                changed.extend(folders);
                placed.push(target);
            }
            let root = self.root(medium)?;
            let synced_fresh = self.parents_of_fresh(root, &placed, &mut changed);
            sync_folders(&changed)?;
            self.forget_fresh(&synced_fresh);
            Ok(())
        })();
        match result {
            Ok(()) => Ok(placed),
            Err(e) => {
                for target in &placed {
                    let _ = std::fs::remove_file(target);
                }
                Err(e)
            }
        }
    }

    /// Moves a complete, fsynced staged file to `relative` on `medium`, creating folders as
    /// needed, without syncing them: the file survives a crash only once the folders returned
    /// are synced ([`sync_folders`]), which lets several files placed at once share the syncs.
    /// An existing file is replaced.
    fn place_unsynced(&self, staged: &Path, medium: &str, relative: &str) -> Result<(PathBuf, BTreeSet<PathBuf>), StorageError> {
        let root = self.root(medium)?;
        let target = root.join(relative);
        let folder = target.parent().expect("layout paths have folders");
        let mut changed = BTreeSet::new();
        create_folders(root, folder, &mut changed, Some(&self.fresh_folders)).map_err(io_at(folder))?;
        std::fs::rename(staged, &target).map_err(io_at(&target))?;
        changed.insert(folder.to_owned());
        Ok((target, changed))
    }

    /// The folders under `root` holding the `placed` files (and their folders up to `root`) that
    /// are fresh: each one's parent is added to `changed`, to be synced. Answers them, to be
    /// forgotten once synced.
    fn parents_of_fresh(&self, root: &Path, placed: &[PathBuf], changed: &mut BTreeSet<PathBuf>) -> Vec<PathBuf> {
        let fresh = self.fresh_folders.lock().expect("fresh folders lock");
        if fresh.is_empty() {
            return Vec::new();
        }
        let mut found = Vec::new();
        for folder in placed.iter().filter_map(|target| target.parent()) {
            for ancestor in folder.ancestors().take_while(|a| *a != root) {
                if fresh.contains(ancestor) {
                    changed.extend(ancestor.parent().map(Path::to_owned));
                    found.push(ancestor.to_owned());
                }
            }
        }
        found
    }

    /// Forgets `folders` as fresh: their entries in their parents are synced (or were never made).
    fn forget_fresh<'a>(&self, folders: impl IntoIterator<Item = &'a PathBuf>) {
        let mut folders = folders.into_iter().peekable();
        if folders.peek().is_some() {
            let mut fresh = self.fresh_folders.lock().expect("fresh folders lock");
            folders.for_each(|folder| {
                fresh.remove(folder);
            });
        }
    }

    /// Copies a stored file into a new staging file on medium `target`, digesting (with
    /// `algorithm`) and syncing it as it goes (a relocation's first step). Returns the staging
    /// file, its length and digest.
    pub fn copy_to_staging(
        &self,
        medium: &str,
        relative: &str,
        target: &str,
        algorithm: Algorithm,
    ) -> Result<(StagingFile, u64, String), StorageError> {
        let source = self.absolute(medium, relative)?;
        let mut input = std::fs::File::open(&source).map_err(io_at(&source))?;
        let mut file = self.stage(target)?;
        let mut writer = file.writer(algorithm).map_err(io_at(file.path()))?;
        let mut copy = || -> io::Result<()> {
            let mut buffer = vec![0u8; 1 << 20];
            loop {
                let n = match io::Read::read(&mut input, &mut buffer) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                };
                writer.write_all(&buffer[..n])?;
            }
            Ok(())
        };
        copy().map_err(io_at(&source))?;
        let (len, digest) = writer.finish().map_err(io_at(file.path()))?;
        Ok((file, len, digest))
    }

    /// Removes a stored file and says whether it could (an old copy of a relocated file, whose
    /// removal is retried until it succeeds). A file that is gone already is no error.
    pub async fn discard(&self, medium: &str, relative: &str) -> Result<(), StorageError> {
        if let Some(bucket) = self.bucket(medium) {
            return bucket.delete(relative).await;
        }
        let path = self.absolute(medium, relative)?;
        let removed = tokio::task::spawn_blocking({
            let path = path.clone();
            move || std::fs::remove_file(path)
        })
        .await
        .unwrap_or_else(|e| Err(io::Error::other(e)));
        match removed {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(StorageError::Io { path, source }),
        }
    }

    /// Syncs the folders that held `removed` files (medium, relative path) on filesystem media,
    /// so that their removal lasts (objects in a bucket need nothing).
    pub async fn sync_parents<'a>(&self, removed: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<(), StorageError> {
        let folders: BTreeSet<PathBuf> = removed
            .into_iter()
            .filter(|(medium, _)| self.bucket(medium).is_none())
            .filter_map(|(medium, relative)| self.absolute(medium, relative).ok()?.parent().map(Path::to_owned))
            .filter(|folder| folder.exists())
            .collect();
        tokio::task::spawn_blocking(move || sync_folders(&folders))
            .await
            .map_err(|e| StorageError::Io { path: PathBuf::new(), source: io::Error::other(e) })?
    }

    /// Removes a stored file whose database row could not be committed. An object in a bucket
    /// is deleted by a task of its own.
    pub fn remove(&self, medium: &str, relative: &str) {
        if let Some(bucket) = self.bucket(medium) {
            let (bucket, relative) = (bucket.clone(), relative.to_owned());
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => drop(runtime.spawn(async move { bucket.remove(&relative).await })),
                Err(_) => tracing::warn!(bucket = bucket.name(), path = relative, "object left: no runtime to remove it"),
            }
            return;
        }
        if let Ok(path) = self.absolute(medium, relative)
            && let Err(e) = std::fs::remove_file(&path)
        {
            tracing::warn!(path = %path.display(), error = %e, "cannot remove stored file");
        }
    }
}

/// A stored file on disk (see [`Storage::local`]).
#[derive(Debug)]
pub struct LocalFile {
    path: PathBuf,
    /// The copy fetched from a bucket, removed on drop.
    fetched: Option<StagingFile>,
    /// False for the first bytes of a file only ([`Storage::local_prefix`]).
    whole: bool,
}

impl LocalFile {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// True when the file on disk is the whole stored file.
    pub fn is_whole(&self) -> bool {
        self.whole
    }
}

impl Drop for LocalFile {
    /// A fetched copy (maybe a whole slide) is removed on a blocking thread, off the async ones.
    fn drop(&mut self) {
        if let Some(fetched) = self.fetched.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            drop(runtime.spawn_blocking(move || drop(fetched)));
        }
    }
}

/// The path of a new copy of the stored file `relative`: in the same folder, under a name of its
/// own (`<sop>_<token>.<extension>`), so that a copy never takes the place of a file or object a
/// row names, or of another copy in the making.
pub fn renamed(relative: &str) -> String {
    let (folder, name) = relative.rsplit_once('/').unwrap_or(("", relative));
    let (stem, extension) = name.rsplit_once('.').unwrap_or((name, "dcm"));
    let sop = stem.rsplit_once('_').map_or(stem, |(sop, _)| sop);
    let renamed = format!("{sop}_{}.{extension}", unique_token());
    if folder.is_empty() { renamed } else { format!("{folder}/{renamed}") }
}

/// Bytes per chunk when a stored file is read as a stream.
const READ_CHUNK: usize = 256 * 1024;

/// The folder of a medium's root where files are staged before they are placed.
pub const STAGING: &str = ".staging";

/// The folder of a medium's root where the storage check sets aside files no row names.
pub const ORPHANS: &str = ".orphans";

/// What became of a file the storage check meant to set aside.
#[derive(Debug, PartialEq, Eq)]
pub enum SetAside {
    /// Moved to this path under `<root>/.orphans`.
    Moved(PathBuf),
    /// Left where it is: it changed since it was found (another file took its path, or it was
    /// placed within `grace`), or it is gone.
    Changed,
}

/// Moves `<root>/<relative>`, found as inode `inode` and taken for an orphan, to
/// `<root>/.orphans/<relative>` (never replacing a file there: a later one gets a `.N` suffix),
/// and syncs the folders that changed. Only if it is still that inode and unchanged for `grace`:
/// a file placed at the same path since (a relocation back to this medium, a slide sent again)
/// stays, and should one slip in between the look and the move, it is moved back. Blocking.
pub fn set_aside(root: &Path, relative: &str, inode: u64, grace: std::time::Duration) -> Result<SetAside, StorageError> {
    use std::os::unix::fs::MetadataExt;
    let source = root.join(relative);
    let still_it = |meta: &std::fs::Metadata| meta.ino() == inode && changed_at(meta).elapsed().is_ok_and(|age| age >= grace);
    match std::fs::symlink_metadata(&source) {
        Ok(meta) if still_it(&meta) => {}
        Ok(_) => return Ok(SetAside::Changed),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(SetAside::Changed),
        Err(e) => return Err(StorageError::Io { path: source, source: e }),
    }
    let mut target = root.join(ORPHANS).join(relative);
    let folder = target.parent().expect("layout paths have folders").to_owned();
    let mut changed = BTreeSet::new();
    create_folders(root, &folder, &mut changed, None).map_err(io_at(&folder))?;
    let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    for n in 1.. {
        match rename_no_replace(&source, &target) {
            Ok(()) => break,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => target = folder.join(format!("{name}.{n}")),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(SetAside::Changed),
            Err(e) => return Err(StorageError::Io { path: target, source: e }),
        }
    }
    // A file placed at the path between the look and the move was moved instead: it goes back.
    let moved = std::fs::symlink_metadata(&target).map_err(io_at(&target))?;
    if moved.ino() != inode {
        rename_no_replace(&target, &source).map_err(io_at(&source))?;
        return Ok(SetAside::Changed);
    }
    changed.insert(folder);
    changed.extend(source.parent().map(Path::to_owned));
    sync_folders(&changed)?;
    Ok(SetAside::Moved(target))
}

/// Renames `from` to `to` unless `to` exists.
fn rename_no_replace(from: &Path, to: &Path) -> io::Result<()> {
    rustix::fs::renameat_with(rustix::fs::CWD, from, rustix::fs::CWD, to, rustix::fs::RenameFlags::NOREPLACE)
        .map_err(io::Error::from)
}

/// The later of a file's modification and status change times. Placing a file renames it, which
/// changes its status time but not its modification time: a file staged long ago (a slide
/// converted for an hour) and placed just now is young by this measure.
pub fn changed_at(meta: &std::fs::Metadata) -> std::time::SystemTime {
    use std::os::unix::fs::MetadataExt;
    use std::time::{Duration, SystemTime};
    let changed = u64::try_from(meta.ctime())
        .map(|s| SystemTime::UNIX_EPOCH + Duration::new(s, u32::try_from(meta.ctime_nsec()).unwrap_or(0)))
        .unwrap_or(SystemTime::UNIX_EPOCH);
    meta.modified().map_or(changed, |modified| modified.max(changed))
}

/// Syncs folders whose entries changed (files placed, folders created), so that those entries
/// survive a crash.
pub fn sync_folders<'a>(folders: impl IntoIterator<Item = &'a PathBuf>) -> Result<(), StorageError> {
    for folder in folders {
        std::fs::File::open(folder).and_then(|d| d.sync_all()).map_err(io_at(folder))?;
    }
    Ok(())
}

/// Creates `folder` and any missing folder between it and `root`, noting the parent of each one
/// created: its new entry must be synced too. With `fresh`, each folder is noted there before it
/// is created, so that a placement finding it already there knows its entry may not be synced
/// yet (see [`Storage::place_all`]).
fn create_folders(
    root: &Path,
    folder: &Path,
    changed: &mut BTreeSet<PathBuf>,
    fresh: Option<&Mutex<BTreeSet<PathBuf>>>,
) -> io::Result<()> {
    if folder == root || folder.is_dir() {
        return Ok(());
    }
    let parent = folder.parent().unwrap_or(root);
    create_folders(root, parent, changed, fresh)?;
    if let Some(fresh) = fresh {
        fresh.lock().expect("fresh folders lock").insert(folder.to_owned());
    }
    match std::fs::create_dir(folder) {
        Ok(()) => {
            changed.insert(parent.to_owned());
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => {
            // Never created: nothing of it is left to sync.
            if let Some(fresh) = fresh {
                fresh.lock().expect("fresh folders lock").remove(folder);
            }
            Err(e)
        }
    }
}

/// The relative path of an instance: `<tenant>/<study>/<series>/<sop instance>_<token>.dcm`.
/// The token (see [`StagingFile::token`]) makes each stored file's name its own, so that placing
/// a file never replaces another, even one of the same instance being stored concurrently.
/// UIDs are digits and dots; anything else (and the tenant's name) is made filesystem-safe.
pub fn instance_path(tenant: &str, study_uid: &str, series_uid: &str, sop_uid: &str, token: &str) -> String {
    format!("{}/{}/{}/{}_{}.dcm", safe(tenant), safe(study_uid), safe(series_uid), safe(sop_uid), safe(token))
}

/// Where the file of a non-DICOM slide goes: beside its sidecar instance.
pub fn slide_path(tenant: &str, study_uid: &str, series_uid: &str, sop_uid: &str) -> String {
    format!("{}/{}/{}/{}.slide", safe(tenant), safe(study_uid), safe(series_uid), safe(sop_uid))
}

fn safe(part: &str) -> String {
    let cleaned: String =
        part.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_' { c } else { '_' }).collect();
    match cleaned.as_str() {
        "" | "." | ".." => format!("_{cleaned}"),
        _ => cleaned,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_is_renamed_in_its_folder_and_never_takes_another_name() {
        let first = renamed("alpha/1.2/1.2.3/1.2.3.4_1f-2-3.dcm");
        let second = renamed("alpha/1.2/1.2.3/1.2.3.4_1f-2-3.dcm");
        assert!(first.starts_with("alpha/1.2/1.2.3/1.2.3.4_") && first.ends_with(".dcm"), "{first}");
        assert_ne!(first, second);
        assert_eq!(renamed(&first).matches('_').count(), 1, "tokens do not pile up");
        let slide = renamed("alpha/1.2/1.2.3/1.2.3.4.slide");
        assert!(slide.starts_with("alpha/1.2/1.2.3/1.2.3.4_") && slide.ends_with(".slide"), "{slide}");
    }

    #[test]
    fn layout_is_by_study_series_instance_and_cannot_escape_the_root() {
        assert_eq!(instance_path("alpha", "1.2", "1.2.3", "1.2.3.4", "1f-2-3"), "alpha/1.2/1.2.3/1.2.3.4_1f-2-3.dcm");
        assert_eq!(instance_path("../x", "..", "a/b", "", "/"), ".._x/_../a_b/___.dcm");
    }

    fn storage_in(dir: &Path) -> Storage {
        let config = StorageConfig {
            data_dir: dir.to_owned(),
            media: Vec::new(),
            buckets: Vec::new(),
            default_medium: None,
            relocation_keep_s: 0,
            staging_grace_s: 3600,
        };
        Storage::new(&config).expect("storage")
    }

    fn staged(storage: &Storage, bytes: &[u8]) -> PathBuf {
        let mut file = storage.stage("default").expect("stage");
        let mut writer = file.writer(Algorithm::Xxh3).expect("writer");
        writer.write_all(bytes).expect("write");
        writer.finish().expect("finish");
        file.keep()
    }

    #[test]
    fn a_group_is_placed_in_new_nested_folders() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = storage_in(dir.path());
        let moves = vec![
            (staged(&storage, b"one"), instance_path("t", "1.2", "1.2.3", "1.2.3.1", "a")),
            (staged(&storage, b"two"), instance_path("t", "1.2", "1.2.3", "1.2.3.2", "a")),
            (staged(&storage, b"three"), instance_path("t", "1.9", "1.9.3", "1.9.3.1", "a")),
        ];
        let placed = storage.place_all("default", &moves).expect("placed");
        assert_eq!(placed.len(), 3);
        assert_eq!(std::fs::read(dir.path().join("archive/t/1.2/1.2.3/1.2.3.2_a.dcm")).expect("read"), b"two");
        assert_eq!(std::fs::read(dir.path().join("archive/t/1.9/1.9.3/1.9.3.1_a.dcm")).expect("read"), b"three");
        assert!(moves.iter().all(|(staged, _)| !staged.exists()), "staged files are moved, not copied");
    }

    #[test]
    fn a_file_placed_into_a_folder_whose_entry_is_not_synced_yet_syncs_its_parent_too() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = storage_in(dir.path());
        let root = dir.path().join("archive");
        // Another placement has created the series folder, and not yet synced the study folder.
        let (study, series) = (root.join("t/1.2"), root.join("t/1.2/1.2.3"));
        storage.fresh_folders.lock().expect("lock").insert(series.clone());
        std::fs::create_dir_all(&series).expect("mkdir");
        let mut changed = BTreeSet::new();
        let found = storage.parents_of_fresh(&root, &[series.join("1.2.3.9_b.dcm")], &mut changed);
        assert_eq!(found, vec![series.clone()]);
        assert!(changed.contains(&study), "the study folder is synced too: {changed:?}");
        // Placing a file there syncs it, and forgets the folder; so does placing into new folders.
        storage
            .place_all("default", &[(staged(&storage, b"one"), instance_path("t", "1.2", "1.2.3", "1.2.3.1", "a"))])
            .expect("placed");
        storage
            .place_all("default", &[(staged(&storage, b"two"), instance_path("t", "1.7", "1.7.3", "1.7.3.1", "a"))])
            .expect("placed");
        assert!(storage.fresh_folders.lock().expect("lock").is_empty(), "every fresh folder was synced and forgotten");
    }

    #[test]
    fn a_failed_group_leaves_no_file_in_place() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = storage_in(dir.path());
        let missing = dir.path().join("archive/.staging/never-written.part");
        let moves = vec![
            (staged(&storage, b"one"), instance_path("t", "1.2", "1.2.3", "1.2.3.1", "a")),
            (missing, instance_path("t", "1.2", "1.2.3", "1.2.3.2", "a")),
        ];
        assert!(storage.place_all("default", &moves).is_err());
        assert!(!dir.path().join("archive/t/1.2/1.2.3/1.2.3.1_a.dcm").exists(), "the first file was taken back");
    }

    #[test]
    fn an_orphan_is_set_aside_only_while_it_is_the_file_found_and_never_over_another() {
        use std::os::unix::fs::MetadataExt;
        use std::time::Duration;
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        let relative = "t/1.2/1.2.3/1.2.3.4_a.dcm";
        let write = |bytes: &[u8]| {
            std::fs::create_dir_all(root.join("t/1.2/1.2.3")).expect("folders");
            std::fs::write(root.join(relative), bytes).expect("write");
            std::fs::metadata(root.join(relative)).expect("metadata").ino()
        };
        let first = write(b"one");
        assert_eq!(set_aside(root, relative, first, Duration::from_secs(3600)).expect("look"), SetAside::Changed, "young");
        assert_eq!(set_aside(root, relative, first + 1, Duration::ZERO).expect("look"), SetAside::Changed, "another file");
        assert!(root.join(relative).exists());
        let orphans = root.join(ORPHANS).join("t/1.2/1.2.3");
        assert_eq!(
            set_aside(root, relative, first, Duration::ZERO).expect("move"),
            SetAside::Moved(orphans.join("1.2.3.4_a.dcm"))
        );
        assert!(!root.join(relative).exists());
        let second = write(b"two");
        assert_eq!(
            set_aside(root, relative, second, Duration::ZERO).expect("move"),
            SetAside::Moved(orphans.join("1.2.3.4_a.dcm.1"))
        );
        assert_eq!(std::fs::read(orphans.join("1.2.3.4_a.dcm")).expect("first"), b"one");
        assert_eq!(std::fs::read(orphans.join("1.2.3.4_a.dcm.1")).expect("second"), b"two");
    }
}
