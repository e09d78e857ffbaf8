//! Building the Graph connection from the options, and the pre-flight check before anything is sent.

use crate::cli::Connection;
use crate::env;
use anyhow::{Context, anyhow, bail};
use graph_client::{
    AssertionStyle, ClientCertificate, Cloud, Credential, Endpoints, ExposeSecret, GraphClient,
    GraphClientError, SecretString, TokenClaims,
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

/// A connection ready to use, with what it was made from.
pub struct Connected {
    pub client: GraphClient,
    pub tenant: String,
    pub client_id: Option<String>,
}

/// The client for `conn`; `tenant` and `client_id` fall back to what a ledger recorded.
/// `delegated` lists the permissions a device code sign-in asks for.
pub fn client(
    conn: &Connection,
    recorded_tenant: Option<&str>,
    recorded_client: Option<&str>,
    delegated: &[&str],
) -> Result<Connected, ConnectError> {
    let cloud: Cloud = conn.cloud.parse().map_err(anyhow::Error::msg)?;
    let endpoints = Endpoints::new(cloud, conn.graph_url.as_deref(), conn.login_url.as_deref())
        .map_err(|e| anyhow!(e))?;
    let tenant = conn.tenant.clone().or(recorded_tenant.map(str::to_string));
    let client_id = conn
        .client_id
        .clone()
        .or(recorded_client.map(str::to_string));
    let need = |what: Option<String>, flag: &str, var: &str| {
        what.ok_or_else(|| anyhow!("{flag} (or {var}) is required"))
    };
    let static_token = file_or_env(conn.token_file.as_deref(), env::ACCESS_TOKEN, "token")?;
    let credential = if let Some(token) = static_token {
        Credential::StaticToken(SecretString::from(token))
    } else if let Some(path) = &conn.certificate {
        let text = std::fs::read(path)
            .with_context(|| format!("{}: cannot read the certificate", path.display()))?;
        let style = if conn.assertion_rs256 {
            AssertionStyle::Rs256
        } else {
            AssertionStyle::Ps256
        };
        let certificate = ClientCertificate::from_pem(&text, &path.display().to_string(), style)
            .map_err(|e| anyhow!(e))?;
        Credential::Certificate {
            tenant: need(tenant.clone(), "--tenant", env::TENANT)?,
            client_id: need(client_id.clone(), "--client-id", env::CLIENT_ID)?,
            certificate,
        }
    } else if conn.device_code {
        Credential::DeviceCode {
            tenant: need(tenant.clone(), "--tenant", env::TENANT)?,
            client_id: need(client_id.clone(), "--client-id", env::CLIENT_ID)?,
            scopes: delegated.iter().map(|s| s.to_string()).collect(),
        }
    } else {
        let secret = file_or_env(
            conn.client_secret_file.as_deref(),
            env::CLIENT_SECRET,
            "secret",
        )?;
        let Some(secret) = secret else {
            return Err(anyhow!(
                "no credential: set {} or --client-secret-file (a secret is never taken as a flag value), or use --certificate, --device-code or --token-file / {}",
                env::CLIENT_SECRET,
                env::ACCESS_TOKEN
            )
            .into());
        };
        Credential::ClientSecret {
            tenant: need(tenant.clone(), "--tenant", env::TENANT)?,
            client_id: need(client_id.clone(), "--client-id", env::CLIENT_ID)?,
            secret: SecretString::from(secret),
        }
    };
    let client = GraphClient::new(endpoints, credential, "beta").map_err(|e| anyhow!(e))?;
    Ok(Connected {
        client,
        tenant: tenant.unwrap_or_default(),
        client_id,
    })
}

/// A secret from its file when one is given, else from the environment; trimmed, empty as none.
fn file_or_env(
    file: Option<&std::path::Path>,
    var: &str,
    what: &str,
) -> anyhow::Result<Option<String>> {
    let text = match file {
        Some(p) => std::fs::read_to_string(p)
            .with_context(|| format!("{}: cannot read the {what} file", p.display()))?,
        None => std::env::var(var).unwrap_or_default(),
    };
    let text = text.trim();
    Ok((!text.is_empty()).then(|| text.to_string()))
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
            "{MISSING_READ} for this source; grant it, or give the devices with --input"
        ))),
    }
}

/// Before listing devices only (`devices`, `verify`): a token Graph accepts for reading devices.
pub async fn preflight_read(c: &Connected) -> Result<(), ConnectError> {
    if can_read_devices(c).await? {
        Ok(())
    } else {
        Err(ConnectError::Auth(anyhow!(MISSING_READ)))
    }
}

const MISSING_READ: &str =
    "missing permission DeviceManagementManagedDevices.Read.All to list devices";

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
pub fn delegated_scopes(action: Action, extra: &[&'static str]) -> Vec<&'static str> {
    let mut s = vec![action.permission()];
    s.push("DeviceManagementManagedDevices.Read.All");
    if action == Action::FileVault {
        // The encryption report, for FileVault's escrow state.
        s.push("DeviceManagementConfiguration.Read.All");
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
