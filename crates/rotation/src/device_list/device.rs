//! One device as a source gives it, and as Graph's `managedDevice` object gives it.

use serde_json::Value;

/// One row of the input, with its line number for error messages.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SourceDevice {
    pub line: u64,
    pub raw_id: String,
    pub name: Option<String>,
    pub serial: Option<String>,
    pub user: Option<String>,
    pub os: Option<String>,
    pub encrypted: Option<bool>,
    /// Last check-in as written in the source (ISO 8601 or Intune's "2026-11-27 08:15:00").
    pub last_sync: Option<String>,
    pub entra_id: Option<String>,
    /// What decides whether the device can carry the action out (`eligibility.rs`).
    pub os_version: Option<String>,
    /// `managedDeviceOwnerType` (`company`, `personal`), or the export's `Corporate`/`Personal`.
    pub owner: Option<String>,
    /// `joinType`: `azureADJoined`, `hybridAzureADJoined`, `azureADRegistered`, …
    pub join_type: Option<String>,
    pub supervised: Option<bool>,
    /// `processorArchitecture`: `arm64`, `x64`, …
    pub architecture: Option<String>,
}

impl SourceDevice {
    /// A Graph `managedDevice` object (read with [`super::DEVICE_COLUMNS`] selected) as a row.
    pub fn from_graph(v: &Value, line: u64) -> SourceDevice {
        SourceDevice {
            line,
            raw_id: text(v, "id").unwrap_or_default(),
            name: text(v, "deviceName"),
            serial: text(v, "serialNumber"),
            user: text(v, "userPrincipalName"),
            os: text(v, "operatingSystem"),
            encrypted: v.get("isEncrypted").and_then(Value::as_bool),
            last_sync: text(v, "lastSyncDateTime"),
            entra_id: text(v, "azureADDeviceId"),
            os_version: text(v, "osVersion"),
            owner: text(v, "managedDeviceOwnerType"),
            join_type: text(v, "joinType"),
            supervised: v.get("isSupervised").and_then(Value::as_bool),
            architecture: text(v, "processorArchitecture"),
        }
    }

    /// The fields in [`super::DEVICE_COLUMNS`] order, as JSON values.
    pub(crate) fn to_values(&self) -> [Value; 13] {
        let s = |v: &Option<String>| v.clone().map_or(Value::Null, Value::String);
        [
            Value::String(self.raw_id.clone()),
            s(&self.name),
            s(&self.serial),
            s(&self.user),
            s(&self.os),
            self.encrypted.map_or(Value::Null, Value::Bool),
            s(&self.last_sync),
            s(&self.entra_id),
            s(&self.os_version),
            s(&self.owner),
            s(&self.join_type),
            self.supervised.map_or(Value::Null, Value::Bool),
            s(&self.architecture),
        ]
    }
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

pub(crate) fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "yes" | "true" | "1" | "encrypted" => Some(true),
        "no" | "false" | "0" | "notencrypted" => Some(false),
        _ => None,
    }
}
