//! The response side of `$batch`: items in any order, correlated by id.

use crate::{BatchError, GraphError, Headers, ItemClass};
use base64::Engine;
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use std::time::SystemTime;

/// A parsed `$batch` answer.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct BatchResponse {
    #[serde(default)]
    pub responses: Vec<ItemResponse>,
    /// Older docs describe a top-level next link on batch answers; kept when present.
    #[serde(default, alias = "@odata.nextLink")]
    #[serde(rename = "nextLink")]
    pub next_link: Option<String>,
}

/// One item's answer.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ItemResponse {
    #[serde(deserialize_with = "id_as_string")]
    pub id: String,
    pub status: u16,
    #[serde(default)]
    pub headers: Headers,
    #[serde(default)]
    pub body: Option<Value>,
}

/// An item's body, read according to its Content-Type.
#[derive(Debug, Clone, PartialEq)]
pub enum ItemBody {
    Json(Value),
    Text(String),
    Binary(Vec<u8>),
}

fn id_as_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match Value::deserialize(d)? {
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(serde::de::Error::custom(format!(
            "batch item id must be a string, got {other}"
        ))),
    }
}

impl BatchResponse {
    /// Parses the outer JSON; any bytes at all give a value or an error, never a panic.
    pub fn parse(bytes: &[u8]) -> Result<Self, BatchError> {
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(BatchError::ResponseJson(
                "a batch answer must be a JSON object".into(),
            ));
        }
        serde_json::from_slice(bytes).map_err(|e| BatchError::ResponseJson(e.to_string()))
    }

    /// The answer for item `id` (ids compared ignoring case, as the service does).
    pub fn item(&self, id: &str) -> Option<&ItemResponse> {
        self.responses
            .iter()
            .find(|r| r.id.eq_ignore_ascii_case(id))
    }

    /// [`BatchResponse::item`], to take its body rather than copy it.
    pub fn item_mut(&mut self, id: &str) -> Option<&mut ItemResponse> {
        self.responses
            .iter_mut()
            .find(|r| r.id.eq_ignore_ascii_case(id))
    }
}

impl ItemResponse {
    pub fn classify(&self, now: SystemTime) -> ItemClass {
        ItemClass::of(self.status, &self.headers, now)
    }

    /// The body as JSON, text or bytes: JSON values stay JSON; a string is base64 bytes when the
    /// Content-Type is not textual and the string decodes, otherwise text.
    pub fn body(&self) -> Option<ItemBody> {
        let body = self.body.as_ref()?;
        let Value::String(s) = body else {
            return Some(ItemBody::Json(body.clone()));
        };
        let ct = self
            .headers
            .get("Content-Type")
            .unwrap_or("")
            .to_ascii_lowercase();
        let textual =
            ct.is_empty() || ct.starts_with("text/") || ct.contains("json") || ct.contains("xml");
        if !textual && let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(s) {
            return Some(ItemBody::Binary(bytes));
        }
        Some(ItemBody::Text(s.clone()))
    }

    /// Graph's error document, when the body holds one.
    pub fn error(&self) -> Option<GraphError> {
        GraphError::from_value(self.body.as_ref()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::Duration;

    /// Shaped like the documented batch answer: items out of order, a 403 and a 405 with innerError,
    /// a throttled item with its own Retry-After.
    const DOCS_LIKE: &str = r#"{
      "responses": [
        {"id": "1", "status": 302, "headers": {"location": "https://b0mpua-by3301.files.1drv.com/y23vmagahszhxzlcvhasdhasghasodfi"}},
        {"id": "3", "status": 401, "body": {"error": {"code": "Forbidden", "message": "..."}}},
        {"id": "5", "status": 429, "headers": {"Retry-After": "3"}, "body": {"error": {"code": "TooManyRequests", "message": "Too many requests"}}},
        {"id": "2", "status": 403, "headers": {"Content-Type": "application/json"},
         "body": {"error": {"code": "Forbidden", "message": "Application is not authorized to perform this operation.",
           "innerError": {"date": "2026-10-21T07:28:00", "request-id": "11111111-2222-4333-8444-555555555555", "client-request-id": "66666666-7777-4888-8999-000000000000"}}}},
        {"id": "4", "status": 405, "body": {"error": {"code": "BadRequest", "message": "No OData route exists that match template",
           "innererror": {"date": "2026-10-21T07:28:01", "request-id": "aaaaaaaa-2222-4333-8444-555555555555"}}}}
      ],
      "nextLink": "https://graph.microsoft.com/beta/$batch?$skiptoken=abc"
    }"#;

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
    }

    #[test]
    fn items_in_any_order_are_found_by_id() {
        let r = BatchResponse::parse(DOCS_LIKE.as_bytes()).unwrap();
        assert_eq!(r.responses.len(), 5);
        for id in ["1", "2", "3", "4", "5"] {
            assert_eq!(r.item(id).unwrap().id, id);
        }
        assert_eq!(
            r.next_link.as_deref(),
            Some("https://graph.microsoft.com/beta/$batch?$skiptoken=abc")
        );
    }

    #[test]
    fn each_documented_item_is_classified() {
        let r = BatchResponse::parse(DOCS_LIKE.as_bytes()).unwrap();
        let class = |id| r.item(id).unwrap().classify(now());
        assert_eq!(
            class("5"),
            ItemClass::Throttled {
                retry_after: Some(Duration::from_secs(3))
            }
        );
        assert_eq!(class("3"), ItemClass::Auth);
        assert_eq!(class("2"), ItemClass::Permanent);
        assert_eq!(class("4"), ItemClass::Permanent);
    }

    #[test]
    fn inner_error_ids_are_read_in_either_spelling() {
        let r = BatchResponse::parse(DOCS_LIKE.as_bytes()).unwrap();
        let e2 = r.item("2").unwrap().error().unwrap();
        assert_eq!(e2.code, "Forbidden");
        assert_eq!(
            e2.inner.request_id.as_deref(),
            Some("11111111-2222-4333-8444-555555555555")
        );
        assert_eq!(
            e2.inner.client_request_id.as_deref(),
            Some("66666666-7777-4888-8999-000000000000")
        );
        let e4 = r.item("4").unwrap().error().unwrap();
        assert_eq!(
            e4.inner.request_id.as_deref(),
            Some("aaaaaaaa-2222-4333-8444-555555555555")
        );
        assert_eq!(e4.inner.date.as_deref(), Some("2026-10-21T07:28:01"));
    }

    #[test]
    fn numeric_ids_and_missing_fields_are_tolerated() {
        let r = BatchResponse::parse(br#"{"responses":[{"id":7,"status":204}]}"#).unwrap();
        assert_eq!(r.item("7").unwrap().status, 204);
        assert!(r.item("7").unwrap().body().is_none());
        assert!(BatchResponse::parse(b"{}").unwrap().responses.is_empty());
    }

    #[test]
    fn bodies_are_json_text_or_bytes_by_content_type() {
        let r = BatchResponse::parse(
            br#"{"responses":[
              {"id":"1","status":200,"body":{"a":1}},
              {"id":"2","status":200,"headers":{"content-type":"text/plain"},"body":"hello"},
              {"id":"3","status":200,"headers":{"Content-Type":"image/png"},"body":"AAFoaQ=="}
            ]}"#,
        )
        .unwrap();
        assert_eq!(
            r.item("1").unwrap().body(),
            Some(ItemBody::Json(serde_json::json!({"a":1})))
        );
        assert_eq!(
            r.item("2").unwrap().body(),
            Some(ItemBody::Text("hello".into()))
        );
        assert_eq!(
            r.item("3").unwrap().body(),
            Some(ItemBody::Binary(b"\x00\x01hi".to_vec()))
        );
    }

    #[test]
    fn malformed_answers_are_errors() {
        for bad in [
            &b""[..],
            b"null",
            b"[]",
            b"{\"responses\":[{\"id\":\"1\"}]}",
            b"{\"responses\": [",
            b"\xff\xfe",
        ] {
            assert!(
                BatchResponse::parse(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    proptest! {
        #[test]
        fn parsing_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            if let Ok(r) = BatchResponse::parse(&bytes) {
                for item in &r.responses {
                    let _ = item.classify(now());
                    let _ = item.body();
                    let _ = item.error().map(|e| e.display_message());
                }
            }
        }

        #[test]
        fn parsing_arbitrary_json_shapes_never_panics(s in r#"\{"responses":\[\{"id":"[0-9]{1,2}","status":[0-9]{1,3}(,"headers":\{"Retry-After":"[ -~]{0,12}"\})?(,"body":\{"error":\{"message":"[ -~]{0,30}"\}\})?\}\]\}"#) {
            if let Ok(r) = BatchResponse::parse(s.as_bytes()) {
                for item in &r.responses {
                    let _ = item.classify(now());
                    let _ = item.error().map(|e| e.display_message());
                }
            }
        }
    }
}
