//! Whether a device can carry an action out, decided from the listing's own fields (never a GET
//! per device). Each action's rules sit together here, beside its Graph name and platform in
//! `action.rs`; docs/eligibility.md gives each rule's source.

use crate::skip_reason::{Property, SkipKind, SkipReason};
use crate::{Action, SourceDevice};

/// How the rules treat a property the source does not report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
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
    pub kind: SkipKind,
    pub words: String,
}

impl Ineligible {
    fn new(kind: SkipKind, words: impl Into<String>) -> Self {
        Ineligible {
            kind,
            words: words.into(),
        }
    }

    /// The plan's skip reason for it.
    pub fn reason(&self) -> SkipReason {
        SkipReason::new(self.kind, self.words.clone())
    }
}

/// Recovery Lock: macOS 11.5 or later.
const RECOVERY_LOCK_MIN: (u32, u32) = (11, 5);
/// BitLocker key rotation: Windows 10 1909 (build 18363) or later.
const BITLOCKER_MIN_BUILD: u32 = 18363;

/// What one rule made of one device.
enum Rule {
    Holds,
    Breaks(Ineligible),
    /// The source does not say (absent, unreadable, or Graph's own `unknown`).
    Unknown(Property),
}

impl Rule {
    fn check(ok: bool, kind: SkipKind, words: impl FnOnce() -> String) -> Rule {
        if ok {
            Rule::Holds
        } else {
            Rule::Breaks(Ineligible::new(kind, words()))
        }
    }
}

impl Action {
    /// The first rule `d` breaks for this action, under `mode`. Every rule is read: a property
    /// the source does not say never switches the others off, and a rule the device definitely
    /// breaks is named before one it cannot be checked against.
    pub fn ineligible(self, d: &SourceDevice, mode: Eligibility) -> Option<Ineligible> {
        if mode == Eligibility::Off {
            return None;
        }
        let rules = match self {
            Action::FileVault => vec![company_owned(d)],
            Action::RecoveryLock => vec![recovery_lock_version(d), supervised(d), apple_silicon(d)],
            Action::BitLocker => vec![bitlocker_build(d), joined(d, "BitLocker key rotation")],
            Action::Laps => vec![joined(d, "Windows LAPS")],
        };
        let mut unknown = None;
        for rule in rules {
            match rule {
                Rule::Breaks(why) => return Some(why),
                Rule::Unknown(what) => {
                    unknown.get_or_insert(what);
                }
                Rule::Holds => {}
            }
        }
        let what = unknown?;
        (mode == Eligibility::Strict).then(|| {
            Ineligible::new(
                SkipKind::Unknown(what),
                format!(
                    "the source does not say the device's {}, so the rule cannot be checked",
                    what.code()
                ),
            )
        })
    }
}

/// A property's text, or `None` where the source leaves it out or says Graph's `unknown`.
fn known(v: Option<&str>) -> Option<&str> {
    v.map(str::trim)
        .filter(|v| !v.is_empty() && !v.eq_ignore_ascii_case("unknown"))
}

fn company_owned(d: &SourceDevice) -> Rule {
    let Some(owner) = known(d.owner.as_deref()) else {
        return Rule::Unknown(Property::Ownership);
    };
    let company = ["company", "corporate"]
        .iter()
        .any(|o| o.eq_ignore_ascii_case(owner));
    Rule::check(company, SkipKind::Personal, || {
        format!("Intune rotates FileVault keys of corporate-owned Macs only, device is {owner}")
    })
}

fn recovery_lock_version(d: &SourceDevice) -> Rule {
    let Some(v) = known(d.os_version.as_deref()).and_then(mac_version) else {
        return Rule::Unknown(Property::OsVersion);
    };
    Rule::check(v >= RECOVERY_LOCK_MIN, SkipKind::OsVersion, || {
        format!(
            "Recovery Lock needs macOS 11.5 or later, device runs {}",
            d.os_version.as_deref().unwrap_or("").trim()
        )
    })
}

fn supervised(d: &SourceDevice) -> Rule {
    match d.supervised {
        None => Rule::Unknown(Property::Supervision),
        Some(s) => Rule::check(s, SkipKind::NotSupervised, || {
            "Recovery Lock needs a supervised Mac".into()
        }),
    }
}

fn apple_silicon(d: &SourceDevice) -> Rule {
    let Some(a) = known(d.architecture.as_deref()) else {
        return Rule::Unknown(Property::Architecture);
    };
    // Graph writes `arM64`; exports and older answers write `arm64`.
    Rule::check(
        a.eq_ignore_ascii_case("arm64"),
        SkipKind::Architecture,
        || format!("Recovery Lock needs an Apple silicon (arm64) Mac, device is {a}"),
    )
}

fn bitlocker_build(d: &SourceDevice) -> Rule {
    let Some(b) = known(d.os_version.as_deref()).and_then(windows_build) else {
        return Rule::Unknown(Property::OsVersion);
    };
    Rule::check(b >= BITLOCKER_MIN_BUILD, SkipKind::OsVersion, || {
        format!(
            "BitLocker key rotation needs Windows 10 1909 (build 18363) or later, device is build {b}"
        )
    })
}

fn joined(d: &SourceDevice, what: &str) -> Rule {
    let Some(join) = known(d.join_type.as_deref()) else {
        return Rule::Unknown(Property::JoinType);
    };
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
    Rule::check(ok, SkipKind::JoinType, || {
        format!("{what} needs an Entra joined or hybrid joined device, device is {join}")
    })
}

/// `15.1.1` → (15, 1); `11.5` → (11, 5); `14.5 (23F79)`, as Graph writes it with the build,
/// → (14, 5); `macOS 15.0` → (15, 0).
pub(crate) fn mac_version(v: &str) -> Option<(u32, u32)> {
    let v = v.trim();
    let v = v.trim_start_matches(|c: char| !c.is_ascii_digit());
    let number = v.split([' ', '(']).next()?;
    let mut parts = number.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next().map_or(Some(0), |m| m.parse().ok())?;
    Some((major, minor))
}

/// `10.0.19045.4291` → 19045; `10.0.22631` → 22631.
pub(crate) fn windows_build(v: &str) -> Option<u32> {
    v.trim()
        .split([' ', '('])
        .next()?
        .split('.')
        .nth(2)?
        .parse()
        .ok()
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
        a.ineligible(d, mode).map(|i| i.kind.code().to_string())
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

    fn rl(
        version: &str,
        supervised: Option<bool>,
        arch: &str,
        mode: Eligibility,
    ) -> Option<String> {
        code(
            Action::RecoveryLock,
            &mac(None, version, supervised, arch),
            mode,
        )
    }

    #[test]
    fn mac_versions_are_read_with_graphs_build_in_brackets() {
        assert_eq!(mac_version("14.5 (23F79)"), Some((14, 5)));
        assert_eq!(mac_version("13.5.1 (22G90)"), Some((13, 5)));
        assert_eq!(mac_version("15.0 (24A335)"), Some((15, 0)));
        assert_eq!(mac_version("macOS 15.1"), Some((15, 1)));
        assert_eq!(mac_version("15"), Some((15, 0)));
        assert_eq!(mac_version("(23F79)"), None);
        assert_eq!(windows_build("10.0.22631.3155"), Some(22631));
    }

    #[test]
    fn recovery_lock_plans_a_supervised_apple_silicon_mac_on_a_version_with_its_build() {
        for mode in [Eligibility::Strict, Eligibility::Lenient] {
            assert_eq!(rl("14.5 (23F79)", Some(true), "arM64", mode), None);
        }
    }

    #[test]
    fn recovery_lock_skips_11_4_and_intel_macs_under_strict_and_lenient() {
        for mode in [Eligibility::Strict, Eligibility::Lenient] {
            assert_eq!(
                rl("11.4 (20F71)", Some(true), "arM64", mode).as_deref(),
                Some("os-version")
            );
            assert_eq!(
                rl("14.5 (23F79)", Some(true), "x64", mode).as_deref(),
                Some("architecture")
            );
        }
    }

    #[test]
    fn an_unreadable_version_never_switches_the_other_rules_off() {
        assert_eq!(
            rl("unreadable", Some(true), "x64", Eligibility::Lenient).as_deref(),
            Some("architecture")
        );
        assert_eq!(
            rl("unreadable", Some(false), "arM64", Eligibility::Strict).as_deref(),
            Some("not-supervised")
        );
        assert_eq!(
            rl("unreadable", Some(true), "arM64", Eligibility::Strict).as_deref(),
            Some("unknown-os-version")
        );
        assert_eq!(
            rl("unreadable", Some(true), "arM64", Eligibility::Lenient),
            None
        );
    }

    #[test]
    fn graphs_unknown_member_is_unknown_not_a_no() {
        let win = |join: &str| SourceDevice {
            os: Some("Windows".into()),
            os_version: Some("10.0.22631.3155".into()),
            join_type: Some(join.into()),
            ..SourceDevice::default()
        };
        for a in [Action::BitLocker, Action::Laps] {
            assert_eq!(
                code(a, &win("unknown"), Eligibility::Strict).as_deref(),
                Some("unknown-join-type")
            );
            assert_eq!(code(a, &win("unknown"), Eligibility::Lenient), None);
        }
        let owner = mac(Some("unknown"), "15.1 (24B83)", None, "");
        assert_eq!(
            code(Action::FileVault, &owner, Eligibility::Strict).as_deref(),
            Some("unknown-ownership")
        );
        assert_eq!(code(Action::FileVault, &owner, Eligibility::Lenient), None);
        assert_eq!(
            rl("15.1 (24B83)", Some(true), "unknown", Eligibility::Strict).as_deref(),
            Some("unknown-architecture")
        );
    }
}
