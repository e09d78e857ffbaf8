//! `intune-rotate whoami`: who the credentials sign in as and what they may do, before a run.

use super::Failure;
use crate::cli::WhoamiArgs;
use crate::connect;
use crate::exit_status::ExitStatus;
use graph_client::{ExposeSecret, TokenClaims};
use rotation::Action;

pub async fn run(a: WhoamiArgs) -> Result<ExitStatus, Failure> {
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
    let c = connect::client(&a.connection, None, None, &scopes)?;
    let token = c
        .client
        .tokens()
        .token()
        .await
        .map_err(|e| Failure(ExitStatus::Auth, e.into()))?;
    let claims = TokenClaims::decode(token.expose_secret()).unwrap_or_default();
    println!("cloud        {}", a.connection.cloud);
    println!("graph        {}", c.client.endpoints().graph);
    println!(
        "tenant       {}",
        claims.tid.as_deref().unwrap_or(&c.tenant)
    );
    println!(
        "app          {}",
        claims
            .appid
            .as_deref()
            .or(c.client_id.as_deref())
            .unwrap_or("?")
    );
    println!(
        "kind         {}",
        if claims.scp.is_some() {
            "delegated (signed-in admin)"
        } else {
            "application"
        }
    );
    if let Some(exp) = claims.exp {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        println!("token left   {} min", exp.saturating_sub(now) / 60);
    }
    let perms = claims.permissions();
    println!(
        "permissions  {}",
        if perms.is_empty() {
            "none found in the token".into()
        } else {
            perms.join(", ")
        }
    );
    for action in Action::ALL {
        let ok = claims.has(action.permission())
            || claims.has("DeviceManagementManagedDevices.PrivilegedOperations.All");
        println!(
            "  {:<14} {}",
            action.cli_name(),
            if ok {
                "allowed".to_string()
            } else {
                format!("missing {}", action.permission())
            }
        );
    }
    let reads = claims.has("DeviceManagementManagedDevices.Read.All")
        || claims.has("DeviceManagementManagedDevices.ReadWrite.All");
    println!(
        "  {:<14} {}",
        "list devices",
        if reads {
            "allowed"
        } else {
            "missing DeviceManagementManagedDevices.Read.All"
        }
    );
    // --group reads members with one permission and their Entra device ids with another.
    let members = [
        "GroupMember.Read.All",
        "Group.Read.All",
        "Directory.Read.All",
    ]
    .iter()
    .any(|p| claims.has(p));
    let device_ids = ["Device.Read.All", "Directory.Read.All"]
        .iter()
        .any(|p| claims.has(p));
    println!(
        "  {:<14} {}",
        "group members",
        if members {
            "allowed"
        } else {
            "missing GroupMember.Read.All (for --group)"
        }
    );
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
        let ok = permissions.iter().any(|p| claims.has(p));
        println!(
            "  {:<14} {}",
            what,
            if ok {
                "allowed".to_string()
            } else {
                format!("missing {} ({without})", permissions[0])
            }
        );
    }
    println!(
        "  {:<14} {}",
        "group devices",
        if device_ids {
            "allowed"
        } else {
            "missing Device.Read.All (for --group device members; user members still work)"
        }
    );
    Ok(ExitStatus::Success)
}
