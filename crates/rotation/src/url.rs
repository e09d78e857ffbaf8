//! Building Graph URLs: the one encoding of a query value.

/// Percent-encodes a query value (Graph takes spaces and quotes encoded).
pub(crate) fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}
