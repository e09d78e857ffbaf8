//! Whether a device can carry an action out, decided from the listing's own fields (never a GET
//! per device). Each action's rules sit together here, beside its Graph name and platform in
//! `action.rs`; docs/eligibility.md gives each rule's source.

use crate::{Action, SourceDevice};

/// How the rules treat a property the source does not report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Eligibility {
    /// Unknown → skipped with an `unknown-…` reason (the default for `rotate`).
    #[default]
    Strict,
    /// Unknown counts as eligible.
    Lenient,
    /// The rules are off; the platform and `--require-encrypted` checks stay.
    Off,
}

/// Why a device cannot carry the action out: a reason code (the ledger's reason kind) and words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ineligible {
    pub code: String,
    pub words: String,
}

impl Ineligible {
    fn new(code: &str, words: impl Into<String>) -> Self {
        Ineligible {
            code: code.to_string(),
            words: words.into(),
        }
    }

    /// `code: words`, the ledger's reason form.
    pub fn reason(&self) -> String {
        format!("{}: {}", self.code, self.words)
    }
}

/// Recovery Lock: macOS 11.5 or later.
const RECOVERY_LOCK_MIN: (u32, u32) = (11, 5);
/// BitLocker key rotation: Windows 10 1909 (build 18363) or later.
const BITLOCKER_MIN_BUILD: u32 = 18363;

impl Action {
    /// The first rule `d` breaks for this action, under `mode`.
    pub fn ineligible(self, d: &SourceDevice, mode: Eligibility) -> Option<Ineligible> {
        if mode == Eligibility::Off {
            return None;
        }
        let strict = mode == Eligibility::Strict;
        let unknown = |what: &str| {
            strict.then(|| {
                Ineligible::new(
                    &format!("unknown-{what}"),
                    format!("the source does not say the device's {what} (--eligibility lenient counts it as eligible)"),
                )
            })
        };
        match self {
            Action::FileVault => match d.owner {
                None => unknown("ownership"),
                Some(_) => company_owned(d),
            },
            Action::RecoveryLock => {
                match d.os_version.as_deref().map(mac_version) {
                    Some(Some(v)) if v < RECOVERY_LOCK_MIN => {
                        return Some(Ineligible::new(
                            "os-version",
                            format!(
                                "Recovery Lock needs macOS 11.5 or later, device runs {}",
                                d.os_version.as_deref().unwrap_or("")
                            ),
                        ));
                    }
                    Some(Some(_)) => {}
                    _ => return unknown("os-version"),
                }
                match d.supervised {
                    Some(false) => {
                        return Some(Ineligible::new(
                            "not-supervised",
                            "Recovery Lock needs a supervised Mac",
                        ));
                    }
                    None => return unknown("supervision"),
                    Some(true) => {}
                }
                match d.architecture.as_deref() {
                    Some(a) if a.eq_ignore_ascii_case("arm64") => None,
                    Some(a) if !a.eq_ignore_ascii_case("unknown") => Some(Ineligible::new(
                        "architecture",
                        format!("Recovery Lock needs an Apple silicon (arm64) Mac, device is {a}"),
                    )),
                    _ => unknown("architecture"),
                }
            }
            Action::BitLocker => {
                match d.os_version.as_deref().map(windows_build) {
                    Some(Some(b)) if b < BITLOCKER_MIN_BUILD => {
                        return Some(Ineligible::new(
                            "os-version",
                            format!(
                                "BitLocker key rotation needs Windows 10 1909 (build 18363) or later, device is build {b}"
                            ),
                        ));
                    }
                    Some(Some(_)) => {}
                    _ => return unknown("os-version"),
                }
                match d.join_type {
                    None => unknown("join-type"),
                    Some(_) => joined(d, "BitLocker key rotation"),
                }
            }
            Action::Laps => match d.join_type {
                None => unknown("join-type"),
                Some(_) => joined(d, "Windows LAPS"),
            },
        }
    }
}

fn company_owned(d: &SourceDevice) -> Option<Ineligible> {
    let owner = d.owner.as_deref()?;
    let company = ["company", "corporate"]
        .iter()
        .any(|o| o.eq_ignore_ascii_case(owner));
    (!company).then(|| {
        Ineligible::new(
            "personal",
            format!(
                "Intune rotates FileVault keys of corporate-owned Macs only, device is {owner}"
            ),
        )
    })
}

fn joined(d: &SourceDevice, what: &str) -> Option<Ineligible> {
    let join = d.join_type.as_deref()?;
    let ok = [
        "azureADJoined",
        "hybridAzureADJoined",
        "Microsoft Entra joined",
        "Microsoft Entra hybrid joined",
        "Azure AD joined",
        "Hybrid Azure AD joined",
    ]
    .iter()
    .any(|j| j.eq_ignore_ascii_case(join));
    (!ok).then(|| {
        Ineligible::new(
            "join-type",
            format!("{what} needs an Entra joined or hybrid joined device, device is {join}"),
        )
    })
}

/// `15.1.1` → (15, 1); `11.5` → (11, 5).
fn mac_version(v: &str) -> Option<(u32, u32)> {
    let mut parts = v.trim().split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next().map_or(Some(0), |m| m.parse().ok())?;
    Some((major, minor))
}

/// `10.0.19045.4291` → 19045.
fn windows_build(v: &str) -> Option<u32> {
    v.trim().split('.').nth(2)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac(
        owner: Option<&str>,
        version: &str,
        supervised: Option<bool>,
        arch: &str,
    ) -> SourceDevice {
        SourceDevice {
            os: Some("macOS".into()),
            owner: owner.map(str::to_string),
            os_version: Some(version.into()),
            supervised,
            architecture: Some(arch.into()),
            ..SourceDevice::default()
        }
    }

    fn code(a: Action, d: &SourceDevice, mode: Eligibility) -> Option<String> {
        a.ineligible(d, mode).map(|i| i.code)
    }

    #[test]
    fn filevault_needs_a_corporate_mac() {
        let s = Eligibility::Strict;
        assert_eq!(
            code(
                Action::FileVault,
                &mac(Some("company"), "15.1", None, ""),
                s
            ),
            None
        );
        assert_eq!(
            code(
                Action::FileVault,
                &mac(Some("Corporate"), "15.1", None, ""),
                s
            ),
            None
        );
        assert_eq!(
            code(
                Action::FileVault,
                &mac(Some("personal"), "15.1", None, ""),
                s
            )
            .as_deref(),
            Some("personal")
        );
        assert_eq!(
            code(Action::FileVault, &mac(None, "15.1", None, ""), s).as_deref(),
            Some("unknown-ownership")
        );
        assert_eq!(
            code(
                Action::FileVault,
                &mac(None, "15.1", None, ""),
                Eligibility::Lenient
            ),
            None
        );
        assert_eq!(
            code(
                Action::FileVault,
                &mac(Some("personal"), "15.1", None, ""),
                Eligibility::Off
            ),
            None
        );
    }

    #[test]
    fn recovery_lock_needs_a_supervised_apple_silicon_mac_on_11_5() {
        let s = Eligibility::Strict;
        let rl = |d| code(Action::RecoveryLock, &d, s);
        assert_eq!(rl(mac(None, "11.5", Some(true), "arm64")), None);
        assert_eq!(
            rl(mac(None, "11.4.1", Some(true), "arm64")).as_deref(),
            Some("os-version")
        );
        assert_eq!(
            rl(mac(None, "15.0", Some(false), "arm64")).as_deref(),
            Some("not-supervised")
        );
        assert_eq!(
            rl(mac(None, "15.0", Some(true), "x64")).as_deref(),
            Some("architecture")
        );
        assert_eq!(
            rl(mac(None, "15.0", None, "arm64")).as_deref(),
            Some("unknown-supervision")
        );
    }

    #[test]
    fn bitlocker_and_laps_need_a_joined_device_and_bitlocker_build_18363() {
        let win = |v: &str, join: Option<&str>| SourceDevice {
            os: Some("Windows".into()),
            os_version: Some(v.into()),
            join_type: join.map(str::to_string),
            ..SourceDevice::default()
        };
        let s = Eligibility::Strict;
        assert_eq!(
            code(
                Action::BitLocker,
                &win("10.0.19045.1", Some("azureADJoined")),
                s
            ),
            None
        );
        assert_eq!(
            code(
                Action::BitLocker,
                &win("10.0.17763.1", Some("azureADJoined")),
                s
            )
            .as_deref(),
            Some("os-version")
        );
        assert_eq!(
            code(
                Action::BitLocker,
                &win("10.0.19045.1", Some("azureADRegistered")),
                s
            )
            .as_deref(),
            Some("join-type")
        );
        assert_eq!(
            code(
                Action::Laps,
                &win("10.0.17763.1", Some("hybridAzureADJoined")),
                s
            ),
            None
        );
        assert_eq!(
            code(Action::Laps, &win("10.0.19045.1", None), s).as_deref(),
            Some("unknown-join-type")
        );
    }
}
