//! What real tenants answer where it differs from the simple reading of the docs
//! (docs/graph-facts.md §11). Each fact defaults to the harsher form the sources show; the kinder
//! form, which the simulator gave before, stays behind a flag so a client is tried against both.

use std::time::SystemTime;

/// How `osVersion` is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OsVersionForm {
    /// macOS with its build, `14.5 (23F79)`, as real tenants list it.
    #[default]
    WithBuild,
    /// macOS as a bare number, `14.5`.
    Plain,
}

/// What a device listing says of `deviceActionResults`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ListResults {
    /// Empty in list answers, filled on a single-device GET (reported against the Intune samples
    /// and the PowerShell SDK).
    #[default]
    Omitted,
    /// Filled in list answers too.
    Included,
}

/// Which devices script run states hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ScriptPlatforms {
    /// As the SDK's models say: health and management scripts run PowerShell on Windows, shell and
    /// custom-attribute scripts run on Macs, compliance scripts on Windows, macOS and Linux.
    #[default]
    AsModelled,
    /// Any device in any script's run states.
    Any,
}

/// What Entra does with a member listing cast to a type (`transitiveMembers/microsoft.graph.device`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum MemberCasts {
    /// An advanced query: refused with 400 `Request_UnsupportedQuery` without
    /// `ConsistencyLevel: eventual` and `$count=true`, as the page says.
    #[default]
    AdvancedQuery,
    /// Served without them.
    Plain,
}

/// How a single Intune entity (a managed device, a LAPS credential) is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum EntityForm {
    /// Wrapped, `{"value": {…}}`, as the documentation shows it.
    #[default]
    Wrapped,
    /// The entity's properties at the top level, as scripts on real tenants read it.
    TopLevel,
}

/// How timestamps are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum TimeForm {
    /// With an offset and seven fraction digits, `2016-12-31T23:58:46.7156189-08:00`, as the
    /// documentation's examples are.
    #[default]
    Offset,
    /// UTC with a `Z` and whole seconds.
    Utc,
}

/// Which permissions a rotate action accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ActionPermissions {
    /// As each action's page lists them: FileVault `PrivilegedOperations.All`, BitLocker and
    /// Recovery Lock `ManagedDevices.ReadWrite.All`, LAPS either of the two.
    #[default]
    AsDocumented,
    /// Either of the two for every action, and LAPS also the read permissions its page lists.
    Broad,
}

/// Whether `unknown`, a documented member of `joinType` and `managedDeviceOwnerType`, is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum UnknownMembers {
    /// Some devices whose join type or ownership the service does not know say `unknown`.
    #[default]
    Present,
    /// Every device says what it is.
    Absent,
}

/// Which `$filter` properties a managed-device listing applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum DeviceFilters {
    /// Only those the SDK documents (deviceName, lastSyncDateTime, …); others are ignored or
    /// refused as `--filter-mode` says, `operatingSystem` among them.
    #[default]
    Documented,
    /// Also those seen to work in practice (`operatingSystem`, `isEncrypted`, `serialNumber`, …).
    Practice,
}

/// What the encryption report's `id` is, documented only as "Key of the entity".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ReportIds {
    /// The managed device's id, as the admin center joins it.
    #[default]
    ManagedDevice,
    /// A key of the report's own, which matches no device (what the documentation leaves open).
    Own,
}

/// Every form, chosen one by one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Shapes {
    pub os_versions: OsVersionForm,
    pub list_results: ListResults,
    pub script_platforms: ScriptPlatforms,
    pub member_casts: MemberCasts,
    pub entities: EntityForm,
    pub times: TimeForm,
    pub action_permissions: ActionPermissions,
    pub unknown_members: UnknownMembers,
    pub device_filters: DeviceFilters,
    pub report_ids: ReportIds,
}

/// A preset of every form at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ShapesPreset {
    /// What real tenants answer (the default).
    #[default]
    Real,
    /// The simple reading every client was first written against.
    Simple,
}

impl Shapes {
    /// Every form the kinder one.
    pub fn simple() -> Self {
        Shapes {
            os_versions: OsVersionForm::Plain,
            list_results: ListResults::Included,
            script_platforms: ScriptPlatforms::Any,
            member_casts: MemberCasts::Plain,
            entities: EntityForm::TopLevel,
            times: TimeForm::Utc,
            action_permissions: ActionPermissions::Broad,
            unknown_members: UnknownMembers::Absent,
            device_filters: DeviceFilters::Practice,
            report_ids: ReportIds::ManagedDevice,
        }
    }

    pub fn preset(p: ShapesPreset) -> Self {
        match p {
            ShapesPreset::Real => Shapes::default(),
            ShapesPreset::Simple => Shapes::simple(),
        }
    }

    /// A timestamp in this tenant's form.
    pub fn time(&self, t: SystemTime) -> String {
        match self.times {
            TimeForm::Utc => crate::time::iso(t),
            TimeForm::Offset => crate::time::with_offset(t),
        }
    }
}
