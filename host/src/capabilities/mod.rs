//! Host capabilities: what a plugin can ask the host to do. Each capability is one WIT interface
//! implemented in its own module; a plugin may call it only when plugins.toml grants it.

mod archive;
mod events;
mod log;
mod settings;
mod slides;
mod staging;

use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sqlx::AnyConnection;
use wasmtime::StoreLimits;
use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::db::events::StudyEvent;
use crate::db::{Database, UnitOfWork};
use crate::ingest::{Ingest, PlacedFile};
use crate::runtime::bindings::v0_1_1;

pub use v0_1_1::wasmpacs::plugin::types::HostError;

/// A host interface a plugin can be granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Capability {
    /// Typed domain operations on the archive, in the request's unit of work.
    Archive,
    /// Writing to the study event feed.
    Events,
    /// Reading staged uploads.
    Staging,
    /// Logging into the host's log.
    Log,
    /// Reading the plugin's own settings.
    Settings,
}

impl std::fmt::Display for Capability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self {
            Capability::Archive => "archive",
            Capability::Events => "events",
            Capability::Staging => "staging",
            Capability::Log => "log",
            Capability::Settings => "settings",
        };
        f.write_str(name)
    }
}

/// A file the host staged from an upload (see the `staging` capability).
#[derive(Debug, Clone)]
pub struct StagedFile {
    pub id: u32,
    pub part: String,
    pub file_name: Option<String>,
    pub content_type: Option<String>,
    pub size: u64,
    pub sha1: String,
    pub path: PathBuf,
}

/// Everything one plugin call may touch: the data of its wasmtime `Store`.
pub struct RequestState {
    pub plugin: Arc<str>,
    pub tenant: Arc<str>,
    /// The WIT version the plugin was built against (see `runtime::loaded::SERVED_VERSIONS`).
    wit_version: &'static str,
    grants: Arc<[Capability]>,
    settings: Arc<Vec<(String, String)>>,
    db: Database,
    ingest: Ingest,
    /// Files placed by `archive.store-instance` in this unit of work: kept when it commits,
    /// removed when the state is dropped without [`RequestState::keep_placed`]. Declared before
    /// `unit` so that they are removed before a dropped unit rolls back: once the rollback frees
    /// their rows, a concurrent store of the same instances may place files at the same paths.
    placed: Vec<PlacedFile>,
    unit: Option<UnitOfWork>,
    /// Events recorded by ingest in this unit of work, for the hooks once it commits.
    recorded: Vec<StudyEvent>,
    pub staged: Vec<StagedFile>,
    pub limits: StoreLimits,
    wasi: WasiCtx,
    table: ResourceTable,
}

impl RequestState {
    #[allow(clippy::too_many_arguments, reason = "each is its own part of a request's state, named at the one caller")]
    pub fn new(
        plugin: Arc<str>,
        tenant: Arc<str>,
        grants: Arc<[Capability]>,
        settings: Arc<Vec<(String, String)>>,
        wit_version: &'static str,
        db: Database,
        ingest: Ingest,
        limits: StoreLimits,
    ) -> Self {
        Self {
            plugin,
            tenant,
            wit_version,
            grants,
            settings,
            db,
            ingest,
            unit: None,
            placed: Vec::new(),
            recorded: Vec::new(),
            staged: Vec::new(),
            limits,
            // No environment, arguments, files or sockets: only clocks and randomness.
            wasi: WasiCtx::builder().build(),
            table: ResourceTable::new(),
        }
    }

    /// Fails the call (a trap that names the plugin) unless `capability` was granted.
    fn require(&self, capability: Capability) -> wasmtime::Result<()> {
        if self.grants.contains(&capability) {
            Ok(())
        } else {
            Err(wasmtime::format_err!(
                "capability `{capability}` is not granted to plugin `{}` (add it to `grants` in plugins.toml)",
                self.plugin
            ))
        }
    }

    /// The request's unit of work, begun on first use.
    async fn unit(&mut self) -> Result<&mut AnyConnection, HostError> {
        if self.unit.is_none() {
            let tx = self.db.begin().await.map_err(|e| {
                tracing::error!(plugin = %self.plugin, error = %e, "cannot begin a unit of work");
                HostError::Internal("the archive is unavailable".into())
            })?;
            self.unit = Some(tx);
        }
        Ok(self.unit.as_mut().expect("unit of work just begun"))
    }

    /// Takes the unit of work out (to commit it); dropping it instead rolls it back.
    pub fn take_unit(&mut self) -> Option<UnitOfWork> {
        self.unit.take()
    }

    /// The unit of work is about to roll back: the files it placed go first (see `placed`).
    pub fn discard_placed(&mut self) {
        self.placed.clear();
        self.recorded.clear();
    }

    /// The unit of work committed: the files it placed stay; returns the events ingest recorded
    /// in it (for the hooks).
    pub fn keep_placed(&mut self) -> Vec<StudyEvent> {
        for file in self.placed.drain(..) {
            file.keep();
        }
        std::mem::take(&mut self.recorded)
    }
}

impl WasiView for RequestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

/// Adds every capability of WIT 0.1.1, and the WASI 0.2 interfaces Rust guests import, to a linker.
pub fn link_v0_1_1(linker: &mut Linker<RequestState>) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_async(linker)?;
    v0_1_1::Plugin::add_to_linker::<RequestState, HasSelf<RequestState>>(linker, |state| state)?;
    Ok(())
}

/// Maps a domain failure to the WIT error, logging internal ones (their detail stays in the log).
fn host_error(plugin: &str, e: crate::db::archive::OpError) -> HostError {
    use crate::db::archive::OpError;
    match e {
        OpError::Conflict(m) => HostError::Conflict(m),
        OpError::NotFound(m) => HostError::NotFound(m),
        OpError::Invalid(m) => HostError::Invalid(m),
        OpError::Sql(e) => {
            tracing::error!(plugin, error = %e, "archive operation failed");
            HostError::Internal("database error".into())
        }
    }
}

impl v0_1_1::wasmpacs::plugin::types::Host for RequestState {}
