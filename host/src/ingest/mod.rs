//! Ingest: a complete Part-10 file staged on a medium becomes an archived instance. Its header is
//! read, the index registers it inside a unit of work, the file is placed, and only then is the
//! unit committed; any failure leaves neither the file nor a row. Re-sending a stored instance
//! is a success that changes nothing.

use std::sync::Arc;

use serde_json::json;

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

    /// Archives a staged Part-10 file for `tenant`, as received from `calling_aet`.
    pub async fn store(&self, tenant: &str, calling_aet: &str, staged: StagedInstance) -> Result<Outcome, IngestError> {
        let path = staged.file.path().to_owned();
        let header = tokio::task::spawn_blocking(move || read_header(&path))
            .await
            .map_err(|e| IngestError::Database(format!("header task failed: {e}")))??;
        let header = Arc::new(header);
        let medium = self.storage.default_medium().to_owned();
        let relative = instance_path(tenant, &header.study_uid, &header.series_uid, &header.sop_instance_uid);
        let record = FileRecord { medium: medium.clone(), relative_path: relative.clone(), size: staged.size, sha1: staged.sha1 };

        let mut unit = self.db.begin().await?;
        let registration = register_instance(&mut unit, tenant, calling_aet, &header, &record).await?;
        if !registration.stored {
            // Already archived: roll back, drop the staged copy.
            return Ok(Outcome { header, stored: false, events: Vec::new() });
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
                let offset = events::append(&mut unit, self.db.backend(), tenant, kind, Some(&header.study_uid), &detail_text).await?;
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
        if let Err(e) = unit.commit().await {
            self.storage.remove(&medium, &relative);
            return Err(e.into());
        }
        tracing::debug!(tenant, calling_aet, sop = %header.sop_instance_uid, "instance stored");
        Ok(Outcome { header, stored: true, events: recorded })
    }
}
