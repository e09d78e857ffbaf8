//! Managed identity: the Azure resource's own identity, asked of the endpoint its platform runs
//! beside it (App Service and Automation, Azure Arc, or a VM's IMDS), as azure-identity asks it
//! (graph-facts §13).

use crate::{GraphClientError, expiry::expiry};
use secrecy::{ExposeSecret, SecretString};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// The one address a VM's instance metadata service answers on.
pub const IMDS_ADDRESS: &str = "169.254.169.254";
/// IMDS's token path.
pub const IMDS_TOKEN_URL: &str = "http://169.254.169.254/metadata/identity/oauth2/token";
/// The most an Arc agent's key file may hold.
const ARC_KEY_LIMIT: u64 = 4096;

/// The endpoint that hands out the identity's tokens.
#[derive(Debug, Clone)]
pub enum IdentityEndpoint {
    /// App Service, Functions, Container Apps, Automation: `X-IDENTITY-HEADER` proves the caller
    /// runs in the resource.
    AppService { url: url::Url, header: SecretString },
    /// An Azure Arc server: a challenge names a key file only a local administrator can read,
    /// in the agent's folder `key_dir`.
    Arc { url: url::Url, key_dir: PathBuf },
    /// A VM's instance metadata service.
    Imds { url: url::Url },
}

/// Which of the resource's identities: its own, or a user-assigned one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserAssigned {
    System,
    ClientId(String),
    ObjectId(String),
    ResourceId(String),
}

#[derive(Debug, Clone)]
pub struct ManagedIdentity {
    pub endpoint: IdentityEndpoint,
    pub identity: UserAssigned,
}

/// A token with the moment it stops being valid.
#[derive(Debug)]
pub(crate) struct Issued {
    pub token: SecretString,
    pub expires_at: SystemTime,
}

/// A managed identity endpoint's URL: plain http, as the platforms serve it, but only to loopback
/// or to IMDS's own link-local address.
pub fn identity_url(raw: &str) -> Result<url::Url, GraphClientError> {
    let url = url::Url::parse(raw).map_err(|e| GraphClientError::InvalidUrl {
        url: raw.to_string(),
        reason: e.to_string(),
    })?;
    let local = crate::cloud::is_loopback(&url) || url.host_str() == Some(IMDS_ADDRESS);
    match url.scheme() {
        "https" => Ok(url),
        "http" if local => Ok(url),
        _ => Err(GraphClientError::InvalidUrl {
            url: raw.to_string(),
            reason: "a managed identity endpoint is plain http only on loopback or 169.254.169.254; else https".into(),
        }),
    }
}

impl ManagedIdentity {
    /// A token for `resource` (the cloud's Graph root).
    pub(crate) async fn token(
        &self,
        http: &reqwest::Client,
        resource: &str,
    ) -> Result<Issued, GraphClientError> {
        let (url, api) = match &self.endpoint {
            IdentityEndpoint::AppService { url, .. } => (url, "2019-08-01"),
            IdentityEndpoint::Arc { url, .. } => (url, "2020-06-01"),
            IdentityEndpoint::Imds { url } => (url, "2018-02-01"),
        };
        let mut url = url.clone();
        url.query_pairs_mut()
            .append_pair("api-version", api)
            .append_pair("resource", resource);
        self.name_identity(&mut url)?;
        let sent = SystemTime::now();
        let answer = match &self.endpoint {
            IdentityEndpoint::AppService { header, .. } => {
                let req = http
                    .get(url.clone())
                    .header("X-IDENTITY-HEADER", header.expose_secret());
                send(req, &url).await?
            }
            IdentityEndpoint::Imds { .. } => imds(http, &url).await?,
            IdentityEndpoint::Arc { key_dir, .. } => arc(http, &url, key_dir).await?,
        };
        read_answer(answer, &url, sent)
    }

    /// The query naming a user-assigned identity, as each endpoint spells it.
    fn name_identity(&self, url: &mut url::Url) -> Result<(), GraphClientError> {
        let app_service = matches!(self.endpoint, IdentityEndpoint::AppService { .. });
        let (key, value) = match &self.identity {
            UserAssigned::System => return Ok(()),
            _ if matches!(self.endpoint, IdentityEndpoint::Arc { .. }) => {
                return Err(GraphClientError::Credential(
                    "Azure Arc has only the machine's own identity; a user-assigned one cannot be chosen there".into(),
                ));
            }
            UserAssigned::ClientId(id) => ("client_id", id),
            UserAssigned::ObjectId(id) if app_service => ("principal_id", id),
            UserAssigned::ObjectId(id) => ("object_id", id),
            UserAssigned::ResourceId(id) if app_service => ("mi_res_id", id),
            UserAssigned::ResourceId(id) => ("msi_res_id", id),
        };
        url.query_pairs_mut().append_pair(key, value);
        Ok(())
    }
}

struct Answer {
    status: u16,
    body: bytes::Bytes,
}

fn no_answer(url: &url::Url, e: reqwest::Error) -> GraphClientError {
    let mut at = url.clone();
    at.set_query(None);
    GraphClientError::Credential(format!(
        "no managed identity endpoint answered at {at}: {}",
        e.without_url()
    ))
}

async fn send(req: reqwest::RequestBuilder, url: &url::Url) -> Result<Answer, GraphClientError> {
    let resp = req
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .map_err(|e| no_answer(url, e))?;
    let status = resp.status().as_u16();
    let body = resp.bytes().await.map_err(|e| no_answer(url, e))?;
    Ok(Answer { status, body })
}

/// IMDS asks callers to retry 404 (identity not yet ready), 410 (being updated), 429 and 5xx.
async fn imds(http: &reqwest::Client, url: &url::Url) -> Result<Answer, GraphClientError> {
    let mut wait = Duration::from_secs(1);
    for attempt in 1.. {
        let req = http.get(url.clone()).header("Metadata", "true");
        let answer = send(req, url).await?;
        let again = matches!(answer.status, 404 | 410 | 429 | 500..=599);
        if !again || attempt == 4 {
            return Ok(answer);
        }
        tokio::time::sleep(wait).await;
        wait *= 2;
    }
    unreachable!("the loop returns by its fourth attempt")
}

/// Arc: the first answer is a 401 whose `WWW-Authenticate: Basic realm=<path>` names a key file;
/// its contents, sent back as Basic credentials, prove the caller may read the agent's folder.
async fn arc(
    http: &reqwest::Client,
    url: &url::Url,
    key_dir: &Path,
) -> Result<Answer, GraphClientError> {
    let resp = http
        .get(url.clone())
        .header("Metadata", "true")
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .map_err(|e| no_answer(url, e))?;
    if resp.status().as_u16() != 401 {
        let status = resp.status().as_u16();
        let body = resp.bytes().await.map_err(|e| no_answer(url, e))?;
        return Ok(Answer { status, body });
    }
    let fail = |why: String| GraphClientError::Credential(format!("Azure Arc's challenge: {why}"));
    let realm = resp
        .headers()
        .get("WWW-Authenticate")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.split_once("realm=")
                .map(|(_, r)| r.trim_matches('"').to_string())
        })
        .ok_or_else(|| fail("the 401 named no key file".into()))?;
    let key = read_key_file(Path::new(&realm), key_dir).map_err(fail)?;
    let req = http
        .get(url.clone())
        .header("Metadata", "true")
        .header("Authorization", format!("Basic {}", key.expose_secret()));
    send(req, url).await
}

/// The key file must be a `.key` file directly in the agent's folder, of at most 4,096 bytes.
fn read_key_file(path: &Path, key_dir: &Path) -> Result<SecretString, String> {
    let dir = key_dir.canonicalize().map_err(|e| {
        format!(
            "the agent's folder {} cannot be read: {e}",
            key_dir.display()
        )
    })?;
    let file = path
        .canonicalize()
        .map_err(|e| format!("the key file {} cannot be read: {e}", path.display()))?;
    if file.parent() != Some(dir.as_path()) || file.extension().is_none_or(|e| e != "key") {
        return Err(format!(
            "the key file {} is not a .key file in the agent's folder {}",
            path.display(),
            dir.display()
        ));
    }
    let len = std::fs::metadata(&file).map_err(|e| e.to_string())?.len();
    if len > ARC_KEY_LIMIT {
        return Err(format!(
            "the key file {} holds {len} bytes, more than {ARC_KEY_LIMIT}",
            path.display()
        ));
    }
    let text = std::fs::read_to_string(&file).map_err(|e| e.to_string())?;
    Ok(SecretString::from(text.trim().to_string()))
}

fn read_answer(a: Answer, url: &url::Url, sent: SystemTime) -> Result<Issued, GraphClientError> {
    let mut at = url.clone();
    at.set_query(None);
    let v: serde_json::Value = serde_json::from_slice(&a.body).unwrap_or_default();
    if a.status != 200 {
        let why = v
            .get("error_description")
            .or_else(|| v.get("error").and_then(|e| e.get("message").or(Some(e))))
            .and_then(|d| d.as_str())
            .unwrap_or("no reason given");
        let why: String = why.chars().take(300).collect();
        return Err(GraphClientError::Credential(format!(
            "the managed identity endpoint {at} answered HTTP {}: {why}",
            a.status
        )));
    }
    let Some(token) = v.get("access_token").and_then(|t| t.as_str()) else {
        return Err(GraphClientError::Credential(format!(
            "the managed identity endpoint {at} answered without an access token"
        )));
    };
    let expires_at = expiry(v.get("expires_on"), v.get("expires_in"), token, sent)
        .unwrap_or(sent + Duration::from_secs(300));
    Ok(Issued {
        token: SecretString::from(token.to_string()),
        expires_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_endpoints_are_plain_http_only_nearby() {
        for ok in [
            "http://127.0.0.1:41000/msi/token",
            "http://localhost:40342/metadata/identity/oauth2/token",
            IMDS_TOKEN_URL,
            "https://identity.example/token",
        ] {
            assert!(identity_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://10.0.0.4/msi/token",
            "http://169.254.169.253/",
            "ftp://127.0.0.1/",
        ] {
            assert!(identity_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_key_file_outside_the_agents_folder_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let other = tempfile::tempdir().unwrap();
        let inside = dir.path().join("a.key");
        let outside = other.path().join("b.key");
        std::fs::write(&inside, "k").unwrap();
        std::fs::write(&outside, "k").unwrap();
        assert!(read_key_file(&inside, dir.path()).is_ok());
        assert!(read_key_file(&outside, dir.path()).is_err());
        let big = dir.path().join("big.key");
        std::fs::write(&big, vec![b'k'; 4097]).unwrap();
        assert!(
            read_key_file(&big, dir.path())
                .unwrap_err()
                .contains("4097")
        );
        let txt = dir.path().join("c.txt");
        std::fs::write(&txt, "k").unwrap();
        assert!(read_key_file(&txt, dir.path()).is_err());
    }
}
