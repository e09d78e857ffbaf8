//! When a token handed out by a managed identity or the Azure CLI stops being valid. Their answers
//! say it in several forms (graph-facts §13): an epoch as a number or a string, a date string, or
//! only a lifetime; the token's own `exp` is the last word when none is given.

use crate::TokenClaims;
use serde_json::Value;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The expiry from `expires_on` (epoch or date), else `expires_in` from `now`, else the token's `exp`.
pub(crate) fn expiry(
    expires_on: Option<&Value>,
    expires_in: Option<&Value>,
    token: &str,
    now: SystemTime,
) -> Option<SystemTime> {
    expires_on
        .and_then(instant)
        .or_else(|| seconds(expires_in?).map(|s| now + Duration::from_secs(s)))
        .or_else(|| Some(UNIX_EPOCH + Duration::from_secs(TokenClaims::decode(token)?.exp?)))
}

/// A whole number of seconds, as a JSON number or a string of digits.
fn seconds(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn instant(v: &Value) -> Option<SystemTime> {
    if let Some(epoch) = seconds(v) {
        return Some(UNIX_EPOCH + Duration::from_secs(epoch));
    }
    let text = v.as_str()?.trim();
    let utc = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .ok()
        .or_else(|| app_service_date(text))?;
    u64::try_from(utc.unix_timestamp())
        .ok()
        .map(|s| UNIX_EPOCH + Duration::from_secs(s))
}

/// App Service's older form, `12/03/2026 07:18:00 +00:00`, and the same with `AM`/`PM` and
/// unpadded fields (`12/3/2026 7:18:00 AM +00:00`).
fn app_service_date(text: &str) -> Option<time::OffsetDateTime> {
    let mut parts = text.split_whitespace();
    let date: Vec<u32> = parts
        .next()?
        .split('/')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let clock: Vec<u32> = parts
        .next()?
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let (mut next, mut hour) = (parts.next()?, *clock.first()?);
    match next.to_ascii_uppercase().as_str() {
        "AM" if hour == 12 => hour = 0,
        "AM" => {}
        "PM" if hour < 12 => hour += 12,
        "PM" => {}
        _ => {
            return assemble(&date, hour, &clock, next);
        }
    }
    next = parts.next()?;
    assemble(&date, hour, &clock, next)
}

fn assemble(date: &[u32], hour: u32, clock: &[u32], offset: &str) -> Option<time::OffsetDateTime> {
    let [month, day, year] = date else {
        return None;
    };
    let [_, minute, second] = clock else {
        return None;
    };
    let month = time::Month::try_from(u8::try_from(*month).ok()?).ok()?;
    let date =
        time::Date::from_calendar_date(i32::try_from(*year).ok()?, month, u8::try_from(*day).ok()?)
            .ok()?;
    let at = time::Time::from_hms(
        u8::try_from(hour).ok()?,
        u8::try_from(*minute).ok()?,
        u8::try_from(*second).ok()?,
    )
    .ok()?;
    let sign: i32 = match offset.chars().next()? {
        '+' => 1,
        '-' => -1,
        _ => return None,
    };
    let (h, m) = offset[1..].split_once(':')?;
    let secs = sign * (h.parse::<i32>().ok()? * 3600 + m.parse::<i32>().ok()? * 60);
    let offset = time::UtcOffset::from_whole_seconds(secs).ok()?;
    Some(time::PrimitiveDateTime::new(date, at).assume_offset(offset))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const AT: u64 = 1_796_282_280; // 2026-12-03T07:18:00Z

    fn on(v: Value) -> Option<u64> {
        expiry(Some(&v), None, "not-a-jwt", UNIX_EPOCH)
            .map(|t| t.duration_since(UNIX_EPOCH).unwrap().as_secs())
    }

    #[test]
    fn an_epoch_reads_as_a_number_or_a_string() {
        assert_eq!(on(json!(AT)), Some(AT));
        assert_eq!(on(json!(AT.to_string())), Some(AT));
    }

    #[test]
    fn app_service_dates_read_with_their_offset() {
        assert_eq!(on(json!("12/03/2026 07:18:00 +00:00")), Some(AT));
        assert_eq!(on(json!("12/3/2026 7:18:00 AM +00:00")), Some(AT));
        assert_eq!(on(json!("12/03/2026 9:18:00 AM +02:00")), Some(AT));
        assert_eq!(on(json!("12/3/2026 12:18:00 PM +05:00")), Some(AT));
    }

    #[test]
    fn rfc3339_dates_read_too() {
        assert_eq!(on(json!("2026-12-03T07:18:00Z")), Some(AT));
    }

    #[test]
    fn without_expires_on_the_lifetime_counts_from_now() {
        let now = UNIX_EPOCH + Duration::from_secs(AT);
        let t = expiry(None, Some(&json!("3599")), "x", now).unwrap();
        assert_eq!(t, now + Duration::from_secs(3599));
    }

    #[test]
    fn an_unreadable_date_falls_back_to_the_tokens_own_expiry() {
        use base64::Engine;
        let payload =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!(r#"{{"exp":{AT}}}"#));
        let token = format!("e30.{payload}.sig");
        let t = expiry(
            Some(&json!("2026-12-03 07:18:00.000000")),
            None,
            &token,
            UNIX_EPOCH,
        );
        assert_eq!(t, Some(UNIX_EPOCH + Duration::from_secs(AT)));
    }
}
