//! Group commit for ingest: instances that arrive while a group is being committed wait and are
//! committed together as the next group, in one unit of work. Their files are placed already
//! (see [`PlacedInstance`]): a group syncs the folders they went to (once per folder, while it
//! writes its rows) and commits. One association alone still gets a group of one at once;
//! several associations or the parts of one STOW request share the cost of syncing the index and
//! the folders, and each further instance of a series already seen in the group costs one
//! statement ([`Registrar`]).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::{IngestError, Outcome, PlacedInstance, register, register_all};
use crate::db::{Backend, Database, WriterConnection};
use crate::db::index::Registrar;
use crate::storage::StorageError;

/// Most instances committed in one group, which bounds how long a unit of work holds the
/// index's write lock.
const MAX_GROUP: usize = 64;

/// Longest the committer holds the writer connection through a burst of groups before handing
/// it back to the pool for a turn (plugins and lifecycle requests write through it too).
const MAX_HOLD: Duration = Duration::from_millis(20);

/// Instances waiting for the committer before senders are made to wait.
const QUEUE: usize = 1024;

/// One instance waiting to be committed (its file placed and synced, its header read).
struct Request {
    tenant: String,
    calling_aet: String,
    placed: PlacedInstance,
    reply: oneshot::Sender<Result<Outcome, IngestError>>,
}

/// The handle senders use; the committing task ends when the last handle is dropped.
#[derive(Clone)]
pub struct Committer {
    queue: mpsc::Sender<Request>,
}

impl Committer {
    /// Starts the committer on a thread of its own, with a runtime of its own: each of its
    /// steps (a statement, a sync) resumes at once instead of queueing behind the associations'
    /// receive work on the shared runtime. It ends when the last handle is dropped.
    pub fn start(db: Database) -> Self {
        let (queue, requests) = mpsc::channel(QUEUE);
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
        match runtime {
            Ok(runtime) => {
                let spawned = std::thread::Builder::new().name("ingest-committer".into()).spawn(move || runtime.block_on(run(db, requests)));
                if let Err(e) = spawned {
                    // Without a thread of its own, it cannot run at all: say so loudly.
                    tracing::error!(error = %e, "cannot start the ingest committer thread");
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot build the ingest committer's runtime; it shares the server's");
                tokio::spawn(run(db, requests));
            }
        }
        Self { queue }
    }

    /// Queues an instance and waits until it is committed (or refused).
    pub async fn submit(&self, tenant: &str, calling_aet: &str, placed: PlacedInstance) -> Result<Outcome, IngestError> {
        let (reply, answer) = oneshot::channel();
        let request = Request { tenant: tenant.to_owned(), calling_aet: calling_aet.to_owned(), placed, reply };
        let stopped = || IngestError::Database("the ingest committer has stopped".into());
        self.queue.send(request).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

async fn run(db: Database, mut requests: mpsc::Receiver<Request>) {
    let mut group = Vec::with_capacity(MAX_GROUP);
    while requests.recv_many(&mut group, MAX_GROUP).await > 0 {
        // A burst: the writer connection is held while groups keep coming, for at most
        // `MAX_HOLD`, then handed back to the pool, where other writers may be waiting. On
        // SQLite that connection is the only writer, so what the registrar learns of studies and
        // series stays true through the burst; on PostgreSQL other writers run alongside, and
        // each group starts afresh.
        let (mut held, since) = (None, Instant::now());
        let mut burst = Registrar::new();
        loop {
            let registrar = if db.backend() == Backend::Sqlite { std::mem::take(&mut burst) } else { Registrar::new() };
            // A group in a task of its own: were it to panic, only its instances would fail
            // (their senders see the reply dropped) and the committer would go on.
            let (task_db, taken, conn) = (db.clone(), std::mem::take(&mut group), held.take());
            match tokio::spawn(async move { commit_group(&task_db, conn, registrar, taken).await }).await {
                Ok((conn, registrar)) => (held, burst) = (conn, registrar),
                Err(e) => tracing::error!(error = %e, "committing a group of instances failed"),
            }
            if since.elapsed() >= MAX_HOLD {
                break;
            }
            while group.len() < MAX_GROUP {
                let Ok(request) = requests.try_recv() else { break };
                group.push(request);
            }
            if group.is_empty() {
                break;
            }
        }
    }
    tracing::debug!("ingest committer stopped");
}

/// Commits a group on the writer connection `held` (taken from the pool when `None`), which
/// it hands back unless it broke, with `registrar` (which forgets what it knew when a unit does
/// not commit). If an instance of the group is refused while registering (a conflict, say), the
/// group's unit is rolled back and each instance is committed alone, so that one bad instance
/// fails only itself.
async fn commit_group(
    db: &Database,
    held: Option<WriterConnection>,
    mut registrar: Registrar,
    group: Vec<Request>,
) -> (Option<WriterConnection>, Registrar) {
    let mut conn = match held {
        Some(conn) => conn,
        None => match db.writer_connection().await {
            Ok(conn) => conn,
            Err(e) => {
                let e = IngestError::from(e);
                tracing::error!(error = %e, instances = group.len(), "a group of instances could not be stored");
                fail_all(group, &e);
                return (None, Registrar::new());
            }
        },
    };
    let group = if group.len() > 1 {
        match commit_together(db, &mut conn, &mut registrar, group).await {
            Ok(()) => return (Some(conn), registrar),
            Err(group) => group,
        }
    } else {
        group
    };
    // Committed alone, each with a registrar of its own.
    registrar.forget();
    for request in group {
        let Request { tenant, calling_aet, placed, reply } = request;
        let result = commit_alone(db, &mut conn, &tenant, &calling_aet, placed).await;
        // The sender may have gone (connection lost): the instance is archived all the same.
        let _ = reply.send(result);
    }
    (Some(conn), registrar)
}

async fn commit_alone(
    db: &Database,
    conn: &mut WriterConnection,
    tenant: &str,
    calling_aet: &str,
    placed: PlacedInstance,
) -> Result<Outcome, IngestError> {
    let syncing = sync_folders(std::slice::from_ref(&placed));
    let mut unit = db.begin_on(conn).await?;
    let mut registrar = Registrar::new();
    let outcome = register(&mut unit, &mut registrar, db, tenant, calling_aet, &placed).await?;
    if !outcome.stored {
        // A re-send: dropping the unit rolls it back, dropping the copy placed removes it.
        return Ok(outcome);
    }
    registrar.finish(&mut unit).await?;
    synced(syncing).await?;
    // A failed commit drops `placed`, which removes the file.
    unit.commit().await?;
    placed.keep();
    tracing::debug!(tenant, calling_aet, sop = %outcome.header.sop_instance_uid, "instance stored");
    Ok(outcome)
}

/// Registers every instance of the group in one unit, then commits. A refusal while
/// registering hands the whole group back untouched (the unit rolled back, the files still
/// placed); a failure committing fails every instance of the group and removes their files.
async fn commit_together(
    db: &Database,
    conn: &mut WriterConnection,
    registrar: &mut Registrar,
    group: Vec<Request>,
) -> Result<(), Vec<Request>> {
    let placed: Vec<&PlacedInstance> = group.iter().map(|r| &r.placed).collect();
    let syncing = sync_folders(placed);
    let mut unit = match db.begin_on(conn).await {
        Ok(unit) => unit,
        Err(e) => {
            let e = IngestError::from(e);
            tracing::error!(error = %e, instances = group.len(), "a group of instances could not be stored");
            registrar.forget();
            fail_all(group, &e);
            return Ok(());
        }
    };
    let entries: Vec<(&str, &str, &PlacedInstance)> =
        group.iter().map(|r| (r.tenant.as_str(), r.calling_aet.as_str(), &r.placed)).collect();
    let outcomes = match register_all(&mut unit, registrar, db, &entries).await {
        Ok(outcomes) => outcomes,
        Err(e) => {
            tracing::debug!(error = %e, size = group.len(), "an instance of a group was refused; committing each alone");
            registrar.forget();
            drop(entries);
            drop(unit);
            return Err(group);
        }
    };
    drop(entries);
    let committed = async {
        registrar.finish(&mut unit).await?;
        synced(syncing).await?;
        unit.commit().await?;
        Ok::<_, IngestError>(())
    }
    .await;
    match committed {
        Ok(()) => {
            let stored = outcomes.iter().filter(|o| o.stored).count();
            tracing::debug!(instances = outcomes.len(), stored, "group of instances stored");
            for (request, outcome) in group.into_iter().zip(outcomes) {
                let Request { placed, reply, .. } = request;
                if outcome.stored {
                    placed.keep();
                } else {
                    // A re-send's copy is removed before the sender hears back.
                    drop(placed);
                }
                let _ = reply.send(Ok(outcome));
            }
        }
        Err(e) => {
            tracing::error!(error = %e, instances = outcomes.len(), "a group of instances could not be stored");
            registrar.forget();
            // Dropping the requests removes their files.
            fail_all(group, &e);
        }
    }
    Ok(())
}

/// Starts syncing the folders the files of `placed` went to, on a blocking thread, while the
/// unit registers them; [`synced`] waits for it before the unit commits.
fn sync_folders<'a>(placed: impl IntoIterator<Item = &'a PlacedInstance>) -> tokio::task::JoinHandle<Result<(), StorageError>> {
    let folders: BTreeSet<PathBuf> = placed.into_iter().flat_map(|p| p.folders.iter().cloned()).collect();
    tokio::task::spawn_blocking(move || crate::storage::sync_folders(&folders))
}

async fn synced(syncing: tokio::task::JoinHandle<Result<(), StorageError>>) -> Result<(), IngestError> {
    syncing.await.map_err(|e| IngestError::Database(format!("folder sync task failed: {e}")))??;
    Ok(())
}

fn fail_all(group: Vec<Request>, e: &IngestError) {
    for request in group {
        let _ = request.reply.send(Err(same_error(e)));
    }
}

/// The error of a group, for each of its instances.
fn same_error(e: &IngestError) -> IngestError {
    match e {
        IngestError::Storage(StorageError::Io { path, source }) => IngestError::Storage(StorageError::Io {
            path: path.clone(),
            source: std::io::Error::new(source.kind(), source.to_string()),
        }),
        IngestError::Storage(StorageError::UnknownMedium(m)) => IngestError::Storage(StorageError::UnknownMedium(m.clone())),
        IngestError::Conflict(m) => IngestError::Conflict(m.clone()),
        other => IngestError::Database(other.to_string()),
    }
}
