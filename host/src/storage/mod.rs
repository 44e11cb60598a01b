//! Storage media: named filesystem roots where instance files live, the layout of files under a
//! root, and the one way a file gets there: staged beside the medium, fsynced, then renamed
//! into place, so a reader never sees a partial file.

mod staged;

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

pub use staged::{StagedWriter, StagingFile};

use crate::config::StorageConfig;

/// The media files can be stored on.
#[derive(Debug, Clone)]
pub struct Storage {
    media: BTreeMap<String, PathBuf>,
    default: String,
}

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("no storage medium named `{0}`")]
    UnknownMedium(String),
    #[error("storage I/O on {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> StorageError + '_ {
    move |source| StorageError::Io { path: path.to_owned(), source }
}

impl Storage {
    /// The configured media plus `default` (`<data_dir>/archive`) unless configured otherwise.
    /// Creates the roots and their staging folders.
    pub fn new(config: &StorageConfig) -> Result<Self, StorageError> {
        let mut media = BTreeMap::new();
        media.insert("default".to_owned(), config.data_dir.join("archive"));
        for medium in &config.media {
            media.insert(medium.name.clone(), medium.path.clone());
        }
        let default = config.default_medium.clone().unwrap_or_else(|| "default".to_owned());
        if !media.contains_key(&default) {
            return Err(StorageError::UnknownMedium(default));
        }
        for root in media.values() {
            let staging = root.join(".staging");
            std::fs::create_dir_all(&staging).map_err(io_at(&staging))?;
        }
        Ok(Self { media, default })
    }

    /// The medium new files go to.
    pub fn default_medium(&self) -> &str {
        &self.default
    }

    /// Names of every medium.
    pub fn media(&self) -> impl Iterator<Item = &str> {
        self.media.keys().map(String::as_str)
    }

    fn root(&self, medium: &str) -> Result<&PathBuf, StorageError> {
        self.media.get(medium).ok_or_else(|| StorageError::UnknownMedium(medium.to_owned()))
    }

    /// A new staging file on `medium` (same filesystem, so the final rename is atomic).
    pub fn stage(&self, medium: &str) -> Result<StagingFile, StorageError> {
        let dir = self.root(medium)?.join(".staging");
        StagingFile::create(&dir).map_err(io_at(&dir))
    }

    /// Where a stored file is, from its medium and relative path.
    pub fn absolute(&self, medium: &str, relative: &str) -> Result<PathBuf, StorageError> {
        Ok(self.root(medium)?.join(relative))
    }

    /// Moves a complete, fsynced staged file to `relative` on `medium`, creating folders and
    /// syncing the folder so that the rename survives a crash. An existing file is replaced.
    pub fn place(&self, staged: &Path, medium: &str, relative: &str) -> Result<PathBuf, StorageError> {
        let target = self.absolute(medium, relative)?;
        let folder = target.parent().expect("layout paths have folders");
        std::fs::create_dir_all(folder).map_err(io_at(folder))?;
        std::fs::rename(staged, &target).map_err(io_at(&target))?;
        std::fs::File::open(folder).and_then(|d| d.sync_all()).map_err(io_at(folder))?;
        Ok(target)
    }

    /// Removes a stored file (used when its database row could not be committed).
    pub fn remove(&self, medium: &str, relative: &str) {
        if let Ok(path) = self.absolute(medium, relative) {
            if let Err(e) = std::fs::remove_file(&path) {
                tracing::warn!(path = %path.display(), error = %e, "cannot remove stored file");
            }
        }
    }
}

/// The relative path of an instance: `<tenant>/<study>/<series>/<sop instance>.dcm`.
/// UIDs are digits and dots; anything else (and the tenant's name) is made filesystem-safe.
pub fn instance_path(tenant: &str, study_uid: &str, series_uid: &str, sop_uid: &str) -> String {
    format!("{}/{}/{}/{}.dcm", safe(tenant), safe(study_uid), safe(series_uid), safe(sop_uid))
}

fn safe(part: &str) -> String {
    let cleaned: String = part
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_' { c } else { '_' })
        .collect();
    match cleaned.as_str() {
        "" | "." | ".." => format!("_{cleaned}"),
        _ => cleaned,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_by_study_series_instance_and_cannot_escape_the_root() {
        assert_eq!(instance_path("alpha", "1.2", "1.2.3", "1.2.3.4"), "alpha/1.2/1.2.3/1.2.3.4.dcm");
        assert_eq!(instance_path("../x", "..", "a/b", ""), ".._x/_../a_b/_.dcm");
    }
}
