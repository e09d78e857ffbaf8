//! The one plan sequence of a run, for one tenant and for each tenant of many: the source read,
//! its ids checked, the tenant's records read, the plan written into a new ledger. What comes out
//! is sent or discarded: a dry run is a plan that is not sent, and the question before sending is
//! the caller's to ask.

use crate::ledger::{Ledger, LedgerState, RunHeader};
use crate::run::{Counters, DispatchOptions, Progress, RunOutcome, StopSignal};
use crate::{
    Cloud, FactsWanted, OpenSource, PartialSource, Plan, PlanReport, Policy, ResultsTiming,
    RotationError, RunSpec,
};
use graph_batch::Quota;
use graph_client::GraphClient;
use std::path::{Path, PathBuf};

/// Who a job signs in as, and where: what its ledger header says beside the spec.
#[derive(Debug, Clone, Default)]
pub struct SignedIn {
    pub tenant: String,
    pub client_id: Option<String>,
    pub cloud: Cloud,
    /// The app (its id) or the person (their user name), for reports.
    pub as_whom: Option<String>,
}

/// A run to plan.
#[derive(Debug)]
pub struct Job<'s> {
    pub spec: &'s RunSpec,
    pub source: OpenSource,
    /// The rows of a plain file, checked before connecting ([`OpenSource::check_early`]).
    pub early_rows: Option<usize>,
    /// The spec's policy, its exclusions read.
    pub policy: Policy,
    pub signed_in: SignedIn,
    /// The actions' quota, as the header records it.
    pub rate: Quota,
    pub ledger: PathBuf,
    /// When action results that the listing leaves out are read.
    pub timing: ResultsTiming,
    /// A canary: this run sends at most this many devices; the rest stay pending.
    pub limit: Option<usize>,
    /// A larger plan is refused: nothing is sent and the new ledger is removed.
    pub max_devices: Option<usize>,
}

/// A plan written into its ledger, nothing sent yet.
#[derive(Debug)]
pub struct PlannedJob {
    ledger: Ledger,
    state: LedgerState,
    pub report: PlanReport,
    /// Devices this run will send: the plan, less a canary's rest.
    pub to_send: usize,
    /// The canary's size, which the sending holds to.
    limit: Option<usize>,
    /// Rows of the source.
    pub rows: usize,
    /// The source as the header names it.
    pub source: String,
    /// What the plan says of its source and of the tenant's records, in order.
    pub notes: Vec<String>,
    /// What was read of the audit logs, in a run over views.
    pub views: Option<crate::views::ViewsRead>,
}

impl Job<'_> {
    /// Reads the source and the tenant's records and writes the plan. `client` may be `None`
    /// only for a plain file planned without sending. A stop asked for on the way ends it with
    /// [`RotationError::StoppedBeforeSending`], nothing written.
    pub async fn plan(
        self,
        client: Option<&GraphClient>,
        stop: &StopSignal,
    ) -> Result<PlannedJob, RotationError> {
        let spec = self.spec;
        let action = spec.action;
        let allow_partial = spec.partial == PartialSource::Keep;
        // The views first: a log the token may not read stops the run before any listing.
        let audit = match (&spec.viewed, client) {
            (Some(viewed), Some(client)) => {
                let own = self.signed_in.client_id.as_deref();
                let now = std::time::SystemTime::now();
                Some(crate::views::read_views(client, action, viewed, own, now).await?)
            }
            (Some(_), None) => return Err(RotationError::NoConnection),
            (None, _) => None,
        };
        let got = self
            .source
            .materialize(client, action, allow_partial)
            .await?;
        let mut notes = got.notes;
        if stop.requested() {
            return Err(RotationError::StoppedBeforeSending);
        }
        let (list, views) = match (audit, client) {
            (Some(audit), Some(client)) => {
                let (list, views, read) = audit.narrow(client, got.list).await?;
                (list, Some((views, read)))
            }
            _ => (got.list, None),
        };
        let checked = match (self.early_rows, &views) {
            (Some(rows), None) => Plan::checked(list, rows),
            // No device read is a plan of none, not bad input: an hourly run mostly finds none.
            (_, Some(_)) => match Plan::check_source(&list) {
                Ok(rows) => Plan::checked(list, rows),
                Err(RotationError::EmptySource(_)) => Plan::checked(list, 0),
                Err(e) => return Err(e),
            },
            (None, None) => Plan::check(list)?,
        };
        let mut policy = self.policy;
        let mut results_read = None;
        if let Some(client) = client {
            let wanted = FactsWanted {
                rotated_within: policy.rotated_within,
                skip_pending: policy.skip_pending,
                result_names: spec.result_names.clone(),
                allow_partial,
                read_rate: None,
                // A run over views compares each device's read with its last rotation in the
                // plan, so the results are read before it.
                timing: if views.is_some() {
                    ResultsTiming::BeforePlan
                } else {
                    self.timing
                },
                last_rotation: views.is_some(),
            };
            let facts = crate::read_facts(client, checked.source(), &policy, &wanted).await?;
            notes.extend(facts.notes);
            policy.facts = facts.devices;
            results_read = facts.results_read;
        }
        let mut views_read = None;
        if let Some((views, read)) = views {
            for (id, view) in views {
                if let Some(f) = policy.facts.get_mut(&id) {
                    f.viewed = Some(view);
                }
            }
            views_read = Some(read);
        }
        if stop.requested() {
            return Err(RotationError::StoppedBeforeSending);
        }
        let signed = self.signed_in;
        let header = RunHeader {
            action_results: results_read,
            signed_in_as: signed.as_whom,
            client_id: signed.client_id,
            cloud: signed.cloud,
            via: spec.via.graph_name().to_string(),
            result_names: spec.result_names.clone(),
            ..RunHeader::new(signed.tenant, action, checked.source().display(), self.rate)
        };
        let mut planned = write_plan(
            &self.ledger,
            &header,
            &checked,
            &policy,
            self.limit,
            self.max_devices,
        )?;
        if let Some(read) = &views_read {
            let since = planned
                .report
                .skipped
                .get(&crate::SkipKind::RotatedSinceView)
                .copied()
                .unwrap_or(0);
            notes.extend(read.lines(since));
        }
        planned.notes = notes;
        planned.views = views_read;
        Ok(planned)
    }
}

/// Plans of fewer source rows are not checkpointed as they are written (the run's end writes one):
/// they replay in milliseconds, and 2,000 tenants starting at once each paid for one more file
/// created beside its ledger (3.6 % of the machine's CPU at the start, mostly that file).
const PLAN_CHECKPOINT_ROWS: usize = 100_000;

/// Writes the plan of a checked source into a new ledger: the end of every plan sequence.
pub(crate) fn write_plan(
    path: &Path,
    header: &RunHeader,
    checked: &crate::CheckedSource,
    policy: &Policy,
    limit: Option<usize>,
    max_devices: Option<usize>,
) -> Result<PlannedJob, RotationError> {
    if header.action != policy.action {
        return Err(RotationError::ActionMismatch {
            policy: policy.action,
            run: header.action,
        });
    }
    let mut ledger = Ledger::create(path, header)?;
    let report = Plan::build(checked, policy, &mut ledger)?;
    let to_send = report.planned.min(limit.unwrap_or(usize::MAX));
    if let Some(max) = max_devices
        && to_send > max
    {
        ledger.discard();
        return Err(RotationError::TooManyDevices { to_send, max });
    }
    let state = if checked.rows() >= PLAN_CHECKPOINT_ROWS {
        ledger.checkpoint()?
    } else {
        ledger.synced_state()?
    };
    Ok(PlannedJob {
        ledger,
        state,
        report,
        to_send,
        limit,
        rows: checked.rows(),
        source: checked.source().display().to_string(),
        notes: Vec::new(),
        views: None,
    })
}

impl PlannedJob {
    /// Where the plan was written.
    pub fn path(&self) -> &Path {
        self.ledger.path()
    }

    /// The plan's figures, as a run that sends nothing ends with.
    pub fn counters(&self) -> Counters {
        crate::run::counters_of(&self.state, 0)
    }

    /// Removes the new ledger: nothing was sent.
    pub fn discard(self) {
        self.ledger.discard();
    }

    /// Sends the plan (a canary's devices only, where the job was given a limit) and returns how
    /// the run ended.
    pub async fn send(
        self,
        client: &GraphClient,
        options: &DispatchOptions,
        progress: Progress,
        stop: StopSignal,
    ) -> Result<RunOutcome, RotationError> {
        let options = DispatchOptions {
            limit: self.limit,
            ..options.clone()
        };
        let mut outcome =
            crate::run::dispatch(client, self.ledger, self.state, &options, progress, stop).await?;
        outcome.plan = Some(self.report);
        Ok(outcome)
    }
}

/// Plans an already checked source into a new ledger, then sends: the job's plan sequence from
/// its last step, for callers that read the source themselves.
pub async fn rotate(
    client: &graph_client::GraphClient,
    req: crate::RotateRequest,
    progress: crate::Progress,
    stop: crate::StopSignal,
) -> Result<crate::RunOutcome, crate::RotationError> {
    let planned = write_plan(
        &req.ledger,
        &req.header,
        &req.source,
        &req.policy,
        req.options.limit,
        req.max_devices,
    )?;
    planned.send(client, &req.options, progress, stop).await
}
