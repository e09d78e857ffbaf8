//! The names a device list's columns go by: Intune's export, PowerShell's, Graph's, ours.

/// Which column identifies a row: the Intune id, or what `--match-by` resolves from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyColumn {
    #[default]
    IntuneId,
    Serial,
    Name,
    EntraId,
}

/// Column names (lower case, without spaces and underscores) that hold the Intune managed device id.
pub(crate) const ID_COLUMNS: &[&str] = &["id", "manageddeviceid", "deviceid", "intunedeviceid"];
/// Columns holding the Entra (Azure AD) device id: a different id that must never be posted.
pub(crate) const ENTRA_COLUMNS: &[&str] = &[
    "azureaddeviceid",
    "aaddeviceid",
    "entradeviceid",
    "entraid",
    "azureadid",
    "objectid",
];
pub(crate) const NAME_COLUMNS: &[&str] = &["devicename", "name", "managementname"];
pub(crate) const SERIAL_COLUMNS: &[&str] = &["serialnumber", "serial"];
pub(crate) const USER_COLUMNS: &[&str] = &[
    "userprincipalname",
    "primaryuserupn",
    "upn",
    "user",
    "primaryuseremailaddress",
];
pub(crate) const OS_COLUMNS: &[&str] = &["operatingsystem", "os", "platform"];
pub(crate) const ENCRYPTED_COLUMNS: &[&str] = &["isencrypted", "encrypted"];
pub(crate) const OS_VERSION_COLUMNS: &[&str] = &["osversion"];
/// Graph's name, and the admin center export's `Ownership`.
pub(crate) const OWNER_COLUMNS: &[&str] = &["manageddeviceownertype", "ownership", "ownertype"];
pub(crate) const JOIN_COLUMNS: &[&str] = &["jointype"];
pub(crate) const SUPERVISED_COLUMNS: &[&str] = &["issupervised", "supervised"];
pub(crate) const ARCHITECTURE_COLUMNS: &[&str] = &["processorarchitecture", "architecture"];
pub(crate) const LAST_SYNC_COLUMNS: &[&str] = &[
    "lastsyncdatetime",
    "lastcheckin",
    "lastcheckindatetime",
    "lastsync",
];

/// The column names this tool writes (`devices`, Graph sources), readable back as `--input`; also
/// the `$select` of every device listing, so a listing reads exactly what a row holds.
pub const DEVICE_COLUMNS: [&str; 13] = [
    "id",
    "deviceName",
    "serialNumber",
    "userPrincipalName",
    "operatingSystem",
    "isEncrypted",
    "lastSyncDateTime",
    "azureADDeviceId",
    "osVersion",
    "managedDeviceOwnerType",
    "joinType",
    "isSupervised",
    "processorArchitecture",
];

/// The `$select` of a device listing: [`DEVICE_COLUMNS`].
pub fn device_select() -> String {
    DEVICE_COLUMNS.join(",")
}

pub(crate) fn key_columns(key: KeyColumn) -> &'static [&'static str] {
    match key {
        KeyColumn::IntuneId => ID_COLUMNS,
        KeyColumn::Serial => SERIAL_COLUMNS,
        KeyColumn::Name => NAME_COLUMNS,
        KeyColumn::EntraId => ENTRA_COLUMNS,
    }
}

/// A header as compared: case, spaces, `_`, `-` and a BOM ignored.
pub(crate) fn norm(h: &str) -> String {
    h.trim()
        .trim_start_matches('\u{feff}')
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '_' && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}
