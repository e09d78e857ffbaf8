//! The engine's errors, each mapping to one exit code of the CLI contract.

use std::path::PathBuf;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum RotationError {
    /// Bad input: the place is named; nothing was sent.
    #[error("{0}")]
    Input(String),
    #[error("{path}: {message}")]
    Ledger { path: PathBuf, message: String },
    #[error("the ledger {0} is in use by another intune-rotate process (one process per ledger)")]
    LedgerLocked(PathBuf),
    #[error("{0}")]
    Mismatch(String),
    /// Authentication or permission failure found before sending.
    #[error("{0}")]
    Auth(String),
    /// A Graph device listing failed: nothing was sent.
    #[error("{0}")]
    Source(String),
    #[error(transparent)]
    Graph(#[from] graph_client::GraphClientError),
    /// The ledger could not be written (a full disk, an I/O error): the run stops at once. Rows
    /// written before stand, and no request left without its `sent` row on disk.
    #[error("{}", write_failure(path, error, *plan_done))]
    LedgerWrite {
        path: PathBuf,
        /// Not `source`: the message already names it, and the chain would print it twice.
        error: std::io::Error,
        plan_done: bool,
    },
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl RotationError {
    /// Exit code per CONTRACT.md: 2 bad usage/input, 3 authentication or permission, 4 the ledger
    /// could not be written.
    pub fn exit_code(&self) -> u8 {
        match self {
            RotationError::Input(_)
            | RotationError::Mismatch(_)
            | RotationError::LedgerLocked(_) => 2,
            RotationError::Ledger { .. } => 2,
            RotationError::Auth(_) => 3,
            RotationError::Graph(
                graph_client::GraphClientError::Token(_)
                | graph_client::GraphClientError::TokenExpired,
            ) => 3,
            RotationError::Graph(graph_client::GraphClientError::Http {
                status: 401 | 403,
                ..
            }) => 3,
            RotationError::Graph(graph_client::GraphClientError::InvalidUrl { .. }) => 2,
            RotationError::LedgerWrite { .. } => 4,
            _ => 1,
        }
    }

    pub(crate) fn write(path: &std::path::Path, error: std::io::Error, plan_done: bool) -> Self {
        RotationError::LedgerWrite {
            path: path.to_path_buf(),
            error,
            plan_done,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        RotationError::Io {
            path: path.into(),
            source,
        }
    }
}

fn write_failure(path: &std::path::Path, e: &std::io::Error, plan_done: bool) -> String {
    let p = path.display();
    let next = if plan_done {
        format!(
            "then `intune-rotate resume --ledger {p}` goes on from there (devices whose answer could not be recorded are looked up before anything is sent again)"
        )
    } else {
        "then run the same `intune-rotate rotate` command again: nothing was sent, and the unfinished plan is started afresh".to_string()
    };
    format!(
        "cannot write the ledger {p}: {e}. The run stopped: every row written before stands, and no request left without its `sent` row on disk. Free space (or fix the disk), {next}"
    )
}
