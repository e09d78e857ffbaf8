//! The Microsoft Graph permissions the tool asks for, checks in a token, or names when one is
//! missing: one enum, so that each permission's Graph name is written once.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Permission {
    /// Reading managed devices and their action results.
    ManagedDevicesRead,
    /// BitLocker, Recovery Lock and LAPS rotation.
    ManagedDevicesReadWrite,
    /// FileVault and LAPS rotation.
    PrivilegedOperations,
    /// Device filters, shell and custom attribute scripts.
    ConfigurationRead,
    ConfigurationReadWrite,
    /// Intune's audit events, and detected apps.
    AppsRead,
    /// Entra group members.
    GroupMemberRead,
    /// Entra groups and their members.
    GroupRead,
    /// Entra devices (a group's devices, a key's device).
    DeviceRead,
    /// Entra's directory audit log, and what Device.Read.All reads.
    DirectoryRead,
    /// Entra's directory audit log.
    AuditLogRead,
    /// BitLocker recovery keys' metadata (when a key was last backed up).
    BitLockerKeyReadBasic,
    BitLockerKeyRead,
    /// Windows LAPS metadata (when a password was last backed up).
    LocalCredentialReadBasic,
    LocalCredentialRead,
    /// A run's notification by mail.
    MailSend,
}

impl Permission {
    pub const ALL: [Permission; 16] = [
        Permission::ManagedDevicesRead,
        Permission::ManagedDevicesReadWrite,
        Permission::PrivilegedOperations,
        Permission::ConfigurationRead,
        Permission::ConfigurationReadWrite,
        Permission::AppsRead,
        Permission::GroupMemberRead,
        Permission::GroupRead,
        Permission::DeviceRead,
        Permission::DirectoryRead,
        Permission::AuditLogRead,
        Permission::BitLockerKeyReadBasic,
        Permission::BitLockerKeyRead,
        Permission::LocalCredentialReadBasic,
        Permission::LocalCredentialRead,
        Permission::MailSend,
    ];

    /// The name Graph gives it, in tokens' `roles` and `scp` and in consent.
    pub fn name(self) -> &'static str {
        match self {
            Permission::ManagedDevicesRead => "DeviceManagementManagedDevices.Read.All",
            Permission::ManagedDevicesReadWrite => "DeviceManagementManagedDevices.ReadWrite.All",
            Permission::PrivilegedOperations => {
                "DeviceManagementManagedDevices.PrivilegedOperations.All"
            }
            Permission::ConfigurationRead => "DeviceManagementConfiguration.Read.All",
            Permission::ConfigurationReadWrite => "DeviceManagementConfiguration.ReadWrite.All",
            Permission::AppsRead => "DeviceManagementApps.Read.All",
            Permission::GroupMemberRead => "GroupMember.Read.All",
            Permission::GroupRead => "Group.Read.All",
            Permission::DeviceRead => "Device.Read.All",
            Permission::DirectoryRead => "Directory.Read.All",
            Permission::AuditLogRead => "AuditLog.Read.All",
            Permission::BitLockerKeyReadBasic => "BitLockerKey.ReadBasic.All",
            Permission::BitLockerKeyRead => "BitLockerKey.Read.All",
            Permission::LocalCredentialReadBasic => "DeviceLocalCredential.ReadBasic.All",
            Permission::LocalCredentialRead => "DeviceLocalCredential.Read.All",
            Permission::MailSend => "Mail.Send",
        }
    }

    /// The names of `permissions`, as a token or a consent lists them.
    pub fn names(permissions: &[Permission]) -> Vec<&'static str> {
        permissions.iter().map(|p| p.name()).collect()
    }

    /// `permissions` in words, joined by `and` or `or`.
    pub fn joined(permissions: &[Permission], word: &str) -> String {
        Permission::names(permissions).join(&format!(" {word} "))
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is none of the permissions the tool knows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown permission {0:?}")]
pub struct UnknownPermission(pub String);

impl FromStr for Permission {
    type Err = UnknownPermission;
    /// Graph compares permission names without regard to case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Permission::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| UnknownPermission(s.to_string()))
    }
}

impl Serialize for Permission {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Permission {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_permission_reads_back_from_its_graph_name_in_any_case() {
        for p in Permission::ALL {
            assert_eq!(p.name().parse::<Permission>(), Ok(p));
            assert_eq!(p.name().to_ascii_lowercase().parse::<Permission>(), Ok(p));
        }
    }

    #[test]
    fn a_name_graph_does_not_give_is_refused_with_the_name() {
        let e = "DeviceManagementManagedDevices.Everything".parse::<Permission>();
        assert_eq!(
            e,
            Err(UnknownPermission(
                "DeviceManagementManagedDevices.Everything".into()
            ))
        );
    }

    #[test]
    fn it_is_written_as_its_graph_name() {
        let json = serde_json::to_string(&Permission::MailSend).unwrap();
        assert_eq!(json, "\"Mail.Send\"");
        assert_eq!(
            serde_json::from_str::<Permission>(&json).unwrap(),
            Permission::MailSend
        );
    }
}
