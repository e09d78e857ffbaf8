//! `--group`: the managed devices of Entra groups' transitive members.
//!
//! A device member is an Entra device object: its `deviceId` is a managed device's
//! `azureADDeviceId`, not its Intune id, several managed devices may share it, and the all-zero
//! id means "none" (docs/graph-facts.md §7). So members are read first (two cast listings per
//! group), then the tenant's managed devices are listed **once** and joined here, by
//! `azureADDeviceId` for device members and by `userId` for user members: never a GET per device.

use crate::device_list::{DeviceCsvWriter, SourceDevice, device_select};
use crate::fetch_report::FetchReport;
use crate::named::{self, Collection, Named};
use crate::url::enc;
use crate::{GraphClientError, RotationError};
use futures::StreamExt;
use graph_client::{Consistency, GraphClient};
use serde_json::Value;
use std::collections::{HashMap, HashSet};

/// Which members of a group bring their devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GroupMembers {
    /// Entra device objects, joined by `azureADDeviceId`.
    Devices,
    /// Users, whose managed devices (by `userId`) are included.
    Users,
    #[default]
    Both,
}

impl GroupMembers {
    pub fn as_str(self) -> &'static str {
        match self {
            GroupMembers::Devices => "devices",
            GroupMembers::Users => "users",
            GroupMembers::Both => "both",
        }
    }

    fn devices(self) -> bool {
        self != GroupMembers::Users
    }

    fn users(self) -> bool {
        self != GroupMembers::Devices
    }
}

const GROUPS: Collection = Collection {
    kind: "group",
    path: "/groups",
    detail: Some("groupTypes"),
};

use crate::device_id::NO_ENTRA_DEVICE as ZERO_ID;

/// Members of every group, by kind.
#[derive(Debug, Default)]
struct Members {
    /// Entra device ids (lower case), from device members.
    device_ids: HashSet<String>,
    /// User object ids (lower case), from user members.
    user_ids: HashSet<String>,
    device_members: usize,
    user_members: usize,
    /// Device members whose Entra id is all zeros.
    zero_ids: usize,
}

pub(crate) async fn fetch(
    client: &GraphClient,
    groups: &[String],
    kinds: GroupMembers,
    out: &mut DeviceCsvWriter<impl std::io::Write>,
    report: &mut FetchReport,
) -> Result<(), RotationError> {
    let mut members = Members::default();
    for given in groups {
        let group = resolve(client, given).await?;
        let before = (members.device_members, members.user_members);
        if kinds.devices() {
            read_device_members(client, &group, &mut members).await?;
        }
        if kinds.users() {
            read_user_members(client, &group, &mut members).await?;
        }
        report.notes.push(format!(
            "group {:?} ({}): {} device member(s), {} user member(s)",
            group.name,
            group.id,
            members.device_members - before.0,
            members.user_members - before.1
        ));
    }
    if members.zero_ids > 0 {
        report.notes.push(format!(
            "{} device member(s) have the all-zero Entra device id and match no managed device",
            members.zero_ids
        ));
    }
    join(client, &members, out, report).await
}

/// A group given by id (checked to exist) or by display name (exactly one match).
async fn resolve(client: &GraphClient, given: &str) -> Result<Named, RotationError> {
    let given = given.trim();
    if crate::parse_id(given).is_none() {
        return named::resolve_name(client, GROUPS, given).await;
    }
    let url = format!("/groups/{}?$select=id,displayName", enc(given));
    match client.get_json_retrying(&url).await {
        Ok(v) => Ok(Named {
            id: v
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or(given)
                .to_string(),
            name: v
                .get("displayName")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        }),
        Err(GraphClientError::Http { status: 404, .. }) => Err(RotationError::BadName {
            kind: "group",
            name: given.to_string(),
            candidates: Vec::new(),
            several: false,
        }),
        Err(e) => Err(RotationError::listing("groups", e)),
    }
}

async fn read_device_members(
    client: &GraphClient,
    group: &Named,
    members: &mut Members,
) -> Result<(), RotationError> {
    let url = format!(
        "/groups/{}/transitiveMembers/microsoft.graph.device?$select=id,deviceId,displayName&$top=999&$count=true",
        enc(&group.id)
    );
    let mut without_device_id = 0usize;
    // A cast is an advanced query: Entra refuses it without `$count` and `ConsistencyLevel`.
    let mut pages = std::pin::pin!(client.pages_as(url, Consistency::Eventual));
    while let Some(page) = pages.next().await {
        for item in page.map_err(|e| RotationError::listing("group members", e))? {
            members.device_members += 1;
            match item.get("deviceId").and_then(Value::as_str) {
                Some(id) if id.eq_ignore_ascii_case(ZERO_ID) => members.zero_ids += 1,
                Some(id) if !id.trim().is_empty() => {
                    members.device_ids.insert(id.trim().to_ascii_lowercase());
                }
                _ => without_device_id += 1,
            }
        }
    }
    if without_device_id > 0 {
        return Err(RotationError::MissingPermission {
            permissions: vec![crate::Permission::DeviceRead],
            what: format!(
                "{without_device_id} device member(s) of group {:?} came back without their deviceId, which is what joins them to managed devices (members are read with {}, their device ids with {})",
                group.name,
                crate::Permission::GroupMemberRead,
                crate::Permission::DeviceRead
            ),
        });
    }
    Ok(())
}

async fn read_user_members(
    client: &GraphClient,
    group: &Named,
    members: &mut Members,
) -> Result<(), RotationError> {
    let url = format!(
        "/groups/{}/transitiveMembers/microsoft.graph.user?$select=id,userPrincipalName&$top=999&$count=true",
        enc(&group.id)
    );
    let mut pages = std::pin::pin!(client.pages_as(url, Consistency::Eventual));
    while let Some(page) = pages.next().await {
        for item in page.map_err(|e| RotationError::listing("group members", e))? {
            if let Some(id) = item.get("id").and_then(Value::as_str) {
                members.user_members += 1;
                members.user_ids.insert(id.to_ascii_lowercase());
            }
        }
    }
    Ok(())
}

/// One listing of the tenant's managed devices, joined to the members.
async fn join(
    client: &GraphClient,
    members: &Members,
    out: &mut DeviceCsvWriter<impl std::io::Write>,
    report: &mut FetchReport,
) -> Result<(), RotationError> {
    let url = format!(
        "/deviceManagement/managedDevices?$select={},userId&$top=1000",
        device_select()
    );
    let (mut from_devices, mut from_users) = (0usize, 0usize);
    let mut per_entra_id: HashMap<String, usize> = HashMap::new();
    let mut seen = HashSet::new();
    let mut pages = std::pin::pin!(client.pages(url));
    while let Some(page) = pages.next().await {
        for item in page.map_err(|e| RotationError::listing("managed devices", e))? {
            report.listed += 1;
            let lower = |k: &str| {
                item.get(k)
                    .and_then(Value::as_str)
                    .map(|s| s.trim().to_ascii_lowercase())
            };
            let entra = lower("azureADDeviceId").filter(|id| id != ZERO_ID);
            let by_device = entra
                .as_ref()
                .is_some_and(|id| members.device_ids.contains(id));
            let by_user = lower("userId").is_some_and(|id| members.user_ids.contains(&id));
            if !(by_device || by_user) {
                continue;
            }
            let d = SourceDevice::from_graph(&item, seen.len() as u64 + 2);
            if !seen.insert(d.raw_id.to_ascii_lowercase()) {
                continue;
            }
            if by_device {
                from_devices += 1;
                *per_entra_id
                    .entry(entra.expect("matched by it"))
                    .or_default() += 1;
            } else {
                from_users += 1;
            }
            out.write(d)?;
        }
    }
    report.notes.push(format!(
        "{} managed device(s) from device members, {} more from user members ({} listed in the tenant)",
        from_devices, from_users, report.listed
    ));
    let mut shared: Vec<(&String, &usize)> = per_entra_id.iter().filter(|(_, n)| **n > 1).collect();
    shared.sort();
    if !shared.is_empty() {
        report.notes.push(format!(
            "{} Entra device id(s) are shared by several managed devices, all included: {}",
            shared.len(),
            shared
                .iter()
                .map(|(id, n)| format!("{id} ({n})"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let unmatched = members
        .device_ids
        .iter()
        .filter(|id| !per_entra_id.contains_key(*id))
        .count();
    if unmatched > 0 {
        report.notes.push(format!(
            "{unmatched} device member(s) have no Intune managed device (Entra-registered only, or not enrolled)"
        ));
    }
    Ok(())
}
