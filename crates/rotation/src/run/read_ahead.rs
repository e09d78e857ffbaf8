//! Devices' action results read just before the devices are sent, where the listing leaves them
//! out (graph-facts §11). The reads run a little ahead of the sending, under a quota apart from
//! the actions', so a device with an action still pending, or rotated recently, is skipped with
//! the plan's reason, and the run takes barely longer than its sending. A device whose read is
//! not answered is never sent unread: it is read again, then left pending for `resume`.

use crate::device_facts::{AtSending, results_request};
use crate::reads::read_all;
use crate::{Action, RateGate, ResultMatcher, SendTimeRules};
use futures::stream::FuturesUnordered;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use uuid::Uuid;

/// The devices one read asked for, and what the answered ones came to.
pub(super) type Read = (Vec<u32>, Vec<(u32, AtSending)>);
/// One read on the wire.
pub(super) type Reading = Pin<Box<dyn Future<Output = Read> + Send>>;

/// Devices asked for in one read: one `$batch`, so a read that is slow under faults holds back
/// only its own devices.
const CHUNK: usize = graph_batch::MAX_BATCH_SIZE;
/// Reads on the wire at once.
const IN_FLIGHT: usize = 10;
/// Reads of a device that go unanswered before it is left pending for `resume`.
const UNANSWERED_READS: u32 = 3;

/// The devices still to read, and the reads on the wire.
pub(super) struct ReadAhead {
    rules: SendTimeRules,
    reader: Reader,
    /// Devices still to read, in plan order.
    queue: VecDeque<u32>,
    pub(super) reading: FuturesUnordered<Reading>,
    /// Devices in the reads on the wire.
    in_reading: usize,
    /// Unanswered reads per device.
    unanswered: HashMap<u32, u32>,
}

/// What to do with a device whose read went unanswered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Unanswered {
    ReadAgain,
    /// Left pending, unsent, for `resume`.
    Leave,
}

impl ReadAhead {
    pub(super) fn new(rules: SendTimeRules, reader: Reader) -> Self {
        ReadAhead {
            rules,
            reader,
            queue: VecDeque::new(),
            reading: FuturesUnordered::new(),
            in_reading: 0,
            unanswered: HashMap::new(),
        }
    }

    /// Adds a device to read (behind those already waiting).
    pub(super) fn push(&mut self, i: u32) {
        self.queue.push_back(i);
    }

    /// Takes `slots` out of the queue: they are looked up instead.
    pub(super) fn forget(&mut self, slots: &std::collections::HashSet<u32>) {
        self.queue.retain(|i| !slots.contains(i));
    }

    /// Devices waiting to be read.
    pub(super) fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Nothing left to read and nothing on the wire.
    pub(super) fn is_idle(&self) -> bool {
        self.queue.is_empty() && self.reading.is_empty()
    }

    /// Starts reads while fewer than `ahead` devices are ready to send or being read.
    pub(super) fn start(&mut self, ids: &[Uuid], ready: usize, ahead: usize) {
        while !self.queue.is_empty()
            && self.reading.len() < IN_FLIGHT
            && ready + self.in_reading < ahead
        {
            let n = self.queue.len().min(CHUNK);
            let slots: Vec<u32> = self.queue.drain(..n).collect();
            self.in_reading += slots.len();
            self.reading.push(self.reader.read(slots, ids, self.rules));
        }
    }

    /// A read came back: its devices are off the wire.
    pub(super) fn landed(&mut self, asked: usize) {
        self.in_reading -= asked;
    }

    /// A device whose read went unanswered: read again at the back of the queue, or left.
    pub(super) fn unanswered(&mut self, i: u32) -> Unanswered {
        let tries = self.unanswered.entry(i).or_default();
        *tries += 1;
        if *tries >= UNANSWERED_READS {
            return Unanswered::Leave;
        }
        self.queue.push_back(i);
        Unanswered::ReadAgain
    }
}

/// What a read needs of the run: the client, the reads' gate and the matcher of our results.
pub(super) struct Reader {
    pub client: graph_client::GraphClient,
    pub gate: Arc<RateGate>,
    pub matcher: Arc<ResultMatcher>,
    pub action: Action,
}

impl Reader {
    fn read(&self, slots: Vec<u32>, ids: &[Uuid], rules: SendTimeRules) -> Reading {
        let requests: Vec<(u32, graph_batch::Request)> = slots
            .iter()
            .map(|&i| (i, results_request(&ids[i as usize])))
            .collect();
        let (client, gate) = (self.client.clone(), self.gate.clone());
        let (matcher, action) = (self.matcher.clone(), self.action);
        Box::pin(async move {
            let read = read_all(&client, &gate, requests).await;
            let judged = read
                .into_iter()
                .map(|(i, r)| (i, rules.judge(action, &matcher, &r)))
                .collect();
            (slots, judged)
        })
    }
}
