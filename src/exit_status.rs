//! The process exit codes outside scripts rely on, decided here at the binary's edge only.

use rotation::{GraphClientError, RotationError, RunOutcome, VerifyCounts};
use std::process::ExitCode;

/// How a command ended, as the shell sees it. Ordered by severity, so the worse of two is `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ExitStatus {
    /// Every device reached a final success state (or the command had nothing to report).
    Success,
    /// Some devices failed or are still pending; the ledger says which.
    Incomplete,
    /// Bad usage or input: nothing was sent.
    Usage,
    /// Authentication or permission: nothing was sent (or the run stopped, resumable).
    Auth,
    /// The ledger could not be written: the run stopped, resumable once space is back.
    LedgerWrite,
    /// Another run holds the ledger directory (`--ledger-dir`): nothing was sent.
    Busy,
    /// Interrupted (Ctrl-C): resumable.
    Interrupted,
}

impl ExitStatus {
    pub fn code(self) -> u8 {
        match self {
            ExitStatus::Success => 0,
            ExitStatus::Incomplete => 1,
            ExitStatus::Usage => 2,
            ExitStatus::Auth => 3,
            ExitStatus::LedgerWrite => 4,
            ExitStatus::Busy => 5,
            ExitStatus::Interrupted => 130,
        }
    }

    /// The status an engine error ends the process with.
    pub fn of_error(e: &RotationError) -> Self {
        match e {
            RotationError::LedgerWrite { .. } => ExitStatus::LedgerWrite,
            RotationError::DirectoryBusy(_) => ExitStatus::Busy,
            RotationError::Graph(g) => Self::of_graph(g),
            RotationError::MissingPermission { .. } => ExitStatus::Auth,
            RotationError::StoppedBeforeSending => ExitStatus::Interrupted,
            RotationError::Source { .. } | RotationError::Io { .. } => ExitStatus::Incomplete,
            _ if e.is_input() => ExitStatus::Usage,
            _ => ExitStatus::Incomplete,
        }
    }

    fn of_graph(e: &GraphClientError) -> Self {
        match e {
            GraphClientError::Token(_) | GraphClientError::TokenExpired => ExitStatus::Auth,
            GraphClientError::Http {
                status: 401 | 403, ..
            } => ExitStatus::Auth,
            GraphClientError::InvalidUrl { .. } => ExitStatus::Usage,
            _ => ExitStatus::Incomplete,
        }
    }

    /// A finished, interrupted or stopped run.
    pub fn of_run(outcome: &RunOutcome) -> Self {
        let c = &outcome.counters;
        if outcome.interrupted() {
            ExitStatus::Interrupted
        } else if outcome.auth_stopped().is_some() {
            ExitStatus::Auth
        } else if c.failed == 0 && c.pending == 0 && c.in_doubt == 0 {
            ExitStatus::Success
        } else {
            ExitStatus::Incomplete
        }
    }

    /// `verify`: success only when every device looked at reports done.
    pub fn of_verify(counts: &VerifyCounts) -> Self {
        if counts.keys().all(|k| k.is_done()) {
            ExitStatus::Success
        } else {
            ExitStatus::Incomplete
        }
    }
}

impl From<ExitStatus> for ExitCode {
    fn from(s: ExitStatus) -> Self {
        ExitCode::from(s.code())
    }
}
