//! Talking to Microsoft Graph: clouds and endpoints, credentials with refresh, one HTTP client,
//! paging over `@odata.nextLink`, and sending single requests or `$batch`es with typed outcomes.
//!
//! Everything that crosses the network lives here so the rotation engine above it deals only in
//! outcomes, and so the support ids Microsoft asks for (`client-request-id`, `request-id`, `Date`,
//! `x-ms-ags-diagnostic`) are captured in one place.

mod certificate;
mod claims;
mod client;
mod cloud;
mod credential;
mod error;

pub use certificate::{AssertionStyle, ClientCertificate};
pub use claims::TokenClaims;
pub use client::{BatchReply, Consistency, GraphClient, ReplyMeta};
pub use cloud::{Cloud, Endpoints};
pub use credential::{Credential, DeviceCodePrompt, TokenProvider};
pub use error::{GraphClientError, TokenError};
pub use secrecy::{ExposeSecret, SecretString};
