//! The `log` capability: plugin messages in the host's log, tagged with the plugin and tenant.

use super::{Capability, RequestState};
use crate::runtime::bindings::v0_1_1::wasmpacs::plugin::log::{self as wit, Level};

/// Longest message kept; a plugin cannot flood the log with one call.
const MAX_MESSAGE: usize = 8 * 1024;

impl wit::Host for RequestState {
    async fn log(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        self.require(Capability::Log)?;
        let mut message = message;
        if message.len() > MAX_MESSAGE {
            let mut cut = MAX_MESSAGE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
        }
        let (plugin, tenant) = (&*self.plugin, &*self.tenant);
        match level {
            Level::Trace => tracing::trace!(target: "plugin", plugin, tenant, "{message}"),
            Level::Debug => tracing::debug!(target: "plugin", plugin, tenant, "{message}"),
            Level::Info => tracing::info!(target: "plugin", plugin, tenant, "{message}"),
            Level::Warn => tracing::warn!(target: "plugin", plugin, tenant, "{message}"),
            Level::Error => tracing::error!(target: "plugin", plugin, tenant, "{message}"),
        }
        Ok(())
    }
}
