//! What the client commands share: the server address, the bearer token, the connection, and how
//! a refused call is printed.

use std::path::Path;

use anyhow::Context as _;
use tonic::transport::{Channel, Endpoint};
use tonic::Code;

use crate::config::Config;
use crate::policy::token_for;

/// Connection arguments of every client command.
#[derive(Debug, Clone, clap::Args)]
pub struct ClientArgs {
    /// The lethe server.
    #[arg(long, env = "LETHE_SERVER", default_value = "http://127.0.0.1:50051")]
    pub server: String,
    /// Bearer token (prefer the environment variable: command lines are visible to other users).
    #[arg(long, env = "LETHE_TOKEN", hide_env_values = true, conflicts_with = "as_principal")]
    pub token: Option<String>,
    /// Development only: use this principal's token from the development token file that
    /// `lethe serve` writes on first start (`{keys dir}/dev-tokens.json`).
    #[arg(long = "as", value_name = "ID")]
    pub as_principal: Option<String>,
}

impl ClientArgs {
    /// The bearer token: `--token`/`LETHE_TOKEN`, or `--as ID` from the development token file.
    pub fn token(&self, config: Option<&Path>) -> anyhow::Result<String> {
        if let Some(id) = &self.as_principal {
            let cfg = Config::load(config)?;
            let path = cfg.keys.dev_tokens_path();
            let token = token_for(id, &path)
                .with_context(|| format!("--as {id} (the development token file is written by `lethe serve` on first start)"))?;
            return Ok(token.expose().to_string());
        }
        match &self.token {
            Some(t) if !t.trim().is_empty() => Ok(t.trim().to_string()),
            _ => anyhow::bail!("no token: pass --token, set LETHE_TOKEN, or (development) --as ID"),
        }
    }

    /// Connects to the server.
    pub async fn connect(&self) -> anyhow::Result<Channel> {
        let ep = Endpoint::from_shared(self.server.clone()).with_context(|| format!("--server {}: not a URL", self.server))?;
        ep.tcp_nodelay(true)
            .initial_stream_window_size(crate::api::server::STREAM_WINDOW)
            .initial_connection_window_size(crate::api::server::CONNECTION_WINDOW)
            .connect()
            .await
            .with_context(|| format!("cannot connect to {}", self.server))
    }
}

/// Adds the bearer token to a request.
pub fn authed<T>(msg: T, token: &str) -> anyhow::Result<tonic::Request<T>> {
    let mut r = tonic::Request::new(msg);
    let v = format!("Bearer {token}")
        .parse()
        .map_err(|_| anyhow::anyhow!("the token contains characters not allowed in a header"))?;
    r.metadata_mut().insert("authorization", v);
    Ok(r)
}

/// The canonical gRPC name of a status code (`PERMISSION_DENIED`).
pub fn code_name(c: Code) -> &'static str {
    match c {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// A refused call on one line: `PERMISSION_DENIED: denied by rule …`.
pub fn status_line(s: &tonic::Status) -> String {
    format!("{}: {}", code_name(s.code()), s.message().replace('\n', " "))
}
