//! The audit logs' own budget (graph-facts §12): Entra answers 5 requests per 10 s per app per
//! tenant, and 122 per 10 s per app across tenants, apart from Intune's limits. Each tenant's
//! reads pass its own gate, and every tenant of a process read by one app shares that app's gate.

use crate::RateGate;
use graph_batch::Quota;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// The directory audit log's limit per app in one tenant.
pub const PER_TENANT: Quota = Quota {
    count: 5,
    window: Duration::from_secs(10),
};

/// The directory audit log's limit per app across every tenant it reads.
pub const ACROSS_TENANTS: Quota = Quota {
    count: 122,
    window: Duration::from_secs(10),
};

/// One tenant's audit reads: its own gate, and the app's gate shared across tenants.
#[derive(Debug, Clone)]
pub struct AuditGate {
    tenant: Arc<RateGate>,
    app: Arc<RateGate>,
}

impl AuditGate {
    /// A gate for one tenant read by `app` (the app's id, or empty where it is not known).
    pub fn new(app: &str) -> Self {
        AuditGate {
            // A second of margin in a 10 s window: the log's reads are few, and a request that
            // arrives late must not meet the window's first one still in it.
            tenant: Arc::new(RateGate::new(PER_TENANT, 0.1, 1)),
            app: app_gate(app),
        }
    }

    /// Waits until one request may go.
    pub async fn acquire(&self) {
        self.app.acquire_batch().await;
        self.tenant.acquire_batch().await;
    }

    /// Learns one request's round trip: a jittery service widens the gates' margin.
    pub fn observe(&self, rtt: Duration) {
        self.tenant.observe_round_trip(rtt);
        self.app.observe_round_trip(rtt);
    }

    /// The service said to wait: nothing more goes to this tenant's log before then.
    pub fn pause(&self, wait: Duration) {
        self.tenant.pause(wait);
    }
}

/// The process's one gate per app: every tenant's reads by that app count in it.
fn app_gate(app: &str) -> Arc<RateGate> {
    static GATES: OnceLock<Mutex<HashMap<String, Arc<RateGate>>>> = OnceLock::new();
    let mut gates = GATES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    Arc::clone(
        gates
            .entry(app.to_ascii_lowercase())
            .or_insert_with(|| Arc::new(RateGate::new(ACROSS_TENANTS, 0.05, 1))),
    )
}
