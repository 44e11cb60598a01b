//! plugins.toml: which component serves which routes, what it is granted, its limits and settings.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::capabilities::Capability;

/// Why the manifest could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read plugins manifest {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("plugins manifest {path} is invalid: {source}")]
    Parse { path: PathBuf, source: toml::de::Error },
    #[error("plugins manifest: {0}")]
    Invalid(String),
}

/// The whole manifest.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    #[serde(default, rename = "plugin")]
    pub plugins: Vec<PluginSpec>,
}

/// One `[[plugin]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginSpec {
    /// Unique name, used in logs, errors and the admin listing.
    pub name: String,
    /// Path of the component (`.wasm`); relative to the manifest's folder.
    pub component: PathBuf,
    /// Routes it serves, as "METHOD path/below/o3-dpacs-wado".
    #[serde(default)]
    pub routes: Vec<String>,
    /// Host capabilities it may call.
    #[serde(default)]
    pub grants: Vec<Capability>,
    /// Event kinds delivered to its `on-event` hook ("*" for all).
    #[serde(default)]
    pub hooks: Vec<String>,
    /// Memory cap per request, in MiB.
    #[serde(default = "default_memory_mb")]
    pub memory_limit_mb: u64,
    /// Wall-clock deadline per request, in milliseconds.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Free-form settings handed to the plugin through the `settings` capability.
    #[serde(default)]
    pub settings: BTreeMap<String, toml::Value>,
}

fn default_memory_mb() -> u64 {
    64
}
fn default_timeout_ms() -> u64 {
    5_000
}

impl PluginSpec {
    /// Settings as strings (TOML strings unquoted, other values in TOML syntax).
    pub fn settings_as_strings(&self) -> Vec<(String, String)> {
        self.settings
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    match v {
                        toml::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    },
                )
            })
            .collect()
    }

    /// True when this plugin wants events of `kind`.
    pub fn wants_event(&self, kind: &str) -> bool {
        self.hooks.iter().any(|h| h == "*" || h == kind)
    }
}

impl Manifest {
    /// Reads plugins.toml, resolving component paths against its folder.
    pub fn load(path: &Path) -> Result<Self, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read { path: path.to_owned(), source })?;
        let mut manifest: Manifest =
            toml::from_str(&text).map_err(|source| ManifestError::Parse { path: path.to_owned(), source })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut names = std::collections::HashSet::new();
        for plugin in &mut manifest.plugins {
            if plugin.component.is_relative() {
                plugin.component = base.join(&plugin.component);
            }
            plugin.component = canonical_file_path(&plugin.component);
            if !names.insert(plugin.name.clone()) {
                return Err(ManifestError::Invalid(format!("plugin `{}` is listed twice", plugin.name)));
            }
            if plugin.memory_limit_mb == 0 || plugin.timeout_ms == 0 {
                return Err(ManifestError::Invalid(format!(
                    "plugin `{}`: memory_limit_mb and timeout_ms must be above zero",
                    plugin.name
                )));
            }
        }
        Ok(manifest)
    }
}

/// The path with its folder made canonical (so it compares equal to the paths the file watcher
/// reports); the file itself need not exist yet.
fn canonical_file_path(path: &Path) -> PathBuf {
    match (path.parent().and_then(|p| std::fs::canonicalize(p).ok()), path.file_name()) {
        (Some(folder), Some(name)) => folder.join(name),
        _ => path.to_owned(),
    }
}
