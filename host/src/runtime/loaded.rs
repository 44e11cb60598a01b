//! A compiled, linked plugin ready to instantiate, and how a component file becomes one: read,
//! digest, compile (or take from the cache), find its WIT version, check it against the world.

use std::path::Path;
use std::time::SystemTime;

use sha1::{Digest, Sha1};
use wasmtime::Engine;
use wasmtime::component::{Component, Linker};

use super::bindings::v0_1_1;
use super::cache::CompileCache;
use crate::capabilities::RequestState;

/// Why a component could not be loaded. The previous version, if any, keeps serving.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("not a valid WebAssembly component: {0:#}")]
    Compile(wasmtime::Error),
    #[error("exports no `wasmpacs:plugin/handler` of a WIT version this host serves (it serves {0})")]
    UnknownVersion(String),
    #[error("does not satisfy the wasmpacs:plugin@{version} world: {source:#}")]
    World { version: &'static str, source: wasmtime::Error },
}

/// Instantiation-ready plugin, under the bindings that serve its WIT version.
pub enum PluginPre {
    V0_1_1(v0_1_1::PluginPre<RequestState>),
}

/// The linkers for every WIT version the host serves.
pub struct Linkers {
    pub v0_1_1: Linker<RequestState>,
}

impl Linkers {
    pub fn new(engine: &Engine) -> wasmtime::Result<Self> {
        let mut v0_1_1 = Linker::new(engine);
        crate::capabilities::link_v0_1_1(&mut v0_1_1)?;
        Ok(Self { v0_1_1 })
    }
}

/// WIT versions this host serves, newest last.
pub const SERVED_VERSIONS: &[&str] = v0_1_1::SERVES;

/// One loaded version of a plugin.
pub struct LoadedPlugin {
    pub pre: PluginPre,
    /// SHA-1 of the component file, lower-case hex.
    pub digest: String,
    /// The WIT version the component was built against (one of [`SERVED_VERSIONS`]).
    pub wit_version: &'static str,
    pub loaded_at: SystemTime,
    pub size: u64,
}

impl LoadedPlugin {
    /// Loads the component at `path`. Blocking (file I/O and compilation).
    pub fn load(engine: &Engine, linkers: &Linkers, cache: &CompileCache, path: &Path) -> Result<Self, LoadError> {
        let bytes = std::fs::read(path).map_err(|source| LoadError::Read { path: path.display().to_string(), source })?;
        let digest = hex::encode(Sha1::digest(&bytes));
        let component = cache.load(engine, &digest, &bytes).map_err(LoadError::Compile)?;
        let version = wit_version(engine, &component)?;
        let pre = match version {
            version if v0_1_1::SERVES.contains(&version) => {
                let instance_pre =
                    linkers.v0_1_1.instantiate_pre(&component).map_err(|source| LoadError::World { version, source })?;
                PluginPre::V0_1_1(v0_1_1::PluginPre::new(instance_pre).map_err(|source| LoadError::World { version, source })?)
            }
            _ => return Err(LoadError::UnknownVersion(SERVED_VERSIONS.join(", "))),
        };
        Ok(Self { pre, digest, wit_version: version, loaded_at: SystemTime::now(), size: bytes.len() as u64 })
    }
}

/// The WIT version a component was built against, read off its handler export's name.
fn wit_version(engine: &Engine, component: &Component) -> Result<&'static str, LoadError> {
    let ty = component.component_type();
    for (name, _) in ty.exports(engine) {
        if let Some(version) = name.strip_prefix("wasmpacs:plugin/handler@")
            && let Some(v) = SERVED_VERSIONS.iter().find(|v| **v == version)
        {
            return Ok(v);
        }
    }
    Err(LoadError::UnknownVersion(SERVED_VERSIONS.join(", ")))
}
