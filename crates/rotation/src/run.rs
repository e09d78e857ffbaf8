//! One run: plan (for `rotate`) or replay (for `resume`), then the dispatcher that sends batches
//! through the rate gate, records every outcome and retries what is retryable.

use crate::ledger::{
    DeviceState, Ledger, LedgerState, Outcome, Row, RunHeader, now_iso, replay_file,
};
use crate::{Action, CsvSource, Plan, PlanReport, RateGate, RotationError, retry};
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
}

/// How the dispatcher paces and retries.
#[derive(Debug, Clone)]
pub struct DispatchOptions {
    pub batch_size: usize,
    pub concurrency: usize,
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
}

impl Default for DispatchOptions {
    fn default() -> Self {
        DispatchOptions {
            batch_size: 20,
            concurrency: 4,
            rate: Quota::new(200, Duration::from_secs(20)),
            headroom: 0.02,
            max_attempts: 8,
            time_budget: None,
            limit: None,
            in_doubt: InDoubt::Resend,
            drain_timeout: Duration::from_secs(30),
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
    pub source: CsvSource,
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
    let action = req.header.action()?;
    let mut ledger = Ledger::create(&req.ledger, &req.header)?;
    let report = Plan::build(&req.source, action, &mut ledger)?;
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
                    None,
                    None,
                    Some("in doubt after a crash; left alone by --in-doubt skip".into()),
                    None,
                ))?;
                state.states[i] = DeviceState::Failed;
            }
        }
    }
    ledger.sync()?;
    dispatch(client, ledger, state, options, progress, stop).await
}

fn counters_of(state: &LedgerState, to_send: usize) -> Counters {
    let mut c = Counters {
        total: state.ids.len(),
        to_send,
        ..Counters::default()
    };
    for s in &state.states {
        match s {
            DeviceState::Pending => c.pending += 1,
            DeviceState::InDoubt => c.in_doubt += 1,
            DeviceState::Rotated => c.rotated += 1,
            DeviceState::Failed => c.failed += 1,
            DeviceState::Skipped => c.skipped += 1,
        }
    }
    c
}

fn outcome_row(
    id: &uuid::Uuid,
    result: Outcome,
    status: Option<u16>,
    code: Option<String>,
    message: Option<String>,
    meta: Option<&graph_client::ReplyMeta>,
) -> Row {
    Row::Outcome {
        id: id.hyphenated().to_string(),
        result,
        status,
        code,
        message,
        request_id: meta.and_then(|m| m.request_id.clone()),
        client_request_id: meta.map(|m| m.client_request_id.clone()),
        date: meta.and_then(|m| m.date.clone()),
        at: now_iso(),
    }
}

/// Permits being gathered for the next batch; kept across loop turns so no permit is lost.
type Acquire = Pin<Box<dyn Future<Output = ()> + Send>>;
type Flight =
    Pin<Box<dyn Future<Output = (Vec<u32>, Result<BatchReply, GraphClientError>)> + Send>>;

/// Per-device bookkeeping the dispatcher needs beyond the ledger state.
struct Work {
    ready: VecDeque<u32>,
    delayed: BinaryHeap<Reverse<(Instant, u32)>>,
}

async fn dispatch(
    client: &GraphClient,
    mut ledger: Ledger,
    mut state: LedgerState,
    o: &DispatchOptions,
    progress: Progress,
    mut stop: StopSignal,
) -> Result<RunOutcome, RotationError> {
    let action: Action = state.header.action()?;
    let via = state.header.via.clone();
    let gate = Arc::new(RateGate::new(o.rate, o.headroom));
    let batch_size = o.batch_size.clamp(1, graph_batch::MAX_BATCH_SIZE);
    let mut work = Work {
        ready: VecDeque::new(),
        delayed: BinaryHeap::new(),
    };
    for (i, s) in state.states.iter().enumerate() {
        if matches!(s, DeviceState::Pending | DeviceState::InDoubt)
            && o.limit.is_none_or(|l| work.ready.len() < l)
        {
            work.ready.push_back(i as u32);
        }
    }
    let started = Instant::now();
    let mut c = counters_of(&state, work.ready.len());
    let mut inflight: FuturesUnordered<Flight> = FuturesUnordered::new();
    let mut acquiring: Option<(u32, Acquire)> = None;
    let mut stopping = false;
    let mut interrupted = false;
    let mut auth_stopped = None;
    let mut drain_deadline: Option<Instant> = None;
    let mut last_sync = Instant::now();
    progress(&c);
    loop {
        let now = Instant::now();
        while work.delayed.peek().is_some_and(|Reverse((t, _))| *t <= now) {
            let Reverse((_, i)) = work.delayed.pop().expect("peeked");
            work.ready.push_back(i);
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
        if inflight.is_empty() && (stopping || (work.ready.is_empty() && work.delayed.is_empty())) {
            break;
        }
        if drain_deadline.is_some_and(|d| now >= d) {
            tracing::warn!(
                in_flight = inflight.len(),
                "requests still in flight after the drain timeout; their devices stay in doubt"
            );
            break;
        }
        if acquiring.is_none()
            && !stopping
            && !work.ready.is_empty()
            && inflight.len() < o.concurrency
        {
            let n = work.ready.len().min(batch_size) as u32;
            let g = gate.clone();
            acquiring = Some((n, Box::pin(async move { g.acquire(n).await })));
        }
        let next_due = work.delayed.peek().map(|Reverse((t, _))| *t);
        let wake = next_due.into_iter().chain(drain_deadline).min();
        tokio::select! {
            biased;
            _ = stop.0.changed(), if !stopping => {}
            Some((idxs, result)) = inflight.next(), if !inflight.is_empty() => {
                if let Some(reason) = handle_reply(&mut ledger, &mut state, &mut work, &gate, &mut c, o, idxs, result)? {
                    auth_stopped.get_or_insert(reason);
                    stopping = true;
                }
                ledger.flush()?;
                if last_sync.elapsed() > Duration::from_secs(1) {
                    ledger.sync()?;
                    last_sync = Instant::now();
                }
                c.brakes = gate.brakes();
                c.elapsed_secs = started.elapsed().as_secs_f64();
                progress(&c);
            }
            _ = async { acquiring.as_mut().expect("guarded").1.as_mut().await }, if acquiring.is_some() => {
                let (n, _) = acquiring.take().expect("guarded");
                let idxs: Vec<u32> = work.ready.drain(..n as usize).collect();
                let mut builder = BatchBuilder::new(batch_size).expect("batch size clamped to 1..=20");
                for &i in &idxs {
                    let id = state.ids[i as usize];
                    builder.push(i, Request::action_post(action.path(&id, &via)));
                }
                let batch = builder.finish().pop().expect("one batch of at most batch_size");
                let at = now_iso();
                for &i in &idxs {
                    state.attempts[i as usize] += 1;
                    state.states[i as usize] = DeviceState::InDoubt;
                    ledger.append(&Row::Sent { id: state.ids[i as usize].hyphenated().to_string(), attempt: state.attempts[i as usize], at: at.clone(), client_request_id: String::new() })?;
                }
                // Written ahead: the devices are durable as "sent" before the request leaves.
                ledger.sync()?;
                c.items_sent += idxs.len() as u64;
                c.batches_sent += 1;
                c.first_request_secs.get_or_insert(started.elapsed().as_secs_f64());
                let client = client.clone();
                inflight.push(Box::pin(async move {
                    let result = client.send_batch(&batch.body).await;
                    (idxs, result)
                }));
            }
            _ = sleep_until_opt(wake), if wake.is_some() => {}
        }
    }
    ledger.sync()?;
    let mut counters = counters_of(&state, c.to_send);
    counters.items_sent = c.items_sent;
    counters.batches_sent = c.batches_sent;
    counters.retries = c.retries;
    counters.throttled = c.throttled;
    counters.server_errors = c.server_errors;
    counters.network_errors = c.network_errors;
    counters.brakes = gate.brakes();
    counters.first_request_secs = c.first_request_secs;
    counters.finished = c.finished;
    counters.elapsed_secs = started.elapsed().as_secs_f64();
    progress(&counters);
    Ok(RunOutcome {
        counters,
        interrupted,
        auth_stopped,
        ledger: ledger.path().to_path_buf(),
        plan: None,
    })
}

async fn sleep_until_opt(t: Option<Instant>) {
    if let Some(t) = t {
        tokio::time::sleep_until(t.into()).await;
    }
}

/// Schedules a device for another attempt, or fails it when its attempts are used up.
#[allow(clippy::too_many_arguments)]
fn retry_later(
    ledger: &mut Ledger,
    state: &mut LedgerState,
    work: &mut Work,
    c: &mut Counters,
    o: &DispatchOptions,
    i: u32,
    status: Option<u16>,
    why: String,
    retry_after: Option<Duration>,
    meta: Option<&graph_client::ReplyMeta>,
) -> Result<(), RotationError> {
    let idx = i as usize;
    let id = state.ids[idx];
    if state.attempts[idx] >= o.max_attempts {
        state.states[idx] = DeviceState::Failed;
        c.failed += 1;
        c.finished += 1;
        return ledger.append(&outcome_row(
            &id,
            Outcome::Failed,
            status,
            Some("RetriesExhausted".into()),
            Some(format!(
                "gave up after {} attempts; last: {why}",
                state.attempts[idx]
            )),
            meta,
        ));
    }
    state.states[idx] = DeviceState::Pending;
    c.retries += 1;
    let wait = retry::delay(state.attempts[idx], retry_after);
    work.delayed.push(Reverse((Instant::now() + wait, i)));
    ledger.append(&outcome_row(
        &id,
        Outcome::Retry,
        status,
        None,
        Some(why),
        meta,
    ))
}

/// Records one batch's answer. Returns a reason when the run must stop for credentials.
#[allow(clippy::too_many_arguments)]
fn handle_reply(
    ledger: &mut Ledger,
    state: &mut LedgerState,
    work: &mut Work,
    gate: &RateGate,
    c: &mut Counters,
    o: &DispatchOptions,
    idxs: Vec<u32>,
    result: Result<BatchReply, GraphClientError>,
) -> Result<Option<String>, RotationError> {
    let reply = match result {
        Ok(r) => r,
        Err(e) => {
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
            match status {
                Some(429) => {
                    c.throttled += idxs.len() as u64;
                    gate.brake(retry_after);
                }
                Some(503) => {
                    c.server_errors += idxs.len() as u64;
                    if let Some(ra) = retry_after {
                        gate.pause(ra);
                    }
                }
                Some(500..=599) => c.server_errors += idxs.len() as u64,
                _ if e.in_doubt() => c.network_errors += idxs.len() as u64,
                _ => {}
            }
            let permanent = matches!(status, Some(s) if (400..500).contains(&s) && ![401, 403, 408, 424, 429].contains(&s));
            for i in idxs {
                if stop {
                    state.states[i as usize] = DeviceState::Pending;
                    ledger.append(&outcome_row(
                        &state.ids[i as usize],
                        Outcome::Retry,
                        status,
                        None,
                        Some(format!("not sent: {e}")),
                        None,
                    ))?;
                } else if permanent {
                    state.states[i as usize] = DeviceState::Failed;
                    c.failed += 1;
                    c.finished += 1;
                    ledger.append(&outcome_row(
                        &state.ids[i as usize],
                        Outcome::Failed,
                        status,
                        None,
                        Some(e.to_string()),
                        None,
                    ))?;
                } else {
                    let why = if e.in_doubt() {
                        format!("in doubt, sending again: {e}")
                    } else {
                        e.to_string()
                    };
                    retry_later(ledger, state, work, c, o, i, status, why, retry_after, None)?;
                }
            }
            return Ok(stop.then(|| e.to_string()));
        }
    };
    let now = SystemTime::now();
    let mut brake: Option<Option<Duration>> = None;
    let mut pause: Option<Duration> = None;
    for (pos, &i) in idxs.iter().enumerate() {
        let item_id = (pos + 1).to_string();
        let idx = i as usize;
        let id = state.ids[idx];
        let Some(item) = reply.response.item(&item_id) else {
            retry_later(
                ledger,
                state,
                work,
                c,
                o,
                i,
                None,
                "the batch answer did not include this item".into(),
                None,
                Some(&reply.meta),
            )?;
            continue;
        };
        let err = item.error();
        let mut meta = reply.meta.clone();
        if let Some(e) = &err {
            meta.request_id = e.inner.request_id.clone().or(meta.request_id);
            meta.date = e.inner.date.clone().or(meta.date);
        }
        let code = err
            .as_ref()
            .map(|e| e.code.clone())
            .filter(|s| !s.is_empty());
        let message = err.as_ref().map(|e| e.display_message());
        match item.classify(now) {
            ItemClass::Success => {
                state.states[idx] = DeviceState::Rotated;
                c.rotated += 1;
                c.finished += 1;
                ledger.append(&outcome_row(
                    &id,
                    Outcome::Rotated,
                    Some(item.status),
                    None,
                    None,
                    Some(&meta),
                ))?;
            }
            ItemClass::Throttled { retry_after } => {
                c.throttled += 1;
                brake = Some(brake.flatten().max(retry_after).or(retry_after));
                retry_later(
                    ledger,
                    state,
                    work,
                    c,
                    o,
                    i,
                    Some(429),
                    message.unwrap_or_else(|| "throttled".into()),
                    retry_after,
                    Some(&meta),
                )?;
            }
            ItemClass::Retryable { retry_after } => {
                c.server_errors += 1;
                if item.status == 503
                    && let Some(ra) = retry_after
                {
                    pause = pause.max(Some(ra));
                }
                retry_later(
                    ledger,
                    state,
                    work,
                    c,
                    o,
                    i,
                    Some(item.status),
                    message.unwrap_or_else(|| format!("HTTP {}", item.status)),
                    retry_after,
                    Some(&meta),
                )?;
            }
            ItemClass::Auth => {
                retry_later(
                    ledger,
                    state,
                    work,
                    c,
                    o,
                    i,
                    Some(401),
                    message.unwrap_or_else(|| "unauthorized".into()),
                    None,
                    Some(&meta),
                )?;
            }
            ItemClass::Permanent => {
                state.states[idx] = DeviceState::Failed;
                c.failed += 1;
                c.finished += 1;
                ledger.append(&outcome_row(
                    &id,
                    Outcome::Failed,
                    Some(item.status),
                    code,
                    message,
                    Some(&meta),
                ))?;
            }
        }
    }
    if let Some(retry_after) = brake {
        gate.brake(retry_after);
    }
    if let Some(ra) = pause {
        gate.pause(ra);
    }
    Ok(None)
}
