//! Credentials and the in-memory token cache: refreshed ahead of expiry, once on a 401, and
//! concurrent refreshes coalesced into one request.

use crate::{Endpoints, GraphClientError, TokenClaims, TokenError};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How the run proves who it is. Secrets are `SecretString`: never in Debug, logs or errors.
#[derive(Debug, Clone)]
pub enum Credential {
    /// App registration with a client secret (client credentials grant).
    ClientSecret {
        tenant: String,
        client_id: String,
        secret: SecretString,
    },
    /// A token acquired elsewhere; it cannot be refreshed.
    StaticToken(SecretString),
}

#[derive(Debug)]
struct Cached {
    token: SecretString,
    refresh_at: Instant,
    expires_at: Instant,
}

/// Hands out a valid access token, fetching a new one when the cached one nears expiry.
#[derive(Debug)]
pub struct TokenProvider {
    credential: Credential,
    endpoints: Endpoints,
    http: reqwest::Client,
    cache: tokio::sync::Mutex<Option<Cached>>,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

#[derive(Deserialize, Default)]
struct EntraError {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
    #[serde(default)]
    error_codes: Vec<u32>,
    #[serde(default)]
    trace_id: String,
    #[serde(default)]
    correlation_id: String,
}

/// Ahead-of-expiry margin: five minutes, or a fifth of a short lifetime.
fn margin(lifetime: Duration) -> Duration {
    Duration::from_secs(300).min(lifetime / 5)
}

impl TokenProvider {
    pub fn new(credential: Credential, endpoints: Endpoints, http: reqwest::Client) -> Self {
        TokenProvider {
            credential,
            endpoints,
            http,
            cache: tokio::sync::Mutex::new(None),
        }
    }

    pub fn credential(&self) -> &Credential {
        &self.credential
    }

    /// A token valid for a while yet. Callers waiting during a refresh share its result.
    pub async fn token(&self) -> Result<SecretString, GraphClientError> {
        let mut cache = self.cache.lock().await;
        let now = Instant::now();
        if let Some(c) = cache.as_ref()
            && now < c.refresh_at
        {
            return Ok(c.token.clone());
        }
        match &self.credential {
            Credential::StaticToken(token) => {
                let expires_in = TokenClaims::decode(token.expose_secret())
                    .and_then(|c| c.exp)
                    .map(|exp| Duration::from_secs(exp.saturating_sub(unix_now())));
                match expires_in {
                    Some(d) if d.is_zero() => Err(GraphClientError::TokenExpired),
                    _ => {
                        if let Some(c) = cache.as_ref()
                            && now >= c.expires_at
                        {
                            return Err(GraphClientError::TokenExpired);
                        }
                        let life = expires_in.unwrap_or(Duration::from_secs(3600));
                        *cache = Some(Cached {
                            token: token.clone(),
                            refresh_at: now + life,
                            expires_at: now + life,
                        });
                        Ok(token.clone())
                    }
                }
            }
            Credential::ClientSecret {
                tenant,
                client_id,
                secret,
            } => {
                let scope = format!("{}/.default", self.endpoints.scope_resource);
                let form = [
                    ("grant_type", "client_credentials"),
                    ("client_id", client_id.as_str()),
                    ("client_secret", secret.expose_secret()),
                    ("scope", scope.as_str()),
                ];
                let fresh = self.request(tenant, &form).await?;
                let token = fresh.token.clone();
                *cache = Some(fresh);
                Ok(token)
            }
        }
    }

    /// Forgets `token` after Graph refused it, so the next call fetches a new one.
    pub async fn invalidate(&self, token: &SecretString) {
        let mut cache = self.cache.lock().await;
        if let Some(c) = cache.as_mut()
            && c.token.expose_secret() == token.expose_secret()
        {
            if matches!(self.credential, Credential::StaticToken(_)) {
                c.expires_at = Instant::now();
            }
            c.refresh_at = Instant::now();
        }
    }

    async fn request(
        &self,
        tenant: &str,
        form: &[(&str, &str)],
    ) -> Result<Cached, GraphClientError> {
        let url = self.endpoints.token_url(tenant);
        let started = Instant::now();
        let resp = self
            .http
            .post(&url)
            .form(form)
            .send()
            .await
            .map_err(|e| GraphClientError::Network(e.without_url().to_string()))?;
        let status = resp.status();
        let body = resp
            .bytes()
            .await
            .map_err(|e| GraphClientError::Network(e.without_url().to_string()))?;
        if status.is_success() {
            let answer: TokenAnswer =
                serde_json::from_slice(&body).map_err(|e| GraphClientError::Unreadable {
                    status: status.as_u16(),
                    reason: format!("token answer: {e}"),
                })?;
            let life = Duration::from_secs(answer.expires_in.unwrap_or(3599));
            tracing::debug!(expires_in = life.as_secs(), "access token acquired");
            return Ok(Cached {
                token: SecretString::from(answer.access_token),
                refresh_at: started + life - margin(life),
                expires_at: started + life,
            });
        }
        let e: EntraError = serde_json::from_slice(&body).unwrap_or_default();
        let code = e
            .error_codes
            .first()
            .copied()
            .or_else(|| aadsts(&e.error_description))
            .unwrap_or(0);
        Err(TokenError {
            code,
            advice: advice(code, &e.error, status.as_u16()),
            error: e.error,
            trace_id: e.trace_id,
            correlation_id: e.correlation_id,
        }
        .into())
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn aadsts(description: &str) -> Option<u32> {
    let rest = description.strip_prefix("AADSTS")?;
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// What an admin should do about an AADSTS code.
fn advice(code: u32, error: &str, status: u16) -> String {
    match code {
        7000215 => "the client secret is wrong: use the secret's Value, not its Secret ID".into(),
        7000222 => "the client secret has expired: create a new one in the app registration's Certificates & secrets".into(),
        700016 => "the application (client id) is not registered in this tenant, or was consented in another tenant".into(),
        90002 => "the tenant was not found: check --tenant and --cloud".into(),
        90038 => "the tenant lives in another national cloud: set --cloud".into(),
        70011 => "the requested scope is not valid for this grant".into(),
        700027 | 700023 => "the client assertion's signature or certificate was refused: check that the certificate is uploaded to the app registration".into(),
        _ => format!("the token endpoint refused the request (HTTP {status}, {error})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_show_in_debug() {
        let c = Credential::ClientSecret {
            tenant: "t".into(),
            client_id: "c".into(),
            secret: SecretString::from("hunter2-sample"),
        };
        assert!(!format!("{c:?}").contains("hunter2-sample"));
        let s = Credential::StaticToken(SecretString::from("eyJsample.token.value"));
        assert!(!format!("{s:?}").contains("eyJsample"));
    }

    #[test]
    fn refresh_margin_is_five_minutes_or_a_fifth() {
        assert_eq!(margin(Duration::from_secs(3599)), Duration::from_secs(300));
        assert_eq!(margin(Duration::from_secs(10)), Duration::from_secs(2));
    }

    #[test]
    fn aadsts_codes_are_read_from_the_description() {
        assert_eq!(
            aadsts("AADSTS7000215: Invalid client secret"),
            Some(7000215)
        );
        assert_eq!(aadsts("something else"), None);
    }
}
