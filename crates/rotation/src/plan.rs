//! The plan: every input device validated, de-duplicated and checked against the action's policy,
//! written to the ledger before the first request leaves.

use crate::ledger::{Ledger, Row};
use crate::{Action, CsvSource, RotationError, SourceDevice};
use std::collections::{BTreeMap, HashSet};

/// How many bad lines an error lists before it only counts the rest.
const MAX_LISTED: usize = 20;

/// What planning found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlanReport {
    pub planned: usize,
    /// Skip reason -> devices.
    pub skipped: BTreeMap<String, usize>,
    /// (line, id) of rows dropped as repeats of an earlier row.
    pub duplicates: Vec<(u64, String)>,
    pub duplicate_count: usize,
}

/// A source whose every id has been checked, so planning need not read it for that again.
#[derive(Debug)]
pub struct CheckedSource {
    source: CsvSource,
    rows: usize,
}

impl CheckedSource {
    pub fn source(&self) -> &CsvSource {
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

fn parse_id(raw: &str) -> Option<uuid::Uuid> {
    // Only the hyphenated or braced forms an admin would paste; anything else could be a path.
    let t = raw.trim();
    let inner = t
        .strip_prefix('{')
        .and_then(|x| x.strip_suffix('}'))
        .unwrap_or(t);
    if inner.len() != 36 {
        return None;
    }
    uuid::Uuid::try_parse(inner).ok()
}

fn skip_reason(action: Action, d: &SourceDevice) -> Option<String> {
    if let Some(os) = &d.os
        && !os.eq_ignore_ascii_case(action.platform())
    {
        return Some(format!(
            "platform: {} applies to {} only, device is {os}",
            action.graph_name(),
            action.platform()
        ));
    }
    if matches!(action, Action::FileVault | Action::BitLocker) && d.encrypted == Some(false) {
        return Some("not encrypted: there is no key to rotate".into());
    }
    None
}

impl Plan {
    /// Reads the whole source and refuses it, naming every bad line, if any id is invalid or it has no
    /// rows. Callers run this before connecting, so bad input never costs a request.
    pub fn check(source: CsvSource) -> Result<CheckedSource, RotationError> {
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
            let more = if invalid_count > invalid.len() {
                format!("\n  ... and {} more", invalid_count - invalid.len())
            } else {
                String::new()
            };
            return Err(RotationError::Input(format!(
                "{}: {invalid_count} row(s) with an invalid managed device id (nothing was sent):\n{}{more}",
                source.display(),
                invalid.join("\n")
            )));
        }
        if rows == 0 {
            return Err(RotationError::Input(format!(
                "{}: no devices in the input (a header but no rows)",
                source.display()
            )));
        }
        Ok(CheckedSource { source, rows })
    }

    /// Writes one `planned` or `skipped` row per distinct device of a checked source and makes
    /// them durable.
    pub fn build(
        checked: &CheckedSource,
        action: Action,
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
            let id_text = id.hyphenated().to_string();
            let skip = skip_reason(action, &d);
            ledger.append(&Row::Planned {
                id: id_text.clone(),
                name: d.name,
                serial: d.serial,
                user: d.user,
                os: d.os,
                line: Some(d.line),
            })?;
            match skip {
                Some(reason) => {
                    let kind = reason.split(':').next().unwrap_or("").to_string();
                    *report.skipped.entry(kind).or_default() += 1;
                    ledger.append(&Row::Skipped {
                        id: id_text,
                        reason,
                    })
                }
                None => {
                    report.planned += 1;
                    Ok(())
                }
            }
        })?;
        ledger.sync()?;
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            raw_id: String::new(),
            name: None,
            serial: None,
            user: None,
            os: Some(os.into()),
            encrypted: enc,
        };
        assert!(
            skip_reason(Action::FileVault, &d("Windows", Some(true)))
                .unwrap()
                .starts_with("platform")
        );
        assert!(
            skip_reason(Action::FileVault, &d("macOS", Some(false)))
                .unwrap()
                .starts_with("not encrypted")
        );
        assert_eq!(
            skip_reason(Action::RecoveryLock, &d("macOS", Some(false))),
            None
        );
        assert_eq!(skip_reason(Action::BitLocker, &d("windows", None)), None);
    }
}
