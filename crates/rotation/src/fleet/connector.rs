//! How a run over many tenants signs in to each: the caller's credentials and pre-flight, behind
//! one trait, so the engine never knows a flag or an environment variable.

use crate::{Action, Permission, SignedIn, TenantEntry};
use graph_client::GraphClient;
use std::future::Future;

/// What one tenant's sign-in must allow.
#[derive(Debug, Clone, Copy)]
pub struct Need<'a> {
    pub action: Action,
    /// Permissions the source reads beside the action's (groups, scripts).
    pub source_scopes: &'a [Permission],
    /// The source lists devices from Graph, so reading devices is required, not merely useful.
    pub lists_devices: bool,
}

/// A tenant signed in to, its pre-flight passed.
#[derive(Debug)]
pub struct Session {
    pub client: GraphClient,
    pub signed_in: SignedIn,
}

/// Why a tenant stops before anything of it is sent, as the manifest keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockCause {
    /// The credentials cannot be used at all (a missing value, an unreadable file).
    Credentials,
    /// Entra says the app is not consented in this tenant.
    NotConsented,
    /// Sign-in failed, or a permission the run needs is missing.
    Permission,
    /// The run's source cannot be opened.
    Source,
    /// Graph or the ledger failed for this tenant: trying it again may do.
    Failed,
}

impl BlockCause {
    /// Blocked by authentication: when every tenant is, the run exits as a sign-in failure.
    pub fn is_auth(self) -> bool {
        matches!(
            self,
            BlockCause::Credentials | BlockCause::NotConsented | BlockCause::Permission
        )
    }

    /// The cause of an error at sign-in or pre-flight: consent where Entra's code says so.
    pub fn of_auth_error(e: &(dyn std::error::Error + 'static)) -> Self {
        if graph_client::TokenError::in_chain(e)
            .is_some_and(graph_client::TokenError::needs_consent)
        {
            BlockCause::NotConsented
        } else {
            BlockCause::Permission
        }
    }
}

/// A tenant blocked, with the service's reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocked {
    pub cause: BlockCause,
    pub why: String,
}

/// Signs in to one tenant of a run and checks, before anything is sent, that the sign-in holds
/// what the run needs. The caller owns credentials; the engine owns the sequence.
pub trait Connector: Sync {
    fn connect(
        &self,
        tenant: &TenantEntry,
        need: Need<'_>,
    ) -> impl Future<Output = Result<Session, Blocked>> + Send;

    /// Signs in to read the tenant's devices only (`verify`, listing devices): nothing is sent.
    /// `scopes` are what the source reads beside the devices (groups, scripts).
    fn connect_to_read(
        &self,
        tenant: &TenantEntry,
        scopes: &[Permission],
    ) -> impl Future<Output = Result<GraphClient, Blocked>> + Send;

    /// What an admin does about a blocked tenant, in the caller's words (a consent URL, a
    /// command to run): the manifest keeps it beside the reason.
    fn advice(&self, tenant: &TenantEntry, cause: BlockCause) -> String;
}
