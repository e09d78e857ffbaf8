//! A simulated Intune tenant that speaks Microsoft Graph.
//!
//! The real service cannot be reached from test machines, so every test, benchmark and the demo run
//! against this. It reproduces the behaviours listed in `docs/graph-facts.md`: the token endpoint,
//! paged device listings, the beta rotate actions on every navigation path, `$batch` with per-item
//! throttling on sliding 20 s windows, Retry-After in every observed style, penalties for clients that
//! ignore it, and seeded faults. `GET /_sim/stats` says exactly what was accepted.

mod audit;
mod auth;
mod batch;
mod config;
mod directory;
mod federation;
mod filter;
mod fleet;
mod graph;
mod identity;
mod mail;
mod odata;
mod select;
mod server;
mod shapes;
mod stats;
mod tenant;
mod throttle;
mod time;
mod tls;
mod wire;

pub use audit::{AuditShape, EntraLicense, LapsTarget};
pub use auth::RegisteredCert;
pub use config::{
    DEFAULT_TENANT, ExpiresOnForm, IdentityConfig, ResultNames, RetryAfterStyle, SimConfig,
    UserIdentity,
};
pub use directory::{Directory, EntraDevice, Group, Member, User, ZERO_ID};
pub use federation::EXCHANGE_AUDIENCE;
pub use filter::FilterMode;
pub use graph_batch::{Quota, QuotaParseError};
pub use server::{SimHandle, start, start_fleet, start_on};
pub use shapes::{
    ActionPermissions, DeviceFilters, EntityForm, ListResults, MemberCasts, OsVersionForm,
    ReportIds, ScriptPlatforms, Shapes, ShapesPreset, TimeForm, UnknownMembers,
};
pub use stats::Stats;
pub use tenant::{Answer, DEVICE_FILTERS, DOCUMENTED_DEVICE_FILTERS, Device, Tenant};
pub use throttle::ThrottleModel;

/// Every Graph permission the simulator knows; tokens carry all of them unless told otherwise.
pub const ALL_ROLES: &[&str] = &[
    "DeviceManagementManagedDevices.PrivilegedOperations.All",
    "DeviceManagementManagedDevices.ReadWrite.All",
    "DeviceManagementManagedDevices.Read.All",
    "DeviceManagementConfiguration.Read.All",
    "User.Read.All",
    "GroupMember.Read.All",
    "Device.Read.All",
    "BitLockerKey.ReadBasic.All",
    "DeviceLocalCredential.ReadBasic.All",
    "AuditLog.Read.All",
    "Directory.Read.All",
    "DeviceManagementApps.Read.All",
    "Mail.Send",
];
