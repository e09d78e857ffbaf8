//! `intune-rotate whoami`: who the credentials sign in as and what they may do, before a run.

use super::Failure;
use crate::cli::{TextOrJson, WhoamiArgs};
use crate::connect;
use crate::exit_status::ExitStatus;
use graph_client::{ExposeSecret, TokenClaims};

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
    let scopes = super::capabilities::scopes();
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
    let grant = rotation::Grant::of(&claims);
    let kind = match grant {
        rotation::Grant::Delegated => "delegated (signed-in admin)",
        rotation::Grant::Application => "application",
    };
    let minutes_left = claims.exp.map(|exp| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        exp.saturating_sub(now) / 60
    });
    let perms = claims.permissions();
    let can = super::capabilities::of(&claims);
    let audit_days = if super::capabilities::log_readable(&can) {
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
        "cloud": connection.cloud.name(),
        "graph": c.client.endpoints().graph.to_string(),
        "tenant": tenant,
        "app": app,
        "kind": grant.to_string(),
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
