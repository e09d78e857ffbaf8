//! Graph's error document: `{"error": {"code", "message", "innerError": {...}}}`.

use serde_json::Value;

/// The support ids Microsoft asks for, from `innerError` (or `innererror`, any case, possibly nested).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InnerError {
    pub request_id: Option<String>,
    pub client_request_id: Option<String>,
    pub date: Option<String>,
}

/// A Graph error, read leniently: `code` may be empty and the inner key's case varies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GraphError {
    pub code: String,
    pub message: String,
    pub inner: InnerError,
}

fn field<'a>(obj: &'a Value, name: &str) -> Option<&'a Value> {
    obj.as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

fn text(obj: &Value, name: &str) -> Option<String> {
    match field(obj, name)? {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

impl GraphError {
    /// Reads the error from a response body; `None` when it is not Graph's error shape.
    pub fn from_value(body: &Value) -> Option<Self> {
        let error = field(body, "error")?;
        if !error.is_object() {
            return None;
        }
        let mut inner = InnerError::default();
        // innerError may nest further innerErrors; the outermost value of each id wins.
        let mut cursor = field(error, "innerError");
        let mut depth = 0;
        while let Some(level) = cursor.filter(|v| v.is_object()) {
            inner.request_id = inner.request_id.or_else(|| text(level, "request-id"));
            inner.client_request_id = inner
                .client_request_id
                .or_else(|| text(level, "client-request-id"));
            inner.date = inner.date.or_else(|| text(level, "date"));
            cursor = field(level, "innerError");
            depth += 1;
            if depth > 8 {
                break;
            }
        }
        Some(GraphError {
            code: text(error, "code").unwrap_or_default(),
            message: text(error, "message").unwrap_or_default(),
            inner,
        })
    }

    /// The message for a person: Intune sometimes puts a whole JSON document inside `message`;
    /// its own `Message` is shown instead of the raw document.
    pub fn display_message(&self) -> String {
        let trimmed = self.message.trim();
        if trimmed.starts_with('{')
            && let Ok(doc) = serde_json::from_str::<Value>(trimmed)
        {
            if let Some(Value::String(m)) = field(&doc, "Message") {
                return m.clone();
            }
            return doc.to_string();
        }
        trimmed.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_code_message_and_inner_ids() {
        let e = GraphError::from_value(&json!({"error": {"code": "BadRequest", "message": "nope",
            "innerError": {"request-id": "r1", "client-request-id": "c1", "date": "d1"}}}))
        .unwrap();
        assert_eq!(
            (e.code.as_str(), e.message.as_str()),
            ("BadRequest", "nope")
        );
        assert_eq!(
            e.inner,
            InnerError {
                request_id: Some("r1".into()),
                client_request_id: Some("c1".into()),
                date: Some("d1".into())
            }
        );
    }

    #[test]
    fn empty_code_lowercase_inner_and_nesting_are_tolerated() {
        let e = GraphError::from_value(&json!({"error": {"code": "", "message": "m",
            "innererror": {"innerError": {"request-id": "deep"}, "date": "top"}}}))
        .unwrap();
        assert_eq!(e.code, "");
        assert_eq!(e.inner.request_id.as_deref(), Some("deep"));
        assert_eq!(e.inner.date.as_deref(), Some("top"));
    }

    #[test]
    fn intune_json_inside_message_is_unwrapped() {
        let inner = r#"{"_version": 3, "Message": "Device is not a macOS device - Operation ID (for customer support): 00000000-0000-0000-0000-000000000000", "CustomApiErrorPhrase": ""}"#;
        let e = GraphError::from_value(&json!({"error": {"code": "BadRequest", "message": inner}}))
            .unwrap();
        assert!(
            e.display_message()
                .starts_with("Device is not a macOS device")
        );
        let plain = GraphError::from_value(&json!({"error": {"message": " plain "}})).unwrap();
        assert_eq!(plain.display_message(), "plain");
    }

    #[test]
    fn other_shapes_are_not_graph_errors() {
        assert!(GraphError::from_value(&json!({"value": []})).is_none());
        assert!(GraphError::from_value(&json!({"error": "invalid_client"})).is_none());
        assert!(GraphError::from_value(&json!("x")).is_none());
    }
}
