//! What a run over many tenants tells its caller as it goes, as typed events: the caller words
//! them (a bar, log lines, a line per tenant).

use super::TenantEnd;
use crate::{Counters, TenantEntry};
use uuid::Uuid;

pub trait Reporter: Send + Sync {
    /// A tenant's counters changed while it sends.
    fn progress(&self, tenant: Uuid, counters: &Counters);

    /// What a tenant's plan said of its source and records, in order.
    fn plan_notes(&self, tenant: &TenantEntry, notes: &[String]) {
        let _ = (tenant, notes);
    }

    /// A tenant ended in this invocation; its manifest record is already written.
    fn tenant_ended(&self, tenant: &TenantEntry, end: &TenantEnd);
}
