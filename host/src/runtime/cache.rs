//! The on-disk cache of compiled components, keyed by the component's SHA-1 and by the engine's
//! compatibility hash, so a restart does not recompile unchanged plugins and a changed engine
//! never loads code compiled for another.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::PathBuf;

use wasmtime::Engine;
use wasmtime::component::Component;

/// Compiled components under `<data_dir>/cache/components`.
#[derive(Clone)]
pub struct CompileCache {
    dir: PathBuf,
}

impl CompileCache {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    fn path(&self, engine: &Engine, digest: &str) -> PathBuf {
        let mut h = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        self.dir.join(format!("{digest}-{:016x}.cwasm", h.finish()))
    }

    /// The compiled form of `bytes` (whose SHA-1 is `digest`), from the cache or compiled now
    /// and then cached. Blocking: call it off the async executor.
    pub fn load(&self, engine: &Engine, digest: &str, bytes: &[u8]) -> wasmtime::Result<Component> {
        let path = self.path(engine, digest);
        if path.exists() {
            // SAFETY: the file was written by `Component::serialize` of this same engine
            // configuration (the name carries its compatibility hash) into our own data directory.
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(component) => return Ok(component),
                Err(e) => tracing::warn!(path = %path.display(), error = %e, "discarding unusable cached component"),
            }
        }
        let component = Component::new(engine, bytes)?;
        if let Err(e) = self.store(&path, &component) {
            tracing::warn!(path = %path.display(), error = %e, "cannot cache compiled component");
        }
        Ok(component)
    }

    fn store(&self, path: &PathBuf, component: &Component) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let bytes = component.serialize()?;
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    }
}
