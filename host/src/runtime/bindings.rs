//! Host-side bindings of every WIT version the host serves, one module per version.
//! A released version's module is never changed; a new WIT version gets a new module here.

/// `wasmpacs:plugin@0.1.0`
pub mod v0_1_0 {
    wasmtime::component::bindgen!({
        path: "../wit/v0.1.0",
        world: "plugin",
        imports: { default: async | trappable },
        exports: { default: async },
    });

    /// The WIT package version these bindings implement.
    pub const VERSION: &str = "0.1.0";
}
