//! The application: configuration, tenants, database, plugins and routes wired together, and a
//! running server built from them (used the same way by `main` and by the tests).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::auth::Authenticator;
use crate::config::Config;
use crate::db::Database;
use crate::db::events::StudyEvent;
use crate::forward::Forwarder;
use crate::ingest::Ingest;
use crate::native::Native;
use crate::removal::Remover;
use crate::router::{Router, Target};
use crate::runtime::{CompileCache, Manifest, PluginRuntime, reload};
use crate::storage::Storage;

/// Everything a request may need, shared by all requests.
pub struct App {
    pub config: Config,
    pub auth: Authenticator,
    pub router: Router,
    pub db: Database,
    pub ingest: Ingest,
    pub runtime: Arc<PluginRuntime>,
    pub forwarder: Forwarder,
    /// Removes the old copies of relocated files once due.
    pub remover: Remover,
}

impl App {
    /// Connects and migrates the database, loads the plugins and builds the route table.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&config.storage.data_dir)
            .with_context(|| format!("cannot create data directory {}", config.storage.data_dir.display()))?;
        let db = Database::connect(&config.database_url(), config.database.max_connections, config.database.sqlite_synchronous)
            .await?;
        tracing::info!(backend = ?db.backend(), "database ready");
        let storage = Storage::new(&config.storage)?;
        crate::storage::sweep::spawn(&storage, std::time::Duration::from_secs(config.storage.staging_grace_s));
        let ingest = Ingest::new(db.clone(), storage.clone());
        let manifest = Manifest::load(&config.plugins.manifest)?;
        let router = build_router(&manifest)?;
        let cache = CompileCache::new(config.storage.data_dir.join("cache").join("components"));
        let runtime_config = config.runtime.clone();
        let (db_for_plugins, ingest_for_plugins) = (db.clone(), ingest.clone());
        let runtime = tokio::task::spawn_blocking(move || {
            PluginRuntime::load(&manifest, &runtime_config, cache, db_for_plugins, ingest_for_plugins)
        })
        .await??;
        let auth = Authenticator::new(&config.tenants, config.admin.api_key.as_deref());
        let runtime = Arc::new(runtime);
        let remover = Remover::start(db.clone(), storage.clone());
        let forwarder = Forwarder::start(&config, db.clone(), storage, runtime.clone());
        Ok(Self { config, auth, router, db, ingest, runtime, forwarder, remover })
    }

    /// Hands events recorded outside plugins (e.g. a study received) to the plugins' hooks, in
    /// the background and in order.
    pub fn deliver_events(&self, tenant: &str, events: Vec<StudyEvent>) {
        deliver_events(&self.runtime, tenant, events);
    }
}

/// Hands events to the plugins' hooks of `runtime`, in the background and in order (for work
/// that outlives its request, such as a STOW part being stored).
pub fn deliver_events(runtime: &Arc<PluginRuntime>, tenant: &str, events: Vec<StudyEvent>) {
    if events.is_empty() {
        return;
    }
    let (runtime, tenant) = (runtime.clone(), tenant.to_owned());
    tokio::spawn(async move {
        for event in events {
            runtime.deliver_event(&tenant, &event).await;
        }
    });
}

/// Routes of the native handlers and of every plugin; a route claimed twice stops the start.
fn build_router(manifest: &Manifest) -> anyhow::Result<Router> {
    let mut router = Router::default();
    for (spec, native) in Native::ROUTES {
        router.add(spec, Target::Native(*native))?;
    }
    for plugin in &manifest.plugins {
        let target = Target::Plugin(Arc::from(plugin.name.as_str()));
        for route in &plugin.routes {
            router.add(route, target.clone()).with_context(|| format!("plugins manifest, plugin `{}`", plugin.name))?;
        }
    }
    Ok(router)
}

/// A server accepting connections; stop it with [`RunningServer::shutdown`].
pub struct RunningServer {
    /// The address the HTTP listener is bound to (useful with port 0).
    pub addr: SocketAddr,
    /// The address of the DICOM listener, when one is configured.
    pub dicom_addr: Option<SocketAddr>,
    pub app: Arc<App>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl RunningServer {
    /// Builds the app from `config`, binds its listener and starts serving.
    pub async fn start(config: Config) -> anyhow::Result<Self> {
        let listen = config.http.listen;
        crate::net::fd_limit::raise((config.http.max_connections + config.dicom.max_associations) as u64);
        let app = Arc::new(App::build(config).await?);
        let listener = TcpListener::bind(listen).await.with_context(|| format!("cannot listen on {listen}"))?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = watch::channel(false);
        let dicom_addr = match app.config.dicom.listen {
            Some(listen) => {
                let dicom = TcpListener::bind(listen).await.with_context(|| format!("cannot listen for DICOM on {listen}"))?;
                let dicom_addr = dicom.local_addr()?;
                tokio::spawn(crate::dicom::scp::serve(dicom, app.clone(), stopped.clone()));
                tracing::info!(addr = %dicom_addr, ae_title = %app.config.dicom.ae_title, "DICOM listening");
                Some(dicom_addr)
            }
            None => None,
        };
        let clock = app.runtime.start_clock();
        let watcher = if app.config.reload.enabled {
            Some(reload::watch(app.runtime.clone(), Duration::from_millis(app.config.reload.debounce_ms))?)
        } else {
            None
        };
        let serving = app.clone();
        let task = tokio::spawn(async move {
            crate::server::serve(listener, serving, stopped).await;
            drop(watcher);
            drop(clock);
        });
        tracing::info!(%addr, "wasmpacs listening");
        Ok(Self { addr, dicom_addr, app, stop, task })
    }

    /// Stops accepting, lets requests in flight finish, and closes the database.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        self.app.db.close().await;
    }
}
