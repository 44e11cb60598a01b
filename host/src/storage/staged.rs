//! A staging file: written as bytes arrive, digested and counted on the fly, synced to disk
//! before it is placed. Dropped without being placed, it deletes itself (also when its request
//! fails, panics or is dropped mid-way); while it lives it is in this process's list of live
//! staging files, whose times [`super::sweep`] keeps fresh.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use super::digest::{Algorithm, Hasher};

static NEXT: AtomicU64 = AtomicU64::new(0);

/// Staging files of this process not yet placed nor removed: a file written whole and waiting
/// (a relocation's copies until the last is done, a form's parts while its plugin runs) is not
/// modified, yet in use.
static LIVE: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());

/// The staging files of this process in use now.
pub(super) fn live() -> Vec<PathBuf> {
    LIVE.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).iter().cloned().collect()
}

fn set_live(path: &Path, live: bool) {
    let mut set = LIVE.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if live {
        set.insert(path.to_owned());
    } else {
        set.remove(path);
    }
}

/// Writes smaller than this are gathered; larger ones (a PDU's data, a body chunk) go straight
/// to the file, sparing a copy of most of an instance's bytes.
const WRITE_BUFFER: usize = 32 * 1024;

/// Bytes at the start of a synced file that stay in the page cache, where its header is read
/// next (see [`StagedWriter::finish`]).
const HEADER_CACHED: u64 = 64 * 1024;

/// A name part no other file of any server sharing the media has: process, sequence, time.
pub fn unique_token() -> String {
    format!(
        "{:x}-{:x}-{:x}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
    )
}

/// A file under a medium's `.staging` folder that removes itself unless kept.
#[derive(Debug)]
pub struct StagingFile {
    path: PathBuf,
    keep: bool,
    /// The handle the file was created with, until [`StagingFile::writer`] takes it (sparing a
    /// second open).
    created: Option<File>,
}

impl StagingFile {
    pub(super) fn create(dir: &Path) -> io::Result<Self> {
        let path = dir.join(format!("{}.part", unique_token()));
        let created = File::create_new(&path)?;
        set_live(&path, true);
        Ok(Self { path, keep: false, created: Some(created) })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What makes this file's name unique among every staging file of every server sharing the
    /// medium (process, sequence, time), to build a stored file's name no other file has.
    pub fn token(&self) -> &str {
        self.path.file_stem().and_then(|stem| stem.to_str()).unwrap_or_default()
    }

    /// A writer appending to the file while digesting (with `algorithm`) and counting.
    pub fn writer(&mut self, algorithm: Algorithm) -> io::Result<StagedWriter> {
        let file = match self.created.take() {
            Some(file) => file,
            None => std::fs::OpenOptions::new().append(true).open(&self.path)?,
        };
        Ok(StagedWriter { file: io::BufWriter::with_capacity(WRITE_BUFFER, file), digest: Hasher::new(algorithm), len: 0 })
    }

    /// Stops the file from deleting itself (it has been placed, or handed on).
    pub fn keep(mut self) -> PathBuf {
        self.keep = true;
        set_live(&self.path, false);
        std::mem::take(&mut self.path)
    }
}

impl Drop for StagingFile {
    fn drop(&mut self) {
        if !self.keep && !self.path.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.path);
            set_live(&self.path, false);
        }
    }
}

/// Appends to a staging file, computing its digest and length as it goes.
pub struct StagedWriter {
    file: io::BufWriter<File>,
    digest: Hasher,
    len: u64,
}

impl StagedWriter {
    pub fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.file.write_all(bytes)?;
        self.digest.update(bytes);
        self.len += bytes.len() as u64;
        Ok(())
    }

    /// Flushes and fsyncs; returns the length and the digest (in its recorded form). The
    /// synced bytes past the header then leave the page cache: an archive writes far more than
    /// it reads back soon, and ingest would otherwise fill memory with pages that push out the
    /// index's and the readers' (and, on a virtual machine that hands free memory back to its
    /// host, draw every new page from the host at a cost). Advice only: a failure is ignored.
    pub fn finish(self) -> io::Result<(u64, String)> {
        self.finish_then(|len, digest| (len, digest))
    }

    /// As [`StagedWriter::finish`], running `read` with the length and digest after the sync
    /// and before the pages leave the cache: a check that reads the file (ingest walks an
    /// instance's data set) then reads memory, not the disk.
    pub fn finish_then<T>(self, read: impl FnOnce(u64, String) -> T) -> io::Result<T> {
        let (file, len, digest) = self.finish_unsynced()?;
        file.sync_all()?;
        let answer = read(len, digest);
        if len > HEADER_CACHED {
            let _ = rustix::fs::fadvise(&file, HEADER_CACHED, None, rustix::fs::Advice::DontNeed);
        }
        Ok(answer)
    }

    /// Flushes without syncing, for a copy that is read once and removed (a file fetched from a
    /// bucket to be read): the file, its length and digest.
    pub fn finish_unsynced(self) -> io::Result<(File, u64, String)> {
        let file = self.file.into_inner().map_err(|e| e.into_error())?;
        Ok((file, self.len, self.digest.finish()))
    }
}
