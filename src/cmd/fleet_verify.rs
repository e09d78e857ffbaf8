//! `verify --run-dir`: the engine verifies each tenant's ledger with a sign-in of its own
//! ([`rotation::fleet::verify_run`]); this prints a line per tenant and the total. A tenant that
//! has no ledger or cannot be signed in to is named, and the command exits 1.

use super::Failure;
use crate::cli::Connection;
use crate::exit_status::ExitStatus;
use crate::tenant_connector::CliConnector;
use rotation::fleet::{TenantVerification, verify_run};
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
    let pass = |t: &TenantRecord, c: &VerifyCounts| {
        tracing::info!(tenant = %t.tenant.tenant_id, "verify pass: {}", counts_line(c));
    };
    let v = verify_run(&run, &connector, o, &pass).await?;
    for (t, result) in &v.tenants {
        let (name, id) = (&t.tenant.name, t.tenant.tenant_id);
        match result {
            TenantVerification::NoLedger => {
                println!("{name} ({id}): no ledger ({})", t.state.name())
            }
            TenantVerification::Blocked(b) => println!("{name} ({id}): blocked: {}", b.why),
            TenantVerification::Verified(r) => {
                println!("{name} ({id}): {}", counts_line(&r.counts))
            }
        }
    }
    println!("total: {}", counts_line(&v.total));
    Ok(if v.all_done() {
        ExitStatus::Success
    } else {
        ExitStatus::Incomplete
    })
}

fn counts_line(counts: &VerifyCounts) -> String {
    let line: Vec<String> = counts.iter().map(|(k, v)| format!("{k} {v}")).collect();
    line.join(", ")
}
