//! `devices --tenants FILE`: every tenant's devices in one list, `tenant_id` and `tenant_name`
//! first; a tenant that cannot be read is named on stderr and the command exits 1.

use super::{Failure, failed, open_output, usage};
use crate::cli::DevicesArgs;
use crate::connect;
use crate::exit_status::ExitStatus;
use crate::settings::action_of;
use crate::tenant_connector::CliConnector;
use rotation::TenantEntry;
use rotation::fleet::said_once;
use std::io::Write;
use std::path::Path;

pub async fn run(tenants_file: &Path, a: &DevicesArgs) -> Result<ExitStatus, Failure> {
    let tenants = rotation::read_tenants(tenants_file)?;
    if !crate::source_args::open(&a.source)?.lists_devices() {
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
    for t in &tenants {
        let buf = match listed(&connector, t, a).await {
            Ok(b) => b,
            Err(Failure(_, e)) => {
                eprintln!("{} ({}): {}", t.name, t.tenant_id, said_once(e.as_ref()));
                status = ExitStatus::Incomplete;
                continue;
            }
        };
        let id = t.tenant_id.to_string();
        if let Some(dir) = &a.run_dir {
            let path = dir.join("devices").join(format!("{id}.csv"));
            std::fs::create_dir_all(dir.join("devices"))
                .and_then(|()| std::fs::write(&path, &buf))
                .map_err(|e| failed(anyhow::anyhow!("{}: {e}", path.display())))?;
        }
        n += with_tenant_columns(&buf, &mut out, &id, &t.name, &mut header_written)?;
    }
    out.flush().map_err(failed)?;
    eprintln!("{n} device(s) from {} tenant(s)", tenants.len());
    Ok(status)
}

/// One tenant's devices from the source, as CSV.
async fn listed(
    connector: &CliConnector,
    t: &TenantEntry,
    a: &DevicesArgs,
) -> Result<Vec<u8>, Failure> {
    let action = action_of(a.action);
    let source = crate::source_args::open(&a.source)?;
    let scopes = connect::delegated_scopes(action, source.scopes());
    let c = connect::client(&connector.connection(t), None, None, &scopes)?;
    connect::preflight_read(&c).await?;
    let partial = a.source.allow_partial_source;
    let list = crate::source_args::materialize(source, Some(&c.client), action, partial).await?;
    let mut buf = Vec::new();
    rotation::write_devices_csv(&mut buf, &list)?;
    Ok(buf)
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
