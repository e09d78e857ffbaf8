//! The one rule for a managed device id, used by the plan, `--exclude` and the ledger.

use uuid::Uuid;

/// A device id as an admin pastes it: the hyphenated GUID, optionally in braces, surrounding
/// spaces ignored. Other forms `Uuid` accepts (`urn:uuid:`, 32 bare hex digits) are refused: they
/// do not come from Intune, and a bare run of hex could be anything.
pub fn parse_id(raw: &str) -> Option<Uuid> {
    let t = raw.trim();
    let inner = t
        .strip_prefix('{')
        .and_then(|x| x.strip_suffix('}'))
        .unwrap_or(t);
    if inner.len() != 36 {
        return None;
    }
    Uuid::try_parse(inner).ok()
}

/// serde for ids in ledger rows: written hyphenated, read by [`parse_id`].
pub(crate) mod as_guid {
    use serde::de::Error;
    use serde::{Deserialize, Deserializer, Serializer};
    use uuid::Uuid;

    pub fn serialize<S: Serializer>(id: &Uuid, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&id.hyphenated())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Uuid, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(d)?;
        super::parse_id(&text)
            .ok_or_else(|| D::Error::custom(format!("device id {text:?} is not a GUID")))
    }
}

/// The all-zero Entra device id Intune writes for "no Entra device": it identifies nothing, so it
/// is never matched (a row or a group member with it would otherwise join every such device).
pub(crate) const NO_ENTRA_DEVICE: &str = "00000000-0000-0000-0000-000000000000";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hyphenated_and_braced_forms_are_ids_and_nothing_else_is() {
        let id = "6d1f0000-0000-4000-8000-00000000000a";
        assert!(parse_id(id).is_some());
        assert!(parse_id(&format!(" {{{id}}} ")).is_some());
        assert!(parse_id(&id.to_uppercase()).is_some());
        for bad in [
            "",
            "6d1f0000000040008000000000000000a",
            "6d1f00000000400080000000000000a0",
            &format!("urn:uuid:{id}"),
            &format!("{{{id}"),
            &format!("{id}}}"),
            &format!("{id}0"),
            "not-a-guid-at-all-not-a-guid-at-alll",
        ] {
            assert_eq!(parse_id(bad), None, "{bad:?}");
        }
    }
}
