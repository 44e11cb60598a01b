//! `archive.store-slide`: a non-DICOM pathology slide (a single WSI file or a MIRAX ZIP
//! archive, staged from the upload) stored with the DICOM sidecar that describes it. The
//! sidecar is ingested as an instance, the slide file is placed beside it and linked to it, all
//! in the request's unit of work: a rollback leaves neither file nor row.

use super::archive::{ingest_error, instance_of};
use super::{HostError, RequestState};
use crate::db::slides::{self, SlideFile};
use crate::ingest::PlacedFile;
use crate::runtime::bindings::v0_1_1::wasmpacs::plugin::archive::Instance;

impl RequestState {
    /// Stores the staged file `file` as the slide described by `sidecar` (Part-10 bytes). A
    /// re-send of the same sidecar with the same file answers the stored instance; with another
    /// file it is a conflict.
    pub(super) async fn store_slide_file(
        &mut self,
        calling_ae: &str,
        file: u32,
        sidecar: Vec<u8>,
    ) -> Result<Instance, HostError> {
        let slide = self.staged_file(file)?;
        let (ingest, plugin, tenant) = (self.ingest.clone(), self.plugin.clone(), self.tenant.clone());
        let staged = ingest.stage_bytes(sidecar).await.map_err(|e| ingest_error(&plugin, e))?;
        let conn = self.unit().await?;
        // A savepoint: a failure half way leaves the unit as it was, whatever the plugin does next.
        let mut savepoint = sqlx::Connection::begin(conn).await.map_err(|e| ingest_error(&plugin, e.into()))?;
        let (outcome, placed) = ingest
            .store_in(&mut savepoint, &tenant, calling_ae, staged, slide.size)
            .await
            .map_err(|e| ingest_error(&plugin, e))?;
        let sop = outcome.header.sop_instance_uid.clone();
        let internal = |e: sqlx::Error| {
            tracing::error!(plugin = %plugin, error = %e, "recording a slide failed");
            HostError::Internal("database error: the slide could not be registered".into())
        };
        let Some(sidecar_placed) = placed else {
            // A re-send: the same slide again, filed where it was, is a success that changes nothing.
            let header = &outcome.header;
            let filed = slides::filed_under(&mut savepoint, outcome.instance_key).await.map_err(internal)?;
            if let Some((study, series)) =
                filed.filter(|(study, series)| *study != header.study_uid || *series != header.series_uid)
            {
                return Err(HostError::Conflict(format!(
                    "slide `{sop}` is stored already in study `{study}`, series `{series}`, not in study `{}`, series `{}`",
                    header.study_uid, header.series_uid
                )));
            }
            return match slides::of_instance(&mut savepoint, outcome.instance_key).await.map_err(internal)? {
                Some(stored) if stored.sha1 == slide.sha1 => Ok(instance_of(&outcome, stored.size)),
                Some(_) => Err(HostError::Conflict(format!("slide `{sop}` is already stored with another file"))),
                None => Err(HostError::Conflict(format!("instance `{sop}` is already stored and is not a slide"))),
            };
        };
        let storage = ingest.storage().clone();
        let medium = storage.default_medium().to_owned();
        let header = &outcome.header;
        let relative = crate::storage::slide_path(&tenant, &header.study_uid, &header.series_uid, &sop);
        let moves = vec![(slide.path.clone(), relative.clone())];
        let (placing, placing_medium) = (storage.clone(), medium.clone());
        tokio::task::spawn_blocking(move || placing.place_all(&placing_medium, &moves))
            .await
            .map_err(|e| HostError::Internal(format!("placing task failed: {e}")))?
            .map_err(|e| ingest_error(&plugin, e.into()))?;
        // Removed again unless the unit of work commits.
        let slide_placed = PlacedFile::new(storage, medium.clone(), relative.clone());
        let is_zip = slide.content_type.as_deref().is_some_and(|t| t.eq_ignore_ascii_case("application/zip"))
            || slide.file_name.as_deref().is_some_and(|n| n.to_ascii_lowercase().ends_with(".zip"));
        let record = SlideFile {
            medium,
            file_path: relative,
            // The name without the folders a client may send along (the sidecar names it so too).
            file_name: slide
                .file_name
                .as_deref()
                .and_then(|name| name.rsplit(['/', '\\']).next())
                .map(str::trim)
                .filter(|name| !name.is_empty())
                .map_or_else(|| format!("{sop}.slide"), str::to_owned),
            // Kept only when it can be served again as a Content-Type.
            content_type: slide.content_type.clone().filter(|t| slides::is_media_type(t)),
            size: slide.size,
            sha1: slide.sha1.clone(),
            mirax: is_zip,
        };
        slides::record(&mut savepoint, outcome.instance_key, &record).await.map_err(internal)?;
        savepoint.commit().await.map_err(internal)?;
        tracing::info!(plugin = %plugin, tenant = %tenant, sop = %sop, bytes = slide.size, mirax = is_zip, "slide stored");
        self.placed.push(sidecar_placed);
        self.placed.push(slide_placed);
        self.recorded.extend(outcome.events.iter().cloned());
        Ok(instance_of(&outcome, slide.size))
    }
}
