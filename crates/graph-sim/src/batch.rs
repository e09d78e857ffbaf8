//! `POST /{version}/$batch`: validation as the service does it, items through the same handler as
//! direct calls, `dependsOn` honoured, answers shuffled.

use crate::graph::{Inner, Sim, SimRequest, SimResponse, graph_error};
use graph_batch::{BatchRequestBody, RequestItem, validate_batch};
use rand::seq::SliceRandom;
use serde_json::{Value, json};
use std::collections::HashMap;

impl Sim {
    pub fn batch(
        &self,
        inner: &mut Inner,
        version: &str,
        outer_headers: &HashMap<String, String>,
        body: &[u8],
        http_request: u64,
    ) -> SimResponse {
        inner.stats.batches += 1;
        // The batch itself needs a valid token before any item is looked at.
        if let Err((code, msg)) = self
            .auth
            .check(outer_headers.get("authorization").map(String::as_str))
        {
            inner.stats.count(401);
            return graph_error(
                401,
                code,
                &msg,
                outer_headers.get("client-request-id").map(String::as_str),
            );
        }
        let parsed: BatchRequestBody = match serde_json::from_slice(body) {
            Ok(b) => b,
            Err(e) => {
                return graph_error(
                    400,
                    "BadRequest",
                    &format!("Invalid batch payload format: {e}"),
                    None,
                );
            }
        };
        if let Err(e) = validate_batch(&parsed.requests) {
            return graph_error(
                400,
                "BadRequest",
                &format!("Invalid batch payload: {e}"),
                None,
            );
        }
        let n = parsed.requests.len() as u64;
        if let Some(whole) = self.whole_batch_fault(inner, n) {
            return whole;
        }
        let mut answers: Vec<(String, SimResponse)> = Vec::with_capacity(parsed.requests.len());
        for item in &parsed.requests {
            let failed_dependency = item.depends_on.iter().flatten().any(|dep| {
                answers
                    .iter()
                    .any(|(id, r)| id.eq_ignore_ascii_case(dep) && !(200..300).contains(&r.status))
            });
            let resp = if failed_dependency {
                inner.stats.requests += 1;
                inner.stats.count(424);
                graph_error(
                    424,
                    "FailedDependency",
                    "The request failed because a request it depends on failed.",
                    None,
                )
            } else {
                let req = item_request(version, item, outer_headers);
                self.handle(inner, &req, http_request)
            };
            answers.push((item.id.clone(), resp));
        }
        answers.shuffle(&mut inner.rng);
        let responses: Vec<Value> = answers
            .into_iter()
            .map(|(id, r)| {
                let headers: serde_json::Map<String, Value> = r
                    .headers
                    .into_iter()
                    .map(|(k, v)| (k, Value::String(v)))
                    .collect();
                let mut v = json!({"id": id, "status": r.status});
                v["headers"] = Value::Object(headers);
                if let Some(b) = r.body {
                    v["body"] = b;
                }
                v
            })
            .collect();
        SimResponse {
            status: 200,
            headers: vec![("Content-Type".into(), "application/json".into())],
            // Moved in: `json!` would copy every answer's body by serializing it.
            body: Some(Value::Object(
                [("responses".to_string(), Value::Array(responses))]
                    .into_iter()
                    .collect(),
            )),
        }
    }

    /// The switch that makes a whole `$batch` answer 429 or 503, running none of its items.
    fn whole_batch_fault(&self, inner: &mut Inner, items: u64) -> Option<SimResponse> {
        use rand::Rng;
        let (p429, p503) = (self.config.batch_p429, self.config.batch_p503);
        if p429 + p503 <= 0.0 {
            return None;
        }
        let r: f64 = inner.rng.random();
        if r < p429 {
            inner.stats.requests += items;
            inner.stats.throttled += items;
            *inner.stats.statuses.entry(429).or_default() += items;
            return Some(self.throttled(std::time::Duration::from_secs(1), None));
        }
        if r < p429 + p503 {
            inner.stats.requests += items;
            *inner.stats.statuses.entry(503).or_default() += items;
            let mut resp = graph_error(
                503,
                "ServiceUnavailable",
                "The service is temporarily unavailable.",
                None,
            );
            resp.headers.push(("Retry-After".into(), "1".into()));
            return Some(resp);
        }
        None
    }
}

/// A batch item as a request of its own: the outer Authorization applies, the item's headers add to it.
fn item_request(version: &str, item: &RequestItem, outer: &HashMap<String, String>) -> SimRequest {
    let url = item.normalized_url();
    let (path, qs) = url.split_once('?').unwrap_or((&url, ""));
    let mut headers: HashMap<String, String> = HashMap::new();
    if let Some(a) = outer.get("authorization") {
        headers.insert("authorization".into(), a.clone());
    }
    for (k, v) in &item.headers {
        headers.insert(k.to_ascii_lowercase(), v.clone());
    }
    SimRequest {
        method: item.method.to_ascii_uppercase(),
        version: version.to_string(),
        path: path.to_string(),
        query: parse_query(qs),
        headers,
    }
}

/// Decodes `a=b&c=d` with percent-escapes and `+` as space.
pub fn parse_query(qs: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(qs.as_bytes()).into_owned().collect()
}
