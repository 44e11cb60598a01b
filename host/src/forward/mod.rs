//! Forwarding series: `POST series/forward` queues a job in the database; this worker claims
//! queued jobs one at a time and sends a DICOM series to its node over one C-STORE association,
//! or a container's non-DICOM slides to the configured HTTP endpoint ([`slides`]). It records
//! `SERIES_FORWARDED`, and tries a failed attempt again later, up to the configured number of
//! attempts. Jobs interrupted by a stop are sent again at the next start.

pub mod slides;

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::Notify;

use crate::app::deliver_events;
use crate::config::{Config, ForwardConfig};
use crate::db::forward::{self, ForwardJob, ForwardKind};
use crate::db::lifecycle::{self, Lookup, SeriesKey};
use crate::db::retrieve::{self, StoredFile};
use crate::db::{Database, DbError, events};
use crate::dicom::scu::{self, Outgoing, Peer, ScuError};
use crate::runtime::PluginRuntime;
use crate::storage::Storage;
use slides::SlideEndpoint;

/// How often due jobs (retries) are looked for when nothing wakes the worker.
const POLL: Duration = Duration::from_secs(1);

/// Wakes the worker when a job is queued.
#[derive(Clone, Default)]
pub struct Forwarder {
    wake: Arc<Notify>,
}

impl Forwarder {
    /// A job was queued: look now rather than at the next poll.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Starts the worker when a forward job is configured.
    pub fn start(config: &Config, db: Database, storage: Storage, runtime: Arc<PluginRuntime>) -> Self {
        let forwarder = Self::default();
        if let Some(job) = config.forward.clone() {
            let slides =
                job.slide_endpoint.clone().and_then(|url| match SlideEndpoint::new(url, job.slide_authorization.clone()) {
                    Ok(endpoint) => Some(endpoint),
                    Err(e) => {
                        tracing::error!(error = %e, "non-DICOM slides cannot be forwarded");
                        None
                    }
                });
            let worker = Worker {
                slides,
                job,
                calling_ae: config.dicom.ae_title.clone(),
                max_pdu: config.dicom.max_pdu_length,
                nodes: config
                    .nodes
                    .iter()
                    .map(|n| (n.ae_title.clone(), Peer { ae_title: n.ae_title.clone(), host: n.host.clone(), port: n.port }))
                    .collect(),
                db,
                storage,
                runtime,
                wake: forwarder.wake.clone(),
            };
            tokio::spawn(worker.run());
        }
        forwarder
    }
}

struct Worker {
    job: ForwardConfig,
    /// Where non-DICOM slides go, when configured.
    slides: Option<SlideEndpoint>,
    calling_ae: String,
    max_pdu: u32,
    nodes: Vec<(String, Peer)>,
    db: Database,
    storage: Storage,
    runtime: Arc<PluginRuntime>,
    wake: Arc<Notify>,
}

impl Worker {
    async fn run(self) {
        match self.requeue_interrupted().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(jobs = n, "forward jobs interrupted by the last stop are queued again"),
            Err(e) => tracing::error!(error = %e, "cannot requeue interrupted forward jobs"),
        }
        loop {
            match self.claim_next().await {
                Ok(Some(job)) => self.send(job).await,
                Ok(None) => {
                    let _ = tokio::time::timeout(POLL, self.wake.notified()).await;
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the forward queue");
                    tokio::time::sleep(POLL).await;
                }
            }
        }
    }

    /// Sends one job and records the outcome.
    async fn send(&self, job: ForwardJob) {
        match job.kind {
            ForwardKind::Dicom => self.send_series(job).await,
            ForwardKind::Slides => self.send_slides(job).await,
        }
    }

    /// Sends the non-DICOM slides of the job's series, each with its sidecar.
    async fn send_slides(&self, job: ForwardJob) {
        let Some(endpoint) = &self.slides else {
            return self.settle(&job, "failed", 0, Some("forward endpoint not configured".into()), 0).await;
        };
        let found = async {
            let study_uid = self.study_of(&job).await?;
            let slides = crate::db::slides::of_series_uid(self.db.reader(), &job.tenant, &job.series_uid).await?;
            Ok::<_, sqlx::Error>((study_uid, slides))
        };
        let (study_uid, slides) = match found.await {
            Ok((Some(study_uid), slides)) if !slides.is_empty() => (study_uid, slides),
            Ok(_) => return self.settle(&job, "failed", 0, Some("the slide is no longer stored".into()), 0).await,
            Err(e) => return self.retry(&job, 0, e.to_string()).await,
        };
        tracing::info!(job = job.id, container = ?job.container_identifier, endpoint = endpoint.shown_url(), slides = slides.len(), attempt = job.attempts, "forwarding slides");
        let mut sent = 0;
        for stored in &slides {
            // On disk (fetched, for a study relocated to a bucket); a bucket that cannot be reached now may be later.
            let sidecar = self.storage.local(&stored.sidecar_medium, &stored.sidecar_path).await;
            let file = match sidecar {
                Ok(sidecar) => {
                    self.storage.local(&stored.slide.medium, &stored.slide.file_path).await.map(|file| (sidecar, file))
                }
                Err(e) => Err(e),
            };
            let (sidecar, file) = match file {
                Ok(files) => files,
                Err(e) if e.is_transient() => return self.retry(&job, sent, e.to_string()).await,
                Err(e) => return self.settle(&job, "failed", sent, Some(e.to_string()), 0).await,
            };
            if let Err(e) = endpoint.send(sidecar.path(), file.path(), &stored.slide).await {
                return self.retry(&job, sent, e).await;
            }
            sent += 1;
            tracing::debug!(job = job.id, sop = %stored.sop_instance_uid, bytes = stored.slide.size, "slide forwarded");
        }
        tracing::info!(job = job.id, container = ?job.container_identifier, endpoint = endpoint.shown_url(), sent, "slides forwarded");
        self.done(&job, &study_uid, sent as usize).await;
    }

    /// The Study Instance UID of the job's series, looked up now (it may have moved since the
    /// job was queued); `None` when the series is gone.
    async fn study_of(&self, job: &ForwardJob) -> Result<Option<String>, sqlx::Error> {
        let mut conn = self.db.reader().acquire().await?;
        Ok(match lifecycle::find_series(&mut conn, &job.tenant, SeriesKey::Uid(&job.series_uid)).await? {
            Lookup::Found(series) => Some(series.study_uid),
            Lookup::NotFound | Lookup::Many => None,
        })
    }

    /// Sends one job's series by C-STORE.
    async fn send_series(&self, job: ForwardJob) {
        let Some(peer) = self.nodes.iter().find(|(ae, _)| *ae == job.node).map(|(_, p)| p.clone()) else {
            return self.settle(&job, "failed", 0, Some(format!("forward node `{}` is not configured", job.node)), 0).await;
        };
        let (study_uid, files) = match self.series_files(&job).await {
            Ok(found) => found,
            Err(e) => return self.retry(&job, 0, e.to_string()).await,
        };
        if files.is_empty() {
            return self.settle(&job, "failed", 0, Some("the series has no instance to send".into()), 0).await;
        }
        let outgoing: Vec<Outgoing> = files
            .iter()
            .map(|file| Outgoing {
                sop_class_uid: file.sop_class_uid.clone(),
                sop_instance_uid: file.sop_instance_uid.clone(),
                transfer_syntax: file.transfer_syntax.clone(),
                medium: file.medium.clone(),
                relative_path: file.relative_path.clone(),
            })
            .collect();
        tracing::info!(job = job.id, series = %job.series_uid, node = %job.node, instances = outgoing.len(), attempt = job.attempts, "forwarding series");
        let started = std::time::Instant::now();
        match scu::send_all(&self.calling_ae, &peer, &self.storage, &outgoing, self.max_pdu).await {
            Ok(report) if report.refused.is_empty() => {
                tracing::info!(job = job.id, series = %job.series_uid, node = %job.node, sent = report.sent, ms = started.elapsed().as_millis() as u64, "series forwarded");
                self.done(&job, &study_uid, report.sent).await;
            }
            Ok(report) => {
                let reasons: Vec<String> = report.refused.iter().map(|(sop, why)| format!("{sop}: {why}")).collect();
                let error = format!("{} of {} instances refused: {}", report.refused.len(), outgoing.len(), reasons.join("; "));
                self.retry(&job, report.sent as i64, error).await;
            }
            Err(ScuError::Source { transient: false, medium, relative_path, message }) => {
                self.file_gone(&job, &medium, &relative_path, format!("cannot read a stored file to send: {message}")).await
            }
            Err(e) => self.retry(&job, 0, e.to_string()).await,
        }
    }

    /// A stored file was gone when its turn came: lost for good if its row still names it
    /// (trying again would not find it), else moved since the files were listed (a relocation),
    /// and the next attempt lists them again.
    async fn file_gone(&self, job: &ForwardJob, medium: &str, relative_path: &str, error: String) {
        match lifecycle::is_referenced(self.db.reader(), medium, relative_path).await {
            Ok(true) => self.settle(job, "failed", 0, Some(error), 0).await,
            Ok(false) => self.retry(job, 0, error).await,
            Err(e) => self.retry(job, 0, format!("{error} ({e})")).await,
        }
    }

    /// The study of the job's series (looked up now: it may have moved since it was queued) and
    /// the series' files as WADO-RS finds them, deprecated ones left out.
    async fn series_files(&self, job: &ForwardJob) -> Result<(String, Vec<StoredFile>), sqlx::Error> {
        let Some(study_uid) = self.study_of(job).await? else {
            return Ok((String::new(), Vec::new()));
        };
        let files = retrieve::files(self.db.reader(), &job.tenant, &study_uid, Some(&job.series_uid), None).await?;
        Ok((study_uid, files))
    }

    /// Queues the job again after the configured delay, or fails it once attempts run out.
    async fn retry(&self, job: &ForwardJob, sent: i64, error: String) {
        if job.attempts < i64::from(self.job.attempts) {
            tracing::warn!(job = job.id, series = %job.series_uid, attempt = job.attempts, error, "forward failed; trying again later");
            self.settle(job, "queued", sent, Some(error), self.job.retry_delay_s).await;
        } else {
            tracing::error!(job = job.id, series = %job.series_uid, attempts = job.attempts, error, "forward failed for good");
            self.settle(job, "failed", sent, Some(error), 0).await;
        }
    }

    async fn settle(&self, job: &ForwardJob, state: &str, sent: i64, error: Option<String>, delay_s: u64) {
        let due = crate::db::text_in(Duration::from_secs(delay_s));
        let settled = async {
            let mut unit = self.db.begin().await?;
            forward::settle(&mut unit, job.id, state, sent, error.as_deref(), &due).await?;
            unit.commit().await?;
            Ok::<_, DbError>(())
        };
        if let Err(e) = settled.await {
            tracing::error!(job = job.id, error = %e, "cannot record a forward job's outcome");
        }
    }

    async fn requeue_interrupted(&self) -> Result<u64, DbError> {
        let mut unit = self.db.begin().await?;
        let requeued = forward::requeue_interrupted(&mut unit).await?;
        unit.commit().await?;
        Ok(requeued)
    }

    /// Claims the next due job in a unit of work of its own (one claimant per job).
    async fn claim_next(&self) -> Result<Option<ForwardJob>, DbError> {
        let mut unit = self.db.begin().await?;
        let job = forward::claim_next(&mut unit).await?;
        unit.commit().await?;
        Ok(job)
    }

    /// Records the event and the job's end in one unit of work, then hands the event to the
    /// plugins' hooks.
    async fn done(&self, job: &ForwardJob, study_uid: &str, sent: usize) {
        let mut detail =
            json!({ "seriesInstanceUid": job.series_uid, "node": job.node, "instances": sent, "author": job.author });
        if let Some(container) = &job.container_identifier {
            detail["containerIdentifier"] = json!(container);
        }
        let due = crate::db::now_text();
        let recorded = async {
            let mut unit = self.db.begin().await?;
            let event = events::record(&mut unit, self.db.backend(), &job.tenant, "SERIES_FORWARDED", study_uid, detail).await?;
            forward::settle(&mut unit, job.id, "done", sent as i64, None, &due).await?;
            unit.commit().await?;
            Ok::<_, DbError>(event)
        }
        .await;
        match recorded {
            Ok(event) => deliver_events(&self.runtime, &job.tenant, vec![event]),
            Err(e) => tracing::error!(job = job.id, error = %e, "cannot record a forwarded series"),
        }
    }
}
