//! The `lethe` binary: parses arguments, sets up logging, calls the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "lethe", version, about = "Retention-enforcing encrypted store for ALPR plate reads")]
struct Cli {
    /// Configuration file (default: ./lethe.toml if present; env LETHE_CONFIG).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gRPC server (default 127.0.0.1:50051, data in ./lethe-data; another directory:
    /// LETHE_DATA_DIR or `store.path` in lethe.toml, see lethe.toml.example).
    Serve(lethe::cli::serve::Args),
    /// Create keys, set bucket lifecycle rules, record the approved policy baseline.
    Init(lethe::cli::init::Args),
    /// Stream reads from a file to a server.
    ///
    /// Exit 0: every row stored (or already stored); 3: some rows rejected or unparseable (listed
    /// by row number, counted by reason); 1: the import failed (unacknowledged batches must be
    /// re-sent; re-running the same import is idempotent, except with --rebase-to-now, whose
    /// shift changes with the time it is run).
    Import(lethe::cli::import::Args),
    /// Search a plate (client).
    ///
    /// Every search, allowed or denied, is recorded in the ledger before anything is returned.
    /// Exit 0: done (even with no results); 2: refused or failed, with the gRPC status code and
    /// message on one line on stderr.
    Search(lethe::cli::search::Args),
    /// Delete expired reads, destroy expired day keys, write deletion proofs (cron).
    Sweep(lethe::cli::sweep::Args),
    /// Legal holds: place, release, list.
    Hold(lethe::cli::hold::Args),
    /// The ledger: verify, show, prove, checkpoint.
    Ledger(lethe::cli::ledger::Args),
    /// Daily settings audit (cron); exits non-zero on findings.
    Audit(lethe::cli::audit::Args),
    /// Access and transparency reports.
    Report(lethe::cli::report::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    lethe::cli::init_tracing();
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("lethe: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let cfg = cli.config.as_deref();
    let result: anyhow::Result<u8> = rt.block_on(async move {
        match cli.command {
            Command::Serve(a) => lethe::cli::serve::run(cfg, a).await,
            Command::Init(a) => lethe::cli::init::run(cfg, a).await,
            Command::Import(a) => lethe::cli::import::run(cfg, a).await,
            Command::Search(a) => lethe::cli::search::run(cfg, a).await,
            Command::Sweep(a) => lethe::cli::sweep::run(cfg, a).await,
            Command::Hold(a) => lethe::cli::hold::run(cfg, a).await,
            Command::Ledger(a) => lethe::cli::ledger::run(cfg, a).await,
            Command::Audit(a) => lethe::cli::audit::run(cfg, a).await,
            Command::Report(a) => lethe::cli::report::run(cfg, a).await,
        }
    });
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            // One readable line: the error and its causes, joined.
            eprintln!("lethe: {}", lethe::cli::one_line(&e));
            ExitCode::from(1)
        }
    }
}
