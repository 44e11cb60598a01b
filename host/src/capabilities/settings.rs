//! The `settings` capability: the plugin's own table from plugins.toml.

use super::{Capability, RequestState};
use crate::runtime::bindings::v0_1_1::wasmpacs::plugin::settings as wit;

impl wit::Host for RequestState {
    async fn get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        self.require(Capability::Settings)?;
        Ok(self.settings.iter().find(|(k, _)| *k == key).map(|(_, v)| v.clone()))
    }

    async fn all(&mut self) -> wasmtime::Result<Vec<(String, String)>> {
        self.require(Capability::Settings)?;
        Ok(self.settings.as_ref().clone())
    }
}
