//! The Azure CLI's signed-in account, for an admin's own machine: `az account get-access-token`
//! hands out a delegated token for the resource (graph-facts §13).

use crate::managed_identity::Issued;
use crate::{GraphClientError, expiry::expiry};
use secrecy::SecretString;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

/// The `az` program and the tenant to ask a token of (its default tenant when none).
#[derive(Debug, Clone)]
pub struct AzureCli {
    pub program: PathBuf,
    pub tenant: Option<String>,
}

/// How long `az` may take: it may refresh its own tokens over the network first.
const CLI_LIMIT: Duration = Duration::from_secs(60);

impl AzureCli {
    pub(crate) async fn token(&self, resource: &str) -> Result<Issued, GraphClientError> {
        let mut cmd = tokio::process::Command::new(&self.program);
        cmd.args([
            "account",
            "get-access-token",
            "--output",
            "json",
            "--resource",
            resource,
        ]);
        if let Some(t) = &self.tenant {
            if !t
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.'))
            {
                return Err(GraphClientError::Credential(format!(
                    "the tenant {t:?} is neither a GUID nor a domain name"
                )));
            }
            cmd.args(["--tenant", t]);
        }
        cmd.stdin(std::process::Stdio::null()).kill_on_drop(true);
        let fail = |why: String| GraphClientError::Credential(format!("the Azure CLI: {why}"));
        let sent = SystemTime::now();
        let out = tokio::time::timeout(CLI_LIMIT, cmd.output())
            .await
            .map_err(|_| {
                fail(format!(
                    "`az` gave no token within {} s",
                    CLI_LIMIT.as_secs()
                ))
            })?
            .map_err(|e| fail(format!("`{}` cannot be run: {e}", self.program.display())))?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            if err.contains("az login") {
                return Err(fail(
                    "not signed in: run `az login` (with `--tenant` for another tenant)".into(),
                ));
            }
            let first = err
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("no message");
            let first: String = first.chars().take(300).collect();
            return Err(fail(format!(
                "`az account get-access-token` failed ({}): {first}",
                out.status
            )));
        }
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .map_err(|e| fail(format!("unreadable answer: {e}")))?;
        let Some(token) = v.get("accessToken").and_then(|t| t.as_str()) else {
            return Err(fail("the answer held no accessToken".into()));
        };
        // `expires_on` (an epoch, CLI 2.54 and later) is exact; `expiresOn` is naive local time,
        // so without the epoch the token's own `exp` decides.
        let expires_at = expiry(v.get("expires_on"), None, token, sent)
            .unwrap_or(sent + Duration::from_secs(300));
        Ok(Issued {
            token: SecretString::from(token.to_string()),
            expires_at,
        })
    }
}
