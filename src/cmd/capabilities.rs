//! What a token allows, capability by capability: allowed (by which permission, where that is
//! worth saying), or what is missing and what a run loses without it, in the command line's words.

use graph_client::TokenClaims;
use rotation::{Action, Permission as P};

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
                None => Err(format!("missing {}", P::joined(action.permissions(), "or"))),
            },
        ));
    }
    let any = |ps: &[P]| ps.iter().any(|p| claims.has(p.name()));
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
            any(&[P::ManagedDevicesRead, P::ManagedDevicesReadWrite]),
            &format!("missing {}", P::ManagedDevicesRead),
        ),
    ));
    // --group reads members with one permission and their Entra device ids with another.
    can.push((
        "group members".into(),
        rule(
            any(&[P::GroupMemberRead, P::GroupRead, P::DirectoryRead]),
            &format!("missing {} (for --group)", P::GroupMemberRead),
        ),
    ));
    // What the plan reads beyond the listing, and what is left unchecked without it.
    for (what, permissions, without) in [
        (
            "encryption rpt",
            &[P::ConfigurationRead, P::ConfigurationReadWrite][..],
            "FileVault escrow states are not checked",
        ),
        (
            "bitlocker keys",
            &[P::BitLockerKeyReadBasic, P::BitLockerKeyRead][..],
            "--skip-rotated-within for bitlocker exits 3; verify confirms from action results only",
        ),
        (
            "laps backups",
            &[P::LocalCredentialReadBasic, P::LocalCredentialRead][..],
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
            any(&[P::DeviceRead, P::DirectoryRead]),
            &format!(
                "missing {} (for --group device members; user members still work)",
                P::DeviceRead
            ),
        ),
    ));
    // The audit logs `--viewed-since` reads (docs/viewed-secrets.md).
    for log in [
        rotation::views::AuditLogKind::Directory,
        rotation::views::AuditLogKind::Intune,
    ] {
        let missing: Vec<P> = log
            .permissions()
            .iter()
            .copied()
            .filter(|p| !claims.has(p.name()))
            .collect();
        let name = match log {
            rotation::views::AuditLogKind::Directory => "entra audit",
            rotation::views::AuditLogKind::Intune => "intune audit",
        };
        can.push((
            name.into(),
            rule(
                missing.is_empty(),
                &format!(
                    "missing {} (--viewed-since exits 3)",
                    P::joined(&missing, "and")
                ),
            ),
        ));
    }
    can
}

/// What a delegated sign-in for `whoami` asks for: every capability's permission.
pub fn scopes() -> Vec<P> {
    Action::ALL
        .iter()
        .map(|x| x.permission())
        .chain([
            P::ManagedDevicesRead,
            P::GroupMemberRead,
            P::DeviceRead,
            P::ConfigurationRead,
            P::BitLockerKeyReadBasic,
            P::LocalCredentialReadBasic,
        ])
        .collect()
}

/// Whether the token may read Entra's directory audit log (the capability pushed above).
pub fn log_readable(can: &[Capability]) -> bool {
    can.iter().any(|(n, r)| n == "entra audit" && r.is_ok())
}
