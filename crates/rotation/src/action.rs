//! The rotate actions: Graph's name, the platform each applies to, the permission it needs.

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    FileVault,
    RecoveryLock,
    BitLocker,
    Laps,
}

impl Action {
    pub const ALL: [Action; 4] = [
        Action::FileVault,
        Action::RecoveryLock,
        Action::BitLocker,
        Action::Laps,
    ];

    /// The CLI spelling (`--action filevault`).
    pub fn cli_name(self) -> &'static str {
        match self {
            Action::FileVault => "filevault",
            Action::RecoveryLock => "recovery-lock",
            Action::BitLocker => "bitlocker",
            Action::Laps => "laps",
        }
    }

    /// The Graph action segment, also the `actionName` in `deviceActionResults`.
    pub fn graph_name(self) -> &'static str {
        match self {
            Action::FileVault => "rotateFileVaultKey",
            Action::RecoveryLock => "rotateRecoveryLockPasscode",
            Action::BitLocker => "rotateBitLockerKeys",
            Action::Laps => "rotateLocalAdminPassword",
        }
    }

    /// `operatingSystem` of the devices the action applies to.
    pub fn platform(self) -> &'static str {
        match self {
            Action::FileVault | Action::RecoveryLock => "macOS",
            Action::BitLocker | Action::Laps => "Windows",
        }
    }

    /// The application permission the action needs (graph-facts §1).
    pub fn permission(self) -> &'static str {
        match self {
            Action::FileVault => "DeviceManagementManagedDevices.PrivilegedOperations.All",
            Action::RecoveryLock | Action::BitLocker => {
                "DeviceManagementManagedDevices.ReadWrite.All"
            }
            Action::Laps => "DeviceManagementManagedDevices.PrivilegedOperations.All",
        }
    }

    /// The relative URL of the action for one (already validated) device id.
    pub fn path(self, device: &uuid::Uuid, via: &str) -> String {
        format!("/deviceManagement/{via}/{device}/{}", self.graph_name())
    }
}

impl FromStr for Action {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Action::ALL
            .into_iter()
            .find(|a| {
                a.cli_name().eq_ignore_ascii_case(s) || a.graph_name().eq_ignore_ascii_case(s)
            })
            .ok_or_else(|| {
                format!(
                    "unknown action {s:?}: expected filevault, recovery-lock, bitlocker or laps"
                )
            })
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.cli_name())
    }
}
