//! Which of Intune's audit activities record a view of a FileVault key or a Recovery Lock
//! passcode. Their names are not documented (graph-facts §12), so they are found in the tenant's
//! own list (`getAuditActivityTypes`), by the Graph function each view calls, beside any the
//! admin names.

use super::AuditGate;
use crate::{Action, RotationError};
use graph_client::{GraphClient, GraphClientError};
use serde_json::Value;

/// The activity names found, and what the plan should say of them.
#[derive(Debug, Default)]
pub struct Found {
    pub names: Vec<String>,
    pub notes: Vec<String>,
}

/// The word a view's activity carries: the Graph function that reads the secret.
fn marker(action: Action) -> (&'static str, &'static str) {
    match action {
        Action::FileVault => ("filevaultkey", "FileVault key"),
        _ => ("recoverylockpasscode", "Recovery Lock passcode"),
    }
}

/// Whether `name` records a view of `action`'s secret: it names the secret, and is not the
/// rotation itself.
pub fn is_view(action: Action, name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    let (word, _) = marker(action);
    lower.contains(word) && !lower.starts_with("rotate")
}

/// The Intune audit activity names the tenant logs for devices.
pub async fn activity_types(client: &GraphClient) -> Result<Vec<String>, GraphClientError> {
    let v = client
        .get_json_retrying("/deviceManagement/auditEvents/getAuditActivityTypes(category='Device')")
        .await?;
    Ok(v.get("value")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|n| n.as_str().map(str::to_string))
        .collect())
}

/// The tenant's view activities for `action`, with `extra` (the admin's) beside them.
pub async fn intune(
    client: &GraphClient,
    gate: &AuditGate,
    action: Action,
    extra: &[String],
) -> Result<Found, RotationError> {
    let (_, secret) = marker(action);
    let mut found = Found::default();
    gate.acquire().await;
    let listed: Vec<String> = match activity_types(client).await {
        Ok(names) => names,
        Err(e @ GraphClientError::Http { status: 403, .. }) => {
            return Err(RotationError::MissingPermission {
                permissions: vec![crate::Permission::AppsRead],
                what: format!("reading Intune's audit activity types ({e})"),
            });
        }
        Err(e) => {
            found.notes.push(format!(
                "warning: Intune's audit activity types could not be read ({e}); only the activities named for this run are read"
            ));
            Vec::new()
        }
    };
    found.names = listed
        .iter()
        .filter(|n| is_view(action, n))
        .cloned()
        .collect();
    for name in extra {
        if !listed.is_empty() && !listed.iter().any(|l| l.eq_ignore_ascii_case(name)) {
            found.notes.push(format!(
                "warning: the audit activity {name:?} is not among this tenant's activity types; it is read all the same"
            ));
        }
        if !found.names.iter().any(|n| n.eq_ignore_ascii_case(name)) {
            found.names.push(name.clone());
        }
    }
    if found.names.is_empty() {
        return Err(RotationError::NoViewActivity {
            secret,
            known: listed,
        });
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_view_names_the_secret_and_the_rotation_is_not_a_view() {
        assert!(is_view(Action::FileVault, "getFileVaultKey ManagedDevice"));
        assert!(is_view(Action::FileVault, "Get FileVaultKey ManagedDevice"));
        assert!(!is_view(
            Action::FileVault,
            "rotateFileVaultKey ManagedDevice"
        ));
        assert!(is_view(
            Action::RecoveryLock,
            "retrieveRecoveryLockPasscode ManagedDevice"
        ));
        assert!(!is_view(
            Action::RecoveryLock,
            "getFileVaultKey ManagedDevice"
        ));
    }
}
