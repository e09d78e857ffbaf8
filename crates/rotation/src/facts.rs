//! What the tenant said of one device beyond the listing: the data the plan's policy reads, kept
//! apart from the reading of it (`device_facts.rs`).

use crate::SkipKind;

/// One device's facts; `None` where the tenant said nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceFacts {
    /// When the action was last carried out (the newest `done` result, recovery key or backup).
    pub last_rotated: Option<String>,
    /// When a result of the action still pending or active started.
    pub pending_since: Option<String>,
    /// The encryption report's `fileVaultStates`.
    pub filevault_states: Option<String>,
    /// BitLocker recovery keys Entra holds for the device.
    pub recovery_keys: Option<usize>,
    /// Key age was asked for but cannot be read (no Entra device id).
    pub age_unknown: bool,
    /// The newest read of its secret, in a run over views.
    pub viewed: Option<crate::views::View>,
}

/// The encryption report's flags that mean Intune cannot rotate the FileVault key.
pub const FILEVAULT_BLOCKERS: [(&str, SkipKind, &str); 3] = [
    (
        "escrowNotEnabled",
        SkipKind::EscrowNotEnabled,
        "the FileVault key is not escrowed to Intune",
    ),
    (
        "driveEncryptedByUser",
        SkipKind::DriveEncryptedByUser,
        "FileVault was turned on by the user, not by an Intune policy",
    ),
    (
        "userDeferredEncryption",
        SkipKind::UserDeferredEncryption,
        "the user deferred FileVault",
    ),
];
