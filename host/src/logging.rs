//! The log: `tracing` lines to stdout (or stderr for commands whose report goes to stdout), as
//! text or one JSON object per line (`[log] format`); verbosity from `RUST_LOG` (default info).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Where log lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sink {
    Stdout,
    Stderr,
}

/// Installs the process's log subscriber.
pub fn init(format: LogFormat, sink: Sink) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match (format, sink) {
        // Fields at the top level of each object, beside `timestamp`, `level` and `message`.
        (LogFormat::Json, Sink::Stdout) => builder.json().flatten_event(true).with_current_span(false).init(),
        (LogFormat::Json, Sink::Stderr) => {
            builder.json().flatten_event(true).with_current_span(false).with_writer(std::io::stderr).init()
        }
        (LogFormat::Text, Sink::Stdout) => builder.with_ansi(std::io::stdout().is_terminal()).init(),
        (LogFormat::Text, Sink::Stderr) => builder.with_ansi(std::io::stderr().is_terminal()).with_writer(std::io::stderr).init(),
    }
}
