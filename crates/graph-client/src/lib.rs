//! Talking to Microsoft Graph: clouds and endpoints, credentials with refresh, one HTTP client,
//! paging over `@odata.nextLink`, and sending single requests or `$batch`es with typed outcomes.
//!
//! Everything that crosses the network lives here so the rotation engine above it deals only in
//! outcomes, and so the support ids Microsoft asks for (`client-request-id`, `request-id`, `Date`,
//! `x-ms-ags-diagnostic`) are captured in one place.

mod azure_cli;
mod certificate;
mod claims;
mod client;
mod cloud;
mod credential;
mod credential_kind;
mod error;
mod expiry;
mod federated;
mod managed_identity;

pub use azure_cli::AzureCli;
pub use certificate::{AssertionStyle, ClientCertificate};
pub use claims::TokenClaims;
pub use client::{BatchReply, Consistency, GraphClient, ReplyMeta, http_client};
pub use cloud::{Cloud, Endpoints, checked_url};
pub use credential::{Credential, DeviceCodePrompt, TokenProvider};
pub use credential_kind::CredentialKind;
pub use error::{GraphClientError, TokenError};
pub use federated::{EXCHANGE_AUDIENCE, FederatedSource};
pub use managed_identity::{
    IMDS_ADDRESS, IMDS_TOKEN_URL, IdentityEndpoint, ManagedIdentity, UserAssigned, identity_url,
};
pub use secrecy::{ExposeSecret, SecretString};
