//! What the pre-flight decides from an access token before anything is sent: the right tenant,
//! a work or school account, and the action's permission.

use crate::Action;
use graph_client::TokenClaims;
use thiserror::Error;

/// The tenant id personal Microsoft accounts sign in under; the rotate actions refuse them.
const CONSUMER_TENANT: &str = "9188040d-6c67-4c5b-b112-36a304b66dad";

/// Covers the ReadWrite actions too.
const PRIVILEGED: &str = "DeviceManagementManagedDevices.PrivilegedOperations.All";

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
        permission: &'static str,
        action: Action,
        found: Vec<String>,
        /// `application` or `delegated`.
        kind: &'static str,
    },
}

/// Checks a token's claims for `action` in `tenant` (empty: any tenant).
pub fn check_token(claims: &TokenClaims, tenant: &str, action: Action) -> Result<(), TokenProblem> {
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
    if claims.has(action.permission()) || claims.has(PRIVILEGED) {
        return Ok(());
    }
    Err(TokenProblem::MissingPermission {
        permission: action.permission(),
        action,
        found: claims.permissions(),
        kind: if claims.scp.is_some() {
            "delegated"
        } else {
            "application"
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(roles: &[&str]) -> TokenClaims {
        TokenClaims {
            upn: None,
            tid: Some("6d1f0000-0000-4000-8000-0000000000aa".into()),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            ..TokenClaims::default()
        }
    }

    #[test]
    fn the_privileged_permission_covers_every_action() {
        for action in Action::ALL {
            assert_eq!(check_token(&app(&[PRIVILEGED]), "", action), Ok(()));
        }
    }

    #[test]
    fn a_missing_permission_is_named_with_what_the_token_has() {
        let e = check_token(
            &app(&["DeviceManagementManagedDevices.Read.All"]),
            "",
            Action::FileVault,
        )
        .unwrap_err();
        assert!(matches!(
            &e,
            TokenProblem::MissingPermission { permission, kind: "application", .. } if *permission == PRIVILEGED
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
