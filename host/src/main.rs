//! The `wasmpacs` command line: `wasmpacs serve --config wasmpacs.toml`, the storage check
//! `wasmpacs check --config wasmpacs.toml`, and `wasmpacs config check --config wasmpacs.toml`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use wasmpacs::check::CheckOptions;
use wasmpacs::config::{LogFormat, show};
use wasmpacs::logging::{self, Sink};
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
    /// WASMPACS_TENANT_0_API_KEY). Log verbosity follows RUST_LOG (default: info), the form of
    /// the lines `[log] format`.
    Serve {
        /// The config file (see wasmpacs.example.toml).
        #[arg(long, short, env = "WASMPACS_CONFIG", default_value = "wasmpacs.toml")]
        config: PathBuf,
    },
    /// Compare the files on the storage media with the index, both ways, and print a JSON
    /// report. Every file a row names must be there with its recorded size (and, with
    /// --verify-digests, its recorded digest); every file of the archive's layout must be named
    /// by a row. Files no row names are reported and, with --set-aside-orphans, moved to their
    /// medium's `.orphans` folder; nothing is deleted. Safe beside a running server. Exits
    /// with 1 when a named file is missing, of the wrong size, damaged or unreadable, and with
    /// 2 when the check cannot run.
    Check {
        /// The config file (see wasmpacs.example.toml).
        #[arg(long, short, env = "WASMPACS_CONFIG", default_value = "wasmpacs.toml")]
        config: PathBuf,
        /// Read every named file whole and compare its digest with the recorded one.
        #[arg(long)]
        verify_digests: bool,
        /// Move files no row names, older than the grace period, to `<medium>/.orphans/`.
        #[arg(long)]
        set_aside_orphans: bool,
        /// Minutes below which a file no row names is taken for one being committed (0 only
        /// when no server is running on the archive).
        #[arg(long, default_value_t = 60)]
        grace_minutes: u64,
    },
    /// Work with the configuration.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
}

#[derive(Subcommand)]
enum ConfigAction {
    /// Load the config file with its WASMPACS_* environment overrides, check it and the plugins
    /// manifest it names, and print the effective configuration (defaults filled in, secrets
    /// masked). Exits with 1, naming the problem, when anything is wrong.
    Check {
        /// The config file (see wasmpacs.example.toml).
        #[arg(long, short, env = "WASMPACS_CONFIG", default_value = "wasmpacs.toml")]
        config: PathBuf,
        /// How to print the configuration.
        #[arg(long, value_enum, default_value = "toml")]
        format: show::Format,
    },
}

fn main() -> anyhow::Result<()> {
    wasmpacs::quiet_library_backtraces();
    wasmpacs::heap::bound_heap_growth();
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config } => {
            let config = Config::load(&config).with_context(|| format!("loading {}", config.display()))?;
            logging::init(config.log.format, Sink::Stdout);
            let server = RunningServer::start(config).await?;
            shutdown_signal().await;
            tracing::info!("shutdown requested");
            server.shutdown().await;
            Ok(())
        }
        Command::Check { config, verify_digests, set_aside_orphans, grace_minutes } => {
            // The report goes to stdout; the log beside it to stderr.
            logging::init(LogFormat::Text, Sink::Stderr);
            let options = CheckOptions { verify_digests, set_aside_orphans, grace: Duration::from_secs(grace_minutes * 60) };
            let code = match check(&config, &options).await {
                Ok(true) => 0,
                Ok(false) => 1,
                Err(e) => {
                    tracing::error!("the check could not run: {e:#}");
                    2
                }
            };
            std::process::exit(code)
        }
        Command::Config { action: ConfigAction::Check { config, format } } => match check_config(&config, format) {
            Ok(shown) => {
                println!("{shown}");
                Ok(())
            }
            Err(e) => {
                eprintln!("{}: {e:#}", config.display());
                std::process::exit(1)
            }
        },
    }
}

/// The effective configuration of `path`, once it and its plugins manifest are found sound.
fn check_config(path: &Path, format: show::Format) -> anyhow::Result<String> {
    let config = Config::load(path)?;
    wasmpacs::runtime::Manifest::load(&config.plugins.manifest)?;
    show::effective(&config, format)
}

/// Runs the storage check and prints its report; true when the archive is whole.
async fn check(config: &Path, options: &CheckOptions) -> anyhow::Result<bool> {
    let config = Config::load(config).with_context(|| format!("loading {}", config.display()))?;
    let report = wasmpacs::check::run(&config, options).await?;
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, &report)?;
    writeln!(out)?;
    Ok(report.is_whole())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("install SIGTERM handler");
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
