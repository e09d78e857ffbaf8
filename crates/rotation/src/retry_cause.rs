//! Why a device was not answered at once: throttled, a server error, a refused token, a lost
//! answer. The dispatcher writes the cause into the outcome row; the report counts by it.

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RetryCause {
    /// 429: the item or the whole batch.
    Throttled,
    /// 5xx: the item or the whole batch.
    ServerError,
    /// 401: the token was refused and is refreshed.
    TokenRefused,
    /// Not sent: the credentials stopped the run.
    NotSent,
    /// The answer was lost (a dropped connection, a cut body); the device was looked up.
    AnswerLost,
    /// In doubt after the run stopped (a crash, a signal); the device was looked up.
    AfterStop,
    /// The batch answer left the item out.
    ItemMissing,
    /// Another status.
    Other,
}

impl RetryCause {
    /// The cause of an answer with this HTTP status.
    pub fn of_status(status: u16) -> RetryCause {
        match status {
            429 => RetryCause::Throttled,
            401 => RetryCause::TokenRefused,
            s if s >= 500 => RetryCause::ServerError,
            _ => RetryCause::Other,
        }
    }

    /// For rows written before the cause was recorded: their status, and the words the earlier
    /// release wrote for a lost answer.
    pub fn of_earlier_row(status: Option<u16>, message: Option<&str>) -> Option<RetryCause> {
        match status {
            Some(s) => Some(RetryCause::of_status(s)).filter(|c| *c != RetryCause::Other),
            None if message.is_some_and(|m| m.contains("lost")) => Some(RetryCause::AnswerLost),
            None => None,
        }
    }

    /// What the report calls it.
    pub fn label(self) -> &'static str {
        match self {
            RetryCause::Throttled => "429 throttled",
            RetryCause::ServerError => "5xx server error",
            RetryCause::TokenRefused => "401 token refused",
            RetryCause::NotSent => "not sent (credentials)",
            RetryCause::AnswerLost => "network (answer lost)",
            RetryCause::AfterStop => "in doubt after a stop",
            RetryCause::ItemMissing => "left out of the batch answer",
            RetryCause::Other => "other",
        }
    }
}

impl fmt::Display for RetryCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_their_causes() {
        assert_eq!(RetryCause::of_status(429), RetryCause::Throttled);
        assert_eq!(RetryCause::of_status(503), RetryCause::ServerError);
        assert_eq!(RetryCause::of_status(401), RetryCause::TokenRefused);
        assert_eq!(RetryCause::of_status(409), RetryCause::Other);
    }

    #[test]
    fn an_earlier_releases_lost_answer_is_read_from_its_words() {
        let lost = Some("the answer was lost; not found in deviceActionResults, sending again");
        assert_eq!(
            RetryCause::of_earlier_row(None, lost),
            Some(RetryCause::AnswerLost)
        );
        assert_eq!(RetryCause::of_earlier_row(None, Some("left out")), None);
        assert_eq!(
            RetryCause::of_earlier_row(Some(429), None),
            Some(RetryCause::Throttled)
        );
    }

    #[test]
    fn causes_are_written_in_kebab_case() {
        assert_eq!(
            serde_json::to_string(&RetryCause::AnswerLost).unwrap(),
            "\"answer-lost\""
        );
    }
}
