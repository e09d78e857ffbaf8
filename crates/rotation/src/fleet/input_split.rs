//! A run's `--input` over many tenants: each row goes to the tenant its `tenant_id` column names,
//! into a file beside that tenant's ledger, which the tenant then plans from like any input.

use crate::{RotationError, RunDir, TenantEntry};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use uuid::Uuid;

/// The rows of each tenant, with the input's header.
#[derive(Debug)]
pub struct InputSplit {
    headers: csv::StringRecord,
    rows: HashMap<Uuid, Vec<csv::StringRecord>>,
}

/// The input file of one tenant, beside its ledger.
pub fn input_file(ledger: &Path) -> PathBuf {
    ledger.with_extension("input.csv")
}

impl InputSplit {
    /// Reads `input` and routes each row by its `tenant_id`; a row naming a tenant not in
    /// `tenants`, or no such column, is bad input named by its line.
    pub fn read(input: &str, tenants: &[TenantEntry]) -> Result<Self, RotationError> {
        let bad = |line: u64, what: String| RotationError::bad_input(input, Some(line), what);
        let mut r = crate::run_dir::open_csv(Path::new(input))?;
        let headers = r.headers().map_err(|e| bad(1, e.to_string()))?.clone();
        let col = crate::run_dir::column(&headers, "tenant_id")
            .ok_or_else(|| {
                bad(
                    1,
                    "over many tenants, the input needs a tenant_id column to route each row to its tenant"
                        .into(),
                )
            })?;
        let known: HashSet<Uuid> = tenants.iter().map(|t| t.tenant_id).collect();
        let mut rows: HashMap<Uuid, Vec<csv::StringRecord>> = HashMap::new();
        for (k, record) in r.records().enumerate() {
            let line = k as u64 + 2;
            let record = record.map_err(|e| bad(line, e.to_string()))?;
            let raw = record.get(col).unwrap_or("").trim();
            let id = Uuid::parse_str(raw).map_err(|_| {
                bad(
                    line,
                    format!("column {} (tenant_id): {raw:?} is not a tenant id", col + 1),
                )
            })?;
            if !known.contains(&id) {
                return Err(bad(
                    line,
                    format!(
                        "column {} (tenant_id): tenant {id} is not in the tenants file",
                        col + 1
                    ),
                ));
            }
            rows.entry(id).or_default().push(record);
        }
        Ok(InputSplit { headers, rows })
    }

    /// Writes each tenant's rows beside its ledger in `run`.
    pub fn write(&self, run: &RunDir) -> Result<(), RotationError> {
        for (tenant, records) in &self.rows {
            let path = input_file(&run.ledger(*tenant));
            let output = |e: csv::Error| RotationError::Output {
                what: path.display().to_string(),
                message: e.to_string(),
            };
            let mut w = csv::Writer::from_path(&path).map_err(output)?;
            w.write_record(&self.headers).map_err(output)?;
            for r in records {
                w.write_record(r).map_err(output)?;
            }
            w.flush().map_err(|e| RotationError::io(&path, e))?;
        }
        Ok(())
    }
}
