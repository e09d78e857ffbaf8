//! Workload identity federation: a token another issuer signed (Kubernetes' projected token, GitHub
//! Actions' OIDC token) sent as the app's client assertion. It is fetched again for every exchange,
//! since such tokens live minutes and their platforms rotate them (graph-facts §13).

use crate::GraphClientError;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::path::PathBuf;

/// The audience Entra requires of a federated token.
pub const EXCHANGE_AUDIENCE: &str = "api://AzureADTokenExchange";

/// Where the federated token comes from.
#[derive(Debug, Clone)]
pub enum FederatedSource {
    /// A file the platform keeps current.
    File(PathBuf),
    /// GitHub Actions' token endpoint, asked with the job's request token.
    GitHubActions {
        request_url: url::Url,
        request_token: SecretString,
    },
}

#[derive(Deserialize)]
struct GitHubAnswer {
    value: String,
}

impl FederatedSource {
    /// A fresh assertion, read now.
    pub(crate) async fn assertion(
        &self,
        http: &reqwest::Client,
    ) -> Result<SecretString, GraphClientError> {
        let token = match self {
            FederatedSource::File(path) => std::fs::read_to_string(path).map_err(|e| {
                GraphClientError::Credential(format!(
                    "the federated token file {} cannot be read: {e}",
                    path.display()
                ))
            })?,
            FederatedSource::GitHubActions {
                request_url,
                request_token,
            } => github_token(http, request_url, request_token).await?,
        };
        let token = token.trim();
        if token.split('.').count() != 3 {
            return Err(GraphClientError::Credential(format!(
                "the federated token from {} is not a JWT",
                self.place()
            )));
        }
        Ok(SecretString::from(token.to_string()))
    }

    /// Where the token comes from, for messages: the file, or GitHub's endpoint without its query.
    pub fn place(&self) -> String {
        match self {
            FederatedSource::File(p) => p.display().to_string(),
            FederatedSource::GitHubActions { request_url, .. } => {
                let mut u = request_url.clone();
                u.set_query(None);
                format!("GitHub Actions' token endpoint {u}")
            }
        }
    }
}

async fn github_token(
    http: &reqwest::Client,
    request_url: &url::Url,
    request_token: &SecretString,
) -> Result<String, GraphClientError> {
    let mut url = request_url.clone();
    url.query_pairs_mut()
        .append_pair("audience", EXCHANGE_AUDIENCE);
    let fail =
        |why: String| GraphClientError::Credential(format!("GitHub Actions' OIDC token: {why}"));
    let resp = http
        .get(url)
        .bearer_auth(request_token.expose_secret())
        .header("Accept", "application/json")
        .send()
        .await
        .map_err(|e| fail(e.without_url().to_string()))?;
    let status = resp.status().as_u16();
    if status != 200 {
        return Err(fail(format!(
            "the endpoint answered HTTP {status}; the workflow needs `permissions: id-token: write`, and the request token must be the job's own"
        )));
    }
    let answer: GitHubAnswer = resp
        .json()
        .await
        .map_err(|e| fail(format!("unreadable answer: {}", e.without_url())))?;
    Ok(answer.value)
}
