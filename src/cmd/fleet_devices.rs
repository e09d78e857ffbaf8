//! `devices --tenants FILE`: every tenant's devices in one list, `tenant_id` and `tenant_name`
//! first; a tenant that cannot be read is named on stderr and the command exits 1.

use super::{Failure, failed, open_output, usage};
use crate::cli::DevicesArgs;
use crate::exit_status::ExitStatus;
use crate::settings::action_of;
use crate::tenant_connector::CliConnector;
use rotation::TenantEntry;
use rotation::fleet::{TenantListing, list_devices, said_once};
use std::io::Write;
use std::path::Path;

pub async fn run(tenants_file: &Path, a: &DevicesArgs) -> Result<ExitStatus, Failure> {
    let tenants = rotation::read_tenants(tenants_file)?;
    let spec = crate::source_args::spec_of(&a.source)?;
    if !rotation::OpenSource::open(&spec)?.lists_devices() {
        return Err(usage(anyhow::anyhow!(
            "--tenants lists devices from Graph: use --query, --group or another Graph source"
        )));
    }
    let connector = CliConnector {
        base: a.connection.clone(),
    };
    let mut out = open_output(a.out.as_deref())?;
    let mut status = ExitStatus::Success;
    let mut header_written = false;
    let mut n = 0;
    let mut failure: Option<Failure> = None;
    let partial = a.source.allow_partial_source;
    let each = |t: &TenantEntry, got: TenantListing| {
        let list = match got {
            TenantListing::Listed(m) => m,
            TenantListing::Blocked(b) => {
                eprintln!("{} ({}): {}", t.name, t.tenant_id, b.why);
                status = ExitStatus::Incomplete;
                return Ok(());
            }
            TenantListing::Failed(e) => {
                eprintln!("{} ({}): {}", t.name, t.tenant_id, said_once(&e));
                status = ExitStatus::Incomplete;
                return Ok(());
            }
        };
        for note in &list.notes {
            eprintln!("{note}");
        }
        let mut buf = Vec::new();
        rotation::write_devices_csv(&mut buf, &list.list)?;
        let id = t.tenant_id.to_string();
        let kept = keep(a.run_dir.as_deref(), &id, &buf)
            .and_then(|()| with_tenant_columns(&buf, &mut out, &id, &t.name, &mut header_written));
        match kept {
            Ok(rows) => n += rows,
            Err(f) => failure = Some(f),
        }
        if failure.is_some() {
            return Err(rotation::RotationError::Output {
                what: "the device list".into(),
                message: "stopped".into(),
            });
        }
        Ok(())
    };
    let listed = list_devices(
        &tenants,
        &connector,
        &spec,
        action_of(a.action),
        partial,
        each,
    )
    .await;
    if let Some(f) = failure {
        return Err(f);
    }
    listed?;
    out.flush().map_err(failed)?;
    eprintln!("{n} device(s) from {} tenant(s)", tenants.len());
    Ok(status)
}

/// With `--run-dir`, each tenant's list is kept in it as `devices/{tenant}.csv`.
fn keep(dir: Option<&Path>, id: &str, csv: &[u8]) -> Result<(), Failure> {
    let Some(dir) = dir else { return Ok(()) };
    let path = dir.join("devices").join(format!("{id}.csv"));
    std::fs::create_dir_all(dir.join("devices"))
        .and_then(|()| std::fs::write(&path, csv))
        .map_err(|e| failed(anyhow::anyhow!("{}: {e}", path.display())))
}

/// Copies one tenant's CSV into `out` with `tenant_id` and `tenant_name` first (the header once,
/// before the first tenant's rows); returns the rows copied.
fn with_tenant_columns(
    csv_text: &[u8],
    out: &mut dyn Write,
    id: &str,
    name: &str,
    header_written: &mut bool,
) -> Result<usize, Failure> {
    let mut r = csv::Reader::from_reader(csv_text);
    let mut w = csv::WriterBuilder::new().from_writer(out);
    if !*header_written {
        let mut h = csv::StringRecord::from(vec!["tenant_id", "tenant_name"]);
        h.extend(r.headers().map_err(failed)?.iter());
        w.write_record(&h).map_err(failed)?;
        *header_written = true;
    }
    let mut n = 0;
    for record in r.records() {
        let record = record.map_err(failed)?;
        let mut row = csv::StringRecord::from(vec![id, name]);
        row.extend(record.iter());
        w.write_record(&row).map_err(failed)?;
        n += 1;
    }
    w.flush().map_err(failed)?;
    Ok(n)
}
