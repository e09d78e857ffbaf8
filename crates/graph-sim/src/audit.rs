//! The two audit logs that say who looked at a secret (docs/graph-facts.md §12): Entra's directory
//! audit (BitLocker key reads, Windows LAPS password recoveries and backups) and Intune's audit
//! events (FileVault and Recovery Lock views, the rotate actions themselves).
//!
//! Each event appears in its log only some time after it happened, as the real logs' delay does;
//! the directory log keeps 7 or 30 days by licence and answers under its own limit of 5 requests
//! per 10 s per app (122 across tenants). Tests script views with `POST /_sim/views`.

use crate::directory::ZERO_ID;
use crate::filter::FieldValue;
use crate::tenant::Tenant;
use rand::Rng;
use rand::rngs::StdRng;
use serde_json::{Value, json};
use std::time::{Duration, SystemTime};

/// Which secret a view read (`POST /_sim/views`'s `secret`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secret {
    BitLocker,
    Laps,
    FileVault,
    RecoveryLock,
}

impl Secret {
    pub fn parse(s: &str) -> Option<Secret> {
        Some(match s {
            "bitlocker" => Secret::BitLocker,
            "laps" => Secret::Laps,
            "filevault" => Secret::FileVault,
            "recovery-lock" => Secret::RecoveryLock,
            _ => return None,
        })
    }

    /// The platform whose devices hold the secret.
    pub fn platform(self) -> &'static str {
        match self {
            Secret::BitLocker | Secret::Laps => "Windows",
            Secret::FileVault | Secret::RecoveryLock => "macOS",
        }
    }
}

/// The log an event is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Log {
    /// `GET /auditLogs/directoryAudits`.
    Directory,
    /// `GET /deviceManagement/auditEvents`.
    Intune,
}

/// The Entra licence, which sets how long the directory log keeps events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum EntraLicense {
    /// Entra ID Free: 7 days.
    #[default]
    Free,
    /// P1: 30 days.
    P1,
    /// P2: 30 days.
    P2,
}

impl EntraLicense {
    pub fn retention(self) -> Duration {
        match self {
            EntraLicense::Free => Duration::from_secs(7 * 86_400),
            EntraLicense::P1 | EntraLicense::P2 => Duration::from_secs(30 * 86_400),
        }
    }

    /// `GET /subscribedSkus`: the licences as Graph lists them, the premium plan named as the
    /// service plan reference names it.
    pub fn subscribed_skus(self) -> Vec<Value> {
        let mut plans = vec![
            json!({"servicePlanId": "113feb6c-3fe4-4440-bddc-54d774bf0318", "servicePlanName": "EXCHANGE_S_FOUNDATION", "provisioningStatus": "Success", "appliesTo": "Company"}),
        ];
        let premium = match self {
            EntraLicense::Free => None,
            EntraLicense::P1 => Some(("41781fb2-bc02-4b7c-bd55-b576c07bb09d", "AAD_PREMIUM")),
            EntraLicense::P2 => Some(("eec0eb4f-6444-4f95-aba0-50c24d67f998", "AAD_PREMIUM_P2")),
        };
        if let Some((id, name)) = premium {
            plans.push(json!({"servicePlanId": id, "servicePlanName": name, "provisioningStatus": "Success", "appliesTo": "User"}));
        }
        vec![json!({
            "id": "5e1f0c2a-7d3b-4c8e-9a61-0b2d4f6e8a10_c7df2760-2c81-4ef7-b578-5b5392b571df",
            "capabilityStatus": "Enabled",
            "consumedUnits": 12,
            "skuId": "c7df2760-2c81-4ef7-b578-5b5392b571df",
            "skuPartNumber": "ENTERPRISEPREMIUM",
            "appliesTo": "User",
            "prepaidUnits": {"enabled": 25, "suspended": 0, "warning": 0},
            "servicePlans": plans,
        })]
    }
}

/// Which id of a Windows LAPS recovery's target names the device: not documented, so both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LapsTarget {
    /// The Entra device object's id, which a client must resolve to its deviceId.
    #[default]
    ObjectId,
    /// The deviceId itself.
    DeviceId,
}

/// Who did what an event records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    User { upn: String, ip: String },
    App { app_id: String },
}

/// One audit event.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    pub id: String,
    pub log: Log,
    pub activity: String,
    pub at: SystemTime,
    /// When the event shows in its log.
    pub visible_at: SystemTime,
    pub actor: Actor,
    pub device: usize,
    /// The BitLocker recovery key read.
    pub key_id: Option<String>,
}

/// The tenant's audit events, oldest first.
#[derive(Debug, Default)]
pub struct AuditLog {
    pub events: Vec<AuditEvent>,
}

/// How events are written: the names, the delay and duplicates (from the config).
#[derive(Debug, Clone)]
pub struct AuditShape {
    pub delay_max: Duration,
    pub duplicates: f64,
    pub laps_target: LapsTarget,
    pub filevault_view: String,
    pub recovery_lock_view: String,
    /// One view's own delay (`POST /_sim/views` with `delay`), in place of a drawn one.
    pub fixed_delay: Option<Duration>,
}

impl Default for AuditShape {
    fn default() -> Self {
        AuditShape {
            delay_max: Duration::from_secs(300),
            duplicates: 0.25,
            laps_target: LapsTarget::ObjectId,
            filevault_view: "getFileVaultKey ManagedDevice".into(),
            recovery_lock_view: "retrieveRecoveryLockPasscode ManagedDevice".into(),
            fixed_delay: None,
        }
    }
}

pub const READ_BITLOCKER_KEY: &str = "Read BitLocker key";
pub const RECOVER_LAPS: &str = "Recover device local administrator password";
pub const UPDATE_LAPS: &str = "Update device local administrator password";

/// The Intune activity of a rotate action: "<action> <Entity>".
pub fn action_activity(action: &str) -> String {
    format!("{action} ManagedDevice")
}

fn guid(rng: &mut StdRng) -> String {
    uuid::Builder::from_random_bytes(rng.random())
        .into_uuid()
        .to_string()
}

impl AuditShape {
    /// How late an event shows: most within two minutes, a few up to `delay_max`.
    fn delay(&self, rng: &mut StdRng) -> Duration {
        if let Some(d) = self.fixed_delay {
            return d;
        }
        if self.delay_max.is_zero() {
            return Duration::ZERO;
        }
        let r: f64 = rng.random();
        let p95 = self.delay_max.min(Duration::from_secs(120));
        if r < 0.95 {
            p95.mul_f64(0.2 + 0.8 * r / 0.95)
        } else {
            p95 + (self.delay_max.saturating_sub(p95)).mul_f64((r - 0.95) / 0.05)
        }
    }
}

impl AuditLog {
    /// Records one event (and, for a directory read, sometimes its known duplicate).
    #[allow(clippy::too_many_arguments)]
    pub fn record(
        &mut self,
        shape: &AuditShape,
        rng: &mut StdRng,
        log: Log,
        activity: &str,
        at: SystemTime,
        actor: Actor,
        device: usize,
        key_id: Option<String>,
    ) -> String {
        let id = guid(rng);
        let visible_at = at + shape.delay(rng);
        let event = AuditEvent {
            id: id.clone(),
            log,
            activity: activity.to_string(),
            at,
            visible_at,
            actor,
            device,
            key_id,
        };
        let duplicate = log == Log::Directory
            && activity != UPDATE_LAPS
            && shape.duplicates > 0.0
            && rng.random_bool(shape.duplicates.min(1.0));
        if duplicate {
            self.events.push(AuditEvent {
                id: guid(rng),
                at: at + Duration::from_millis(rng.random_range(0..1500)),
                visible_at: visible_at + shape.delay(rng) / 4,
                ..event.clone()
            });
        }
        self.events.push(event);
        id
    }

    /// A view of `secret` on `device`, as the log it lands in records a person's or app's read.
    pub fn view(
        &mut self,
        shape: &AuditShape,
        rng: &mut StdRng,
        tenant: &Tenant,
        (secret, device): (Secret, usize),
        at: SystemTime,
        actor: Actor,
    ) -> Result<String, String> {
        let d = &tenant.devices[device];
        if d.os != secret.platform() {
            return Err(format!("{} is a {} device", d.id, d.os));
        }
        let (log, activity, key) = match secret {
            Secret::BitLocker => {
                let k = d
                    .recovery_keys
                    .len()
                    .checked_sub(1)
                    .ok_or_else(|| format!("{} has no BitLocker recovery key to read", d.id))?;
                (
                    Log::Directory,
                    READ_BITLOCKER_KEY.to_string(),
                    Some(crate::tenant::key_id(d, k)),
                )
            }
            Secret::Laps => (Log::Directory, RECOVER_LAPS.to_string(), None),
            Secret::FileVault => (Log::Intune, shape.filevault_view.clone(), None),
            Secret::RecoveryLock => (Log::Intune, shape.recovery_lock_view.clone(), None),
        };
        if log == Log::Directory && d.azure_ad_device_id == ZERO_ID {
            return Err(format!("{} has no Entra device", d.id));
        }
        Ok(self.record(shape, rng, log, &activity, at, actor, device, key))
    }

    /// The events of `log` a listing shows now: visible, and within the log's retention.
    pub fn visible(&self, log: Log, now: SystemTime, retention: Duration) -> Vec<&AuditEvent> {
        let oldest = now.checked_sub(retention).unwrap_or(SystemTime::UNIX_EPOCH);
        let mut v: Vec<&AuditEvent> = self
            .events
            .iter()
            .filter(|e| e.log == log && e.visible_at <= now && e.at >= oldest)
            .collect();
        // Newest first, as both logs list.
        v.sort_by_key(|e| std::cmp::Reverse(e.at));
        v
    }
}

/// An event's fields as the `$filter` reads them.
pub fn field<'a>(e: &'a AuditEvent, name: &str) -> Option<FieldValue<'a>> {
    match (e.log, name) {
        (Log::Directory, "activityDisplayName") | (Log::Intune, "activityType") => {
            Some(FieldValue::Text(&e.activity))
        }
        (_, "activityDateTime") => Some(FieldValue::Time(e.at)),
        (Log::Directory, "loggedByService") => Some(FieldValue::Text(service(e))),
        (Log::Intune, "category") => Some(FieldValue::Text("Device")),
        _ => None,
    }
}

fn service(e: &AuditEvent) -> &'static str {
    if e.activity == READ_BITLOCKER_KEY {
        "Device Registration Service"
    } else {
        "Core Directory"
    }
}

fn time(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// A directory audit as `directoryAudits` lists it.
pub fn directory_json(e: &AuditEvent, tenant: &Tenant, target: LapsTarget) -> Value {
    let d = &tenant.devices[e.device];
    let initiated = match &e.actor {
        Actor::User { upn, ip } => {
            json!({"user": {"id": null, "displayName": null, "userPrincipalName": upn, "ipAddress": ip, "userType": "Member"}, "app": null})
        }
        Actor::App { app_id } => {
            json!({"user": null, "app": {"appId": app_id, "displayName": null, "servicePrincipalId": null, "servicePrincipalName": null}})
        }
    };
    let object_id = tenant
        .directory
        .devices
        .iter()
        .find(|x| x.device_id.eq_ignore_ascii_case(&d.azure_ad_device_id))
        .map_or(ZERO_ID, |x| x.object_id.as_str());
    let (category, targets, details) = if e.activity == READ_BITLOCKER_KEY {
        let key = e.key_id.as_deref().unwrap_or("");
        (
            "KeyManagement",
            json!([{"id": null, "displayName": key, "type": "Other", "userPrincipalName": null, "modifiedProperties": []}]),
            json!([{"key": "AdditionalInfo", "value": format!("Successfully retrieved BitLocker recovery key associated with key ID: '{key}'. Backed up from device: '{}'", d.azure_ad_device_id)}]),
        )
    } else {
        let id = match target {
            LapsTarget::ObjectId => object_id,
            LapsTarget::DeviceId => d.azure_ad_device_id.as_str(),
        };
        (
            "Device",
            json!([{"id": id, "displayName": d.name, "type": "Device", "userPrincipalName": null, "modifiedProperties": []}]),
            json!([]),
        )
    };
    json!({
        "id": format!("Directory_{}", e.id),
        "category": category,
        "correlationId": e.id,
        "result": "success",
        "resultReason": "",
        "activityDisplayName": e.activity,
        "activityDateTime": time(e.at),
        "loggedByService": service(e),
        "operationType": if e.activity == UPDATE_LAPS { "Update" } else { "Read" },
        "initiatedBy": initiated,
        "targetResources": targets,
        "additionalDetails": details,
    })
}

/// An Intune audit event as `auditEvents` lists it.
pub fn intune_json(e: &AuditEvent, tenant: &Tenant) -> Value {
    let d = &tenant.devices[e.device];
    let (actor_type, upn, app, ip) = match &e.actor {
        Actor::User { upn, ip } => ("ItPro", json!(upn), Value::Null, json!(ip)),
        Actor::App { app_id } => ("Application", Value::Null, json!(app_id), Value::Null),
    };
    let operation = e.activity.split(' ').next().unwrap_or("");
    json!({
        "id": e.id,
        "displayName": e.activity,
        "componentName": "DeviceManagement",
        "actor": {
            "type": actor_type,
            "userPermissions": ["*"],
            "applicationId": app,
            "applicationDisplayName": null,
            "userPrincipalName": upn,
            "servicePrincipalName": null,
            "ipAddress": ip,
            "userId": null,
        },
        "activity": e.activity,
        "activityDateTime": time(e.at),
        "activityType": e.activity,
        "activityOperationType": if operation.starts_with("rotate") { "Action" } else { "Get" },
        "activityResult": "Success",
        "correlationId": e.id,
        "resources": [{"displayName": d.name, "type": "ManagedDevice", "resourceId": d.id, "modifiedProperties": []}],
        "category": "Device",
    })
}

/// `getAuditActivityTypes(category='Device')`: the Intune activity names this tenant logs.
pub fn activity_types(shape: &AuditShape) -> Vec<String> {
    let mut names: Vec<String> = [
        "rotateFileVaultKey",
        "rotateRecoveryLockPasscode",
        "rotateBitLockerKeys",
        "rotateLocalAdminPassword",
        "wipe",
        "syncDevice",
    ]
    .iter()
    .map(|a| action_activity(a))
    .collect();
    names.extend([
        shape.filevault_view.clone(),
        shape.recovery_lock_view.clone(),
        "Get AdminAccountDto".to_string(),
        "Delete ManagedDevice".to_string(),
        "Patch ManagedDevice".to_string(),
    ]);
    names.sort();
    names.dedup();
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn shape() -> AuditShape {
        AuditShape {
            duplicates: 0.0,
            ..AuditShape::default()
        }
    }

    #[test]
    fn an_event_shows_only_after_its_delay_and_within_retention() {
        let mut log = AuditLog::default();
        let mut rng = StdRng::seed_from_u64(1);
        let now = SystemTime::now();
        let actor = Actor::App { app_id: "a".into() };
        log.record(
            &shape(),
            &mut rng,
            Log::Intune,
            "x",
            now,
            actor.clone(),
            0,
            None,
        );
        let old = now - Duration::from_secs(8 * 86_400);
        log.record(
            &shape(),
            &mut rng,
            Log::Directory,
            READ_BITLOCKER_KEY,
            old,
            actor,
            0,
            None,
        );
        let week = EntraLicense::Free.retention();
        assert!(log.visible(Log::Intune, now, week).is_empty(), "not yet");
        let later = now + Duration::from_secs(301);
        assert_eq!(log.visible(Log::Intune, later, week).len(), 1);
        assert!(
            log.visible(Log::Directory, later, week).is_empty(),
            "past 7 days"
        );
        let month = EntraLicense::P1.retention();
        assert_eq!(log.visible(Log::Directory, later, month).len(), 1);
    }

    #[test]
    fn most_delays_are_within_two_minutes_and_none_beyond_the_most() {
        let mut rng = StdRng::seed_from_u64(7);
        let s = shape();
        let delays: Vec<Duration> = (0..2000).map(|_| s.delay(&mut rng)).collect();
        let within = delays
            .iter()
            .filter(|d| **d <= Duration::from_secs(120))
            .count();
        assert!(within as f64 / 2000.0 > 0.9, "{within}");
        assert!(delays.iter().all(|d| *d <= s.delay_max));
    }

    #[test]
    fn a_directory_read_is_sometimes_logged_twice_and_an_intune_event_never() {
        let mut log = AuditLog::default();
        let mut rng = StdRng::seed_from_u64(3);
        let every = AuditShape {
            duplicates: 1.0,
            ..AuditShape::default()
        };
        let at = SystemTime::now();
        let actor = Actor::App { app_id: "a".into() };
        log.record(
            &every,
            &mut rng,
            Log::Directory,
            READ_BITLOCKER_KEY,
            at,
            actor.clone(),
            0,
            None,
        );
        log.record(&every, &mut rng, Log::Intune, "x", at, actor, 0, None);
        assert_eq!(log.events.len(), 3);
    }
}
