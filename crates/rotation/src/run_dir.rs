//! A run over many tenants (`--tenants FILE --run-dir DIR`): the tenants file, and the directory
//! that holds the run's manifest and one ordinary single-tenant ledger per tenant.
//!
//! Invariants: the manifest never holds a secret; it is replaced whole (write, sync, rename), so a
//! crash leaves the old or the new one; each ledger is usable on its own with `--ledger`.

use crate::RotationError;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use uuid::Uuid;

/// One row of the tenants file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantEntry {
    pub tenant_id: Uuid,
    /// A name for people (`tenant_name` in exports); the id when the file gives none.
    pub name: String,
    /// The national cloud (`global`, `usgov`, `usgov-dod`, `china`); `None`: the run's `--cloud`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud: Option<String>,
}

/// Reads a tenants CSV (`tenant_id`, optional `name`, optional `cloud`). Every problem names the
/// file, line and column; a tenant listed twice is refused.
pub fn read_tenants(path: &Path) -> Result<Vec<TenantEntry>, RotationError> {
    let name = path.display().to_string();
    let bad = |line: u64, problem: String| RotationError::bad_input(&name, Some(line), problem);
    let mut r = open_csv(path)?;
    let headers = r.headers().map_err(|e| bad(1, e.to_string()))?.clone();
    let col = |want: &str| column(&headers, want);
    let id_col = col("tenant_id").ok_or_else(|| {
        bad(
            1,
            format!(
                "no tenant_id column (the header is {:?}; expected tenant_id[,name][,cloud])",
                headers.iter().collect::<Vec<_>>().join(",")
            ),
        )
    })?;
    let (name_col, cloud_col) = (col("name"), col("cloud"));
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (k, record) in r.records().enumerate() {
        let line = k as u64 + 2;
        let record = record.map_err(|e| bad(line, e.to_string()))?;
        if record.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        let raw = record.get(id_col).unwrap_or("").trim();
        let tenant_id = Uuid::parse_str(raw).map_err(|_| {
            bad(
                line,
                format!(
                    "column {} (tenant_id): {raw:?} is not a tenant id (a GUID)",
                    id_col + 1
                ),
            )
        })?;
        if !seen.insert(tenant_id) {
            return Err(bad(line, format!("tenant {tenant_id} is listed twice")));
        }
        let cloud = match cloud_col.and_then(|c| record.get(c)).map(str::trim) {
            None | Some("") => None,
            Some(c) => match c.parse::<crate::Cloud>() {
                Ok(cloud) => Some(cloud.name().to_string()),
                Err(_) => {
                    let names: Vec<&str> = crate::Cloud::ALL.iter().map(|c| c.name()).collect();
                    return Err(bad(
                        line,
                        format!(
                            "column {} (cloud): {c:?} is not one of {}",
                            cloud_col.unwrap_or(0) + 1,
                            names.join(", ")
                        ),
                    ));
                }
            },
        };
        let name = name_col
            .and_then(|c| record.get(c))
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map_or_else(|| tenant_id.to_string(), str::to_string);
        out.push(TenantEntry {
            tenant_id,
            name,
            cloud,
        });
    }
    if out.is_empty() {
        return Err(RotationError::EmptySource(name));
    }
    Ok(out)
}

/// A CSV file of this run's (the tenants file, a run's input), its rows of any length; a file
/// that is not there is [`RotationError::NoSuchInput`].
pub(crate) fn open_csv(path: &Path) -> Result<csv::Reader<std::fs::File>, RotationError> {
    let file = std::fs::File::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => RotationError::NoSuchInput(path.display().to_string()),
        _ => RotationError::io(path, e),
    })?;
    Ok(csv::ReaderBuilder::new().flexible(true).from_reader(file))
}

/// The column named `want`, case, spaces and a byte order mark ignored.
pub(crate) fn column(headers: &csv::StringRecord, want: &str) -> Option<usize> {
    headers.iter().position(|h| {
        h.trim()
            .trim_start_matches('\u{feff}')
            .eq_ignore_ascii_case(want)
    })
}

/// Where one tenant stands in a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TenantState {
    /// Not started yet (or stopped before its plan).
    Waiting,
    /// Planned into its ledger; sending, or stopped part-way (`resume --run-dir` goes on).
    Started,
    /// Every device of its plan reached a final state.
    Done,
    /// Could not be signed in to or read: not consented, a permission missing, sign-in failed.
    Blocked,
    /// Has nothing to rotate for this source (its group does not exist there, say).
    Skipped,
}

impl TenantState {
    pub fn name(self) -> &'static str {
        match self {
            TenantState::Waiting => "waiting",
            TenantState::Started => "started",
            TenantState::Done => "done",
            TenantState::Blocked => "blocked",
            TenantState::Skipped => "skipped",
        }
    }
}

/// A tenant of the run and how it stands.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TenantRecord {
    #[serde(flatten)]
    pub tenant: TenantEntry,
    pub state: TenantState,
    /// Why it is blocked or skipped, as Entra or Graph said it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What to do about it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advice: Option<String>,
    /// Blocked by authentication (sign-in or consent), as opposed to a permission or the source.
    #[serde(default)]
    pub auth: bool,
}

/// `manifest.json`: what the run is (no secrets) and how each tenant stands.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub version: u32,
    /// The action, as `Action` displays it.
    pub action: String,
    /// The source as given (`--query …`, `--group …`, `--input FILE`).
    pub source: String,
    /// The options that shape the run (rate, limits), for the record and for `resume`.
    pub options: serde_json::Value,
    /// What the run was asked to do: `resume` plans a tenant that never was from it. Absent in
    /// run directories of earlier releases, which kept the command line in `options.argv`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<crate::RunSpec>,
    pub created_at: String,
    pub tenants: Vec<TenantRecord>,
}

impl Manifest {
    /// A new run's manifest: every tenant waiting. `source` and `options` are for people and
    /// for the record; `spec` is what `resume` plans from.
    pub fn new(
        spec: &crate::RunSpec,
        tenants: &[TenantEntry],
        source: String,
        options: serde_json::Value,
    ) -> Self {
        Manifest {
            version: 2,
            action: spec.action.to_string(),
            source,
            spec: Some(spec.clone()),
            options,
            created_at: crate::now_iso(),
            tenants: tenants
                .iter()
                .map(|e| TenantRecord {
                    tenant: e.clone(),
                    state: TenantState::Waiting,
                    reason: None,
                    advice: None,
                    auth: false,
                })
                .collect(),
        }
    }
}

/// An open run directory.
#[derive(Debug)]
pub struct RunDir {
    dir: PathBuf,
    manifest: Manifest,
}

const MANIFEST: &str = "manifest.json";

impl RunDir {
    /// Makes the directory (it must not hold a run yet) and writes the manifest.
    pub fn create(dir: &Path, manifest: Manifest) -> Result<Self, RotationError> {
        if dir.join(MANIFEST).exists() {
            return Err(RotationError::RunDirExists(dir.to_path_buf()));
        }
        std::fs::create_dir_all(dir.join("tenants")).map_err(|e| RotationError::io(dir, e))?;
        let run = RunDir {
            dir: dir.to_path_buf(),
            manifest,
        };
        run.save()?;
        Ok(run)
    }

    /// Opens an existing run directory.
    pub fn open(dir: &Path) -> Result<Self, RotationError> {
        let path = dir.join(MANIFEST);
        let text = std::fs::read_to_string(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => RotationError::NoSuchInput(path.display().to_string()),
            _ => RotationError::io(&path, e),
        })?;
        let manifest: Manifest = serde_json::from_str(&text).map_err(|e| {
            RotationError::bad_input(
                path.display().to_string(),
                Some(e.line() as u64),
                format!("column {}: {e}", e.column()),
            )
        })?;
        Ok(RunDir {
            dir: dir.to_path_buf(),
            manifest,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The ledger of one tenant: `tenants/<tenant id>.jsonl`.
    pub fn ledger(&self, tenant: Uuid) -> PathBuf {
        self.dir.join("tenants").join(format!("{tenant}.jsonl"))
    }

    /// Records how a tenant stands and writes the manifest.
    pub fn set(
        &mut self,
        tenant: Uuid,
        state: TenantState,
        reason: Option<String>,
        advice: Option<String>,
        auth: bool,
    ) -> Result<(), RotationError> {
        if let Some(t) = self
            .manifest
            .tenants
            .iter_mut()
            .find(|t| t.tenant.tenant_id == tenant)
        {
            t.state = state;
            t.reason = reason;
            t.advice = advice;
            t.auth = auth;
        }
        self.save()
    }

    /// Replaces the manifest whole: a crash leaves the old one or the new one.
    fn save(&self) -> Result<(), RotationError> {
        let path = self.dir.join(MANIFEST);
        let tmp = self.dir.join(".manifest.json.tmp");
        let text = serde_json::to_vec_pretty(&self.manifest).expect("the manifest serializes");
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&text)?;
            f.write_all(b"\n")?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            if let Ok(d) = std::fs::File::open(&self.dir) {
                let _ = d.sync_all();
            }
            Ok(())
        };
        write().map_err(|e| RotationError::io(&path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    #[test]
    fn a_tenants_file_gives_ids_names_and_clouds() {
        let f = file(
            "tenant_id,name,cloud\n7e0a0001-5e1f-4c8e-9a61-000000000001,Customer A,\n7e0a0002-5e1f-4c8e-9a61-000000000002,,USGov\n",
        );
        let t = read_tenants(f.path()).unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(
            (t[0].name.as_str(), t[0].cloud.as_deref()),
            ("Customer A", None)
        );
        assert_eq!(t[1].name, "7e0a0002-5e1f-4c8e-9a61-000000000002");
        assert_eq!(t[1].cloud.as_deref(), Some("usgov"));
    }

    #[test]
    fn a_bad_tenants_file_names_the_line_and_column() {
        for (text, says) in [
            ("name\nA\n", "line 1: no tenant_id column"),
            (
                "tenant_id\nnot-a-guid\n",
                "line 2: column 1 (tenant_id): \"not-a-guid\"",
            ),
            (
                "tenant_id,cloud\n7e0a0001-5e1f-4c8e-9a61-000000000001,mars\n",
                "line 2: column 2 (cloud): \"mars\"",
            ),
            (
                "tenant_id\n7e0a0001-5e1f-4c8e-9a61-000000000001\n7E0A0001-5E1F-4C8E-9A61-000000000001\n",
                "line 3: tenant 7e0a0001-5e1f-4c8e-9a61-000000000001 is listed twice",
            ),
        ] {
            let f = file(text);
            let e = read_tenants(f.path()).unwrap_err().to_string();
            assert!(e.contains(says), "{text:?}: {e}");
            assert!(e.starts_with(&f.path().display().to_string()), "{e}");
        }
    }

    #[test]
    fn the_manifest_is_replaced_whole_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let run_dir = dir.path().join("run");
        let tenant = TenantEntry {
            tenant_id: Uuid::from_u128(7),
            name: "Customer".into(),
            cloud: None,
        };
        let manifest = Manifest {
            version: 1,
            action: crate::Action::FileVault.to_string(),
            source: "--query".into(),
            options: serde_json::json!({"rate": "200/20s"}),
            spec: None,
            created_at: "2026-11-28T00:00:00Z".into(),
            tenants: vec![TenantRecord {
                tenant,
                state: TenantState::Waiting,
                reason: None,
                advice: None,
                auth: false,
            }],
        };
        let mut run = RunDir::create(&run_dir, manifest.clone()).unwrap();
        run.set(
            Uuid::from_u128(7),
            TenantState::Blocked,
            Some("AADSTS7000229".into()),
            None,
            true,
        )
        .unwrap();
        let again = RunDir::open(&run_dir).unwrap();
        assert_eq!(again.manifest().tenants[0].state, TenantState::Blocked);
        assert!(
            RunDir::create(&run_dir, manifest).is_err(),
            "a run directory is not reused"
        );
        assert!(
            again
                .ledger(Uuid::from_u128(7))
                .starts_with(run_dir.join("tenants"))
        );
    }
}
