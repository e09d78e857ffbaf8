//! The dispatcher: the one place where a run's events meet. Grants of the rate gate become
//! batches, answers become outcome rows, lost answers become look-ups, and throttled items come
//! back when their wait is over. Every change of a device's state goes through here, in one task,
//! so the ledger and the counters never disagree.
//!
//! Invariants: a batch leaves only after its `sent` rows are durable (write-ahead); a device is in
//! at most one of ready, delayed, in flight or being looked up; nothing is re-sent whose answer
//! was lost until Graph says it was not carried out ([`super::in_doubt`]).

use super::in_doubt::{self, Cause, Decision, Looks};
use super::read_ahead::{ReadAhead, Reader, Unanswered};
use super::{Counters, DispatchOptions, Progress, RunOutcome, RunStop, StopSignal};
use crate::RetryCause;
use crate::device_facts::AtSending;
use crate::ledger::{DeviceState, Ledger, LedgerState, Outcome, Row, now_iso};
use crate::{Action, RateGate, ResultMatcher, RotationError, retry};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use graph_batch::{BatchBuilder, ItemClass, Request};
use graph_client::{BatchReply, GraphClient, GraphClientError, ReplyMeta};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use uuid::Uuid;

/// Look-ups of a device that could not be read before it is left for `resume`.
const UNREAD_LOOKS: u32 = 3;

/// Permits being gathered for the next batch; kept across loop turns so no permit is lost.
type Acquire = Pin<Box<dyn Future<Output = ()> + Send>>;
/// A look at devices whose answer was lost or refused.
type Check = Pin<Box<dyn Future<Output = (Cause, Vec<(u32, Decision)>)> + Send>>;
/// One batch on the wire: its devices, the answer, and the round trip it took.
type Flight = Pin<
    Box<dyn Future<Output = (Vec<u32>, Result<BatchReply, GraphClientError>, Duration)> + Send>,
>;

/// What woke the loop.
enum Event {
    /// Ctrl-C (or the caller) asked to stop sending.
    StopAsked,
    /// A batch came back, or failed as a whole.
    Reply(Vec<u32>, Result<BatchReply, GraphClientError>, Duration),
    /// The rate gate granted a batch.
    Grant,
    /// Graph was asked about devices whose answer was lost or refused.
    LookedUp(Cause, Vec<(u32, Decision)>),
    /// Devices' action results were read before they are sent.
    Read(super::read_ahead::Read),
    /// A retry fell due, or the drain deadline passed.
    Timer,
}

/// Why the run stops sending.
#[derive(Debug, Clone, PartialEq, Eq)]

/// The result of one attempt, as written in an outcome row.
struct Answer<'m> {
    status: Option<u16>,
    cause: Option<RetryCause>,
    code: Option<String>,
    message: Option<String>,
    meta: Option<&'m ReplyMeta>,
}

impl<'m> Answer<'m> {
    fn new(status: Option<u16>, message: String, meta: Option<&'m ReplyMeta>) -> Self {
        Answer {
            status,
            cause: status.map(RetryCause::of_status),
            code: None,
            message: Some(message),
            meta,
        }
    }

    /// Why the device was not answered at once.
    fn because(mut self, cause: RetryCause) -> Self {
        self.cause = Some(cause);
        self
    }

    /// Keeps Graph's message, or says `default` when the item carried none.
    fn or_message(mut self, default: String) -> Self {
        self.message.get_or_insert(default);
        self
    }
}

fn outcome_row(id: Uuid, result: Outcome, a: Answer<'_>) -> Row {
    Row::Outcome {
        id,
        result,
        status: a.status,
        // A retry says why; so does a device settled by a look-up. An answer's status says the rest.
        cause: a
            .cause
            .filter(|_| result == Outcome::Retry || a.status.is_none()),
        code: a.code,
        message: a.message,
        request_id: a.meta.and_then(|m| m.request_id.clone()),
        client_request_id: a.meta.map(|m| m.client_request_id.clone()),
        date: a.meta.and_then(|m| m.date.clone()),
        at: now_iso(),
    }
}

/// An outcome row with only a message: evidence or a reason of our own.
pub(super) fn noted(id: Uuid, result: Outcome, message: String) -> Row {
    outcome_row(id, result, Answer::new(None, message, None))
}

/// Everything one dispatch changes as events come in.
pub(super) struct Dispatcher<'o> {
    client: GraphClient,
    action: Action,
    /// Recognises our results when answers were lost.
    matcher: Arc<ResultMatcher>,
    via: String,
    batch_size: usize,
    max_in_flight: usize,
    o: &'o DispatchOptions,
    ledger: Ledger,
    state: LedgerState,
    /// Devices to send, in plan order.
    ready: VecDeque<u32>,
    /// Devices whose action results are read before they are sent, where the plan said so.
    read_ahead: Option<ReadAhead>,
    /// Devices past `--limit`, in plan order: one takes the place of each device the read-ahead
    /// skips, so a canary sends as many devices as it was asked to.
    beyond_limit: VecDeque<u32>,
    /// Devices the read-ahead skipped, per reason kind.
    skipped_at_sending: std::collections::BTreeMap<crate::SkipKind, usize>,
    /// Devices waiting out a retry delay, and whether they are looked up before they are sent.
    delayed: BinaryHeap<Reverse<(Instant, u32, bool)>>,
    /// Devices whose answer was lost, to be looked up before any resend.
    doubtful: Vec<u32>,
    /// Throttled devices whose wait is over, to be looked up before they are sent again.
    refused: Vec<u32>,
    /// Look-ups of a device that could not be read, by plan slot.
    unread_looks: HashMap<u32, u32>,
    /// Throttled items are looked up before a resend: always for BitLocker (every needless
    /// rotation adds a key toward Entra's 200), for the others under `--strict-once`.
    look_after_429: bool,
    gate: Arc<RateGate>,
    /// The pace of look-ups (reads), apart from the actions' gate.
    reads: Arc<RateGate>,
    inflight: FuturesUnordered<Flight>,
    checks: FuturesUnordered<Check>,
    acquiring: Option<Acquire>,
    /// Batch items were answered 401: the token is refreshed before the next batch.
    refresh_token: bool,
    stopping: Option<RunStop>,
    drain_deadline: Option<Instant>,
    started: Instant,
    last_sync: Instant,
    c: Counters,
    progress: Progress,
}

/// Sends every pending and in-doubt device of `state` (up to the limit) and returns how it ended.
pub(crate) async fn dispatch(
    client: &GraphClient,
    ledger: Ledger,
    state: LedgerState,
    o: &DispatchOptions,
    progress: Progress,
    stop: StopSignal,
) -> Result<RunOutcome, RotationError> {
    dispatch_looking_first(client, ledger, state, o, progress, stop, Vec::new()).await
}

/// Like [`dispatch`], with devices whose look-up could not be read before this run (`resume`'s):
/// they are looked up again before anything is sent to them, never sent unread.
pub(super) async fn dispatch_looking_first(
    client: &GraphClient,
    ledger: Ledger,
    state: LedgerState,
    o: &DispatchOptions,
    progress: Progress,
    mut stop: StopSignal,
    unread: Vec<(u32, Cause)>,
) -> Result<RunOutcome, RotationError> {
    let mut d = Dispatcher::new(client, ledger, state, o, progress);
    d.look_first(unread);
    // A token in hand before the first grant: fetched after it, the first batch would leave late
    // and bunch with the next ones in the service's first window. Errors surface with that batch.
    let _ = client.tokens().token().await;
    d.started = Instant::now();
    (d.progress)(&d.c);
    loop {
        d.release_due_retries();
        d.check_stop(&stop);
        d.start_lookups();
        d.start_reads();
        if d.done() {
            break;
        }
        if d.drain_deadline.is_some_and(|t| Instant::now() >= t) {
            tracing::warn!(
                in_flight = d.inflight.len(),
                "requests still in flight after the drain timeout; their devices stay in doubt"
            );
            break;
        }
        d.start_acquiring();
        match d.next_event(&mut stop).await {
            Event::StopAsked | Event::Timer => {}
            Event::Reply(idxs, result, rtt) => d.on_reply(idxs, result, rtt).await?,
            Event::Grant => d.on_grant()?,
            Event::LookedUp(cause, decisions) => d.on_looked_up(cause, decisions)?,
            Event::Read(read) => d.on_read(read)?,
        }
    }
    d.into_outcome()
}

impl<'o> Dispatcher<'o> {
    fn new(
        client: &GraphClient,
        ledger: Ledger,
        state: LedgerState,
        o: &'o DispatchOptions,
        progress: Progress,
    ) -> Self {
        let batch_size = o.batch_size.clamp(1, graph_batch::MAX_BATCH_SIZE);
        let matcher = Arc::new(state.header.result_matcher(&o.result_names));
        let reads = crate::reads::reads_gate_at(o.read_rate);
        let rules = state.header.action_results.and_then(|r| r.before_sending);
        let mut read_ahead = rules.map(|rules| {
            let reader = Reader {
                client: client.clone(),
                gate: reads.clone(),
                matcher: matcher.clone(),
                action: state.header.action,
            };
            ReadAhead::new(rules, reader)
        });
        let (mut ready, mut beyond_limit) = (VecDeque::new(), VecDeque::new());
        let candidates = (0..state.ids().len() as u32)
            .filter(|&i| matches!(state.state(i), DeviceState::Pending | DeviceState::InDoubt));
        let limit = o.limit.unwrap_or(usize::MAX);
        for (n, i) in candidates.enumerate() {
            if n >= limit {
                // Only a read-ahead skips devices after the plan: without one, none is needed.
                if read_ahead.is_none() {
                    break;
                }
                beyond_limit.push_back(i);
            } else {
                admit(&state, read_ahead.as_mut(), &mut ready, i);
            }
        }
        let to_send = ready.len() + read_ahead.as_ref().map_or(0, ReadAhead::queued);
        let gate = Arc::new(super::actions_gate(o, &state, batch_size as u32));
        let action = state.header.action;
        let mut c = Counters {
            to_send,
            ..Counters::default()
        };
        c.count_states(&state);
        Dispatcher {
            client: client.clone(),
            action: state.header.action,
            matcher,
            via: state.header.via.clone(),
            batch_size,
            max_in_flight: o.in_flight(),
            o,
            ledger,
            state,
            ready,
            read_ahead,
            beyond_limit,
            skipped_at_sending: Default::default(),
            delayed: BinaryHeap::new(),
            doubtful: Vec::new(),
            refused: Vec::new(),
            unread_looks: HashMap::new(),
            look_after_429: super::look_after_429(o, action),
            gate,
            reads,
            inflight: FuturesUnordered::new(),
            checks: FuturesUnordered::new(),
            acquiring: None,
            refresh_token: false,
            stopping: None,
            drain_deadline: None,
            started: Instant::now(),
            last_sync: Instant::now(),
            c,
            progress,
        }
    }

    /// Devices whose last look-up could not be read leave the queues for a look-up of their own;
    /// that look counts as their first unread one.
    fn look_first(&mut self, unread: Vec<(u32, Cause)>) {
        if unread.is_empty() {
            return;
        }
        let held: std::collections::HashSet<u32> = unread.iter().map(|(i, _)| *i).collect();
        self.ready.retain(|i| !held.contains(i));
        if let Some(ra) = self.read_ahead.as_mut() {
            ra.forget(&held);
        }
        for (i, cause) in unread {
            self.unread_looks.insert(i, 1);
            match cause {
                Cause::Throttled => self.refused.push(i),
                Cause::LostAnswer | Cause::Crash => self.doubtful.push(i),
            }
        }
    }

    /// Retries whose wait is over join the ready queue (behind what was already ready).
    fn release_due_retries(&mut self) {
        let now = Instant::now();
        while self
            .delayed
            .peek()
            .is_some_and(|Reverse((t, ..))| *t <= now)
        {
            let Reverse((_, i, look_first)) = self.delayed.pop().expect("peeked");
            if look_first {
                self.refused.push(i);
            } else {
                self.ready.push_back(i);
            }
        }
    }

    /// Stop asked or the time budget spent: nothing new leaves, answers in flight are awaited
    /// until the drain deadline.
    fn check_stop(&mut self, stop: &StopSignal) {
        if self.stopping.is_none() {
            if stop.requested() {
                self.stopping = Some(RunStop::Interrupted);
            } else if self
                .o
                .time_budget
                .is_some_and(|b| self.started.elapsed() >= b)
            {
                tracing::warn!(
                    "time budget reached: stopping; unsent devices stay pending for `resume`"
                );
                self.stopping = Some(RunStop::TimeBudget);
            }
        }
        if self.stopping.is_some() {
            self.acquiring = None;
            self.drain_deadline
                .get_or_insert(Instant::now() + self.o.drain_timeout);
        }
    }

    /// Devices whose answer was lost are looked up in Graph, never sent again blindly, twice if
    /// the first look-up comes soon after sending; throttled ones once where the policy asks.
    /// Stopping leaves them in doubt or pending: `resume` looks them up.
    fn start_lookups(&mut self) {
        if self.stopping.is_some() {
            return;
        }
        let lost = std::mem::take(&mut self.doubtful);
        let looks = Looks {
            settle: self.o.in_doubt_check_delay,
            recheck: Some(self.o.lost_answer_recheck),
        };
        self.start_lookup(Cause::LostAnswer, lost, looks);
        let refused = std::mem::take(&mut self.refused);
        let looks = Looks {
            settle: Duration::ZERO,
            recheck: None,
        };
        self.start_lookup(Cause::Throttled, refused, looks);
    }

    fn start_lookup(&mut self, cause: Cause, idxs: Vec<u32>, looks: Looks) {
        if idxs.is_empty() {
            return;
        }
        let items: Vec<(Uuid, u64)> = idxs
            .iter()
            .map(|&i| (self.state.ids()[i as usize], self.state.sent_at_ms(i)))
            .collect();
        let (client, reads) = (self.client.clone(), self.reads.clone());
        let matcher = self.matcher.clone();
        self.checks.push(Box::pin(async move {
            let decided = in_doubt::look_up(&client, &reads, &matcher, cause, &items, looks).await;
            let decisions = idxs
                .into_iter()
                .zip(decided)
                .map(|(i, (_, decision))| (i, decision))
                .collect();
            (cause, decisions)
        }));
    }

    /// Reads devices' action results a little ahead of the sending: enough to fill an empty
    /// window of the actions, and twice that, so the sending never waits on them.
    fn start_reads(&mut self) {
        if self.stopping.is_some() {
            return;
        }
        let Some(ra) = self.read_ahead.as_mut() else {
            return;
        };
        let ahead = (2 * self.o.rate.count as usize).max(2 * self.batch_size);
        ra.start(self.state.ids(), self.ready.len(), ahead);
    }

    /// Devices' action results were read: each is sent, or skipped with the plan's reason.
    fn on_read(&mut self, (asked, judged): super::read_ahead::Read) -> Result<(), RotationError> {
        let ra = self
            .read_ahead
            .as_mut()
            .expect("reads come from the read-ahead");
        ra.landed(asked.len());
        let mut answered = std::collections::HashSet::with_capacity(judged.len());
        for (i, verdict) in judged {
            answered.insert(i);
            match verdict {
                AtSending::Send => self.ready.push_back(i),
                AtSending::Skip(why) => self.skip(i, why)?,
                AtSending::Refused(why) => {
                    // Never sent unread: it stays pending, and the run stops as on a refused token.
                    self.c.to_send -= 1;
                    self.stopping.get_or_insert(RunStop::Auth(format!(
                        "devices' action results could not be read before sending ({why})"
                    )));
                }
            }
        }
        for i in asked.into_iter().filter(|i| !answered.contains(i)) {
            let ra = self
                .read_ahead
                .as_mut()
                .expect("reads come from the read-ahead");
            if ra.unanswered(i) == Unanswered::Leave {
                tracing::warn!(
                    device = %self.state.ids()[i as usize],
                    "its action results went unanswered at every read: left pending for resume, not sent unread"
                );
                self.c.to_send -= 1;
            }
        }
        self.ledger.flush()?;
        self.report();
        Ok(())
    }

    /// A device the read-ahead found the plan's rules skip: recorded with the plan's reason, and
    /// its place in a canary taken by the next device past the limit.
    fn skip(&mut self, i: u32, reason: crate::SkipReason) -> Result<(), RotationError> {
        let idx = i as usize;
        *self.skipped_at_sending.entry(reason.kind).or_default() += 1;
        let row = Row::Skipped {
            id: self.state.ids()[idx],
            reason: reason.to_string(),
        };
        self.state.record(idx as u32, &row);
        self.c.skipped += 1;
        self.ledger.append(&row)?;
        match self.beyond_limit.pop_front() {
            Some(next) => admit(&self.state, self.read_ahead.as_mut(), &mut self.ready, next),
            None => self.c.to_send -= 1,
        }
        Ok(())
    }

    /// Nothing in flight, and either stopping or nothing left to send or look up.
    fn done(&self) -> bool {
        let idle = self.ready.is_empty()
            && self.read_ahead.as_ref().is_none_or(ReadAhead::is_idle)
            && self.delayed.is_empty()
            && self.checks.is_empty()
            && self.refused.is_empty()
            && self.doubtful.is_empty();
        self.inflight.is_empty() && (self.stopping.is_some() || idle)
    }

    /// Asks the gate for the next batch while there is room in flight and something to send.
    /// While the read-ahead still has devices coming, it waits for a whole batch: the gate
    /// counts a batch whole, and a part batch would spend a window's credit on fewer devices.
    fn start_acquiring(&mut self) {
        let more_coming = self.read_ahead.as_ref().is_some_and(|ra| !ra.is_idle());
        let enough =
            self.ready.len() >= self.batch_size || (!more_coming && !self.ready.is_empty());
        if self.acquiring.is_none()
            && self.stopping.is_none()
            && enough
            && self.inflight.len() < self.max_in_flight
        {
            let (g, global) = (self.gate.clone(), self.o.global_gate.clone());
            self.acquiring = Some(Box::pin(async move {
                g.acquire_batch().await;
                if let Some(global) = global {
                    global.acquire_batch().await;
                }
            }));
        }
    }

    async fn next_event(&mut self, stop: &mut StopSignal) -> Event {
        let next_due = self.delayed.peek().map(|Reverse((t, ..))| *t);
        let wake = next_due.into_iter().chain(self.drain_deadline).min();
        let stopping = self.stopping.is_some();
        let Dispatcher {
            inflight,
            checks,
            acquiring,
            read_ahead,
            ..
        } = self;
        let reading = read_ahead.as_mut().map(|ra| &mut ra.reading);
        let reads_out = reading.as_ref().is_some_and(|r| !r.is_empty());
        tokio::select! {
            biased;
            _ = stop.changed(), if !stopping => Event::StopAsked,
            Some((idxs, result, rtt)) = inflight.next(), if !inflight.is_empty() => {
                Event::Reply(idxs, result, rtt)
            }
            _ = async { acquiring.as_mut().expect("guarded").as_mut().await }, if acquiring.is_some() => {
                Event::Grant
            }
            Some((cause, decisions)) = checks.next(), if !checks.is_empty() && !stopping => {
                Event::LookedUp(cause, decisions)
            }
            Some(read) = async { reading.expect("guarded").next().await }, if reads_out && !stopping => {
                Event::Read(read)
            }
            _ = sleep_until_opt(wake), if wake.is_some() => Event::Timer,
        }
    }

    /// A batch came back: its items are recorded, the gate learns the round trip, and the rows
    /// are handed to the OS (and made durable at least once a second).
    async fn on_reply(
        &mut self,
        idxs: Vec<u32>,
        result: Result<BatchReply, GraphClientError>,
        rtt: Duration,
    ) -> Result<(), RotationError> {
        self.gate.observe_round_trip(rtt);
        match result {
            Ok(reply) => self.handle_items(&idxs, &reply)?,
            Err(e) => self.handle_failed_batch(idxs, e)?,
        }
        if std::mem::take(&mut self.refresh_token) {
            self.client.tokens().refresh_soon().await;
        }
        self.ledger.flush()?;
        if self.last_sync.elapsed() > Duration::from_secs(1) {
            self.ledger.sync()?;
            self.last_sync = Instant::now();
        }
        self.report();
        Ok(())
    }

    /// The gate granted a batch: it is filled now (devices that became ready during the wait ride
    /// along), written ahead, and sent.
    fn on_grant(&mut self) -> Result<(), RotationError> {
        // The gate counted the batch in its window now: its round trip is timed from here.
        let granted = Instant::now();
        self.acquiring = None;
        let n = self.ready.len().min(self.batch_size);
        let idxs: Vec<u32> = self.ready.drain(..n).collect();
        if idxs.is_empty() {
            return Ok(());
        }
        let mut builder = BatchBuilder::new(self.batch_size).expect("batch size clamped to 1..=20");
        for &i in &idxs {
            let id = self.state.ids()[i as usize];
            builder.push(i, Request::action_post(self.action.path(&id, &self.via)));
        }
        let batch = builder
            .finish()
            .pop()
            .expect("one batch of at most batch_size");
        self.record_sent(&idxs)?;
        let at = self.started.elapsed().as_secs_f64();
        if self.c.first_request_secs.is_none() {
            self.c.first_request_secs = Some(at);
            self.c.first_batch_items = idxs.len();
        }
        self.c.last_request_secs = Some(at);
        let client = self.client.clone();
        self.inflight.push(Box::pin(async move {
            // The gate learns how much later than its grant a batch can reach the service, so the
            // round trip runs from the grant (a loaded process is slow to put it on the wire)
            // less any wait for a token: a token fetched first (the first batch, a refresh) would
            // read as a slow round trip for a whole history.
            let asked = Instant::now();
            let _ = client.tokens().token().await;
            let token_wait = asked.elapsed();
            let result = client.send_batch(&batch.body).await;
            (idxs, result, granted.elapsed().saturating_sub(token_wait))
        }));
        Ok(())
    }

    /// Graph answered the look-up of devices whose answer was lost or refused.
    fn on_looked_up(
        &mut self,
        cause: Cause,
        decisions: Vec<(u32, Decision)>,
    ) -> Result<(), RotationError> {
        for (i, decision) in decisions {
            match (decision, cause) {
                (Decision::Rotated(why), cause) => {
                    let answer = Answer::new(None, why, None).because(cause.retry_cause());
                    self.finish(i, Outcome::Rotated, answer)?
                }
                // Its wait is over and its retry row written: it joins the queue.
                (Decision::SendAgain(_), Cause::Throttled) => self.ready.push_back(i),
                (Decision::SendAgain(why), cause @ (Cause::LostAnswer | Cause::Crash)) => {
                    let answer = Answer::new(None, why, None).because(cause.retry_cause());
                    self.retry_later(i, answer, None, false)?
                }
                (Decision::Unread(why), cause) => self.look_again(i, cause, &why),
            }
        }
        self.ledger.flush()?;
        self.report();
        Ok(())
    }

    /// A device whose look-up could not be read is looked up again (each look-up retries its
    /// reads under backoff), never sent blind: after `UNREAD_LOOKS` it is left as it is, in doubt
    /// or waiting, for `resume` to look up.
    fn look_again(&mut self, i: u32, cause: Cause, why: &str) {
        let tries = self.unread_looks.entry(i).or_default();
        *tries += 1;
        if *tries >= UNREAD_LOOKS {
            tracing::warn!(
                device = %self.state.ids()[i as usize],
                "{why} at {UNREAD_LOOKS} look-ups: left for resume, not sent again"
            );
            return;
        }
        match cause {
            Cause::Throttled => self.refused.push(i),
            Cause::LostAnswer | Cause::Crash => self.doubtful.push(i),
        }
    }

    fn report(&mut self) {
        self.c.brakes = self.gate.brakes();
        self.c.elapsed_secs = self.started.elapsed().as_secs_f64();
        (self.progress)(&self.c);
    }

    /// The run is over: every row durable, the figures counted from the states.
    fn into_outcome(mut self) -> Result<RunOutcome, RotationError> {
        self.ledger.sync()?;
        // Synced already: a checkpoint that cannot be made costs only a slower next open.
        let _ = self.ledger.checkpoint();
        self.c.count_states(&self.state);
        self.report();
        Ok(RunOutcome {
            counters: self.c,
            stop: self.stopping.unwrap_or(RunStop::Sent),
            ledger: self.ledger.path().to_path_buf(),
            plan: None,
            skipped_at_sending: self.skipped_at_sending,
        })
    }

    /// Written ahead: the devices are durable as "sent" before the request leaves.
    fn record_sent(&mut self, idxs: &[u32]) -> Result<(), RotationError> {
        let at = now_iso();
        for &i in idxs {
            let row = Row::Sent {
                id: self.state.ids()[i as usize],
                attempt: self.state.attempts(i) + 1,
                at: at.clone(),
            };
            self.state.record(i, &row);
            self.ledger.append(&row)?;
        }
        self.ledger.sync()?;
        self.c.items_sent += idxs.len() as u64;
        self.c.batches_sent += 1;
        Ok(())
    }

    /// Records a final state for device `i`: rotated, or failed.
    fn finish(&mut self, i: u32, result: Outcome, answer: Answer<'_>) -> Result<(), RotationError> {
        let idx = i as usize;
        let row = outcome_row(self.state.ids()[idx], result, answer);
        self.state.record(idx as u32, &row);
        match result {
            Outcome::Rotated => self.c.rotated += 1,
            _ => self.c.failed += 1,
        }
        self.c.finished += 1;
        self.ledger.append(&row)
    }

    /// Schedules a device for another attempt (looked up first when `look_first`), or fails it
    /// when its attempts are used up.
    fn retry_later(
        &mut self,
        i: u32,
        mut answer: Answer<'_>,
        retry_after: Option<Duration>,
        look_first: bool,
    ) -> Result<(), RotationError> {
        let idx = i as usize;
        let attempts = self.state.attempts(idx as u32);
        if attempts >= self.o.max_attempts {
            let why = answer.message.take().unwrap_or_default();
            answer.code = Some("RetriesExhausted".into());
            answer.message = Some(format!("gave up after {attempts} attempts; last: {why}"));
            return self.finish(i, Outcome::Failed, answer);
        }
        let row = outcome_row(self.state.ids()[idx], Outcome::Retry, answer);
        self.state.record(idx as u32, &row);
        self.c.retries += 1;
        let wait = retry::delay(attempts, retry_after);
        self.delayed
            .push(Reverse((Instant::now() + wait, i, look_first)));
        self.ledger.append(&row)
    }

    /// The whole batch failed: nothing in it is known to have run, except when the answer was lost.
    fn handle_failed_batch(
        &mut self,
        idxs: Vec<u32>,
        e: GraphClientError,
    ) -> Result<(), RotationError> {
        let status = match &e {
            GraphClientError::Http { status, .. } => Some(*status),
            _ => None,
        };
        let class = e.class();
        let n = idxs.len() as u64;
        match class {
            Some(ItemClass::Throttled { retry_after }) => {
                self.c.throttled += n;
                self.gate.brake(retry_after);
            }
            Some(ItemClass::Retryable { retry_after }) => {
                self.c.server_errors += n;
                if status == Some(503)
                    && let Some(ra) = retry_after
                {
                    self.gate.pause(ra);
                }
            }
            _ if e.in_doubt() => self.c.network_errors += n,
            _ => {}
        }
        if e.is_auth() {
            // Credentials stop the run cleanly; these devices were not carried out.
            for i in idxs {
                let answer = Answer::new(status, format!("not sent: {e}"), None)
                    .because(status.map_or(RetryCause::NotSent, RetryCause::of_status));
                let row = outcome_row(self.state.ids()[i as usize], Outcome::Retry, answer);
                self.state.record(i, &row);
                self.ledger.append(&row)?;
            }
            self.stopping.get_or_insert(RunStop::Auth(e.to_string()));
            return Ok(());
        }
        for i in idxs {
            if class == Some(ItemClass::Permanent) {
                self.finish(i, Outcome::Failed, Answer::new(status, e.to_string(), None))?;
            } else if e.in_doubt() {
                // The request may have been carried out: it stays in doubt until Graph says.
                self.doubtful.push(i);
            } else {
                // A whole batch refused (429 or 5xx) ran no item: no look-up before the resend.
                let ra = e.retry_after();
                self.retry_later(i, Answer::new(status, e.to_string(), None), ra, false)?;
            }
        }
        Ok(())
    }

    /// The batch was answered: each item on its own.
    fn handle_items(&mut self, idxs: &[u32], reply: &BatchReply) -> Result<(), RotationError> {
        let now = SystemTime::now();
        let mut brake: Option<Option<Duration>> = None;
        let mut pause: Option<Duration> = None;
        for (pos, &i) in idxs.iter().enumerate() {
            let Some(item) = reply.response.item(&(pos + 1).to_string()) else {
                let why = "the batch answer did not include this item".to_string();
                let answer =
                    Answer::new(None, why, Some(&reply.meta)).because(RetryCause::ItemMissing);
                self.retry_later(i, answer, None, false)?;
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
                cause: Some(RetryCause::of_status(item.status)),
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
                    let answer = answer.or_message("throttled".into());
                    self.retry_later(i, answer, retry_after, self.look_after_429)?;
                }
                ItemClass::Retryable { retry_after } => {
                    self.c.server_errors += 1;
                    if item.status == 503
                        && let Some(ra) = retry_after
                    {
                        pause = pause.max(Some(ra));
                    }
                    let default = format!("HTTP {}", item.status);
                    self.retry_later(i, answer.or_message(default), retry_after, false)?;
                }
                ItemClass::Auth => {
                    self.refresh_token = true;
                    self.retry_later(i, answer.or_message("unauthorized".into()), None, false)?;
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

/// A device joins the sending: behind the read-ahead when its action results are still to be
/// read (never sent before), straight to the ready queue otherwise.
fn admit(
    state: &LedgerState,
    read_ahead: Option<&mut ReadAhead>,
    ready: &mut VecDeque<u32>,
    i: u32,
) {
    let unsent = state.state(i) == DeviceState::Pending && state.attempts(i) == 0;
    match read_ahead {
        Some(ra) if unsent => ra.push(i),
        _ => ready.push_back(i),
    }
}

async fn sleep_until_opt(t: Option<Instant>) {
    if let Some(t) = t {
        tokio::time::sleep_until(t.into()).await;
    }
}
