//! Devices found through Graph: an OData query, a script's run states, users' devices, a detected
//! app's devices. Each pages over nextLink and is spooled to the CSV shape the plan reads, so every
//! field the plan relies on is re-checked on the client, whatever the service did with the filter.

use crate::device_list::{DeviceCsvWriter, SourceDevice, device_select};
use crate::{Action, DeviceList, RotationError};
use futures::StreamExt;
use graph_client::GraphClient;
use serde_json::Value;

/// The script collections that record per-device run states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScriptKind {
    Health,
    Management,
    Compliance,
}

impl ScriptKind {
    fn collection(self) -> &'static str {
        match self {
            ScriptKind::Health => "deviceHealthScripts",
            ScriptKind::Management => "deviceManagementScripts",
            ScriptKind::Compliance => "deviceComplianceScripts",
        }
    }
}

/// Where the devices come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GraphSource {
    /// `managedDevices` or `comanagedDevices` with an OData filter (`None`: the action's platform).
    Query {
        comanaged: bool,
        filter: Option<String>,
    },
    /// A script's devices, optionally only those whose detection/run state is one of `states`.
    Script {
        kind: ScriptKind,
        id: String,
        states: Vec<String>,
    },
    /// The managed devices of each user (UPN or object id).
    Users(Vec<String>),
    /// The devices where an app was detected.
    DetectedApp(String),
}

/// What was read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FetchReport {
    pub devices: usize,
    /// The listing failed part-way and `allow_partial` kept what was read.
    pub partial: Option<String>,
}

fn quote(s: &str) -> String {
    s.replace('\'', "''")
}

/// Percent-encodes a query value (Graph takes spaces and quotes encoded).
fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

impl GraphSource {
    /// The first page's URL(s), relative to the API version.
    fn urls(&self, action: Action) -> Vec<String> {
        match self {
            GraphSource::Query { comanaged, filter } => {
                let coll = if *comanaged {
                    "comanagedDevices"
                } else {
                    "managedDevices"
                };
                let filter = filter
                    .clone()
                    .unwrap_or_else(|| format!("operatingSystem eq '{}'", action.platform()));
                vec![format!(
                    "/deviceManagement/{coll}?$filter={}&$select={}&$top=1000",
                    enc(&filter),
                    device_select()
                )]
            }
            GraphSource::Script { kind, id, .. } => {
                vec![format!(
                    "/deviceManagement/{}/{}/deviceRunStates?$expand=managedDevice",
                    kind.collection(),
                    enc(id)
                )]
            }
            GraphSource::Users(users) => users
                .iter()
                .map(|u| {
                    format!(
                        "/users/{}/managedDevices?$select={}",
                        enc(u),
                        device_select()
                    )
                })
                .collect(),
            GraphSource::DetectedApp(id) => vec![format!(
                "/deviceManagement/detectedApps/{}/managedDevices?$select={}",
                enc(id),
                device_select()
            )],
        }
    }

    /// A description for the ledger header and messages.
    pub fn describe(&self, action: Action) -> String {
        match self {
            GraphSource::Query { comanaged, filter } => {
                let f = filter.clone().unwrap_or_else(|| {
                    format!("operatingSystem eq '{}'", quote(action.platform()))
                });
                format!(
                    "graph:{}?$filter={f}",
                    if *comanaged {
                        "comanagedDevices"
                    } else {
                        "managedDevices"
                    }
                )
            }
            GraphSource::Script { kind, id, states } => format!(
                "graph:{}/{id} states={}",
                kind.collection(),
                states.join("|")
            ),
            GraphSource::Users(u) => format!("graph:users({})", u.len()),
            GraphSource::DetectedApp(id) => format!("graph:detectedApps/{id}"),
        }
    }

    /// Turns one listed item into a device row, or `None` when it is filtered out.
    fn row(&self, item: &Value, line: u64) -> Option<SourceDevice> {
        match self {
            GraphSource::Script { kind, states, .. } => {
                let field = if *kind == ScriptKind::Management {
                    "runState"
                } else {
                    "detectionState"
                };
                let state = item.get(field).and_then(Value::as_str).unwrap_or("");
                if !states.is_empty() && !states.iter().any(|s| s.eq_ignore_ascii_case(state)) {
                    return None;
                }
                item.get("managedDevice")
                    .filter(|d| d.is_object())
                    .map(|d| SourceDevice::from_graph(d, line))
            }
            _ => Some(SourceDevice::from_graph(item, line)),
        }
    }

    /// Reads every page into a spooled device list. A failure part-way is an error (nothing was
    /// sent), or with `allow_partial`, a warning in the report and what was read.
    pub async fn fetch(
        &self,
        client: &GraphClient,
        action: Action,
        allow_partial: bool,
    ) -> Result<(DeviceList, FetchReport), RotationError> {
        let tmp =
            tempfile::NamedTempFile::new().map_err(|e| RotationError::io("device spool", e))?;
        let mut out = DeviceCsvWriter::new(std::io::BufWriter::new(tmp.as_file()))?;
        let mut seen = std::collections::HashSet::new();
        let mut report = FetchReport::default();
        'urls: for url in self.urls(action) {
            let mut pages = std::pin::pin!(client.pages(url.clone()));
            while let Some(page) = pages.next().await {
                match page {
                    Ok(items) => {
                        for item in &items {
                            if let Some(d) = self.row(item, seen.len() as u64 + 2)
                                && seen.insert(d.raw_id.to_ascii_lowercase())
                            {
                                out.write(d)?;
                            }
                        }
                    }
                    Err(e) if allow_partial => {
                        tracing::warn!(
                            "listing {url} failed part-way ({e}); planning the {} device(s) read so far",
                            seen.len()
                        );
                        report.partial = Some(e.to_string());
                        break 'urls;
                    }
                    Err(e) => {
                        return Err(RotationError::Source(format!(
                            "listing devices failed after {} device(s): {e}; nothing was sent (--allow-partial-source plans what was read)",
                            seen.len()
                        )));
                    }
                }
            }
        }
        report.devices = out.finish()?;
        Ok((
            DeviceList::spooled(tmp.into_temp_path(), self.describe(action))?,
            report,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_default_to_the_actions_platform_and_encode_the_filter() {
        let q = GraphSource::Query {
            comanaged: false,
            filter: None,
        };
        let url = &q.urls(Action::FileVault)[0];
        assert!(
            url.starts_with(
                "/deviceManagement/managedDevices?$filter=operatingSystem%20eq%20%27macOS%27"
            ),
            "{url}"
        );
        let w = GraphSource::Query {
            comanaged: true,
            filter: None,
        };
        assert!(
            w.urls(Action::BitLocker)[0]
                .contains("comanagedDevices?$filter=operatingSystem%20eq%20%27Windows%27")
        );
    }

    #[test]
    fn script_run_states_filter_and_unwrap_the_expanded_device() {
        let s = GraphSource::Script {
            kind: ScriptKind::Health,
            id: "x".into(),
            states: vec!["fail".into()],
        };
        let item = serde_json::json!({"detectionState": "fail", "managedDevice": {"id": "d1", "operatingSystem": "macOS", "isEncrypted": true}});
        let d = s.row(&item, 2).unwrap();
        assert_eq!(
            (d.raw_id.as_str(), d.os.as_deref(), d.encrypted),
            ("d1", Some("macOS"), Some(true))
        );
        assert!(
            s.row(
                &serde_json::json!({"detectionState": "success", "managedDevice": {"id": "d2"}}),
                3
            )
            .is_none()
        );
    }
}
