//! Devices whose secret someone read after its last rotation, from the audit logs (graph-facts
//! §12): BitLocker key reads and Windows LAPS recoveries in Entra's directory log, FileVault and
//! Recovery Lock views in Intune's. A run over them is stateless: a device read once is rotated
//! once, since the rotation that answers the read is newer than the read the next run sees.

mod audit_gate;
mod audit_log;
mod retention;
mod view_activities;

pub use audit_gate::{ACROSS_TENANTS, AuditGate, PER_TENANT};
pub use audit_log::{AuditLogKind, Target, ViewEvent, Viewer};
pub use retention::Retention;
pub use retention::directory as directory_retention;
pub(crate) use view_activities::{activity_types, is_view as is_view_activity};

use crate::device_list::DeviceCsvWriter;
use crate::reads::{Read, read_all};
use crate::{Action, DeviceList, RotationError};
use graph_batch::Request;
use graph_client::GraphClient;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime};
use uuid::Uuid;

/// The directory log's BitLocker key read (documented).
pub const READ_BITLOCKER_KEY: &str = "Read BitLocker key";
/// The directory log's Windows LAPS password recovery (documented).
pub const RECOVER_LAPS_PASSWORD: &str = "Recover device local administrator password";

/// Reads of one device by one reader this close together are one read logged twice (a known
/// issue of the BitLocker key read).
const DUPLICATE_WITHIN_MS: u64 = 60_000;

/// A view-driven run, as asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewedSpec {
    /// How far back reads are looked for.
    pub within_secs: u64,
    /// Further audit activities that record a view, beyond those the tool knows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub activities: Vec<String>,
}

/// The newest read of a device's secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    pub at: String,
    pub at_ms: u64,
    pub by: Viewer,
}

/// What the plan says it read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewsRead {
    pub log: AuditLogKind,
    pub activities: Vec<String>,
    /// Whether the activities' names are documented, or inferred from the tenant's list.
    pub documented: bool,
    pub since: String,
    pub retention: Retention,
    pub events: usize,
    /// The oldest and newest event read.
    pub first: Option<String>,
    pub last: Option<String>,
    pub duplicates: usize,
    /// Reads by this tool's own app, which are never a person's view.
    pub own: usize,
    /// Events of a view activity whose device or time could not be read.
    pub unreadable: usize,
    /// Devices whose secret was read.
    pub devices: usize,
    /// Of those, devices the source does not hold (not in Intune, or outside the selection).
    pub not_in_source: usize,
    /// Notes on how names and licences were read.
    pub notes: Vec<String>,
}

/// The reads found, newest per device, before they are matched to the source's devices.
#[derive(Debug)]
pub struct Audit {
    views: BTreeMap<Target, View>,
    pub read: ViewsRead,
}

/// The log the action's views land in, and the activity names known to record one.
fn log_of(action: Action) -> AuditLogKind {
    match action {
        Action::BitLocker | Action::Laps => AuditLogKind::Directory,
        Action::FileVault | Action::RecoveryLock => AuditLogKind::Intune,
    }
}

/// The permissions reading `action`'s views takes, which a delegated sign-in asks for.
pub fn scopes(action: Action) -> &'static [crate::Permission] {
    log_of(action).permissions()
}

/// Reads the views of `action`'s secret within `spec`'s window before `now`; `own_app` is the
/// app this tool signs in as, whose reads are dropped.
pub async fn read_views(
    client: &GraphClient,
    action: Action,
    spec: &ViewedSpec,
    own_app: Option<&str>,
    now: SystemTime,
) -> Result<Audit, RotationError> {
    let log = log_of(action);
    check_token(client, log).await?;
    let gate = AuditGate::new(own_app.unwrap_or_default());
    let mut notes = Vec::new();
    let (activities, documented) = match action {
        Action::BitLocker => (with(READ_BITLOCKER_KEY, &spec.activities), true),
        Action::Laps => (with(RECOVER_LAPS_PASSWORD, &spec.activities), true),
        Action::FileVault | Action::RecoveryLock => {
            let found = view_activities::intune(client, &gate, action, &spec.activities).await?;
            notes.extend(found.notes);
            (found.names, false)
        }
    };
    let retention = match log {
        AuditLogKind::Directory => retention::directory(client).await,
        AuditLogKind::Intune => Retention::INTUNE,
    };
    let within = Duration::from_secs(spec.within_secs);
    if within > retention.kept() {
        return Err(RotationError::ViewsBeyondRetention {
            asked: within,
            log: log.name(),
            kept_days: retention.days,
            assumed: !retention.known,
        });
    }
    let since = humantime::format_rfc3339_seconds(now - within).to_string();
    let (events, unreadable) = audit_log::read_log(client, &gate, log, &activities, &since).await?;
    let mut read = ViewsRead {
        log,
        activities,
        documented,
        since,
        retention,
        events: events.len(),
        first: events.iter().min_by_key(|e| e.at_ms).map(|e| e.at.clone()),
        last: events.iter().max_by_key(|e| e.at_ms).map(|e| e.at.clone()),
        duplicates: 0,
        own: 0,
        unreadable: unreadable.events,
        devices: 0,
        not_in_source: 0,
        notes,
    };
    let views = newest_views(events, own_app, &mut read);
    read.devices = views.len();
    Ok(Audit { views, read })
}

fn with(known: &str, extra: &[String]) -> Vec<String> {
    let mut v = vec![known.to_string()];
    v.extend(extra.iter().filter(|a| a.as_str() != known).cloned());
    v
}

/// A token that plainly lacks the log's permissions is refused before any read.
async fn check_token(client: &GraphClient, log: AuditLogKind) -> Result<(), RotationError> {
    use graph_client::ExposeSecret;
    let token = client.tokens().token().await?;
    let Some(claims) = graph_client::TokenClaims::decode(token.expose_secret()) else {
        return Ok(());
    };
    let missing = log.permissions().iter().find(|p| !claims.has(p.name()));
    match missing {
        Some(&p) => Err(RotationError::MissingPermission {
            permissions: vec![p],
            what: format!(
                "reading {} to find the devices whose secret was read (token has: {})",
                log.name(),
                claims.permissions().join(", ")
            ),
        }),
        None => Ok(()),
    }
}

/// The newest read of each device, with our own reads and duplicates dropped and counted.
fn newest_views(
    mut events: Vec<ViewEvent>,
    own_app: Option<&str>,
    read: &mut ViewsRead,
) -> BTreeMap<Target, View> {
    let own = |by: &Viewer| matches!((by, own_app), (Viewer::App(a), Some(o)) if a.eq_ignore_ascii_case(o));
    let before = events.len();
    events.retain(|e| !own(&e.by));
    read.own = before - events.len();
    // The same event id paged twice, then reads by one reader of one device a moment apart.
    events.sort_by(|a, b| {
        (&a.target, &a.by, a.at_ms, &a.id).cmp(&(&b.target, &b.by, b.at_ms, &b.id))
    });
    events.dedup_by(|later, kept| !later.id.is_empty() && later.id == kept.id);
    let mut views: BTreeMap<Target, View> = BTreeMap::new();
    let mut last: Option<(Target, Viewer, u64)> = None;
    for e in events {
        let repeat = last.as_ref().is_some_and(|(t, by, at)| {
            *t == e.target && *by == e.by && e.at_ms.saturating_sub(*at) <= DUPLICATE_WITHIN_MS
        });
        if repeat {
            read.duplicates += 1;
            continue;
        }
        last = Some((e.target.clone(), e.by.clone(), e.at_ms));
        let view = View {
            at: e.at,
            at_ms: e.at_ms,
            by: e.by,
        };
        match views.get(&e.target) {
            Some(v) if v.at_ms >= view.at_ms => {}
            _ => {
                views.insert(e.target, view);
            }
        }
    }
    views
}

impl Audit {
    /// The source's devices whose secret was read, as a list of their own, and each one's
    /// newest read. A LAPS recovery's target that matches no device's Entra id is looked up as a
    /// device object's id.
    pub async fn narrow(
        mut self,
        client: &GraphClient,
        list: DeviceList,
    ) -> Result<(DeviceList, HashMap<Uuid, View>, ViewsRead), RotationError> {
        let mut by_entra: HashMap<String, Vec<Uuid>> = HashMap::new();
        let mut intune: std::collections::HashSet<Uuid> = Default::default();
        list.for_each(|d| {
            if let Some(id) = crate::parse_id(&d.raw_id) {
                intune.insert(id);
                if let Some(e) = d.entra_id.as_deref().and_then(crate::parse_id) {
                    by_entra.entry(e.to_string()).or_default().push(id);
                }
            }
            Ok(())
        })?;
        let unknown: Vec<String> = self
            .views
            .keys()
            .filter_map(|t| match t {
                Target::EntraEither(id) if !by_entra.contains_key(id) => Some(id.clone()),
                _ => None,
            })
            .collect();
        let resolved = device_ids_of_objects(client, unknown).await;
        let mut wanted: HashMap<Uuid, View> = HashMap::new();
        for (target, view) in std::mem::take(&mut self.views) {
            let devices: Vec<Uuid> = match &target {
                Target::Intune(id) => intune.contains(id).then_some(*id).into_iter().collect(),
                Target::EntraDevice(e) => by_entra.get(e).cloned().unwrap_or_default(),
                Target::EntraEither(e) => by_entra
                    .get(e)
                    .or_else(|| resolved.get(e).and_then(|d| by_entra.get(d)))
                    .cloned()
                    .unwrap_or_default(),
            };
            if devices.is_empty() {
                self.read.not_in_source += 1;
            }
            for d in devices {
                match wanted.get(&d) {
                    Some(v) if v.at_ms >= view.at_ms => {}
                    _ => {
                        wanted.insert(d, view.clone());
                    }
                }
            }
        }
        let narrowed = narrowed_list(&list, &wanted, &self.read.since)?;
        Ok((narrowed, wanted, self.read))
    }
}

/// Entra device objects' deviceIds, by object id; ids that are no device object are left out.
async fn device_ids_of_objects(client: &GraphClient, ids: Vec<String>) -> HashMap<String, String> {
    if ids.is_empty() {
        return HashMap::new();
    }
    let gate = crate::reads::plan_reads_gate(None);
    let requests: Vec<(usize, Request)> = ids
        .iter()
        .enumerate()
        .map(|(n, id)| {
            (
                n,
                Request::get(format!("/devices/{id}?$select=id,deviceId")),
            )
        })
        .collect();
    read_all(client, &gate, requests)
        .await
        .into_iter()
        .filter_map(|(n, read)| match read {
            Read::Body(v) => {
                let device = v.get("deviceId")?.as_str().and_then(crate::parse_id)?;
                Some((ids[n].clone(), device.to_string()))
            }
            _ => None,
        })
        .collect()
}

/// The rows of `list` whose device was read, spooled as a list of their own.
fn narrowed_list(
    list: &DeviceList,
    wanted: &HashMap<Uuid, View>,
    since: &str,
) -> Result<DeviceList, RotationError> {
    let tmp = tempfile::NamedTempFile::new().map_err(|e| RotationError::io("a spool file", e))?;
    let mut w = DeviceCsvWriter::new(std::io::BufWriter::new(tmp.as_file()))?;
    list.for_each(|d| {
        if crate::parse_id(&d.raw_id).is_some_and(|id| wanted.contains_key(&id)) {
            w.write(d)?;
        }
        Ok(())
    })?;
    w.finish()?;
    DeviceList::spooled(
        tmp.into_temp_path(),
        format!("{} (secrets read since {since})", list.display()),
    )
}

impl ViewsRead {
    /// The plan's account of what was read, in the order an admin checks it.
    pub fn lines(&self, rotated_since: usize) -> Vec<String> {
        let range = match (&self.first, &self.last) {
            (Some(a), Some(b)) => format!(", from {a} to {b}"),
            _ => String::new(),
        };
        let names = if self.documented {
            "documented"
        } else {
            "inferred from the tenant's activity types, not documented"
        };
        let mut lines = vec![
            format!(
                "views: {} event(s) of {} read since {}{range} ({}: {names})",
                self.events,
                self.log.name(),
                self.since,
                self.activities.join(", ")
            ),
            format!(
                "views: the log keeps {} days{}; an event shows about 2 min (up to 5 min) after the read, so a read in the last minutes is found by the next run",
                self.retention.days,
                if self.retention.known {
                    ""
                } else {
                    " (assumed: the licence could not be read)"
                }
            ),
            format!(
                "views: {} duplicate(s) and {} read(s) by this app dropped; {} unreadable; {} device(s) whose secret was read, {} already rotated since, {} not in the source",
                self.duplicates,
                self.own,
                self.unreadable,
                self.devices,
                rotated_since,
                self.not_in_source
            ),
        ];
        lines.extend(self.notes.iter().cloned());
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read() -> ViewsRead {
        ViewsRead {
            log: AuditLogKind::Directory,
            activities: vec![READ_BITLOCKER_KEY.into()],
            documented: true,
            since: "2026-12-01T00:00:00Z".into(),
            retention: Retention::INTUNE,
            events: 0,
            first: None,
            last: None,
            duplicates: 0,
            own: 0,
            unreadable: 0,
            devices: 0,
            not_in_source: 0,
            notes: Vec::new(),
        }
    }

    fn event(id: &str, device: &str, by: Viewer, at_ms: u64) -> ViewEvent {
        ViewEvent {
            id: id.into(),
            activity: READ_BITLOCKER_KEY.into(),
            at: format!("t{at_ms}"),
            at_ms,
            by,
            target: Target::EntraDevice(device.into()),
        }
    }

    fn user(u: &str) -> Viewer {
        Viewer::User(u.into())
    }

    #[test]
    fn a_read_logged_twice_is_one_read() {
        let mut r = read();
        let events = vec![
            event("1", "d", user("op"), 1_000),
            event("2", "d", user("op"), 1_800),
        ];
        let views = newest_views(events, None, &mut r);
        assert_eq!((views.len(), r.duplicates), (1, 1));
    }

    #[test]
    fn reads_by_this_app_are_dropped_and_counted() {
        let mut r = read();
        let events = vec![event("1", "d", Viewer::App("ours".into()), 1_000)];
        let views = newest_views(events, Some("OURS"), &mut r);
        assert!(views.is_empty());
        assert_eq!(r.own, 1);
    }

    #[test]
    fn the_newest_read_of_a_device_is_kept() {
        let mut r = read();
        let events = vec![
            event("1", "d", user("a"), 1_000),
            event("2", "d", user("b"), 500_000),
            event("3", "d", user("a"), 900_000),
        ];
        let views = newest_views(events, None, &mut r);
        assert_eq!(views[&Target::EntraDevice("d".into())].at_ms, 900_000);
        assert_eq!(r.duplicates, 0, "reads minutes apart are reads");
    }

    #[test]
    fn the_same_event_paged_twice_is_counted_once() {
        let mut r = read();
        let events = vec![
            event("1", "d", user("a"), 1_000),
            event("1", "d", user("a"), 1_000),
        ];
        newest_views(events, None, &mut r);
        assert_eq!(r.duplicates, 0);
    }
}
