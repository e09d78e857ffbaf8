//! `N/Ws` quotas such as `200/20s`, the way Intune states its limits.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// `count` requests per `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub count: u32,
    pub window: Duration,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid rate {0:?}: expected COUNT/WINDOW such as 200/20s, 10/1s, 600/1m or 1000/500ms")]
pub struct QuotaParseError(pub String);

impl Quota {
    pub const fn new(count: u32, window: Duration) -> Self {
        Quota { count, window }
    }

    /// Requests per second.
    pub fn per_second(&self) -> f64 {
        f64::from(self.count) / self.window.as_secs_f64()
    }
}

impl FromStr for Quota {
    type Err = QuotaParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || QuotaParseError(s.to_string());
        let (count, window) = s.trim().split_once('/').ok_or_else(err)?;
        let count: u32 = count.trim().parse().map_err(|_| err())?;
        let window = window.trim();
        let split = window
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(window.len());
        let (num, unit) = window.split_at(split);
        let num: f64 = if num.is_empty() {
            1.0
        } else {
            num.parse().map_err(|_| err())?
        };
        let secs = match unit {
            "ms" => num / 1000.0,
            "s" | "" => num,
            "m" | "min" => num * 60.0,
            "h" => num * 3600.0,
            _ => return Err(err()),
        };
        if count == 0 || !secs.is_finite() || secs <= 0.0 || secs > 86_400.0 {
            return Err(err());
        }
        Ok(Quota {
            count,
            window: Duration::from_secs_f64(secs),
        })
    }
}

impl fmt::Display for Quota {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.window.as_millis();
        if ms.is_multiple_of(1000) {
            write!(f, "{}/{}s", self.count, ms / 1000)
        } else {
            write!(f, "{}/{}ms", self.count, ms)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_intune_style_rates() {
        assert_eq!(
            "200/20s".parse(),
            Ok(Quota::new(200, Duration::from_secs(20)))
        );
        assert_eq!("10/s".parse(), Ok(Quota::new(10, Duration::from_secs(1))));
        assert_eq!(
            "600/1m".parse(),
            Ok(Quota::new(600, Duration::from_secs(60)))
        );
        assert_eq!(
            "5/500ms".parse(),
            Ok(Quota::new(5, Duration::from_millis(500)))
        );
        assert_eq!("200/20s".parse::<Quota>().unwrap().to_string(), "200/20s");
    }

    #[test]
    fn refuses_nonsense() {
        for bad in [
            "", "200", "0/20s", "200/0s", "200/20x", "a/20s", "200/-1s", "-5/1s",
        ] {
            assert!(bad.parse::<Quota>().is_err(), "{bad:?}");
        }
    }
}
