//! `--exclude`: devices an admin never wants touched, by managed device id.

use crate::RotationError;
use crate::device_id::parse_id;
use crate::device_list::{DeviceList, KeyColumn};
use std::collections::HashSet;
use std::path::Path;
use uuid::Uuid;

/// Reads an exclusion list: GUIDs one a line (a header line `id` and `#` comments allowed), or a
/// CSV with an id column. A bad line is an error naming it; ids follow [`parse_id`].
pub fn read_exclusions(path: &Path) -> Result<HashSet<Uuid>, RotationError> {
    let display = format!("{} (the exclusion list)", path.display());
    let csv = DeviceList::open(&path.display().to_string())?;
    let mut out = HashSet::new();
    let mut bad: Option<RotationError> = None;
    let result = csv.for_each_keyed(KeyColumn::IntuneId, |d| {
        match parse_id(&d.raw_id) {
            Some(id) => {
                out.insert(id);
            }
            None => {
                bad.get_or_insert_with(|| not_a_guid(&display, d.line, &d.raw_id));
            }
        }
        Ok(())
    });
    match (result, bad) {
        (Ok(()), None) => Ok(out),
        (Ok(()), Some(e)) => Err(e),
        // A bare list of GUIDs has no header: read it line by line, from the list's own file (a
        // pipe's spool: a pipe cannot be read twice).
        (Err(_), _) => {
            let text =
                std::fs::read_to_string(csv.file()).map_err(|e| RotationError::io(path, e))?;
            for (n, line) in text.lines().enumerate() {
                let t = line.trim().trim_start_matches('\u{feff}');
                if t.is_empty() || t.starts_with('#') {
                    continue;
                }
                let id = parse_id(t).ok_or_else(|| not_a_guid(&display, n as u64 + 1, t))?;
                out.insert(id);
            }
            Ok(out)
        }
    }
}

fn not_a_guid(source: &str, line: u64, value: &str) -> RotationError {
    RotationError::bad_input(source, Some(line), format!("{value:?} is not a GUID"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<HashSet<Uuid>, RotationError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("exclude.txt");
        std::fs::write(&path, text).unwrap();
        read_exclusions(&path)
    }

    const ID: &str = "6d1f0000-0000-4000-8000-00000000000a";

    #[test]
    fn bare_guids_braced_guids_and_comments_are_read() {
        let got = read(&format!("# keep these\n{ID}\n{{{ID}}}\n")).unwrap();
        assert_eq!(got.len(), 1);
    }

    #[test]
    fn forms_the_plan_refuses_are_refused_here_too_naming_the_line() {
        for bad in [format!("urn:uuid:{ID}"), format!("{{{ID}")] {
            let err = read(&format!("{ID}\n{bad}\n")).unwrap_err();
            assert!(
                matches!(&err, RotationError::BadInput { line: Some(2), .. }),
                "{bad}: {err}"
            );
        }
    }
}
