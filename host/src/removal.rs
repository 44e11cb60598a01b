//! Removes the old copies of relocated files once they are due, each only if no row names it by
//! then, and tries again later when its medium or bucket cannot remove it. What is to be removed
//! is kept in the index ([`crate::db::removals`]), written by the relocation's own unit of work,
//! so that a stop in between leaves nothing behind for good: the next start goes on.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::Notify;

use crate::db::{Database, DbError, lifecycle, now_text, removals, text_in};
use crate::storage::Storage;

/// Removals taken at a time.
const BATCH: i64 = 256;

/// Longest wait before looking again (another server sharing the index may have scheduled some).
const IDLE: Duration = Duration::from_secs(60);

/// Wait before a removal that failed is tried again, and after the index could not be read.
const RETRY: Duration = Duration::from_secs(30);

/// The handle of the task that removes old copies; it runs as long as the server.
#[derive(Clone)]
pub struct Remover {
    wake: Arc<Notify>,
}

impl Remover {
    /// Starts the task: it removes at once what fell due while the server was stopped.
    pub fn start(db: Database, storage: Storage) -> Self {
        let wake = Arc::new(Notify::new());
        tokio::spawn(run(db, storage, wake.clone()));
        Self { wake }
    }

    /// Removals were scheduled: the task looks again now, not when it planned to.
    pub fn wake(&self) {
        self.wake.notify_one();
    }
}

/// Removes what is due, then waits for the next, until the server closes its index.
async fn run(db: Database, storage: Storage, wake: Arc<Notify>) {
    while !db.is_closed() {
        let wait = match remove_due(&db, &storage).await {
            Ok(wait) => wait,
            Err(_) if db.is_closed() => break,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read or update the removals due; trying again later");
                RETRY
            }
        };
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
    tracing::debug!("the index is closed: old copies are left to the next start");
}

/// Removes every file due now (or forgets it, when a row names it again); answers how long to
/// wait before the next one is due.
async fn remove_due(db: &Database, storage: &Storage) -> Result<Duration, DbError> {
    let (mut removed, mut failed) = (0usize, 0usize);
    loop {
        let due = removals::due(db.reader(), &now_text(), BATCH).await?;
        let (mut done, mut postponed) = (Vec::new(), Vec::new());
        for removal in &due {
            let (medium, path) = (removal.medium.as_str(), removal.relative_path.as_str());
            // A safeguard: no row should name an old copy, for no file is ever placed at an old
            // copy's path again (instance files and relocated copies have names of their own),
            // which is also why asking and removing may be two steps.
            if lifecycle::is_referenced(db.reader(), medium, path).await? {
                done.push(removal.id);
                continue;
            }
            match storage.discard(medium, path).await {
                Ok(()) => {
                    done.push(removal.id);
                    removed += 1;
                }
                Err(e) => {
                    tracing::warn!(medium, path, error = %e, "cannot remove an old copy; trying again later");
                    postponed.push(removal.id);
                }
            }
        }
        failed += postponed.len();
        // The removals must last before they are forgotten: else a crash could bring a file
        // back with nothing left to remove it.
        if let Err(e) = storage.sync_parents(due.iter().map(|r| (r.medium.as_str(), r.relative_path.as_str()))).await {
            tracing::warn!(error = %e, "cannot sync the folders of removed files; their removals are tried again later");
            postponed.append(&mut done);
        }
        // Written only when there is something to write: an idle look takes no write lock.
        if !done.is_empty() || !postponed.is_empty() {
            let mut unit = db.begin().await?;
            removals::forget(&mut unit, &done).await?;
            removals::postpone(&mut unit, &postponed, &text_in(RETRY)).await?;
            unit.commit().await?;
        }
        if due.len() < BATCH as usize {
            break;
        }
    }
    if removed + failed > 0 {
        tracing::info!(removed, failed, "old copies of relocated files removed");
    }
    let next = removals::next_due(db.reader()).await?;
    Ok(next.map_or(IDLE, |next| until(&next).min(IDLE)))
}

/// How long until `time` (as the index records times); nothing once it is past.
fn until(time: &str) -> Duration {
    humantime::parse_rfc3339_weak(time)
        .ok()
        .and_then(|at| at.duration_since(SystemTime::now()).ok())
        .map_or(Duration::ZERO, |wait| wait + Duration::from_millis(5))
}
