//! A request and an answer as the handlers see them, and Graph's error document: the leaf every
//! handler builds on.

use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::SystemTime;

/// One Graph request, from the wire or from a batch item.
#[derive(Debug, Clone)]
pub struct SimRequest {
    pub method: String,
    /// `beta` or `v1.0`.
    pub version: String,
    /// Path after the version, without query, e.g. `/deviceManagement/managedDevices`.
    pub path: String,
    pub query: Vec<(String, String)>,
    /// Header names in lower case.
    pub headers: HashMap<String, String>,
}

#[derive(Debug, Clone)]
pub struct SimResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Option<Value>,
}

impl SimResponse {
    pub(crate) fn json(status: u16, body: Value) -> Self {
        SimResponse {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: Some(body),
        }
    }

    pub(crate) fn no_content() -> Self {
        SimResponse {
            status: 204,
            headers: Vec::new(),
            body: None,
        }
    }
}

/// Graph's error document, with the support ids a real answer carries.
pub fn graph_error(
    status: u16,
    code: &str,
    message: &str,
    client_request_id: Option<&str>,
) -> SimResponse {
    let mut inner = json!({
        "date": crate::time::iso(SystemTime::now()),
        "request-id": uuid::Uuid::new_v4().to_string(),
    });
    if let Some(c) = client_request_id {
        inner["client-request-id"] = json!(c);
    }
    SimResponse::json(
        status,
        json!({"error": {"code": code, "message": message, "innerError": inner}}),
    )
}
