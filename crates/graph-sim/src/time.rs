//! Timestamps as Graph writes them.

use std::time::SystemTime;

/// ISO 8601 UTC with a `Z`, like Graph's `lastSyncDateTime`.
pub fn iso(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// As the documentation's examples write times: seven fraction digits and an offset (Pacific
/// standard time), `2016-12-31T23:58:46.7156189-08:00`; the same instant as [`iso`].
pub fn with_offset(t: SystemTime) -> String {
    let local = t
        .checked_sub(std::time::Duration::from_secs(8 * 3600))
        .unwrap_or(t);
    let nanos = humantime::format_rfc3339_nanos(local).to_string();
    format!("{}-08:00", &nanos[..27])
}
