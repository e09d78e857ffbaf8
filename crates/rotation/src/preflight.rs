//! What the pre-flight decides from an access token before anything is sent: the right tenant,
//! a work or school account, and the action's permission.

use crate::{Action, Permission};
use graph_client::TokenClaims;
use std::fmt;
use thiserror::Error;

/// The tenant id personal Microsoft accounts sign in under; the rotate actions refuse them.
const CONSUMER_TENANT: &str = "9188040d-6c67-4c5b-b112-36a304b66dad";

/// The permission of a token that allows an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allowed {
    /// One the action's page lists.
    Listed(Permission),
    /// Only those a page lists doubtfully: let through, with a warning that it may be refused.
    Doubtful(&'static [Permission]),
}

impl Allowed {
    /// What a token's claims allow for `action`, if anything.
    pub fn of(claims: &TokenClaims, action: Action) -> Option<Allowed> {
        if let Some(&p) = action.permissions().iter().find(|p| claims.has(p.name())) {
            return Some(Allowed::Listed(p));
        }
        let doubtful = action.doubtful_permissions();
        (!doubtful.is_empty() && doubtful.iter().all(|p| claims.has(p.name())))
            .then_some(Allowed::Doubtful(doubtful))
    }

    /// The warning a doubtful grant deserves.
    pub fn warning(self, action: Action) -> Option<String> {
        match self {
            Allowed::Listed(_) => None,
            Allowed::Doubtful(ps) => Some(format!(
                "the token holds only {} for the {} action: its page lists these, which looks like a documentation error; if every device answers 403, grant {}",
                Permission::joined(ps, "and"),
                action.graph_name(),
                Permission::joined(action.permissions(), "or")
            )),
        }
    }
}

/// Why a token cannot carry the run, with what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TokenProblem {
    #[error(
        "the token belongs to a personal Microsoft account; the Intune rotate actions need a work or school account"
    )]
    PersonalAccount,
    #[error("the access token is for tenant {token}, not {expected}")]
    OtherTenant { token: String, expected: String },
    #[error(
        "missing permission {permission} for the {} action (token has: {}). Grant it as a Microsoft Graph {kind} permission in the app registration's API permissions (Entra admin center > App registrations > API permissions), then grant admin consent",
        action.graph_name(),
        if found.is_empty() { "none".to_string() } else { found.join(", ") }
    )]
    MissingPermission {
        permission: Permission,
        action: Action,
        found: Vec<String>,
        kind: Grant,
    },
}

/// How a token holds its permissions: an app's roles, or a signed-in user's scopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    Application,
    Delegated,
}

impl Grant {
    /// A token with scopes (`scp`) was given to a signed-in user; one without, to an app.
    pub fn of(claims: &TokenClaims) -> Grant {
        if claims.scp.is_some() {
            Grant::Delegated
        } else {
            Grant::Application
        }
    }
}

impl fmt::Display for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Grant::Application => "application",
            Grant::Delegated => "delegated",
        })
    }
}

/// Checks a token's claims for `action` in `tenant` (empty: any tenant): what allows it.
pub fn check_token(
    claims: &TokenClaims,
    tenant: &str,
    action: Action,
) -> Result<Allowed, TokenProblem> {
    if let Some(tid) = &claims.tid {
        if tid.eq_ignore_ascii_case(CONSUMER_TENANT) {
            return Err(TokenProblem::PersonalAccount);
        }
        if !tenant.is_empty() && !tid.eq_ignore_ascii_case(tenant) {
            return Err(TokenProblem::OtherTenant {
                token: tid.clone(),
                expected: tenant.to_string(),
            });
        }
    }
    if let Some(allowed) = Allowed::of(claims, action) {
        return Ok(allowed);
    }
    Err(TokenProblem::MissingPermission {
        permission: action.permission(),
        action,
        found: claims.permissions(),
        kind: Grant::of(claims),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRIVILEGED: Permission = Permission::PrivilegedOperations;
    const MANAGED_DEVICES_READ_WRITE: Permission = Permission::ManagedDevicesReadWrite;

    fn app(roles: &[Permission]) -> TokenClaims {
        TokenClaims {
            upn: None,
            tid: Some("6d1f0000-0000-4000-8000-0000000000aa".into()),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            ..TokenClaims::default()
        }
    }

    #[test]
    fn filevault_takes_the_privileged_permission_alone() {
        assert_eq!(
            check_token(&app(&[PRIVILEGED]), "", Action::FileVault),
            Ok(Allowed::Listed(PRIVILEGED))
        );
        assert!(check_token(&app(&[MANAGED_DEVICES_READ_WRITE]), "", Action::FileVault).is_err());
    }

    #[test]
    fn bitlocker_and_recovery_lock_never_pass_on_the_privileged_permission() {
        for action in [Action::BitLocker, Action::RecoveryLock] {
            assert!(
                check_token(&app(&[PRIVILEGED]), "", action).is_err(),
                "{action:?}"
            );
            assert_eq!(
                check_token(&app(&[MANAGED_DEVICES_READ_WRITE]), "", action),
                Ok(Allowed::Listed(MANAGED_DEVICES_READ_WRITE))
            );
        }
    }

    #[test]
    fn laps_takes_either_write_permission_and_its_pages_read_pair_with_a_warning() {
        for p in [PRIVILEGED, MANAGED_DEVICES_READ_WRITE] {
            assert_eq!(
                check_token(&app(&[p]), "", Action::Laps),
                Ok(Allowed::Listed(p))
            );
        }
        let read = app(&[
            Permission::ManagedDevicesRead,
            Permission::ConfigurationRead,
        ]);
        let allowed = check_token(&read, "", Action::Laps).unwrap();
        assert!(matches!(allowed, Allowed::Doubtful(_)));
        assert!(allowed.warning(Action::Laps).unwrap().contains("403"));
    }

    #[test]
    fn a_missing_permission_is_named_with_what_the_token_has() {
        let e = check_token(
            &app(&[Permission::ManagedDevicesRead]),
            "",
            Action::FileVault,
        )
        .unwrap_err();
        assert!(matches!(
            &e,
            TokenProblem::MissingPermission {
                permission: PRIVILEGED,
                kind: Grant::Application,
                ..
            }
        ));
        assert!(
            e.to_string()
                .contains("token has: DeviceManagementManagedDevices.Read.All")
        );
    }

    #[test]
    fn another_tenant_and_personal_accounts_are_refused() {
        let claims = app(&[PRIVILEGED]);
        assert!(matches!(
            check_token(
                &claims,
                "6d1f0000-0000-4000-8000-0000000000bb",
                Action::Laps
            ),
            Err(TokenProblem::OtherTenant { .. })
        ));
        let personal = TokenClaims {
            tid: Some(CONSUMER_TENANT.into()),
            ..claims
        };
        assert_eq!(
            check_token(&personal, "", Action::Laps),
            Err(TokenProblem::PersonalAccount)
        );
    }
}
