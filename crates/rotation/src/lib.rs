//! The rotation engine as a library: device sources → plan → rate-gated dispatcher → write-ahead
//! ledger; resume, status and export. Everything the CLI does is callable from here.

mod action;
mod error;
mod export;
mod ledger;
mod plan;
mod retry;
mod run;
mod source;
mod throttle;

pub use action::Action;
pub use error::RotationError;
pub use export::{ExportFormat, ExportRow, export};
pub use graph_batch::Quota;
pub use ledger::{
    DeviceState, LEDGER_VERSION, Ledger, LedgerState, RunHeader, replay_file as ledger_replay,
};
pub use plan::{CheckedSource, Plan, PlanReport};
pub use run::{
    Counters, DispatchOptions, InDoubt, Progress, RotateRequest, RunOutcome, StopSignal, resume,
    rotate,
};
pub use source::{CsvSource, SourceDevice};
pub use throttle::RateGate;
