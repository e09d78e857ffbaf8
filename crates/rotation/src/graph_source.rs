//! Devices found through Graph: an OData query, a script's run states, users' devices, a detected
//! app's devices, Entra groups. Each pages over nextLink and is spooled to the CSV shape the plan
//! reads, so every field the plan relies on is re-checked on the client, and a query's whole filter
//! is evaluated here again, whatever the service did with it.

use crate::device_list::{DeviceCsvWriter, SourceDevice, device_select};
pub use crate::fetch_report::FetchReport;
use crate::group_source::{self, GroupMembers};
use crate::named::{self, Collection, Named};
use crate::url::enc;
use crate::{Action, DeviceList, Filter, RotationError};
use futures::StreamExt;
use graph_client::GraphClient;
use serde_json::Value;

/// The script collections that record per-device run states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScriptKind {
    /// Remediations: PowerShell, Windows only.
    Health,
    /// Platform scripts: PowerShell, Windows only.
    Management,
    /// Compliance discovery scripts: Windows, macOS and Linux.
    Compliance,
    /// macOS shell scripts.
    Shell,
    /// macOS custom attribute scripts.
    CustomAttribute,
}

impl ScriptKind {
    pub const ALL: [ScriptKind; 5] = [
        ScriptKind::Health,
        ScriptKind::Management,
        ScriptKind::Compliance,
        ScriptKind::Shell,
        ScriptKind::CustomAttribute,
    ];

    /// The collection under `/deviceManagement`.
    pub fn collection(self) -> &'static str {
        match self {
            ScriptKind::Health => "deviceHealthScripts",
            ScriptKind::Management => "deviceManagementScripts",
            ScriptKind::Compliance => "deviceComplianceScripts",
            ScriptKind::Shell => "deviceShellScripts",
            ScriptKind::CustomAttribute => "deviceCustomAttributeShellScripts",
        }
    }

    /// The run state's field: remediations and compliance scripts detect, the others run.
    fn state_field(self) -> &'static str {
        match self {
            ScriptKind::Health | ScriptKind::Compliance => "detectionState",
            ScriptKind::Management | ScriptKind::Shell | ScriptKind::CustomAttribute => "runState",
        }
    }

    fn named(self) -> Collection {
        let (kind, path) = match self {
            ScriptKind::Health => (
                "device health script",
                "/deviceManagement/deviceHealthScripts",
            ),
            ScriptKind::Management => (
                "device management script",
                "/deviceManagement/deviceManagementScripts",
            ),
            ScriptKind::Compliance => (
                "compliance script",
                "/deviceManagement/deviceComplianceScripts",
            ),
            ScriptKind::Shell => ("shell script", "/deviceManagement/deviceShellScripts"),
            ScriptKind::CustomAttribute => (
                "custom attribute script",
                "/deviceManagement/deviceCustomAttributeShellScripts",
            ),
        };
        Collection {
            kind,
            path,
            detail: None,
        }
    }
}

const DETECTED_APPS: Collection = Collection {
    kind: "detected app",
    path: "/deviceManagement/detectedApps",
    detail: Some("version"),
};

/// A `--query` filter: as the admin wrote it (sent to the service) and as the client reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryFilter {
    pub text: String,
    pub parsed: Filter,
}

impl QueryFilter {
    /// Parses `text`; an error names the column, before anything connects.
    pub fn parse(text: &str) -> Result<Self, RotationError> {
        let parsed = Filter::parse(text).map_err(|e| RotationError::BadFilter {
            filter: text.to_string(),
            column: e.column,
            message: e.message,
        })?;
        Ok(QueryFilter {
            text: text.to_string(),
            parsed,
        })
    }

    /// The action's platform, the filter of a bare `--query`.
    fn platform(action: Action) -> Self {
        Self::parse(&format!("operatingSystem eq '{}'", action.platform()))
            .expect("the platform filter parses")
    }
}

/// Where the devices come from.
#[derive(Debug, Clone, PartialEq)]
pub enum GraphSource {
    /// `managedDevices` or `comanagedDevices` with an OData filter (`None`: the action's platform).
    Query {
        comanaged: bool,
        filter: Option<QueryFilter>,
    },
    /// A script's devices (by id or display name), optionally only those whose detection/run
    /// state is one of `states`.
    Script {
        kind: ScriptKind,
        id: String,
        states: Vec<String>,
    },
    /// The managed devices of each user (UPN or object id).
    Users(Vec<String>),
    /// The devices where an app (by id or display name) was detected.
    DetectedApp(String),
    /// The managed devices of Entra groups' transitive members (groups by id or display name).
    Groups {
        groups: Vec<String>,
        members: GroupMembers,
    },
}

fn quote(s: &str) -> String {
    s.replace('\'', "''")
}

impl GraphSource {
    /// The first page's URL(s), relative to the API version; `id` is a script's or app's
    /// resolved id.
    fn urls(&self, action: Action, id: &str) -> Vec<String> {
        match self {
            GraphSource::Query { comanaged, .. } => {
                let coll = if *comanaged {
                    "comanagedDevices"
                } else {
                    "managedDevices"
                };
                let filter = self.filter(action);
                vec![format!(
                    "/deviceManagement/{coll}?$filter={}&$select={}&$top=1000",
                    enc(&filter.text),
                    widened_select(&filter.parsed)
                )]
            }
            GraphSource::Script { kind, .. } => {
                vec![format!(
                    "/deviceManagement/{}/{}/deviceRunStates?$expand=managedDevice",
                    kind.collection(),
                    enc(id)
                )]
            }
            GraphSource::Groups { .. } => Vec::new(),
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
            GraphSource::DetectedApp(_) => vec![format!(
                "/deviceManagement/detectedApps/{}/managedDevices?$select={}",
                enc(id),
                device_select()
            )],
        }
    }

    /// A query's filter, the action's platform when none was given.
    fn filter(&self, action: Action) -> QueryFilter {
        match self {
            GraphSource::Query {
                filter: Some(f), ..
            } => f.clone(),
            _ => QueryFilter::platform(action),
        }
    }

    /// A description for the ledger header and messages.
    pub fn describe(&self, action: Action) -> String {
        match self {
            GraphSource::Query { comanaged, filter } => {
                let f = filter.as_ref().map_or_else(
                    || format!("operatingSystem eq '{}'", quote(action.platform())),
                    |f| f.text.clone(),
                );
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
            GraphSource::Groups { groups, members } => format!(
                "graph:groups({}) members={}",
                groups.join("|"),
                members.as_str()
            ),
        }
    }

    /// Turns one listed item into a device row, or `None` when it is filtered out.
    fn row(&self, item: &Value, line: u64, filter: Option<&Filter>) -> Option<SourceDevice> {
        match self {
            GraphSource::Query { .. } => filter
                .is_none_or(|f| f.matches(item))
                .then(|| SourceDevice::from_graph(item, line)),
            GraphSource::Script { kind, states, .. } => {
                let state = item
                    .get(kind.state_field())
                    .and_then(Value::as_str)
                    .unwrap_or("");
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
        let mut report = FetchReport::default();
        let filter = matches!(self, GraphSource::Query { .. }).then(|| self.filter(action));
        if let GraphSource::Groups { groups, members } = self {
            group_source::fetch(client, groups, *members, &mut out, &mut report).await?;
        } else {
            let id = self.resolve(client, &mut report).await?;
            self.list(
                client,
                action,
                &id,
                filter.as_ref(),
                allow_partial,
                &mut out,
                &mut report,
            )
            .await?;
        }
        report.devices = out.finish()?;
        if let GraphSource::Script {
            kind: kind @ (ScriptKind::Health | ScriptKind::Management),
            ..
        } = self
            && action.platform() == "macOS"
        {
            report.notes.push(format!(
                "warning: {} scripts run PowerShell on Windows only and hold no Mac on a real tenant; macOS scripts are shell scripts (deviceShellScripts) and custom attribute scripts",
                kind.named().kind
            ));
        }
        if let Some(f) = &filter
            && report.listed != report.devices
            && report.partial.is_none()
        {
            report.notes.push(format!(
                "the service ignored part of the filter: {} listed, {} match {:?}",
                report.listed, report.devices, f.text
            ));
        }
        Ok((
            DeviceList::spooled(tmp.into_temp_path(), self.describe(action))?,
            report,
        ))
    }

    /// A script's or detected app's id, resolved from its display name when it is not an id.
    async fn resolve(
        &self,
        client: &GraphClient,
        report: &mut FetchReport,
    ) -> Result<String, RotationError> {
        let (given, collection) = match self {
            GraphSource::Script { kind, id, .. } => (id, kind.named()),
            GraphSource::DetectedApp(id) => (id, DETECTED_APPS),
            _ => return Ok(String::new()),
        };
        if named::looks_like_id(given) {
            return Ok(given.trim().to_string());
        }
        let Named { id, name } = named::resolve_name(client, collection, given).await?;
        report
            .notes
            .push(format!("{} {name:?} is {id}", collection.kind));
        Ok(id)
    }

    #[allow(clippy::too_many_arguments)]
    async fn list(
        &self,
        client: &GraphClient,
        action: Action,
        id: &str,
        filter: Option<&QueryFilter>,
        allow_partial: bool,
        out: &mut DeviceCsvWriter<impl std::io::Write>,
        report: &mut FetchReport,
    ) -> Result<(), RotationError> {
        let mut seen = std::collections::HashSet::new();
        let mut urls = self.urls(action, id);
        let mut fell_back = false;
        let mut u = 0;
        'urls: while u < urls.len() {
            let url = urls[u].clone();
            u += 1;
            let mut pages = std::pin::pin!(client.pages(url.clone()));
            let mut first = true;
            while let Some(page) = pages.next().await {
                match page {
                    Ok(items) => {
                        first = false;
                        for item in &items {
                            report.listed += 1;
                            if let Some(d) =
                                self.row(item, seen.len() as u64 + 2, filter.map(|f| &f.parsed))
                                && seen.insert(d.raw_id.to_ascii_lowercase())
                            {
                                out.write(d)?;
                            }
                        }
                    }
                    // The service refused a filter the client can check itself: list without
                    // it, and let the client's check do all the narrowing.
                    Err(graph_client::GraphClientError::Http { status: 400, .. })
                        if first && !fell_back && filter.is_some() =>
                    {
                        let f = filter.expect("a query");
                        report.notes.push(format!(
                            "the service refused the filter {:?}; every device was listed and the filter applied here",
                            f.text
                        ));
                        fell_back = true;
                        urls.insert(u, without_filter(&url));
                        continue 'urls;
                    }
                    Err(e) if e.is_auth() => return Err(RotationError::Graph(e)),
                    Err(e) if allow_partial => {
                        tracing::warn!(
                            "listing {url} failed part-way ({e}); planning the {} device(s) read so far",
                            seen.len()
                        );
                        report.partial = Some(e.to_string());
                        break 'urls;
                    }
                    Err(e) => {
                        return Err(RotationError::SourceCut {
                            read: seen.len(),
                            error: e.to_string(),
                        });
                    }
                }
            }
        }
        Ok(())
    }
}

/// `url` without its `$filter` parameter.
fn without_filter(url: &str) -> String {
    let Some((path, query)) = url.split_once('?') else {
        return url.to_string();
    };
    let rest: Vec<&str> = query
        .split('&')
        .filter(|p| !p.starts_with("$filter="))
        .collect();
    format!("{path}?{}", rest.join("&"))
}

/// The device columns and every property `filter` reads, so the client can check all of it.
fn widened_select(filter: &Filter) -> String {
    let mut select = device_select();
    for p in filter.properties() {
        if !select.split(',').any(|s| s.eq_ignore_ascii_case(p)) {
            select.push(',');
            select.push_str(p);
        }
    }
    select
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
        let url = &q.urls(Action::FileVault, "")[0];
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
            w.urls(Action::BitLocker, "")[0]
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
        let d = s.row(&item, 2, None).unwrap();
        assert_eq!(
            (d.raw_id.as_str(), d.os.as_deref(), d.encrypted),
            ("d1", Some("macOS"), Some(true))
        );
        assert!(
            s.row(
                &serde_json::json!({"detectionState": "success", "managedDevice": {"id": "d2"}}),
                3,
                None
            )
            .is_none()
        );
    }
}
