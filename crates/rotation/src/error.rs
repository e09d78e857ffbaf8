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
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl RotationError {
    /// Exit code per CONTRACT.md: 2 bad usage/input, 3 authentication or permission.
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
            _ => 1,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        RotationError::Io {
            path: path.into(),
            source,
        }
    }
}
