//! The rate gate: the service's sliding window, a governor quota counted per item, and an
//! adaptive brake.
//!
//! Intune counts the items that arrive in any 20 s, so an empty window admits its whole quota at
//! once. While no pushback was seen the window alone paces ([`SlidingWindow`]): a new run spends
//! the first window's credit at once and each later batch as soon as the oldest leave the window,
//! which finishes N devices in about (ceil(N/Q) - 1) windows plus a round trip. The first 429 says
//! someone else shares the limit (another app in the tenant-wide budget, or this app a moment
//! ago): from then on governor paces evenly under the window, as before.
//!
//! governor's quota cannot change in place, so slowing down replaces the limiter and a shared
//! "pause until" holds every sender after a 429 or a 503 with Retry-After. The gate rides at a small
//! headroom under the configured ceiling because the service counts arrivals, and network jitter can
//! bunch requests that left evenly spaced.
//!
//! The headroom grows with the jitter the gate sees: the spread of recent round trips is how much
//! later one batch can arrive than another sent as long after it, and that slice of the window
//! (plus a little) is left unused when it exceeds the configured headroom. The whole spread, not
//! half: a loaded path queues requests before the service counts them, so a slow round trip is
//! slow on the way there (measured: 2,000 tenants starting at once on two cores, where half the
//! spread let about one batch in fifty through early, each a 429). Only the round trips of the
//! last two windows count: the items in the service's window left within one, so an older slow
//! spell (a loaded start) says nothing about how the window's items arrive now.
//!
//! A batch's items are taken in one wait, with the bucket holding one batch and one item more:
//! waiting item by item with a bucket of one loses each timer's lateness for good (about 3 % of the
//! rate at 100 items/s), and so does a bucket of exactly one batch, which must be full to grant and
//! cannot bank the time a wake-up comes late (about 0.5 %). The spare item absorbs a late wake-up of
//! up to one item's period; it can never put more than one item extra into a window of the service,
//! so it is kept only where the headroom leaves room for one.
//! A short batch pays for a full one (see [`RateGate::acquire_batch`]).

use crate::sliding_window::SlidingWindow;
use governor::{DefaultDirectRateLimiter, Quota as GovQuota, RateLimiter};
use graph_batch::Quota;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const MIN_FACTOR: f64 = 0.25;

#[derive(Debug)]
struct GateState {
    limiter: Arc<DefaultDirectRateLimiter>,
    factor: f64,
    pause_until: Option<Instant>,
    /// Last 429: recovery waits for a quiet spell after it.
    last_brake: Option<Instant>,
    /// Last time the rate was lowered: at most one step down a second, however many items of the
    /// same burst were throttled.
    last_slowdown: Option<Instant>,
    brakes: u64,
    /// Share of the quota kept unused: the configured floor, or more when round trips vary.
    headroom: f64,
    /// Recent round trips and when each ended, oldest first.
    round_trips: std::collections::VecDeque<(Instant, Duration)>,
    /// The service's window as our grants fill it.
    window: SlidingWindow,
    /// The window alone paces (each window's credit spent as soon as it frees) until the first
    /// pushback says someone else shares the limit; from then on governor paces evenly.
    bursting: bool,
    /// Items the window may take at once: past this, governor paces evenly up to the quota.
    burst_cap: u32,
}

/// Round trips remembered for the jitter estimate, at most.
const ROUND_TRIPS: usize = 128;
/// Round trips older than this many windows are forgotten.
const ROUND_TRIP_WINDOWS: u32 = 2;
/// Added to the jitter's share of the window, for the estimate's own error.
const JITTER_SAFETY: f64 = 0.0025;
/// Headroom never grows past this, whatever the jitter.
const MAX_HEADROOM: f64 = 0.2;

/// Paces items to the tenant's quota; shared by everything that sends.
#[derive(Debug)]
pub struct RateGate {
    quota: Quota,
    /// The configured floor of the headroom.
    headroom: f64,
    /// Items in the largest batch: one acquire takes at most this many.
    batch: NonZeroU32,
    /// The bucket: one batch and one item.
    burst: NonZeroU32,
    state: Mutex<GateState>,
    /// Woken when the limiter is replaced: a wait on the old one restarts on the new one, or two
    /// schedules would overlap and let one batch too many through.
    replaced: tokio::sync::Notify,
}

/// A limiter that replaces a running one: its bucket starts empty, or every replacement (each brake,
/// each headroom change) would hand out a free batch and overfill the service's window.
fn replacement(quota: Quota, share: f64, burst: NonZeroU32) -> Arc<DefaultDirectRateLimiter> {
    let l = limiter(quota, share, burst);
    let _ = l.check_n(burst);
    l
}

/// A limiter that takes over a running schedule at a new rate: the next batch is due when the old
/// limiter would have had it ready (to within one item). Draining it instead would lose up to a
/// batch's time at each change of the headroom, a percent or two of a run.
fn carried_over(
    old: &DefaultDirectRateLimiter,
    quota: Quota,
    share: f64,
    burst: NonZeroU32,
) -> Arc<DefaultDirectRateLimiter> {
    use governor::clock::Clock;
    let wait = match old.check_n(burst) {
        Ok(Ok(())) => Duration::ZERO,
        Ok(Err(not_until)) => not_until.wait_time_from(old.clock().now()),
        Err(_) => return replacement(quota, share, burst),
    };
    let l = limiter(quota, share, burst);
    let cells = (wait.as_secs_f64() / period(quota, share).as_secs_f64()).ceil();
    if let Some(n) = NonZeroU32::new((cells as u32).min(burst.get())) {
        let _ = l.check_n(n);
    }
    l
}

fn period(quota: Quota, share: f64) -> Duration {
    quota
        .window
        .div_f64(f64::from(quota.count) * share)
        .max(Duration::from_micros(1))
}

fn limiter(quota: Quota, share: f64, burst: NonZeroU32) -> Arc<DefaultDirectRateLimiter> {
    let per_item = period(quota, share);
    let q = GovQuota::with_period(per_item)
        .expect("period is positive")
        .allow_burst(burst);
    Arc::new(RateLimiter::direct(q))
}

impl RateGate {
    /// `headroom` is the share of the quota kept unused (0.02 rides at 98 %); `batch` the items one
    /// [`RateGate::acquire_batch`] pays for.
    pub fn new(quota: Quota, headroom: f64, batch: u32) -> Self {
        let headroom = headroom.clamp(0.0, 0.5);
        let batch = NonZeroU32::new(batch.max(1)).expect("at least one");
        // The spare item is safe only when the headroom leaves at least one item of room in a
        // window (a quota of 50 or more at 2 %); below that it could overfill one.
        let spare = u32::from(f64::from(quota.count) * headroom >= 1.0);
        let burst = batch.saturating_add(spare);
        RateGate {
            quota,
            headroom,
            batch,
            burst,
            replaced: tokio::sync::Notify::new(),
            state: Mutex::new(GateState {
                limiter: limiter(quota, 1.0 - headroom, burst),
                factor: 1.0,
                pause_until: None,
                last_brake: None,
                last_slowdown: None,
                brakes: 0,
                headroom,
                round_trips: std::collections::VecDeque::with_capacity(ROUND_TRIPS),
                window: SlidingWindow::new(quota.count, quota.window),
                bursting: true,
                burst_cap: quota.count,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current share of the configured rate (1.0 when not braked).
    /// The quota the gate paces to.
    pub fn quota(&self) -> Quota {
        self.quota
    }

    pub fn factor(&self) -> f64 {
        self.lock().factor
    }

    pub fn brakes(&self) -> u64 {
        self.lock().brakes
    }

    /// Waits until one batch may be sent. A batch pays for a full one however few its items: the
    /// service counts a batch's items at one instant, so a short batch paid item by item would come
    /// sooner than a full one and put more than the quota into a window (the last batch of a run at
    /// 200/20s did: ten full batches and nine items more).
    ///
    /// While no pushback was seen, the window alone decides: an empty window's whole credit goes at
    /// once, and each later batch as soon as the oldest leave the window. After a 429, governor
    /// paces evenly under the window, as a polite neighbour in a shared tenant-wide limit.
    pub async fn acquire_batch(&self) {
        let n = self.batch;
        loop {
            self.wait_pause().await;
            let replaced = self.replaced.notified();
            tokio::pin!(replaced);
            // Registered before the state is read, so a change after this point wakes us.
            replaced.as_mut().enable();
            let (bursting, limiter, room) = {
                let mut s = self.lock();
                let now = Instant::now();
                let margin = self.margin(&s);
                let room = s.window.room_at(n.get(), now, margin);
                let held = s.window.held();
                if s.bursting && room.is_none() && held + n.get() <= s.burst_cap {
                    s.window.record(n.get(), now);
                    return;
                }
                // Past the burst cap, governor paces the rest of the window's credit.
                (
                    s.bursting && held + n.get() <= s.burst_cap,
                    s.limiter.clone(),
                    room,
                )
            };
            if bursting {
                let until = room.expect("no room: that is why we wait");
                tokio::select! {
                    () = tokio::time::sleep_until(until.into()) => {}
                    () = &mut replaced => {}
                }
                continue;
            }
            tokio::select! {
                ready = limiter.until_n_ready(n) => {
                    ready.expect("a batch never exceeds the burst");
                }
                () = &mut replaced => continue,
            }
            // A pause that began during the wait still holds this batch.
            self.wait_pause().await;
            self.take_window_room(n.get()).await;
            return;
        }
    }

    /// Waits until the window has room for `n` items and records them (paced by governor, it
    /// nearly always has).
    async fn take_window_room(&self, n: u32) {
        loop {
            let wait = {
                let mut s = self.lock();
                let now = Instant::now();
                let margin = self.margin(&s);
                match s.window.room_at(n, now, margin) {
                    None => {
                        s.window.record(n, now);
                        return;
                    }
                    Some(at) => at,
                }
            };
            tokio::time::sleep_until(wait.into()).await;
        }
    }

    /// How much later one request may reach the service than another: the headroom in time.
    fn margin(&self, s: &GateState) -> Duration {
        self.quota.window.mul_f64(s.headroom)
    }

    /// Shares a tenant-wide limit of `tenant` with other apps: an app may take at once only what
    /// leaves another app room for its own quota (`tenant - quota`, all of it at Intune's
    /// documented 400 against 200), so two apps starting at once never overfill the tenant.
    pub fn share_tenant(&self, tenant: Quota) {
        let per_window =
            f64::from(tenant.count) * self.quota.window.as_secs_f64() / tenant.window.as_secs_f64();
        let room = (per_window as u32).saturating_sub(self.quota.count);
        self.lock().burst_cap = room.clamp(self.batch.get(), self.quota.count);
    }

    /// Starts paced by governor, as when the window may not be empty and nothing tells how full
    /// it is (`--no-cold-start`).
    pub fn warm_start(&self) {
        self.lock().bursting = false;
        self.replaced.notify_waiters();
    }

    /// Items of ours sent at these instants (read back from the ledger on `resume`) still count
    /// in the service's window.
    pub fn assume_sent(&self, mut sent: Vec<(Instant, u32)>) {
        sent.sort();
        let mut s = self.lock();
        for (at, n) in sent {
            s.window.record(n, at);
        }
    }

    /// Returns once no pause is in force (and lets the rate recover after a quiet spell).
    async fn wait_pause(&self) {
        loop {
            let pause = {
                let mut s = self.lock();
                self.recover(&mut s);
                s.pause_until.filter(|&p| p > Instant::now())
            };
            match pause {
                Some(until) => tokio::time::sleep_until(until.into()).await,
                None => return,
            }
        }
    }

    /// The headroom in force now.
    pub fn headroom(&self) -> f64 {
        self.lock().headroom
    }

    /// Learns from one batch's round trip; widens (or narrows back) the headroom to the jitter.
    pub fn observe_round_trip(&self, rtt: Duration) {
        self.observe_round_trip_at(rtt, Instant::now());
    }

    fn observe_round_trip_at(&self, rtt: Duration, now: Instant) {
        let mut s = self.lock();
        let horizon = self.quota.window * ROUND_TRIP_WINDOWS;
        while s.round_trips.len() == ROUND_TRIPS
            || s.round_trips
                .front()
                .is_some_and(|&(at, _)| now.saturating_duration_since(at) > horizon)
        {
            s.round_trips.pop_front();
        }
        s.round_trips.push_back((now, rtt));
        if s.round_trips.len() < 4 {
            return;
        }
        let (lo, hi) = s
            .round_trips
            .iter()
            .fold((Duration::MAX, Duration::ZERO), |(lo, hi), &(_, r)| {
                (lo.min(r), hi.max(r))
            });
        // Few samples understate the range: a tenant starting on a loaded machine sees only slow
        // round trips, and its next batch may yet arrive at once. Until the history holds many,
        // assume a batch may arrive as late as the slowest round trip (measured: assuming their
        // mean let 335 of 2,000 tenants starting at once send their sixth batch early).
        let spread = if s.round_trips.len() < ROUND_TRIPS / 4 {
            hi.as_secs_f64()
        } else {
            (hi - lo).as_secs_f64()
        };
        let wanted = (spread / self.quota.window.as_secs_f64() + JITTER_SAFETY)
            .clamp(self.headroom, MAX_HEADROOM);
        // Replace the limiter only for a real change: each replacement starts a fresh bucket.
        if (wanted - s.headroom).abs() > 0.002 {
            tracing::debug!(
                headroom = wanted,
                spread_secs = spread,
                "headroom follows the round-trip jitter"
            );
            s.headroom = wanted;
            s.limiter = carried_over(
                &s.limiter,
                self.quota,
                s.factor * (1.0 - wanted),
                self.burst,
            );
            self.replaced.notify_waiters();
        }
    }

    /// A 503 with Retry-After: hold all sending until then, without slowing down.
    pub fn pause(&self, retry_after: Duration) {
        let mut s = self.lock();
        let until = Instant::now() + retry_after;
        s.pause_until = Some(s.pause_until.map_or(until, |p| p.max(until)));
    }

    /// Throttled: hold all sending until `retry_after` has passed and slow down.
    pub fn brake(&self, retry_after: Option<Duration>) {
        let mut s = self.lock();
        let now = Instant::now();
        let pause = retry_after.unwrap_or(Duration::from_secs(1));
        s.pause_until = Some(s.pause_until.map_or(now + pause, |p| p.max(now + pause)));
        // One slowdown per burst of pushback, not one per throttled item of the same batch.
        if s.last_slowdown
            .is_none_or(|t| now.duration_since(t) > Duration::from_secs(1))
        {
            s.factor = (s.factor * 0.95).max(MIN_FACTOR);
            tracing::debug!(
                factor = s.factor,
                pause_secs = pause.as_secs_f64(),
                "throttled: slowing down"
            );
            s.limiter = replacement(self.quota, s.factor * (1.0 - s.headroom), self.burst);
            if s.bursting {
                tracing::info!(
                    "throttled: the limit is shared with others; pacing evenly from now on"
                );
                s.bursting = false;
            }
            self.replaced.notify_waiters();
            s.brakes += 1;
            s.last_slowdown = Some(now);
        }
        s.last_brake = Some(now);
    }

    /// After a quarter of a window without pushback the rate climbs back by 2 % of the ceiling: a
    /// 429 says the margin was too thin, so the rate settles just under where they start.
    fn recover(&self, s: &mut GateState) {
        if s.factor >= 1.0 {
            return;
        }
        let now = Instant::now();
        if s.last_brake
            .is_some_and(|t| now.duration_since(t) >= self.quota.window / 4)
        {
            s.factor = (s.factor + 0.02).min(1.0);
            s.limiter = carried_over(
                &s.limiter,
                self.quota,
                s.factor * (1.0 - s.headroom),
                self.burst,
            );
            self.replaced.notify_waiters();
            s.last_brake = Some(now);
        }
    }
}

/// Latency the automatic concurrency absorbs without slowing below the rate.
const LATENCY_BUDGET: std::time::Duration = std::time::Duration::from_secs(5);

/// Batches of `batch` items to keep in flight at `rate`: enough to spend an empty window's
/// credit at once and to keep the full rate through `LATENCY_BUDGET` of round trip. The
/// dispatcher's sends and the plan's and look-ups' reads are sized by this one rule.
pub(crate) fn batches_in_flight(rate: graph_batch::Quota, batch: usize) -> usize {
    let batch = batch.max(1) as f64;
    let batches_per_sec = rate.per_second() / batch;
    let steady = (batches_per_sec * LATENCY_BUDGET.as_secs_f64()).ceil() as usize;
    let window = (f64::from(rate.count) / batch).ceil() as usize;
    steady.max(window).clamp(2, 64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn braking_slows_down_once_per_burst_and_never_below_a_quarter() {
        let g = RateGate::new(Quota::new(200, Duration::from_secs(20)), 0.02, 20);
        g.brake(Some(Duration::from_millis(1)));
        g.brake(Some(Duration::from_millis(1)));
        assert!((g.factor() - 0.95).abs() < 1e-9);
        assert_eq!(g.brakes(), 1);
        for _ in 0..50 {
            g.lock().last_slowdown = None;
            g.brake(None);
        }
        assert!((g.factor() - MIN_FACTOR).abs() < 1e-9);
    }

    #[test]
    fn the_rate_recovers_after_a_quiet_window() {
        let g = RateGate::new(Quota::new(200, Duration::from_millis(50)), 0.0, 20);
        g.brake(Some(Duration::ZERO));
        let before = g.factor();
        let mut s = g.lock();
        s.last_brake = Some(Instant::now() - Duration::from_millis(60));
        g.recover(&mut s);
        assert!(s.factor > before);
    }

    #[test]
    fn jittery_round_trips_widen_the_headroom_and_steady_ones_keep_the_floor() {
        let g = RateGate::new(Quota::new(200, Duration::from_secs(20)), 0.02, 20);
        for _ in 0..10 {
            g.observe_round_trip(Duration::from_millis(100));
        }
        assert!((g.headroom() - 0.02).abs() < 1e-9);
        for ms in [500, 1500, 800, 1200] {
            g.observe_round_trip(Duration::from_millis(ms));
        }
        // Few round trips, the slowest 1.5 s: arrivals up to 1.5 s late, 7.5 % of a 20 s window,
        // plus the safety.
        assert!((g.headroom() - 0.0775).abs() < 1e-9, "{}", g.headroom());
        for _ in 0..ROUND_TRIPS {
            g.observe_round_trip(Duration::from_secs(30));
        }
        assert!(
            (g.headroom() - 0.02).abs() < 1e-9,
            "steady again: back to the floor"
        );
    }

    #[test]
    fn a_slow_spell_older_than_two_windows_no_longer_widens_the_headroom() {
        let window = Duration::from_secs(20);
        let g = RateGate::new(Quota::new(200, window), 0.02, 20);
        let start = Instant::now();
        let at = |s: f64| start + Duration::from_secs_f64(s);
        // A loaded start: round trips between 0.1 s and 3 s.
        for (i, ms) in [100, 3000, 200, 2500, 150, 2800].into_iter().enumerate() {
            g.observe_round_trip_at(Duration::from_millis(ms), at(i as f64));
        }
        assert!(g.headroom() > 0.14, "{}", g.headroom());
        // Steady after it, for a window: the spell is still within the last two.
        for i in 0..40 {
            g.observe_round_trip_at(Duration::from_millis(100), at(10.0 + f64::from(i) * 0.5));
        }
        assert!(g.headroom() > 0.14, "{}", g.headroom());
        // Steady for two windows more: only the steady round trips are remembered.
        for i in 0..80 {
            g.observe_round_trip_at(Duration::from_millis(100), at(30.0 + f64::from(i) * 0.5));
        }
        assert!((g.headroom() - 0.02).abs() < 1e-9, "{}", g.headroom());
    }

    #[test]
    fn the_spare_item_is_kept_only_where_the_headroom_has_room_for_it() {
        let window = Duration::from_secs(20);
        assert_eq!(
            RateGate::new(Quota::new(200, window), 0.02, 20).burst.get(),
            21
        );
        assert_eq!(
            RateGate::new(Quota::new(40, window), 0.02, 20).burst.get(),
            20
        );
        assert_eq!(
            RateGate::new(Quota::new(200, window), 0.0, 20).burst.get(),
            20
        );
    }

    #[test]
    fn a_replaced_limiter_takes_over_the_old_schedule() {
        // One item a second: nothing here moves in the microseconds the test takes.
        let (q, burst) = (
            Quota::new(20, Duration::from_secs(20)),
            NonZeroU32::new(20).unwrap(),
        );
        let ready = |l: &DefaultDirectRateLimiter, n: u32| {
            matches!(l.check_n(NonZeroU32::new(n).unwrap()), Ok(Ok(())))
        };
        let full = limiter(q, 1.0, burst);
        assert!(
            ready(&carried_over(&full, q, 0.9, burst), 20),
            "a full bucket stays full"
        );
        let half = limiter(q, 1.0, burst);
        assert!(ready(&half, 10));
        let next = carried_over(&half, q, 1.0, burst);
        assert!(ready(&next, 10), "the ten items the old one still had");
        assert!(!ready(&next, 1), "and not one more");
        let empty = replacement(q, 1.0, burst);
        assert!(
            !ready(&carried_over(&empty, q, 1.0, burst), 1),
            "an empty one stays empty"
        );
    }

    #[tokio::test]
    async fn a_pause_holds_acquisition() {
        let g = RateGate::new(Quota::new(1000, Duration::from_secs(1)), 0.0, 20);
        g.brake(Some(Duration::from_millis(30)));
        let start = Instant::now();
        g.acquire_batch().await;
        assert!(
            start.elapsed() >= Duration::from_millis(25),
            "acquire returned during the pause"
        );
    }
}
