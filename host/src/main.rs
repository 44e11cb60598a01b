//! The `wasmpacs` command line: `wasmpacs serve --config wasmpacs.toml`.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;
use wasmpacs::{Config, RunningServer};

/// wasmpacs: a PACS server (O3-DPACS REST APIs) whose business rules are WebAssembly plugins.
#[derive(Parser)]
#[command(name = "wasmpacs", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server until SIGTERM or Ctrl-C (requests in flight then finish).
    ///
    /// Every key of the config file can be overridden by an environment variable named
    /// WASMPACS_<SECTION>_<KEY> (e.g. WASMPACS_HTTP_LISTEN, WASMPACS_DATABASE_URL,
    /// WASMPACS_TENANT_0_API_KEY). Log verbosity follows RUST_LOG (default: info).
    Serve {
        /// The config file (see wasmpacs.example.toml).
        #[arg(long, short, env = "WASMPACS_CONFIG", default_value = "wasmpacs.toml")]
        config: PathBuf,
    },
}

fn main() -> anyhow::Result<()> {
    wasmpacs::quiet_library_backtraces();
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_ansi(std::io::stdout().is_terminal())
        .init();
    match Cli::parse().command {
        Command::Serve { config } => {
            let config = Config::load(&config).with_context(|| format!("loading {}", config.display()))?;
            let server = RunningServer::start(config).await?;
            shutdown_signal().await;
            tracing::info!("shutdown requested");
            server.shutdown().await;
            Ok(())
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("install SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
