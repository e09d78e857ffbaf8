//! Per-item backoff: exponential with jitter (backon), never shorter than the service's Retry-After.

use backon::{BackoffBuilder, ExponentialBuilder};
use std::time::Duration;

/// The wait before attempt `attempt + 1` of an item that has been tried `attempt` times.
pub fn delay(attempt: u32, retry_after: Option<Duration>) -> Duration {
    let backoff = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(500))
        .with_max_delay(Duration::from_secs(60))
        .with_factor(2.0)
        .with_jitter()
        .with_max_times(64)
        .build()
        .nth(attempt.saturating_sub(1) as usize)
        .unwrap_or(Duration::from_secs(60));
    match retry_after {
        // The service said when: honour it, plus up to 100 ms of random spread so the items of one
        // throttled batch do not all come back in the same instant.
        Some(ra) => ra + Duration::from_millis(spread() % 101),
        None => backoff,
    }
}

/// A random number for spreading retries: std's randomly keyed hasher, fresh keys each call.
fn spread() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_never_shortened() {
        for attempt in 1..10 {
            assert!(delay(attempt, Some(Duration::from_secs(7))) >= Duration::from_secs(7));
        }
    }

    #[test]
    fn items_told_the_same_retry_after_spread_out() {
        let waits: std::collections::HashSet<Duration> = (0..20)
            .map(|_| delay(1, Some(Duration::from_secs(2))))
            .collect();
        assert!(waits.len() > 1, "twenty items, one instant: {waits:?}");
        assert!(waits.iter().all(|w| *w <= Duration::from_millis(2100)));
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(delay(1, None) <= Duration::from_secs(2));
        assert!(delay(20, None) <= Duration::from_secs(120));
        assert!(delay(6, None) >= Duration::from_secs(8));
    }
}
