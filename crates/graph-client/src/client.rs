//! The HTTP client: one reqwest client (rustls, HTTP/2, timeouts), tokens attached, support ids kept.

use crate::{Credential, Endpoints, GraphClientError, TokenProvider};
use backon::{ExponentialBuilder, Retryable};
use futures::Stream;
use graph_batch::{BatchRequestBody, BatchResponse, GraphError, Headers, parse_retry_after};
use secrecy::ExposeSecret;
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// The support ids of one HTTP exchange, as Microsoft support asks for them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplyMeta {
    pub status: u16,
    pub client_request_id: String,
    pub request_id: Option<String>,
    pub date: Option<String>,
    pub diagnostic: Option<String>,
}

/// A `$batch` that was answered 200 and parsed.
#[derive(Debug, Clone)]
pub struct BatchReply {
    pub meta: ReplyMeta,
    pub response: BatchResponse,
}

/// A Graph client for one tenant, credential and API version.
#[derive(Debug, Clone)]
pub struct GraphClient {
    http: reqwest::Client,
    endpoints: Endpoints,
    version: String,
    tokens: Arc<TokenProvider>,
}

/// A request's JSON body.
#[derive(Clone, Copy)]
enum Body<'a> {
    Batch(&'a BatchRequestBody),
    Json(&'a Value),
}

/// The HTTP client every request goes through; TLS is rustls with verification always on.
pub fn http_client() -> Result<reqwest::Client, GraphClientError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(Duration::from_secs(60))
        .timeout(Duration::from_secs(120))
        .pool_idle_timeout(Duration::from_secs(60))
        // A burst of HTTP/1.1 requests (many tenants signing in at once) leaves no more idle
        // connections than the steady sending reuses; HTTP/2 multiplexes over one anyway.
        .pool_max_idle_per_host(64)
        .user_agent(concat!("intune-rotate/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| GraphClientError::Network(e.to_string()))
}

fn header(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

impl GraphClient {
    pub fn new(
        endpoints: Endpoints,
        credential: Credential,
        version: impl Into<String>,
    ) -> Result<Self, GraphClientError> {
        Ok(Self::with_http(
            endpoints,
            credential,
            version,
            http_client()?,
        ))
    }

    /// As [`GraphClient::new`], over a client the caller shares (many tenants of one run share
    /// its connections and its TLS roots, which cost about 50 KB a client to load).
    pub fn with_http(
        endpoints: Endpoints,
        credential: Credential,
        version: impl Into<String>,
        http: reqwest::Client,
    ) -> Self {
        let tokens = Arc::new(TokenProvider::new(
            credential,
            endpoints.clone(),
            http.clone(),
        ));
        GraphClient {
            http,
            endpoints,
            version: version.into(),
            tokens,
        }
    }

    pub fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }

    pub fn version(&self) -> &str {
        &self.version
    }

    pub fn tokens(&self) -> &TokenProvider {
        &self.tokens
    }

    /// Sends one request with a fresh `client-request-id`; a 401 triggers one token refresh and one resend.
    async fn send(
        &self,
        method: reqwest::Method,
        url: &str,
        json: Option<Body<'_>>,
        consistency: Consistency,
    ) -> Result<(reqwest::Response, ReplyMeta), GraphClientError> {
        for attempt in 0..2 {
            let token = self.tokens.token().await?;
            let crid = uuid::Uuid::new_v4().to_string();
            let mut req = self
                .http
                .request(method.clone(), url)
                .bearer_auth(token.expose_secret())
                .header("Accept", "application/json")
                .header("client-request-id", &crid);
            if consistency == Consistency::Eventual {
                req = req.header("ConsistencyLevel", "eventual");
            }
            req = match json {
                Some(Body::Batch(body)) => req.json(body),
                Some(Body::Json(body)) => req.json(body),
                None if method == reqwest::Method::POST => req.header("Content-Length", "0"),
                None => req,
            };
            let resp = req
                .send()
                .await
                .map_err(|e| GraphClientError::Network(e.without_url().to_string()))?;
            let meta = ReplyMeta {
                status: resp.status().as_u16(),
                client_request_id: crid,
                request_id: header(&resp, "request-id"),
                date: header(&resp, "date"),
                diagnostic: header(&resp, "x-ms-ags-diagnostic"),
            };
            tracing::trace!(status = meta.status, client_request_id = %meta.client_request_id, request_id = ?meta.request_id, "graph answered");
            if meta.status == 401 && attempt == 0 {
                tracing::debug!("401 from Graph: refreshing the token once");
                self.tokens.invalidate(&token).await;
                continue;
            }
            return Ok((resp, meta));
        }
        unreachable!("the loop returns on its second pass")
    }

    /// One exchange, its body read whole: a status other than `ok` is an error carrying Graph's
    /// error body and Retry-After.
    async fn exchange(
        &self,
        method: reqwest::Method,
        url: &str,
        json: Option<Body<'_>>,
        consistency: Consistency,
        ok: impl Fn(u16) -> bool,
    ) -> Result<(ReplyMeta, bytes::Bytes), GraphClientError> {
        let (resp, meta) = self.send(method, url, json, consistency).await?;
        let headers = collect_headers(&resp);
        let bytes = resp.bytes().await.map_err(|e| {
            GraphClientError::Network(format!("reading the answer: {}", e.without_url()))
        })?;
        if !ok(meta.status) {
            return Err(http_error(
                meta.status,
                &headers,
                &bytes,
                meta.request_id.clone(),
            ));
        }
        Ok((meta, bytes))
    }

    /// Posts one `$batch`. A 200 with a readable body is a reply; anything else is an error that says
    /// whether the items may have run (`in_doubt`).
    pub async fn send_batch(
        &self,
        body: &BatchRequestBody,
    ) -> Result<BatchReply, GraphClientError> {
        let url = self.endpoints.graph_url(&self.version, "/$batch");
        let (meta, bytes) = self
            .exchange(
                reqwest::Method::POST,
                &url,
                Some(Body::Batch(body)),
                Consistency::Default,
                |s| s == 200,
            )
            .await?;
        let response = BatchResponse::parse(&bytes).map_err(|e| GraphClientError::Unreadable {
            status: 200,
            reason: e.to_string(),
        })?;
        Ok(BatchReply { meta, response })
    }

    /// POSTs a bodiless action directly (no batch); `Ok` only for 2xx.
    pub async fn post_action(&self, path: &str) -> Result<ReplyMeta, GraphClientError> {
        let url = self.endpoints.graph_url(&self.version, path);
        let ok = |s| (200..300).contains(&s);
        let (meta, _) = self
            .exchange(reqwest::Method::POST, &url, None, Consistency::Default, ok)
            .await?;
        Ok(meta)
    }

    /// POSTs a JSON document (such as `sendMail`'s message); `Ok` only for 2xx.
    pub async fn post_json(&self, path: &str, body: &Value) -> Result<ReplyMeta, GraphClientError> {
        let url = self.endpoints.graph_url(&self.version, path);
        let ok = |s| (200..300).contains(&s);
        let (meta, _) = self
            .exchange(
                reqwest::Method::POST,
                &url,
                Some(Body::Json(body)),
                Consistency::Default,
                ok,
            )
            .await?;
        Ok(meta)
    }

    /// GETs a JSON document; `url` is a path under the version or an absolute nextLink (which must
    /// point at the configured Graph host).
    pub async fn get_json(&self, url: &str) -> Result<Value, GraphClientError> {
        self.get_json_as(url, Consistency::Default).await
    }

    /// [`GraphClient::get_json`] under a chosen consistency level.
    pub async fn get_json_as(
        &self,
        url: &str,
        consistency: Consistency,
    ) -> Result<Value, GraphClientError> {
        let full = if url.starts_with("http://") || url.starts_with("https://") {
            let u = crate::cloud::checked_url(url)?;
            if u.host_str() != self.endpoints.graph.host_str()
                || u.port_or_known_default() != self.endpoints.graph.port_or_known_default()
            {
                return Err(GraphClientError::InvalidUrl {
                    url: url.into(),
                    reason: "a nextLink pointed away from the Graph endpoint".into(),
                });
            }
            url.to_string()
        } else {
            self.endpoints.graph_url(&self.version, url)
        };
        let (_, bytes) = self
            .exchange(reqwest::Method::GET, &full, None, consistency, |s| s == 200)
            .await?;
        serde_json::from_slice(&bytes).map_err(|e| GraphClientError::Unreadable {
            status: 200,
            reason: e.to_string(),
        })
    }

    /// GET with retries for throttling and transient failures, bounded: four tries over about
    /// 3.5 s, enough for a transient fault and short enough that a listing that is really failing
    /// ends the run quickly (nothing has been sent yet). Retry-After is honoured; the last error,
    /// Graph's body included, is what the caller sees.
    pub async fn get_json_retrying(&self, url: &str) -> Result<Value, GraphClientError> {
        self.get_json_retrying_as(url, Consistency::Default).await
    }

    async fn get_json_retrying_as(
        &self,
        url: &str,
        consistency: Consistency,
    ) -> Result<Value, GraphClientError> {
        (|| self.get_json_as(url, consistency))
            .retry(
                ExponentialBuilder::default()
                    .with_min_delay(Duration::from_millis(500))
                    .with_max_delay(Duration::from_secs(30))
                    .with_jitter()
                    .with_max_times(3),
            )
            .when(GraphClientError::is_transient)
            .adjust(|e, backoff| graph_batch::retry_wait(e.retry_after(), backoff))
            .await
    }

    /// Every page of a collection, following `@odata.nextLink` until it is absent.
    pub fn pages(
        &self,
        first: String,
    ) -> impl Stream<Item = Result<Vec<Value>, GraphClientError>> + '_ {
        self.pages_as(first, Consistency::Default)
    }

    /// [`GraphClient::pages`] with every page asked under `consistency` (an advanced query sends
    /// `ConsistencyLevel: eventual` on its next pages too).
    pub fn pages_as(
        &self,
        first: String,
        consistency: Consistency,
    ) -> impl Stream<Item = Result<Vec<Value>, GraphClientError>> + '_ {
        futures::stream::try_unfold(Some(first), move |next| async move {
            let Some(url) = next else { return Ok(None) };
            let mut page = self.get_json_retrying_as(&url, consistency).await?;
            let next = page
                .get("@odata.nextLink")
                .and_then(Value::as_str)
                .map(str::to_string);
            // Taken, not copied: a page of a thousand devices is most of a listing's work.
            let items = match page.get_mut("value").map(Value::take) {
                Some(Value::Array(v)) => v,
                _ => Vec::new(),
            };
            Ok(Some((items, next)))
        })
    }
}

/// The consistency level a directory read asks for. Entra serves casts, `$count`, `$search` and
/// some `$filter`s only as advanced queries, under `ConsistencyLevel: eventual` (graph-facts §11).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Consistency {
    #[default]
    Default,
    Eventual,
}

fn collect_headers(resp: &reqwest::Response) -> Headers {
    resp.headers()
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect()
}

fn http_error(
    status: u16,
    headers: &Headers,
    body: &[u8],
    request_id: Option<String>,
) -> GraphClientError {
    let retry_after = headers
        .get("Retry-After")
        .and_then(|v| parse_retry_after(v, SystemTime::now()));
    let error = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| GraphError::from_value(&v))
        .map(Box::new);
    GraphClientError::Http {
        status,
        retry_after,
        error,
        request_id,
    }
}
