//! `$select`, read once per request: the names a caller asked for, which every item of a page
//! is then built or filtered by.

use serde_json::Value;

/// The properties a request names in `$select`, or every property when it names none.
#[derive(Debug, Clone, Default)]
pub struct Selection<'a>(Option<Vec<&'a str>>);

impl<'a> Selection<'a> {
    /// `$select`'s value as the query gives it, names separated by commas.
    pub fn parse(fields: Option<&'a str>) -> Self {
        Selection(fields.map(|f| f.split(',').map(str::trim).collect()))
    }

    /// Whether `name` is asked for; Graph matches property names without regard to case.
    pub fn wants(&self, name: &str) -> bool {
        self.0
            .as_ref()
            .is_none_or(|names| names.iter().any(|n| n.eq_ignore_ascii_case(name)))
    }

    /// Keeps the selected properties of an object, `id` (which Graph always returns) and its
    /// annotations.
    pub fn keep(&self, v: Value) -> Value {
        let Value::Object(map) = v else { return v };
        if self.0.is_none() {
            return Value::Object(map);
        }
        Value::Object(
            map.into_iter()
                .filter(|(k, _)| k == "id" || k.starts_with('@') || self.wants(k))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn no_select_keeps_everything() {
        let v = json!({"id": "1", "deviceName": "mac-01"});
        assert_eq!(Selection::parse(None).keep(v.clone()), v);
    }

    #[test]
    fn names_match_without_case_and_around_spaces() {
        let s = Selection::parse(Some(" DeviceName ,isEncrypted"));
        assert!(s.wants("deviceName"));
        assert!(s.wants("isencrypted"));
        assert!(!s.wants("serialNumber"));
    }

    #[test]
    fn id_and_annotations_stay_whatever_is_selected() {
        let v = json!({"id": "1", "@odata.type": "#x", "deviceName": "mac-01", "model": "m"});
        assert_eq!(
            Selection::parse(Some("model")).keep(v),
            json!({"id": "1", "@odata.type": "#x", "model": "m"})
        );
    }
}
