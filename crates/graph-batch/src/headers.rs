//! Response headers, looked up ignoring case: Graph sends `Retry-After` and `retry-after` alike.

use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;

/// Header names and values as Graph sent them; `get` ignores case.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Headers(BTreeMap<String, String>);

impl Headers {
    /// The value of `name`, compared ignoring ASCII case.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.0.insert(name.into(), value.into());
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromIterator<(String, String)> for Headers {
    fn from_iter<T: IntoIterator<Item = (String, String)>>(iter: T) -> Self {
        Headers(iter.into_iter().collect())
    }
}

impl<'de> Deserialize<'de> for Headers {
    /// Values that are not strings (numbers, arrays) are kept as their JSON text rather than failing
    /// the whole batch answer.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw: Option<BTreeMap<String, serde_json::Value>> = Option::deserialize(d)?;
        Ok(Headers(
            raw.unwrap_or_default()
                .into_iter()
                .map(|(k, v)| {
                    let v = match v {
                        serde_json::Value::String(s) => s,
                        other => other.to_string(),
                    };
                    (k, v)
                })
                .collect(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_ignores_case() {
        let mut h = Headers::default();
        h.insert("Retry-After", "7");
        assert_eq!(h.get("retry-after"), Some("7"));
        assert_eq!(h.get("RETRY-AFTER"), Some("7"));
        assert_eq!(h.get("Content-Type"), None);
    }

    #[test]
    fn non_string_values_are_kept_as_text() {
        let h: Headers = serde_json::from_str(r#"{"Retry-After": 5, "x": null}"#).unwrap();
        assert_eq!(h.get("retry-after"), Some("5"));
        assert_eq!(h.get("x"), Some("null"));
    }
}
