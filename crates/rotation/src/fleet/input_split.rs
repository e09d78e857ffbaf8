//! A run's `--input` over many tenants: each row goes to the tenant its `tenant_id` column names,
//! into a file beside that tenant's ledger, which the tenant then plans from like any input.

use crate::{RotationError, RunDir, TenantEntry};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use uuid::Uuid;

/// An input checked against the run's tenants: every row names one of them. It holds the path and
/// the tenants that have rows, not the rows: a fleet's input of millions of rows is read twice
/// (checked, then written out) in the memory of a few buffers.
#[derive(Debug)]
pub struct InputSplit {
    input: PathBuf,
    tenant_col: usize,
    /// Tenants with at least one row.
    with_rows: HashSet<Uuid>,
}

/// The bytes of rows held before they are appended to the tenants' files.
const HELD: usize = 8 << 20;

/// The input file of one tenant, beside its ledger.
pub fn input_file(ledger: &Path) -> PathBuf {
    ledger.with_extension("input.csv")
}

impl InputSplit {
    /// Reads `input` and checks that each row's `tenant_id` names a tenant of `tenants`; a row
    /// naming another, or no such column, is bad input named by its line.
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
        let mut with_rows = HashSet::new();
        let mut record = csv::StringRecord::new();
        let mut line = 1;
        while r
            .read_record(&mut record)
            .map_err(|e| bad(line + 1, e.to_string()))?
        {
            line += 1;
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
            with_rows.insert(id);
        }
        Ok(InputSplit {
            input: PathBuf::from(input),
            tenant_col: col,
            with_rows,
        })
    }

    /// Writes each tenant's rows beside its ledger in `run`, under the input's header: rows are
    /// held per tenant up to [`HELD`] bytes in all, then appended to their files, so memory and
    /// open files stay a few whatever the number of tenants.
    pub fn write(&self, run: &RunDir) -> Result<(), RotationError> {
        let mut r = crate::run_dir::open_csv(&self.input)?;
        let reread = |e: csv::Error| RotationError::io(&self.input, std::io::Error::other(e));
        let headers = r.headers().map_err(reread)?.clone();
        let mut out = Held::new(HELD, |tenant| input_file(&run.ledger(tenant)));
        for tenant in &self.with_rows {
            out.push(*tenant, &headers)?;
        }
        let mut record = csv::StringRecord::new();
        while r.read_record(&mut record).map_err(reread)? {
            let raw = record.get(self.tenant_col).unwrap_or("").trim();
            // Checked by `read`; a file changed since is read as it now is, row by row.
            let Ok(tenant) = Uuid::parse_str(raw) else {
                continue;
            };
            if self.with_rows.contains(&tenant) {
                out.push(tenant, &record)?;
            }
        }
        out.flush()
    }
}

/// Rows on their way to the tenants' files.
struct Held<P> {
    rows: HashMap<Uuid, csv::Writer<Vec<u8>>>,
    bytes: usize,
    /// Bytes held before every tenant's rows are appended to its file.
    most: usize,
    /// Tenants whose file is begun: later rows are appended to it.
    begun: HashSet<Uuid>,
    path_of: P,
}

impl<P: Fn(Uuid) -> PathBuf> Held<P> {
    fn new(most: usize, path_of: P) -> Self {
        Held {
            rows: HashMap::new(),
            bytes: 0,
            most,
            begun: HashSet::new(),
            path_of,
        }
    }

    fn push(&mut self, tenant: Uuid, record: &csv::StringRecord) -> Result<(), RotationError> {
        let w = self.rows.entry(tenant).or_insert_with(|| {
            csv::WriterBuilder::new()
                .buffer_capacity(1 << 10)
                .from_writer(Vec::new())
        });
        w.write_record(record).map_err(|e| RotationError::Output {
            what: (self.path_of)(tenant).display().to_string(),
            message: e.to_string(),
        })?;
        self.bytes += record.as_slice().len() + record.len() + 1;
        if self.bytes >= self.most {
            self.flush()?;
        }
        Ok(())
    }

    /// Appends every tenant's held rows to its file (made afresh the first time).
    fn flush(&mut self) -> Result<(), RotationError> {
        for (tenant, w) in self.rows.drain() {
            let path = (self.path_of)(tenant);
            let bytes = w
                .into_inner()
                .map_err(|e| RotationError::io(&path, e.into_error()))?;
            let begun = !self.begun.insert(tenant);
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .write(true)
                .append(begun)
                .truncate(!begun)
                .open(&path)
                .map_err(|e| RotationError::io(&path, e))?;
            std::io::Write::write_all(&mut file, &bytes)
                .map_err(|e| RotationError::io(&path, e))?;
        }
        self.bytes = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(fields: &[&str]) -> csv::StringRecord {
        csv::StringRecord::from(fields.to_vec())
    }

    #[test]
    fn rows_held_past_the_bound_are_appended_to_each_tenant_file_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let path_of = |t: Uuid| dir.path().join(format!("{t}.csv"));
        // A bound of one row: every row is written out as it comes.
        let mut held = Held::new(1, path_of);
        held.push(a, &record(&["tenant_id", "id"])).unwrap();
        held.push(b, &record(&["tenant_id", "id"])).unwrap();
        for n in 0..3 {
            held.push(a, &record(&["a", &n.to_string()])).unwrap();
            held.push(b, &record(&["b", &format!("x,{n}")])).unwrap();
        }
        held.flush().unwrap();
        let read = |t| std::fs::read_to_string(path_of(t)).unwrap();
        assert_eq!(read(a), "tenant_id,id\na,0\na,1\na,2\n");
        assert_eq!(read(b), "tenant_id,id\nb,\"x,0\"\nb,\"x,1\"\nb,\"x,2\"\n");
    }

    #[test]
    fn a_file_left_by_an_earlier_split_is_written_afresh() {
        let dir = tempfile::tempdir().unwrap();
        let a = Uuid::from_u128(1);
        let path_of = |t: Uuid| dir.path().join(format!("{t}.csv"));
        std::fs::write(path_of(a), "stale,rows\n1,2\n").unwrap();
        let mut held = Held::new(HELD, path_of);
        held.push(a, &record(&["tenant_id"])).unwrap();
        held.flush().unwrap();
        assert_eq!(std::fs::read_to_string(path_of(a)).unwrap(), "tenant_id\n");
    }
}
