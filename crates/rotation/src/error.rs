//! The engine's errors as kinds with their context (file, line, value), so callers and tests
//! match on what went wrong rather than on message text. Exit codes are the binary's business.

use crate::Action;
use std::path::PathBuf;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum RotationError {
    /// An input file (device list, exclusions) cannot be used at `line`: nothing was sent.
    #[error("{source_name}: {}{problem}", at_line(*line))]
    BadInput {
        source_name: String,
        line: Option<u64>,
        problem: String,
    },
    /// A device list that holds only Entra device ids, where the actions need Intune's.
    #[error("{source_name}: {}{}the rotate actions need the Intune managed device id (column `id`, `Device ID` or `managedDeviceId` in Intune's export)", at_line(Some(*line)), column.as_ref().map_or("only an Entra (Azure AD) device id; ".to_string(), |c| format!("found column {c:?}, which holds Entra (Azure AD) device ids, not Intune managed device ids; ")))]
    EntraIdsOnly {
        source_name: String,
        line: u64,
        /// The column that holds them, when the header shows it.
        column: Option<String>,
    },
    /// A run directory that already holds a run.
    #[error("{}: this run directory already holds a run: continue it, or choose a new directory", .0.display())]
    RunDirExists(PathBuf),
    /// A Graph device listing failed part-way: nothing was sent.
    #[error("listing devices failed after {read} device(s): {error}; nothing was sent")]
    SourceCut { read: usize, error: String },
    /// An input file does not exist.
    #[error("{0}: no such file")]
    NoSuchInput(String),
    /// Rows whose managed device id is not a GUID (the first few, named by line).
    #[error("{source_name}: {count} row(s) with an invalid managed device id (nothing was sent):\n{}{}", samples.join("\n"), more(*count, samples.len()))]
    InvalidIds {
        source_name: String,
        count: usize,
        samples: Vec<String>,
    },
    /// A header and no rows.
    #[error("{0}: no devices in the input (a header but no rows)")]
    EmptySource(String),
    /// `--strict` matching left rows without exactly one device.
    #[error("{input}: {} row(s) could not be matched to one device (strict matching; nothing was sent):\n  {}", problems.len(), problems.join("\n  "))]
    Unmatched {
        input: String,
        problems: Vec<String>,
    },
    /// `rotate` never writes over a ledger that holds a finished plan or anything sent.
    #[error("{}: the ledger already exists: continue it, or choose a new file", .0.display())]
    LedgerExists(PathBuf),
    /// `resume` of a ledger whose plan was cut short: nothing was sent from it.
    #[error("{}: the plan in this ledger was never finished (the run stopped while planning) and nothing was sent from it: the same run again plans this ledger afresh", .0.display())]
    UnfinishedPlan(PathBuf),
    /// A ledger that cannot be read as one, at `line`.
    #[error("{}: {}{message}", path.display(), at_line(*line))]
    Ledger {
        path: PathBuf,
        line: Option<u64>,
        message: String,
    },
    #[error("the ledger {} is in use by another intune-rotate process (one process per ledger)", .0.display())]
    LedgerLocked(PathBuf),
    /// Another run holds the ledger directory: a scheduled run that started before the last ended.
    #[error("another intune-rotate run is going in {}: this run did not start, and nothing was sent", .0.display())]
    DirectoryBusy(PathBuf),
    /// `resume` (or another command that continues a run) named a ledger that is not there.
    #[error("there is no ledger at {}: nothing to resume there (check the path; `rotate` writes a new one)", .0.display())]
    NoLedger(PathBuf),
    /// The plan's policy was built for another action than the run header's.
    #[error("the policy is for {policy}, the run for {run}")]
    ActionMismatch { policy: Action, run: Action },
    /// The plan would send more devices than `--max-devices` allows: nothing was sent and the new
    /// ledger was removed.
    #[error(
        "the plan would send {to_send} device(s), more than the cap of {max}; nothing was sent"
    )]
    TooManyDevices { to_send: usize, max: usize },
    /// The admin said no at the confirmation: nothing was sent and the new ledger was removed.
    #[error("cancelled; nothing was sent")]
    Declined,
    /// Sending, or reading a source from Graph, needs a connection (only a dry run of a file
    /// plans without one).
    #[error("a Graph connection is needed to send, or to read this source")]
    NoConnection,
    /// A stop was asked for while planning: nothing was written or sent.
    #[error("stopped before anything was sent")]
    StoppedBeforeSending,
    /// A Graph device listing failed: nothing was sent.
    #[error("{0}")]
    Source(String),
    /// A `--query` filter the client cannot check itself: nothing was sent.
    #[error("the filter {filter:?}: column {column}: {message}\n  {filter}\n  {caret}^\nnothing was sent", caret = " ".repeat(column.saturating_sub(1)))]
    BadFilter {
        filter: String,
        column: usize,
        message: String,
    },
    /// A display name that names no item of its kind, or several: nothing was sent.
    #[error("{}", bad_name(kind, name, candidates, *several))]
    BadName {
        kind: &'static str,
        name: String,
        candidates: Vec<String>,
        several: bool,
    },
    /// The token lacks a permission the source needs, found from what Graph answered: nothing
    /// was sent.
    #[error(
        "missing permission {}: {what}; grant it to the app (Entra admin center > App registrations > API permissions) and grant admin consent. Nothing was sent",
        crate::Permission::joined(permissions, "and")
    )]
    MissingPermission {
        /// All of them are needed.
        permissions: Vec<crate::Permission>,
        what: String,
    },
    /// A view-driven run asked for a longer window than the audit log keeps: views before the
    /// log's start would be missed without a word. Nothing was sent.
    #[error(
        "views since {asked} were asked for, but {log} keeps {kept_days} days on this tenant{assumed}: reads before then cannot be seen, so nothing was sent (ask for {kept_days} days or less)",
        asked = humantime::format_duration(*asked),
        assumed = if *assumed { " (its licence could not be read, so the Free tier's 7 days are assumed)" } else { "" }
    )]
    ViewsBeyondRetention {
        asked: std::time::Duration,
        log: &'static str,
        kept_days: u32,
        assumed: bool,
    },
    /// No audit activity of this tenant is known to record a view of the action's secret.
    #[error(
        "none of Intune's audit activities on this tenant is known to record a {secret} view (its activity types: {}); name the activity to read, and nothing was sent",
        if known.is_empty() { "none listed".to_string() } else { known.join(", ") }
    )]
    NoViewActivity {
        secret: &'static str,
        known: Vec<String>,
    },
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
    /// Writing a device list or an export to `what` failed.
    #[error("writing {what}: {message}")]
    Output { what: String, message: String },
    /// The OS error is in the message, not the chain: `{:#}` would print it twice.
    #[error("I/O error on {}: {error}", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
}

impl RotationError {
    /// Sign-in or permission: a token refused, expired or lacking what the run needs.
    pub fn is_auth(&self) -> bool {
        use graph_client::GraphClientError as G;
        match self {
            RotationError::MissingPermission { .. } => true,
            RotationError::Graph(G::Token(_) | G::TokenExpired) => true,
            RotationError::Graph(G::Http { status, .. }) => matches!(status, 401 | 403),
            _ => false,
        }
    }

    /// Bad usage or input, found before anything was sent.
    pub fn is_input(&self) -> bool {
        matches!(
            self,
            RotationError::BadInput { .. }
                | RotationError::NoSuchInput(_)
                | RotationError::InvalidIds { .. }
                | RotationError::EmptySource(_)
                | RotationError::Unmatched { .. }
                | RotationError::LedgerExists(_)
                | RotationError::EntraIdsOnly { .. }
                | RotationError::RunDirExists(_)
                | RotationError::UnfinishedPlan(_)
                | RotationError::Ledger { .. }
                | RotationError::LedgerLocked(_)
                | RotationError::NoLedger(_)
                | RotationError::ActionMismatch { .. }
                | RotationError::NoConnection
                | RotationError::Declined
                | RotationError::TooManyDevices { .. }
                | RotationError::BadFilter { .. }
                | RotationError::BadName { .. }
                | RotationError::ViewsBeyondRetention { .. }
                | RotationError::NoViewActivity { .. }
        )
    }

    /// A listing of `what` failed before anything was sent; auth failures keep their kind.
    pub(crate) fn listing(what: &str, e: graph_client::GraphClientError) -> Self {
        if e.is_auth() {
            RotationError::Graph(e)
        } else {
            RotationError::Source(format!("listing {what} failed: {e}; nothing was sent"))
        }
    }

    pub(crate) fn bad_input(
        source: impl Into<String>,
        line: Option<u64>,
        problem: impl Into<String>,
    ) -> Self {
        RotationError::BadInput {
            source_name: source.into(),
            line,
            problem: problem.into(),
        }
    }

    pub(crate) fn ledger(
        path: &std::path::Path,
        line: Option<u64>,
        message: impl Into<String>,
    ) -> Self {
        RotationError::Ledger {
            path: path.to_path_buf(),
            line,
            message: message.into(),
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
            error: source,
        }
    }
}

fn at_line(line: Option<u64>) -> String {
    line.map(|l| format!("line {l}: ")).unwrap_or_default()
}

fn bad_name(kind: &str, name: &str, candidates: &[String], several: bool) -> String {
    if several {
        format!(
            "{} {kind}s are named {name:?}; give the id of one (nothing was sent):\n  {}",
            candidates.len(),
            candidates.join("\n  ")
        )
    } else {
        format!("no {kind} is named {name:?} (nothing was sent)")
    }
}

fn more(count: usize, shown: usize) -> String {
    if count > shown {
        format!("\n  ... and {} more", count - shown)
    } else {
        String::new()
    }
}

fn write_failure(path: &std::path::Path, e: &std::io::Error, plan_done: bool) -> String {
    let next = if plan_done {
        "then resume it: devices whose answer could not be recorded are looked up before anything is sent again"
    } else {
        "then run it again: nothing was sent, and the unfinished plan is started afresh"
    };
    format!(
        "cannot write the ledger {}: {e}. The run stopped: every row written before stands, and no request left without its `sent` row on disk. Free space (or fix the disk), {next}",
        path.display()
    )
}
