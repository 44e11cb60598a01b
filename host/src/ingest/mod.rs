//! Ingest: a complete Part-10 file staged on a medium becomes an archived instance. Its header is
//! read, the index registers it inside a unit of work, the file is placed, and only then is the
//! unit committed; any failure leaves neither the file nor a row. Re-sending a stored instance
//! is a success that changes nothing. The core also runs inside a caller's unit of work (a
//! plugin's `archive.store-instance`), handing back the placed file to keep once it commits.

use std::sync::Arc;

use serde_json::json;
use sqlx::AnyConnection;

use crate::db::archive::OpError;
use crate::db::events::{self, StudyEvent};
use crate::db::index::{FileRecord, register_instance};
use crate::db::{Database, DbError};
use crate::dicom::header::{HeaderError, InstanceHeader, read_header};
use crate::storage::{Storage, StagingFile, StorageError, instance_path};

/// A staged Part-10 file with the length and SHA-1 computed while it was written.
#[derive(Debug)]
pub struct StagedInstance {
    pub file: StagingFile,
    pub size: u64,
    pub sha1: String,
    /// The file's header, once read (see [`StagedInstance::header`]).
    header: Option<Arc<InstanceHeader>>,
}

impl StagedInstance {
    pub fn new(file: StagingFile, size: u64, sha1: String) -> Self {
        Self { file, size, sha1, header: None }
    }

    /// The indexed attributes of the staged file, read (off the async executor) on first use
    /// only, so that a caller who looks before ingesting does not make ingest read it again.
    pub async fn header(&mut self) -> Result<Arc<InstanceHeader>, IngestError> {
        if let Some(header) = &self.header {
            return Ok(header.clone());
        }
        let path = self.file.path().to_owned();
        let header = tokio::task::spawn_blocking(move || read_header(&path))
            .await
            .map_err(|e| IngestError::Database(format!("header task failed: {e}")))??;
        let header = Arc::new(header);
        self.header = Some(header.clone());
        Ok(header)
    }
}

/// Why an instance was not stored.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("{0}")]
    Invalid(#[from] HeaderError),
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
}

impl Ingest {
    pub fn new(db: Database, storage: Storage) -> Self {
        Self { db, storage }
    }

    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// Archives a staged Part-10 file for `tenant`, as received from `calling_aet`, in its own
    /// unit of work.
    pub async fn store(&self, tenant: &str, calling_aet: &str, staged: StagedInstance) -> Result<Outcome, IngestError> {
        let mut unit = self.db.begin().await?;
        let (outcome, placed) = self.store_in(&mut unit, tenant, calling_aet, staged).await?;
        // Not stored (a re-send): dropping the unit rolls it back; nothing was placed.
        if let Some(placed) = placed {
            // A failed commit drops `placed`, which removes the file.
            unit.commit().await?;
            placed.keep();
        }
        Ok(outcome)
    }

    /// Archives a staged Part-10 file inside the caller's unit of work (`conn`): registers it
    /// in the index, records its events and places its file. The caller commits, then keeps the
    /// returned [`PlacedFile`]; dropping it instead (rollback, failure) removes the file. On an
    /// error the caller must roll the unit (or its savepoint) back: rows may have been written.
    pub async fn store_in(
        &self,
        conn: &mut AnyConnection,
        tenant: &str,
        calling_aet: &str,
        mut staged: StagedInstance,
    ) -> Result<(Outcome, Option<PlacedFile>), IngestError> {
        let header = staged.header().await?;
        let medium = self.storage.default_medium().to_owned();
        let relative = instance_path(tenant, &header.study_uid, &header.series_uid, &header.sop_instance_uid);
        let record = FileRecord { medium: medium.clone(), relative_path: relative.clone(), size: staged.size, sha1: staged.sha1 };

        let registration = register_instance(conn, tenant, calling_aet, &header, &record).await?;
        if !registration.stored {
            // Already archived: drop the staged copy.
            return Ok((Outcome { header, stored: false, instance_key: registration.instance_key, events: Vec::new() }, None));
        }
        let mut recorded = Vec::new();
        let detail = json!({
            "callingAet": calling_aet,
            "seriesInstanceUid": header.series_uid,
            "modality": header.modality,
            "stationName": header.station_name,
        });
        for (happened, kind) in [(registration.study_created, "STUDY_RECEIVED"), (registration.series_created, "SERIES_RECEIVED")] {
            if happened {
                let detail_text = detail.to_string();
                let offset = events::append(conn, self.db.backend(), tenant, kind, Some(&header.study_uid), &detail_text).await?;
                recorded.push(StudyEvent {
                    offset,
                    kind: kind.to_owned(),
                    study_uid: Some(header.study_uid.clone()),
                    detail: detail.clone(),
                    created_at: crate::db::now_text(),
                });
            }
        }

        let storage = self.storage.clone();
        let (staged_path, medium_c, relative_c) = (staged.file.path().to_owned(), medium.clone(), relative.clone());
        tokio::task::spawn_blocking(move || storage.place(&staged_path, &medium_c, &relative_c))
            .await
            .map_err(|e| IngestError::Database(format!("placing task failed: {e}")))??;
        staged.file.keep();
        let placed = PlacedFile { storage: self.storage.clone(), medium, relative, keep: false };
        tracing::debug!(tenant, calling_aet, sop = %header.sop_instance_uid, "instance placed");
        let outcome = Outcome { header, stored: true, instance_key: registration.instance_key, events: recorded };
        Ok((outcome, Some(placed)))
    }

    /// Writes a small Part-10 object held in memory (e.g. a document a plugin built) to a
    /// staging file on the default medium, ready for [`Ingest::store_in`].
    pub async fn stage_bytes(&self, bytes: Vec<u8>) -> Result<StagedInstance, IngestError> {
        let storage = self.storage.clone();
        tokio::task::spawn_blocking(move || {
            let file = storage.stage(storage.default_medium())?;
            let write = || -> std::io::Result<(u64, String)> {
                let mut writer = file.writer()?;
                writer.write_all(&bytes)?;
                writer.finish()
            };
            let (size, sha1) =
                write().map_err(|source| StorageError::Io { path: file.path().to_owned(), source })?;
            Ok(StagedInstance::new(file, size, sha1))
        })
        .await
        .map_err(|e| IngestError::Database(format!("staging task failed: {e}")))?
    }
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
