//! Re-sends over a damaged copy. A re-send of a stored instance changes nothing, unless the
//! stored copy is damaged (an older version acknowledged it cut short, or it was damaged on its
//! medium since): then the copy just sent, checked whole on arrival, takes its place. The check
//! runs for re-sends only, so the common case (a new instance) costs nothing more.

use std::path::Path;

use super::{IngestError, Outcome, PlacedInstance};
use crate::db::Database;
use crate::db::index::replace::{StoredFile, replace_file, stored_file};
use crate::dicom::completeness;
use crate::storage::Storage;
use crate::storage::digest::{Algorithm, Hasher};

/// Settles a re-send whose `copy` was placed: removes it when the stored copy is intact, else
/// points the instance's row at it and removes the damaged one once that commits.
pub(super) async fn resent(
    db: &Database,
    storage: &Storage,
    tenant: &str,
    outcome: Outcome,
    copy: PlacedInstance,
) -> Result<Outcome, IngestError> {
    let Some(stored) = stored_file(db.reader(), outcome.instance_key).await? else {
        return Ok(outcome);
    };
    let damage = match damage_of(storage, &stored).await {
        Ok(damage) => damage,
        Err(e) => {
            // An unreadable medium is not a damaged copy: keep what is stored.
            tracing::warn!(tenant, sop = %outcome.header.sop_instance_uid, error = %e, "cannot check the stored copy of a re-sent instance");
            return Ok(outcome);
        }
    };
    let Some(damage) = damage else {
        return Ok(outcome);
    };
    let mut unit = db.begin().await?;
    if !replace_file(&mut unit, outcome.instance_key, &stored, &copy.record).await? {
        // Replaced or moved meanwhile: the copy goes.
        return Ok(outcome);
    }
    if let Err(e) = unit.commit().await {
        // Whether the commit took is unknown (a broken connection): the row may name the new
        // copy, so it stays; `wasmpacs check` sets it aside if no row names it.
        copy.keep();
        return Err(e.into());
    }
    copy.keep();
    storage.remove(&stored.medium, &stored.relative_path);
    tracing::warn!(
        tenant,
        sop = %outcome.header.sop_instance_uid,
        damaged = %stored.relative_path,
        %damage,
        "a damaged stored copy was replaced by a re-send"
    );
    Ok(outcome)
}

/// What is wrong with a stored copy, if anything: missing, of another size than recorded, not
/// of its recorded digest, or a data set that is not whole.
async fn damage_of(storage: &Storage, stored: &StoredFile) -> Result<Option<String>, IngestError> {
    let Some(size) = storage.size(&stored.medium, &stored.relative_path).await? else {
        return Ok(Some("the file is missing".into()));
    };
    if size != stored.size {
        return Ok(Some(format!("{size} bytes, {} recorded", stored.size)));
    }
    let local = storage.local(&stored.medium, &stored.relative_path).await?;
    let recorded = stored.digest.clone();
    let checked = tokio::task::spawn_blocking(move || examine(local.path(), &recorded))
        .await
        .map_err(|e| IngestError::Database(format!("checking task failed: {e}")))?;
    checked.map_err(|source| {
        IngestError::Storage(crate::storage::StorageError::Io { path: stored.relative_path.clone().into(), source })
    })
}

/// Reads the file whole for its digest, then walks its data set. Blocking.
fn examine(path: &Path, recorded: &str) -> std::io::Result<Option<String>> {
    if let Some(algorithm) = Algorithm::of_recorded(recorded) {
        let mut hasher = Hasher::new(algorithm);
        std::io::copy(&mut std::fs::File::open(path)?, &mut hasher)?;
        let digest = hasher.finish();
        if digest != recorded {
            return Ok(Some(format!("digest {digest}, {recorded} recorded")));
        }
    }
    Ok(completeness::check_file(path)?.err().map(|damage| damage.to_string()))
}
