//! Building the Graph connection from the options, and the pre-flight check before anything is sent.

use crate::cli::Connection;
use anyhow::{anyhow, bail};
use graph_client::{
    Cloud, Credential, CredentialKind, Endpoints, ExposeSecret, GraphClient, GraphClientError,
    TokenClaims,
};
use rotation::{Action, Permission};

pub use crate::connect_error::ConnectError;

/// A connection ready to use, with what it was made from.
pub struct Connected {
    pub client: GraphClient,
    pub tenant: String,
    pub client_id: Option<String>,
    /// How it signs in, and what `auto` passed over first.
    pub credential: CredentialKind,
    pub passed_over: Vec<crate::credential_choice::PassedOver>,
}

/// The client for `conn`; `tenant` and `client_id` fall back to what a ledger recorded.
/// `delegated` lists the permissions a device code sign-in asks for.
pub fn client(
    conn: &Connection,
    recorded_tenant: Option<&str>,
    recorded_client: Option<&str>,
    delegated: &[Permission],
) -> Result<Connected, ConnectError> {
    let cloud: Cloud = conn.cloud;
    let endpoints = Endpoints::new(cloud, conn.graph_url.as_deref(), conn.login_url.as_deref())
        .map_err(|e| anyhow!(e))?;
    let tenant = conn.tenant.clone().or(recorded_tenant.map(str::to_string));
    let client_id = conn
        .client_id
        .clone()
        .or(recorded_client.map(str::to_string));
    let chosen = crate::credential_choice::choose(
        conn,
        &crate::credential_choice::Inputs {
            tenant: tenant.clone(),
            client_id: client_id.clone(),
            delegated,
        },
    )?;
    let credential = chosen.credential;
    let kind = credential.kind();
    let client = GraphClient::with_http(endpoints, credential, "beta", shared_http()?);
    Ok(Connected {
        client,
        tenant: tenant.unwrap_or_default(),
        client_id,
        credential: kind,
        passed_over: chosen.passed_over,
    })
}

/// The process's one HTTP client: every tenant of a run shares its connections and TLS roots.
/// The binary runs one runtime for its life, so pooled connections never outlive theirs.
fn shared_http() -> Result<reqwest::Client, ConnectError> {
    static HTTP: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    if let Some(http) = HTTP.get() {
        return Ok(http.clone());
    }
    let http = graph_client::http_client().map_err(|e| anyhow!(e))?;
    Ok(HTTP.get_or_init(|| http).clone())
}

/// Before anything is sent: a token, for this tenant, not a personal account, holding the action's
/// permission, and accepted by Graph. `lists_devices`: the source needs to read devices.
pub async fn preflight(
    c: &Connected,
    action: Action,
    lists_devices: bool,
) -> Result<(), ConnectError> {
    let token = c
        .client
        .tokens()
        .token()
        .await
        .map_err(|e| ConnectError::Auth(anyhow!(e)))?;
    match TokenClaims::decode(token.expose_secret()) {
        None => tracing::warn!("the access token is not a JWT; skipping the permission pre-check"),
        Some(claims) => {
            let allowed = rotation::check_token(&claims, &c.tenant, action)
                .map_err(|e| ConnectError::Auth(e.into()))?;
            if let Some(w) = allowed.warning(action) {
                tracing::warn!("{w}");
            }
            if let Some(exp) = claims.exp {
                let left = exp.saturating_sub(
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs()),
                );
                if matches!(c.client.tokens().credential(), Credential::StaticToken(_))
                    && left < 3600
                {
                    tracing::warn!(
                        "the given access token expires in {} min and cannot be refreshed; the run will stop cleanly then (resume with a new token)",
                        left / 60
                    );
                }
            }
        }
    }
    match (can_read_devices(c).await?, lists_devices) {
        (true, _) => Ok(()),
        (false, false) => {
            tracing::warn!(
                "the app cannot read managed devices (403); rotating from the given list only"
            );
            Ok(())
        }
        (false, true) => Err(ConnectError::Auth(anyhow!(
            "{} for this source; grant it, or give the devices with --input",
            missing_read()
        ))),
    }
}

/// Before listing devices only (`devices`, `verify`): a token Graph accepts for reading devices.
pub async fn preflight_read(c: &Connected) -> Result<(), ConnectError> {
    if can_read_devices(c).await? {
        Ok(())
    } else {
        Err(ConnectError::Auth(anyhow!(missing_read())))
    }
}

fn missing_read() -> String {
    format!(
        "missing permission {} to list devices",
        Permission::ManagedDevicesRead
    )
}

/// One cheap call proves Graph accepts the token; `false` when it answers 403 (no permission to
/// read devices), which each caller weighs differently.
async fn can_read_devices(c: &Connected) -> Result<bool, ConnectError> {
    match c
        .client
        .get_json_retrying("/deviceManagement/managedDevices?$top=1&$select=id")
        .await
    {
        Ok(_) => Ok(true),
        Err(GraphClientError::Http { status: 403, .. }) => Ok(false),
        Err(GraphClientError::Http { status: 401, .. }) => Err(ConnectError::Auth(anyhow!(
            "Graph refused the access token (401)"
        ))),
        Err(
            e @ (GraphClientError::Token(_)
            | GraphClientError::TokenExpired
            | GraphClientError::Credential(_)),
        ) => Err(ConnectError::Auth(anyhow!(e))),
        Err(e) => Err(ConnectError::Usage(anyhow!(
            "the pre-flight call to Graph failed: {e}"
        ))),
    }
}

/// Who the connection signs in as, for the ledger and reports: the person, or the app.
pub async fn signed_in_as(c: &Connected) -> Option<String> {
    let token = c.client.tokens().token().await.ok()?;
    let claims = TokenClaims::decode(token.expose_secret())?;
    claims
        .upn
        .map(|u| format!("user {u}"))
        .or(claims.appid.map(|a| format!("app {a}")))
}

/// Permissions a delegated sign-in asks for: the action's, reading devices (the source's listing
/// and the plan's look at pending actions), the encryption report for FileVault, and what else the
/// source reads (`extra`: groups, scripts).
pub fn delegated_scopes(action: Action, extra: &[Permission]) -> Vec<Permission> {
    let mut s = vec![action.permission(), Permission::ManagedDevicesRead];
    if action == Action::FileVault {
        // The encryption report, for FileVault's escrow state.
        s.push(Permission::ConfigurationRead);
    }
    s.extend_from_slice(extra);
    s
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
