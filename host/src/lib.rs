//! wasmpacs: a PACS server whose business rules are WebAssembly components.
//!
//! A request flows through the modules in this order: [`server`] accepts it, [`dispatch`]
//! authenticates it ([`auth`]) and routes it ([`router`]) to a [`native`] handler or to a plugin
//! run by the [`runtime`], which lets the plugin call the host's [`capabilities`] (over the
//! [`db`]) and turns its answer (or failure, [`error`]) into the [`response`]. Images arrive
//! through the [`dicom`] server (or DICOMweb) and are archived by [`ingest`] onto [`storage`];
//! [`forward`] sends queued series on to other DICOM nodes.

pub mod app;
pub mod auth;
pub mod capabilities;
pub mod config;
pub mod db;
pub mod dicom;
pub mod dispatch;
pub mod error;
pub mod forward;
pub mod ingest;
pub mod native;
pub mod response;
pub mod router;
pub mod runtime;
pub mod server;
pub mod storage;
pub mod upload;

pub use app::{App, RunningServer};
pub use config::Config;
