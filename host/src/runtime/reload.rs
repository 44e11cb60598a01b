//! Hot reload: watches the plugin component files and reloads a plugin when its file changes.
//! Events are debounced; reads of a file (access events) are ignored, so that loading a
//! component never triggers another load.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use notify::EventKind;
use notify::event::{AccessKind, ModifyKind};
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer};
use tokio::sync::mpsc;

use super::PluginRuntime;

/// Keeps the watcher alive; dropping it stops hot reload.
pub struct ReloadWatcher {
    _debouncer: Debouncer<notify::RecommendedWatcher, RecommendedCache>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ReloadWatcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// True for events that can mean new file content: creation, data change, rename into place.
fn is_content_change(kind: &EventKind) -> bool {
    match kind {
        EventKind::Create(_) => true,
        EventKind::Modify(ModifyKind::Data(_) | ModifyKind::Name(_) | ModifyKind::Any) => true,
        // A writer closing the file is the surest sign that its content is complete.
        EventKind::Access(AccessKind::Close(notify::event::AccessMode::Write)) => true,
        _ => false,
    }
}

/// Starts watching the folders of every plugin component.
pub fn watch(runtime: Arc<PluginRuntime>, debounce: Duration) -> notify::Result<ReloadWatcher> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<PathBuf>>();
    let mut debouncer = new_debouncer(debounce, None, move |result: DebounceEventResult| match result {
        Ok(events) => {
            let paths: Vec<PathBuf> =
                events.iter().filter(|e| is_content_change(&e.kind)).flat_map(|e| e.paths.iter().cloned()).collect();
            if !paths.is_empty() {
                let _ = tx.send(paths);
            }
        }
        Err(errors) => {
            for e in errors {
                tracing::warn!(error = %e, "plugin file watcher error");
            }
        }
    })?;
    let folders: BTreeSet<PathBuf> = runtime.specs().filter_map(|s| s.component.parent().map(|p| p.to_path_buf())).collect();
    for folder in &folders {
        debouncer.watch(folder, notify::RecursiveMode::NonRecursive)?;
        tracing::info!(folder = %folder.display(), "watching plugin components for hot reload");
    }
    let task = tokio::spawn(async move {
        // One task does all reloading, so two reloads of one plugin never race.
        while let Some(paths) = rx.recv().await {
            let names: BTreeSet<String> = paths.iter().flat_map(|p| runtime.plugins_at(p)).collect();
            for name in names {
                let outcome = runtime.reload(&name).await;
                tracing::debug!(plugin = %name, ok = outcome.ok, message = %outcome.message, "reload outcome");
            }
        }
    });
    Ok(ReloadWatcher { _debouncer: debouncer, task })
}
