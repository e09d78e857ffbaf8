//! Many tenants in one simulator (an MSP's customers): each is a whole simulated tenant of its own,
//! with its devices, directory, limits and token endpoint. A request goes to the tenant in its
//! sign-in path, or to the `tid` of its bearer token; a single-tenant simulator is a fleet of one.

use crate::graph::Sim;
use crate::{SimConfig, Stats};
use base64::Engine;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Debug)]
pub struct Fleet {
    sims: Vec<Arc<Sim>>,
    by_id: HashMap<String, usize>,
}

impl Fleet {
    /// One simulated tenant per config; tenant ids must differ.
    pub fn new(configs: Vec<SimConfig>, base_url: &str) -> Result<Self, String> {
        let mut by_id = HashMap::new();
        let mut sims = Vec::with_capacity(configs.len());
        // One app's directory audit reads count across every tenant it reads (graph-facts §12).
        let audit_across = Arc::default();
        for (i, c) in configs.into_iter().enumerate() {
            if by_id.insert(c.tenant.to_ascii_lowercase(), i).is_some() {
                return Err(format!("tenant {} is listed twice", c.tenant));
            }
            let mut sim = Sim::new(c, base_url.to_string());
            sim.audit_across = Arc::clone(&audit_across);
            sims.push(Arc::new(sim));
        }
        if sims.is_empty() {
            return Err("no tenant to serve".into());
        }
        Ok(Fleet { sims, by_id })
    }

    pub fn first(&self) -> &Arc<Sim> {
        &self.sims[0]
    }

    pub fn sims(&self) -> &[Arc<Sim>] {
        &self.sims
    }

    pub fn by_tenant(&self, tenant: &str) -> Option<&Arc<Sim>> {
        self.by_id
            .get(&tenant.to_ascii_lowercase())
            .map(|&i| &self.sims[i])
    }

    /// The tenant a request is for: the first path segment where it names one (sign-in and
    /// discovery), else the `tid` of the bearer token (Graph; the chosen tenant then checks the
    /// token), else the first tenant, which answers as a one-tenant simulator would.
    pub fn pick(&self, path: &str, headers: &HashMap<String, String>) -> &Arc<Sim> {
        let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
        if let Some(sim) = self.by_tenant(first) {
            return sim;
        }
        headers
            .get("authorization")
            .and_then(|h| token_tenant(h))
            .and_then(|tid| self.by_tenant(&tid))
            .unwrap_or(&self.sims[0])
    }

    /// `GET /_sim/tenants`.
    pub fn tenants_json(&self) -> Value {
        Value::Array(
            self.sims
                .iter()
                .map(|s| {
                    json!({
                        "tenant_id": s.config.tenant,
                        "name": s.config.tenant_name,
                        "consented": s.config.consented,
                    })
                })
                .collect(),
        )
    }

    /// Every tenant's counters added up.
    pub fn stats(&self) -> Stats {
        let mut total = Stats::default();
        for s in &self.sims {
            total.add(&s.lock().stats);
        }
        total
    }
}

/// The `tid` claim of `Bearer <jwt>`, read without checking the signature (only to route).
fn token_tenant(authorization: &str) -> Option<String> {
    let token = authorization.split_whitespace().nth(1)?;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    claims.get("tid")?.as_str().map(str::to_string)
}
