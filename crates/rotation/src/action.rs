//! The rotate actions: Graph's name, the platform each applies to, the permission it needs.

use crate::Permission;
use serde::{Deserialize, Serialize};
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

    /// The Graph action segment; results in `deviceActionResults` may be named otherwise
    /// ([`ResultMatcher`]).
    pub fn graph_name(self) -> &'static str {
        match self {
            Action::FileVault => "rotateFileVaultKey",
            Action::RecoveryLock => "rotateRecoveryLockPasscode",
            Action::BitLocker => "rotateBitLockerKeys",
            Action::Laps => "rotateLocalAdminPassword",
        }
    }

    /// The derived result type naming the action, as the beta schema names
    /// `rotateBitLockerKeysDeviceActionResult`.
    pub fn derived_type(self) -> String {
        format!("#microsoft.graph.{}DeviceActionResult", self.graph_name())
    }

    /// Other spellings a result of this action may carry: the singular and plural slips, and the
    /// name of the Windows setting behind a BitLocker rotation (`RotateRecoveryPasswords`).
    pub fn aliases(self) -> &'static [&'static str] {
        match self {
            Action::FileVault => &["rotateFileVaultKeys"],
            Action::RecoveryLock => &["rotateRecoveryLockPassword"],
            Action::BitLocker => &["rotateBitLockerKey", "rotateRecoveryPasswords"],
            Action::Laps => &["rotateLocalAdministratorPassword"],
        }
    }

    /// Words that, in a result's name, say it is this action (lower case).
    pub fn keywords(self) -> &'static [&'static str] {
        match self {
            Action::FileVault => &["filevault"],
            Action::RecoveryLock => &["recoverylock"],
            Action::BitLocker => &["bitlocker"],
            Action::Laps => &["localadminpassword", "laps"],
        }
    }

    /// `operatingSystem` of the devices the action applies to.
    /// The secret the action replaces, as people name it.
    pub fn secret(self) -> &'static str {
        match self {
            Action::FileVault => "FileVault recovery key",
            Action::RecoveryLock => "Recovery Lock passcode",
            Action::BitLocker => "BitLocker recovery keys",
            Action::Laps => "Windows LAPS password",
        }
    }

    pub fn platform(self) -> &'static str {
        match self {
            Action::FileVault | Action::RecoveryLock => "macOS",
            Action::BitLocker | Action::Laps => "Windows",
        }
    }

    /// The application permission the action needs, the first its page lists (graph-facts §11).
    pub fn permission(self) -> Permission {
        self.permissions()[0]
    }

    /// The permissions that carry the action out, as its page lists them (graph-facts §11):
    /// FileVault `PrivilegedOperations.All` alone, BitLocker and Recovery Lock
    /// `ManagedDevices.ReadWrite.All` alone (a token with only `PrivilegedOperations.All` is
    /// refused with 403 on every device), LAPS either.
    pub fn permissions(self) -> &'static [Permission] {
        match self {
            Action::FileVault => &[Permission::PrivilegedOperations],
            Action::RecoveryLock | Action::BitLocker => &[Permission::ManagedDevicesReadWrite],
            Action::Laps => &[
                Permission::PrivilegedOperations,
                Permission::ManagedDevicesReadWrite,
            ],
        }
    }

    /// Permissions a page lists that look like a documentation error: the LAPS page lists read
    /// permissions only. A token holding only these is let through with a warning.
    pub fn doubtful_permissions(self) -> &'static [Permission] {
        match self {
            Action::Laps => &[
                Permission::ManagedDevicesRead,
                Permission::ConfigurationRead,
            ],
            _ => &[],
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

/// Which rule recognised a `deviceActionResults` entry as our action, most confident first
/// (docs/graph-facts.md §7). The ledger records it beside each verified state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MatchRule {
    /// The result's `@odata.type` is the action's derived type.
    ODataType,
    /// `actionName` is the Graph name, case ignored.
    GraphName,
    /// `actionName` is a known alias, or one given for the run (`--result-name`).
    Alias,
    /// `actionName` holds the action's keyword.
    Keyword,
}

impl fmt::Display for MatchRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MatchRule::ODataType => "@odata.type",
            MatchRule::GraphName => "graph name",
            MatchRule::Alias => "alias",
            MatchRule::Keyword => "keyword",
        })
    }
}

/// Other actions whose names hold one of our keywords: never ours (lower case).
const OTHER_ACTIONS: &[&str] = &["getfilevaultkey"];

/// Recognises our action's results in `deviceActionResults`, whatever Intune names them.
#[derive(Debug, Clone)]
pub struct ResultMatcher {
    action: Action,
    /// The run's own aliases (`--result-name`), lower case.
    extra: Vec<String>,
}

impl ResultMatcher {
    pub fn new(action: Action, extra_aliases: &[String]) -> Self {
        ResultMatcher {
            action,
            extra: extra_aliases
                .iter()
                .map(|a| a.trim().to_ascii_lowercase())
                .filter(|a| !a.is_empty())
                .collect(),
        }
    }

    /// What a result with this `actionName` and `@odata.type` is to this run.
    pub fn recognise(&self, action_name: Option<&str>, odata_type: Option<&str>) -> Recognised {
        if let Some(rule) = self.rule(action_name, odata_type) {
            return Recognised::Ours(rule);
        }
        let known = |n: &str| KNOWN_ACTIONS.contains(&n.trim().to_ascii_lowercase().as_str());
        // `locateDeviceActionResult` names locateDevice; `…KeysDeviceActionResult` names …Keys.
        let typed_other = odata_type
            .and_then(|t| t.strip_prefix("#microsoft.graph."))
            .and_then(|t| t.strip_suffix("ActionResult"))
            .is_some_and(|base| known(base) || base.strip_suffix("Device").is_some_and(known));
        if typed_other || action_name.is_some_and(known) {
            Recognised::Other
        } else {
            Recognised::Unknown
        }
    }

    /// The rule that takes a result with this `actionName` and `@odata.type` for ours, if any.
    pub fn rule(&self, action_name: Option<&str>, odata_type: Option<&str>) -> Option<MatchRule> {
        let a = self.action;
        if odata_type.is_some_and(|t| t.eq_ignore_ascii_case(&a.derived_type())) {
            return Some(MatchRule::ODataType);
        }
        let name = action_name?.trim().to_ascii_lowercase();
        if name == a.graph_name().to_ascii_lowercase() {
            return Some(MatchRule::GraphName);
        }
        let alias = |x: &str| x.eq_ignore_ascii_case(&name);
        if a.aliases().iter().any(|x| alias(x)) || self.extra.iter().any(|x| alias(x)) {
            return Some(MatchRule::Alias);
        }
        let other = OTHER_ACTIONS.contains(&name.as_str()) || name.starts_with("get");
        if !other && a.keywords().iter().any(|k| name.contains(k)) {
            return Some(MatchRule::Keyword);
        }
        None
    }
}

/// Intune's other device actions (the beta schema's `remoteAction`, and names scripts match on),
/// lower case: results under these names are not ours and not unknown either.
const KNOWN_ACTIONS: &[&str] = &[
    "activatedeviceesim",
    "automaticredeployment",
    "changeassignments",
    "cleanwindowsdevice",
    "collectlogs",
    "delete",
    "deprovision",
    "disable",
    "disablelostmode",
    "enablelostmode",
    "factoryreset",
    "factoryresetkeepenrollmentdata",
    "fullscan",
    "getfilevaultkey",
    "initiatedeviceattestation",
    "initiatemobiledevicemanagementkeyrecovery",
    "initiateondemandproactiveremediation",
    "launchremotehelp",
    "locatedevice",
    "logoutsharedappledeviceactiveuser",
    "movedevicetoorganizationalunit",
    "pauseconfigurationrefresh",
    "quickscan",
    "rebootnow",
    "recoverpasscode",
    "reenable",
    "remotelock",
    "removecompanydata",
    "removedevicefirmwareconfigurationinterfacemanagement",
    "resetpasscode",
    "retire",
    "retirewipe",
    "revokeapplevpplicenses",
    "rotatebitlockerkeys",
    "rotatefilevaultkey",
    "rotatelocaladminpassword",
    "rotaterecoverylockpasscode",
    "setdevicename",
    "shutdown",
    "syncdevice",
    "updatedeviceaccount",
    "windowsdefenderupdatesignatures",
    "wipe",
];

/// What a `deviceActionResults` entry is to a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recognised {
    /// Our action, by this rule.
    Ours(MatchRule),
    /// Another Intune action, known by name or derived type.
    Other,
    /// A name no rule knows: shown to the admin, who may add it with `--result-name`.
    Unknown,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(action: Action, name: &str) -> Option<MatchRule> {
        ResultMatcher::new(action, &[]).rule(Some(name), None)
    }

    #[test]
    fn each_action_knows_its_graph_name_its_pascal_form_and_its_keyword() {
        for action in Action::ALL {
            let g = action.graph_name();
            assert_eq!(rule(action, g), Some(MatchRule::GraphName));
            let pascal = g[..1].to_uppercase() + &g[1..];
            assert_eq!(rule(action, &pascal), Some(MatchRule::GraphName));
        }
        assert_eq!(
            rule(Action::FileVault, "FileVaultKeyRotation"),
            Some(MatchRule::Keyword)
        );
        assert_eq!(
            rule(Action::BitLocker, "BitLockerKeyRotation"),
            Some(MatchRule::Keyword)
        );
        assert_eq!(
            rule(Action::Laps, "LocalAdminPasswordRotation"),
            Some(MatchRule::Keyword)
        );
        assert_eq!(rule(Action::Laps, "LapsReset"), Some(MatchRule::Keyword));
        assert_eq!(
            rule(Action::RecoveryLock, "RecoveryLockPasscodeRotation"),
            Some(MatchRule::Keyword)
        );
    }

    #[test]
    fn a_derived_type_wins_over_an_unrelated_name() {
        let m = ResultMatcher::new(Action::BitLocker, &[]);
        let typed = Some("#microsoft.graph.rotateBitLockerKeysDeviceActionResult");
        assert_eq!(
            m.rule(Some("deviceAction"), typed),
            Some(MatchRule::ODataType)
        );
        assert_eq!(m.rule(None, typed), Some(MatchRule::ODataType));
    }

    #[test]
    fn unrelated_actions_are_never_ours() {
        for action in Action::ALL {
            let m = ResultMatcher::new(action, &[]);
            for name in [
                "locateDevice",
                "LocateDevice",
                "getFileVaultKey",
                "GetFileVaultKey",
                "Wipe",
                "collectlogs",
            ] {
                assert_eq!(m.rule(Some(name), None), None, "{action}: {name}");
                assert_eq!(
                    m.recognise(Some(name), None),
                    Recognised::Other,
                    "{action}: {name}"
                );
            }
            let typed_locate = Some("#microsoft.graph.locateDeviceActionResult");
            assert_eq!(
                m.recognise(Some("deviceAction"), typed_locate),
                Recognised::Other
            );
            for other in Action::ALL.into_iter().filter(|o| *o != action) {
                assert_eq!(
                    m.rule(Some(other.graph_name()), None),
                    None,
                    "{action}: {other}"
                );
            }
        }
    }

    #[test]
    fn a_name_no_rule_knows_is_unknown_until_the_run_names_it() {
        let plain = ResultMatcher::new(Action::FileVault, &[]);
        assert_eq!(plain.recognise(Some("FVKR-42"), None), Recognised::Unknown);
        let named = ResultMatcher::new(Action::FileVault, &[" FVKR-42 ".into()]);
        assert_eq!(
            named.recognise(Some("fvkr-42"), None),
            Recognised::Ours(MatchRule::Alias)
        );
    }
}
