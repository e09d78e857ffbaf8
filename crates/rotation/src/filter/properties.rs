//! The `managedDevice` properties a `--query` filter may name, with the type each compares as.
//! A name outside this list is refused before any request: a misspelt property is exactly the
//! clause the service would silently drop (docs/graph-facts.md §7).

/// How a property's values compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Text, compared without regard to case, as Graph does.
    Text,
    /// An enumeration, written as a string or `namespace.type'member'`; `eq` and `ne` only.
    Enum,
    Bool,
    /// A whole number (Graph's Int32/Int64).
    Number,
    /// `DateTimeOffset`, written unquoted: `2026-01-31T00:00:00Z`.
    DateTime,
}

/// A property, named as Graph spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Property {
    pub name: &'static str,
    pub kind: Kind,
}

use Kind::*;

/// The beta `managedDevice` properties that can sensibly select devices (secrets and nested
/// objects are left out).
pub const PROPERTIES: &[Property] = &[
    p("id", Text),
    p("deviceName", Text),
    p("managedDeviceName", Text),
    p("serialNumber", Text),
    p("userId", Text),
    p("userPrincipalName", Text),
    p("userDisplayName", Text),
    p("emailAddress", Text),
    p("operatingSystem", Text),
    p("osVersion", Text),
    p("model", Text),
    p("manufacturer", Text),
    p("imei", Text),
    p("meid", Text),
    p("azureADDeviceId", Text),
    p("deviceCategoryDisplayName", Text),
    p("enrollmentProfileName", Text),
    p("skuFamily", Text),
    p("wiFiMacAddress", Text),
    p("ethernetMacAddress", Text),
    p("notes", Text),
    p("complianceState", Enum),
    p("managementAgent", Enum),
    p("managedDeviceOwnerType", Enum),
    p("ownerType", Enum),
    p("deviceEnrollmentType", Enum),
    p("deviceRegistrationState", Enum),
    p("deviceType", Enum),
    p("joinType", Enum),
    p("managementState", Enum),
    p("exchangeAccessState", Enum),
    p("partnerReportedThreatState", Enum),
    p("processorArchitecture", Enum),
    p("lostModeState", Enum),
    p("isEncrypted", Bool),
    p("isSupervised", Bool),
    p("jailBroken", Text),
    p("azureADRegistered", Bool),
    p("autopilotEnrolled", Bool),
    p("aadRegistered", Bool),
    p("totalStorageSpaceInBytes", Number),
    p("freeStorageSpaceInBytes", Number),
    p("physicalMemoryInBytes", Number),
    p("lastSyncDateTime", DateTime),
    p("enrolledDateTime", DateTime),
    p("complianceGracePeriodExpirationDateTime", DateTime),
    p("managementCertificateExpirationDate", DateTime),
];

const fn p(name: &'static str, kind: Kind) -> Property {
    Property { name, kind }
}

/// The property named `name`, in any case (Graph treats property names case-insensitively).
pub fn lookup(name: &str) -> Option<Property> {
    PROPERTIES
        .iter()
        .copied()
        .find(|p| p.name.eq_ignore_ascii_case(name))
}
