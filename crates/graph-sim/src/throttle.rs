//! Intune's throttling as the service applies it: sliding 20 s windows counted per request (each
//! `$batch` item on its own), per app and per tenant. What happens to a client that keeps coming
//! back early is a model (`ThrottleModel`), chosen per run: only the counting is documented.

use crate::Quota;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// What the service does with requests beyond the limit (docs/graph-sim.md, docs/graph-facts.md §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ThrottleModel {
    /// Throttled requests count in the window too ("all requests accrue against your usage
    /// limits"), and Retry-After grows for an app that keeps arriving before it.
    #[default]
    Accrue,
    /// A per-app block that every early request extends by a second: harsher than anything
    /// documented, kept to show what a client does under it.
    Block,
    /// Only admitted requests count; no penalty of any kind.
    None,
}

/// Requests counted inside one sliding window.
#[derive(Debug)]
pub struct Window {
    quota: Quota,
    hits: VecDeque<Instant>,
}

impl Window {
    pub fn new(quota: Quota) -> Self {
        Window {
            quota,
            hits: VecDeque::new(),
        }
    }

    /// `None` when there is room now, else how long until enough hits leave the window for one
    /// more (with accrued hits the window can hold more than its quota).
    pub fn wait(&mut self, now: Instant) -> Option<Duration> {
        while self
            .hits
            .front()
            .is_some_and(|&t| now.duration_since(t) >= self.quota.window)
        {
            self.hits.pop_front();
        }
        let limit = self.quota.count as usize;
        if self.hits.len() < limit {
            return None;
        }
        let leaving = *self.hits.get(self.hits.len() - limit)?;
        Some((leaving + self.quota.window).saturating_duration_since(now))
    }
}

impl Window {
    /// Counts one request when there is room for it, else says how long until there is.
    pub fn admit(&mut self, now: Instant) -> Result<(), Duration> {
        match self.wait(now) {
            None => {
                self.hits.push_back(now);
                Ok(())
            }
            Some(wait) => Err(wait),
        }
    }
}

/// The answer for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Admit,
    Throttle {
        retry_after: Duration,
        /// The app came back before an earlier Retry-After (block: refused by the block; accrue:
        /// given a longer wait).
        penalised: bool,
    },
}

/// Penalty added to a block each time a client ignores it (`block`).
const PENALTY: Duration = Duration::from_secs(1);
/// The longest extra wait `accrue` adds for repeated early arrivals.
const MAX_GROWTH: Duration = Duration::from_secs(64);

#[derive(Debug)]
struct Block {
    until: Instant,
    /// The HTTP request that earned the block: other items of that same request are not "early".
    set_by: u64,
    /// Early arrivals in a row (`accrue`).
    offences: u32,
}

#[derive(Debug)]
pub struct Throttle {
    post_limit: Quota,
    any_limit: Quota,
    post_per_app: HashMap<String, Window>,
    any_per_app: HashMap<String, Window>,
    post_tenant: Window,
    blocks: HashMap<(String, bool), Block>,
    model: ThrottleModel,
}

impl Throttle {
    pub fn new(
        post_limit: Quota,
        tenant_post_limit: Quota,
        any_limit: Quota,
        model: ThrottleModel,
    ) -> Self {
        Throttle {
            post_limit,
            any_limit,
            post_per_app: HashMap::new(),
            any_per_app: HashMap::new(),
            post_tenant: Window::new(tenant_post_limit),
            blocks: HashMap::new(),
            model,
        }
    }

    /// Decides one request of `app`; `http_request` identifies the HTTP request it arrived in.
    pub fn check(&mut self, app: &str, write: bool, now: Instant, http_request: u64) -> Verdict {
        let key = (app.to_string(), write);
        if self.model == ThrottleModel::Block
            && let Some(block) = self.blocks.get_mut(&key)
            && now < block.until
            && block.set_by != http_request
        {
            block.until += PENALTY;
            block.set_by = http_request;
            return Verdict::Throttle {
                retry_after: block.until - now,
                penalised: true,
            };
        }
        let Some(wait) = self.wait(app, write, now) else {
            self.count(app, write, now);
            if let Some(b) = self.blocks.get_mut(&key) {
                b.offences = 0;
            }
            return Verdict::Admit;
        };
        match self.model {
            ThrottleModel::None => Verdict::Throttle {
                retry_after: wait,
                penalised: false,
            },
            ThrottleModel::Block => {
                let until = now + wait;
                let block = self.blocks.entry(key).or_insert(Block {
                    until,
                    set_by: http_request,
                    offences: 0,
                });
                if block.until < until || block.set_by != http_request {
                    block.until = block.until.max(until);
                    block.set_by = http_request;
                }
                Verdict::Throttle {
                    retry_after: wait,
                    penalised: false,
                }
            }
            ThrottleModel::Accrue => {
                // Counted, so the wait names when this app really has room again.
                self.count(app, write, now);
                let wait = self.wait(app, write, now).unwrap_or(wait);
                let block = self.blocks.entry(key).or_insert(Block {
                    until: now,
                    set_by: http_request,
                    offences: 0,
                });
                let early = now < block.until && block.set_by != http_request;
                if block.set_by != http_request {
                    block.offences = if early { block.offences + 1 } else { 0 };
                }
                let growth = match block.offences {
                    0 => Duration::ZERO,
                    n => Duration::from_secs(1u64 << (n - 1).min(6)).min(MAX_GROWTH),
                };
                let retry_after = wait + growth;
                block.until = block.until.max(now + retry_after);
                block.set_by = http_request;
                Verdict::Throttle {
                    retry_after,
                    penalised: early,
                }
            }
        }
    }

    /// How long until `app` has room for one more request of this kind; `None` when it has now.
    fn wait(&mut self, app: &str, write: bool, now: Instant) -> Option<Duration> {
        let any = self
            .any_per_app
            .entry(app.to_string())
            .or_insert_with(|| Window::new(self.any_limit));
        let mut wait = any.wait(now);
        if write {
            let post = self
                .post_per_app
                .entry(app.to_string())
                .or_insert_with(|| Window::new(self.post_limit));
            wait = wait.max(post.wait(now)).max(self.post_tenant.wait(now));
        }
        wait
    }

    /// The request counts in every window it was checked against.
    fn count(&mut self, app: &str, write: bool, now: Instant) {
        if let Some(w) = self.any_per_app.get_mut(app) {
            w.hits.push_back(now);
        }
        if write {
            if let Some(w) = self.post_per_app.get_mut(app) {
                w.hits.push_back(now);
            }
            self.post_tenant.hits.push_back(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle() -> Throttle {
        with_model(ThrottleModel::Block)
    }

    fn with_model(model: ThrottleModel) -> Throttle {
        let q = |n| Quota::new(n, Duration::from_secs(20));
        Throttle::new(q(200), q(400), q(2000), model)
    }

    fn admitted(t: &mut Throttle, at: Instant, n: u64, first_request: u64) -> u64 {
        (0..n)
            .filter(|i| t.check("app", true, at, first_request + i) == Verdict::Admit)
            .count() as u64
    }

    #[test]
    fn under_accrue_refused_requests_count_in_the_window_too() {
        let s = Instant::now();
        let sec = Duration::from_secs;
        for (model, room_at_20s) in [(ThrottleModel::Accrue, 150), (ThrottleModel::None, 200)] {
            let mut t = with_model(model);
            assert_eq!(admitted(&mut t, s, 200, 0), 200);
            // Fifty items of one batch arrive while the window is full.
            for _ in 0..50 {
                assert!(matches!(
                    t.check("app", true, s + sec(10), 1000),
                    Verdict::Throttle { .. }
                ));
            }
            assert_eq!(
                admitted(&mut t, s + sec(20), 200, 2000),
                room_at_20s,
                "{model:?}"
            );
        }
    }

    #[test]
    fn under_accrue_retry_after_names_when_the_app_has_room_again() {
        let mut t = with_model(ThrottleModel::Accrue);
        let s = Instant::now();
        assert_eq!(admitted(&mut t, s, 200, 0), 200);
        let Verdict::Throttle { retry_after, .. } = t.check("app", true, s, 500) else {
            panic!("the window is full")
        };
        assert_eq!(retry_after, Duration::from_secs(20));
        assert_eq!(t.check("app", true, s + retry_after, 501), Verdict::Admit);
    }

    #[test]
    fn under_accrue_retry_after_grows_for_an_app_that_keeps_arriving_early() {
        let mut t = with_model(ThrottleModel::Accrue);
        let s = Instant::now();
        let sec = Duration::from_secs;
        assert_eq!(admitted(&mut t, s, 200, 0), 200);
        let ra = |v| match v {
            Verdict::Throttle {
                retry_after,
                penalised,
            } => (retry_after.as_secs(), penalised),
            Verdict::Admit => panic!("admitted"),
        };
        assert_eq!(ra(t.check("app", true, s + sec(5), 500)), (15, false));
        // Items of the same HTTP request are not early.
        assert_eq!(ra(t.check("app", true, s + sec(5), 500)), (15, false));
        assert_eq!(ra(t.check("app", true, s + sec(6), 501)), (15, true));
        assert_eq!(ra(t.check("app", true, s + sec(7), 502)), (15, true));
        assert_eq!(ra(t.check("app", true, s + sec(8), 503)), (16, true));
        // Once the window has room the app is admitted whatever it did: nothing starves.
        assert_eq!(t.check("app", true, s + sec(26), 504), Verdict::Admit);
    }

    #[test]
    fn two_hundred_posts_per_twenty_seconds_then_429_until_the_oldest_leaves() {
        let mut t = throttle();
        let start = Instant::now();
        for i in 0..200 {
            let now = start + Duration::from_millis(i * 10);
            assert_eq!(t.check("app", true, now, 1), Verdict::Admit, "item {i}");
        }
        let now = start + Duration::from_secs(5);
        let v = t.check("app", true, now, 1);
        assert_eq!(
            v,
            Verdict::Throttle {
                retry_after: Duration::from_secs(15),
                penalised: false
            }
        );
        // Reads are not counted against the write limit.
        assert_eq!(t.check("app", false, now, 1), Verdict::Admit);
        // After the Retry-After, the oldest slot is free again.
        assert_eq!(
            t.check("app", true, start + Duration::from_secs(20), 2),
            Verdict::Admit
        );
    }

    #[test]
    fn coming_back_early_is_penalised_and_extends_the_block() {
        let mut t = throttle();
        let start = Instant::now();
        for i in 0..200 {
            t.check("app", true, start, i);
        }
        assert!(matches!(
            t.check("app", true, start, 500),
            Verdict::Throttle {
                penalised: false,
                ..
            }
        ));
        // Same HTTP request (other items of one batch): not early.
        assert!(matches!(
            t.check("app", true, start, 500),
            Verdict::Throttle {
                penalised: false,
                ..
            }
        ));
        // A new request before the Retry-After: penalised, and the wait grows.
        let early = start + Duration::from_secs(10);
        let v = t.check("app", true, early, 501);
        assert_eq!(
            v,
            Verdict::Throttle {
                retry_after: Duration::from_secs(11),
                penalised: true
            }
        );
        // Even once the window has room, the penalty still holds until the extended time.
        assert!(matches!(
            t.check("app", true, start + Duration::from_secs(20), 502),
            Verdict::Throttle {
                penalised: true,
                ..
            }
        ));
        assert_eq!(
            t.check("app", true, start + Duration::from_secs(30), 503),
            Verdict::Admit
        );
    }

    #[test]
    fn the_tenant_limit_is_shared_between_apps() {
        let mut t = throttle();
        let now = Instant::now();
        for i in 0..200 {
            assert_eq!(t.check("a", true, now, i), Verdict::Admit);
            assert_eq!(t.check("b", true, now, i), Verdict::Admit);
        }
        assert!(matches!(
            t.check("c", true, now, 1000),
            Verdict::Throttle { .. }
        ));
    }

    #[test]
    fn any_request_limit_counts_reads() {
        let q = |n| Quota::new(n, Duration::from_secs(20));
        let mut t = Throttle::new(q(200), q(400), q(3), ThrottleModel::Block);
        let now = Instant::now();
        for i in 0..3 {
            assert_eq!(t.check("a", false, now, i), Verdict::Admit);
        }
        assert!(matches!(
            t.check("a", false, now, 3),
            Verdict::Throttle { .. }
        ));
    }
}
