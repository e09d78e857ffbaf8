//! The service's sliding window as the rate gate sees it: Intune counts the items that *arrive* in
//! any 20 s, so an empty window admits its whole quota at once, and a window is full until its
//! oldest items leave it. governor's token bucket cannot say that; this can.
//!
//! Jitter is paid in time, not in items: a grant at `t` holds its items until `t + window +
//! margin`, where `margin` bounds how much later one request may reach the service than another.
//! Two grants that arrive less than a window apart then left less than `window + margin` apart,
//! so both are held when the later one is granted, and no window the service counts ever holds
//! more than the quota.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Grants still held, oldest first.
#[derive(Debug, Clone)]
pub(crate) struct SlidingWindow {
    quota: u32,
    window: Duration,
    grants: VecDeque<(Instant, u32)>,
    held: u32,
}

impl SlidingWindow {
    pub(crate) fn new(quota: u32, window: Duration) -> Self {
        SlidingWindow {
            quota: quota.max(1),
            window,
            grants: VecDeque::new(),
            held: 0,
        }
    }

    /// Forgets the grants that no longer count at `now`.
    fn expire(&mut self, now: Instant, margin: Duration) {
        while let Some(&(t, n)) = self.grants.front() {
            if t + self.window + margin > now {
                break;
            }
            self.grants.pop_front();
            self.held -= n;
        }
    }

    /// When `n` more items fit: `None` for now, else the instant the oldest grants make room.
    /// More than the quota never fits; it is asked for as the whole quota.
    pub(crate) fn room_at(&mut self, n: u32, now: Instant, margin: Duration) -> Option<Instant> {
        self.expire(now, margin);
        let n = n.min(self.quota);
        if self.held + n <= self.quota {
            return None;
        }
        let mut freed = 0;
        for &(t, k) in &self.grants {
            freed += k;
            if self.held - freed + n <= self.quota {
                return Some(t + self.window + margin);
            }
        }
        unreachable!("with every grant gone, n <= quota fits")
    }

    /// Items held, as of the last look ([`SlidingWindow::room_at`] forgets what left).
    pub(crate) fn held(&self) -> u32 {
        self.held
    }

    /// Records `n` items granted at `at` (grants are recorded in time order).
    pub(crate) fn record(&mut self, n: u32, at: Instant) {
        let at = self.grants.back().map_or(at, |&(last, _)| at.max(last));
        self.grants.push_back((at, n));
        self.held += n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn an_empty_window_admits_its_whole_quota_at_once_then_waits_for_the_oldest() {
        let t0 = Instant::now();
        let margin = Duration::from_millis(400);
        let mut w = SlidingWindow::new(200, Duration::from_secs(20));
        for _ in 0..10 {
            assert_eq!(w.room_at(20, t0, margin), None);
            w.record(20, t0);
        }
        let due = w.room_at(20, t0, margin).expect("full");
        assert_eq!(due, t0 + Duration::from_secs(20) + margin);
        assert_eq!(w.room_at(20, due, margin), None);
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        /// Greedy senders, late wake-ups and random arrival delays up to the margin: no window of
        /// the service's ever counts more than the quota.
        #[test]
        fn no_window_the_service_counts_holds_more_than_the_quota(
            quota in 20u32..400,
            batch in 1u32..=20,
            window_ms in 1_000u64..30_000,
            margin_ms in 0u64..2_000,
            delays in proptest::collection::vec(0.0f64..=1.0, 40..200),
            lateness in proptest::collection::vec(0u64..50, 40..200),
        ) {
            let (window, margin) = (Duration::from_millis(window_ms), Duration::from_millis(margin_ms));
            let t0 = Instant::now();
            let mut w = SlidingWindow::new(quota, window);
            let mut now = t0;
            let mut arrivals: Vec<(Instant, u32)> = Vec::new();
            for (k, &d) in delays.iter().enumerate() {
                if let Some(at) = w.room_at(batch, now, margin) {
                    now = at + Duration::from_millis(lateness[k % lateness.len()]);
                    prop_assert_eq!(w.room_at(batch, now, margin), None);
                }
                w.record(batch, now);
                arrivals.push((now + margin.mul_f64(d), batch));
            }
            arrivals.sort();
            for (i, &(a, _)) in arrivals.iter().enumerate() {
                let in_window: u32 = arrivals[i..]
                    .iter()
                    .take_while(|(b, _)| *b < a + window)
                    .map(|(_, n)| n)
                    .sum();
                prop_assert!(in_window <= quota, "{in_window} > {quota} in the window from {:?}", a - t0);
            }
        }
    }
}
