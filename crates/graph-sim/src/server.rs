//! The HTTP face of the simulator: one axum fallback that routes the token endpoint, Graph, `$batch`
//! and `/_sim/*`, adding latency and connection faults around them.

use crate::graph::{Sim, SimRequest, SimResponse, graph_error};
use crate::{SimConfig, Stats, Tenant};
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use rand::Rng;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A running simulator. Dropping it stops the server.
#[derive(Debug)]
pub struct SimHandle {
    /// `http://127.0.0.1:PORT` (`https` with `tls`): pass it as both `--graph-url` and `--login-url`.
    pub base_url: String,
    pub addr: SocketAddr,
    /// With `tls`: the PEM of the CA that signed the server's certificate, for clients to trust.
    pub ca_pem: Option<String>,
    sim: Arc<Sim>,
    fleet: Arc<crate::fleet::Fleet>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    /// Keeps `--federated-token-out` current while the server runs.
    keeper: Option<JoinHandle<()>>,
}

impl SimHandle {
    /// A copy of the counters, as `/_sim/stats` serves them (every tenant's, added up).
    pub fn stats(&self) -> Stats {
        self.fleet.stats()
    }

    /// A copy of the (first) tenant as it is now (devices, scripts, apps and accepted actions).
    pub fn tenant(&self) -> Tenant {
        self.sim.lock().tenant.clone()
    }

    /// The (first) tenant's configuration.
    pub fn config(&self) -> &SimConfig {
        &self.sim.config
    }

    /// Every tenant served: (tenant id, name, consented).
    pub fn tenants(&self) -> Vec<(String, String, bool)> {
        self.fleet
            .sims()
            .iter()
            .map(|s| {
                (
                    s.config.tenant.clone(),
                    s.config.tenant_name.clone(),
                    s.config.consented,
                )
            })
            .collect()
    }

    /// One tenant's counters.
    pub fn stats_of(&self, tenant: &str) -> Option<Stats> {
        self.fleet.by_tenant(tenant).map(|s| s.lock().stats.clone())
    }

    /// One tenant's contents.
    pub fn tenant_of(&self, tenant: &str) -> Option<Tenant> {
        self.fleet
            .by_tenant(tenant)
            .map(|s| s.lock().tenant.clone())
    }

    /// Stops accepting connections and waits for the server task to end.
    pub async fn shutdown(mut self) {
        if let Some(k) = self.keeper.take() {
            k.abort();
        }
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        if let Some(k) = self.keeper.take() {
            k.abort();
        }
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Starts a simulator on 127.0.0.1 with an ephemeral port.
pub async fn start(config: SimConfig) -> std::io::Result<SimHandle> {
    start_on("127.0.0.1:0".parse().expect("literal address"), config).await
}

/// Starts a simulator on `addr`.
pub async fn start_on(addr: SocketAddr, config: SimConfig) -> std::io::Result<SimHandle> {
    start_fleet(addr, vec![config]).await
}

/// Starts a simulator of many tenants on `addr`, one per config (TLS as the first one says).
pub async fn start_fleet(addr: SocketAddr, configs: Vec<SimConfig>) -> std::io::Result<SimHandle> {
    let invalid = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, e);
    for config in &configs {
        if let Some(pem) = config.certificate.as_deref() {
            crate::auth::RegisteredCert::from_pem(pem)
                .map_err(|e| invalid(format!("--certificate: {e}")))?;
        }
    }
    let want_tls = configs.first().is_some_and(|c| c.tls);
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let tls = if want_tls {
        Some(
            crate::tls::TlsIdentity::generate()
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?,
        )
    } else {
        None
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let base_url = format!("{scheme}://{addr}");
    let fleet = Arc::new(crate::fleet::Fleet::new(configs, &base_url).map_err(invalid)?);
    let sim = fleet.first().clone();
    let app = axum::Router::new().fallback(any).with_state(fleet.clone());
    let keeper = sim
        .config
        .identity
        .federated_token_out
        .clone()
        .map(|path| tokio::spawn(crate::identity::keep_federated_token(sim.clone(), path)));
    let (tx, rx) = oneshot::channel::<()>();
    let stopped = async {
        let _ = rx.await;
    };
    let task = match &tls {
        Some(identity) => {
            let listener = crate::tls::TlsListener::new(listener, identity)?;
            tokio::spawn(async move {
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(stopped)
                    .await;
            })
        }
        None => tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(stopped)
                .await;
        }),
    };
    Ok(SimHandle {
        base_url,
        addr,
        ca_pem: tls.map(|t| t.ca_pem),
        sim,
        fleet,
        shutdown: Some(tx),
        task: Some(task),
        keeper,
    })
}

enum Wire {
    Normal,
    Drop,
    Truncate,
    /// Dropped, and the request's actions are carried out this much later.
    Late(Duration),
}

async fn any(
    State(fleet): State<Arc<crate::fleet::Fleet>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let qs = uri.query().unwrap_or("");
    if path.starts_with("/_sim/") {
        return sim_endpoint(&fleet, &method, &path, qs, &body);
    }
    let headers: HashMap<String, String> = headers
        .iter()
        .filter_map(|(k, v)| {
            Some((
                k.as_str().to_ascii_lowercase(),
                v.to_str().ok()?.to_string(),
            ))
        })
        .collect();
    let sim = fleet.pick(&path, &headers).clone();
    let (before, after, wire, seq) = {
        let mut inner = sim.lock();
        inner.stats.http_requests += 1;
        inner.http_seq += 1;
        let seq = inner.http_seq;
        let c = &sim.config;
        let jitter =
            |rng: &mut rand::rngs::StdRng| c.latency.mul_f64(rng.random_range(0.5..1.5) / 2.0);
        let before = jitter(&mut inner.rng);
        let after = jitter(&mut inner.rng);
        let r: f64 = inner.rng.random();
        // Connection faults are Graph's: the token endpoint is another service.
        let graph = path.starts_with("/beta/") || path.starts_with("/v1.0/");
        let wire = if !graph {
            Wire::Normal
        } else if r < c.drop {
            Wire::Drop
        } else if r < c.drop + c.truncate {
            Wire::Truncate
        } else if c.late > 0.0
            && carries_actions(&method, &path, &body)
            && inner.late_rng.random::<f64>() < c.late
        {
            let max = c.late_max.min(Duration::from_secs(60));
            Wire::Late(max.mul_f64(inner.late_rng.random_range(0.5..=1.0)))
        } else {
            Wire::Normal
        };
        (before, after, wire, seq)
    };
    sleep(before).await;
    let late_by = match wire {
        Wire::Late(by) => Some(by),
        _ => None,
    };
    let resp = route(&sim, &method, &path, qs, &headers, &body, seq, late_by);
    sleep(after).await;
    let crid = headers.get("client-request-id").cloned();
    render(resp, wire, crid)
}

/// Whether a request may hold an action: a POST, alone or in a `$batch` with a POST item. A late
/// answer is a fault of actions; on a read it would be no more than a drop, which `drop` is.
fn carries_actions(method: &Method, path: &str, body: &[u8]) -> bool {
    if method != Method::POST {
        return false;
    }
    if !path.ends_with("/$batch") {
        return true;
    }
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .is_some_and(|b| {
            b["requests"].as_array().is_some_and(|items| {
                items.iter().any(|i| {
                    i["method"]
                        .as_str()
                        .is_some_and(|m| m.eq_ignore_ascii_case("POST"))
                })
            })
        })
}

async fn sleep(d: Duration) {
    if !d.is_zero() {
        tokio::time::sleep(d).await;
    }
}

#[allow(clippy::too_many_arguments)]
fn route(
    sim: &Sim,
    method: &Method,
    path: &str,
    qs: &str,
    headers: &HashMap<String, String>,
    body: &[u8],
    seq: u64,
    late_by: Option<Duration>,
) -> SimResponse {
    let segs: Vec<&str> = path.trim_start_matches('/').splitn(2, '/').collect();
    let (first, rest) = (
        segs.first().copied().unwrap_or(""),
        segs.get(1).copied().unwrap_or(""),
    );
    // The identity platform's discovery documents (MSAL and azure-identity read them first).
    if method == Method::GET {
        if rest.eq_ignore_ascii_case("v2.0/.well-known/openid-configuration") {
            return token_response(
                sim.auth
                    .openid_configuration(first)
                    .map_err(|e| (e.status, e.body)),
            );
        }
        if rest.eq_ignore_ascii_case("discovery/v2.0/keys") {
            return token_response(Ok(sim.auth.jwks()));
        }
        if first.eq_ignore_ascii_case("common") && rest.eq_ignore_ascii_case("discovery/instance") {
            let q = crate::batch::parse_query(qs);
            let endpoint = q
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("authorization_endpoint"))
                .map(|(_, v)| v.as_str());
            return token_response(Ok(sim.auth.instance_discovery(endpoint)));
        }
    }
    if rest.eq_ignore_ascii_case("oauth2/v2.0/devicecode") && method == Method::POST {
        let form: HashMap<String, String> = form_urlencoded::parse(body).into_owned().collect();
        let answer = sim
            .auth
            .device_code(first, &form)
            .map_err(|e| (e.status, e.body));
        return token_response(answer);
    }
    if rest.eq_ignore_ascii_case("oauth2/v2.0/token") && method == Method::POST {
        sim.lock().stats.token_requests += 1;
        let form: HashMap<String, String> = form_urlencoded::parse(body).into_owned().collect();
        return token_response(sim.auth.token(first, &form).map_err(|e| (e.status, e.body)));
    }
    let query = crate::batch::parse_query(qs);
    if let Some(resp) = crate::identity::answer(sim, method, path, &query, headers) {
        return resp;
    }
    if first != "beta" && first != "v1.0" {
        return graph_error(
            400,
            "BadRequest",
            &format!("Invalid version: {first}"),
            None,
        );
    }
    if let Some(mailbox) = crate::mail::mailbox(rest)
        && method == Method::POST
    {
        return crate::mail::send(sim, mailbox, headers, body);
    }
    let mut inner = sim.lock();
    if late_by.is_some() {
        inner.stats.late_requests += 1;
    }
    inner.late_by = late_by;
    let resp = graph_request(sim, &mut inner, method, first, rest, qs, headers, body, seq);
    inner.late_by = None;
    resp
}

#[allow(clippy::too_many_arguments)]
fn graph_request(
    sim: &Sim,
    inner: &mut crate::graph::Inner,
    method: &Method,
    first: &str,
    rest: &str,
    qs: &str,
    headers: &HashMap<String, String>,
    body: &[u8],
    seq: u64,
) -> SimResponse {
    if rest == "$batch" || rest == "%24batch" {
        if method != Method::POST {
            return graph_error(405, "BadRequest", "$batch takes POST.", None);
        }
        return sim.batch(inner, first, headers, body, seq);
    }
    let req = SimRequest {
        method: method.as_str().to_string(),
        version: first.to_string(),
        path: format!("/{rest}"),
        query: crate::batch::parse_query(qs),
        headers: headers.clone(),
    };
    sim.handle(inner, &req, seq)
}

/// An identity platform answer: the JSON document, or an Entra error with its status.
fn token_response(answer: Result<serde_json::Value, (u16, serde_json::Value)>) -> SimResponse {
    let (status, body) = match answer {
        Ok(v) => (200, v),
        Err((status, body)) => (status, body),
    };
    SimResponse {
        status,
        headers: vec![("Content-Type".into(), "application/json".into())],
        body: Some(body),
    }
}

fn sim_endpoint(
    fleet: &crate::fleet::Fleet,
    method: &Method,
    path: &str,
    qs: &str,
    body: &[u8],
) -> Response {
    let query = crate::batch::parse_query(qs);
    let tenant = query
        .iter()
        .find(|(k, _)| k == "tenant")
        .map(|(_, v)| v.as_str());
    let one = match tenant {
        Some(t) => match fleet.by_tenant(t) {
            Some(sim) => Some(sim),
            None => return (StatusCode::NOT_FOUND, "unknown tenant").into_response(),
        },
        None => None,
    };
    match path {
        "/_sim/stats" => match one {
            Some(sim) => axum::Json(sim.lock().stats.clone()).into_response(),
            None => axum::Json(fleet.stats()).into_response(),
        },
        "/_sim/tenants" => axum::Json(fleet.tenants_json()).into_response(),
        "/_sim/devices.csv" => {
            let csv = one.unwrap_or(fleet.first()).lock().tenant.devices_csv();
            (
                [(axum::http::header::CONTENT_TYPE, "text/csv; charset=utf-8")],
                csv,
            )
                .into_response()
        }
        "/_sim/mail" => {
            let sim = one.unwrap_or(fleet.first());
            axum::Json(serde_json::Value::Array(sim.lock().mail.clone())).into_response()
        }
        "/_sim/assertion" => {
            crate::identity::minted(one.unwrap_or(fleet.first()), &query).into_response()
        }
        "/_sim/user-token" => {
            let get = |k: &str| query.iter().find(|(q, _)| q == k).map(|(_, v)| v.as_str());
            let sim = one.unwrap_or(fleet.first());
            let (token, life) = sim.auth.user_token(
                get("client_id").unwrap_or("sim-azure-cli"),
                get("scp").unwrap_or("DeviceManagementManagedDevices.PrivilegedOperations.All DeviceManagementManagedDevices.Read.All"),
            );
            axum::Json(serde_json::json!({"access_token": token, "expires_in": life.as_secs()}))
                .into_response()
        }
        "/_sim/views" if method == Method::POST => {
            let sim = one.unwrap_or(fleet.first());
            match record_view(sim, body) {
                Ok(v) => (StatusCode::CREATED, axum::Json(v)).into_response(),
                Err((status, why)) => (status, why).into_response(),
            }
        }
        _ => (StatusCode::NOT_FOUND, "unknown simulator endpoint").into_response(),
    }
}

/// `POST /_sim/views`: records a read of a device's secret, as the audit log it lands in would.
fn record_view(sim: &Sim, body: &[u8]) -> Result<serde_json::Value, (StatusCode, String)> {
    use crate::audit::{Actor, Secret};
    let bad = |why: String| (StatusCode::BAD_REQUEST, why);
    let doc: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| bad(format!("the body is not JSON: {e}")))?;
    let text = |k: &str| doc.get(k).and_then(|v| v.as_str());
    let device_id = text("device_id").ok_or_else(|| bad("device_id is required".into()))?;
    let secret = text("secret")
        .and_then(Secret::parse)
        .ok_or_else(|| bad("secret is one of bitlocker, laps, filevault, recovery-lock".into()))?;
    let at = match text("at") {
        Some(t) => humantime::parse_rfc3339_weak(t.trim_end_matches('Z'))
            .map_err(|e| bad(format!("at {t:?} is not an RFC 3339 time: {e}")))?,
        None => std::time::SystemTime::now(),
    };
    let actor = match text("app_id") {
        Some(app) => Actor::App {
            app_id: app.to_string(),
        },
        None => Actor::User {
            upn: text("by").unwrap_or(DEFAULT_VIEWER).to_string(),
            ip: "203.0.113.24".into(),
        },
    };
    let delay = match doc.get("delay") {
        None | Some(serde_json::Value::Null) => None,
        Some(v) => Some(
            v.as_f64()
                .filter(|d| *d >= 0.0)
                .map(std::time::Duration::from_secs_f64)
                .ok_or_else(|| bad("delay is a number of seconds".into()))?,
        ),
    };
    let shape = crate::audit::AuditShape {
        fixed_delay: delay,
        ..sim.config.audit.clone()
    };
    let mut inner = sim.lock();
    let device = *inner
        .tenant
        .index
        .get(&device_id.to_ascii_lowercase())
        .ok_or_else(|| {
            (
                StatusCode::NOT_FOUND,
                format!("no managed device {device_id}"),
            )
        })?;
    let inner = &mut *inner;
    let id = inner
        .audit
        .view(
            &shape,
            &mut inner.audit_rng,
            &inner.tenant,
            (secret, device),
            at,
            actor,
        )
        .map_err(|why| (StatusCode::CONFLICT, why))?;
    inner.stats.views += 1;
    Ok(serde_json::json!({"id": id}))
}

/// The made-up helpdesk operator a view is by when the caller names nobody.
const DEFAULT_VIEWER: &str = "helpdesk.operator@contoso-sim.example";

fn render(resp: SimResponse, wire: Wire, crid: Option<String>) -> Response {
    // A dropped connection must cut a body, so a bodiless answer is turned into one that has a body to cut.
    let status = match (&wire, resp.status) {
        (Wire::Drop | Wire::Late(_), 204) => 200,
        (_, s) => s,
    };
    let mut r = Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR));
    for (k, v) in &resp.headers {
        if let (Ok(k), Ok(v)) = (HeaderName::try_from(k.as_str()), HeaderValue::from_str(v)) {
            r = r.header(k, v);
        }
    }
    // The header and an error body's innerError carry the same request id, as Graph's do.
    let request_id = resp
        .body
        .as_ref()
        .and_then(|b| b.pointer("/error/innerError/request-id"))
        .and_then(|v| v.as_str())
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_string);
    r = r.header("request-id", &request_id);
    if let Some(c) = crid.as_deref().and_then(|c| HeaderValue::from_str(c).ok()) {
        r = r.header("client-request-id", c);
    }
    r = r.header("x-ms-ags-diagnostic", r#"{"ServerInfo":{"DataCenter":"Simulated","Slice":"E","Ring":"0","ScaleUnit":"000","RoleInstance":"SIM"}}"#);
    let mut bytes = resp
        .body
        .map(|b| serde_json::to_vec(&b).expect("JSON values serialize"))
        .unwrap_or_default();
    if matches!(wire, Wire::Drop | Wire::Late(_)) && bytes.len() < 2 {
        bytes = b"{\"partial\": true}".to_vec();
    }
    let body = match wire {
        Wire::Normal => Body::from(bytes),
        Wire::Truncate => Body::from(bytes[..bytes.len() / 2].to_vec()),
        Wire::Drop | Wire::Late(_) => {
            let half = Bytes::from(bytes[..bytes.len() / 2].to_vec());
            let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
                Ok(half),
                Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "simulated drop",
                )),
            ];
            Body::from_stream(futures::stream::iter(chunks))
        }
    };
    r.body(body)
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}
