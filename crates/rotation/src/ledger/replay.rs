//! Reading a ledger fast enough to open a million devices in under a second: replay takes only
//! the fields the state machine needs, borrowed from the line, where a whole `Row` (an internally
//! tagged enum, buffered before it is dispatched) would cost several times more. Anything the fast
//! path does not recognise is parsed as a whole row, so its errors read as before.

use super::{Outcome, Row, RowKind, RunHeader, Sending, Step};
use crate::device_id::parse_id;
use serde::Deserialize;
use serde::de::IgnoredAny;
use std::hash::{BuildHasher, Hasher};
use uuid::Uuid;

/// One line as replay sees it.
#[derive(Debug)]
pub(super) enum Event {
    Header(Box<RunHeader>),
    /// A row about a device; a `sent` row carries its attempt and time (Unix ms), a `skipped`
    /// row its reason's kind.
    Device {
        id: Uuid,
        step: Step,
        sent: Option<Sending>,
        skip_kind: Option<crate::SkipKind>,
    },
    /// The plan's end, with its skipped devices per reason kind.
    PlanDone(std::collections::BTreeMap<String, u64>),
    /// A verified or session row: nothing for the state.
    Other,
}

/// What the fast readers (replay, export's first pass) take from a line, borrowed from it; the
/// support ids and times only as present or not; every other field is skipped unread.
#[derive(Deserialize)]
pub(crate) struct Fields<'a> {
    #[serde(rename = "type")]
    pub kind: RowKind,
    #[serde(default, borrow)]
    pub id: Option<&'a str>,
    #[serde(default)]
    pub attempt: Option<u32>,
    #[serde(default, borrow)]
    pub at: Option<&'a str>,
    #[serde(default)]
    pub result: Option<Outcome>,
    #[serde(default)]
    pub status: Option<IgnoredAny>,
    #[serde(default)]
    pub request_id: Option<IgnoredAny>,
    #[serde(default)]
    pub client_request_id: Option<IgnoredAny>,
    #[serde(default)]
    pub date: Option<IgnoredAny>,
    #[serde(default)]
    pub action_started_at: Option<IgnoredAny>,
    #[serde(default, borrow)]
    pub reason: Option<std::borrow::Cow<'a, str>>,
}

/// The event of one complete line.
pub(super) fn event(line: &[u8]) -> Result<Event, String> {
    let Ok(f) = serde_json::from_slice::<Fields>(line) else {
        // Not JSON, a field with escapes, a wrong type: the whole row says what is wrong.
        return whole(line);
    };
    let Some(step) = f.kind.step(f.result) else {
        return whole(line);
    };
    match f.kind {
        // One row a ledger each: read whole, the header for its fields, the end of the plan for
        // its reasons.
        RowKind::Run | RowKind::PlanDone => return whole(line),
        RowKind::Verified | RowKind::Session => return Ok(Event::Other),
        RowKind::Planned | RowKind::Skipped | RowKind::Sent | RowKind::Outcome => {}
    }
    // A sent or outcome row without its time, any row without its device: the whole row says
    // what is wrong.
    let timed = f.at.is_some() || !matches!(step, Step::Sent | Step::Outcome(_));
    let (Some(id), true) = (f.id, timed) else {
        return whole(line);
    };
    let id = parse_id(id).ok_or_else(|| format!("device id {id:?} is not a GUID"))?;
    let sent = match (step, f.attempt, f.at) {
        (Step::Sent, Some(attempt), Some(at)) => Some(sending(attempt, at)?),
        (Step::Sent, None, _) => return whole(line),
        _ => None,
    };
    let skip_kind = (step == Step::Skipped)
        .then(|| f.reason.as_deref().and_then(crate::SkipReason::kind_of))
        .flatten();
    Ok(Event::Device {
        id,
        step,
        sent,
        skip_kind,
    })
}

/// A `sent` row's leaving, or what is wrong with its time.
fn sending(attempt: u32, at: &str) -> Result<Sending, String> {
    let at_ms = super::parse_ms(at).ok_or_else(|| format!("bad time {at:?}"))?;
    Ok(Sending { attempt, at_ms })
}

/// The slow path: a whole row, and its event.
fn whole(line: &[u8]) -> Result<Event, String> {
    let row = super::full_row(line)?;
    Ok(match row {
        Row::Run(h) => Event::Header(Box::new(h)),
        Row::PlanDone { skip_reasons, .. } => Event::PlanDone(skip_reasons),
        Row::Verified { .. } | Row::Session { .. } => Event::Other,
        Row::Sent { id, attempt, at } => Event::Device {
            id,
            step: Step::Sent,
            sent: Some(sending(attempt, &at)?),
            skip_kind: None,
        },
        Row::Skipped { id, reason } => Event::Device {
            id,
            step: Step::Skipped,
            sent: None,
            skip_kind: crate::SkipReason::kind_of(&reason),
        },
        ref r @ (Row::Planned { id, .. } | Row::Outcome { id, .. }) => Event::Device {
            id,
            step: r.step(),
            sent: None,
            skip_kind: None,
        },
    })
}

/// Unix milliseconds of the layout this tool writes, `2026-11-28T08:00:00.123Z` (or without the
/// milliseconds), read without a general parser; `None` for any other layout.
pub(super) fn fast_ms(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    let frac = match b.len() {
        24 if b[19] == b'.' && b[23] == b'Z' => true,
        20 if b[19] == b'Z' => false,
        _ => return None,
    };
    if b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<u64> {
        b[from..to].iter().try_fold(0u64, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + u64::from(c - b'0'))
        })
    };
    let (year, month, day) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (hour, minute, second) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    let millis = if frac { num(20, 23)? } else { 0 };
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if year < 1970 || day == 0 || day > days_in_month || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some(((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000 + millis)
}

/// Days since 1970-01-01 of a date in the proleptic Gregorian calendar (H. Hinnant's algorithm).
fn days_from_civil(year: u64, month: u64, day: u64) -> u64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Hashing for device ids: nobody chooses them to collide, so a fold of their bytes with a strong
/// finaliser spreads them as well as SipHash does, at a fraction of the cost (a million inserts
/// and two million lookups per replay of a million devices).
#[derive(Debug, Clone, Copy, Default)]
pub struct IdHasher;

impl BuildHasher for IdHasher {
    type Hasher = FoldHasher;
    fn build_hasher(&self) -> FoldHasher {
        FoldHasher(0)
    }
}

/// The hasher of [`IdHasher`].
#[derive(Debug, Clone, Copy)]
pub struct FoldHasher(u64);

impl Hasher for FoldHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(29) ^ n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }

    /// MurmurHash3's finaliser: every input bit reaches every output bit, so ids that differ only
    /// in their last bytes (sequential test ids) still spread over the table's low bits.
    fn finish(&self) -> u64 {
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn our_own_times_read_like_any_rfc_3339() {
        for at in [
            "1970-01-01T00:00:00.000Z",
            "2026-11-28T08:00:00.123Z",
            "2024-02-29T23:59:59.999Z",
            "2000-03-01T00:00:00Z",
            "2100-12-31T12:34:56.789Z",
        ] {
            let slow = humantime::parse_rfc3339(at)
                .unwrap()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis() as u64;
            assert_eq!(fast_ms(at), Some(slow), "{at}");
        }
        for other in [
            "2026-02-30T00:00:00Z",
            "2026-11-28 08:00:00Z",
            "2026-11-28T08:00:00+01:00",
        ] {
            assert_eq!(fast_ms(other), None, "{other}");
        }
    }

    proptest! {
        #[test]
        fn any_millisecond_of_three_centuries_reads_back(ms in 0u64..4_102_444_800_000) {
            let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
            let text = humantime::format_rfc3339_millis(t).to_string();
            prop_assert_eq!(fast_ms(&text), Some(ms));
        }

        #[test]
        fn arbitrary_text_never_panics(s in "\\PC{0,30}") {
            let _ = fast_ms(&s);
        }
    }

    #[test]
    fn rows_with_escapes_or_unknown_kinds_take_the_slow_path_and_its_errors() {
        let planned =
            br#"{"type":"planned","id":"6d1f0000-0000-4000-8000-00000000000a","name":"Mac \"A\""}"#;
        assert!(matches!(
            event(planned),
            Ok(Event::Device {
                step: Step::Planned,
                ..
            })
        ));
        let unknown = br#"{"type":"renamed","id":"6d1f0000-0000-4000-8000-00000000000a"}"#;
        assert!(event(unknown).is_err());
        let no_time = br#"{"type":"sent","id":"6d1f0000-0000-4000-8000-00000000000a","attempt":1}"#;
        assert!(event(no_time).is_err(), "a sent row needs its time");
        let bad_id = br#"{"type":"sent","id":"urn:uuid:6d1f0000-0000-4000-8000-00000000000a","attempt":1,"at":"2026-11-28T08:00:00Z"}"#;
        assert!(event(bad_id).unwrap_err().contains("not a GUID"));
    }
}
