//! Credentials and the in-memory token cache: refreshed ahead of expiry, once on a 401, and
//! concurrent refreshes coalesced into one request. Every grant goes through one token request.

use crate::managed_identity::Issued;
use crate::{CredentialKind, Endpoints, GraphClientError, TokenClaims, TokenError};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// How the run proves who it is. Secrets are `SecretString`: never in Debug, logs or errors.
#[derive(Debug, Clone)]
pub enum Credential {
    /// App registration with a client secret (client credentials grant).
    ClientSecret {
        tenant: String,
        client_id: String,
        secret: SecretString,
    },
    /// App registration with a certificate (client credentials with a signed assertion).
    Certificate {
        tenant: String,
        client_id: String,
        certificate: crate::ClientCertificate,
    },
    /// An admin signs in on another device (OAuth 2.0 device authorization grant); `scopes` are the
    /// delegated permissions asked for, without the resource prefix.
    DeviceCode {
        tenant: String,
        client_id: String,
        scopes: Vec<String>,
    },
    /// A token acquired elsewhere; it cannot be refreshed.
    StaticToken(SecretString),
    /// Workload identity federation: another issuer's token, read afresh for every exchange, sent
    /// as the app's client assertion.
    WorkloadIdentity {
        tenant: String,
        client_id: String,
        source: crate::FederatedSource,
    },
    /// The Azure resource's own identity.
    ManagedIdentity(crate::ManagedIdentity),
    /// The Azure CLI's signed-in account (delegated).
    AzureCli(crate::AzureCli),
}

impl Credential {
    pub fn kind(&self) -> CredentialKind {
        match self {
            Credential::ClientSecret { .. } => CredentialKind::Secret,
            Credential::Certificate { .. } => CredentialKind::Certificate,
            Credential::DeviceCode { .. } => CredentialKind::DeviceCode,
            Credential::StaticToken(_) => CredentialKind::TokenFile,
            Credential::WorkloadIdentity { .. } => CredentialKind::WorkloadIdentity,
            Credential::ManagedIdentity(_) => CredentialKind::ManagedIdentity,
            Credential::AzureCli(_) => CredentialKind::AzureCli,
        }
    }
}

/// Shows the admin where to sign in during the device code flow.
pub type DeviceCodePrompt = std::sync::Arc<dyn Fn(&str) + Send + Sync>;

#[derive(Debug)]
struct Cached {
    token: SecretString,
    refresh_at: Instant,
    expires_at: Instant,
    /// Delegated sign-in only; each refresh may hand out a new one, which replaces the old.
    refresh_token: Option<SecretString>,
}

/// Hands out a valid access token, fetching a new one when the cached one nears expiry.
pub struct TokenProvider {
    credential: Credential,
    endpoints: Endpoints,
    http: reqwest::Client,
    cache: tokio::sync::Mutex<Option<Cached>>,
    prompt: DeviceCodePrompt,
}

impl std::fmt::Debug for TokenProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenProvider")
            .field("credential", &self.credential)
            .field("endpoints", &self.endpoints)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    refresh_token: Option<String>,
}

#[derive(Deserialize)]
struct DeviceCodeAnswer {
    device_code: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    user_code: String,
    #[serde(default)]
    verification_uri: String,
    #[serde(default = "default_expiry")]
    expires_in: u64,
    #[serde(default = "default_interval")]
    interval: u64,
}

fn default_expiry() -> u64 {
    900
}

fn default_interval() -> u64 {
    5
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

type Form = Vec<(&'static str, String)>;

impl TokenProvider {
    pub fn new(credential: Credential, endpoints: Endpoints, http: reqwest::Client) -> Self {
        let prompt: DeviceCodePrompt = std::sync::Arc::new(|message: &str| eprintln!("{message}"));
        TokenProvider {
            credential,
            endpoints,
            http,
            cache: tokio::sync::Mutex::new(None),
            prompt,
        }
    }

    /// Where the device code flow's sign-in instructions go (stderr by default).
    pub fn with_prompt(mut self, prompt: DeviceCodePrompt) -> Self {
        self.prompt = prompt;
        self
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
        let scope = |s: &str| format!("{}/{s}", self.endpoints.scope_resource);
        let (tenant, form): (&str, Form) = match &self.credential {
            Credential::StaticToken(token) => return static_token(token, &mut cache, now),
            Credential::ManagedIdentity(identity) => {
                let issued = identity
                    .token(&self.http, &self.endpoints.scope_resource)
                    .await?;
                return Ok(keep(issued, &mut cache));
            }
            Credential::AzureCli(cli) => {
                let issued = cli.token(&self.endpoints.scope_resource).await?;
                return Ok(keep(issued, &mut cache));
            }
            Credential::WorkloadIdentity {
                tenant,
                client_id,
                source,
            } => {
                let assertion = source.assertion(&self.http).await?;
                (
                    tenant,
                    vec![
                        ("grant_type", "client_credentials".into()),
                        ("client_id", client_id.clone()),
                        ("client_assertion_type", JWT_BEARER.into()),
                        ("client_assertion", assertion.expose_secret().to_string()),
                        ("scope", scope(".default")),
                    ],
                )
            }
            Credential::ClientSecret {
                tenant,
                client_id,
                secret,
            } => (
                tenant,
                vec![
                    ("grant_type", "client_credentials".into()),
                    ("client_id", client_id.clone()),
                    ("client_secret", secret.expose_secret().to_string()),
                    ("scope", scope(".default")),
                ],
            ),
            Credential::Certificate {
                tenant,
                client_id,
                certificate,
            } => {
                let assertion =
                    certificate.assertion(client_id, &self.endpoints.token_url(tenant))?;
                (
                    tenant,
                    vec![
                        ("grant_type", "client_credentials".into()),
                        ("client_id", client_id.clone()),
                        ("client_assertion_type", JWT_BEARER.into()),
                        ("client_assertion", assertion.expose_secret().to_string()),
                        ("scope", scope(".default")),
                    ],
                )
            }
            Credential::DeviceCode {
                tenant,
                client_id,
                scopes,
            } => {
                let scopes = delegated_scopes(scopes, &scope);
                match cache.as_ref().and_then(|c| c.refresh_token.as_ref()) {
                    Some(refresh) => (
                        tenant,
                        vec![
                            ("grant_type", "refresh_token".into()),
                            ("client_id", client_id.clone()),
                            ("refresh_token", refresh.expose_secret().to_string()),
                            ("scope", scopes),
                        ],
                    ),
                    None => {
                        let fresh = self.device_code_sign_in(tenant, client_id, &scopes).await?;
                        let token = fresh.token.clone();
                        *cache = Some(fresh);
                        return Ok(token);
                    }
                }
            }
        };
        let fresh = self.request(tenant, &form).await?;
        let token = fresh.token.clone();
        *cache = Some(fresh);
        Ok(token)
    }

    /// Makes the next call fetch a new token (after batch items were answered 401).
    pub async fn refresh_soon(&self) {
        if let Some(c) = self.cache.lock().await.as_mut() {
            c.refresh_at = Instant::now();
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

    /// RFC 8628 as Entra implements it: ask for a code, show the admin where to enter it, then poll
    /// at `interval` (slower on `slow_down`) until approved, declined or expired.
    async fn device_code_sign_in(
        &self,
        tenant: &str,
        client_id: &str,
        scopes: &str,
    ) -> Result<Cached, GraphClientError> {
        let url = format!(
            "{}/{tenant}/oauth2/v2.0/devicecode",
            self.endpoints.login.as_str().trim_end_matches('/')
        );
        let resp = self
            .http
            .post(&url)
            .form(&[("client_id", client_id), ("scope", scopes)])
            .send()
            .await
            .map_err(net)?;
        let status = resp.status().as_u16();
        let body = resp.bytes().await.map_err(net)?;
        if status != 200 {
            return Err(token_error(status, &body));
        }
        let code: DeviceCodeAnswer =
            serde_json::from_slice(&body).map_err(|e| GraphClientError::Unreadable {
                status,
                reason: format!("device code answer: {e}"),
            })?;
        let message = if code.message.is_empty() {
            format!(
                "To sign in, open {} and enter the code {}",
                code.verification_uri, code.user_code
            )
        } else {
            code.message.clone()
        };
        (self.prompt)(&message);
        let device_code = SecretString::from(code.device_code);
        let deadline = Instant::now() + Duration::from_secs(code.expires_in);
        let mut interval = Duration::from_secs(code.interval.max(1));
        loop {
            tokio::time::sleep(interval).await;
            if Instant::now() >= deadline {
                return Err(GraphClientError::Credential(
                    "the device code expired before sign-in was completed; run again".into(),
                ));
            }
            let form: Form = vec![
                ("grant_type", DEVICE_CODE_GRANT.into()),
                ("client_id", client_id.to_string()),
                ("device_code", device_code.expose_secret().to_string()),
            ];
            match self.request(tenant, &form).await {
                Ok(cached) => return Ok(cached),
                Err(GraphClientError::Token(e)) if e.error == "authorization_pending" => {}
                Err(GraphClientError::Token(e)) if e.error == "slow_down" => {
                    interval += Duration::from_secs(5)
                }
                Err(GraphClientError::Token(e))
                    if matches!(
                        e.error.as_str(),
                        "authorization_declined" | "expired_token" | "bad_verification_code"
                    ) =>
                {
                    return Err(GraphClientError::Credential(format!(
                        "device code sign-in ended: {}",
                        e.error
                    )));
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn request(&self, tenant: &str, form: &Form) -> Result<Cached, GraphClientError> {
        let url = self.endpoints.token_url(tenant);
        let started = Instant::now();
        let resp = self.http.post(&url).form(form).send().await.map_err(net)?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(net)?;
        if !status.is_success() {
            return Err(token_error(status.as_u16(), &body));
        }
        let answer: TokenAnswer =
            serde_json::from_slice(&body).map_err(|e| GraphClientError::Unreadable {
                status: status.as_u16(),
                reason: format!("token answer: {e}"),
            })?;
        let life = Duration::from_secs(answer.expires_in.unwrap_or(3599));
        tracing::debug!(expires_in = life.as_secs(), "access token acquired");
        Ok(Cached {
            token: SecretString::from(answer.access_token),
            refresh_at: started + life - margin(life),
            expires_at: started + life,
            refresh_token: answer.refresh_token.map(SecretString::from),
        })
    }
}

/// `offline_access` plus each scope under the cloud's Graph root.
fn delegated_scopes(scopes: &[String], qualify: &dyn Fn(&str) -> String) -> String {
    let mut all: Vec<String> = scopes.iter().map(|s| qualify(s)).collect();
    all.push("offline_access".into());
    all.join(" ")
}

/// Caches a token another service handed out with its expiry, refreshed ahead of it.
fn keep(issued: Issued, cache: &mut Option<Cached>) -> SecretString {
    let life = issued
        .expires_at
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    let now = Instant::now();
    tracing::debug!(expires_in = life.as_secs(), "access token acquired");
    let token = issued.token.clone();
    *cache = Some(Cached {
        token: issued.token,
        refresh_at: now + life - margin(life),
        expires_at: now + life,
        refresh_token: None,
    });
    token
}

fn static_token(
    token: &SecretString,
    cache: &mut Option<Cached>,
    now: Instant,
) -> Result<SecretString, GraphClientError> {
    let expires_in = TokenClaims::decode(token.expose_secret())
        .and_then(|c| c.exp)
        .map(|exp| Duration::from_secs(exp.saturating_sub(unix_now())));
    if expires_in.is_some_and(|d| d.is_zero())
        || cache.as_ref().is_some_and(|c| now >= c.expires_at)
    {
        return Err(GraphClientError::TokenExpired);
    }
    let life = expires_in.unwrap_or(Duration::from_secs(3600));
    *cache = Some(Cached {
        token: token.clone(),
        refresh_at: now + life,
        expires_at: now + life,
        refresh_token: None,
    });
    Ok(token.clone())
}

fn net(e: reqwest::Error) -> GraphClientError {
    GraphClientError::Network(e.without_url().to_string())
}

fn token_error(status: u16, body: &[u8]) -> GraphClientError {
    let e: EntraError = serde_json::from_slice(body).unwrap_or_default();
    let code = e
        .error_codes
        .first()
        .copied()
        .or_else(|| aadsts(&e.error_description))
        .unwrap_or(0);
    TokenError {
        code,
        advice: advice(code, &e.error, status),
        error: e.error,
        trace_id: e.trace_id,
        correlation_id: e.correlation_id,
    }
    .into()
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
        700024 => "the client assertion is outside its valid time range: a federated token must be fresh (its file kept current by the platform)".into(),
        700211 => "no federated credential of the app trusts the token's issuer: add one for this issuer".into(),
        700212 => "the federated token's audience is not one the app's federated credential accepts (api://AzureADTokenExchange)".into(),
        700213 | 70021 => "no federated credential of the app matches the token's subject (the repository, branch or environment, or the service account)".into(),
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
