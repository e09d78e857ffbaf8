//! What a caller should do with one item's status.

use crate::{Headers, parse_retry_after};
use std::time::{Duration, SystemTime};

/// The five things an item's answer can mean to a caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemClass {
    /// 2xx.
    Success,
    /// 429: send again after `retry_after` (or own backoff when the service gave none).
    Throttled { retry_after: Option<Duration> },
    /// 408, 500, 502, 503, 504, 507, and 424 (a failed dependency, or a throttled item in an older
    /// service revision).
    Retryable { retry_after: Option<Duration> },
    /// 401: the token was refused; refresh it once and send again.
    Auth,
    /// Any other status: sending again will not help.
    Permanent,
}

impl ItemClass {
    /// An item's answer, with the Retry-After among its headers read at `now`.
    pub fn of(status: u16, headers: &Headers, now: SystemTime) -> Self {
        let retry_after = headers
            .get("Retry-After")
            .and_then(|v| parse_retry_after(v, now));
        Self::of_status(status, retry_after)
    }

    /// The one classification of an HTTP status, for batch items, whole batches and plain GETs.
    pub fn of_status(status: u16, retry_after: Option<Duration>) -> Self {
        match status {
            200..=299 => ItemClass::Success,
            429 => ItemClass::Throttled { retry_after },
            408 | 424 | 500 | 502 | 503 | 504 | 507 => ItemClass::Retryable { retry_after },
            401 => ItemClass::Auth,
            _ => ItemClass::Permanent,
        }
    }

    /// The wait the service asked for, if any.
    pub fn retry_after(self) -> Option<Duration> {
        match self {
            ItemClass::Throttled { retry_after } | ItemClass::Retryable { retry_after } => {
                retry_after
            }
            _ => None,
        }
    }

    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ItemClass::Throttled { .. } | ItemClass::Retryable { .. } | ItemClass::Auth
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(status: u16, retry_after: Option<&str>) -> ItemClass {
        let mut h = Headers::default();
        if let Some(v) = retry_after {
            h.insert("retry-after", v);
        }
        ItemClass::of(status, &h, SystemTime::UNIX_EPOCH)
    }

    #[test]
    fn success_is_any_2xx() {
        for s in [200, 202, 204] {
            assert_eq!(class(s, None), ItemClass::Success);
        }
    }

    #[test]
    fn throttled_carries_retry_after_or_none() {
        assert_eq!(
            class(429, Some("2.5")),
            ItemClass::Throttled {
                retry_after: Some(Duration::from_millis(2500))
            }
        );
        assert_eq!(class(429, None), ItemClass::Throttled { retry_after: None });
        assert_eq!(
            class(429, Some("junk")),
            ItemClass::Throttled { retry_after: None }
        );
    }

    #[test]
    fn server_errors_and_failed_dependencies_are_retryable() {
        for s in [408, 424, 500, 502, 503, 504, 507] {
            assert!(matches!(class(s, None), ItemClass::Retryable { .. }), "{s}");
        }
        assert_eq!(
            class(503, Some("4")),
            ItemClass::Retryable {
                retry_after: Some(Duration::from_secs(4))
            }
        );
    }

    #[test]
    fn unauthorized_is_auth_and_other_client_errors_permanent() {
        assert_eq!(class(401, None), ItemClass::Auth);
        for s in [400, 403, 404, 405, 409, 501] {
            assert_eq!(class(s, None), ItemClass::Permanent, "{s}");
        }
    }
}
