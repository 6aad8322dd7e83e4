//! The `vectron` command line's client commands, for people and scripts, over the Rust
//! SDK (the gateway's gRPC API):
//!
//! - `vectron login|logout`: a profile in `~/.config/vectron/config.toml` ([`profile`]);
//! - `vectron collections …`, `vectron points …`, `vectron search …` ([`data`]);
//! - `vectron import COLLECTION FILE` (.npy, .fvecs, .jsonl, .csv, .parquet; parallel
//!   batches, a progress bar, `--resume`) ([`import`] over [`sources`]) and `vectron
//!   export` to .jsonl or .parquet ([`export`]);
//! - `vectron keys …`, `vectron users …` ([`accounts`]); `vectron cluster …`
//!   ([`cluster`]).
//!
//! Every command prints an aligned table for people or, with `-o json`, JSON for
//! scripts ([`output`]); a failure prints the server's error code and message on stderr
//! and exits with an [`Exit`] code scripts can tell apart.
//!
//! Layering: `output` and `files` are leaves (with [`Failure`]), `profile` uses `files`;
//! the command modules use them; `import` uses `sources`, which with `export` uses
//! `parquet_file`.

pub mod accounts;
pub mod cluster;
pub mod data;
pub mod export;
pub mod files;
pub mod import;
pub mod output;
pub mod parquet_file;
pub mod profile;
pub mod sources;

use std::fmt;

use clap::{Args, Subcommand};
use vectron_sdk::ErrorCode;

pub use profile::Target;

/// The client commands (the `vectron` binary flattens them beside its server ones).
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Saves a gateway's address and credentials as a profile (~/.config/vectron/config.toml,
    /// owner-only): an API key, or a user's log-in (its tokens are refreshed as needed).
    Login(accounts::LoginArgs),
    /// Ends a profile's session and forgets its credentials.
    Logout(accounts::LogoutArgs),
    /// Collections: list, create, get, status, delete.
    Collections(With<data::CollectionsCommand>),
    /// Points: get, delete, count, scroll.
    Points(With<data::PointsCommand>),
    /// Searches a collection for the nearest neighbours of a vector.
    Search(data::SearchArgs),
    /// Imports points from a .npy, .fvecs, .jsonl or .csv file, in parallel batches.
    Import(import::ImportArgs),
    /// Exports a collection's points to a .jsonl file (what `vectron import` reads).
    Export(export::ExportArgs),
    /// API keys: list, create, revoke.
    Keys(With<accounts::KeysCommand>),
    /// Users (admins): list, create, get, update, delete; and your own password.
    Users(With<accounts::UsersCommand>),
    /// The cluster (admins): status, workers, alerts, drain, remove, resolve.
    Cluster(With<cluster::ClusterCommand>),
}

/// A command group's subcommand, with where to send it.
#[derive(Debug, Args)]
pub struct With<C: Subcommand> {
    #[command(flatten)]
    pub target: Target,
    #[command(subcommand)]
    pub command: C,
}

/// How a command ended, as its exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Ok = 0,
    /// The server failed (INTERNAL, storage) or the command could not finish.
    Failed = 1,
    /// The command line or its input was wrong (clap's own usage errors exit 2 too),
    /// or the server refused the request as invalid (wrong dimension, bad filter, …).
    Invalid = 2,
    /// No such collection, point, user, key, worker or alert.
    NotFound = 3,
    /// Not logged in, a bad credential, or not allowed.
    Denied = 4,
    /// The cluster could not serve it now (unavailable, timed out, rate-limited): try
    /// again later.
    Unavailable = 5,
    /// It conflicts with what exists (already exists, a failed precondition).
    Conflict = 6,
    /// Stopped by Ctrl-C (an import can be resumed).
    Interrupted = 130,
}

/// Why a command failed: the exit status and what to tell the person.
#[derive(Debug)]
pub struct Failure {
    pub exit: Exit,
    pub message: String,
}

impl Failure {
    pub fn new(exit: Exit, message: impl Into<String>) -> Failure {
        Failure { exit, message: message.into() }
    }

    /// The command line or the input file was wrong.
    pub fn invalid(message: impl Into<String>) -> Failure {
        Failure::new(Exit::Invalid, message)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// The exit status a server's error code means.
pub fn exit_for(code: ErrorCode) -> Exit {
    use ErrorCode as C;
    match code {
        C::InvalidArgument
        | C::DimensionMismatch
        | C::InvalidVector
        | C::InvalidPayload
        | C::InvalidFilter
        | C::InvalidPointId
        | C::PayloadTooLarge
        | C::MethodNotAllowed
        | C::Unimplemented => Exit::Invalid,
        C::CollectionNotFound | C::PointNotFound | C::NotFound => Exit::NotFound,
        C::Unauthenticated | C::PermissionDenied | C::TokenExpired => Exit::Denied,
        C::NotLeader
        | C::StaleEpoch
        | C::Unavailable
        | C::DeadlineExceeded
        | C::ShardNotHosted
        | C::ResourceExhausted => Exit::Unavailable,
        C::FailedPrecondition | C::CollectionAlreadyExists | C::AlreadyExists | C::Conflict => Exit::Conflict,
        _ => Exit::Failed,
    }
}

impl From<vectron_sdk::Error> for Failure {
    fn from(e: vectron_sdk::Error) -> Failure {
        Failure::new(exit_for(e.code), format!("{}: {}", e.code.as_str_name(), e.message))
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Failure {
        Failure::new(Exit::Failed, e.to_string())
    }
}

pub type Outcome = Result<(), Failure>;

/// Runs `command`; prints a failure on stderr. Returns the process's exit status.
pub async fn run(command: Command) -> i32 {
    let result = match command {
        Command::Login(a) => accounts::login(a).await,
        Command::Logout(a) => accounts::logout(a).await,
        Command::Collections(w) => data::collections(w.target, w.command).await,
        Command::Points(w) => data::points(w.target, w.command).await,
        Command::Search(a) => data::search(a).await,
        Command::Import(a) => import::run(a).await,
        Command::Export(a) => export::run(a).await,
        Command::Keys(w) => accounts::keys(w.target, w.command).await,
        Command::Users(w) => accounts::users(w.target, w.command).await,
        Command::Cluster(w) => cluster::run(w.target, w.command).await,
    };
    match result {
        Ok(()) => Exit::Ok as i32,
        Err(f) => {
            eprintln!("error: {}", f.message);
            f.exit as i32
        }
    }
}
