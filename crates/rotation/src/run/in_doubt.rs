//! Devices in doubt: their request left (a `sent` row is on disk) but no answer was recorded, after
//! a crash or a lost answer. Whether to send again is decided here only, from what Graph's
//! `deviceActionResults` shows: an action of ours that started after the request left means the
//! request was carried out; sending again would rotate the device twice.

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
}

/// What to do with one device in doubt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Graph shows our action: record the device rotated, with this evidence.
    Rotated(String),
    /// No action of ours, or the device could not be read: send again, for this reason.
    SendAgain(String),
}

/// The one rule: our action seen → rotated; otherwise → sent again.
pub(crate) fn decide(cause: Cause, found: Option<&Found>) -> Decision {
    let label = match cause {
        Cause::Crash => "verified-after-crash",
        Cause::LostAnswer => "verified-after-lost-answer",
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
        Some(_) => Decision::SendAgain(
            "the answer was lost and the device shows no action of ours: sending again".into(),
        ),
        None => Decision::SendAgain(
            "the answer was lost and the device could not be read: sending again".into(),
        ),
    }
}

/// Looks the devices up once the newest of their requests has had `settle` to show in
/// `deviceActionResults` (a request still being carried out would otherwise look absent), and
/// decides each. `items` are (device, when its request left, in Unix ms).
pub(crate) async fn look_up(
    client: &GraphClient,
    reads: &Arc<RateGate>,
    matcher: &ResultMatcher,
    cause: Cause,
    items: &[(Uuid, u64)],
    settle: Duration,
) -> Vec<(Uuid, Decision)> {
    let newest = items.iter().map(|&(_, ms)| ms).max().unwrap_or(0);
    let show_at = UNIX_EPOCH + Duration::from_millis(newest) + settle;
    if let Ok(wait) = show_at.duration_since(SystemTime::now()) {
        tokio::time::sleep(wait).await;
    }
    let found: HashMap<Uuid, Found> = lookup(client, reads, matcher, items)
        .await
        .into_iter()
        .collect();
    items
        .iter()
        .map(|(id, _)| (*id, decide(cause, found.get(id))))
        .collect()
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
    fn no_action_of_ours_or_no_answer_means_sending_again() {
        let absent = decide(Cause::LostAnswer, Some(&found(VerifiedState::NotFound)));
        assert!(matches!(absent, Decision::SendAgain(why) if why.contains("no action of ours")));
        let unread = decide(Cause::LostAnswer, None);
        assert!(matches!(unread, Decision::SendAgain(why) if why.contains("could not be read")));
    }
}
