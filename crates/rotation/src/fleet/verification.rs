//! `verify` of a run directory: each tenant's ledger looked up in Graph with a sign-in of its
//! own, one tenant at a time; a tenant without a ledger or that cannot be signed in to is named.

use super::{Blocked, Connector};
use crate::{RotationError, RunDir, TenantRecord, VerifyCounts, VerifyOptions, VerifyReport};

/// What became of one tenant.
#[derive(Debug)]
pub enum TenantVerification {
    /// The tenant never got a ledger (blocked or skipped before its plan).
    NoLedger,
    /// It could not be signed in to for reading.
    Blocked(Blocked),
    Verified(VerifyReport),
}

/// Every tenant's verification, in the manifest's order, and the counts of all added up.
#[derive(Debug, Default)]
pub struct FleetVerification {
    pub tenants: Vec<(TenantRecord, TenantVerification)>,
    pub total: VerifyCounts,
}

impl FleetVerification {
    /// Every tenant was verified and every device looked at reports done.
    pub fn all_done(&self) -> bool {
        self.tenants.iter().all(|(_, v)| match v {
            TenantVerification::Verified(r) => r.counts.keys().all(|k| k.is_done()),
            _ => false,
        })
    }
}

/// Verifies each tenant's ledger of `run`; `progress` hears each pass of each tenant.
pub async fn verify_run(
    run: &RunDir,
    connector: &impl Connector,
    o: &VerifyOptions,
    progress: &(dyn Fn(&TenantRecord, &VerifyCounts) + Send + Sync),
) -> Result<FleetVerification, RotationError> {
    let mut out = FleetVerification::default();
    for t in &run.manifest().tenants {
        let ledger = run.ledger(t.tenant.tenant_id);
        let v = if !ledger.exists() {
            TenantVerification::NoLedger
        } else {
            match connector.connect_to_read(&t.tenant, &[]).await {
                Err(b) => TenantVerification::Blocked(b),
                Ok(client) => {
                    let pass = |c: &VerifyCounts| progress(t, c);
                    let report = crate::verify(&client, &ledger, o, &pass).await?;
                    for (k, n) in &report.counts {
                        *out.total.entry(*k).or_default() += n;
                    }
                    TenantVerification::Verified(report)
                }
            }
        };
        out.tenants.push((t.clone(), v));
    }
    Ok(out)
}
