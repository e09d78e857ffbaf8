//! Graph's OData query options as the simulator checks them: which `$` options each collection
//! takes, `$select` against the entity's properties, and `$orderby` where the service sorts. Graph
//! answers 400 for what it does not take; a client that sent one and read on would be misled by a
//! simulator that ignored it (docs/graph-facts.md §7, docs/graph-sim.md).

use crate::wire::{SimRequest, SimResponse, graph_error};
use std::cmp::Ordering;

/// Every system query option OData defines; other `$` names are unknown.
const SYSTEM_OPTIONS: &[&str] = &[
    "$select",
    "$filter",
    "$top",
    "$skip",
    "$skiptoken",
    "$count",
    "$orderby",
    "$expand",
    "$search",
    "$format",
    "$compute",
    "$apply",
    "$levels",
    "$deltatoken",
];

/// A managedDevice's properties in the beta schema (those the simulator fills and those it leaves
/// out, which Graph would return as null).
pub const MANAGED_DEVICE: &[&str] = &[
    "id",
    "deviceName",
    "managedDeviceName",
    "serialNumber",
    "userId",
    "userPrincipalName",
    "userDisplayName",
    "emailAddress",
    "operatingSystem",
    "osVersion",
    "model",
    "manufacturer",
    "imei",
    "meid",
    "azureADDeviceId",
    "deviceCategoryDisplayName",
    "enrollmentProfileName",
    "skuFamily",
    "wiFiMacAddress",
    "ethernetMacAddress",
    "notes",
    "complianceState",
    "managementAgent",
    "managedDeviceOwnerType",
    "ownerType",
    "deviceEnrollmentType",
    "deviceRegistrationState",
    "deviceType",
    "joinType",
    "managementState",
    "exchangeAccessState",
    "partnerReportedThreatState",
    "processorArchitecture",
    "lostModeState",
    "isEncrypted",
    "isSupervised",
    "jailBroken",
    "azureADRegistered",
    "autopilotEnrolled",
    "aadRegistered",
    "totalStorageSpaceInBytes",
    "freeStorageSpaceInBytes",
    "physicalMemoryInBytes",
    "lastSyncDateTime",
    "enrolledDateTime",
    "complianceGracePeriodExpirationDateTime",
    "managementCertificateExpirationDate",
    "deviceActionResults",
    "hardwareInformation",
    "chassisType",
    "androidSecurityPatchLevel",
];

/// What a collection's properties are, beyond those its items carry.
fn schema(entity: &str) -> (&'static str, &'static [&'static str]) {
    match entity {
        "managedDevices" => ("microsoft.graph.managedDevice", MANAGED_DEVICE),
        "groups" => (
            "microsoft.graph.group",
            &[
                "id",
                "displayName",
                "description",
                "groupTypes",
                "membershipRule",
                "membershipRuleProcessingState",
                "securityEnabled",
                "mailEnabled",
                "mailNickname",
                "createdDateTime",
            ],
        ),
        "directoryObjects" => (
            "microsoft.graph.directoryObject",
            &[
                "id",
                "displayName",
                "deviceId",
                "operatingSystem",
                "operatingSystemVersion",
                "accountEnabled",
                "trustType",
                "userPrincipalName",
                "mail",
            ],
        ),
        "managedDeviceEncryptionStates" => (
            "microsoft.graph.managedDeviceEncryptionState",
            &[
                "id",
                "userPrincipalName",
                "deviceType",
                "osVersion",
                "tpmSpecificationVersion",
                "deviceName",
                "encryptionReadinessState",
                "encryptionState",
                "encryptionPolicySettingState",
                "advancedBitLockerStates",
                "fileVaultStates",
                "policyDetails",
            ],
        ),
        "bitlockerRecoveryKeys" => (
            "microsoft.graph.bitlockerRecoveryKey",
            &["id", "createdDateTime", "volumeType", "deviceId", "key"],
        ),
        "deviceLocalCredentials" => (
            "microsoft.graph.deviceLocalCredentialInfo",
            &[
                "id",
                "deviceName",
                "lastBackupDateTime",
                "refreshDateTime",
                "credentials",
            ],
        ),
        "detectedApps" => (
            "microsoft.graph.detectedApp",
            &[
                "id",
                "displayName",
                "version",
                "sizeInByte",
                "deviceCount",
                "publisher",
                "platform",
            ],
        ),
        // The script collections.
        _ => (
            "microsoft.graph.deviceManagementScript",
            &[
                "id",
                "displayName",
                "description",
                "publisher",
                "version",
                "runAsAccount",
                "createdDateTime",
                "lastModifiedDateTime",
            ],
        ),
    }
}

/// What a request reads, for the options it may carry.
#[derive(Debug, Clone, Copy)]
pub enum Shape<'a> {
    /// One entity of this collection.
    Single(&'a str),
    /// A listing of this collection.
    List(&'a str),
}

fn bad(code: &str, message: String) -> SimResponse {
    graph_error(400, code, &message, None)
}

/// The request's `$` options, named with their `$` (Graph takes them without it too).
fn options(req: &SimRequest) -> impl Iterator<Item = (String, &str)> {
    req.query.iter().filter_map(|(k, v)| {
        let name = if k.starts_with('$') {
            k.to_ascii_lowercase()
        } else {
            format!("${}", k.to_ascii_lowercase())
        };
        // A name without `$` is an option only where it is one of OData's.
        (k.starts_with('$') || SYSTEM_OPTIONS.contains(&name.as_str()))
            .then_some((name, v.as_str()))
    })
}

fn eventual(req: &SimRequest) -> bool {
    req.headers
        .get("consistencylevel")
        .is_some_and(|v| v.eq_ignore_ascii_case("eventual"))
}

/// Refuses options the collection does not take and `$select` names it does not have. `emitted`
/// are properties its items carry beyond the schema list.
pub fn check(req: &SimRequest, shape: Shape<'_>, emitted: &[&str]) -> Result<(), SimResponse> {
    let (entity, list) = match shape {
        Shape::Single(e) => (e, false),
        Shape::List(e) => (e, true),
    };
    let directory = matches!(entity, "groups" | "directoryObjects");
    for (name, value) in options(req) {
        if !SYSTEM_OPTIONS.contains(&name.as_str()) {
            return Err(bad(
                "BadRequest",
                format!(
                    "Query option '{name}' is not allowed. The query specified in the URI is not valid."
                ),
            ));
        }
        let allowed = match name.as_str() {
            "$select" => true,
            "$filter" | "$top" | "$skiptoken" | "$count" => list,
            "$orderby" => list && (entity == "managedDevices" || directory),
            "$skip" => list && entity == "managedDevices",
            "$search" => list && directory,
            "$expand" => entity == "deviceRunStates",
            _ => false,
        };
        if !allowed {
            let code = if directory {
                "Request_UnsupportedQuery"
            } else {
                "BadRequest"
            };
            return Err(bad(
                code,
                format!("'{name}' is not supported by the service for {entity}."),
            ));
        }
        if name == "$search" && !eventual(req) {
            return Err(bad(
                "Request_BadRequest",
                "Search is not supported without the ConsistencyLevel: eventual header.".into(),
            ));
        }
        if name == "$select" && entity != "deviceRunStates" {
            select(value, entity, emitted)?;
        }
        if name == "$orderby" {
            order_by(value, entity, eventual(req))?;
        }
    }
    Ok(())
}

/// Every `$select` name must be a property of the entity (case-insensitive, as Graph matches).
fn select(value: &str, entity: &str, emitted: &[&str]) -> Result<(), SimResponse> {
    let (type_name, known) = schema(entity);
    for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let found = known
            .iter()
            .chain(emitted)
            .any(|k| k.eq_ignore_ascii_case(name));
        if !found {
            return Err(bad(
                "BadRequest",
                format!("Could not find a property named '{name}' on type '{type_name}'."),
            ));
        }
    }
    Ok(())
}

/// Properties the managed-device listing sorts on; the directory sorts groups by name only, and
/// only as an advanced query.
const DEVICE_SORTS: &[&str] = &[
    "id",
    "deviceName",
    "serialNumber",
    "userPrincipalName",
    "operatingSystem",
    "lastSyncDateTime",
];

/// `$orderby` read as (property, descending) pairs, or the 400 the service gives.
pub fn order_by(
    value: &str,
    entity: &str,
    eventual: bool,
) -> Result<Vec<(&'static str, bool)>, SimResponse> {
    let mut keys = Vec::new();
    for part in value.split(',').map(str::trim) {
        let mut words = part.split_whitespace();
        let name = words.next().unwrap_or_default();
        let descending = match words.next().map(str::to_ascii_lowercase).as_deref() {
            None | Some("asc") => false,
            Some("desc") => true,
            Some(other) => {
                return Err(bad(
                    "BadRequest",
                    format!("Invalid $orderby direction '{other}': expected asc or desc."),
                ));
            }
        };
        let sortable: &[&'static str] = match entity {
            "managedDevices" => DEVICE_SORTS,
            "groups" if eventual => &["displayName"],
            _ => &[],
        };
        match sortable.iter().find(|k| k.eq_ignore_ascii_case(name)) {
            Some(k) => keys.push((*k, descending)),
            None => {
                let (type_name, known) = schema(entity);
                let message = if known.iter().any(|k| k.eq_ignore_ascii_case(name)) {
                    format!("Sorting on '{name}' is not supported for {entity}.")
                } else {
                    format!("Could not find a property named '{name}' on type '{type_name}'.")
                };
                let code = if entity == "managedDevices" {
                    "BadRequest"
                } else {
                    "Request_UnsupportedQuery"
                };
                return Err(bad(code, message));
            }
        }
    }
    Ok(keys)
}

/// Orders two values of a sort key, nulls first as OData sorts them.
pub fn compare<T: Ord>(a: Option<T>, b: Option<T>, descending: bool) -> Ordering {
    let o = a.cmp(&b);
    if descending { o.reverse() } else { o }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn req(query: &[(&str, &str)], eventual: bool) -> SimRequest {
        let mut headers = HashMap::new();
        if eventual {
            headers.insert("consistencylevel".to_string(), "eventual".to_string());
        }
        SimRequest {
            method: "GET".into(),
            version: "beta".into(),
            path: "/deviceManagement/managedDevices".into(),
            query: query
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            headers,
        }
    }

    fn message(r: Result<(), SimResponse>) -> String {
        let r = r.expect_err("refused");
        assert_eq!(r.status, 400);
        r.body.unwrap()["error"]["message"]
            .as_str()
            .unwrap()
            .to_string()
    }

    #[test]
    fn an_unknown_dollar_option_is_refused_and_other_parameters_pass() {
        let list = Shape::List("managedDevices");
        assert!(message(check(&req(&[("$foo", "1")], false), list, &[])).contains("'$foo'"));
        assert!(check(&req(&[("api-version", "1")], false), list, &[]).is_ok());
        // Without the `$`, a system option is still one.
        assert!(message(check(&req(&[("search", "x")], false), list, &[])).contains("$search"));
    }

    #[test]
    fn an_unknown_select_property_is_refused_with_graphs_message() {
        let list = Shape::List("managedDevices");
        let m = message(check(
            &req(&[("$select", "id,deviceNmae")], false),
            list,
            &[],
        ));
        assert_eq!(
            m,
            "Could not find a property named 'deviceNmae' on type 'microsoft.graph.managedDevice'."
        );
        let ok = req(
            &[(
                "$select",
                "ID,DeviceName,azureADDeviceId,deviceActionResults",
            )],
            false,
        );
        assert!(check(&ok, list, &[]).is_ok());
    }

    #[test]
    fn each_collection_takes_its_own_options() {
        let devices = Shape::List("managedDevices");
        let groups = Shape::List("groups");
        assert!(
            check(
                &req(&[("$orderby", "deviceName desc"), ("$skip", "5")], false),
                devices,
                &[]
            )
            .is_ok()
        );
        assert!(
            message(check(&req(&[("$search", "\"x\"")], false), devices, &[])).contains("$search")
        );
        assert!(
            message(check(&req(&[("$expand", "users")], false), devices, &[])).contains("$expand")
        );
        assert!(message(check(&req(&[("$skip", "5")], true), groups, &[])).contains("$skip"));
        assert!(
            message(check(
                &req(&[("$search", "\"displayName:FIN\"")], false),
                groups,
                &[]
            ))
            .contains("ConsistencyLevel")
        );
        assert!(
            check(
                &req(&[("$search", "\"displayName:FIN\"")], true),
                groups,
                &[]
            )
            .is_ok()
        );
        assert!(
            message(check(
                &req(&[("$top", "5")], false),
                Shape::Single("managedDevices"),
                &[]
            ))
            .contains("$top")
        );
    }

    #[test]
    fn orderby_names_a_sortable_property_or_says_why_not() {
        assert_eq!(
            order_by("lastSyncDateTime desc, deviceName", "managedDevices", false).unwrap(),
            [("lastSyncDateTime", true), ("deviceName", false)]
        );
        let m = |r: Result<Vec<(&str, bool)>, SimResponse>| {
            r.expect_err("refused").body.unwrap()["error"]["message"]
                .as_str()
                .unwrap()
                .to_string()
        };
        assert!(
            m(order_by("model", "managedDevices", false))
                .contains("Sorting on 'model' is not supported")
        );
        assert!(
            m(order_by("nope", "managedDevices", false))
                .contains("Could not find a property named 'nope'")
        );
        assert!(m(order_by("displayName", "groups", false)).contains("not supported"));
        assert!(order_by("displayName", "groups", true).is_ok());
        assert!(m(order_by("deviceName sideways", "managedDevices", false)).contains("direction"));
    }
}
