//! What can go wrong talking to Graph, in terms a caller can act on.

use graph_batch::{GraphError, ItemClass};
use std::time::Duration;
use thiserror::Error;

/// A token endpoint failure, keyed on its AADSTS code so the message says what to fix.
#[derive(Debug, Clone, Error)]
#[error("{advice} (AADSTS{code}; trace id {trace_id}, correlation id {correlation_id})")]
pub struct TokenError {
    pub code: u32,
    pub error: String,
    pub advice: String,
    pub trace_id: String,
    pub correlation_id: String,
}

/// Entra's codes for an app the tenant has not consented to (or does not know): an admin of the
/// tenant consents, and nothing else helps.
const CONSENT_CODES: [u32; 4] = [7000229, 650051, 65001, 700016];

impl TokenError {
    /// Whether an admin of the tenant must consent to the app before it can sign in there.
    pub fn needs_consent(&self) -> bool {
        CONSENT_CODES.contains(&self.code)
    }

    /// The token error somewhere in `e`'s chain of causes, if any.
    pub fn in_chain<'e>(e: &'e (dyn std::error::Error + 'static)) -> Option<&'e TokenError> {
        std::iter::successors(Some(e), |e| e.source()).find_map(|e| {
            e.downcast_ref::<TokenError>()
                .or_else(|| match e.downcast_ref::<GraphClientError>() {
                    Some(GraphClientError::Token(t)) => Some(t),
                    _ => None,
                })
        })
    }
}

#[derive(Debug, Error)]
pub enum GraphClientError {
    #[error("invalid endpoint {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    /// The request may or may not have reached the service (connect, timeout, reset, cut body).
    #[error("network error talking to Graph: {0}")]
    Network(String),
    /// The answer arrived but could not be read (e.g. a truncated body): whether the work was done is unknown.
    #[error("unreadable answer from Graph (HTTP {status}): {reason}")]
    Unreadable { status: u16, reason: String },
    #[error("Graph answered HTTP {status}{}", .error.as_ref().map(|e| format!(": {} {}", e.code, e.display_message())).unwrap_or_default())]
    Http {
        status: u16,
        retry_after: Option<Duration>,
        error: Option<Box<GraphError>>,
        request_id: Option<String>,
    },
    #[error("could not get an access token: {0}")]
    Token(#[from] TokenError),
    #[error(
        "the access token given with --token-file/GRAPH_ACCESS_TOKEN has expired and cannot be refreshed"
    )]
    TokenExpired,
    #[error("credential problem: {0}")]
    Credential(String),
}

impl GraphClientError {
    /// Whether the request may have been carried out although no answer was read.
    pub fn in_doubt(&self) -> bool {
        matches!(
            self,
            GraphClientError::Network(_) | GraphClientError::Unreadable { .. }
        )
    }

    /// An HTTP answer, classified as graph-batch classifies every status.
    pub fn class(&self) -> Option<ItemClass> {
        match self {
            GraphClientError::Http {
                status,
                retry_after,
                ..
            } => Some(ItemClass::of_status(*status, *retry_after)),
            _ => None,
        }
    }

    /// Sending the same request again may succeed: throttled, a server error, or a lost answer.
    pub fn is_transient(&self) -> bool {
        self.in_doubt()
            || matches!(
                self.class(),
                Some(ItemClass::Throttled { .. } | ItemClass::Retryable { .. })
            )
    }

    /// The credentials or their permissions are the problem: nothing more should be sent with them.
    pub fn is_auth(&self) -> bool {
        match self {
            GraphClientError::Http { status, .. } => matches!(status, 401 | 403),
            GraphClientError::Token(_)
            | GraphClientError::TokenExpired
            | GraphClientError::Credential(_) => true,
            _ => false,
        }
    }

    /// The wait the service asked for (Retry-After), if any.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            GraphClientError::Http { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

#[cfg(test)]
mod consent_tests {
    use super::*;

    fn token(code: u32) -> TokenError {
        TokenError {
            code,
            error: "invalid_client".into(),
            advice: "words that name no code".into(),
            trace_id: "t".into(),
            correlation_id: "c".into(),
        }
    }

    /// A cause wrapped by a caller, as a command's context wraps it.
    #[derive(Debug, Error)]
    #[error("signing in to the tenant failed")]
    struct Wrapped(#[source] GraphClientError);

    #[test]
    fn an_unconsented_app_is_known_by_its_code_wherever_the_error_sits() {
        let e = Wrapped(GraphClientError::Token(token(7000229)));
        let found = TokenError::in_chain(&e).expect("the token error is in the chain");
        assert!(found.needs_consent());
    }

    #[test]
    fn other_sign_in_failures_do_not_ask_for_consent() {
        assert!(!token(7000215).needs_consent(), "a wrong secret");
        let e = Wrapped(GraphClientError::Network("reset".into()));
        assert!(TokenError::in_chain(&e).is_none());
    }
}
