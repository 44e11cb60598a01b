//! Host-side bindings of every WIT version the host serves. A module serves its version and
//! the earlier ones that version only adds to (wasmtime matches their names semver-compatibly);
//! a version that changes or removes what components rely on gets a module of its own.

/// `wasmpacs:plugin@0.1.1`, which also serves components built against 0.1.0: 0.1.1 only adds
/// to it, and wasmtime matches 0.1.z import and export names to these semver-compatibly.
pub mod v0_1_1 {
    wasmtime::component::bindgen!({
        path: "../wit/v0.1.1",
        world: "plugin",
        imports: { default: async | trappable },
        exports: { default: async },
    });

    /// The WIT package version these bindings implement.
    pub const VERSION: &str = "0.1.1";

    /// The versions of the components these bindings serve, oldest first.
    pub const SERVES: &[&str] = &["0.1.0", VERSION];
}
