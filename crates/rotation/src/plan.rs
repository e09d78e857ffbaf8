//! The plan: every input device validated, de-duplicated and checked against the action's policy,
//! written to the ledger before the first request leaves.

use crate::device_id::parse_id;
use crate::facts::{DeviceFacts, FILEVAULT_BLOCKERS};
use crate::ledger::{Ledger, Row};
use crate::skip_reason::{SkipKind, SkipReason};
use crate::{Action, DeviceList, Eligibility, RotationError, SourceDevice};
use std::collections::{BTreeMap, HashMap, HashSet};

/// How many bad lines an error lists before it only counts the rest.
const MAX_LISTED: usize = 20;

/// What planning found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlanReport {
    pub planned: usize,
    /// Devices per kind of skip.
    pub skipped: BTreeMap<SkipKind, usize>,
    /// (line, id) of rows dropped as repeats of an earlier row.
    pub duplicates: Vec<(u64, String)>,
    pub duplicate_count: usize,
}

/// A source whose every id has been checked, so planning need not read it for that again.
#[derive(Debug)]
pub struct CheckedSource {
    source: DeviceList,
    rows: usize,
}

impl CheckedSource {
    pub fn source(&self) -> &DeviceList {
        &self.source
    }

    /// Data rows read (duplicates included).
    pub fn rows(&self) -> usize {
        self.rows
    }
}

/// Builds plans from sources.
#[derive(Debug)]
pub struct Plan;

/// What the plan leaves alone, each with a reason recorded in the ledger.
#[derive(Debug, Clone)]
pub struct Policy {
    pub action: Action,
    /// Skip devices known to be unencrypted (default on for FileVault and BitLocker: no key to rotate).
    pub require_encrypted: bool,
    /// Skip devices whose last check-in is older than this: they would not pick the action up.
    pub stale_after: Option<std::time::Duration>,
    /// Devices to leave alone (`--exclude`): read once, shared by every tenant of a run.
    pub exclude: std::sync::Arc<HashSet<uuid::Uuid>>,
    /// Whether devices that cannot carry the action out are skipped (`eligibility.rs`).
    pub eligibility: Eligibility,
    /// Skip devices whose last rotation is more recent than this (`--skip-rotated-within`).
    pub rotated_within: Option<std::time::Duration>,
    /// Skip devices where one of our actions is still pending or active (`--skip-pending`).
    pub skip_pending: bool,
    /// What the tenant said about each device beyond the listing (`device_facts.rs`).
    pub facts: HashMap<uuid::Uuid, DeviceFacts>,
    pub now: std::time::SystemTime,
}

impl Policy {
    /// The defaults for `action`: platform checked, encryption required where a key is rotated.
    pub fn for_action(action: Action) -> Self {
        Policy {
            action,
            require_encrypted: matches!(action, Action::FileVault | Action::BitLocker),
            stale_after: None,
            exclude: Default::default(),
            eligibility: Eligibility::Strict,
            rotated_within: None,
            skip_pending: true,
            facts: HashMap::new(),
            now: std::time::SystemTime::now(),
        }
    }

    /// Why `d` is skipped, if it is.
    fn skip_reason(&self, id: &uuid::Uuid, d: &SourceDevice) -> Option<SkipReason> {
        if let Some(why) = self.listing_reason(id, d) {
            return Some(why);
        }
        if let Some(why) = self.facts.get(id).and_then(|f| self.by_facts(f)) {
            return Some(why);
        }
        if let (Some(limit), Some(seen)) = (self.stale_after, d.last_sync.as_deref())
            && let Some(ms) = crate::ledger::parse_ms(seen)
            && self
                .now
                .duration_since(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms))
                .is_ok_and(|age| age > limit)
        {
            return Some(SkipReason::new(
                SkipKind::Stale,
                format!(
                    "last check-in {seen} is older than {}",
                    humantime::format_duration(limit)
                ),
            ));
        }
        None
    }

    /// The rules read before the tenant's records, from the source alone: a device they skip
    /// needs none of its records read.
    pub(crate) fn listing_reason(&self, id: &uuid::Uuid, d: &SourceDevice) -> Option<SkipReason> {
        let action = self.action;
        if self.exclude.contains(id) {
            return Some(SkipReason::new(
                SkipKind::Excluded,
                "listed in the run's exclusions",
            ));
        }
        if let Some(os) = &d.os
            && !os.eq_ignore_ascii_case(action.platform())
        {
            return Some(SkipReason::new(
                SkipKind::Platform,
                format!(
                    "{} applies to {} only, device is {os}",
                    action.graph_name(),
                    action.platform()
                ),
            ));
        }
        if self.require_encrypted && d.encrypted == Some(false) {
            return Some(SkipReason::new(
                SkipKind::NotEncrypted,
                "there is no key to rotate",
            ));
        }
        action
            .ineligible(d, self.eligibility)
            .map(|why| why.reason())
    }
}

impl Policy {
    /// Why the encryption report rules a Mac out: the first of the tenant's records the plan
    /// reads, so a Mac it rules out needs no action results read.
    pub(crate) fn escrow_reason(&self, f: &DeviceFacts) -> Option<SkipReason> {
        if self.action != Action::FileVault || self.eligibility == Eligibility::Off {
            return None;
        }
        let states = f.filevault_states.as_deref()?;
        let flags: Vec<&str> = states.split([',', ' ']).filter(|s| !s.is_empty()).collect();
        FILEVAULT_BLOCKERS.iter().find_map(|(flag, kind, words)| {
            flags
                .iter()
                .any(|s| s.eq_ignore_ascii_case(flag))
                .then(|| SkipReason::new(*kind, format!("{words} (encryption report: {flag})")))
        })
    }

    /// Why the tenant's own records rule the device out: the encryption report, an action still
    /// pending, a recent rotation.
    pub(crate) fn by_facts(&self, f: &DeviceFacts) -> Option<SkipReason> {
        let action = self.action;
        if let Some(why) = self.escrow_reason(f) {
            return Some(why);
        }
        if self.skip_pending
            && let Some(at) = &f.pending_since
        {
            return Some(SkipReason::new(
                SkipKind::Pending,
                format!(
                    "a {} started at {at} is still pending or active",
                    action.graph_name()
                ),
            ));
        }
        if let Some(why) = rotated_since_view(f) {
            return Some(why);
        }
        let within = self.rotated_within?;
        if let Some(at) = &f.last_rotated
            && let Some(ms) = crate::ledger::parse_ms(at)
        {
            let then = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
            if self
                .now
                .duration_since(then)
                .map_or(true, |age| age < within)
            {
                return Some(SkipReason::new(
                    SkipKind::RotatedRecently,
                    format!(
                        "last rotated at {at}, within {}",
                        humantime::format_duration(within)
                    ),
                ));
            }
        } else if f.age_unknown && self.eligibility == Eligibility::Strict {
            return Some(SkipReason::new(
                SkipKind::UnknownKeyAge,
                "without the device's Entra id its last rotation cannot be read",
            ));
        }
        None
    }
}

/// A device whose secret was read, but which has rotated since: the read is answered.
fn rotated_since_view(f: &DeviceFacts) -> Option<SkipReason> {
    let view = f.viewed.as_ref()?;
    let at = f.last_rotated.as_deref()?;
    let rotated = crate::ledger::parse_ms(at)?;
    (rotated >= view.at_ms).then(|| {
        SkipReason::new(
            SkipKind::RotatedSinceView,
            format!(
                "its secret was read at {} by {}, and it rotated after, at {at}",
                view.at, view.by
            ),
        )
    })
}

impl Plan {
    /// Reads the whole source and refuses it, naming every bad line, if any id is invalid or it has no
    /// rows. Callers run this before connecting, so bad input never costs a request.
    pub fn check(source: DeviceList) -> Result<CheckedSource, RotationError> {
        let rows = Self::check_source(&source)?;
        Ok(CheckedSource { source, rows })
    }

    /// Marks `source` as checked with the row count an earlier [`Plan::check_source`] found.
    pub fn checked(source: DeviceList, rows: usize) -> CheckedSource {
        CheckedSource { source, rows }
    }

    /// The checks of [`Plan::check`] on a borrowed source; returns the rows.
    pub fn check_source(source: &DeviceList) -> Result<usize, RotationError> {
        let mut invalid: Vec<String> = Vec::new();
        let mut invalid_count = 0usize;
        let mut rows = 0usize;
        source.for_each(|d| {
            rows += 1;
            if parse_id(&d.raw_id).is_none() {
                invalid_count += 1;
                if invalid.len() < MAX_LISTED {
                    let why = if d.raw_id.is_empty() {
                        "empty".to_string()
                    } else {
                        format!("{:?} is not a GUID", d.raw_id)
                    };
                    invalid.push(format!("  line {}: device id {why}", d.line));
                }
            }
            Ok(())
        })?;
        if invalid_count > 0 {
            return Err(RotationError::InvalidIds {
                source_name: source.display().to_string(),
                count: invalid_count,
                samples: invalid,
            });
        }
        if rows == 0 {
            return Err(RotationError::EmptySource(source.display().to_string()));
        }
        Ok(rows)
    }

    /// Writes one `planned` or `skipped` row per distinct device of a checked source and makes
    /// them durable.
    pub fn build(
        checked: &CheckedSource,
        policy: &Policy,
        ledger: &mut Ledger,
    ) -> Result<PlanReport, RotationError> {
        let (source, rows) = (&checked.source, checked.rows);
        let mut report = PlanReport::default();
        let mut seen: HashSet<uuid::Uuid> = HashSet::with_capacity(rows);
        source.for_each(|d| {
            let id = parse_id(&d.raw_id).expect("validated in the first pass");
            if !seen.insert(id) {
                report.duplicate_count += 1;
                if report.duplicates.len() < MAX_LISTED {
                    report.duplicates.push((d.line, id.to_string()));
                }
                return Ok(());
            }
            let skip = policy.skip_reason(&id, &d);
            let viewed = policy.facts.get(&id).and_then(|f| f.viewed.as_ref());
            ledger.append(&Row::Planned {
                id,
                name: d.name,
                serial: d.serial,
                user: d.user,
                os: d.os,
                line: Some(d.line),
                viewed_at: viewed.map(|v| v.at.clone()),
                viewed_by: viewed.map(|v| v.by.to_string()),
            })?;
            match skip {
                Some(reason) => {
                    *report.skipped.entry(reason.kind).or_default() += 1;
                    ledger.append(&Row::Skipped {
                        id,
                        reason: reason.to_string(),
                    })
                }
                None => {
                    report.planned += 1;
                    Ok(())
                }
            }
        })?;
        ledger.append(&Row::PlanDone {
            planned: report.planned as u64,
            skipped: report.skipped.values().sum::<usize>() as u64,
            skip_reasons: report
                .skipped
                .iter()
                .map(|(k, n)| (k.code().to_string(), *n as u64))
                .collect(),
            at: crate::ledger::now_iso(),
        })?;
        ledger.sync()?;
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_and_excluded_devices_are_skipped() {
        let now = humantime::parse_rfc3339("2026-11-27T12:00:00Z").unwrap();
        let id = uuid::Uuid::from_u128(7);
        let mut p = Policy {
            stale_after: Some(std::time::Duration::from_secs(30 * 86_400)),
            now,
            eligibility: Eligibility::Off,
            ..Policy::for_action(Action::FileVault)
        };
        let dev = |seen: &str| SourceDevice {
            line: 2,
            last_sync: Some(seen.into()),
            ..SourceDevice::default()
        };
        assert!(
            p.skip_reason(&id, &dev("2026-09-01T00:00:00Z"))
                .unwrap()
                .kind
                == SkipKind::Stale
        );
        assert!(
            p.skip_reason(&id, &dev("2026-09-01 00:00:00"))
                .unwrap()
                .kind
                == SkipKind::Stale,
            "Intune's export form"
        );
        assert_eq!(p.skip_reason(&id, &dev("2026-11-20T00:00:00Z")), None);
        p.exclude = std::sync::Arc::new([id].into());
        assert!(
            p.skip_reason(&id, &dev("2026-11-20T00:00:00Z"))
                .unwrap()
                .kind
                == SkipKind::Excluded
        );
    }

    #[test]
    fn only_guid_forms_are_ids() {
        assert!(parse_id("3f0c5d8e-1a2b-4c3d-8e4f-5a6b7c8d9e0f").is_some());
        assert!(parse_id("{3F0C5D8E-1A2B-4C3D-8E4F-5A6B7C8D9E0F}").is_some());
        for bad in [
            "",
            "../x",
            "a?b",
            "3f0c5d8e1a2b4c3d8e4f5a6b7c8d9e0f",
            "3f0c5d8e-1a2b-4c3d-8e4f-5a6b7c8d9e0f/../../x",
            "urn:uuid:3f0c5d8e-1a2b-4c3d-8e4f-5a6b7c8d9e0f",
            "3f0c5d8e-1a2b-4c3d-8e4f-5a6b7c8d9e0g",
        ] {
            assert!(parse_id(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn wrong_platform_and_unencrypted_devices_are_skipped_with_a_reason() {
        let d = |os: &str, enc| SourceDevice {
            line: 2,
            os: Some(os.into()),
            encrypted: enc,
            ..SourceDevice::default()
        };
        let id = uuid::Uuid::nil();
        let skip_reason = |a, d: &SourceDevice| {
            Policy {
                eligibility: Eligibility::Off,
                ..Policy::for_action(a)
            }
            .skip_reason(&id, d)
        };
        assert!(
            skip_reason(Action::FileVault, &d("Windows", Some(true)))
                .unwrap()
                .kind
                == SkipKind::Platform
        );
        assert!(
            skip_reason(Action::FileVault, &d("macOS", Some(false)))
                .unwrap()
                .kind
                == SkipKind::NotEncrypted
        );
        assert_eq!(
            skip_reason(Action::RecoveryLock, &d("macOS", Some(false))),
            None
        );
        assert_eq!(skip_reason(Action::BitLocker, &d("windows", None)), None);
    }
}
