//! The `archive` capability: typed domain operations inside the request's unit of work.

use super::{Capability, HostError, RequestState, host_error};
use crate::db::archive as db;
use crate::ingest::{IngestError, Outcome};
use crate::runtime::bindings::v0_1_1::wasmpacs::plugin::archive::{
    self as wit, Instance, Order, Patient, PatientFields, Series, Study, StudyFields,
};

/// Runs one domain operation in the unit of work: checks the grant, begins the unit on first
/// use, and maps the outcome (`$map` converts the value) to the WIT result.
macro_rules! op {
    ($self:ident, |$conn:ident, $tenant:ident| $call:expr, $map:expr) => {{
        $self.require(Capability::Archive)?;
        let plugin = $self.plugin.clone();
        let tenant = $self.tenant.clone();
        let $tenant: &str = &tenant;
        let $conn = match $self.unit().await {
            Ok(conn) => conn,
            Err(e) => return Ok(Err(e)),
        };
        Ok($call.await.map($map).map_err(|e| host_error(&plugin, e)))
    }};
}

impl wit::Host for RequestState {
    async fn lock_patient_id(&mut self, patient_id: String) -> wasmtime::Result<Result<(), HostError>> {
        op!(self, |conn, tenant| db::lock_patient_id(conn, tenant, &patient_id), |()| ())
    }

    async fn find_patients(
        &mut self,
        patient_id: String,
        issuer: Option<String>,
    ) -> wasmtime::Result<Result<Vec<Patient>, HostError>> {
        op!(self, |conn, tenant| db::find_patients(conn, tenant, &patient_id, issuer.as_deref()), |v| v
            .into_iter()
            .map(Into::into)
            .collect())
    }

    async fn get_patient(&mut self, key: i64) -> wasmtime::Result<Result<Patient, HostError>> {
        op!(self, |conn, tenant| db::get_patient(conn, tenant, key), Into::into)
    }

    async fn create_patient(&mut self, fields: PatientFields) -> wasmtime::Result<Result<Patient, HostError>> {
        let fields = fields.into();
        op!(self, |conn, tenant| db::create_patient(conn, tenant, &fields), Into::into)
    }

    async fn update_patient(&mut self, key: i64, fields: PatientFields) -> wasmtime::Result<Result<Patient, HostError>> {
        let fields = fields.into();
        // 0.1.0 replaced every field; 0.1.1 keeps those left out.
        let left_out = if self.wit_version == "0.1.0" { db::LeftOut::Cleared } else { db::LeftOut::Kept };
        op!(self, |conn, tenant| db::update_patient(conn, tenant, key, &fields, left_out), Into::into)
    }

    async fn find_study(&mut self, study_uid: String) -> wasmtime::Result<Result<Option<Study>, HostError>> {
        op!(self, |conn, tenant| db::find_study(conn, tenant, &study_uid), |s| s.map(Into::into))
    }

    async fn find_studies_by_accession(&mut self, accession_number: String) -> wasmtime::Result<Result<Vec<Study>, HostError>> {
        op!(self, |conn, tenant| db::find_studies_by_accession(conn, tenant, &accession_number), |v| v
            .into_iter()
            .map(Into::into)
            .collect())
    }

    async fn studies_of_patient(&mut self, patient_key: i64) -> wasmtime::Result<Result<Vec<Study>, HostError>> {
        op!(self, |conn, tenant| db::studies_of_patient(conn, tenant, patient_key), |v| v.into_iter().map(Into::into).collect())
    }

    async fn create_study(&mut self, patient_key: i64, fields: StudyFields) -> wasmtime::Result<Result<Study, HostError>> {
        let fields = fields.into();
        op!(self, |conn, tenant| db::create_study(conn, tenant, patient_key, &fields), Into::into)
    }

    async fn lock_study(&mut self, study_key: i64) -> wasmtime::Result<Result<(), HostError>> {
        op!(self, |conn, tenant| db::lock_study(conn, tenant, study_key), |()| ())
    }

    async fn assign_study(&mut self, study_key: i64, patient_key: i64) -> wasmtime::Result<Result<(), HostError>> {
        op!(self, |conn, tenant| db::assign_study(conn, tenant, study_key, patient_key), |()| ())
    }

    async fn move_studies_of_patient(
        &mut self,
        from_patient: i64,
        to_patient: i64,
    ) -> wasmtime::Result<Result<Vec<Study>, HostError>> {
        let studies = |v: Vec<db::Study>| v.into_iter().map(Into::into).collect();
        op!(self, |conn, tenant| db::move_studies_of_patient(conn, tenant, from_patient, to_patient), studies)
    }

    async fn move_all_series(&mut self, from_study: i64, to_study: i64) -> wasmtime::Result<Result<u32, HostError>> {
        op!(self, |conn, tenant| db::move_all_series(conn, tenant, from_study, to_study), |n| n)
    }

    async fn swap_series(&mut self, study_a: i64, study_b: i64) -> wasmtime::Result<Result<(), HostError>> {
        op!(self, |conn, tenant| db::swap_series(conn, tenant, study_a, study_b), |()| ())
    }

    async fn list_series(&mut self, study_key: i64) -> wasmtime::Result<Result<Vec<Series>, HostError>> {
        op!(self, |conn, tenant| db::list_series(conn, tenant, study_key), |v| v.into_iter().map(Into::into).collect())
    }

    async fn find_series_by_container(
        &mut self,
        container_identifier: String,
    ) -> wasmtime::Result<Result<Vec<Series>, HostError>> {
        op!(self, |conn, tenant| db::find_series_by_container(conn, tenant, &container_identifier), |v| v
            .into_iter()
            .map(Into::into)
            .collect())
    }

    async fn list_instances(&mut self, study_key: i64) -> wasmtime::Result<Result<Vec<Instance>, HostError>> {
        op!(self, |conn, tenant| db::list_instances(conn, tenant, study_key), |v| v.into_iter().map(Into::into).collect())
    }

    async fn store_instance(&mut self, calling_ae: String, part10: Vec<u8>) -> wasmtime::Result<Result<Instance, HostError>> {
        self.require(Capability::Archive)?;
        if part10.len() > MAX_INSTANCE_BYTES {
            return Ok(Err(HostError::Invalid(format!(
                "a plugin may store instances of at most {} MiB; this one has {} bytes",
                MAX_INSTANCE_BYTES >> 20,
                part10.len()
            ))));
        }
        let (ingest, plugin, tenant) = (self.ingest.clone(), self.plugin.clone(), self.tenant.clone());
        let staged = match ingest.stage_bytes(part10).await {
            Ok(staged) => staged,
            Err(e) => return Ok(Err(ingest_error(&plugin, e))),
        };
        let size = staged.size;
        let conn = match self.unit().await {
            Ok(conn) => conn,
            Err(e) => return Ok(Err(e)),
        };
        // A savepoint: a failure half way leaves the unit as it was, whatever the plugin does next.
        let mut savepoint = match sqlx::Connection::begin(conn).await {
            Ok(savepoint) => savepoint,
            Err(e) => return Ok(Err(ingest_error(&plugin, e.into()))),
        };
        let (outcome, placed) = match ingest.store_in(&mut savepoint, &tenant, &calling_ae, staged, 0).await {
            Ok(stored) => stored,
            Err(e) => return Ok(Err(ingest_error(&plugin, e))),
        };
        let Some(placed) = placed else {
            return Ok(Err(HostError::Conflict(format!("instance `{}` is already stored", outcome.header.sop_instance_uid))));
        };
        if let Err(e) = savepoint.commit().await {
            return Ok(Err(ingest_error(&plugin, e.into())));
        }
        self.placed.push(placed);
        self.recorded.extend(outcome.events.iter().cloned());
        Ok(Ok(instance_of(&outcome, size)))
    }

    async fn store_slide(
        &mut self,
        calling_ae: String,
        file: u32,
        sidecar: Vec<u8>,
    ) -> wasmtime::Result<Result<Instance, HostError>> {
        self.require(Capability::Archive)?;
        if sidecar.len() > MAX_INSTANCE_BYTES {
            return Ok(Err(HostError::Invalid(format!("a sidecar may have at most {} MiB", MAX_INSTANCE_BYTES >> 20))));
        }
        Ok(self.store_slide_file(&calling_ae, file, sidecar).await)
    }

    async fn create_order(&mut self, order: Order) -> wasmtime::Result<Result<(), HostError>> {
        let order = order.into();
        op!(self, |conn, tenant| db::create_order(conn, tenant, &order), |()| ())
    }

    async fn find_order(&mut self, study_uid: String) -> wasmtime::Result<Result<Option<Order>, HostError>> {
        op!(self, |conn, tenant| db::find_order(conn, tenant, &study_uid), |o| o.map(Into::into))
    }

    async fn delete_order(&mut self, study_uid: String) -> wasmtime::Result<Result<bool, HostError>> {
        op!(self, |conn, tenant| db::delete_order(conn, tenant, &study_uid), |b| b)
    }
}

/// Largest Part-10 object a plugin may hand over in memory (a KOS is a few KB).
pub(super) const MAX_INSTANCE_BYTES: usize = 16 << 20;

/// The WIT form of a stored instance of `size` bytes.
pub(super) fn instance_of(outcome: &Outcome, size: u64) -> Instance {
    let header = &outcome.header;
    Instance {
        key: outcome.instance_key,
        sop_instance_uid: header.sop_instance_uid.clone(),
        sop_class_uid: header.sop_class_uid.clone(),
        series_uid: header.series_uid.clone(),
        study_uid: header.study_uid.clone(),
        instance_number: header.instance_number.and_then(|n| i32::try_from(n).ok()),
        size,
        deprecated: false,
    }
}

/// Maps an ingest failure to the WIT error. Internal failures name their kind first ("storage"
/// or "database") so that a plugin can tell them apart; their detail stays in the log.
pub(super) fn ingest_error(plugin: &str, e: IngestError) -> HostError {
    match e {
        IngestError::Invalid(e) => HostError::Invalid(format!("not a storable DICOM instance: {e}")),
        IngestError::Damaged { damage, .. } => HostError::Invalid(format!("not a whole DICOM instance: {damage}")),
        IngestError::Conflict(m) => HostError::Conflict(m),
        IngestError::Storage(e) => {
            tracing::error!(plugin, error = %e, "storing an instance failed");
            HostError::Internal("storage failure: the instance could not be written".into())
        }
        IngestError::Database(e) => {
            tracing::error!(plugin, error = %e, "registering an instance failed");
            HostError::Internal("database error: the instance could not be registered".into())
        }
    }
}

impl From<db::Patient> for Patient {
    fn from(p: db::Patient) -> Self {
        Patient { key: p.key, patient_id: p.patient_id, issuer: p.issuer, name: p.name, birth_date: p.birth_date, sex: p.sex }
    }
}

impl From<PatientFields> for db::PatientFields {
    fn from(f: PatientFields) -> Self {
        db::PatientFields { patient_id: f.patient_id, issuer: f.issuer, name: f.name, birth_date: f.birth_date, sex: f.sex }
    }
}

impl From<db::Study> for Study {
    fn from(s: db::Study) -> Self {
        Study {
            key: s.key,
            study_uid: s.study_uid,
            patient_key: s.patient_key,
            accession_number: s.accession_number,
            description: s.description,
            study_date: s.study_date,
            study_time: s.study_time,
            referring_physician: s.referring_physician,
            deprecated: s.deprecated,
            series_count: s.series_count,
            instance_count: s.instance_count,
        }
    }
}

impl From<StudyFields> for db::StudyFields {
    fn from(f: StudyFields) -> Self {
        db::StudyFields {
            study_uid: f.study_uid,
            accession_number: f.accession_number,
            description: f.description,
            study_date: f.study_date,
            study_time: f.study_time,
            referring_physician: f.referring_physician,
        }
    }
}

impl From<db::Series> for Series {
    fn from(s: db::Series) -> Self {
        Series {
            key: s.key,
            series_uid: s.series_uid,
            study_key: s.study_key,
            modality: s.modality,
            series_number: s.series_number,
            description: s.description,
            container_identifier: s.container_identifier,
            deprecated: s.deprecated,
            instance_count: s.instance_count,
        }
    }
}

impl From<db::Instance> for Instance {
    fn from(i: db::Instance) -> Self {
        Instance {
            key: i.key,
            sop_instance_uid: i.sop_instance_uid,
            sop_class_uid: i.sop_class_uid,
            series_uid: i.series_uid,
            study_uid: i.study_uid,
            instance_number: i.instance_number,
            size: i.size,
            deprecated: i.deprecated,
        }
    }
}

/// Orders cross the boundary field by field; the two shapes are kept in step by these two maps.
macro_rules! convert_order {
    ($from:ty => $to:ident, $o:ident) => {
        impl From<$from> for $to {
            fn from($o: $from) -> Self {
                $to {
                    study_uid: $o.study_uid,
                    accession_number: $o.accession_number,
                    patient_key: $o.patient_key,
                    scheduled_station_ae_title: $o.scheduled_station_ae_title,
                    scheduled_station_name: $o.scheduled_station_name,
                    start_date: $o.start_date,
                    start_time: $o.start_time,
                    modality: $o.modality,
                    performing_physician: $o.performing_physician,
                    step_description: $o.step_description,
                    step_id: $o.step_id,
                    requested_procedure_description: $o.requested_procedure_description,
                    requested_procedure_id: $o.requested_procedure_id,
                    requesting_physician: $o.requesting_physician,
                    referring_physician: $o.referring_physician,
                    admission_id: $o.admission_id,
                    current_patient_location: $o.current_patient_location,
                    confidentiality_constraint: $o.confidentiality_constraint,
                    patient_state: $o.patient_state,
                    pregnancy_status: $o.pregnancy_status,
                    medical_alerts: $o.medical_alerts,
                    placer_order_number: $o.placer_order_number,
                    service_episode_id: $o.service_episode_id,
                    extra: $o.extra,
                }
            }
        }
    };
}

use db::Order as DbOrder;
convert_order!(Order => DbOrder, o);
convert_order!(DbOrder => Order, o);
