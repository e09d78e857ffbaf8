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
        // The service said when: honour it exactly, plus a little jitter so retries do not arrive together.
        Some(ra) => ra + Duration::from_millis(u64::from(attempt % 7) * 15),
        None => backoff,
    }
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
    fn backoff_grows_and_is_capped() {
        assert!(delay(1, None) <= Duration::from_secs(2));
        assert!(delay(20, None) <= Duration::from_secs(120));
        assert!(delay(6, None) >= Duration::from_secs(8));
    }
}
