//! What to do about an engine error, in the command line's words: the engine says what went
//! wrong; only the binary names its commands and flags.

use rotation::RotationError;

/// The next step for `e`, where there is one worth a line.
pub fn of(e: &RotationError) -> Option<String> {
    Some(match e {
        RotationError::LedgerExists(p) => format!(
            "continue it with `intune-rotate resume --ledger {}`, or give --ledger a new file",
            p.display()
        ),
        RotationError::UnfinishedPlan(_) => {
            "run the same `intune-rotate rotate` command again".into()
        }
        RotationError::TooManyDevices { .. } => "narrow the source, or raise --max-devices".into(),
        RotationError::Unmatched { .. } => {
            "fix those rows, or leave --strict out to skip them with a reason".into()
        }
        RotationError::EntraIdsOnly { .. } => {
            "with only Entra ids at hand, pass --match-by entra-id".into()
        }
        RotationError::RunDirExists(p) => format!(
            "continue it with `intune-rotate resume --run-dir {}`, or give --run-dir a new directory",
            p.display()
        ),
        RotationError::SourceCut { .. } => {
            "run again, or pass --allow-partial-source to plan what was read".into()
        }
        RotationError::LedgerWrite {
            path,
            plan_done: true,
            ..
        } => format!("then `intune-rotate resume --ledger {}`", path.display()),
        RotationError::LedgerWrite { .. } => {
            "then run the same `intune-rotate rotate` command again".into()
        }
        _ => return None,
    })
}

/// The advice for the engine error somewhere in `e`'s chain.
pub fn for_chain(e: &anyhow::Error) -> Option<String> {
    e.chain()
        .find_map(|c| c.downcast_ref::<RotationError>())
        .and_then(of)
}
