//! Devices in doubt: their request left (a `sent` row is on disk) but no answer was recorded, after
//! a crash or a lost answer, or the answer refused it (429) where a refused action may have run.
//! Whether to send again is decided here only, from what Graph's `deviceActionResults` shows: an
//! action of ours that started after the request left means the request was carried out; sending
//! again would rotate the device twice.
//!
//! The service may carry a request out some time after its answer was lost, so a device that shows
//! nothing at the first look-up is looked up a second time, `recheck` after its request left,
//! before it is sent again (docs/verification.md).

use crate::verify::{Found, lookup};
use crate::{RateGate, ResultMatcher};
use graph_client::GraphClient;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use uuid::Uuid;

/// How a device came to be in doubt; it names the evidence in the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cause {
    /// The process stopped (kill, power loss) between the `sent` row and the outcome.
    Crash,
    /// The connection dropped or the answer was cut within a run.
    LostAnswer,
    /// Answered 429, which Graph has been seen to give for a write it carried out.
    Throttled,
}

impl Cause {
    /// The cause an outcome row records for a device that took a look-up.
    pub(crate) fn retry_cause(self) -> crate::RetryCause {
        match self {
            Cause::LostAnswer => crate::RetryCause::AnswerLost,
            Cause::Crash => crate::RetryCause::AfterStop,
            Cause::Throttled => crate::RetryCause::Throttled,
        }
    }
}

/// What to do with one device in doubt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Graph shows our action: record the device rotated, with this evidence.
    Rotated(String),
    /// No action of ours: send again, for this reason.
    SendAgain(String),
    /// The device could not be read: nothing is known of it, so nothing is sent; it is looked up
    /// again, or left in doubt.
    Unread(String),
}

/// The one rule: our action seen → rotated; none seen → sent again; not read → never sent blind.
pub(crate) fn decide(cause: Cause, found: Option<&Found>) -> Decision {
    let label = match cause {
        Cause::Crash => "verified-after-crash",
        Cause::LostAnswer => "verified-after-lost-answer",
        Cause::Throttled => "verified-after-429",
    };
    let before = match cause {
        Cause::Throttled => "the item was throttled",
        Cause::Crash | Cause::LostAnswer => "the answer was lost",
    };
    match found {
        Some(f) if f.state.shows_our_action() => Decision::Rotated(format!(
            "{label}: deviceActionResults shows {} started {}{}",
            f.state,
            f.started.as_deref().unwrap_or_default(),
            f.rule
                .map(|r| format!(" (recognised by {r})"))
                .unwrap_or_default()
        )),
        Some(_) => Decision::SendAgain(format!(
            "{before} and the device shows no action of ours: sending again"
        )),
        None => Decision::Unread(format!("{before} and the device could not be read")),
    }
}

/// When to look: `settle` after the newest request left (a request still being carried out would
/// otherwise look absent), and, for devices that show nothing then, again `recheck` after theirs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Looks {
    pub settle: Duration,
    pub recheck: Option<Duration>,
}

/// Decides each device of `items` (device, when its request left, in Unix ms) from one look-up, or
/// two when `looks.recheck` is set and the first came before it.
pub(crate) async fn look_up(
    client: &GraphClient,
    reads: &Arc<RateGate>,
    matcher: &ResultMatcher,
    cause: Cause,
    items: &[(Uuid, u64)],
    looks: Looks,
) -> Vec<(Uuid, Decision)> {
    let (mut decided, looked_from_ms) =
        look_once(client, reads, matcher, cause, items, looks.settle).await;
    let Some(recheck) = looks.recheck else {
        return decided;
    };
    let recheck_ms = recheck.as_millis() as u64;
    let sent: HashMap<Uuid, u64> = items.iter().copied().collect();
    // Only devices whose first look came before their recheck time: a look after it has seen
    // everything a second one would. The look is dated from when its reads began, not from when
    // its answers were in: a read answered early and handled late (a loaded machine, retries of
    // other items) has not seen what started in between.
    let again: Vec<(Uuid, u64)> = decided
        .iter()
        .filter(|(_, d)| matches!(d, Decision::SendAgain(_)))
        .filter_map(|(id, _)| sent.get(id).map(|&ms| (*id, ms)))
        .filter(|&(_, ms)| ms + recheck_ms > looked_from_ms)
        .collect();
    if again.is_empty() {
        return decided;
    }
    let second: HashMap<Uuid, Decision> = look_once(client, reads, matcher, cause, &again, recheck)
        .await
        .0
        .into_iter()
        .map(|(id, d)| match d {
            Decision::Rotated(why) => (
                id,
                Decision::Rotated(format!("{why}; seen at the second look-up")),
            ),
            Decision::SendAgain(why) => (
                id,
                Decision::SendAgain(format!(
                    "{why} (looked up twice, the second {} after sending)",
                    humantime::format_duration(recheck)
                )),
            ),
            // Nothing seen at the first look, nothing read at the second: still not known.
            unread @ Decision::Unread(_) => (id, unread),
        })
        .collect();
    for (id, d) in &mut decided {
        if let Some(later) = second.get(id) {
            *d = later.clone();
        }
    }
    decided
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// One look-up, once the newest request has had `settle` to show; with the time (Unix ms) its
/// reads began.
async fn look_once(
    client: &GraphClient,
    reads: &Arc<RateGate>,
    matcher: &ResultMatcher,
    cause: Cause,
    items: &[(Uuid, u64)],
    settle: Duration,
) -> (Vec<(Uuid, Decision)>, u64) {
    let newest = items.iter().map(|&(_, ms)| ms).max().unwrap_or(0);
    let show_at = UNIX_EPOCH + Duration::from_millis(newest) + settle;
    if let Ok(wait) = show_at.duration_since(SystemTime::now()) {
        tokio::time::sleep(wait).await;
    }
    let looked_from_ms = unix_ms(SystemTime::now());
    let found: HashMap<Uuid, Found> = lookup(client, reads, matcher, items)
        .await
        .into_iter()
        .collect();
    let decided = items
        .iter()
        .map(|(id, _)| (*id, decide(cause, found.get(id))))
        .collect();
    (decided, looked_from_ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::VerifiedState;

    fn found(state: VerifiedState) -> Found {
        Found {
            state,
            started: Some("2026-11-27T10:00:00Z".into()),
            rule: Some(crate::MatchRule::Keyword),
            unknown: Vec::new(),
            entra_id: None,
            evidence: None,
            error_code: None,
        }
    }

    #[test]
    fn any_state_of_our_action_means_the_request_was_carried_out() {
        for s in [
            VerifiedState::Pending,
            VerifiedState::Active,
            VerifiedState::Done,
            VerifiedState::Failed,
            VerifiedState::NotSupported,
            VerifiedState::Unknown,
        ] {
            let d = decide(Cause::Crash, Some(&found(s)));
            assert!(
                matches!(&d, Decision::Rotated(why) if why.starts_with("verified-after-crash") && why.ends_with("(recognised by keyword)")),
                "{s:?}: {d:?}"
            );
        }
    }

    #[test]
    fn no_action_of_ours_means_sending_again_and_no_answer_means_never_sending_blind() {
        let absent = decide(Cause::LostAnswer, Some(&found(VerifiedState::NotFound)));
        assert!(matches!(absent, Decision::SendAgain(why) if why.contains("no action of ours")));
        let unread = decide(Cause::LostAnswer, None);
        assert!(matches!(unread, Decision::Unread(why) if why.contains("could not be read")));
    }
}
