//! A run over many tenants, for MSPs: one multi-tenant app, consented in each customer tenant.
//! Each tenant is planned by the one plan sequence ([`Job`]) into its own ordinary ledger and
//! sent at its own ceiling (Intune's limits are per app per tenant), while the options' global
//! gate holds Graph's per-app limit across tenants. A tenant that cannot be signed in to or read
//! is blocked with the service's reason, and the others go on.
//!
//! Invariant: one task writes the manifest, each tenant's record as that tenant ends. Each tenant
//! is worked in a task of its own, so that tenants plan and send on every core.

mod connector;
mod input_split;
mod listing;
mod reporter;
mod standing;
mod tenant_end;
mod verification;

pub use connector::{BlockCause, Blocked, Connector, Need, Session};
pub use input_split::{InputSplit, input_file};
pub use listing::{TenantListing, list_devices};
pub use reporter::Reporter;
pub use standing::{COUNTED, Standing, TenantStanding, standing};
pub use tenant_end::TenantEnd;
pub use verification::{FleetVerification, TenantVerification, verify_run};

use crate::{
    DispatchOptions, Job, OpenSource, Policy, ResultsTiming, RotationError, RunDir, RunOutcome,
    RunSpec, StopSignal, TenantEntry, TenantState,
};
use std::path::PathBuf;
use std::sync::Arc;
use tracing::Instrument;

/// What every tenant of a run shares.
pub struct Fleet<C> {
    pub spec: Arc<RunSpec>,
    /// The spec's policy, its exclusions read once: each tenant plans with a copy.
    pub policy: Policy,
    /// The sending's options, a gate across tenants among them.
    pub options: DispatchOptions,
    /// Tenants worked at once.
    pub concurrency: usize,
    pub connector: Arc<C>,
    pub reporter: Arc<dyn Reporter>,
    /// After a stop no tenant starts: those waiting stay waiting for `resume`.
    pub stop: StopSignal,
}

/// Tenants signing in and planning at once. A tenant's listings and plan are the most memory it
/// ever holds, so however many are in flight, only this many hold them together: 2,000 tenants
/// start in under a minute at under 1 GB, where all at once peaked at 1.5 GB (docs/BENCHMARKS.md).
const STARTING: usize = 500;

impl<C> std::fmt::Debug for Fleet<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet")
            .field("spec", &self.spec)
            .field("concurrency", &self.concurrency)
            .finish_non_exhaustive()
    }
}

/// How an invocation over many tenants ended, tenant by tenant.
#[derive(Debug)]
pub struct FleetOutcome {
    pub run: RunDir,
    /// The tenants worked in this invocation, in the order they ended.
    pub ends: Vec<(TenantEntry, TenantEnd)>,
}

/// The run's end as a whole, which the caller turns into an exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FleetEnd {
    /// A stop ended the invocation: `resume` goes on.
    Interrupted,
    /// Every tenant of the run is blocked by authentication.
    AllBlockedByAuth,
    /// Every tenant of the run is done.
    Done,
    /// Some tenants are not done (blocked, skipped, stopped part-way).
    Incomplete,
}

impl FleetOutcome {
    pub fn end(&self) -> FleetEnd {
        let tenants = &self.run.manifest().tenants;
        if self.ends.iter().any(|(_, e)| e.interrupted()) {
            FleetEnd::Interrupted
        } else if !tenants.is_empty()
            && tenants
                .iter()
                .all(|t| t.state == TenantState::Blocked && t.auth)
        {
            FleetEnd::AllBlockedByAuth
        } else if tenants.iter().all(|t| t.state == TenantState::Done) {
            FleetEnd::Done
        } else {
            FleetEnd::Incomplete
        }
    }
}

/// The tenants of `run` that are not done, which `resume` works (blocked ones are tried again).
pub fn open_tenants(run: &RunDir) -> Vec<TenantEntry> {
    run.manifest()
        .tenants
        .iter()
        .filter(|t| t.state != TenantState::Done)
        .map(|t| t.tenant.clone())
        .collect()
}

impl<C: Connector + Send + 'static> Fleet<C> {
    /// Works `tenants` of `run`, up to the concurrency at once: each resumed from its ledger
    /// where its plan is done, else signed in to, planned and sent. A tenant waiting its turn is
    /// its entry only; it is planned when it starts.
    pub async fn run(self, mut run: RunDir, tenants: Vec<TenantEntry>) -> FleetOutcome {
        let mut waiting = tenants.into_iter();
        let me = Arc::new(self);
        let starting = Arc::new(tokio::sync::Semaphore::new(STARTING));
        let mut working = tokio::task::JoinSet::new();
        let mut start = |working: &mut tokio::task::JoinSet<_>, run: &RunDir| {
            let Some(entry) = waiting.next() else {
                return;
            };
            let ledger = run.ledger(entry.tenant_id);
            let (me, starting) = (me.clone(), starting.clone());
            working.spawn(
                async move {
                    let end = me.one_tenant(&entry, ledger, &starting).await;
                    (entry, end)
                }
                .in_current_span(),
            );
        };
        for _ in 0..me.concurrency.max(1) {
            start(&mut working, &run);
        }
        let mut ends = Vec::new();
        while let Some(joined) = working.join_next().await {
            // A tenant's task is never aborted: a join error is its panic, which goes on up.
            let (entry, end) = joined.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
            start(&mut working, &run);
            let advice = match &end {
                TenantEnd::Blocked(b) => Some(me.connector.advice(&entry, b.cause)),
                _ => None,
            };
            let reason = end.reason().map(str::to_string);
            if let Err(e) = run.set(entry.tenant_id, end.state(), reason, advice, end.is_auth()) {
                tracing::error!("{e}");
            }
            me.reporter.tenant_ended(&entry, &end);
            ends.push((entry, end));
        }
        FleetOutcome { run, ends }
    }

    /// One tenant: resumed if its plan is done, else signed in to, listed, planned and sent.
    async fn one_tenant(
        &self,
        entry: &TenantEntry,
        ledger: PathBuf,
        starting: &tokio::sync::Semaphore,
    ) -> TenantEnd {
        // Held while signing in and planning, let go as the sending begins.
        let start = starting
            .acquire()
            .await
            .expect("the semaphore is never closed");
        if self.stop.requested() {
            return TenantEnd::NotStarted;
        }
        let planned = crate::ledger_replay(&ledger).is_ok_and(|(state, _)| state.plan_done);
        let mut source_spec = self.spec.source.clone();
        if source_spec.input().is_some() {
            let file = input_file(&ledger);
            if !file.exists() && !planned {
                return TenantEnd::Skipped {
                    why: "the input has no rows for this tenant".into(),
                };
            }
            source_spec = source_spec.with_input(file.display().to_string());
        }
        let source = if planned {
            None
        } else {
            match OpenSource::open(&source_spec) {
                Ok(s) => Some(s),
                Err(e) => return blocked(BlockCause::Source, &e),
            }
        };
        let need = Need {
            action: self.spec.action,
            source_scopes: source.as_ref().map_or(&[][..], OpenSource::scopes),
            lists_devices: source.as_ref().is_some_and(OpenSource::lists_devices),
        };
        let session = match self.connector.connect(entry, need).await {
            Ok(s) => s,
            Err(b) => return TenantEnd::Blocked(b),
        };
        let id = entry.tenant_id;
        let reporter = self.reporter.clone();
        let progress: crate::Progress = Arc::new(move |c| reporter.progress(id, c));
        let stop = self.stop.clone();
        let sent = match source {
            None => {
                drop(start);
                crate::resume(&session.client, &ledger, &self.options, progress, stop).await
            }
            Some(source) => match self.plan(entry, &session, source, ledger).await {
                Ok(job) => {
                    drop(start);
                    job.send(&session.client, &self.options, progress, stop)
                        .await
                }
                Err(end) => return end,
            },
        };
        ran(sent)
    }

    /// The tenant's plan, written into its ledger; nothing of the source there skips the tenant.
    async fn plan(
        &self,
        entry: &TenantEntry,
        session: &Session,
        source: OpenSource,
        ledger: PathBuf,
    ) -> Result<crate::PlannedJob, TenantEnd> {
        let job = Job {
            spec: &self.spec,
            source,
            early_rows: None,
            policy: Policy {
                now: std::time::SystemTime::now(),
                ..self.policy.clone()
            },
            signed_in: session.signed_in.clone(),
            rate: self.options.rate,
            ledger,
            // A run over many tenants always sends: results are read beside the sending.
            timing: ResultsTiming::BeforeSending,
            limit: self.options.limit,
            max_devices: None,
        };
        match job.plan(Some(&session.client), &self.stop).await {
            Ok(planned) => {
                self.reporter.plan_notes(entry, &planned.notes);
                Ok(planned)
            }
            Err(e @ (RotationError::BadName { .. } | RotationError::EmptySource(_))) => {
                Err(TenantEnd::Skipped { why: said_once(&e) })
            }
            Err(e) if e.is_auth() => Err(blocked(BlockCause::of_auth_error(&e), &e)),
            Err(e) => Err(blocked(BlockCause::Failed, &e)),
        }
    }
}

/// How a tenant's sending ended: an error there blocks it, by authentication or otherwise.
fn ran(sent: Result<RunOutcome, RotationError>) -> TenantEnd {
    match sent {
        Ok(o) => TenantEnd::Ran(Box::new(o)),
        Err(e) if e.is_auth() => blocked(BlockCause::of_auth_error(&e), &e),
        Err(e) => blocked(BlockCause::Failed, &e),
    }
}

fn blocked(cause: BlockCause, e: &(dyn std::error::Error + 'static)) -> TenantEnd {
    TenantEnd::Blocked(Blocked {
        cause,
        why: said_once(e),
    })
}

/// An error's message with its causes, each said once (a cause often repeats its parent's text).
pub fn said_once(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = String::new();
    let mut next = Some(e);
    while let Some(cause) = next {
        let text = cause.to_string();
        if !out.contains(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
        next = cause.source();
    }
    out
}
