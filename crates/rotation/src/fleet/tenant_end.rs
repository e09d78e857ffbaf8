//! How one tenant ended in one invocation of a run over many tenants.

use super::Blocked;
use crate::{Counters, RunOutcome, TenantState};

#[derive(Debug)]
pub enum TenantEnd {
    /// A stop came before it began: it waits for `resume`.
    NotStarted,
    /// Nothing of the source is in this tenant (a group it does not have, an input with no row
    /// of it).
    Skipped { why: String },
    /// Stopped before anything of it was sent.
    Blocked(Blocked),
    /// Planned and sent, or resumed: how that run ended.
    Ran(Box<RunOutcome>),
}

impl TenantEnd {
    /// Where the tenant stands in the manifest after this end.
    pub fn state(&self) -> TenantState {
        match self {
            TenantEnd::NotStarted => TenantState::Waiting,
            TenantEnd::Skipped { .. } => TenantState::Skipped,
            TenantEnd::Blocked(_) => TenantState::Blocked,
            TenantEnd::Ran(o) if o.is_complete() => TenantState::Done,
            TenantEnd::Ran(_) => TenantState::Started,
        }
    }

    /// The reason the manifest keeps: the service's words for a block or a stop.
    pub fn reason(&self) -> Option<&str> {
        match self {
            TenantEnd::NotStarted => None,
            TenantEnd::Skipped { why } => Some(why),
            TenantEnd::Blocked(b) => Some(&b.why),
            TenantEnd::Ran(o) => o.auth_stopped(),
        }
    }

    /// Stopped by authentication: at sign-in, or mid-run when a token stopped working.
    pub fn is_auth(&self) -> bool {
        match self {
            TenantEnd::Blocked(b) => b.cause.is_auth(),
            TenantEnd::Ran(o) => o.auth_stopped().is_some(),
            _ => false,
        }
    }

    /// A stop (Ctrl-C, a signal) ended or prevented this tenant's sending.
    pub fn interrupted(&self) -> bool {
        match self {
            TenantEnd::NotStarted => true,
            TenantEnd::Ran(o) => o.interrupted(),
            _ => false,
        }
    }

    pub fn counters(&self) -> Option<&Counters> {
        match self {
            TenantEnd::Ran(o) => Some(&o.counters),
            _ => None,
        }
    }
}
