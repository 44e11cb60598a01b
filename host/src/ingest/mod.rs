//! Ingest: a complete Part-10 file staged on a medium becomes an archived instance. Its header is
//! read and its data set checked whole ([`crate::dicom::completeness`]: a damaged instance is
//! never acknowledged), its file is placed under a name of its own, and only then is its row
//! committed (in a unit of work, or by one statement that commits on its own); a failure leaves
//! neither the file nor a row, except when whether the row committed cannot be known (the
//! database connection broke), where the file stays. Re-sending a stored instance is a success
//! that changes nothing, unless the stored copy is damaged ([`repair`]).
//! Instances arriving together are committed as a group ([`committer`]). The core also runs
//! inside a caller's unit of work (a plugin's `archive.store-instance`), handing back the placed
//! file to keep once it commits.

use std::sync::Arc;

use serde_json::json;
use sqlx::AnyConnection;

use crate::db::archive::OpError;
use crate::db::events::{self, StudyEvent};
use crate::db::index::direct::{DirectError, DirectUnit};
use crate::db::index::{Entry, FileRecord, Registrar, Registration, one_statement};
use crate::db::{Database, DbError};
use crate::dicom::completeness::{self, Damage};
use crate::dicom::header::{HeaderError, InstanceHeader, read_header};
use crate::storage::{Algorithm, StagingFile, Storage, StorageError, instance_path};

pub mod committer;
mod repair;

use committer::Committer;

/// A staged Part-10 file with the length and digest computed while it was written.
#[derive(Debug)]
pub struct StagedInstance {
    pub file: StagingFile,
    pub size: u64,
    pub digest: String,
    /// The file's header and whether its data set is whole, once read (see
    /// [`StagedInstance::header`]).
    checked: Option<Checked>,
}

/// A staged file's header, read, and its data set, walked.
#[derive(Debug, Clone)]
enum Checked {
    Whole(Arc<InstanceHeader>),
    Damaged(Arc<InstanceHeader>, Damage),
}

impl Checked {
    fn into_result(self) -> Result<Arc<InstanceHeader>, IngestError> {
        match self {
            Checked::Whole(header) => Ok(header),
            Checked::Damaged(header, damage) => Err(IngestError::Damaged { header, damage }),
        }
    }
}

/// Reads the header of the Part-10 file at `path` and walks its data set (blocking). The walk
/// reads the pages the header reader has just read, and element headers beyond: call it while
/// the file is still in the page cache (see [`crate::storage::StagedWriter::finish_then`]).
fn check(path: &std::path::Path) -> Result<Checked, IngestError> {
    let walked = completeness::check_file(path).map_err(|source| StorageError::Io { path: path.to_owned(), source })?;
    // The header reader follows sequences recursively too: too deep a nesting never reaches it.
    if let Err(damage @ Damage::TooDeep { .. }) = &walked {
        return Err(IngestError::Invalid(HeaderError::Unreadable(damage.to_string())));
    }
    let header = Arc::new(read_header(path)?);
    Ok(match walked {
        Ok(()) => Checked::Whole(header),
        Err(damage) => Checked::Damaged(header, damage),
    })
}

impl StagedInstance {
    pub fn new(file: StagingFile, size: u64, digest: String) -> Self {
        Self { file, size, digest, checked: None }
    }

    /// A staged file just completed, from a blocking thread: its header is read and its data
    /// set walked there and then, while the file is hot, sparing a later trip to a blocking
    /// thread. A file that cannot be read is still returned; [`StagedInstance::header`] then
    /// says why.
    pub fn completed(file: StagingFile, size: u64, digest: String) -> Self {
        let checked = check(file.path()).ok();
        Self { file, size, digest, checked }
    }

    /// The indexed attributes of the staged file, read (off the async executor) on first use
    /// only, so that a caller who looks before ingesting does not make ingest read it again.
    /// A file whose data set is not whole is an [`IngestError::Damaged`].
    pub async fn header(&mut self) -> Result<Arc<InstanceHeader>, IngestError> {
        if let Some(checked) = &self.checked {
            return checked.clone().into_result();
        }
        let path = self.file.path().to_owned();
        let checked = tokio::task::spawn_blocking(move || check(&path))
            .await
            .map_err(|e| IngestError::Database(format!("header task failed: {e}")))??;
        self.checked = Some(checked.clone());
        checked.into_result()
    }
}

/// Why an instance was not stored.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("{0}")]
    Invalid(#[from] HeaderError),
    /// The header reads, but the data set is not whole (cut, malformed, or its pixel data does
    /// not match its image attributes): nothing is stored.
    #[error("{damage}")]
    Damaged { header: Arc<InstanceHeader>, damage: Damage },
    #[error("{0}")]
    Conflict(String),
    #[error("storage failure: {0}")]
    Storage(#[from] StorageError),
    #[error("database failure: {0}")]
    Database(String),
}

impl From<OpError> for IngestError {
    fn from(e: OpError) -> Self {
        match e {
            OpError::Conflict(m) => IngestError::Conflict(m),
            OpError::NotFound(m) | OpError::Invalid(m) => IngestError::Conflict(m),
            OpError::Sql(e) => IngestError::Database(e.to_string()),
        }
    }
}

impl From<DbError> for IngestError {
    fn from(e: DbError) -> Self {
        IngestError::Database(e.to_string())
    }
}

impl From<DirectError> for IngestError {
    fn from(e: DirectError) -> Self {
        IngestError::Database(e.to_string())
    }
}

impl From<sqlx::Error> for IngestError {
    fn from(e: sqlx::Error) -> Self {
        IngestError::Database(e.to_string())
    }
}

/// What happened to an instance sent for storage.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub header: Arc<InstanceHeader>,
    /// False when it was already stored (a re-send).
    pub stored: bool,
    /// The instance's key in the index (the stored one, for a re-send).
    pub instance_key: i64,
    /// Events recorded (study received, series received), to hand to plugin hooks.
    pub events: Vec<StudyEvent>,
}

/// Stores instances into the archive.
#[derive(Clone)]
pub struct Ingest {
    db: Database,
    storage: Storage,
    committer: Committer,
}

impl Ingest {
    /// Must be called inside the tokio runtime: it starts the group committer.
    pub fn new(db: Database, storage: Storage) -> Self {
        let committer = Committer::start(db.clone());
        Self { db, storage, committer }
    }

    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// Archives a staged Part-10 file for `tenant`, as received from `calling_aet`. Instances
    /// sent at the same time (several associations, the parts of a STOW request) are committed
    /// together: one unit of work for the group (see [`committer`]).
    pub async fn store(&self, tenant: &str, calling_aet: &str, staged: StagedInstance) -> Result<Outcome, IngestError> {
        let placed = self.place(tenant, staged).await?;
        self.store_placed(tenant, calling_aet, placed).await
    }

    /// Archives an instance already placed (see [`PlacedInstance::place`]). A re-send whose
    /// stored copy is damaged replaces it ([`repair`]).
    pub async fn store_placed(&self, tenant: &str, calling_aet: &str, placed: PlacedInstance) -> Result<Outcome, IngestError> {
        match self.committer.submit(tenant, calling_aet, placed).await? {
            (outcome, Some(copy)) => repair::resent(&self.db, &self.storage, tenant, outcome, copy).await,
            (outcome, None) => Ok(outcome),
        }
    }

    /// Places a staged file for `tenant` (reading its header first if needed), off the async
    /// threads (see [`PlacedInstance::place`]).
    pub async fn place(&self, tenant: &str, staged: StagedInstance) -> Result<PlacedInstance, IngestError> {
        let (storage, tenant) = (self.storage.clone(), tenant.to_owned());
        tokio::task::spawn_blocking(move || PlacedInstance::place(&storage, &tenant, staged))
            .await
            .map_err(|e| IngestError::Database(format!("placing task failed: {e}")))?
    }

    /// Archives a staged Part-10 file inside the caller's unit of work (`conn`): places its
    /// file, registers it in the index and records its events. The caller commits, then keeps
    /// the returned [`PlacedFile`]; dropping it instead (rollback, failure) removes the file. A
    /// re-send returns no file. On an error the caller must roll the unit (or its savepoint)
    /// back: rows may have been written. `beside`: bytes of a file the caller stores beside the
    /// instance in the same unit (a slide's), counted in its study's size with it.
    pub async fn store_in(
        &self,
        conn: &mut AnyConnection,
        tenant: &str,
        calling_aet: &str,
        staged: StagedInstance,
        beside: u64,
    ) -> Result<(Outcome, Option<PlacedFile>), IngestError> {
        let mut placed = self.place(tenant, staged).await?;
        placed.record.beside = beside;
        let outcome = register(conn, &mut Registrar::new(), &self.db, tenant, calling_aet, &placed).await?;
        if !outcome.stored {
            // A re-send: the copy just placed goes again.
            return Ok((outcome, None));
        }
        tracing::debug!(tenant, calling_aet, sop = %outcome.header.sop_instance_uid, "instance placed");
        Ok((outcome, Some(placed.file)))
    }

    /// Writes a small Part-10 object held in memory (e.g. a document a plugin built) to a
    /// staging file on the default medium, ready for [`Ingest::store_in`].
    pub async fn stage_bytes(&self, bytes: Vec<u8>) -> Result<StagedInstance, IngestError> {
        let storage = self.storage.clone();
        tokio::task::spawn_blocking(move || {
            let mut file = storage.stage(storage.default_medium())?;
            let mut write = || -> std::io::Result<(u64, String)> {
                let mut writer = file.writer(Algorithm::Xxh3)?;
                writer.write_all(&bytes)?;
                writer.finish()
            };
            let (size, digest) = write().map_err(|source| StorageError::Io { path: file.path().to_owned(), source })?;
            Ok(StagedInstance::new(file, size, digest))
        })
        .await
        .map_err(|e| IngestError::Database(format!("staging task failed: {e}")))?
    }
}

/// A staged instance moved to its place on the default medium, under a name no other file has
/// ([`instance_path`]), its folders synced. Placing never replaces a stored file, so it happens
/// before, and outside, the unit of work that registers the instance: concurrent stores place
/// (and sync) their files in parallel, while the committer commits the instances placed before.
/// Removed again when dropped, unless its unit commits.
#[derive(Debug)]
pub struct PlacedInstance {
    pub header: Arc<InstanceHeader>,
    pub record: FileRecord,
    file: PlacedFile,
}

impl PlacedInstance {
    /// Reads the staged file's header and walks its data set (unless done already), refusing a
    /// damaged one, moves the file to its place for
    /// `tenant` and syncs the folders that changed, so that the file survives a crash once its
    /// row commits. Each store syncs its own folders: syncs of stores arriving together then
    /// overlap each other and the committer's commits, where syncing a group's folders in the
    /// committer (once per folder) would add them to every group's commit. Blocking: call it
    /// off the async threads.
    pub fn place(storage: &Storage, tenant: &str, staged: StagedInstance) -> Result<Self, IngestError> {
        let checked = match staged.checked {
            Some(checked) => checked,
            None => check(staged.file.path())?,
        };
        let header = checked.into_result()?;
        let medium = storage.default_medium().to_owned();
        let relative =
            instance_path(tenant, &header.study_uid, &header.series_uid, &header.sop_instance_uid, staged.file.token());
        // On a failure the file moved is removed again, and the staging file removes itself.
        storage.place_all(&medium, &[(staged.file.path().to_owned(), relative.clone())])?;
        // Moved: the staging path is gone.
        staged.file.keep();
        let record = FileRecord {
            medium: medium.clone(),
            relative_path: relative.clone(),
            size: staged.size,
            digest: staged.digest,
            beside: 0,
        };
        Ok(Self { header, record, file: PlacedFile::new(storage.clone(), medium, relative) })
    }

    /// The unit of work that registered the instance committed: the file stays.
    pub fn keep(self) {
        self.file.keep();
    }
}

/// Registers a placed instance in the unit of work `conn`, adds it to its study's totals and
/// records the events of what it created. A re-send changes nothing (`stored` is false).
pub(crate) async fn register(
    conn: &mut AnyConnection,
    registrar: &mut Registrar,
    db: &Database,
    tenant: &str,
    calling_aet: &str,
    placed: &PlacedInstance,
) -> Result<Outcome, IngestError> {
    Ok(register_all(conn, registrar, db, &[(tenant, calling_aet, placed)]).await?.pop().expect("one outcome"))
}

/// Registers several placed instances, each with its tenant and calling AE title, as
/// [`register`] does for one (instances of known series are inserted together, see
/// [`Registrar::register_all`]); answers in their order. The studies' totals are written
/// ([`Registrar::finish`]) before the events are recorded: study rows are locked before the
/// event feed's lock, as every unit of work that recounts studies takes them (see
/// [`crate::db::lock_studies`]), so that this unit and such a one never wait on each other
/// crosswise.
pub(crate) async fn register_all(
    conn: &mut AnyConnection,
    registrar: &mut Registrar,
    db: &Database,
    placed: &[(&str, &str, &PlacedInstance)],
) -> Result<Vec<Outcome>, IngestError> {
    let registrations = registrar.register_all(conn, &entries(placed)).await?;
    registrar.finish(conn).await?;
    let mut outcomes = Vec::with_capacity(placed.len());
    for (&(tenant, calling_aet, p), registration) in placed.iter().zip(registrations) {
        let header = p.header.clone();
        if !registration.stored {
            // Already archived: the copy placed is removed when dropped.
            outcomes.push(Outcome { header, stored: false, instance_key: registration.instance_key, events: Vec::new() });
            continue;
        }
        let mut recorded = Vec::new();
        let detail = json!({
            "callingAet": calling_aet,
            "seriesInstanceUid": header.series_uid,
            "modality": header.modality,
            "stationName": header.station_name,
        });
        for (happened, kind) in [(registration.study_created, "STUDY_RECEIVED"), (registration.series_created, "SERIES_RECEIVED")]
        {
            if happened {
                let offset =
                    events::append(conn, db.backend(), tenant, kind, Some(&header.study_uid), &detail.to_string()).await?;
                recorded.push(StudyEvent {
                    offset,
                    kind: kind.to_owned(),
                    study_uid: Some(header.study_uid.clone()),
                    detail: detail.clone(),
                    created_at: crate::db::now_text(),
                });
            }
        }
        outcomes.push(Outcome { header, stored: true, instance_key: registration.instance_key, events: recorded });
    }
    Ok(outcomes)
}

/// Registers, in a unit of the SQLite committer's own connection, those placed instances whose
/// study and series exist already (see [`Registrar::register_existing`]); `None` for each other
/// one, left for [`register_all`]. Nothing is created, so no event is recorded.
pub(crate) fn register_existing_direct(
    unit: &DirectUnit<'_>,
    registrar: &mut Registrar,
    placed: &[(&str, &str, &PlacedInstance)],
) -> Result<Vec<Option<Outcome>>, IngestError> {
    let registrations = registrar.register_existing(unit, &entries(placed))?;
    Ok(existing_outcomes(placed, registrations))
}

/// PostgreSQL: registers those placed instances whose study and series exist already with one
/// statement that commits on its own (see [`one_statement::register_existing`]); `None` for
/// each other one, left for [`register_all`]. `conn` must not be in a unit of work.
pub(crate) async fn register_existing_at_once(
    conn: &mut AnyConnection,
    placed: &[(&str, &str, &PlacedInstance)],
) -> Result<Vec<Option<Outcome>>, OpError> {
    let registrations = one_statement::register_existing(conn, &entries(placed)).await?;
    Ok(existing_outcomes(placed, registrations))
}

/// The outcomes of instances registered into existing series: no event.
fn existing_outcomes(placed: &[(&str, &str, &PlacedInstance)], registrations: Vec<Option<Registration>>) -> Vec<Option<Outcome>> {
    let outcomes = placed.iter().zip(registrations).map(|(&(_, _, p), registration)| {
        registration.map(|registration| Outcome {
            header: p.header.clone(),
            stored: registration.stored,
            instance_key: registration.instance_key,
            events: Vec::new(),
        })
    });
    outcomes.collect()
}

/// What the registrar is given of placed instances.
fn entries<'a>(placed: &[(&'a str, &'a str, &'a PlacedInstance)]) -> Vec<Entry<'a>> {
    placed.iter().map(|&(tenant, calling_aet, p)| Entry { tenant, calling_aet, header: &p.header, file: &p.record }).collect()
}

/// A file placed on a medium for a unit of work not committed yet: removed when dropped, unless
/// [`PlacedFile::keep`] says the unit committed.
#[derive(Debug)]
pub struct PlacedFile {
    storage: Storage,
    medium: String,
    relative: String,
    keep: bool,
}

impl PlacedFile {
    /// A file just placed at `relative` on `medium`, removed when dropped unless kept.
    pub(crate) fn new(storage: Storage, medium: String, relative: String) -> Self {
        Self { storage, medium, relative, keep: false }
    }

    /// The unit of work committed: the file stays.
    pub fn keep(mut self) {
        self.keep = true;
    }
}

impl Drop for PlacedFile {
    fn drop(&mut self) {
        if !self.keep {
            tracing::debug!(medium = %self.medium, path = %self.relative, "removing a file whose unit of work did not commit");
            self.storage.remove(&self.medium, &self.relative);
        }
    }
}
