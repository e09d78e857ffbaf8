//! `verify --run-dir`: each tenant's ledger, each with its own sign-in; a tenant that cannot be
//! signed in to is named and the command exits 1.

use super::Failure;
use crate::cli::Connection;
use crate::connect;
use crate::exit_status::ExitStatus;
use crate::tenant_connector::CliConnector;
use rotation::fleet::said_once;
use rotation::{RunDir, TenantRecord, VerifyCounts, VerifyOptions};
use std::path::Path;

pub async fn run(
    dir: &Path,
    connection: &Connection,
    o: &VerifyOptions,
) -> Result<ExitStatus, Failure> {
    let run = RunDir::open(dir)?;
    let connector = CliConnector {
        base: connection.clone(),
    };
    let mut status = ExitStatus::Success;
    let mut total = VerifyCounts::new();
    for t in &run.manifest().tenants {
        let (name, id) = (&t.tenant.name, t.tenant.tenant_id);
        let ledger = run.ledger(id);
        if !ledger.exists() {
            println!("{name} ({id}): no ledger ({})", t.state.name());
            status = status.max(ExitStatus::Incomplete);
            continue;
        }
        let c = match signed_in(&connector, t).await {
            Ok(c) => c,
            Err(Failure(_, e)) => {
                println!("{name} ({id}): blocked: {}", said_once(e.as_ref()));
                status = status.max(ExitStatus::Incomplete);
                continue;
            }
        };
        let report = super::verify::run_verify(&c.client, &ledger, o).await?;
        println!("{name} ({id}): {}", counts_line(&report.counts));
        for (k, v) in &report.counts {
            *total.entry(*k).or_default() += v;
        }
        status = status.max(ExitStatus::of_verify(&report.counts));
    }
    println!("total: {}", counts_line(&total));
    Ok(status)
}

/// A sign-in to the tenant that can read its devices.
async fn signed_in(
    connector: &CliConnector,
    t: &TenantRecord,
) -> Result<connect::Connected, Failure> {
    let conn = connector.connection(&t.tenant);
    let c = connect::client(
        &conn,
        None,
        None,
        &["DeviceManagementManagedDevices.Read.All"],
    )?;
    connect::preflight_read(&c).await?;
    Ok(c)
}

fn counts_line(counts: &VerifyCounts) -> String {
    let line: Vec<String> = counts.iter().map(|(k, v)| format!("{k} {v}")).collect();
    line.join(", ")
}
