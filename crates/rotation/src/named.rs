//! Things admins know by display name (groups, scripts, detected apps) resolved to their ids.
//! The name goes to the service as a `displayName eq` filter, and the answer is checked again
//! here, so a service that ignores the filter cannot turn one name into many.

use crate::RotationError;
use futures::StreamExt;
use graph_client::{GraphClient, GraphClientError};
use serde_json::Value;

/// What a name resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Named {
    pub id: String,
    pub name: String,
}

/// A collection whose items are known by `displayName`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Collection {
    /// What an admin calls one item: "group", "device health script".
    pub kind: &'static str,
    /// The listing's path, relative to the API version.
    pub path: &'static str,
    /// Further properties that tell candidates apart in an ambiguity error (e.g. `version`).
    pub detail: Option<&'static str>,
}

/// Whether `text` is already an id of this collection rather than a name: a GUID, or (detected
/// apps) a long hex digest.
pub fn looks_like_id(text: &str) -> bool {
    let t = text.trim();
    crate::parse_id(t).is_some() || (t.len() >= 32 && t.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Resolves `name` (case-insensitive, exact) in `collection`. None or several → `BadName`, with
/// the candidates, before anything is sent.
pub async fn resolve_name(
    client: &GraphClient,
    collection: Collection,
    name: &str,
) -> Result<Named, RotationError> {
    let filter = format!("displayName eq '{}'", name.replace('\'', "''"));
    let select = match collection.detail {
        Some(d) => format!("id,displayName,{d}"),
        None => "id,displayName".to_string(),
    };
    let url = format!(
        "{}?$filter={}&$select={select}",
        collection.path,
        crate::url::enc(&filter)
    );
    let mut found: Vec<(Named, Option<String>)> = Vec::new();
    let unfiltered = format!("{}?$select={select}", collection.path);
    let mut pages = std::pin::pin!(client.pages(url));
    let mut first = true;
    while let Some(page) = pages.next().await {
        let items = match page {
            // A collection that refuses the name filter is listed whole; the name is checked
            // here, as it always is (graph-facts §11).
            Err(GraphClientError::Http { status: 400, .. }) if first => {
                tracing::info!(
                    "the service refused a name filter on {}s; listing them all and matching the name here",
                    collection.kind
                );
                first = false;
                pages.set(client.pages(unfiltered.clone()));
                continue;
            }
            page => page.map_err(|e| RotationError::listing(collection.kind, e))?,
        };
        first = false;
        for item in items {
            let display = item
                .get("displayName")
                .and_then(Value::as_str)
                .unwrap_or("");
            if !display.trim().eq_ignore_ascii_case(name.trim()) {
                continue;
            }
            let Some(id) = item.get("id").and_then(Value::as_str) else {
                continue;
            };
            let detail = collection
                .detail
                .and_then(|d| item.get(d))
                .and_then(|v| match v {
                    Value::String(s) if !s.is_empty() => Some(s.clone()),
                    Value::Array(a) if !a.is_empty() => Some(
                        a.iter()
                            .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_string))
                            .collect::<Vec<_>>()
                            .join(", "),
                    ),
                    Value::Number(n) => Some(n.to_string()),
                    _ => None,
                });
            found.push((
                Named {
                    id: id.to_string(),
                    name: display.to_string(),
                },
                detail,
            ));
        }
    }
    match found.len() {
        1 => Ok(found.pop().expect("one").0),
        n => Err(RotationError::BadName {
            kind: collection.kind,
            name: name.to_string(),
            candidates: found
                .iter()
                .map(|(n, detail)| match detail {
                    Some(d) => format!("{} ({d}): {}", n.name, n.id),
                    None => format!("{}: {}", n.name, n.id),
                })
                .collect(),
            several: n > 1,
        }),
    }
}
