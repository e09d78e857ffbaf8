//! The endpoints that hand out tokens without a stored secret, as the platforms serve them
//! (graph-facts §13): App Service's managed identity endpoint, Azure Arc's challenge, a VM's IMDS,
//! and GitHub Actions' OIDC token endpoint.

use crate::config::ExpiresOnForm;
use crate::federation::AssertionClaims;
use crate::graph::Sim;
use crate::wire::SimResponse;
use serde_json::json;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn refuse(status: u16, error: &str, description: &str) -> SimResponse {
    SimResponse::json(
        status,
        json!({"error": error, "error_description": description}),
    )
}

/// The answer of one of these endpoints, or `None` when the path is none of them.
pub fn answer(
    sim: &Sim,
    method: &axum::http::Method,
    path: &str,
    query: &[(String, String)],
    headers: &HashMap<String, String>,
) -> Option<SimResponse> {
    if method != axum::http::Method::GET {
        return None;
    }
    let q: HashMap<&str, &str> = query
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let resp = match path.trim_end_matches('/') {
        "/_identity/token" => app_service(sim, &q, headers),
        "/_arc/token" => arc(sim, &q, headers),
        "/metadata/identity/oauth2/token" => imds(sim, &q, headers),
        "/_gha/token" => github(sim, &q, headers),
        _ => return None,
    };
    Some(resp)
}

fn app_service(
    sim: &Sim,
    q: &HashMap<&str, &str>,
    headers: &HashMap<String, String>,
) -> SimResponse {
    let c = &sim.config.identity;
    if headers.get("x-identity-header").map(String::as_str) != Some(c.header.as_str()) {
        return refuse(
            401,
            "unauthorized",
            "The X-IDENTITY-HEADER header is missing or wrong.",
        );
    }
    if q.get("api-version") != Some(&"2019-08-01") {
        return refuse(
            400,
            "invalid_request",
            "api-version 2019-08-01 is required.",
        );
    }
    let ids = [("client_id", 0), ("principal_id", 1), ("mi_res_id", 2)];
    issue(sim, q, &ids)
}

fn imds(sim: &Sim, q: &HashMap<&str, &str>, headers: &HashMap<String, String>) -> SimResponse {
    if headers.get("metadata").map(String::as_str) != Some("true") {
        return refuse(
            400,
            "invalid_request",
            "Required metadata header not specified",
        );
    }
    if q.get("api-version").is_none() {
        return refuse(
            400,
            "invalid_request",
            "Required query variable 'api-version' is missing",
        );
    }
    let ids = [("client_id", 0), ("object_id", 1), ("msi_res_id", 2)];
    issue(sim, q, &ids)
}

/// Arc answers a request without credentials with a 401 naming a fresh key file, and a request
/// carrying that file's contents with a token.
fn arc(sim: &Sim, q: &HashMap<&str, &str>, headers: &HashMap<String, String>) -> SimResponse {
    if headers.get("metadata").map(String::as_str) != Some("true") {
        return refuse(
            400,
            "invalid_request",
            "Required metadata header not specified",
        );
    }
    let mut key = sim.arc_key.lock().unwrap_or_else(|p| p.into_inner());
    let given = headers
        .get("authorization")
        .and_then(|h| h.strip_prefix("Basic "));
    match (given, &*key) {
        (Some(g), Some((_, k))) if g.trim() == k => {
            *key = None;
            drop(key);
            return issue(sim, q, &[]);
        }
        (Some(_), _) => {
            return refuse(401, "unauthorized", "The key is wrong or was used already.");
        }
        (None, _) => {}
    }
    let dir = sim.config.identity.arc_key_dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("graph-sim-arc-{}", std::process::id()))
    });
    let secret = uuid::Uuid::new_v4().simple().to_string();
    let file = dir.join(format!("{}.key", uuid::Uuid::new_v4().simple()));
    if let Err(e) = std::fs::create_dir_all(&dir).and_then(|_| std::fs::write(&file, &secret)) {
        return refuse(
            500,
            "server_error",
            &format!("the key file cannot be written: {e}"),
        );
    }
    *key = Some((file.clone(), secret));
    SimResponse {
        status: 401,
        headers: vec![
            ("Content-Type".into(), "application/json".into()),
            (
                "WWW-Authenticate".into(),
                format!("Basic realm={}", file.display()),
            ),
        ],
        body: Some(
            json!({"error": "unauthorized", "error_description": "Use the key in the file the realm names."}),
        ),
    }
}

/// A token for the identity the query names (`ids`: each parameter and which id it names), with
/// `expires_on` in the configured form.
fn issue(sim: &Sim, q: &HashMap<&str, &str>, ids: &[(&str, usize)]) -> SimResponse {
    let c = &sim.config.identity;
    let resource = q.get("resource").copied().unwrap_or("");
    if resource.trim_end_matches('/') != "https://graph.microsoft.com" {
        return refuse(
            400,
            "invalid_resource",
            &format!(
                "AADSTS500011: The resource principal named {resource} was not found in the tenant."
            ),
        );
    }
    let u = &c.user_assigned;
    let mut client_id = c.system_client_id.as_str();
    for (param, which) in ids {
        if let Some(given) = q.get(param) {
            let known = [&u.client_id, &u.object_id, &u.resource_id][*which];
            if !given.eq_ignore_ascii_case(known) {
                return refuse(400, "invalid_request", "Identity not found");
            }
            client_id = &u.client_id;
        }
    }
    sim.lock().stats.token_requests += 1;
    let (token, life) = sim.auth.app_token(client_id);
    let exp = SystemTime::now() + life;
    let mut body = json!({
        "access_token": token,
        "expires_in": life.as_secs().to_string(),
        "resource": resource,
        "token_type": "Bearer",
        "client_id": client_id,
    });
    match c.expires_on {
        ExpiresOnForm::Epoch => body["expires_on"] = json!(epoch(exp).to_string()),
        ExpiresOnForm::Date => body["expires_on"] = json!(app_service_date(exp)),
        ExpiresOnForm::Absent => {}
    }
    SimResponse::json(200, body)
}

fn epoch(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `MM/dd/yyyy HH:mm:ss +00:00`.
fn app_service_date(t: SystemTime) -> String {
    let at = time::OffsetDateTime::from_unix_timestamp(epoch(t) as i64)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:02}/{:02}/{} {:02}:{:02}:{:02} +00:00",
        u8::from(at.month()),
        at.day(),
        at.year(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

/// GitHub's `GET $ACTIONS_ID_TOKEN_REQUEST_URL&audience=…`: `{"count", "value"}` for the job's bearer.
fn github(sim: &Sim, q: &HashMap<&str, &str>, headers: &HashMap<String, String>) -> SimResponse {
    let c = &sim.config.identity;
    let bearer = headers
        .get("authorization")
        .and_then(|h| h.strip_prefix("Bearer "));
    if bearer != Some(c.gha_request_token.as_str()) {
        return SimResponse::json(401, json!({"message": "Bad credentials"}));
    }
    let audience = q.get("audience").map(|a| a.to_string());
    let value = sim.auth.federation().mint(&AssertionClaims {
        audience: Some(audience.unwrap_or_else(|| "https://github.com/example-org".into())),
        ..AssertionClaims::default()
    });
    SimResponse::json(200, json!({"count": value.len(), "value": value}))
}

/// `GET /_sim/assertion?aud=&sub=&iss=&expires_in=`: an assertion from the trusted issuer, each
/// claim as asked or as the app's federated credential trusts it, for tests of every refusal.
pub fn minted(sim: &Sim, query: &[(String, String)]) -> String {
    let get = |k: &str| query.iter().find(|(q, _)| q == k).map(|(_, v)| v.clone());
    sim.auth.federation().mint(&AssertionClaims {
        audience: get("aud"),
        subject: get("sub"),
        issuer: get("iss"),
        expires_in: get("expires_in").and_then(|v| v.parse().ok()),
    })
}

/// Keeps `path` holding a valid assertion, rewritten (atomically) at half its lifetime.
pub async fn keep_federated_token(sim: std::sync::Arc<Sim>, path: PathBuf) {
    let every = (sim.config.identity.federated_lifetime / 2).max(Duration::from_secs(1));
    loop {
        let token = sim.auth.federation().mint(&AssertionClaims::default());
        let tmp = path.with_extension("tmp");
        let written = std::fs::write(&tmp, &token).and_then(|_| std::fs::rename(&tmp, &path));
        if let Err(e) = written {
            eprintln!(
                "graph-sim: the federated token cannot be written to {}: {e}",
                path.display()
            );
        }
        tokio::time::sleep(every).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_service_dates_are_month_first_with_an_offset() {
        let t = UNIX_EPOCH + Duration::from_secs(1_796_282_280);
        assert_eq!(app_service_date(t), "12/03/2026 07:18:00 +00:00");
    }
}
