//! Timestamps as Graph writes them.

use std::time::SystemTime;

/// ISO 8601 UTC with a `Z`, like Graph's `lastSyncDateTime`.
pub fn iso(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}
