//! The plugin runtime: loads the components named in plugins.toml, runs each request in a fresh
//! `Store` under its memory and time limits inside one unit of work, and swaps in new versions.

pub mod bindings;
mod cache;
mod engine;
mod loaded;
pub mod manifest;
mod message;
pub mod reload;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use serde::Serialize;
use wasmtime::{Store, StoreLimitsBuilder, Trap};

use crate::capabilities::{Capability, RequestState};
use crate::config::RuntimeConfig;
use crate::db::events::StudyEvent;
use crate::db::{Database, now_text};
use crate::error::ApiError;
use crate::ingest::Ingest;
pub use cache::CompileCache;
pub use engine::{EpochClock, PluginEngine};
pub use loaded::{Linkers, LoadError, LoadedPlugin, PluginPre};
pub use manifest::{Manifest, PluginSpec};
pub use message::{PluginRequest, PluginResponse};

/// Time a plugin call may take beyond its own deadline before the host gives up on it (a host
/// capability blocked on the database, say); the epoch deadline stops the guest itself.
const HOST_GRACE: Duration = Duration::from_secs(5);

/// The outcome of the latest reload attempt of a plugin.
#[derive(Debug, Clone, Serialize)]
pub struct ReloadOutcome {
    pub at: String,
    pub ok: bool,
    pub message: String,
}

/// One plugin of the manifest and the version of it currently serving.
pub struct PluginSlot {
    pub spec: PluginSpec,
    name: Arc<str>,
    grants: Arc<[Capability]>,
    settings: Arc<Vec<(String, String)>>,
    current: ArcSwap<LoadedPlugin>,
    last_reload: Mutex<Option<ReloadOutcome>>,
}

/// What the admin endpoint shows of a plugin.
#[derive(Debug, Serialize)]
pub struct PluginInfo {
    pub name: String,
    pub component: String,
    pub wit_version: String,
    pub digest: String,
    pub size: u64,
    pub grants: Vec<Capability>,
    pub routes: Vec<String>,
    pub hooks: Vec<String>,
    pub memory_limit_mb: u64,
    pub timeout_ms: u64,
    pub loaded_at: String,
    pub last_reload: Option<ReloadOutcome>,
}

/// All loaded plugins and the engine they run on.
pub struct PluginRuntime {
    engine: PluginEngine,
    linkers: Linkers,
    cache: CompileCache,
    db: Database,
    ingest: Ingest,
    slots: BTreeMap<Arc<str>, PluginSlot>,
}

impl PluginRuntime {
    /// Loads every plugin of the manifest; any that fails to load stops the start. Plugins
    /// reach the archive through `db` and store instances through `ingest`.
    pub fn load(
        manifest: &Manifest,
        runtime: &RuntimeConfig,
        cache: CompileCache,
        db: Database,
        ingest: Ingest,
    ) -> anyhow::Result<Self> {
        let engine = PluginEngine::new(runtime)?;
        let linkers = Linkers::new(&engine.engine)?;
        let mut slots = BTreeMap::new();
        for spec in &manifest.plugins {
            let started = Instant::now();
            let loaded = LoadedPlugin::load(&engine.engine, &linkers, &cache, &spec.component)
                .map_err(|e| anyhow::anyhow!("plugin `{}` ({}): {e}", spec.name, spec.component.display()))?;
            tracing::info!(
                plugin = %spec.name, wit = loaded.wit_version, digest = %loaded.digest,
                ms = started.elapsed().as_millis() as u64, "plugin loaded"
            );
            let name: Arc<str> = Arc::from(spec.name.as_str());
            slots.insert(
                name.clone(),
                PluginSlot {
                    name,
                    grants: spec.grants.iter().copied().collect(),
                    settings: Arc::new(spec.settings_as_strings()),
                    spec: spec.clone(),
                    current: ArcSwap::from_pointee(loaded),
                    last_reload: Mutex::new(None),
                },
            );
        }
        tracing::info!(pooling = engine.pooling, plugins = slots.len(), "plugin runtime ready");
        Ok(Self { engine, linkers, cache, db, ingest, slots })
    }

    /// Starts the epoch clock that enforces deadlines; keep the guard alive while serving.
    pub fn start_clock(&self) -> EpochClock {
        self.engine.start_epoch_clock()
    }

    /// True when the pooling allocator is in use.
    pub fn pooling(&self) -> bool {
        self.engine.pooling
    }

    /// The plugins of the manifest.
    pub fn specs(&self) -> impl Iterator<Item = &PluginSpec> {
        self.slots.values().map(|s| &s.spec)
    }

    fn slot(&self, plugin: &str) -> Result<&PluginSlot, ApiError> {
        self.slots.get(plugin).ok_or_else(|| ApiError::Internal(format!("no plugin named `{plugin}`")))
    }

    fn new_store(&self, slot: &PluginSlot, loaded: &LoadedPlugin, tenant: &str) -> Store<RequestState> {
        let limits = StoreLimitsBuilder::new()
            .memory_size((slot.spec.memory_limit_mb * 1024 * 1024) as usize)
            .trap_on_grow_failure(true)
            .build();
        let state = RequestState::new(
            slot.name.clone(),
            Arc::from(tenant),
            slot.grants.clone(),
            slot.settings.clone(),
            loaded.wit_version,
            self.db.clone(),
            self.ingest.clone(),
            limits,
        );
        let mut store = Store::new(&self.engine.engine, state);
        store.limiter(|state| &mut state.limits);
        store.set_epoch_deadline(self.engine.ticks_for(slot.spec.timeout_ms));
        store.epoch_deadline_trap();
        store
    }

    /// Serves a request with `plugin`, in one unit of work committed only for a status below 400.
    /// A trap, a deadline or a memory cap fails this request alone, with a 500 naming the plugin.
    pub async fn handle(&self, plugin: &str, tenant: &str, request: PluginRequest) -> Result<PluginResponse, ApiError> {
        let slot = self.slot(plugin)?;
        // The version serving this request: a reload meanwhile does not affect it.
        let loaded = slot.current.load_full();
        let mut store = self.new_store(slot, &loaded, tenant);
        store.data_mut().staged = request.files.clone();
        let call = async {
            match &loaded.pre {
                PluginPre::V0_1_1(pre) => {
                    let plugin = pre.instantiate_async(&mut store).await?;
                    let wit_request = request.to_v0_1_1(tenant);
                    let response = plugin.wasmpacs_plugin_handler().call_handle(&mut store, &wit_request).await?;
                    wasmtime::Result::<PluginResponse>::Ok(response.into())
                }
            }
        };
        let limit = Duration::from_millis(slot.spec.timeout_ms) + HOST_GRACE;
        let response = match tokio::time::timeout(limit, call).await {
            Err(_) => return Err(plugin_failure(slot, format!("did not answer within {} ms", limit.as_millis()))),
            Ok(Err(e)) => return Err(self.failure(slot, &e)),
            Ok(Ok(response)) => response,
        };
        // Files the plugin stored are removed with the store unless the unit commits.
        if let Some(unit) = store.data_mut().take_unit() {
            if response.status < 400 {
                unit.commit().await.map_err(|e| {
                    tracing::error!(plugin, error = %e, "cannot commit unit of work");
                    ApiError::Internal("the change could not be committed".into())
                })?;
                let recorded = store.data_mut().keep_placed();
                drop(store);
                // Events of instances the plugin stored (e.g. a new series) reach the hooks.
                for event in &recorded {
                    self.deliver_event(tenant, event).await;
                }
            } else {
                store.data_mut().discard_placed();
                if let Err(e) = unit.rollback().await {
                    tracing::warn!(plugin, error = %e, "rollback failed");
                }
            }
        }
        Ok(response)
    }

    /// Time to create a store and instantiate `plugin` once, without calling it: the fixed cost
    /// every plugin request pays (for benchmarks and diagnostics).
    pub async fn measure_instantiation(&self, plugin: &str) -> Result<Duration, ApiError> {
        let slot = self.slot(plugin)?;
        let loaded = slot.current.load_full();
        let started = Instant::now();
        let mut store = self.new_store(slot, &loaded, "bench");
        match &loaded.pre {
            PluginPre::V0_1_1(pre) => {
                pre.instantiate_async(&mut store).await.map_err(|e| self.failure(slot, &e))?;
            }
        }
        Ok(started.elapsed())
    }

    /// Hands `event` to every plugin whose `hooks` list its kind, each in its own unit of work.
    /// A hook's failure is logged; it never undoes the event itself.
    pub async fn deliver_event(&self, tenant: &str, event: &StudyEvent) {
        for slot in self.slots.values().filter(|s| s.spec.wants_event(&event.kind)) {
            let loaded = slot.current.load_full();
            let mut store = self.new_store(slot, &loaded, tenant);
            let call = async {
                match &loaded.pre {
                    PluginPre::V0_1_1(pre) => {
                        let plugin = pre.instantiate_async(&mut store).await?;
                        let wit_event = message::event_v0_1_1(event, tenant);
                        plugin.wasmpacs_plugin_hooks().call_on_event(&mut store, &wit_event).await
                    }
                }
            };
            let limit = Duration::from_millis(slot.spec.timeout_ms) + HOST_GRACE;
            let outcome = match tokio::time::timeout(limit, call).await {
                Err(_) => Err(format!("did not answer within {} ms", limit.as_millis())),
                Ok(Err(e)) => Err(self.failure(slot, &e).to_string()),
                Ok(Ok(Err(message))) => Err(message),
                Ok(Ok(Ok(()))) => Ok(()),
            };
            match (outcome, store.data_mut().take_unit()) {
                (Ok(()), Some(unit)) => match unit.commit().await {
                    Ok(()) => {
                        store.data_mut().keep_placed();
                    }
                    Err(e) => tracing::error!(plugin = %slot.name, error = %e, "cannot commit hook's unit of work"),
                },
                (Ok(()), None) => {}
                (Err(message), _) => {
                    tracing::warn!(plugin = %slot.name, kind = %event.kind, offset = event.offset, %message, "event hook failed")
                }
            }
        }
    }

    /// Turns a failed call into the client's error, telling traps, deadlines, memory caps and
    /// refused capabilities apart.
    fn failure(&self, slot: &PluginSlot, e: &wasmtime::Error) -> ApiError {
        let root = e.root_cause().to_string();
        let reason = match e.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => format!("exceeded its time limit of {} ms", slot.spec.timeout_ms),
            Some(Trap::UnreachableCodeReached) => "trapped: the plugin panicked (unreachable code reached)".to_owned(),
            Some(trap) => format!("trapped: {trap}"),
            None if root.contains("growing memory") || root.contains("memory growth") => {
                format!("exceeded its memory limit of {} MiB", slot.spec.memory_limit_mb)
            }
            None if root.contains("concurrent") && root.contains("limit") => {
                tracing::warn!(plugin = %slot.name, error = %root, "instance pool exhausted");
                return ApiError::Busy;
            }
            None => root,
        };
        tracing::warn!(plugin = %slot.name, %reason, error = format!("{e:?}"), "plugin call failed");
        plugin_failure(slot, reason)
    }

    /// Loads the plugin's component file again and swaps it in. On failure the version serving
    /// now keeps serving. Blocking work (compilation) runs off the async executor.
    pub async fn reload(self: &Arc<Self>, plugin: &str) -> ReloadOutcome {
        let this = self.clone();
        let name = plugin.to_owned();
        let started = Instant::now();
        let result = tokio::task::spawn_blocking(move || {
            let slot = this.slots.get(name.as_str()).expect("reload of a known plugin");
            LoadedPlugin::load(&this.engine.engine, &this.linkers, &this.cache, &slot.spec.component)
        })
        .await;
        let slot = self.slots.get(plugin).expect("reload of a known plugin");
        let outcome = match result {
            Ok(Ok(loaded)) => {
                let old = slot.current.load();
                if old.digest == loaded.digest {
                    ReloadOutcome { at: now_text(), ok: true, message: format!("unchanged ({})", loaded.digest) }
                } else {
                    let message =
                        format!("now serving {} (was {}) after {} ms", loaded.digest, old.digest, started.elapsed().as_millis());
                    slot.current.store(Arc::new(loaded));
                    tracing::info!(plugin, %message, "plugin reloaded");
                    ReloadOutcome { at: now_text(), ok: true, message }
                }
            }
            Ok(Err(e)) => {
                tracing::error!(plugin, error = %e, "reload refused; the previous version keeps serving");
                ReloadOutcome { at: now_text(), ok: false, message: format!("refused: {e}") }
            }
            Err(e) => ReloadOutcome { at: now_text(), ok: false, message: format!("reload task failed: {e}") },
        };
        *slot.last_reload.lock().expect("reload outcome lock") = Some(outcome.clone());
        outcome
    }

    /// Names of plugins whose component is the file at `path`.
    pub fn plugins_at(&self, path: &std::path::Path) -> Vec<String> {
        self.slots.values().filter(|s| s.spec.component == path).map(|s| s.name.to_string()).collect()
    }

    /// What is loaded, for the admin endpoint.
    pub fn describe(&self) -> Vec<PluginInfo> {
        self.slots
            .values()
            .map(|slot| {
                let current = slot.current.load();
                PluginInfo {
                    name: slot.name.to_string(),
                    component: slot.spec.component.display().to_string(),
                    wit_version: current.wit_version.to_owned(),
                    digest: current.digest.clone(),
                    size: current.size,
                    grants: slot.grants.to_vec(),
                    routes: slot.spec.routes.clone(),
                    hooks: slot.spec.hooks.clone(),
                    memory_limit_mb: slot.spec.memory_limit_mb,
                    timeout_ms: slot.spec.timeout_ms,
                    loaded_at: humantime::format_rfc3339_millis(current.loaded_at).to_string(),
                    last_reload: slot.last_reload.lock().expect("reload outcome lock").clone(),
                }
            })
            .collect()
    }
}

fn plugin_failure(slot: &PluginSlot, reason: String) -> ApiError {
    ApiError::Plugin { plugin: slot.name.to_string(), reason }
}
