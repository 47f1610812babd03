//! Command implementations behind the `lethe` binary. Each returns an exit code; errors become
//! one readable line in `main`.

pub mod audit;
pub mod client;
pub mod context;
pub mod hold;
pub mod import;
pub mod init;
pub mod report;
pub mod search;
pub mod serve;
pub mod sweep;

/// Arguments of a command that is not built yet.
#[derive(Debug, clap::Args)]
pub struct NotYet {
    /// Ignored.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    rest: Vec<String>,
}

/// Says a command is not built yet; exit code 2.
pub fn not_yet(name: &str) -> u8 {
    eprintln!("lethe {name}: not built yet in this version");
    2
}

/// Logs to stderr; `RUST_LOG` filters (default `info`). Nothing logged carries a plate or secret.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

/// An error and its causes on one line.
pub fn one_line(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let s = cause.to_string().replace('\n', " ");
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
    }
    parts.join(": ")
}
