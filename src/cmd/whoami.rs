//! `intune-rotate whoami`: who the credentials sign in as and what they may do, before a run.

use super::Failure;
use crate::cli::{TextOrJson, WhoamiArgs};
use crate::connect;
use crate::exit_status::ExitStatus;
use graph_client::{ExposeSecret, TokenClaims};
use rotation::Action;

pub async fn run(a: WhoamiArgs) -> Result<ExitStatus, Failure> {
    let (c, who) = identity(&a.connection).await?;
    drop(c);
    match a.format {
        TextOrJson::Json => println!("{}", who.json),
        TextOrJson::Text => print!("{}", who.text),
    }
    Ok(ExitStatus::Success)
}

/// Who signed in and what the token allows, as JSON and as text.
pub struct Identity {
    pub json: serde_json::Value,
    pub text: String,
    pub claims: Option<TokenClaims>,
}

/// Signs in and reads the token: the connection and what it allows.
pub async fn identity(
    connection: &crate::cli::Connection,
) -> Result<(connect::Connected, Identity), Failure> {
    let scopes: Vec<&str> = Action::ALL
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
        .collect();
    let c = connect::client(connection, None, None, &scopes)?;
    let token = c
        .client
        .tokens()
        .token()
        .await
        .map_err(|e| Failure(ExitStatus::Auth, e.into()))?;
    let decoded = TokenClaims::decode(token.expose_secret());
    let claims = decoded.clone().unwrap_or_default();
    let tenant = claims.tid.clone().unwrap_or_else(|| c.tenant.clone());
    let app = claims
        .appid
        .clone()
        .or(c.client_id.clone())
        .unwrap_or_else(|| "?".into());
    let kind = if claims.scp.is_some() {
        "delegated (signed-in admin)"
    } else {
        "application"
    };
    let minutes_left = claims.exp.map(|exp| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        exp.saturating_sub(now) / 60
    });
    let perms = claims.permissions();
    // What the token allows: each capability, allowed, or what is missing (and what it costs).
    // Each capability: allowed (by which permission, where that is worth saying), or what is
    // missing.
    let mut can: Vec<(String, Result<Option<String>, String>)> = Vec::new();
    for action in Action::ALL {
        // Per action, the permission its page lists that allows it (graph-facts §11).
        can.push((
            action.cli_name().to_string(),
            match rotation::Allowed::of(&claims, action) {
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
    let audit_days = if log_readable(&can) {
        Some(rotation::views::directory_retention(&c.client).await)
    } else {
        None
    };
    let capabilities: serde_json::Map<String, serde_json::Value> = can
        .iter()
        .map(|(name, r)| {
            (
                name.clone(),
                serde_json::json!({
                    "allowed": r.is_ok(),
                    "by": r.as_ref().ok().cloned().flatten(),
                    "missing": r.as_ref().err(),
                }),
            )
        })
        .collect();
    let json = serde_json::json!({
        "cloud": connection.cloud,
        "graph": c.client.endpoints().graph.to_string(),
        "tenant": tenant,
        "app": app,
        "kind": if claims.scp.is_some() { "delegated" } else { "application" },
        "credential": c.credential.name(),
        "passed_over": c.passed_over.iter().map(|p| serde_json::json!({"credential": p.kind.name(), "why": p.why})).collect::<Vec<_>>(),
        "token_minutes_left": minutes_left,
        "permissions": perms,
        "capabilities": capabilities,
        "directory_audit_days": audit_days.map(|r| r.days),
    });
    use std::fmt::Write;
    let mut text = String::new();
    let _ = writeln!(text, "cloud        {}", connection.cloud);
    let _ = writeln!(text, "graph        {}", c.client.endpoints().graph);
    let _ = writeln!(text, "tenant       {tenant}");
    let _ = writeln!(text, "app          {app}");
    let _ = writeln!(text, "kind         {kind}");
    let _ = writeln!(text, "credential   {}", c.credential);
    for p in &c.passed_over {
        let _ = writeln!(text, "  passed over {:<18} {}", p.kind.name(), p.why);
    }
    if let Some(m) = minutes_left {
        let _ = writeln!(text, "token left   {m} min");
    }
    let _ = writeln!(
        text,
        "permissions  {}",
        if perms.is_empty() {
            "none found in the token".into()
        } else {
            perms.join(", ")
        }
    );
    for (name, r) in &can {
        let how = match r {
            Ok(None) => "allowed".to_string(),
            Ok(Some(how)) => format!("allowed {how}"),
            Err(why) => why.clone(),
        };
        let _ = writeln!(text, "  {name:<14} {how}");
    }
    if let Some(r) = audit_days {
        let assumed = if r.known {
            ""
        } else {
            " (assumed: the licences could not be read)"
        };
        let _ = writeln!(
            text,
            "audit log    Entra keeps {} days of reads{assumed}",
            r.days
        );
    }
    Ok((
        c,
        Identity {
            json,
            text,
            claims: decoded,
        },
    ))
}

/// Whether the token may read Entra's directory audit log (the capability pushed above).
fn log_readable(can: &[(String, Result<Option<String>, String>)]) -> bool {
    can.iter().any(|(n, r)| n == "entra audit" && r.is_ok())
}
