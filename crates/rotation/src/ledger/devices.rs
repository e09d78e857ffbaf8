//! The one per-device fold of a ledger.

use super::{DeviceState, IdHasher, Step};
use std::collections::HashMap;
use uuid::Uuid;

/// Every device a ledger names, in plan order, and where each stands. Replay, the run, the report
/// and export all fold their rows through here, so none can disagree on a device's slot, state,
/// attempts or last sending. 29 bytes a device, beside the index.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Devices {
    ids: Vec<Uuid>,
    states: Vec<DeviceState>,
    attempts: Vec<u32>,
    /// When each device's last request left (Unix milliseconds; 0: never): verification looks for
    /// an action that started after it.
    sent_at_ms: Vec<u64>,
    index: HashMap<Uuid, u32, IdHasher>,
}

/// A request's leaving, as a `sent` row records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sending {
    pub attempt: u32,
    /// Unix milliseconds.
    pub at_ms: u64,
}

impl Sending {
    /// A `sent` row's leaving as the readers that do not judge its time take it: a time in no
    /// layout reads as never (replay names it an error instead).
    pub fn read(attempt: u32, at: &str) -> Sending {
        Sending {
            attempt,
            at_ms: super::parse_ms(at).unwrap_or(0),
        }
    }
}

/// What one row did to the devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Folded {
    /// The row named a device for the first time (planned, or skipped), now at this slot.
    New(u32),
    /// The device at `slot` moved on from `before`.
    Moved { slot: u32, before: DeviceState },
    /// A second `planned` row: the device keeps its first place and where it stood.
    Replanned(u32),
    /// A row about a device that no `planned` or `skipped` row named before it.
    Unplanned,
}

impl Folded {
    /// The slot of the row's device, unless it was never planned.
    pub fn slot(self) -> Option<u32> {
        match self {
            Folded::New(i) | Folded::Replanned(i) | Folded::Moved { slot: i, .. } => Some(i),
            Folded::Unplanned => None,
        }
    }
}

impl Devices {
    pub fn with_capacity(n: usize) -> Self {
        Devices {
            ids: Vec::with_capacity(n),
            states: Vec::with_capacity(n),
            attempts: Vec::with_capacity(n),
            sent_at_ms: Vec::with_capacity(n),
            index: HashMap::with_capacity_and_hasher(n, IdHasher),
        }
    }

    /// Folds one row about device `id` in. Only a `planned` or `skipped` row adds a device.
    pub fn fold(&mut self, id: Uuid, step: Step, sent: Option<Sending>) -> Folded {
        match (self.index.get(&id), step) {
            (Some(&i), Step::Planned) => Folded::Replanned(i),
            (Some(&i), _) => {
                let before = self.states[i as usize];
                self.record(i, step, sent);
                Folded::Moved { slot: i, before }
            }
            (None, Step::Planned | Step::Skipped) => {
                let i = self.add(id, DeviceState::Pending, 0, 0);
                self.record(i, step, sent);
                Folded::New(i)
            }
            (None, _) => Folded::Unplanned,
        }
    }

    /// Applies a row written for the device at slot `i`: how the run moves the devices it works.
    pub fn record(&mut self, i: u32, step: Step, sent: Option<Sending>) {
        let i = i as usize;
        if let Some(s) = sent {
            self.attempts[i] = self.attempts[i].max(s.attempt);
            self.sent_at_ms[i] = s.at_ms;
        }
        self.states[i] = self.states[i].after(step);
    }

    /// Puts back a device as a checkpoint kept it; `None` if it is there already.
    pub fn restore(
        &mut self,
        id: Uuid,
        state: DeviceState,
        attempts: u32,
        sent_at_ms: u64,
    ) -> Option<u32> {
        if self.index.contains_key(&id) {
            return None;
        }
        Some(self.add(id, state, attempts, sent_at_ms))
    }

    fn add(&mut self, id: Uuid, state: DeviceState, attempts: u32, sent_at_ms: u64) -> u32 {
        let i = self.ids.len() as u32;
        self.index.insert(id, i);
        self.ids.push(id);
        self.states.push(state);
        self.attempts.push(attempts);
        self.sent_at_ms.push(sent_at_ms);
        i
    }

    /// How many devices.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The devices' ids in plan order.
    pub fn ids(&self) -> &[Uuid] {
        &self.ids
    }

    /// The slot of device `id`.
    pub fn slot(&self, id: &Uuid) -> Option<u32> {
        self.index.get(id).copied()
    }

    /// Device `i`'s state.
    pub fn state(&self, i: u32) -> DeviceState {
        self.states[i as usize]
    }

    /// Requests sent for device `i` so far.
    pub fn attempts(&self, i: u32) -> u32 {
        self.attempts[i as usize]
    }

    /// When device `i`'s last request left (Unix milliseconds; 0: never).
    pub fn sent_at_ms(&self, i: u32) -> u64 {
        self.sent_at_ms[i as usize]
    }

    /// Every device's state, in plan order.
    pub fn states(&self) -> impl Iterator<Item = DeviceState> + '_ {
        self.states.iter().copied()
    }

    /// When each device's last request left, in plan order.
    pub fn sent_times(&self) -> impl Iterator<Item = u64> + '_ {
        self.sent_at_ms.iter().copied()
    }

    /// How many devices stand in `state`.
    pub fn count(&self, state: DeviceState) -> usize {
        self.states.iter().filter(|&&s| s == state).count()
    }

    /// The devices by slot without the index, for a reader done folding (export's second pass):
    /// a million devices' index is some 30 MB it no longer needs.
    pub fn into_table(self) -> DeviceTable {
        DeviceTable {
            ids: self.ids,
            states: self.states,
            attempts: self.attempts,
        }
    }
}

/// What a finished fold keeps of each device, by slot.
#[derive(Debug, Clone, Default)]
pub struct DeviceTable {
    pub ids: Vec<Uuid>,
    pub states: Vec<DeviceState>,
    pub attempts: Vec<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::Outcome;

    const A: Uuid = Uuid::from_u128(0x0000_0000_0000_4000_8000_0000_0000_000a);
    const B: Uuid = Uuid::from_u128(0x0000_0000_0000_4000_8000_0000_0000_000b);

    fn sent(attempt: u32, at_ms: u64) -> Option<Sending> {
        Some(Sending { attempt, at_ms })
    }

    #[test]
    fn a_planned_device_takes_the_next_slot_and_starts_pending() {
        let mut d = Devices::default();
        assert_eq!(d.fold(A, Step::Planned, None), Folded::New(0));
        assert_eq!(d.fold(B, Step::Planned, None), Folded::New(1));
        assert_eq!(d.ids(), [A, B]);
        assert_eq!(d.state(1), DeviceState::Pending);
    }

    #[test]
    fn a_device_planned_twice_keeps_its_first_place_and_state() {
        let mut d = Devices::default();
        d.fold(A, Step::Planned, None);
        d.fold(A, Step::Sent, sent(1, 5));
        assert_eq!(d.fold(A, Step::Planned, None), Folded::Replanned(0));
        assert_eq!((d.len(), d.state(0)), (1, DeviceState::InDoubt));
    }

    #[test]
    fn a_skipped_row_alone_adds_its_device_skipped() {
        let mut d = Devices::default();
        assert_eq!(d.fold(A, Step::Skipped, None), Folded::New(0));
        assert_eq!(d.state(0), DeviceState::Skipped);
    }

    #[test]
    fn a_row_about_a_device_never_planned_changes_nothing() {
        let mut d = Devices::default();
        assert_eq!(d.fold(A, Step::Sent, sent(1, 5)), Folded::Unplanned);
        assert!(d.is_empty());
    }

    #[test]
    fn a_move_says_where_the_device_stood_before() {
        let mut d = Devices::default();
        d.fold(A, Step::Planned, None);
        d.fold(A, Step::Sent, sent(1, 5));
        let moved = d.fold(A, Step::Outcome(Outcome::Rotated), None);
        assert_eq!(
            moved,
            Folded::Moved {
                slot: 0,
                before: DeviceState::InDoubt
            }
        );
        assert_eq!(d.state(0), DeviceState::Rotated);
    }

    #[test]
    fn attempts_keep_the_highest_and_the_time_is_the_last_sending() {
        let mut d = Devices::default();
        d.fold(A, Step::Planned, None);
        d.fold(A, Step::Sent, sent(2, 9));
        d.fold(A, Step::Sent, sent(1, 12));
        assert_eq!((d.attempts(0), d.sent_at_ms(0)), (2, 12));
    }

    #[test]
    fn a_restored_device_is_refused_a_second_time() {
        let mut d = Devices::default();
        assert_eq!(d.restore(A, DeviceState::Rotated, 1, 7), Some(0));
        assert_eq!(d.restore(A, DeviceState::Pending, 0, 0), None);
        assert_eq!(d.slot(&A), Some(0));
    }
}
