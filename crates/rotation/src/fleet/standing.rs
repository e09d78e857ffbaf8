//! How a run over many tenants stands, read from its manifest and ledgers, for `status`.

use crate::{DeviceState, RotationError, RunDir, TenantRecord};
use std::collections::BTreeMap;
use std::path::Path;

/// The device states `status` counts, in the order it shows them.
pub const COUNTED: [DeviceState; 5] = [
    DeviceState::Rotated,
    DeviceState::Failed,
    DeviceState::Skipped,
    DeviceState::Pending,
    DeviceState::InDoubt,
];

/// One tenant: its manifest record and its ledger's counts (none where it has no ledger yet, or
/// the ledger cannot be read).
#[derive(Debug)]
pub struct TenantStanding {
    pub record: TenantRecord,
    pub devices: usize,
    pub counts: BTreeMap<DeviceState, usize>,
}

#[derive(Debug)]
pub struct Standing {
    pub run: RunDir,
    pub tenants: Vec<TenantStanding>,
}

impl TenantStanding {
    pub fn count(&self, s: DeviceState) -> usize {
        self.counts.get(&s).copied().unwrap_or(0)
    }
}

impl Standing {
    /// Devices in every tenant's plan.
    pub fn devices(&self) -> usize {
        self.tenants.iter().map(|t| t.devices).sum()
    }

    /// Devices in state `s`, over every tenant.
    pub fn count(&self, s: DeviceState) -> usize {
        self.tenants.iter().map(|t| t.count(s)).sum()
    }
}

/// Reads the run directory at `dir` and each of its tenants' ledgers.
pub fn standing(dir: &Path) -> Result<Standing, RotationError> {
    let run = RunDir::open(dir)?;
    let tenants = run
        .manifest()
        .tenants
        .iter()
        .map(|t| {
            let (devices, counts) = match crate::ledger_replay(&run.ledger(t.tenant.tenant_id)) {
                Ok((state, _)) => (
                    state.ids().len(),
                    COUNTED.iter().map(|s| (*s, state.count(*s))).collect(),
                ),
                Err(_) => (0, BTreeMap::new()),
            };
            TenantStanding {
                record: t.clone(),
                devices,
                counts,
            }
        })
        .collect();
    Ok(Standing { run, tenants })
}
