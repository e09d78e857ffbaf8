//! The simulated tenant's contents, generated deterministically from a seed.

use crate::directory::Directory;
use crate::filter::{FieldValue, Op};
use crate::select::Selection;
use crate::shapes::{ListResults, OsVersionForm, ScriptPlatforms, Shapes};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

/// One action accepted for a device, as `deviceActionResults` shows it.
#[derive(Debug, Clone)]
pub struct ActionResult {
    pub action_name: String,
    /// A derived result type naming the action, where the style writes one.
    pub odata_type: Option<String>,
    pub started: SystemTime,
    pub completes: SystemTime,
    pub fails: bool,
    /// What a failed BitLocker rotation reports (`rotateBitLockerKeysDeviceActionResult.errorCode`,
    /// an HRESULT); the other rotations' results have no code.
    pub error_code: Option<i32>,
}

impl ActionResult {
    fn state(&self, now: SystemTime) -> &'static str {
        match (now >= self.completes, self.fails) {
            (false, _) => "pending",
            (true, false) => "done",
            (true, true) => "failed",
        }
    }

    fn to_json(&self, now: SystemTime, shapes: &Shapes) -> Value {
        let updated = if now >= self.completes {
            self.completes
        } else {
            self.started
        };
        let mut v = json!({
            "actionName": self.action_name,
            "actionState": self.state(now),
            "startDateTime": shapes.time(self.started),
            "lastUpdatedDateTime": shapes.time(updated),
        });
        if let Some(t) = &self.odata_type {
            v["@odata.type"] = json!(t);
        }
        if let (Some(code), "failed") = (self.error_code, self.state(now)) {
            v["errorCode"] = json!(code);
        }
        v
    }
}

impl crate::directory::Enrolled for Device {
    fn os(&self) -> &str {
        self.os
    }
    fn name(&self) -> &str {
        &self.name
    }
    fn user_id(&self) -> &str {
        &self.user_id
    }
    fn upn(&self) -> &str {
        &self.upn
    }
    fn entra_id(&self) -> &str {
        &self.azure_ad_device_id
    }
    fn set_entra_id(&mut self, id: String) {
        self.azure_ad_device_id = id;
    }
}

/// A managed device with the fields the rotation tool reads.
#[derive(Debug, Clone)]
pub struct Device {
    pub id: String,
    pub name: String,
    pub serial: String,
    pub user_id: String,
    pub upn: String,
    pub os: &'static str,
    /// The version as a number (`14.5`, `10.0.22631.3155`); `osVersion` adds a Mac's build.
    pub os_version: String,
    /// A Mac's build (`23F79`), which real tenants write after the version.
    pub os_build: Option<String>,
    pub encrypted: bool,
    pub last_sync: SystemTime,
    pub management_agent: &'static str,
    pub azure_ad_device_id: String,
    /// How it enrolled (`deviceEnrollmentType`): a property the service's filter ignores.
    pub enrollment_type: &'static str,
    /// `managedDeviceOwnerType`: `company` or `personal`.
    pub owner: &'static str,
    /// `joinType`: `azureADJoined`, `hybridAzureADJoined`, `azureADRegistered` or `unknown`.
    pub join_type: &'static str,
    /// The service does not know the join type or ownership it really has, and says `unknown`
    /// (cleared on every device where `UnknownMembers::Absent`).
    pub reports_unknown: bool,
    pub supervised: bool,
    /// The processor, `arm64` or `x64`; Graph writes the first as its enum member `arM64`.
    pub architecture: &'static str,
    /// FileVault's state in the encryption report (`fileVaultStates`): `success`, or a flag such
    /// as `escrowNotEnabled`, `driveEncryptedByUser`, `userDeferredEncryption`.
    pub filevault_state: &'static str,
    /// BitLocker recovery keys escrowed to Entra, by creation time (Windows only).
    pub recovery_keys: Vec<SystemTime>,
    /// Windows LAPS password backups to Entra (`deviceLocalCredentials` shows the latest passed).
    pub laps_backups: Vec<SystemTime>,
    /// The device reports a BitLocker or LAPS rotation done but escrows nothing new (a broken
    /// escrow): the second source is what tells.
    pub escrow_broken: bool,
    pub action_results: Vec<ActionResult>,
}

/// The `$filter` clauses the SDK documents for device listings (of those a device here has).
pub const DOCUMENTED_DEVICE_FILTERS: crate::filter::Supported =
    &[("deviceName", Op::Eq), ("lastSyncDateTime", Op::Lt)];

/// The `$filter` clauses device listings are seen to apply in practice; others are dropped or refused.
pub const DEVICE_FILTERS: crate::filter::Supported = &[
    ("id", Op::Eq),
    ("operatingSystem", Op::Eq),
    ("isEncrypted", Op::Eq),
    ("deviceName", Op::Eq),
    ("serialNumber", Op::Eq),
    ("azureADDeviceId", Op::Eq),
    ("userPrincipalName", Op::Eq),
    ("lastSyncDateTime", Op::Lt),
];

impl Device {
    /// Whether the device can carry `action` out (docs/eligibility.md); an action sent anyway is
    /// accepted and ends failed, as Intune reports it.
    pub fn can_carry_out(&self, action: &str) -> bool {
        let joined = matches!(self.join_type, "azureADJoined" | "hybridAzureADJoined");
        let build = |v: &str| {
            v.split('.')
                .nth(2)
                .and_then(|b| b.parse::<u32>().ok())
                .unwrap_or(0)
        };
        let mac = |v: &str| {
            let mut p = v.split('.').map(|x| x.trim().parse::<u32>().unwrap_or(0));
            (p.next().unwrap_or(0), p.next().unwrap_or(0))
        };
        match action {
            "rotateFileVaultKey" => self.owner == "company" && self.filevault_state == "success",
            "rotateRecoveryLockPasscode" => {
                self.supervised && self.architecture == "arm64" && mac(&self.os_version) >= (11, 5)
            }
            "rotateBitLockerKeys" => joined && build(&self.os_version) >= 18363,
            "rotateLocalAdminPassword" => joined,
            _ => true,
        }
    }

    /// A property an applied filter clause reads (names as in [`DEVICE_FILTERS`]).
    pub fn field(&self, name: &str) -> Option<FieldValue<'_>> {
        Some(match name {
            "id" => FieldValue::Text(&self.id),
            "operatingSystem" => FieldValue::Text(self.os),
            "isEncrypted" => FieldValue::Bool(self.encrypted),
            "deviceName" => FieldValue::Text(&self.name),
            "serialNumber" => FieldValue::Text(&self.serial),
            "azureADDeviceId" => FieldValue::Text(&self.azure_ad_device_id),
            "userPrincipalName" => FieldValue::Text(&self.upn),
            "lastSyncDateTime" => FieldValue::Time(self.last_sync),
            _ => return None,
        })
    }

    pub fn comanaged(&self) -> bool {
        self.management_agent.starts_with("configurationManager")
    }

    /// `osVersion` as this tenant writes it.
    pub fn os_version_text(&self, shapes: &Shapes) -> String {
        match (&self.os_build, shapes.os_versions) {
            (Some(build), OsVersionForm::WithBuild) => format!("{} ({build})", self.os_version),
            _ => self.os_version.clone(),
        }
    }

    /// The device as Graph answers it: in a listing, or on a GET of this one device, where
    /// `deviceActionResults` may be all a listing leaves out.
    pub fn to_json(&self, now: SystemTime, shapes: &Shapes, answer: Answer) -> Value {
        self.selected_json(now, shapes, answer, &Selection::default())
    }

    /// The device under `$select=fields`: the named properties and `id`, which Graph always
    /// returns. Built property by property, since a run lists and reads its devices under
    /// `$select` and the rest of a device is most of the work of answering.
    pub fn selected_json(
        &self,
        now: SystemTime,
        shapes: &Shapes,
        answer: Answer,
        selection: &Selection,
    ) -> Value {
        let unknown = self.reports_unknown;
        let apple = self.os == "macOS" || self.os == "iOS";
        let properties: [(&str, &dyn Fn() -> Value); 21] = [
            ("id", &|| json!(self.id)),
            ("deviceName", &|| json!(self.name)),
            ("serialNumber", &|| json!(self.serial)),
            ("userId", &|| json!(self.user_id)),
            ("userPrincipalName", &|| json!(self.upn)),
            ("operatingSystem", &|| json!(self.os)),
            ("osVersion", &|| json!(self.os_version_text(shapes))),
            ("isEncrypted", &|| json!(self.encrypted)),
            ("lastSyncDateTime", &|| json!(shapes.time(self.last_sync))),
            ("managementAgent", &|| json!(self.management_agent)),
            ("azureADDeviceId", &|| json!(self.azure_ad_device_id)),
            ("deviceEnrollmentType", &|| json!(self.enrollment_type)),
            ("manufacturer", &|| {
                json!(if apple { "Apple" } else { "Contoso Hardware" })
            }),
            ("model", &|| {
                json!(match self.os {
                    "macOS" if self.architecture == "arm64" => "MacBook Pro (14-inch, M3)",
                    "macOS" => "MacBook Pro (16-inch, 2019)",
                    "iOS" => "iPhone 15",
                    "Windows" => "Contoso Laptop 7",
                    _ => "Contoso Phone",
                })
            }),
            ("enrolledDateTime", &|| {
                json!(shapes.time(SystemTime::UNIX_EPOCH + Duration::from_secs(1_735_689_600)))
            }),
            ("complianceState", &|| {
                json!(if self.encrypted {
                    "compliant"
                } else {
                    "noncompliant"
                })
            }),
            ("managedDeviceOwnerType", &|| {
                json!(if unknown { "unknown" } else { self.owner })
            }),
            ("joinType", &|| {
                json!(if unknown { "unknown" } else { self.join_type })
            }),
            ("isSupervised", &|| json!(self.supervised)),
            ("processorArchitecture", &|| {
                json!(architecture_member(self.architecture))
            }),
            ("deviceActionResults", &|| {
                Value::Array(self.results_json(now, shapes, answer))
            }),
        ];
        Value::Object(
            properties
                .into_iter()
                .filter(|(k, _)| *k == "id" || selection.wants(k))
                .map(|(k, v)| (k.to_string(), v()))
                .collect(),
        )
    }

    /// `deviceActionResults` as the answer carries them.
    pub fn results_json(&self, now: SystemTime, shapes: &Shapes, answer: Answer) -> Vec<Value> {
        match (answer, shapes.list_results) {
            (Answer::List, ListResults::Omitted) => Vec::new(),
            // An action carried out late is not there until it starts.
            _ => self
                .action_results
                .iter()
                .filter(|r| r.started <= now)
                .map(|r| r.to_json(now, shapes))
                .collect(),
        }
    }

    /// Whether a script of `kind` runs on this device (the SDK's models: PowerShell on Windows,
    /// shell scripts on Macs).
    pub fn runs(&self, kind: ScriptKind, shapes: &Shapes) -> bool {
        if shapes.script_platforms == ScriptPlatforms::Any {
            return true;
        }
        match kind {
            ScriptKind::Health | ScriptKind::Management => self.os == "Windows",
            ScriptKind::Compliance => matches!(self.os, "Windows" | "macOS" | "Linux"),
            ScriptKind::Shell | ScriptKind::CustomAttribute => self.os == "macOS",
        }
    }
}

/// `processorArchitecture` as Graph's enum spells it: `x86, x64, arm, arM64, unknown`.
fn architecture_member(a: &str) -> &str {
    if a.eq_ignore_ascii_case("arm64") {
        "arM64"
    } else {
        a
    }
}

/// Which answer a device is part of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    List,
    Single,
}

/// Which script collection a script lives in; each has its own run-state field name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScriptKind {
    Health,
    Management,
    Compliance,
    /// macOS shell scripts.
    Shell,
    /// macOS custom attributes, also shell scripts.
    CustomAttribute,
}

impl ScriptKind {
    pub fn collection(self) -> &'static str {
        match self {
            ScriptKind::Health => "deviceHealthScripts",
            ScriptKind::Management => "deviceManagementScripts",
            ScriptKind::Compliance => "deviceComplianceScripts",
            ScriptKind::Shell => "deviceShellScripts",
            ScriptKind::CustomAttribute => "deviceCustomAttributeShellScripts",
        }
    }

    pub fn from_collection(name: &str) -> Option<Self> {
        [
            ScriptKind::Health,
            ScriptKind::Management,
            ScriptKind::Compliance,
            ScriptKind::Shell,
            ScriptKind::CustomAttribute,
        ]
        .into_iter()
        .find(|k| k.collection().eq_ignore_ascii_case(name))
    }

    /// Health and compliance scripts report `detectionState`; management, shell and
    /// custom-attribute scripts (`deviceManagementScriptDeviceState`) report `runState`.
    pub fn state_field(self) -> &'static str {
        match self {
            ScriptKind::Health | ScriptKind::Compliance => "detectionState",
            ScriptKind::Management | ScriptKind::Shell | ScriptKind::CustomAttribute => "runState",
        }
    }
}

#[derive(Debug, Clone)]
pub struct RunState {
    pub id: String,
    pub device: usize,
    pub state: &'static str,
}

#[derive(Debug, Clone)]
pub struct Script {
    pub id: String,
    pub kind: ScriptKind,
    pub name: String,
    pub run_states: Vec<RunState>,
}

#[derive(Debug, Clone)]
pub struct DetectedApp {
    pub id: String,
    pub name: String,
    pub version: String,
    pub devices: Vec<usize>,
}

/// Everything in the tenant.
#[derive(Debug, Clone)]
pub struct Tenant {
    pub devices: Vec<Device>,
    pub index: BTreeMap<String, usize>,
    pub scripts: Vec<Script>,
    pub apps: Vec<DetectedApp>,
    /// Entra device objects, users and groups.
    pub directory: Directory,
    /// How the tenant's answers are shaped (set from the config when the simulator starts).
    pub shapes: Shapes,
}

fn guid(rng: &mut StdRng) -> String {
    let mut b: [u8; 16] = rng.random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn serial(rng: &mut StdRng) -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHJKLMNPQRSTUVWXYZ";
    (0..12)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// Display names; two health scripts share one, as tenants' scripts do after a copy.
fn script_name(kind: ScriptKind, k: usize) -> String {
    let names: &[&str] = match kind {
        ScriptKind::Health => &["FileVault escrow check", "Battery report", "Battery report"],
        ScriptKind::Management => &["Set computer name", "Install support agent"],
        ScriptKind::Compliance => &["Firewall discovery", "Disk encryption discovery"],
        ScriptKind::Shell => &["FileVault escrow check", "Rosetta check"],
        ScriptKind::CustomAttribute => &["FileVault status"],
    };
    names.get(k).map_or_else(
        || format!("{} {}", kind.collection(), k + 1),
        |n| n.to_string(),
    )
}

fn enrollment_type(os: &str, n: usize) -> &'static str {
    let kinds: &[&'static str] = match os {
        "macOS" => &[
            "appleBulkWithUser",
            "appleBulkWithUser",
            "userEnrollment",
            "appleUserEnrollment",
        ],
        "Windows" => &[
            "windowsAzureADJoin",
            "windowsAutoEnrollment",
            "windowsCoManagement",
        ],
        "iOS" => &["appleBulkWithUser", "appleUserEnrollment"],
        _ => &[
            "androidEnterpriseFullyManaged",
            "androidEnterpriseCorporateWorkProfile",
        ],
    };
    kinds[n % kinds.len()]
}

const RUN_STATES: [&str; 5] = ["success", "fail", "scriptError", "pending", "notApplicable"];
/// `runState` of `deviceManagementScriptDeviceState` (shell and custom-attribute scripts).
const MAC_RUN_STATES: [&str; 4] = ["success", "fail", "pending", "error"];

/// A build for a macOS version, in Apple's form (`23F79` for 14.5): the major release's
/// code, a letter for the minor release, a number.
fn mac_build(version: &str, n: usize) -> String {
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    let letter = (b'A' + (minor.min(25) as u8)) as char;
    format!("{}{letter}{}", major + 9, 30 + (n * 37) % 300)
}

/// The id of a device's `k`-th BitLocker recovery key: a GUID of its own per key, as Entra's
/// key ids are.
pub fn key_id(d: &Device, k: usize) -> String {
    format!("{}{:03x}", &d.id[..33], k % 4096)
}

impl Tenant {
    /// The same seed and sizes give the same tenant, to the byte.
    pub fn generate(devices: usize, mac_share: f64, seed: u64, now: SystemTime) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let users: Vec<(String, String)> = (0..devices.div_ceil(2).max(1))
            .map(|n| (guid(&mut rng), format!("user{n:05}@example.com")))
            .collect();
        let mut list = Vec::with_capacity(devices);
        for n in 0..devices {
            let r: f64 = rng.random();
            let os = if r < mac_share {
                "macOS"
            } else if r < mac_share + (1.0 - mac_share) * 0.85 {
                "Windows"
            } else if rng.random_bool(0.5) {
                "iOS"
            } else {
                "Android"
            };
            let (name, os_version, agent) = match os {
                "macOS" => (
                    format!("MAC-{n:06}"),
                    format!("15.{}", rng.random_range(0..6)),
                    "mdm",
                ),
                "Windows" => {
                    let agent = if rng.random_bool(0.2) {
                        "configurationManagerClientMdm"
                    } else {
                        "mdm"
                    };
                    // Four parts, as Windows reports them: `10.0.22631.3155`.
                    (
                        format!("DESKTOP-{n:06}"),
                        format!(
                            "10.0.2{}.{}",
                            rng.random_range(2261..2631),
                            1000 + (n * 7919) % 3000
                        ),
                        agent,
                    )
                }
                "iOS" => (
                    format!("IPHONE-{n:06}"),
                    format!("18.{}", rng.random_range(0..5)),
                    "mdm",
                ),
                _ => (
                    format!("ANDROID-{n:06}"),
                    format!("{}", rng.random_range(12..16)),
                    "mdm",
                ),
            };
            let encrypted = match os {
                "macOS" | "Windows" => rng.random_bool(0.93),
                _ => true,
            };
            let stale = rng.random_bool(0.04);
            let age = if stale {
                Duration::from_secs(86_400 * rng.random_range(45..400))
            } else {
                Duration::from_secs(rng.random_range(60..86_400 * 7))
            };
            let (user_id, upn) = users[rng.random_range(0..users.len())].clone();
            list.push(Device {
                id: guid(&mut rng),
                name,
                serial: serial(&mut rng),
                user_id,
                upn,
                os,
                os_build: None,
                os_version,
                encrypted,
                last_sync: now.checked_sub(age).unwrap_or(now),
                management_agent: agent,
                azure_ad_device_id: guid(&mut rng),
                // From the index, not the generator, so every other field stays as it was.
                enrollment_type: enrollment_type(os, n),
                owner: if n % 13 == 7 { "personal" } else { "company" },
                reports_unknown: n % 37 == 9,
                join_type: match (os, n % 7) {
                    ("Windows", 2) => "azureADRegistered",
                    ("Windows", 5) => "hybridAzureADJoined",
                    ("Windows", _) => "azureADJoined",
                    _ => "unknown",
                },
                supervised: os != "Windows" && n % 11 != 4,
                architecture: match os {
                    "macOS" if n % 5 == 0 => "x64",
                    "Windows" if n % 9 == 1 => "arm64",
                    "macOS" | "iOS" => "arm64",
                    _ => "x64",
                },
                filevault_state: match (os, n % 23, n % 41) {
                    ("macOS", 8, _) => "escrowNotEnabled",
                    ("macOS", 15, _) => "driveEncryptedByUser",
                    ("macOS", _, 20) => "userDeferredEncryption",
                    _ => "success",
                },
                recovery_keys: Vec::new(),
                laps_backups: Vec::new(),
                escrow_broken: os == "Windows" && n % 29 == 13,
                action_results: Vec::new(),
            });
        }
        // A few devices below the actions' OS cut-offs (Recovery Lock: macOS 11.5; BitLocker key
        // rotation: build 18363).
        for (n, d) in list.iter_mut().enumerate() {
            match d.os {
                "macOS" if n % 17 == 3 => d.os_version = "11.4".into(),
                "Windows" if n % 19 == 5 => d.os_version = "10.0.17763.5329".into(),
                _ => {}
            }
            if d.os == "macOS" {
                d.os_build = Some(mac_build(&d.os_version, n));
            }
        }
        let day = Duration::from_secs(86_400);
        for (n, d) in list.iter_mut().enumerate() {
            let ago = |days: u64| now.checked_sub(day * days as u32).unwrap_or(now);
            match d.os {
                // Earlier rotations, so key age has work to do: 45 and 120 days old, and a few
                // still pending from a run two hours ago.
                "macOS" => {
                    let earlier = |started: SystemTime, completes: SystemTime| ActionResult {
                        action_name: "rotateFileVaultKey".into(),
                        odata_type: None,
                        started,
                        completes,
                        fails: false,
                        error_code: None,
                    };
                    match (n % 6, n % 31) {
                        (_, 4) => d
                            .action_results
                            .push(earlier(now - Duration::from_secs(7200), now + day * 30)),
                        (1, _) => d.action_results.push(earlier(ago(45), ago(45))),
                        (2, _) => d.action_results.push(earlier(ago(120), ago(120))),
                        _ => {}
                    }
                }
                "Windows" => {
                    // A few devices near Entra's cap of 200 recovery keys.
                    let keys = if n % 97 == 11 { 195 } else { 1 + n % 3 };
                    d.recovery_keys = (0..keys)
                        .map(|k| ago(400 - (k as u64 * 2).min(399)))
                        .collect();
                    if matches!(d.join_type, "azureADJoined" | "hybridAzureADJoined") {
                        d.laps_backups.push(ago(1 + (n % 60) as u64));
                    }
                }
                _ => {}
            }
        }
        let directory = Directory::build(&mut list, seed);
        let index = list
            .iter()
            .enumerate()
            .map(|(i, d)| (d.id.clone(), i))
            .collect();
        let mut scripts = Vec::new();
        for (kind, count) in [
            (ScriptKind::Health, 3),
            (ScriptKind::Management, 2),
            (ScriptKind::Compliance, 2),
        ] {
            for k in 0..count {
                let id = guid(&mut rng);
                let mut run_states = Vec::new();
                for (device, d) in list.iter().enumerate() {
                    if rng.random_bool(0.3) {
                        let state = RUN_STATES[rng.random_range(0..RUN_STATES.len())];
                        run_states.push(RunState {
                            id: format!("{id}:{}", d.id),
                            device,
                            state,
                        });
                    }
                }
                let name = script_name(kind, k);
                scripts.push(Script {
                    id,
                    kind,
                    name,
                    run_states,
                });
            }
        }
        // macOS scripts from a generator of their own, so every other part stays as it was.
        let mut mac_rng = StdRng::seed_from_u64(seed ^ 0x5de11);
        for (kind, count) in [(ScriptKind::Shell, 2), (ScriptKind::CustomAttribute, 1)] {
            for k in 0..count {
                let id = guid(&mut mac_rng);
                let mut run_states = Vec::new();
                for (device, d) in list.iter().enumerate() {
                    if d.os == "macOS" && mac_rng.random_bool(0.4) {
                        let state = MAC_RUN_STATES[mac_rng.random_range(0..MAC_RUN_STATES.len())];
                        run_states.push(RunState {
                            id: format!("{id}:{}", d.id),
                            device,
                            state,
                        });
                    }
                }
                scripts.push(Script {
                    id,
                    kind,
                    name: script_name(kind, k),
                    run_states,
                });
            }
        }
        // Two versions of one app are two detected apps with one display name.
        let apps = [
            ("Company Portal", "5.2411.0"),
            ("Legacy VPN Client", "4.1"),
            ("Office", "16.91"),
            ("Browser", "131.0"),
            ("Sample Agent", "2.0"),
            ("Legacy VPN Client", "3.9"),
        ]
        .iter()
        .map(|(name, version)| DetectedApp {
            id: format!("{:064x}", rng.random::<u128>()),
            name: name.to_string(),
            version: version.to_string(),
            devices: (0..list.len()).filter(|_| rng.random_bool(0.25)).collect(),
        })
        .collect();
        Tenant {
            devices: list,
            index,
            scripts,
            apps,
            directory,
            shapes: Shapes::default(),
        }
    }

    pub fn device(&self, id: &str) -> Option<&Device> {
        self.index
            .get(&id.to_ascii_lowercase())
            .map(|&i| &self.devices[i])
    }

    pub fn device_mut(&mut self, id: &str) -> Option<&mut Device> {
        self.index
            .get(&id.to_ascii_lowercase())
            .map(|&i| &mut self.devices[i])
    }

    /// The device list in the Intune admin center's CSV export shape.
    pub fn devices_csv(&self) -> String {
        let mut out = String::from(
            "Device ID,Device name,Enrollment date,Last check-in,Azure AD Device ID,OS version,Azure AD registered,EAS activation ID,Serial number,Manufacturer,Model,EAS activated,IMEI,Last EAS sync time,EAS reason,EAS status,Compliance grace period expiration,Security patch level,Wi-Fi MAC,MEID,Subscriber carrier,Total storage,Free storage,Management name,Category,UserId,Primary user UPN,Primary user email address,Primary user display name,WiFiIPv4Address,WiFiSubnetID,Compliance,Managed by,Ownership,Device state,Intune registered,Supervised,Encrypted,OS,SkuFamily,JoinType,Phone number,Jailbroken,ICCID,EthernetMAC,CellularTechnology,ProcessorArchitecture,EID,EnrollmentType,PartnerFeaturesBitmask,ManagementAgents,CertExpirationDate,IsManaged\n",
        );
        for d in &self.devices {
            let manufacturer = if d.os == "macOS" || d.os == "iOS" {
                "Apple"
            } else {
                "Contoso Hardware"
            };
            let managed_by = if d.comanaged() {
                "Co-managed"
            } else {
                "Intune"
            };
            let last = humantime::format_rfc3339_seconds(d.last_sync)
                .to_string()
                .replace('T', " ")
                .replace('Z', "");
            out.push_str(&format!(
                "{id},{name},2025-01-01 00:00:00,{last},{aad},{osv},Yes,,{serial},{manufacturer},Model,No,,,,,,,,,,,,{name},,{uid},{upn},{upn},\"User, Sample\",,,Compliant,{managed_by},{owner},Active,Yes,{supervised},{enc},{os},,{join},,No,,,,{arch},,,,,,True\n",
                id = d.id,
                name = d.name,
                aad = d.azure_ad_device_id,
                osv = d.os_version_text(&self.shapes),
                serial = d.serial,
                uid = d.user_id,
                upn = d.upn,
                enc = if d.encrypted { "Yes" } else { "No" },
                os = d.os,
                owner = match (d.reports_unknown, d.owner) {
                    (true, _) => "Unknown",
                    (false, "company") => "Corporate",
                    (false, _) => "Personal",
                },
                supervised = if d.supervised { "Yes" } else { "No" },
                join = if d.reports_unknown { "unknown" } else { d.join_type },
                arch = d.architecture,
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_tenant() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let a = Tenant::generate(300, 0.5, 7, now);
        let b = Tenant::generate(300, 0.5, 7, now);
        let c = Tenant::generate(300, 0.5, 8, now);
        assert_eq!(a.devices_csv(), b.devices_csv());
        assert_ne!(a.devices_csv(), c.devices_csv());
    }

    #[test]
    fn mac_share_and_platform_mix_are_respected() {
        let t = Tenant::generate(2000, 0.5, 1, SystemTime::now());
        let macs = t.devices.iter().filter(|d| d.os == "macOS").count();
        assert!((900..1100).contains(&macs), "{macs}");
        assert!(t.devices.iter().any(|d| d.os == "Windows" && d.comanaged()));
        assert!(t.devices.iter().any(|d| d.os == "macOS" && !d.encrypted));
        assert!(t.devices.iter().any(|d| d.os == "iOS" || d.os == "Android"));
        assert_eq!(t.index.len(), 2000, "device ids are unique");
    }
}
