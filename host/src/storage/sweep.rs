//! What a crash leaves in a medium's `.staging` folder, and its removal. A staging file removes
//! itself when its request ends however it ends (see [`super::StagingFile`]); only a process
//! that dies (a kill, power loss) leaves one behind. Such a file is told from one in use by its
//! last-modified time, which works across several hosts sharing a medium: a file being written
//! is modified as bytes arrive, and every live staging file of a running host has its time
//! refreshed every third of the grace ([`refresh_live`]), so a file not modified for the whole
//! grace belongs to no running host. Sweeps run at start and then at that same pace.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::{STAGING, Storage};

/// A file found in a staging folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leftover {
    pub path: PathBuf,
    pub bytes: u64,
    /// Time since it was last modified.
    pub idle: Duration,
}

/// Every file in the `staging` folder, with its size and idle time.
pub fn list(staging: &Path) -> Vec<Leftover> {
    let Ok(entries) = std::fs::read_dir(staging) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let meta = entry.metadata().ok().filter(|m| m.is_file())?;
            let idle = meta.modified().ok().and_then(|t| t.elapsed().ok()).unwrap_or_default();
            Some(Leftover { path: entry.path(), bytes: meta.len(), idle })
        })
        .collect()
}

/// Removes the files of `staging` not modified for `grace`, but never one this process uses;
/// answers how many and their bytes. Blocking.
pub fn sweep(staging: &Path, grace: Duration) -> (usize, u64) {
    let live = super::staged::live();
    let (mut removed, mut bytes) = (0, 0);
    for found in list(staging) {
        if found.idle >= grace && !live.contains(&found.path) && std::fs::remove_file(&found.path).is_ok() {
            removed += 1;
            bytes += found.bytes;
        }
    }
    if removed > 0 {
        tracing::warn!(folder = %staging.display(), removed, bytes, "removed staging files left by a crash");
    }
    (removed, bytes)
}

/// Marks every staging file this process uses as modified now, so that no host sharing the
/// medium takes it for a leftover while it waits (written whole, not placed yet). Blocking.
pub fn refresh_live() {
    let now = SystemTime::now();
    for path in super::staged::live() {
        // Gone meanwhile (placed or removed): nothing to keep fresh.
        if let Ok(file) = std::fs::File::options().append(true).open(&path) {
            let _ = file.set_modified(now);
        }
    }
}

/// The pace of refreshes and sweeps for `grace`: three refreshes fit in it, so that a slow
/// refresh (a busy disk) still comes well before another host's sweep would take the file.
fn period(grace: Duration) -> Duration {
    (grace / 3).max(Duration::from_secs(1))
}

/// Refreshes this process's live staging files and sweeps every medium's staging folder
/// periodically, in the background for as long as the runtime runs (the sweep at start is
/// [`Storage::new`]'s).
pub fn spawn(storage: &Storage, grace: Duration) {
    let folders: Vec<PathBuf> = storage.media.values().map(|root| root.join(STAGING)).collect();
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(period(grace));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            let folders = folders.clone();
            let _ = tokio::task::spawn_blocking(move || {
                refresh_live();
                for folder in &folders {
                    sweep(folder, grace);
                }
            })
            .await;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn storage_in(dir: &Path) -> Storage {
        let config = crate::config::StorageConfig { data_dir: dir.to_owned(), ..Default::default() };
        Storage::new(&config).expect("storage")
    }

    fn age(path: &Path, by: Duration) {
        let file = std::fs::File::options().append(true).open(path).expect("open");
        file.set_modified(SystemTime::now() - by).expect("set time");
    }

    #[test]
    fn leftovers_idle_for_the_grace_are_swept_and_live_files_never() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = storage_in(dir.path());
        let staging = dir.path().join("archive").join(STAGING);
        let live = storage.stage("default").expect("stage");
        let left = staging.join("left-by-a-crash.part");
        std::fs::write(&left, b"left by a crash").expect("write");
        assert_eq!(sweep(&staging, Duration::from_secs(3600)), (0, 0), "recent files may be in use");
        age(&left, Duration::from_secs(7200));
        age(live.path(), Duration::from_secs(7200));
        assert_eq!(list(&staging).len(), 2);
        assert_eq!(sweep(&staging, Duration::from_secs(3600)), (1, 15), "the crash's file goes");
        assert!(!left.exists());
        assert!(live.path().exists(), "a file this process uses stays");
        refresh_live();
        let found = list(&staging);
        assert_eq!(found.len(), 1);
        assert!(found[0].idle < Duration::from_secs(3600), "its time is refreshed for other hosts: {found:?}");
        let path = live.path().to_owned();
        drop(live);
        assert!(!path.exists(), "dropped, it removes itself");
    }
}
