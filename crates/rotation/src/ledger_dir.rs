//! A directory of dated ledgers, one per run, for scheduled runs: each run gets a new ledger named
//! to the second (`2026-12-01T020000Z-filevault.jsonl`), and the directory's lock keeps a second
//! run from starting while one is going (a scheduler that starts the next run before the last has
//! ended).

use crate::{Action, RotationError};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

const LOCK: &str = ".intune-rotate.lock";

/// A directory claimed for one run; the claim ends when this is dropped (or the process ends).
#[derive(Debug)]
pub struct ClaimedDir {
    /// Held locked for the claim's life.
    _lock: File,
    ledger: PathBuf,
}

impl ClaimedDir {
    /// Makes `dir` where it is missing, takes its lock, and names this run's ledger in it. Another
    /// run holding the lock is [`RotationError::DirectoryBusy`]: nothing is written.
    pub fn claim(dir: &Path, action: Action, now: SystemTime) -> Result<Self, RotationError> {
        std::fs::create_dir_all(dir).map_err(|e| RotationError::io(dir, e))?;
        let path = dir.join(LOCK);
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| RotationError::io(&path, e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(RotationError::DirectoryBusy(dir.to_path_buf()));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(RotationError::io(&path, e)),
        }
        Ok(ClaimedDir {
            _lock: lock,
            ledger: free_name(dir, action, now),
        })
    }

    /// This run's ledger: new, in the claimed directory.
    pub fn ledger(&self) -> &Path {
        &self.ledger
    }
}

/// `<UTC time to the second>-<action>.jsonl`, with `-2`, `-3`… where a run of the same second
/// already has that name.
fn free_name(dir: &Path, action: Action, now: SystemTime) -> PathBuf {
    let stamp = stamp(now);
    let first = dir.join(format!("{stamp}-{action}.jsonl"));
    if !first.exists() {
        return first;
    }
    (2..)
        .map(|n| dir.join(format!("{stamp}-{action}-{n}.jsonl")))
        .find(|p| !p.exists())
        .expect("an unused name")
}

/// `2026-12-01T020000Z`: sortable, and without the colons Windows refuses in file names.
fn stamp(now: SystemTime) -> String {
    let rfc = humantime::format_rfc3339_seconds(now).to_string();
    rfc.replace(':', "")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn a_ledger_is_named_by_its_utc_second_and_action() {
        assert_eq!(stamp(at(1_796_090_400)), "2026-12-01T020000Z");
        let dir = tempfile::tempdir().unwrap();
        let claim = ClaimedDir::claim(dir.path(), Action::FileVault, at(1_796_090_400)).unwrap();
        assert_eq!(
            claim.ledger(),
            dir.path().join("2026-12-01T020000Z-filevault.jsonl")
        );
    }

    #[test]
    fn a_second_run_of_the_same_second_gets_a_name_of_its_own() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("2026-12-01T020000Z-laps.jsonl"), "").unwrap();
        let claim = ClaimedDir::claim(dir.path(), Action::Laps, at(1_796_090_400)).unwrap();
        assert_eq!(
            claim.ledger(),
            dir.path().join("2026-12-01T020000Z-laps-2.jsonl")
        );
    }

    #[test]
    fn a_claimed_directory_refuses_a_second_claim_until_the_first_ends() {
        let dir = tempfile::tempdir().unwrap();
        let first = ClaimedDir::claim(dir.path(), Action::FileVault, at(0)).unwrap();
        let second = ClaimedDir::claim(dir.path(), Action::FileVault, at(1));
        assert!(matches!(second, Err(RotationError::DirectoryBusy(_))));
        drop(first);
        assert!(ClaimedDir::claim(dir.path(), Action::FileVault, at(2)).is_ok());
    }
}
