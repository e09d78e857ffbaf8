//! One run: plan (for `rotate`) or replay (for `resume`), then the dispatcher that sends batches
//! through the rate gate, records every outcome and retries what is retryable.

mod dispatcher;
mod in_doubt;
mod read_ahead;

use crate::ledger::{DeviceState, Ledger, LedgerState, Outcome, Row, RunHeader, now_iso};
use crate::{CheckedSource, PlanReport, Policy, RateGate, RotationError};
pub(crate) use dispatcher::dispatch;
use dispatcher::noted;
use graph_batch::Quota;
use graph_client::GraphClient;
use in_doubt::{Cause, Decision, Looks};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// What `resume` does with devices whose request left but whose answer was never recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InDoubt {
    /// Send again (at-least-once).
    Resend,
    /// Record them as failed (`abandoned`) and leave them alone.
    Skip,
    /// Ask Graph: a rotation of ours that started after the request left counts as done
    /// (`verified-after-crash`); the others are sent again.
    Verify,
}

/// How the dispatcher paces and retries.
#[derive(Debug, Clone)]
pub struct DispatchOptions {
    pub batch_size: usize,
    /// Batches in flight at once; `None` sizes it to the rate (see [`DispatchOptions::in_flight`]).
    pub concurrency: Option<usize>,
    pub rate: Quota,
    /// Share of the rate kept unused to absorb network jitter.
    pub headroom: f64,
    pub max_attempts: u32,
    /// Stop sending after this long; unsent devices stay pending for `resume`.
    pub time_budget: Option<Duration>,
    /// Send only this many devices in this run (a canary); the rest stay pending.
    pub limit: Option<usize>,
    pub in_doubt: InDoubt,
    /// How long an interrupted run waits for requests in flight.
    pub drain_timeout: Duration,
    /// How long after a lost answer its devices are looked up in deviceActionResults.
    pub in_doubt_check_delay: Duration,
    /// A device that shows nothing at that look-up is looked up again this long after its
    /// request left, before it is sent again: the service may carry a request out late.
    pub lost_answer_recheck: Duration,
    /// Look up throttled items before sending them again, for every action (BitLocker always).
    pub strict_once: bool,
    /// A gate shared by every tenant of a many-tenant run: Graph's per-app limit across tenants.
    /// Each batch passes the tenant's own gate, then this one.
    pub global_gate: Option<Arc<RateGate>>,
    /// Names of our action's results given for this invocation (`--result-name`).
    pub result_names: Vec<String>,
    /// The tenant-wide limit shared with other apps (`None`: twice `rate`, as Intune documents
    /// 400/20s against 200/20s per app); it caps what goes at once.
    pub tenant_rate: Option<Quota>,
    /// The quota of the run's reads (look-ups, and action results read before sending); `None`:
    /// 1,000 per 20 s, half the service's 2,000 for any request, which the actions count in too.
    pub read_rate: Option<Quota>,
    /// Whether the service's window is empty at the start: `None` guesses (empty but for our own
    /// sends the ledger holds), `Some(true)` assumes it, `Some(false)` paces evenly from the start.
    pub cold_start: Option<bool>,
}

/// The second look-up of a lost answer: past the latest a late action was seen to start in
/// graph-sim's model (60 s) with room for clocks and latency (docs/verification.md).
pub const LOST_ANSWER_RECHECK: Duration = Duration::from_secs(70);

/// Whether throttled items are looked up before they are sent again.
pub(crate) fn look_after_429(o: &DispatchOptions, action: crate::Action) -> bool {
    o.strict_once || action == crate::Action::BitLocker
}

impl DispatchOptions {
    /// Batches allowed in flight: as given, or enough to spend an empty window's credit at once
    /// and to keep sending at the full rate through `LATENCY_BUDGET` of round trip (at Intune's
    /// 200/20s in batches of 20: 10). More in flight means more devices in doubt after a crash, so
    /// it is not larger than that, and never more than 64.
    pub fn in_flight(&self) -> usize {
        self.concurrency
            .unwrap_or_else(|| crate::rate_gate::batches_in_flight(self.rate, self.batch_size))
    }
}

impl Default for DispatchOptions {
    fn default() -> Self {
        DispatchOptions {
            batch_size: 20,
            concurrency: None,
            rate: Quota::new(200, Duration::from_secs(20)),
            headroom: 0.02,
            max_attempts: 8,
            time_budget: None,
            limit: None,
            in_doubt: InDoubt::Verify,
            drain_timeout: Duration::from_secs(30),
            in_doubt_check_delay: Duration::from_secs(2),
            lost_answer_recheck: LOST_ANSWER_RECHECK,
            strict_once: false,
            global_gate: None,
            result_names: Vec::new(),
            tenant_rate: None,
            read_rate: None,
            cold_start: None,
        }
    }
}

/// Live and final figures of a run.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Counters {
    pub total: usize,
    pub rotated: usize,
    pub failed: usize,
    pub skipped: usize,
    pub pending: usize,
    pub in_doubt: usize,
    /// Devices planned for this run's sending (after --limit).
    pub to_send: usize,
    /// Items sent, retries included.
    pub items_sent: u64,
    pub batches_sent: u64,
    pub retries: u64,
    pub throttled: u64,
    pub server_errors: u64,
    pub network_errors: u64,
    pub brakes: u64,
    pub elapsed_secs: f64,
    /// Devices that reached a final state in this run.
    pub finished: usize,
    /// Seconds from the start of sending to the first batch leaving.
    pub first_request_secs: Option<f64>,
    /// Seconds from the start of sending to the last batch leaving.
    pub last_request_secs: Option<f64>,
    /// Items in the first batch sent: it leaves on the bucket's initial credit, so a send rate
    /// measured between the first and the last batch leaves it out.
    pub first_batch_items: usize,
}

impl Counters {
    /// Adds the counts of another run beside this one (the tenants of a run directory). Times are
    /// each run's own clock and are not added. The other run is taken apart field by field, so a
    /// new figure cannot be left out of the sum without the compiler saying so.
    pub fn add(&mut self, o: &Counters) {
        let Counters {
            total,
            rotated,
            failed,
            skipped,
            pending,
            in_doubt,
            to_send,
            items_sent,
            batches_sent,
            retries,
            throttled,
            server_errors,
            network_errors,
            brakes,
            elapsed_secs: _,
            finished,
            first_request_secs: _,
            last_request_secs: _,
            first_batch_items,
        } = o;
        self.total += total;
        self.rotated += rotated;
        self.failed += failed;
        self.skipped += skipped;
        self.pending += pending;
        self.in_doubt += in_doubt;
        self.to_send += to_send;
        self.items_sent += items_sent;
        self.batches_sent += batches_sent;
        self.retries += retries;
        self.throttled += throttled;
        self.server_errors += server_errors;
        self.network_errors += network_errors;
        self.brakes += brakes;
        self.finished += finished;
        self.first_batch_items += first_batch_items;
    }
}

/// Asks a run to stop sending (Ctrl-C).
#[derive(Debug, Clone)]
pub struct StopSignal(tokio::sync::watch::Receiver<bool>);

impl StopSignal {
    pub fn new() -> (tokio::sync::watch::Sender<bool>, Self) {
        let (tx, rx) = tokio::sync::watch::channel(false);
        (tx, StopSignal(rx))
    }

    /// Whether a stop was asked for (before or during the run).
    pub fn requested(&self) -> bool {
        *self.0.borrow()
    }

    async fn changed(&mut self) {
        // A dropped sender never asks again: wait forever rather than spin.
        if self.0.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Why a run stopped before every device of its plan was sent, if it did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunStop {
    /// Every device was sent (or none was left to send).
    Sent,
    /// A stop was asked for (Ctrl-C, a signal): resumable.
    Interrupted,
    /// The time budget ran out: the rest stays pending for `resume`.
    TimeBudget,
    /// Credentials failed mid-run, with the service's words: resumable once fixed.
    Auth(String),
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    pub counters: Counters,
    pub stop: RunStop,
    pub ledger: PathBuf,
    pub plan: Option<PlanReport>,
    /// Devices skipped as they were about to be sent (their action results read then), per
    /// reason kind: beside the plan's own skips.
    pub skipped_at_sending: std::collections::BTreeMap<crate::SkipKind, usize>,
}

impl RunOutcome {
    /// Every device of the plan reached a final state: nothing pending or in doubt, no stop.
    pub fn is_complete(&self) -> bool {
        let c = &self.counters;
        !self.interrupted() && self.auth_stopped().is_none() && c.pending == 0 && c.in_doubt == 0
    }

    pub fn interrupted(&self) -> bool {
        self.stop == RunStop::Interrupted
    }

    /// Why credentials stopped the run, where they did.
    pub fn auth_stopped(&self) -> Option<&str> {
        match &self.stop {
            RunStop::Auth(why) => Some(why),
            _ => None,
        }
    }
}

pub type Progress = Arc<dyn Fn(&Counters) + Send + Sync>;

/// Everything `rotate` needs.
pub struct RotateRequest {
    pub header: RunHeader,
    pub source: CheckedSource,
    /// What the plan skips; its action must be the header's.
    pub policy: Policy,
    pub ledger: PathBuf,
    pub options: DispatchOptions,
    /// The most devices this run may send (`--max-devices`): a larger plan is refused.
    pub max_devices: Option<usize>,
}

impl std::fmt::Debug for RotateRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RotateRequest")
            .field("header", &self.header)
            .field("ledger", &self.ledger)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// Continues a run from its ledger.
pub async fn resume(
    client: &GraphClient,
    ledger_path: &Path,
    options: &DispatchOptions,
    progress: Progress,
    stop: StopSignal,
) -> Result<RunOutcome, RotationError> {
    let (mut ledger, mut state) = Ledger::open(ledger_path)?;
    let in_doubt = state.count(DeviceState::InDoubt) as u64;
    let policy = match options.in_doubt {
        InDoubt::Resend => "resend",
        InDoubt::Skip => "skip",
        InDoubt::Verify => "verify",
    };
    ledger.append(&Row::Session {
        at: now_iso(),
        command: "resume".into(),
        in_doubt,
        in_doubt_policy: policy.into(),
    })?;
    if options.in_doubt == InDoubt::Skip {
        for i in 0..state.ids().len() {
            if state.state(i as u32) == DeviceState::InDoubt {
                let why = "in doubt after a crash; left alone, as the resume was asked to (in doubt: skip)";
                let row = noted(state.ids()[i], Outcome::Abandoned, why.into());
                state.record(i as u32, &row);
                ledger.append(&row)?;
            }
        }
    }
    // Sent before and answered 429 (or 5xx) last: where a refused action may have run, looked up
    // before it is sent again.
    let refused: Vec<(uuid::Uuid, u64)> =
        if options.in_doubt == InDoubt::Verify && look_after_429(options, state.header.action) {
            (0..state.ids().len())
                .filter(|&i| {
                    state.state(i as u32) == DeviceState::Pending && state.attempts(i as u32) > 0
                })
                .map(|i| (state.ids()[i], state.sent_at_ms(i as u32)))
                .collect()
        } else {
            Vec::new()
        };
    let mut unread: Vec<(u32, Cause)> = Vec::new();
    if options.in_doubt == InDoubt::Verify && (in_doubt > 0 || !refused.is_empty()) {
        let doubtful: Vec<(uuid::Uuid, u64)> = (0..state.ids().len())
            .filter(|&i| state.state(i as u32) == DeviceState::InDoubt)
            .map(|i| (state.ids()[i], state.sent_at_ms(i as u32)))
            .collect();
        let reads = crate::reads::reads_gate_at(options.read_rate);
        let matcher = state.header.result_matcher(&options.result_names);
        let looks = Looks {
            settle: options.in_doubt_check_delay,
            recheck: Some(options.lost_answer_recheck),
        };
        let once = Looks {
            settle: options.in_doubt_check_delay,
            recheck: None,
        };
        let (crashed, throttled) = futures::join!(
            in_doubt::look_up(client, &reads, &matcher, Cause::Crash, &doubtful, looks),
            in_doubt::look_up(client, &reads, &matcher, Cause::Throttled, &refused, once),
        );
        let mut confirmed = 0;
        let crashed = crashed.into_iter().map(|d| (Cause::Crash, d));
        let throttled = throttled.into_iter().map(|d| (Cause::Throttled, d));
        for (cause, (id, decision)) in crashed.chain(throttled) {
            let i = state.devices().slot(&id).expect("a device of this ledger") as usize;
            match decision {
                Decision::Rotated(evidence) => {
                    let row = noted(id, Outcome::Rotated, evidence);
                    state.record(i as u32, &row);
                    ledger.append(&row)?;
                    confirmed += 1;
                }
                // Never sent unread: the dispatcher looks it up again before anything else.
                Decision::Unread(_) => unread.push((i as u32, cause)),
                // Devices to send again stay as they are: the dispatcher sends them with the
                // pending.
                Decision::SendAgain(_) => {}
            }
        }
        tracing::info!(
            in_doubt,
            confirmed,
            refused = refused.len(),
            "in-doubt devices checked against deviceActionResults"
        );
    }
    ledger.sync()?;
    dispatcher::dispatch_looking_first(client, ledger, state, options, progress, stop, unread).await
}

/// The gate for the actions: cold (the window empty but for our own sends the ledger holds, so
/// its whole credit goes at once) unless told otherwise.
fn actions_gate(o: &DispatchOptions, state: &LedgerState, batch: u32) -> RateGate {
    let gate = RateGate::new(o.rate, o.headroom, batch);
    let twice = Quota::new(o.rate.count.saturating_mul(2), o.rate.window);
    gate.share_tenant(o.tenant_rate.unwrap_or(twice));
    match o.cold_start {
        Some(false) => gate.warm_start(),
        Some(true) => {}
        None => gate.assume_sent(recent_sends(state, o.rate.window * 2)),
    }
    gate
}

/// Our sends of the last `span`, from the ledger, as instants of this process's clock.
fn recent_sends(state: &LedgerState, span: Duration) -> Vec<(std::time::Instant, u32)> {
    let (now, wall) = (std::time::Instant::now(), std::time::SystemTime::now());
    let since = wall
        .checked_sub(span)
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as u64);
    let mut per_ms: std::collections::BTreeMap<u64, u32> = std::collections::BTreeMap::new();
    for ms in state.devices().sent_times().filter(|&ms| ms > since) {
        *per_ms.entry(ms).or_default() += 1;
    }
    per_ms
        .into_iter()
        .filter_map(|(ms, n)| {
            let at = std::time::UNIX_EPOCH + Duration::from_millis(ms);
            let ago = wall.duration_since(at).unwrap_or_default();
            now.checked_sub(ago).map(|i| (i, n))
        })
        .collect()
}

pub(crate) fn counters_of(state: &LedgerState, to_send: usize) -> Counters {
    let mut c = Counters {
        to_send,
        ..Counters::default()
    };
    c.count_states(state);
    c
}

impl Counters {
    /// Sets the per-state figures from the ledger state.
    fn count_states(&mut self, state: &LedgerState) {
        self.total = state.ids().len();
        (
            self.pending,
            self.in_doubt,
            self.rotated,
            self.failed,
            self.skipped,
        ) = (0, 0, 0, 0, 0);
        for s in state.devices().states() {
            match s {
                DeviceState::Pending => self.pending += 1,
                DeviceState::InDoubt => self.in_doubt += 1,
                DeviceState::Rotated => self.rotated += 1,
                DeviceState::Failed => self.failed += 1,
                DeviceState::Skipped => self.skipped += 1,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn automatic_concurrency_follows_the_rate() {
        let at = |count, secs| DispatchOptions {
            rate: Quota::new(count, Duration::from_secs(secs)),
            ..DispatchOptions::default()
        };
        assert_eq!(
            at(200, 20).in_flight(),
            10,
            "Intune's default: a window's credit of 200 in batches of 20"
        );
        assert_eq!(at(2000, 20).in_flight(), 64);
        assert_eq!(at(100, 60).in_flight(), 5);
        assert_eq!(at(1_000_000, 1).in_flight(), 64);
        assert_eq!(at(1, 60).in_flight(), 2);
        let fixed = DispatchOptions {
            concurrency: Some(7),
            ..DispatchOptions::default()
        };
        assert_eq!(fixed.in_flight(), 7);
    }
}
