//! One run: plan (for `rotate`) or replay (for `resume`), then the dispatcher that sends batches
//! through the rate gate, records every outcome and retries what is retryable.

use crate::ledger::{
    DeviceState, Ledger, LedgerState, Outcome, Row, RunHeader, now_iso, replay_file,
};
use crate::{Action, CheckedSource, Plan, PlanReport, Policy, RateGate, RotationError, retry};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use graph_batch::{BatchBuilder, ItemClass, Quota, Request};
use graph_client::{BatchReply, GraphClient, GraphClientError};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

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
}

/// Latency the automatic concurrency absorbs without slowing below the rate.
const LATENCY_BUDGET: Duration = Duration::from_secs(5);

impl DispatchOptions {
    /// Batches allowed in flight: as given, or enough to keep sending at the full rate through
    /// `LATENCY_BUDGET` of round trip (at Intune's 200/20s in batches of 20: 3). More in flight
    /// means more devices in doubt after a crash, so it is not larger than the rate needs.
    pub fn in_flight(&self) -> usize {
        self.concurrency.unwrap_or_else(|| {
            let batches_per_sec = self.rate.per_second() / self.batch_size.max(1) as f64;
            ((batches_per_sec * LATENCY_BUDGET.as_secs_f64()).ceil() as usize).clamp(2, 64)
        })
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

/// Asks a run to stop sending (Ctrl-C).
#[derive(Debug, Clone)]
pub struct StopSignal(tokio::sync::watch::Receiver<bool>);

impl StopSignal {
    pub fn new() -> (tokio::sync::watch::Sender<bool>, Self) {
        let (tx, rx) = tokio::sync::watch::channel(false);
        (tx, StopSignal(rx))
    }

    fn requested(&self) -> bool {
        *self.0.borrow()
    }
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    pub counters: Counters,
    pub interrupted: bool,
    /// Credentials failed mid-run: stopped cleanly, resumable once fixed.
    pub auth_stopped: Option<String>,
    pub ledger: PathBuf,
    pub plan: Option<PlanReport>,
}

impl RunOutcome {
    /// Exit code per CONTRACT.md.
    pub fn exit_code(&self) -> u8 {
        if self.interrupted {
            130
        } else if self.auth_stopped.is_some() {
            3
        } else if self.counters.failed == 0
            && self.counters.pending == 0
            && self.counters.in_doubt == 0
        {
            0
        } else {
            1
        }
    }
}

pub type Progress = Arc<dyn Fn(&Counters) + Send + Sync>;

/// Everything `rotate` needs.
#[derive(Debug)]
pub struct RotateRequest {
    pub header: RunHeader,
    pub source: CheckedSource,
    /// What the plan skips; its action must be the header's.
    pub policy: Policy,
    pub ledger: PathBuf,
    pub options: DispatchOptions,
    pub dry_run: bool,
}

/// Plans the source into a new ledger, then sends (unless `dry_run`).
pub async fn rotate(
    client: Option<&GraphClient>,
    req: RotateRequest,
    progress: Progress,
    stop: StopSignal,
) -> Result<RunOutcome, RotationError> {
    if req.header.action()? != req.policy.action {
        return Err(RotationError::Input(
            "the policy's action differs from the run's".into(),
        ));
    }
    let mut ledger = Ledger::create(&req.ledger, &req.header)?;
    let report = Plan::build(&req.source, &req.policy, &mut ledger)?;
    let (state, _) = replay_file(&req.ledger)?;
    if req.dry_run {
        let counters = counters_of(&state, 0);
        return Ok(RunOutcome {
            counters,
            interrupted: false,
            auth_stopped: None,
            ledger: req.ledger,
            plan: Some(report),
        });
    }
    let client = client
        .ok_or_else(|| RotationError::Input("a Graph connection is needed to send".into()))?;
    let mut outcome = dispatch(client, ledger, state, &req.options, progress, stop).await?;
    outcome.plan = Some(report);
    Ok(outcome)
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
        for i in 0..state.ids.len() {
            if state.states[i] == DeviceState::InDoubt {
                ledger.append(&outcome_row(
                    &state.ids[i],
                    Outcome::Abandoned,
                    Answer::new(
                        None,
                        "in doubt after a crash; left alone by --in-doubt skip".into(),
                        None,
                    ),
                ))?;
                state.states[i] = DeviceState::Failed;
            }
        }
    }
    if options.in_doubt == InDoubt::Verify && in_doubt > 0 {
        let action = state.header.action()?;
        let doubtful: Vec<(uuid::Uuid, u64)> = (0..state.ids.len())
            .filter(|&i| state.states[i] == DeviceState::InDoubt)
            .map(|i| (state.ids[i], state.sent_at_ms[i]))
            .collect();
        // A request that left just before the crash may still be being carried out: look only once
        // the newest of them has had `in_doubt_check_delay` to show in deviceActionResults.
        let newest = doubtful.iter().map(|&(_, ms)| ms).max().unwrap_or(0);
        let show_at =
            std::time::UNIX_EPOCH + Duration::from_millis(newest) + options.in_doubt_check_delay;
        if let Ok(wait) = show_at.duration_since(SystemTime::now()) {
            tokio::time::sleep(wait).await;
        }
        let gate = Arc::new(RateGate::new(
            crate::VerifyOptions::default().rate,
            0.02,
            20,
        ));
        let found = crate::verify::lookup(client, &gate, action, &doubtful).await;
        let mut confirmed = 0;
        for (id, f) in found {
            if f.state != "not-found" {
                let i = state.index[&id] as usize;
                state.states[i] = DeviceState::Rotated;
                confirmed += 1;
                let answer = Answer::new(
                    None,
                    format!(
                        "verified-after-crash: deviceActionResults shows {} started {}",
                        f.state,
                        f.started.unwrap_or_default()
                    ),
                    None,
                );
                ledger.append(&outcome_row(&id, Outcome::Rotated, answer))?;
            }
        }
        tracing::info!(
            in_doubt,
            confirmed,
            resend = in_doubt as usize - confirmed,
            "in-doubt devices checked against deviceActionResults"
        );
    }
    ledger.sync()?;
    dispatch(client, ledger, state, options, progress, stop).await
}

fn counters_of(state: &LedgerState, to_send: usize) -> Counters {
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
        self.total = state.ids.len();
        (
            self.pending,
            self.in_doubt,
            self.rotated,
            self.failed,
            self.skipped,
        ) = (0, 0, 0, 0, 0);
        for s in &state.states {
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

/// The result of one attempt, as written in an outcome row.
struct Answer<'m> {
    status: Option<u16>,
    code: Option<String>,
    message: Option<String>,
    meta: Option<&'m graph_client::ReplyMeta>,
}

impl<'m> Answer<'m> {
    fn new(
        status: Option<u16>,
        message: String,
        meta: Option<&'m graph_client::ReplyMeta>,
    ) -> Self {
        Answer {
            status,
            code: None,
            message: Some(message),
            meta,
        }
    }
}

impl Answer<'_> {
    /// Keeps Graph's message, or says `default` when the item carried none.
    fn or_message(mut self, default: String) -> Self {
        self.message.get_or_insert(default);
        self
    }
}

fn outcome_row(id: &uuid::Uuid, result: Outcome, a: Answer<'_>) -> Row {
    Row::Outcome {
        id: id.hyphenated().to_string(),
        result,
        status: a.status,
        code: a.code,
        message: a.message,
        request_id: a.meta.and_then(|m| m.request_id.clone()),
        client_request_id: a.meta.map(|m| m.client_request_id.clone()),
        date: a.meta.and_then(|m| m.date.clone()),
        at: now_iso(),
    }
}

/// Permits being gathered for the next batch; kept across loop turns so no permit is lost.
type Acquire = Pin<Box<dyn Future<Output = ()> + Send>>;
/// A look at devices whose answer was lost.
type Check =
    Pin<Box<dyn Future<Output = (Vec<u32>, Vec<(uuid::Uuid, crate::verify::Found)>)> + Send>>;

/// One batch on the wire: its devices, the answer, and the round trip it took.
type Flight = Pin<
    Box<dyn Future<Output = (Vec<u32>, Result<BatchReply, GraphClientError>, Duration)> + Send>,
>;

/// Everything one dispatch changes as answers come in: the ledger, each device's state, the queues
/// of devices to send, the rate gate and the figures.
struct Dispatcher<'o> {
    ledger: Ledger,
    state: LedgerState,
    ready: VecDeque<u32>,
    delayed: BinaryHeap<Reverse<(Instant, u32)>>,
    gate: Arc<RateGate>,
    c: Counters,
    o: &'o DispatchOptions,
    /// Batch items were answered 401: the token is refreshed before the next batch.
    refresh_token: bool,
    /// Devices whose answer was lost (connection dropped, body cut): looked up before any resend.
    doubtful: Vec<u32>,
}

async fn dispatch(
    client: &GraphClient,
    ledger: Ledger,
    state: LedgerState,
    o: &DispatchOptions,
    progress: Progress,
    mut stop: StopSignal,
) -> Result<RunOutcome, RotationError> {
    let action: Action = state.header.action()?;
    let via = state.header.via.clone();
    let batch_size = o.batch_size.clamp(1, graph_batch::MAX_BATCH_SIZE);
    let mut ready = VecDeque::new();
    for (i, s) in state.states.iter().enumerate() {
        if matches!(s, DeviceState::Pending | DeviceState::InDoubt)
            && o.limit.is_none_or(|l| ready.len() < l)
        {
            ready.push_back(i as u32);
        }
    }
    let in_flight = o.in_flight();
    // A token in hand before the first grant: fetched after it, the first batch would leave late
    // and bunch with the next ones in the service's first window. Errors surface with that batch.
    let _ = client.tokens().token().await;
    let started = Instant::now();
    let mut d = Dispatcher {
        c: counters_of(&state, ready.len()),
        ledger,
        state,
        ready,
        delayed: BinaryHeap::new(),
        gate: Arc::new(RateGate::new(o.rate, o.headroom, batch_size as u32)),
        o,
        refresh_token: false,
        doubtful: Vec::new(),
    };
    let mut inflight: FuturesUnordered<Flight> = FuturesUnordered::new();
    let mut checks: FuturesUnordered<Check> = FuturesUnordered::new();
    let reads = Arc::new(RateGate::new(
        crate::VerifyOptions::default().rate,
        0.02,
        20,
    ));
    let mut acquiring: Option<Acquire> = None;
    let mut stopping = false;
    let mut interrupted = false;
    let mut auth_stopped = None;
    let mut drain_deadline: Option<Instant> = None;
    let mut last_sync = Instant::now();
    progress(&d.c);
    loop {
        let now = Instant::now();
        while d.delayed.peek().is_some_and(|Reverse((t, _))| *t <= now) {
            let Reverse((_, i)) = d.delayed.pop().expect("peeked");
            d.ready.push_back(i);
        }
        if !stopping && stop.requested() {
            stopping = true;
            interrupted = true;
        }
        if !stopping && o.time_budget.is_some_and(|b| started.elapsed() >= b) {
            tracing::warn!(
                "time budget reached: stopping; unsent devices stay pending for `resume`"
            );
            stopping = true;
        }
        if stopping {
            acquiring = None;
            drain_deadline.get_or_insert(now + o.drain_timeout);
        }
        if !stopping && !d.doubtful.is_empty() {
            let idxs = std::mem::take(&mut d.doubtful);
            let items: Vec<(uuid::Uuid, u64)> = idxs
                .iter()
                .map(|&i| (d.state.ids[i as usize], d.state.sent_at_ms[i as usize]))
                .collect();
            let (client, reads, wait) = (client.clone(), reads.clone(), o.in_doubt_check_delay);
            checks.push(Box::pin(async move {
                // Give a request that is still being carried out time to show.
                tokio::time::sleep(wait).await;
                let found = crate::verify::lookup(&client, &reads, action, &items).await;
                (idxs, found)
            }));
        }
        // Stopping leaves looked-up devices in doubt: `resume` verifies them.
        let idle = d.ready.is_empty() && d.delayed.is_empty() && checks.is_empty();
        if inflight.is_empty() && (stopping || idle) {
            break;
        }
        if drain_deadline.is_some_and(|t| now >= t) {
            tracing::warn!(
                in_flight = inflight.len(),
                "requests still in flight after the drain timeout; their devices stay in doubt"
            );
            break;
        }
        if acquiring.is_none() && !stopping && !d.ready.is_empty() && inflight.len() < in_flight {
            let g = d.gate.clone();
            acquiring = Some(Box::pin(async move { g.acquire_batch().await }));
        }
        let next_due = d.delayed.peek().map(|Reverse((t, _))| *t);
        let wake = next_due.into_iter().chain(drain_deadline).min();
        tokio::select! {
            biased;
            _ = stop.0.changed(), if !stopping => {}
            Some((idxs, result, rtt)) = inflight.next(), if !inflight.is_empty() => {
                d.gate.observe_round_trip(rtt);
                if let Some(reason) = d.handle_reply(idxs, result)? {
                    auth_stopped.get_or_insert(reason);
                    stopping = true;
                }
                if std::mem::take(&mut d.refresh_token) {
                    client.tokens().refresh_soon().await;
                }
                d.ledger.flush()?;
                if last_sync.elapsed() > Duration::from_secs(1) {
                    d.ledger.sync()?;
                    last_sync = Instant::now();
                }
                d.c.brakes = d.gate.brakes();
                d.c.elapsed_secs = started.elapsed().as_secs_f64();
                progress(&d.c);
            }
            _ = async { acquiring.as_mut().expect("guarded").as_mut().await }, if acquiring.is_some() => {
                acquiring = None;
                // Filled at the grant: devices that became ready during the wait ride along.
                let n = d.ready.len().min(batch_size);
                let idxs: Vec<u32> = d.ready.drain(..n).collect();
                if idxs.is_empty() {
                    continue;
                }
                let mut builder = BatchBuilder::new(batch_size).expect("batch size clamped to 1..=20");
                for &i in &idxs {
                    let id = d.state.ids[i as usize];
                    builder.push(i, Request::action_post(action.path(&id, &via)));
                }
                let batch = builder.finish().pop().expect("one batch of at most batch_size");
                d.record_sent(&idxs)?;
                let at = started.elapsed().as_secs_f64();
                if d.c.first_request_secs.is_none() {
                    d.c.first_request_secs = Some(at);
                    d.c.first_batch_items = idxs.len();
                }
                d.c.last_request_secs = Some(at);
                let client = client.clone();
                inflight.push(Box::pin(async move {
                    // The gate learns jitter from the exchange alone: a token fetched first (the
                    // first batch, a refresh) would read as a slow round trip for a whole history.
                    let _ = client.tokens().token().await;
                    let sent = Instant::now();
                    let result = client.send_batch(&batch.body).await;
                    (idxs, result, sent.elapsed())
                }));
            }
            Some((idxs, found)) = checks.next(), if !checks.is_empty() && !stopping => {
                d.handle_checks(idxs, found)?;
                d.ledger.flush()?;
                progress(&d.c);
            }
            _ = sleep_until_opt(wake), if wake.is_some() => {}
        }
    }
    d.ledger.sync()?;
    d.c.count_states(&d.state);
    d.c.brakes = d.gate.brakes();
    d.c.elapsed_secs = started.elapsed().as_secs_f64();
    progress(&d.c);
    Ok(RunOutcome {
        counters: d.c,
        interrupted,
        auth_stopped,
        ledger: d.ledger.path().to_path_buf(),
        plan: None,
    })
}

async fn sleep_until_opt(t: Option<Instant>) {
    if let Some(t) = t {
        tokio::time::sleep_until(t.into()).await;
    }
}

impl Dispatcher<'_> {
    /// Written ahead: the devices are durable as "sent" before the request leaves.
    fn record_sent(&mut self, idxs: &[u32]) -> Result<(), RotationError> {
        let at = now_iso();
        let sent_ms = crate::ledger::parse_ms(&at).unwrap_or(0);
        for &i in idxs {
            let i = i as usize;
            self.state.attempts[i] += 1;
            self.state.states[i] = DeviceState::InDoubt;
            self.state.sent_at_ms[i] = sent_ms;
            self.ledger.append(&Row::Sent {
                id: self.state.ids[i].hyphenated().to_string(),
                attempt: self.state.attempts[i],
                at: at.clone(),
            })?;
        }
        self.ledger.sync()?;
        self.c.items_sent += idxs.len() as u64;
        self.c.batches_sent += 1;
        Ok(())
    }

    /// What Graph said of devices whose answer was lost: ours started → rotated; else sent again.
    fn handle_checks(
        &mut self,
        idxs: Vec<u32>,
        found: Vec<(uuid::Uuid, crate::verify::Found)>,
    ) -> Result<(), RotationError> {
        let mut seen = std::collections::HashMap::new();
        for (id, f) in found {
            seen.insert(id, f);
        }
        for i in idxs {
            let id = self.state.ids[i as usize];
            match seen.remove(&id) {
                Some(f) if f.state != "not-found" => {
                    let why = format!(
                        "verified-after-lost-answer: deviceActionResults shows {} started {}",
                        f.state,
                        f.started.unwrap_or_default()
                    );
                    self.finish(i, Outcome::Rotated, Answer::new(None, why, None))?;
                }
                Some(_) => self.retry_later(
                    i,
                    Answer::new(
                        None,
                        "the answer was lost and the device shows no action of ours: sending again"
                            .into(),
                        None,
                    ),
                    None,
                )?,
                None => self.retry_later(
                    i,
                    Answer::new(
                        None,
                        "the answer was lost and the device could not be read: sending again"
                            .into(),
                        None,
                    ),
                    None,
                )?,
            }
        }
        Ok(())
    }

    /// Records a final state for device `i`: rotated, or failed.
    fn finish(&mut self, i: u32, result: Outcome, answer: Answer<'_>) -> Result<(), RotationError> {
        let idx = i as usize;
        self.state.states[idx] = if result == Outcome::Rotated {
            self.c.rotated += 1;
            DeviceState::Rotated
        } else {
            self.c.failed += 1;
            DeviceState::Failed
        };
        self.c.finished += 1;
        self.ledger
            .append(&outcome_row(&self.state.ids[idx], result, answer))
    }

    /// Schedules a device for another attempt, or fails it when its attempts are used up.
    fn retry_later(
        &mut self,
        i: u32,
        mut answer: Answer<'_>,
        retry_after: Option<Duration>,
    ) -> Result<(), RotationError> {
        let idx = i as usize;
        let attempts = self.state.attempts[idx];
        if attempts >= self.o.max_attempts {
            let why = answer.message.take().unwrap_or_default();
            answer.code = Some("RetriesExhausted".into());
            answer.message = Some(format!("gave up after {attempts} attempts; last: {why}"));
            return self.finish(i, Outcome::Failed, answer);
        }
        self.state.states[idx] = DeviceState::Pending;
        self.c.retries += 1;
        let wait = retry::delay(attempts, retry_after);
        self.delayed.push(Reverse((Instant::now() + wait, i)));
        self.ledger
            .append(&outcome_row(&self.state.ids[idx], Outcome::Retry, answer))
    }

    /// Records one batch's answer. Returns a reason when the run must stop for credentials.
    fn handle_reply(
        &mut self,
        idxs: Vec<u32>,
        result: Result<BatchReply, GraphClientError>,
    ) -> Result<Option<String>, RotationError> {
        match result {
            Ok(reply) => self.handle_items(&idxs, &reply).map(|()| None),
            Err(e) => self.handle_failed_batch(idxs, e),
        }
    }

    /// The whole batch failed: nothing in it is known to have run, except when the answer was lost.
    fn handle_failed_batch(
        &mut self,
        idxs: Vec<u32>,
        e: GraphClientError,
    ) -> Result<Option<String>, RotationError> {
        let (status, retry_after, stop) = match &e {
            GraphClientError::Http {
                status,
                retry_after,
                ..
            } => (Some(*status), *retry_after, matches!(status, 401 | 403)),
            GraphClientError::Token(_)
            | GraphClientError::TokenExpired
            | GraphClientError::Credential(_) => (None, None, true),
            _ => (None, None, false),
        };
        let n = idxs.len() as u64;
        match status {
            Some(429) => {
                self.c.throttled += n;
                self.gate.brake(retry_after);
            }
            Some(503) => {
                self.c.server_errors += n;
                if let Some(ra) = retry_after {
                    self.gate.pause(ra);
                }
            }
            Some(500..=599) => self.c.server_errors += n,
            _ if e.in_doubt() => self.c.network_errors += n,
            _ => {}
        }
        let permanent = matches!(status, Some(s) if (400..500).contains(&s) && ![401, 403, 408, 424, 429].contains(&s));
        for i in idxs {
            if stop {
                self.state.states[i as usize] = DeviceState::Pending;
                let answer = Answer::new(status, format!("not sent: {e}"), None);
                self.ledger.append(&outcome_row(
                    &self.state.ids[i as usize],
                    Outcome::Retry,
                    answer,
                ))?;
            } else if permanent {
                self.finish(i, Outcome::Failed, Answer::new(status, e.to_string(), None))?;
            } else if e.in_doubt() {
                // The request may have been carried out: it stays in doubt until Graph says.
                self.doubtful.push(i);
            } else {
                self.retry_later(i, Answer::new(status, e.to_string(), None), retry_after)?;
            }
        }
        Ok(stop.then(|| e.to_string()))
    }

    /// The batch was answered: each item on its own.
    fn handle_items(&mut self, idxs: &[u32], reply: &BatchReply) -> Result<(), RotationError> {
        let now = SystemTime::now();
        let mut brake: Option<Option<Duration>> = None;
        let mut pause: Option<Duration> = None;
        for (pos, &i) in idxs.iter().enumerate() {
            let Some(item) = reply.response.item(&(pos + 1).to_string()) else {
                let why = "the batch answer did not include this item".to_string();
                self.retry_later(i, Answer::new(None, why, Some(&reply.meta)), None)?;
                continue;
            };
            let err = item.error();
            let mut meta = reply.meta.clone();
            if let Some(e) = &err {
                meta.request_id = e.inner.request_id.clone().or(meta.request_id);
                meta.date = e.inner.date.clone().or(meta.date);
            }
            let answer = Answer {
                status: Some(item.status),
                code: err
                    .as_ref()
                    .map(|e| e.code.clone())
                    .filter(|s| !s.is_empty()),
                message: err.as_ref().map(|e| e.display_message()),
                meta: Some(&meta),
            };
            match item.classify(now) {
                ItemClass::Success => self.finish(i, Outcome::Rotated, answer)?,
                ItemClass::Throttled { retry_after } => {
                    self.c.throttled += 1;
                    brake = Some(brake.flatten().max(retry_after).or(retry_after));
                    self.retry_later(i, answer.or_message("throttled".into()), retry_after)?;
                }
                ItemClass::Retryable { retry_after } => {
                    self.c.server_errors += 1;
                    if item.status == 503
                        && let Some(ra) = retry_after
                    {
                        pause = pause.max(Some(ra));
                    }
                    let default = format!("HTTP {}", item.status);
                    self.retry_later(i, answer.or_message(default), retry_after)?;
                }
                ItemClass::Auth => {
                    self.refresh_token = true;
                    self.retry_later(i, answer.or_message("unauthorized".into()), None)?;
                }
                ItemClass::Permanent => self.finish(i, Outcome::Failed, answer)?,
            }
        }
        if let Some(retry_after) = brake {
            self.gate.brake(retry_after);
        }
        if let Some(ra) = pause {
            self.gate.pause(ra);
        }
        Ok(())
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
            3,
            "Intune's default: a batch every 2 s"
        );
        assert_eq!(at(2000, 20).in_flight(), 25);
        assert_eq!(at(1_000_000, 1).in_flight(), 64);
        assert_eq!(at(1, 60).in_flight(), 2);
        let fixed = DispatchOptions {
            concurrency: Some(7),
            ..DispatchOptions::default()
        };
        assert_eq!(fixed.in_flight(), 7);
    }
}
