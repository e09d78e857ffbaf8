//! What a token allows, capability by capability: allowed (by which permission, where that is
//! worth saying), or what is missing and what a run loses without it, in the command line's words.

use graph_client::TokenClaims;
use rotation::Action;

/// A capability's name, and allowed (how, where worth saying) or what is missing.
pub type Capability = (String, Result<Option<String>, String>);

pub fn of(claims: &TokenClaims) -> Vec<Capability> {
    // What the token allows: each capability, allowed, or what is missing (and what it costs).
    // Each capability: allowed (by which permission, where that is worth saying), or what is
    // missing.
    let mut can: Vec<Capability> = Vec::new();
    for action in Action::ALL {
        // Per action, the permission its page lists that allows it (graph-facts §11).
        can.push((
            action.cli_name().to_string(),
            match rotation::Allowed::of(claims, action) {
                Some(rotation::Allowed::Listed(p)) => Ok(Some(format!("by {p}"))),
                Some(a @ rotation::Allowed::Doubtful(_)) => Ok(a.warning(action)),
                None => Err(format!("missing {}", action.permissions().join(" or "))),
            },
        ));
    }
    let any = |ps: &[&str]| ps.iter().any(|p| claims.has(p));
    let rule = |ok: bool, missing: &str| {
        if ok {
            Ok(None)
        } else {
            Err(missing.to_string())
        }
    };
    can.push((
        "list devices".into(),
        rule(
            any(&[
                "DeviceManagementManagedDevices.Read.All",
                "DeviceManagementManagedDevices.ReadWrite.All",
            ]),
            "missing DeviceManagementManagedDevices.Read.All",
        ),
    ));
    // --group reads members with one permission and their Entra device ids with another.
    can.push((
        "group members".into(),
        rule(
            any(&[
                "GroupMember.Read.All",
                "Group.Read.All",
                "Directory.Read.All",
            ]),
            "missing GroupMember.Read.All (for --group)",
        ),
    ));
    // What the plan reads beyond the listing, and what is left unchecked without it.
    for (what, permissions, without) in [
        (
            "encryption rpt",
            &[
                "DeviceManagementConfiguration.Read.All",
                "DeviceManagementConfiguration.ReadWrite.All",
            ][..],
            "FileVault escrow states are not checked",
        ),
        (
            "bitlocker keys",
            &["BitLockerKey.ReadBasic.All", "BitLockerKey.Read.All"][..],
            "--skip-rotated-within for bitlocker exits 3; verify confirms from action results only",
        ),
        (
            "laps backups",
            &[
                "DeviceLocalCredential.ReadBasic.All",
                "DeviceLocalCredential.Read.All",
            ][..],
            "--skip-rotated-within for laps exits 3; verify confirms from action results only",
        ),
    ] {
        can.push((
            what.into(),
            rule(
                any(permissions),
                &format!("missing {} ({without})", permissions[0]),
            ),
        ));
    }
    can.push((
        "group devices".into(),
        rule(
            any(&["Device.Read.All", "Directory.Read.All"]),
            "missing Device.Read.All (for --group device members; user members still work)",
        ),
    ));
    // The audit logs `--viewed-since` reads (docs/viewed-secrets.md).
    for log in [
        rotation::views::AuditLogKind::Directory,
        rotation::views::AuditLogKind::Intune,
    ] {
        let missing: Vec<&str> = log
            .permissions()
            .iter()
            .copied()
            .filter(|p| !claims.has(p))
            .collect();
        let name = match log {
            rotation::views::AuditLogKind::Directory => "entra audit",
            rotation::views::AuditLogKind::Intune => "intune audit",
        };
        can.push((
            name.into(),
            rule(
                missing.is_empty(),
                &format!("missing {} (--viewed-since exits 3)", missing.join(" and ")),
            ),
        ));
    }
    can
}

/// What a delegated sign-in for `whoami` asks for: every capability's permission.
pub fn scopes() -> Vec<&'static str> {
    Action::ALL
        .iter()
        .map(|x| x.permission())
        .chain([
            "DeviceManagementManagedDevices.Read.All",
            "GroupMember.Read.All",
            "Device.Read.All",
            "DeviceManagementConfiguration.Read.All",
            "BitLockerKey.ReadBasic.All",
            "DeviceLocalCredential.ReadBasic.All",
        ])
        .collect()
}

/// Whether the token may read Entra's directory audit log (the capability pushed above).
pub fn log_readable(can: &[Capability]) -> bool {
    can.iter().any(|(n, r)| n == "entra audit" && r.is_ok())
}
