//! Command implementations behind the `lethe` binary. Each returns an exit code; errors become
//! one readable line in `main`.

pub mod audit;
pub mod client;
pub mod context;
pub mod hold;
pub mod import;
pub mod init;
pub mod ledger;
pub mod report;
pub mod search;
pub mod serve;
pub mod sweep;

/// Logs to stderr; `RUST_LOG` filters (default `info`). Nothing logged carries a plate or secret.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour only on a terminal (and never with NO_COLOR): logs sent to a file stay plain.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()) && std::env::var_os("NO_COLOR").is_none())
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
