//! wasmpacs: a PACS server whose business rules are WebAssembly components.
//!
//! A request flows through the modules in this order: [`server`] accepts it (within the
//! connection limits and timeouts of [`net`]), [`dispatch`] authenticates it ([`auth`]) and
//! routes it ([`router`]) to a [`native`] handler or to a plugin run by the [`runtime`], which
//! lets the plugin call the host's [`capabilities`] (over the [`db`]) and turns its answer (or
//! failure, [`error`]) into the [`response`]. Images arrive
//! through the [`dicom`] server (or DICOMweb) and are archived by [`ingest`] onto [`storage`];
//! [`forward`] sends queued series on to other DICOM nodes, and non-DICOM slides to other
//! archives; [`upload`] streams multipart forms to staging files for plugins. [`check`] compares
//! the files on the media with the index (`wasmpacs check`). [`health`] answers `/health` and
//! `/ready`; [`request_id`] and [`logging`] make each request's log line findable.

pub mod app;
pub mod auth;
pub mod capabilities;
pub mod check;
pub mod config;
pub mod db;
pub mod dicom;
pub mod dispatch;
pub mod error;
pub mod forward;
pub mod health;
pub mod heap;
pub mod ingest;
pub mod logging;
pub mod native;
pub mod net;
pub mod removal;
pub mod request_id;
pub mod response;
pub mod router;
pub mod runtime;
pub mod server;
pub mod storage;
pub mod upload;

pub use app::{App, RunningServer};
pub use config::Config;

/// With `RUST_BACKTRACE=1` (often set for panics), every error value a library builds captures
/// a stack trace, and dicom-rs builds one at the end of each data set it reads: about a
/// hundredth of ingest's CPU. Unless `RUST_LIB_BACKTRACE` says otherwise, library errors go
/// without; panics keep their backtraces. Call first thing in `main`, before any thread starts.
pub fn quiet_library_backtraces() {
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        // SAFETY: the caller runs this before any other thread exists (see above).
        unsafe { std::env::set_var("RUST_LIB_BACKTRACE", "0") };
    }
}
