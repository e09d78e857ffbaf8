//! The request side of `$batch`: one request as the caller describes it, its wire form, and the
//! service's validation rules.

use crate::BatchError;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};

/// How a POST without a payload is written inside a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BodilessPost {
    /// `"body": {}` with `Content-Type: application/json`, as the Graph batching docs ask.
    #[default]
    EmptyObject,
    /// No body and no Content-Type, as a direct call would send it.
    Omit,
}

/// One request as a caller describes it; ids are allocated by [`crate::BatchBuilder`].
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub method: String,
    /// Relative to the batch's Graph version, e.g. `/deviceManagement/managedDevices/{id}`.
    pub url: String,
    pub headers: BTreeMap<String, String>,
    pub body: Option<Value>,
}

impl Request {
    pub fn get(url: impl Into<String>) -> Self {
        Request {
            method: "GET".into(),
            url: url.into(),
            headers: BTreeMap::new(),
            body: None,
        }
    }

    /// A bodiless POST action (the rotate actions), written the way the batching docs require.
    pub fn action_post(url: impl Into<String>) -> Self {
        Self::action_post_with(url, BodilessPost::EmptyObject)
    }

    pub fn action_post_with(url: impl Into<String>, style: BodilessPost) -> Self {
        let mut r = Request {
            method: "POST".into(),
            url: url.into(),
            headers: BTreeMap::new(),
            body: None,
        };
        if style == BodilessPost::EmptyObject {
            r.headers
                .insert("Content-Type".into(), "application/json".into());
            r.body = Some(Value::Object(Default::default()));
        }
        r
    }

    /// A request with a JSON payload; sets `Content-Type: application/json`.
    pub fn with_json(method: impl Into<String>, url: impl Into<String>, body: Value) -> Self {
        let mut headers = BTreeMap::new();
        headers.insert("Content-Type".into(), "application/json".into());
        Request {
            method: method.into(),
            url: url.into(),
            headers,
            body: Some(body),
        }
    }

    /// A request with a binary payload, base64-encoded as the batch format requires.
    pub fn with_bytes(
        method: impl Into<String>,
        url: impl Into<String>,
        content_type: &str,
        bytes: &[u8],
    ) -> Self {
        let mut headers = BTreeMap::new();
        headers.insert("Content-Type".into(), content_type.into());
        let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
        Request {
            method: method.into(),
            url: url.into(),
            headers,
            body: Some(Value::String(encoded)),
        }
    }

    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.insert(name.into(), value.into());
        self
    }
}

/// One request item exactly as it goes on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestItem {
    pub id: String,
    pub method: String,
    pub url: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    #[serde(
        default,
        rename = "dependsOn",
        alias = "depends_on",
        skip_serializing_if = "Option::is_none"
    )]
    pub depends_on: Option<Vec<String>>,
}

impl RequestItem {
    pub fn new(id: impl Into<String>, request: Request) -> Self {
        RequestItem {
            id: id.into(),
            method: request.method,
            url: request.url,
            headers: request.headers,
            body: request.body,
            depends_on: None,
        }
    }

    /// The header value for `name`, ignoring case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The url with exactly one leading slash: Graph accepts both spellings.
    pub fn normalized_url(&self) -> String {
        format!("/{}", self.url.trim_start_matches('/'))
    }
}

/// The JSON document posted to `/$batch`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchRequestBody {
    pub requests: Vec<RequestItem>,
}

const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

/// Checks a batch against the rules the service enforces; the first broken rule is returned.
pub fn validate_batch(items: &[RequestItem]) -> Result<(), BatchError> {
    if items.is_empty() {
        return Err(BatchError::Empty);
    }
    if items.len() > crate::MAX_BATCH_SIZE {
        return Err(BatchError::TooManyRequests(items.len()));
    }
    let mut seen = HashSet::new();
    for item in items {
        if item.id.is_empty() {
            return Err(BatchError::EmptyId);
        }
        if !seen.insert(item.id.to_ascii_lowercase()) {
            return Err(BatchError::DuplicateId(item.id.clone()));
        }
        if !METHODS.iter().any(|m| m.eq_ignore_ascii_case(&item.method)) {
            return Err(BatchError::InvalidMethod {
                id: item.id.clone(),
                method: item.method.clone(),
            });
        }
        if is_absolute(&item.url) {
            return Err(BatchError::AbsoluteUrl {
                id: item.id.clone(),
                url: item.url.clone(),
            });
        }
        if item.body.is_some() && item.header("Content-Type").is_none() {
            return Err(BatchError::BodyWithoutContentType {
                id: item.id.clone(),
            });
        }
    }
    validate_dependencies(items)
}

fn is_absolute(url: &str) -> bool {
    let lower = url.to_ascii_lowercase();
    lower.starts_with("http:")
        || lower.starts_with("https:")
        || lower.starts_with("//")
        || lower.contains("://")
}

/// Graph allows three shapes: no dependencies, a chain (each on the one before), or every other request on one.
fn validate_dependencies(items: &[RequestItem]) -> Result<(), BatchError> {
    let mut earlier: Vec<String> = Vec::new();
    let mut deps: Vec<Option<String>> = Vec::with_capacity(items.len());
    for item in items {
        let dep = match item.depends_on.as_deref() {
            None | Some([]) => None,
            Some([one]) => {
                if !earlier.iter().any(|e| e.eq_ignore_ascii_case(one)) {
                    return Err(BatchError::UnknownDependency {
                        id: item.id.clone(),
                        depends_on: one.clone(),
                    });
                }
                Some(one.to_ascii_lowercase())
            }
            Some(many) => {
                return Err(BatchError::TooManyDependencies {
                    id: item.id.clone(),
                    count: many.len(),
                });
            }
        };
        deps.push(dep);
        earlier.push(item.id.clone());
    }
    if deps.iter().all(Option::is_none) {
        return Ok(());
    }
    let ids: Vec<String> = items.iter().map(|i| i.id.to_ascii_lowercase()).collect();
    let serial = deps.iter().enumerate().all(|(i, d)| match i {
        0 => d.is_none(),
        _ => d.as_deref() == Some(ids[i - 1].as_str()),
    });
    let hub = deps.iter().enumerate().all(|(i, d)| match i {
        0 => d.is_none(),
        _ => d.as_deref() == Some(ids[0].as_str()),
    });
    if serial || hub {
        Ok(())
    } else {
        Err(BatchError::MixedDependencies)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(id: &str) -> RequestItem {
        RequestItem::new(
            id,
            Request::action_post(format!(
                "/deviceManagement/managedDevices/{id}/rotateFileVaultKey"
            )),
        )
    }

    fn dep(id: &str, on: &str) -> RequestItem {
        let mut i = item(id);
        i.depends_on = Some(vec![on.into()]);
        i
    }

    #[test]
    fn bodiless_action_is_written_as_the_docs_ask() {
        let json = serde_json::to_value(item("1")).unwrap();
        assert_eq!(json["body"], serde_json::json!({}));
        assert_eq!(json["headers"]["Content-Type"], "application/json");
        assert_eq!(json["method"], "POST");
    }

    #[test]
    fn bodiless_action_can_be_written_without_a_body() {
        let r = RequestItem::new(
            "1",
            Request::action_post_with("/x/rotateFileVaultKey", BodilessPost::Omit),
        );
        let json = serde_json::to_value(r).unwrap();
        assert!(json.get("body").is_none());
        assert!(json.get("headers").is_none());
    }

    #[test]
    fn binary_bodies_are_base64() {
        let r = Request::with_bytes("PUT", "/x", "application/octet-stream", b"\x00\x01hi");
        assert_eq!(r.body, Some(Value::String("AAFoaQ==".into())));
    }

    #[test]
    fn duplicate_ids_are_refused_ignoring_case() {
        let items = vec![item("a"), item("A")];
        assert_eq!(
            validate_batch(&items),
            Err(BatchError::DuplicateId("A".into()))
        );
    }

    #[test]
    fn absolute_urls_are_refused() {
        let mut i = item("1");
        i.url = "https://graph.microsoft.com/beta/me".into();
        assert!(matches!(
            validate_batch(&[i]),
            Err(BatchError::AbsoluteUrl { .. })
        ));
    }

    #[test]
    fn urls_with_or_without_leading_slash_are_accepted() {
        let mut i = item("1");
        i.url = "deviceManagement/managedDevices".into();
        assert_eq!(validate_batch(std::slice::from_ref(&i)), Ok(()));
        assert_eq!(i.normalized_url(), "/deviceManagement/managedDevices");
    }

    #[test]
    fn a_body_needs_a_content_type() {
        let mut i = item("1");
        i.headers.clear();
        assert_eq!(
            validate_batch(&[i]),
            Err(BatchError::BodyWithoutContentType { id: "1".into() })
        );
    }

    #[test]
    fn more_than_twenty_requests_are_refused() {
        let items: Vec<_> = (0..21).map(|n| item(&n.to_string())).collect();
        assert_eq!(validate_batch(&items), Err(BatchError::TooManyRequests(21)));
        assert_eq!(validate_batch(&items[..20]), Ok(()));
        assert_eq!(validate_batch(&[]), Err(BatchError::Empty));
    }

    #[test]
    fn unknown_methods_are_refused() {
        let mut i = item("1");
        i.method = "FETCH".into();
        assert!(matches!(
            validate_batch(&[i]),
            Err(BatchError::InvalidMethod { .. })
        ));
    }

    #[test]
    fn dependency_on_an_unknown_or_later_id_is_refused() {
        assert!(matches!(
            validate_batch(&[dep("1", "9")]),
            Err(BatchError::UnknownDependency { .. })
        ));
        assert!(matches!(
            validate_batch(&[dep("1", "2"), item("2")]),
            Err(BatchError::UnknownDependency { .. })
        ));
    }

    #[test]
    fn at_most_one_dependency_per_request() {
        let mut i = item("3");
        i.depends_on = Some(vec!["1".into(), "2".into()]);
        let r = validate_batch(&[item("1"), item("2"), i]);
        assert_eq!(
            r,
            Err(BatchError::TooManyDependencies {
                id: "3".into(),
                count: 2
            })
        );
    }

    #[test]
    fn serial_and_hub_shapes_are_accepted_and_mixtures_refused() {
        assert_eq!(
            validate_batch(&[item("1"), dep("2", "1"), dep("3", "2")]),
            Ok(())
        );
        assert_eq!(
            validate_batch(&[item("1"), dep("2", "1"), dep("3", "1")]),
            Ok(())
        );
        assert_eq!(
            validate_batch(&[item("1"), dep("2", "1"), item("3")]),
            Err(BatchError::MixedDependencies)
        );
    }

    #[test]
    fn snake_case_depends_on_is_read_too() {
        let r: RequestItem =
            serde_json::from_str(r#"{"id":"2","method":"GET","url":"/me","depends_on":["1"]}"#)
                .unwrap();
        assert_eq!(r.depends_on, Some(vec!["1".to_string()]));
    }
}
