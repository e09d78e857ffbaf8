//! `Retry-After` in every form Graph has been seen to send.

use std::time::{Duration, SystemTime};

/// Longest wait we accept from a server; a larger value is treated as this (a typo must not park a run for days).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// Parses a `Retry-After` value: whole seconds ("3"), fractional seconds ("2.128", "0.249"), an HTTP-date
/// (relative to `now`; a date in the past means zero), or the "30,120" form (the first number counts).
/// Negative, non-finite or unreadable values give `None`, so the caller falls back to its own backoff.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    let first = value.split(',').next().unwrap_or("").trim();
    if first.starts_with(|c: char| c.is_ascii_digit() || c == '.' || c == '-' || c == '+') {
        let secs: f64 = first.parse().ok()?;
        if !secs.is_finite() || secs < 0.0 {
            return None;
        }
        // Clamped before converting: a huge number must not overflow `Duration` (found by fuzzing).
        return Some(Duration::from_secs_f64(
            secs.min(MAX_RETRY_AFTER.as_secs_f64()),
        ));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(now)
            .unwrap_or(Duration::ZERO)
            .min(MAX_RETRY_AFTER),
    )
}

/// The wait before a retry: never sooner than the service asked (`retry_after`), nor sooner than
/// half our own backoff; `None` once the backoff has run out of tries.
pub fn retry_wait(
    retry_after: Option<std::time::Duration>,
    backoff: Option<std::time::Duration>,
) -> Option<std::time::Duration> {
    match (retry_after, backoff) {
        (Some(ra), Some(b)) => Some(ra.max(b / 2)),
        (_, b) => b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> SystemTime {
        httpdate::parse_http_date("Wed, 21 Oct 2026 07:28:00 GMT").unwrap()
    }

    #[test]
    fn whole_seconds() {
        assert_eq!(parse_retry_after("3", now()), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after(" 0 ", now()), Some(Duration::ZERO));
    }

    #[test]
    fn a_number_too_large_for_any_clock_is_the_longest_wait() {
        assert_eq!(
            parse_retry_after("44444444444444444444444442", now()),
            Some(MAX_RETRY_AFTER)
        );
        assert_eq!(parse_retry_after("1e308", now()), Some(MAX_RETRY_AFTER));
    }

    #[test]
    fn fractional_seconds() {
        assert_eq!(
            parse_retry_after("2.128", now()),
            Some(Duration::from_millis(2128))
        );
        assert_eq!(
            parse_retry_after("0.249", now()),
            Some(Duration::from_millis(249))
        );
    }

    #[test]
    fn http_date_in_the_future_is_the_distance_to_it() {
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2026 07:28:09 GMT", now()),
            Some(Duration::from_secs(9))
        );
    }

    #[test]
    fn http_date_in_the_past_means_now() {
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2026 07:00:00 GMT", now()),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn comma_form_takes_the_first_number() {
        assert_eq!(
            parse_retry_after("30,120", now()),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("30, 120", now()),
            Some(Duration::from_secs(30))
        );
    }

    #[test]
    fn garbage_and_negative_give_none() {
        for v in [
            "",
            "soon",
            "-1",
            "NaN",
            "inf",
            "1e999",
            "12abc",
            "Thu, 99 Foo",
        ] {
            assert_eq!(parse_retry_after(v, now()), None, "{v:?}");
        }
    }

    #[test]
    fn absurdly_long_waits_are_capped() {
        assert_eq!(parse_retry_after("99999999", now()), Some(MAX_RETRY_AFTER));
    }
}
