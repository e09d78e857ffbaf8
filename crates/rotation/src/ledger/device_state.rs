//! The one state machine of a device, and the one table from a row's type to what it does to its
//! device: every reader of a ledger and the run itself go through these, so none can disagree.

use super::Outcome;
use serde::{Deserialize, Serialize};

/// Where each device stands after replaying the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceState {
    Pending,
    InDoubt,
    Rotated,
    Failed,
    Skipped,
}

impl DeviceState {
    pub fn name(self) -> &'static str {
        match self {
            DeviceState::Pending => "pending",
            DeviceState::InDoubt => "in_doubt",
            DeviceState::Rotated => "rotated",
            DeviceState::Failed => "failed",
            DeviceState::Skipped => "skipped",
        }
    }

    pub fn is_final(self) -> bool {
        matches!(
            self,
            DeviceState::Rotated | DeviceState::Failed | DeviceState::Skipped
        )
    }

    /// Where a device stands after a row about it. Rows that say nothing of its sending leave it
    /// where it is.
    pub fn after(self, step: Step) -> DeviceState {
        match step {
            Step::Planned => DeviceState::Pending,
            Step::Skipped => DeviceState::Skipped,
            Step::Sent => DeviceState::InDoubt,
            Step::Outcome(Outcome::Rotated) => DeviceState::Rotated,
            Step::Outcome(Outcome::Failed | Outcome::Abandoned) => DeviceState::Failed,
            Step::Outcome(Outcome::Retry) => DeviceState::Pending,
            Step::Noted => self,
        }
    }
}

/// What a row does to its device: all the state machine needs of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Step {
    Planned,
    Skipped,
    Sent,
    Outcome(Outcome),
    /// Verified, a session, the header, the end of the plan: no change of state.
    #[default]
    Noted,
}

/// A row's `type`, as the ledger spells it: the fast readers read this field alone to know what a
/// line does, and [`super::Row`]'s tags are the same names (a test holds them together).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RowKind {
    Run,
    Planned,
    Skipped,
    PlanDone,
    Sent,
    Outcome,
    Verified,
    Session,
}

impl RowKind {
    /// What a row of this kind does to its device; `None` for an outcome row without its result,
    /// which only the whole row's parse can name the fault of.
    pub fn step(self, result: Option<Outcome>) -> Option<Step> {
        Some(match self {
            RowKind::Planned => Step::Planned,
            RowKind::Skipped => Step::Skipped,
            RowKind::Sent => Step::Sent,
            RowKind::Outcome => Step::Outcome(result?),
            RowKind::Run | RowKind::PlanDone | RowKind::Verified | RowKind::Session => Step::Noted,
        })
    }

    /// Whether rows of this kind name a device.
    pub fn has_device(self) -> bool {
        matches!(
            self,
            RowKind::Planned
                | RowKind::Skipped
                | RowKind::Sent
                | RowKind::Outcome
                | RowKind::Verified
        )
    }
}
