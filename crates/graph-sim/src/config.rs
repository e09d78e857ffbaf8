//! Everything that shapes one simulated tenant; the `graph-sim` flags map onto this one to one.

use crate::Quota;
use std::path::PathBuf;
use std::time::Duration;

/// How `Retry-After` is written on throttled answers, to exercise clients against every observed form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum RetryAfterStyle {
    /// Whole seconds, rounded up (Intune's usual form).
    #[default]
    Int,
    /// Fractional seconds such as "2.128".
    Fraction,
    /// An HTTP-date.
    Date,
    /// "30,120": two numbers, the first one counts.
    Comma,
    /// No Retry-After at all, as Intune has been seen to do.
    None,
}

/// How `deviceActionResults` names an accepted action. Nothing documents the names Intune writes
/// (docs/graph-facts.md §7), so the engine is tried against each plausible style.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ResultNames {
    /// The endpoint's name: `rotateFileVaultKey`.
    #[default]
    Graph,
    /// Pascal case: `RotateFileVaultKey`.
    Pascal,
    /// Another name holding the keyword: `FileVaultKeyRotation`, `BitLockerKeyRotation`.
    Keyword,
    /// A derived `@odata.type` naming the action, with the unrelated `actionName` `deviceAction`.
    Typed,
    /// This name for every action: one no rule of a client knows.
    Other(String),
}

impl ResultNames {
    /// `actionName` and `@odata.type` of a result of the action posted as `action`.
    pub fn of(&self, action: &str) -> (String, Option<String>) {
        match self {
            ResultNames::Graph => (action.to_string(), None),
            ResultNames::Pascal => {
                let mut c = action.chars();
                let pascal = c
                    .next()
                    .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                    .unwrap_or_default();
                (pascal, None)
            }
            ResultNames::Keyword => {
                let name = match action {
                    "rotateFileVaultKey" => "FileVaultKeyRotation",
                    "rotateBitLockerKeys" => "BitLockerKeyRotation",
                    "rotateLocalAdminPassword" => "LocalAdminPasswordRotation",
                    "rotateRecoveryLockPasscode" => "RecoveryLockPasscodeRotation",
                    other => other,
                };
                (name.to_string(), None)
            }
            // As the schema names them: `rotateBitLockerKeysDeviceActionResult`,
            // `locateDeviceActionResult`. Of the rotate actions only BitLocker's has a type of
            // its own (graph-facts §11); the others are plain results under their name.
            ResultNames::Typed => match action {
                "rotateBitLockerKeys" | "locateDevice" => {
                    let stem = action.strip_suffix("Device").unwrap_or(action);
                    (
                        "deviceAction".to_string(),
                        Some(format!("#microsoft.graph.{stem}DeviceActionResult")),
                    )
                }
                _ => (action.to_string(), None),
            },
            ResultNames::Other(name) => (name.clone(), None),
        }
    }
}

impl std::str::FromStr for ResultNames {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "graph" => Ok(ResultNames::Graph),
            "pascal" => Ok(ResultNames::Pascal),
            "keyword" => Ok(ResultNames::Keyword),
            "typed" => Ok(ResultNames::Typed),
            _ => match s.strip_prefix("other=") {
                Some(name) if !name.is_empty() => Ok(ResultNames::Other(name.to_string())),
                _ => Err(format!(
                    "unknown style {s:?}: expected graph, pascal, keyword, typed or other=NAME"
                )),
            },
        }
    }
}

/// The simulated tenant and its behaviour.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub devices: usize,
    pub mac_share: f64,
    pub seed: u64,
    pub tenant: String,
    /// The tenant's display name (`/_sim/tenants`).
    pub tenant_name: String,
    /// Whether the app is consented in this tenant; if not, sign-in answers AADSTS7000229.
    pub consented: bool,
    pub client_id: String,
    pub client_secret: String,
    /// Further app registrations (client id, secret), e.g. a competing client in benchmarks.
    pub extra_clients: Vec<(String, String)>,
    /// PEM of a client certificate registered for assertions.
    pub certificate: Option<String>,
    pub roles: Vec<String>,
    pub token_lifetime: Duration,
    /// Tokens are refused (401) this long after issue, although they advertise a longer life: a
    /// revocation mid-run, which a client must absorb with one refresh.
    pub revoke_tokens_after: Option<Duration>,
    /// Device code sign-in: the simulated admin approves the code this long after it was issued.
    pub device_code_approve_after: Duration,
    /// Device code sign-in: the polling interval the code asks for.
    pub device_code_interval: Duration,
    pub complete_after: Duration,
    pub fail_share: f64,
    pub post_limit: Quota,
    pub tenant_post_limit: Quota,
    pub any_limit: Quota,
    pub retry_after_style: RetryAfterStyle,
    /// What the service does with requests beyond the limit.
    pub throttle_model: crate::ThrottleModel,
    pub latency: Duration,
    pub p429: f64,
    pub p503: f64,
    pub p500: f64,
    pub p504: f64,
    /// Share of single-device GETs answered 500 (listings and actions are not): reads that fail
    /// alone, as a look-up may meet them.
    pub read_p500: f64,
    pub drop: f64,
    pub truncate: f64,
    /// Share of HTTP requests holding actions whose connection drops before the answer, and whose
    /// actions are carried out later (between half of `late_max` and `late_max`): a look-up soon after the
    /// lost answer does not see them yet.
    pub late: f64,
    pub late_max: Duration,
    /// Share of accepted action requests answered 429 although the action was carried out.
    pub ghost_429: f64,
    /// Share of whole `$batch` requests answered 429 (outer status) without running any item.
    pub batch_p429: f64,
    /// Share of whole `$batch` requests answered 503 without running any item.
    pub batch_p503: f64,
    /// After this many listing pages, every further page answers 500 (a listing that fails part-way).
    pub list_fail_after_pages: Option<u64>,
    /// How action results are named.
    pub action_result_names: ResultNames,
    /// Each accepted action also leaves unrelated results (`locateDevice`, `getFileVaultKey`, as an
    /// admin's other work would) on the next device of the tenant: a client must not take them for
    /// its own.
    pub decoy_results: bool,
    /// What device and name listings do with a `$filter` clause they do not support.
    pub filter_mode: crate::FilterMode,
    /// Serve https with a certificate made at start (`SimHandle::ca_pem` is its CA).
    pub tls: bool,
    /// How answers are shaped where real tenants differ from the simple reading (graph-facts §11).
    pub shapes: crate::Shapes,
    /// Sets the directory audit log's retention (7 days Free, 30 days P1/P2).
    pub entra_license: crate::EntraLicense,
    /// How audit events are written: delays, duplicates, names (graph-facts §12).
    pub audit: crate::audit::AuditShape,
    /// The directory audit log's limit per app per tenant, and per app across tenants.
    pub audit_limit: Quota,
    pub audit_app_limit: Quota,
    /// Managed identity, GitHub's OIDC endpoint and the federated credential.
    pub identity: IdentityConfig,
}

pub const DEFAULT_TENANT: &str = "5e1f0c2a-7d3b-4c8e-9a61-0b2d4f6e8a10";

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            devices: 1000,
            mac_share: 0.6,
            seed: 1,
            tenant: DEFAULT_TENANT.into(),
            tenant_name: "Contoso (simulated)".into(),
            consented: true,
            client_id: "sim-client".into(),
            client_secret: "sim-secret".into(),
            extra_clients: Vec::new(),
            certificate: None,
            roles: crate::ALL_ROLES.iter().map(|r| r.to_string()).collect(),
            token_lifetime: Duration::from_secs(3599),
            revoke_tokens_after: None,
            device_code_approve_after: Duration::from_secs(2),
            device_code_interval: Duration::from_secs(1),
            complete_after: Duration::from_secs(30),
            fail_share: 0.0,
            post_limit: Quota::new(200, Duration::from_secs(20)),
            tenant_post_limit: Quota::new(400, Duration::from_secs(20)),
            any_limit: Quota::new(2000, Duration::from_secs(20)),
            retry_after_style: RetryAfterStyle::Int,
            throttle_model: crate::ThrottleModel::Accrue,
            latency: Duration::ZERO,
            p429: 0.0,
            p503: 0.0,
            p500: 0.0,
            read_p500: 0.0,
            p504: 0.0,
            drop: 0.0,
            truncate: 0.0,
            late: 0.0,
            late_max: Duration::from_secs(20),
            ghost_429: 0.0,
            batch_p429: 0.0,
            batch_p503: 0.0,
            list_fail_after_pages: None,
            action_result_names: ResultNames::Graph,
            decoy_results: false,
            filter_mode: crate::FilterMode::Ignore,
            tls: false,
            shapes: crate::Shapes::default(),
            entra_license: crate::EntraLicense::Free,
            audit: crate::audit::AuditShape::default(),
            audit_limit: Quota::new(5, Duration::from_secs(10)),
            audit_app_limit: Quota::new(122, Duration::from_secs(10)),
            identity: IdentityConfig::default(),
        }
    }
}

/// How a managed identity endpoint writes `expires_on`. Sources show both forms, and some
/// answers carry only `expires_in`; the date string is the harder one to read, so it is the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ExpiresOnForm {
    /// `12/03/2026 07:18:00 +00:00`, App Service's older form.
    #[default]
    Date,
    /// Seconds since the epoch, as a string (`"1796282280"`).
    Epoch,
    /// No `expires_on`; only `expires_in`.
    Absent,
}

/// The ids of the one user-assigned identity the resource has.
#[derive(Debug, Clone)]
pub struct UserIdentity {
    pub client_id: String,
    pub object_id: String,
    pub resource_id: String,
}

/// What the credential endpoints accept.
#[derive(Debug, Clone)]
pub struct IdentityConfig {
    /// The `X-IDENTITY-HEADER` value App Service's endpoint requires (`IDENTITY_HEADER`).
    pub header: String,
    /// The bearer GitHub's token endpoint requires (`ACTIONS_ID_TOKEN_REQUEST_TOKEN`).
    pub gha_request_token: String,
    /// The system-assigned identity's app id.
    pub system_client_id: String,
    pub user_assigned: UserIdentity,
    pub expires_on: ExpiresOnForm,
    /// Where Arc's challenge writes its key file; a folder of the temporary directory by default.
    pub arc_key_dir: Option<PathBuf>,
    /// The subject the app's federated credential trusts.
    pub federated_subject: String,
    /// How long minted federated assertions live.
    pub federated_lifetime: Duration,
    /// A file kept holding a valid federated assertion, rewritten at half its lifetime.
    pub federated_token_out: Option<PathBuf>,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        IdentityConfig {
            header: "sim-identity-header".into(),
            gha_request_token: "sim-gha".into(),
            system_client_id: "7c2e9a41-5b3d-4f86-8e10-2a9d4c6b0f31".into(),
            user_assigned: UserIdentity {
                client_id: "a41d7e02-93c5-4b18-b6f2-0e8c5d3a9b74".into(),
                object_id: "1b8f6c3d-2e4a-4d97-a051-7c9e3f2b6d18".into(),
                resource_id: "/subscriptions/00000000-0000-4000-8000-000000000001/resourceGroups/rotation/providers/Microsoft.ManagedIdentity/userAssignedIdentities/rotation-sim".into(),
            },
            expires_on: ExpiresOnForm::Date,
            arc_key_dir: None,
            federated_subject: "repo:example-org/fleet-rotation:ref:refs/heads/main".into(),
            federated_lifetime: Duration::from_secs(600),
            federated_token_out: None,
        }
    }
}
