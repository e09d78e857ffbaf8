//! Intune's throttling as the service applies it: sliding 20 s windows counted per request (each
//! `$batch` item on its own), per app and per tenant, and a penalty for clients that come back before
//! the Retry-After they were given.

use crate::Quota;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Admitted requests inside one sliding window.
#[derive(Debug)]
struct Window {
    quota: Quota,
    hits: VecDeque<Instant>,
}

impl Window {
    fn new(quota: Quota) -> Self {
        Window {
            quota,
            hits: VecDeque::new(),
        }
    }

    /// `None` when there is room now, else how long until the oldest hit leaves the window.
    fn wait(&mut self, now: Instant) -> Option<Duration> {
        while self
            .hits
            .front()
            .is_some_and(|&t| now.duration_since(t) >= self.quota.window)
        {
            self.hits.pop_front();
        }
        if self.hits.len() < self.quota.count as usize {
            return None;
        }
        let oldest = *self.hits.front()?;
        Some((oldest + self.quota.window).saturating_duration_since(now))
    }
}

/// The answer for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Admit,
    Throttle {
        retry_after: Duration,
        penalised: bool,
    },
}

/// Penalty added to a block each time a client ignores it.
const PENALTY: Duration = Duration::from_secs(1);

#[derive(Debug)]
struct Block {
    until: Instant,
    /// The HTTP request that earned the block: other items of that same request are not "early".
    set_by: u64,
}

#[derive(Debug)]
pub struct Throttle {
    post_limit: Quota,
    any_limit: Quota,
    post_per_app: HashMap<String, Window>,
    any_per_app: HashMap<String, Window>,
    post_tenant: Window,
    blocks: HashMap<(String, bool), Block>,
    penalise_early: bool,
}

impl Throttle {
    pub fn new(
        post_limit: Quota,
        tenant_post_limit: Quota,
        any_limit: Quota,
        penalise_early: bool,
    ) -> Self {
        Throttle {
            post_limit,
            any_limit,
            post_per_app: HashMap::new(),
            any_per_app: HashMap::new(),
            post_tenant: Window::new(tenant_post_limit),
            blocks: HashMap::new(),
            penalise_early,
        }
    }

    /// Decides one request of `app`; `http_request` identifies the HTTP request it arrived in.
    pub fn check(&mut self, app: &str, write: bool, now: Instant, http_request: u64) -> Verdict {
        let key = (app.to_string(), write);
        if self.penalise_early
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
        if let Some(retry_after) = wait {
            let until = now + retry_after;
            let block = self.blocks.entry(key).or_insert(Block {
                until,
                set_by: http_request,
            });
            if block.until < until || block.set_by != http_request {
                block.until = block.until.max(until);
                block.set_by = http_request;
            }
            return Verdict::Throttle {
                retry_after,
                penalised: false,
            };
        }
        self.any_per_app
            .get_mut(app)
            .expect("window created above")
            .hits
            .push_back(now);
        if write {
            self.post_per_app
                .get_mut(app)
                .expect("window created above")
                .hits
                .push_back(now);
            self.post_tenant.hits.push_back(now);
        }
        Verdict::Admit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle() -> Throttle {
        let q = |n| Quota::new(n, Duration::from_secs(20));
        Throttle::new(q(200), q(400), q(2000), true)
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
        let mut t = Throttle::new(q(200), q(400), q(3), true);
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
