//! Reading the audit logs (graph-facts §12): each page through the tenant's audit gate, paging
//! followed, Retry-After honoured, each event read into who read which device's secret when.

use super::AuditGate;
use crate::{Permission, RotationError};
use graph_client::{GraphClient, GraphClientError};
use serde_json::Value;
use std::time::Duration;
use uuid::Uuid;

/// The two logs a view can land in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuditLogKind {
    /// Entra's directory audit log (`/auditLogs/directoryAudits`).
    Directory,
    /// Intune's audit events (`/deviceManagement/auditEvents`).
    Intune,
}

impl AuditLogKind {
    /// What the plan calls the log.
    pub fn name(self) -> &'static str {
        match self {
            AuditLogKind::Directory => "Entra's directory audit log",
            AuditLogKind::Intune => "Intune's audit log",
        }
    }

    /// The permissions reading the log takes, all of them.
    pub fn permissions(self) -> &'static [Permission] {
        match self {
            AuditLogKind::Directory => &[Permission::AuditLogRead, Permission::DirectoryRead],
            AuditLogKind::Intune => &[Permission::AppsRead],
        }
    }

    fn path(self) -> &'static str {
        match self {
            AuditLogKind::Directory => "/auditLogs/directoryAudits",
            AuditLogKind::Intune => "/deviceManagement/auditEvents",
        }
    }
}

/// Where an event names its device.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    /// The Intune managed device id.
    Intune(Uuid),
    /// The Entra deviceId (a BitLocker key's "Backed up from device").
    EntraDevice(String),
    /// An Entra id that is either the device object's id or its deviceId: a Windows LAPS
    /// recovery's target, which the documentation leaves open.
    EntraEither(String),
}

/// Who read a secret.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Viewer {
    User(String),
    App(String),
}

impl Viewer {
    /// The person where the event names one, else the app (its id in lower case).
    fn of(user: Option<&str>, app: Option<&str>) -> Option<Viewer> {
        user.map(|u| Viewer::User(u.to_string()))
            .or_else(|| app.map(|a| Viewer::App(a.to_ascii_lowercase())))
    }
}

impl std::fmt::Display for Viewer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Viewer::User(u) => write!(f, "user {u}"),
            Viewer::App(a) => write!(f, "app {a}"),
        }
    }
}

/// One event that read a device's secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewEvent {
    pub id: String,
    pub activity: String,
    pub at: String,
    pub at_ms: u64,
    pub by: Viewer,
    pub target: Target,
}

/// What a log answered that the run cannot read as a view.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Unreadable {
    /// Events of a view activity whose device or time could not be read.
    pub events: usize,
}

/// The tries a page gets through 429s and transient failures.
const TRIES: u32 = 6;

/// Every event of `log` since `since` (RFC 3339) whose activity is one of `activities`.
pub async fn read_log(
    client: &GraphClient,
    gate: &AuditGate,
    log: AuditLogKind,
    activities: &[String],
    since: &str,
) -> Result<(Vec<ViewEvent>, Unreadable), RotationError> {
    let mut events = Vec::new();
    let mut unreadable = Unreadable::default();
    for first in first_pages(log, activities, since) {
        let mut next = Some(first);
        while let Some(url) = next {
            let page = page(client, gate, log, &url).await?;
            next = page
                .get("@odata.nextLink")
                .and_then(Value::as_str)
                .map(str::to_string);
            for v in page
                .get("value")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                match event(log, v, activities) {
                    Some(Ok(e)) => events.push(e),
                    Some(Err(())) => unreadable.events += 1,
                    None => {}
                }
            }
        }
    }
    Ok((events, unreadable))
}

/// The first page of each read: the directory log filtered by activity (its documented filter,
/// one name at a time, compared with case); Intune's by category and time, its names matched here.
fn first_pages(log: AuditLogKind, activities: &[String], since: &str) -> Vec<String> {
    let enc = crate::url::enc;
    match log {
        AuditLogKind::Directory => activities
            .iter()
            .map(|a| {
                let filter = format!(
                    "activityDisplayName eq '{}' and activityDateTime ge {since}",
                    a.replace('\'', "''")
                );
                format!("{}?$filter={}", log.path(), enc(&filter))
            })
            .collect(),
        AuditLogKind::Intune => {
            let filter = format!("category eq 'Device' and activityDateTime ge {since}");
            vec![format!("{}?$filter={}", log.path(), enc(&filter))]
        }
    }
}

/// One page, through the gate, again after a 429 or a transient failure.
async fn page(
    client: &GraphClient,
    gate: &AuditGate,
    log: AuditLogKind,
    url: &str,
) -> Result<Value, RotationError> {
    let mut tries = 0;
    loop {
        gate.acquire().await;
        tries += 1;
        let sent = std::time::Instant::now();
        let answer = client.get_json(url).await;
        gate.observe(sent.elapsed());
        match answer {
            Ok(v) => return Ok(v),
            Err(e @ GraphClientError::Http { status: 403, .. }) => {
                return Err(RotationError::MissingPermission {
                    permissions: log.permissions().to_vec(),
                    what: format!(
                        "reading {} to find the devices whose secret was read ({e})",
                        log.name()
                    ),
                });
            }
            Err(e) if e.is_transient() && tries < TRIES => {
                let wait = e
                    .retry_after()
                    .unwrap_or(Duration::from_millis(500 * u64::from(tries)));
                tracing::debug!(?wait, "the audit log asked to wait: {e}");
                gate.pause(wait);
            }
            Err(e) => return Err(RotationError::listing(log.name(), e)),
        }
    }
}

/// An event of a view activity as a view; `None` for another activity, `Err` where its device or
/// time cannot be read.
fn event(log: AuditLogKind, v: &Value, activities: &[String]) -> Option<Result<ViewEvent, ()>> {
    let text = |p: &str| v.pointer(p).and_then(Value::as_str);
    let activity = match log {
        AuditLogKind::Directory => text("/activityDisplayName")?,
        AuditLogKind::Intune => text("/activityType").or(text("/activity"))?,
    };
    // The directory log's names are compared with case, as its filter compares them; Intune's
    // come from the tenant's own list of names.
    let ours = match log {
        AuditLogKind::Directory => activities.iter().any(|a| a == activity),
        AuditLogKind::Intune => activities.iter().any(|a| a.eq_ignore_ascii_case(activity)),
    };
    if !ours {
        return None;
    }
    Some(view(log, v, activity).ok_or(()))
}

fn view(log: AuditLogKind, v: &Value, activity: &str) -> Option<ViewEvent> {
    let text = |p: &str| {
        v.pointer(p)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
    };
    let at = text("/activityDateTime")?;
    let at_ms = crate::ledger::parse_ms(at)?;
    let (target, by) = match log {
        AuditLogKind::Directory => {
            let by = Viewer::of(
                text("/initiatedBy/user/userPrincipalName"),
                text("/initiatedBy/app/appId"),
            )?;
            (directory_target(v, activity)?, by)
        }
        AuditLogKind::Intune => {
            let by = Viewer::of(
                text("/actor/userPrincipalName"),
                text("/actor/applicationId"),
            )?;
            let device = v
                .get("resources")?
                .as_array()?
                .iter()
                .filter(|r| {
                    r.get("type")
                        .and_then(Value::as_str)
                        .is_none_or(|t| t.eq_ignore_ascii_case("ManagedDevice"))
                })
                .find_map(|r| crate::parse_id(r.get("resourceId")?.as_str()?))?;
            (Target::Intune(device), by)
        }
    };
    Some(ViewEvent {
        id: text("/id").unwrap_or_default().to_string(),
        activity: activity.to_string(),
        at: at.to_string(),
        at_ms,
        by,
        target,
    })
}

/// A BitLocker read names the device in its details' words; a LAPS recovery in its target.
fn directory_target(v: &Value, activity: &str) -> Option<Target> {
    if activity == super::READ_BITLOCKER_KEY {
        let info = v
            .get("additionalDetails")?
            .as_array()?
            .iter()
            .find(|d| d.get("key").and_then(Value::as_str) == Some("AdditionalInfo"))?
            .get("value")?
            .as_str()?;
        let (_, rest) = info.split_once("Backed up from device: '")?;
        let (id, _) = rest.split_once('\'')?;
        return crate::parse_id(id).map(|u| Target::EntraDevice(u.to_string()));
    }
    let target = v.get("targetResources")?.as_array()?.iter().find(|t| {
        t.get("type")
            .and_then(Value::as_str)
            .is_none_or(|k| k.eq_ignore_ascii_case("Device"))
    })?;
    let id = crate::parse_id(target.get("id")?.as_str()?)?;
    Some(Target::EntraEither(id.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn bitlocker_read(device: &str, by: Value) -> Value {
        json!({
            "id": "Directory_1", "activityDisplayName": "Read BitLocker key",
            "activityDateTime": "2026-12-01T10:00:00.123Z", "initiatedBy": by,
            "targetResources": [{"displayName": "b761c7ba-35ee-4a80-ac42-7641c113e000", "type": "Other"}],
            "additionalDetails": [{"key": "AdditionalInfo", "value": format!("Successfully retrieved BitLocker recovery key associated with key ID: 'b761c7ba-35ee-4a80-ac42-7641c113e000'. Backed up from device: '{device}'")}],
        })
    }

    const ENTRA: &str = "4729a8f4-dc8d-45cf-9b88-7ff6a832a366";

    #[test]
    fn a_bitlocker_read_names_its_device_in_the_details_words() {
        let v = bitlocker_read(
            ENTRA,
            json!({"user": {"userPrincipalName": "op@contoso.example"}, "app": null}),
        );
        let names = vec![super::super::READ_BITLOCKER_KEY.to_string()];
        let e = event(AuditLogKind::Directory, &v, &names).unwrap().unwrap();
        assert_eq!(e.target, Target::EntraDevice(ENTRA.into()));
        assert_eq!(e.by, Viewer::User("op@contoso.example".into()));
    }

    #[test]
    fn an_app_read_is_by_the_app() {
        let v = bitlocker_read(ENTRA, json!({"user": null, "app": {"appId": "ABC"}}));
        let names = vec![super::super::READ_BITLOCKER_KEY.to_string()];
        let e = event(AuditLogKind::Directory, &v, &names).unwrap().unwrap();
        assert_eq!(e.by, Viewer::App("abc".into()));
    }

    #[test]
    fn the_directory_logs_names_are_compared_with_case() {
        let v = bitlocker_read(ENTRA, json!({"user": {"userPrincipalName": "op"}}));
        let names = vec!["read bitlocker key".to_string()];
        assert_eq!(event(AuditLogKind::Directory, &v, &names), None);
    }

    #[test]
    fn a_view_without_a_device_is_unreadable_not_dropped() {
        let v = bitlocker_read("not-a-guid", json!({"user": {"userPrincipalName": "op"}}));
        let names = vec![super::super::READ_BITLOCKER_KEY.to_string()];
        assert_eq!(event(AuditLogKind::Directory, &v, &names), Some(Err(())));
    }

    #[test]
    fn an_intune_event_names_the_managed_device() {
        let v = json!({
            "id": "e1", "activityType": "getFileVaultKey ManagedDevice",
            "activityDateTime": "2026-12-01T10:00:00Z",
            "actor": {"userPrincipalName": "op@contoso.example", "applicationId": null},
            "resources": [{"type": "ManagedDevice", "resourceId": "9f87a4d0-460b-4a09-9557-ee460293dffa"}],
        });
        let names = vec!["getfilevaultkey managedDevice".to_string()];
        let e = event(AuditLogKind::Intune, &v, &names).unwrap().unwrap();
        assert_eq!(
            e.target,
            Target::Intune("9f87a4d0-460b-4a09-9557-ee460293dffa".parse().unwrap())
        );
    }
}
