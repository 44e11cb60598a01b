//! Group commit for ingest: instances that arrive while a group is being committed wait and are
//! committed together as the next group. Their files are placed and synced already (see
//! [`PlacedInstance`]), so a group's turn is its rows' commit alone. The instances of studies
//! and series that exist already, nearly all of them, are committed the fast way: on SQLite in
//! a unit of the committer's own connection, with no trip to another thread per statement
//! ([`DirectWriter`]); on PostgreSQL with one statement that commits on its own. The others (a
//! new study or series, a conflict; on PostgreSQL also a re-send) go the general way, one unit
//! of work per group ([`Registrar::register_all`]), where one bad instance fails only itself.
//! One association alone still gets a group of one at once.

use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::{IngestError, Outcome, PlacedInstance, register_all, register_existing_at_once, register_existing_direct};
use crate::db::archive::OpError;
use crate::db::index::Registrar;
use crate::db::index::direct::DirectWriter;
use crate::db::{Backend, Database, WriterConnection};
use crate::storage::StorageError;

/// Most instances committed in one group, which bounds how long a unit of work holds the
/// index's write lock.
const MAX_GROUP: usize = 64;

/// Longest the committer holds the writer connection through a burst of groups before handing
/// it back to the pool for a turn (plugins and lifecycle requests write through it too).
const MAX_HOLD: Duration = Duration::from_millis(20);

/// Instances waiting for the committer before senders are made to wait.
const QUEUE: usize = 1024;

/// One instance waiting to be committed (its file placed, its data synced, its header read).
struct Request {
    tenant: String,
    calling_aet: String,
    placed: PlacedInstance,
    reply: oneshot::Sender<Result<Committed, IngestError>>,
}

/// A committed instance's outcome and, for a re-send, the copy placed (removed when dropped),
/// which replaces a damaged stored copy (see [`super::repair`]).
pub(super) type Committed = (Outcome, Option<PlacedInstance>);

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
                let spawned = std::thread::Builder::new()
                    .name("ingest-committer".into())
                    .spawn(move || runtime.block_on(run(db, requests)));
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
    pub async fn submit(&self, tenant: &str, calling_aet: &str, placed: PlacedInstance) -> Result<Committed, IngestError> {
        let (reply, answer) = oneshot::channel();
        let request = Request { tenant: tenant.to_owned(), calling_aet: calling_aet.to_owned(), placed, reply };
        let stopped = || IngestError::Database("the ingest committer has stopped".into());
        self.queue.send(request).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

/// What the committer carries from one group to the next.
#[derive(Default)]
struct Writer {
    /// The pool's writer connection, held through a burst of groups.
    held: Option<WriterConnection>,
    /// SQLite only: the committer's own connection, which registers the instances of existing
    /// studies and series with no trip to sqlx's worker thread per statement. It writes only
    /// while `held` is held, the pool's single writer connection, so the two never contend.
    direct: Option<DirectWriter>,
    registrar: Registrar,
}

async fn run(db: Database, mut requests: mpsc::Receiver<Request>) {
    let mut group = Vec::with_capacity(MAX_GROUP);
    let mut writer = Writer::default();
    let mut direct_failed = false;
    while requests.recv_many(&mut group, MAX_GROUP).await > 0 {
        if writer.direct.is_none() && !direct_failed {
            match db.direct_writer().transpose() {
                Ok(direct) => writer.direct = direct,
                Err(e) => {
                    // The general way still works, only slower: say so once.
                    tracing::warn!(error = %e, "cannot open the ingest committer's own SQLite connection; committing through the pool");
                    direct_failed = true;
                }
            }
        }
        // A burst: the writer connection is held while groups keep coming, for at most
        // `MAX_HOLD`, then handed back to the pool, where other writers may be waiting. On
        // SQLite that connection is the only writer, so what the registrar learns of studies and
        // series stays true through the burst; on PostgreSQL other writers run alongside, and
        // each unit starts afresh (see `commit_unit`).
        let since = Instant::now();
        loop {
            // A group in a task of its own: were it to panic, only its instances would fail
            // (their senders see the reply dropped) and the committer would go on.
            let (task_db, taken, carried) = (db.clone(), std::mem::take(&mut group), std::mem::take(&mut writer));
            match tokio::spawn(async move { commit_group(&task_db, carried, taken).await }).await {
                Ok(carried) => writer = carried,
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
        // The burst is over: the pool's writer connection goes back, and with it what the
        // registrar knew.
        writer.held = None;
        writer.registrar = Registrar::new();
    }
    tracing::debug!("ingest committer stopped");
}

/// Commits a group with `writer` (taking the pool's writer connection when it holds none),
/// which it hands back. If an instance of the group is refused while registering (a conflict,
/// say), the group's unit is rolled back and each instance is committed alone, so that one bad
/// instance fails only itself.
async fn commit_group(db: &Database, mut writer: Writer, group: Vec<Request>) -> Writer {
    let mut conn = match writer.held.take() {
        Some(conn) => conn,
        None => match db.writer_connection().await {
            Ok(conn) => conn,
            Err(e) => {
                let e = IngestError::from(e);
                tracing::error!(error = %e, instances = group.len(), "a group of instances could not be stored");
                fail_all(group, &e);
                return Writer { registrar: Registrar::new(), ..writer };
            }
        },
    };
    let group = commit_existing(db, &mut conn, &mut writer, group).await;
    if group.len() > 1 {
        match commit_unit(db, &mut conn, &mut writer.registrar, &group).await {
            Err(Refusal::Refused(e)) => {
                tracing::debug!(error = %e, size = group.len(), "an instance of a group was refused; committing each alone");
            }
            result => {
                answer(group, result);
                return Writer { held: Some(conn), ..writer };
            }
        }
    }
    for request in group {
        let request = vec![request];
        let result = commit_unit(db, &mut conn, &mut writer.registrar, &request).await;
        // The sender may have gone (connection lost): the instance is archived all the same.
        answer(request, result);
    }
    Writer { held: Some(conn), ..writer }
}

/// Why a unit of work did not commit.
enum Refusal {
    /// An instance was refused while registering: its group may be tried again one by one.
    Refused(IngestError),
    /// The unit could not be begun or committed: its instances fail.
    Failed(IngestError),
    /// The commit's answer was lost (the connection broke): the unit may have committed, so
    /// its instances fail but keep their files.
    Unsure(IngestError),
}

/// Why the fast way did not commit.
enum Fallback {
    /// Nothing was written (the database refused): the instances go the general way.
    Retry(IngestError),
    /// Whether the statement committed is unknown (the connection broke): the instances fail,
    /// but their files stay, for their rows may exist. The general way could even take such a
    /// row for a re-send's and remove its file.
    Unsure(IngestError),
}

/// Commits at once, the fast way, those instances of `group` whose study and series exist: on
/// SQLite in a unit of the committer's own connection, on PostgreSQL with one statement. Answers
/// them, and hands back the others for the general way (all of them when the fast way wrote
/// nothing, and none of them when it failed).
async fn commit_existing(db: &Database, conn: &mut WriterConnection, writer: &mut Writer, group: Vec<Request>) -> Vec<Request> {
    let placed = placed_of(&group);
    let result = match (db.backend(), writer.direct.as_mut()) {
        (Backend::Sqlite, Some(direct)) => commit_direct(direct, &mut writer.registrar, &placed),
        (Backend::Postgres, _) => commit_at_once(conn, &placed).await,
        (Backend::Sqlite, None) => return group,
    };
    drop(placed);
    let outcomes = match result {
        Ok(outcomes) => outcomes,
        Err(Fallback::Retry(e)) => {
            writer.registrar.forget();
            tracing::debug!(error = %e, instances = group.len(), "the fast way refused a group; it goes the general way");
            return group;
        }
        Err(Fallback::Unsure(e)) => {
            fail_keeping_files(group, &e);
            return Vec::new();
        }
    };
    let (mut committed, mut answers, mut rest) = (Vec::new(), Vec::new(), Vec::new());
    for (request, outcome) in group.into_iter().zip(outcomes) {
        match outcome {
            Some(outcome) => {
                committed.push(request);
                answers.push(outcome);
            }
            None => rest.push(request),
        }
    }
    if !committed.is_empty() {
        answer(committed, Ok(answers));
    }
    rest
}

/// SQLite: registers the instances of existing series in a unit of the committer's own
/// connection, then commits. Any failure rolls the unit back.
fn commit_direct(
    direct: &mut DirectWriter,
    registrar: &mut Registrar,
    placed: &[(&str, &str, &PlacedInstance)],
) -> Result<Vec<Option<Outcome>>, Fallback> {
    let retry = |e: IngestError| Fallback::Retry(e);
    let unit = direct.begin().map_err(|e| retry(e.into()))?;
    let outcomes = register_existing_direct(&unit, registrar, placed).map_err(retry)?;
    registrar.finish_direct(&unit).map_err(|e| retry(e.into()))?;
    unit.commit().map_err(|e| retry(e.into()))?;
    Ok(outcomes)
}

/// PostgreSQL: registers the instances of existing series with one statement that commits on
/// its own.
async fn commit_at_once(
    conn: &mut WriterConnection,
    placed: &[(&str, &str, &PlacedInstance)],
) -> Result<Vec<Option<Outcome>>, Fallback> {
    match register_existing_at_once(conn, placed).await {
        Ok(outcomes) => Ok(outcomes),
        // The database refused the statement: nothing was written.
        Err(OpError::Sql(e @ sqlx::Error::Database(_))) => Err(Fallback::Retry(e.into())),
        Err(e) => Err(Fallback::Unsure(e.into())),
    }
}

/// Registers `requests` in one unit of work on `conn`, then commits. On PostgreSQL `registrar`
/// starts afresh: other writers may have created or moved studies and series since its last
/// unit. On any refusal or failure the unit is rolled back and `registrar` forgets what it knew;
/// the files stay placed until the requests are answered ([`answer`]).
async fn commit_unit(
    db: &Database,
    conn: &mut WriterConnection,
    registrar: &mut Registrar,
    requests: &[Request],
) -> Result<Vec<Outcome>, Refusal> {
    if db.backend() != Backend::Sqlite {
        registrar.forget();
    }
    let placed = placed_of(requests);
    let result = async {
        let mut unit = db.begin_on(conn).await.map_err(|e| Refusal::Failed(e.into()))?;
        let outcomes = register_all(&mut unit, registrar, db, &placed).await.map_err(Refusal::Refused)?;
        unit.commit().await.map_err(|e| match e {
            // The database refused to commit: nothing was written.
            sqlx::Error::Database(_) => Refusal::Failed(e.into()),
            e => Refusal::Unsure(e.into()),
        })?;
        Ok(outcomes)
    }
    .await;
    if result.is_err() {
        registrar.forget();
    }
    result
}

/// Answers the requests of a unit: a stored instance keeps its file, a re-send's copy goes back
/// to its sender (who removes it unless the stored copy is damaged), and on a failure every
/// file is removed.
fn answer(requests: Vec<Request>, result: Result<Vec<Outcome>, Refusal>) {
    match result {
        Ok(outcomes) => {
            let stored = outcomes.iter().filter(|o| o.stored).count();
            tracing::debug!(instances = outcomes.len(), stored, "instances stored");
            for (request, outcome) in requests.into_iter().zip(outcomes) {
                let Request { placed, reply, .. } = request;
                let copy = if outcome.stored {
                    placed.keep();
                    None
                } else {
                    Some(placed)
                };
                // A sender gone drops the copy, which removes it.
                let _ = reply.send(Ok((outcome, copy)));
            }
        }
        Err(Refusal::Refused(e) | Refusal::Failed(e)) => {
            if requests.len() > 1 {
                tracing::error!(error = %e, instances = requests.len(), "a group of instances could not be stored");
            }
            // Dropping the requests removes their files.
            fail_all(requests, &e);
        }
        Err(Refusal::Unsure(e)) => fail_keeping_files(requests, &e),
    }
}

/// Fails instances whose rows may have been committed: their files stay (at worst a file no row
/// names, rather than a row whose file is gone).
fn fail_keeping_files(requests: Vec<Request>, e: &IngestError) {
    tracing::error!(error = %e, instances = requests.len(), "instances may not have been stored; their files are kept");
    for request in requests {
        let Request { placed, reply, .. } = request;
        placed.keep();
        let _ = reply.send(Err(same_error(e)));
    }
}

/// What the registrar is given of requests: tenant, calling AE title and placed file.
fn placed_of(requests: &[Request]) -> Vec<(&str, &str, &PlacedInstance)> {
    requests.iter().map(|r| (r.tenant.as_str(), r.calling_aet.as_str(), &r.placed)).collect()
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
