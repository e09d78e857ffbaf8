//! Building the Graph connection from the options, and the pre-flight check before anything is sent.

use crate::cli::Connection;
use crate::env;
use anyhow::{Context, bail};
use graph_client::{
    Cloud, Credential, Endpoints, ExposeSecret, GraphClient, SecretString, TokenClaims,
};
use rotation::Action;

/// Why a connection cannot be made: bad usage (exit 2) or credentials (exit 3).
pub enum ConnectError {
    Usage(anyhow::Error),
    Auth(anyhow::Error),
}

impl From<anyhow::Error> for ConnectError {
    fn from(e: anyhow::Error) -> Self {
        ConnectError::Usage(e)
    }
}

/// The client for `conn`, with `tenant` and `client_id` falling back to what a ledger recorded.
pub fn client(
    conn: &Connection,
    recorded_tenant: Option<&str>,
    recorded_client: Option<&str>,
) -> Result<(GraphClient, String, Option<String>), ConnectError> {
    let cloud: Cloud = conn.cloud.parse().map_err(anyhow::Error::msg)?;
    let endpoints = Endpoints::new(cloud, conn.graph_url.as_deref(), conn.login_url.as_deref())
        .map_err(|e| anyhow::anyhow!(e))?;
    if conn.certificate.is_some() {
        return Err(anyhow::anyhow!("--certificate is not built yet: use a client secret (AZURE_CLIENT_SECRET) or --token-file").into());
    }
    if conn.device_code {
        return Err(anyhow::anyhow!("--device-code is not built yet: use a client secret (AZURE_CLIENT_SECRET) or --token-file").into());
    }
    let tenant = conn.tenant.clone().or(recorded_tenant.map(str::to_string));
    let client_id = conn
        .client_id
        .clone()
        .or(recorded_client.map(str::to_string));
    let static_token = match &conn.token_file {
        Some(p) => Some(
            std::fs::read_to_string(p)
                .with_context(|| format!("{}: cannot read the token file", p.display()))?
                .trim()
                .to_string(),
        ),
        None => std::env::var(env::ACCESS_TOKEN)
            .ok()
            .filter(|t| !t.trim().is_empty()),
    };
    let credential = if let Some(token) = static_token {
        Credential::StaticToken(SecretString::from(token))
    } else {
        let Some(tenant) = tenant.clone() else {
            return Err(anyhow::anyhow!("--tenant (or {}) is required", env::TENANT).into());
        };
        let Some(client_id) = client_id.clone() else {
            return Err(anyhow::anyhow!("--client-id (or {}) is required", env::CLIENT_ID).into());
        };
        let Some(secret) = std::env::var(env::CLIENT_SECRET)
            .ok()
            .filter(|s| !s.is_empty())
        else {
            return Err(anyhow::anyhow!("no credential: set {} (the secret is never taken as a flag), or give --token-file / {}", env::CLIENT_SECRET, env::ACCESS_TOKEN).into());
        };
        Credential::ClientSecret {
            tenant,
            client_id,
            secret: SecretString::from(secret),
        }
    };
    let tenant = tenant.unwrap_or_default();
    let client = GraphClient::new(endpoints, credential, "beta").map_err(|e| anyhow::anyhow!(e))?;
    Ok((client, tenant, client_id))
}

/// Gets a token and checks, best effort, that it is for this tenant and carries the action's permission.
pub async fn preflight(
    client: &GraphClient,
    tenant: &str,
    action: Action,
) -> Result<(), ConnectError> {
    let token = client
        .tokens()
        .token()
        .await
        .map_err(|e| ConnectError::Auth(anyhow::anyhow!(e)))?;
    let Some(claims) = TokenClaims::decode(token.expose_secret()) else {
        tracing::warn!("the access token is not a JWT; skipping the permission pre-check");
        return Ok(());
    };
    if let Some(tid) = &claims.tid
        && !tenant.is_empty()
        && !tid.eq_ignore_ascii_case(tenant)
    {
        return Err(ConnectError::Auth(anyhow::anyhow!(
            "the access token is for tenant {tid}, not {tenant}"
        )));
    }
    let perms = claims.permissions();
    let needed = action.permission();
    // PrivilegedOperations.All covers the ReadWrite actions too.
    let covered =
        claims.has(needed) || claims.has("DeviceManagementManagedDevices.PrivilegedOperations.All");
    if !covered {
        let found = if perms.is_empty() {
            "none".to_string()
        } else {
            perms.join(", ")
        };
        return Err(ConnectError::Auth(anyhow::anyhow!(
            "missing permission {needed} for the {} action (token has: {found}). Grant it as an application permission of Microsoft Graph in the app registration's API permissions, then grant admin consent",
            action.graph_name()
        )));
    }
    Ok(())
}

/// Refuses to go on without a person's yes on a terminal, or `--yes`.
pub fn confirm(yes: bool, what: &str) -> anyhow::Result<()> {
    use std::io::{BufRead, IsTerminal, Write};
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        bail!("{what}\nstdin is not a terminal: pass --yes to proceed without confirmation");
    }
    eprint!("{what}\nProceed? [y/N] ");
    std::io::stderr().flush().ok();
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).ok();
    if matches!(line.trim(), "y" | "Y" | "yes" | "YES") {
        Ok(())
    } else {
        bail!("cancelled; nothing was sent")
    }
}
