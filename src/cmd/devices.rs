//! `intune-rotate devices`: run any source and write the device list, to review and edit it, then
//! feed it back with `--input`.

use super::{Failure, failed, open_output};
use crate::cli::{DevicesArgs, FormatArg};
use crate::connect;
use crate::exit_status::ExitStatus;
use crate::settings::action_of;
use std::io::Write;

pub async fn run(a: DevicesArgs) -> Result<ExitStatus, Failure> {
    if let Some(tenants) = &a.tenants {
        return super::fleet_devices::run(tenants, &a).await;
    }
    let action = action_of(a.action);
    let source = crate::source_args::open(&a.source)?;
    let connection = if source.lists_devices() {
        let c = connect::client(
            &a.connection,
            None,
            None,
            &connect::delegated_scopes(action, source.scopes()),
        )?;
        connect::preflight_read(&c).await?;
        Some(c)
    } else {
        None
    };
    let list = crate::source_args::materialize(
        source,
        connection.as_ref().map(|c| &c.client),
        action,
        a.source.allow_partial_source,
    )
    .await?;
    let mut out = open_output(a.out.as_deref())?;
    let n = match a.format {
        FormatArg::Csv => rotation::write_devices_csv(&mut out, &list)?,
        FormatArg::Json => rotation::write_devices_json(&mut out, &list)?,
    };
    out.flush().map_err(failed)?;
    eprintln!("{n} device(s) from {}", list.display());
    Ok(ExitStatus::Success)
}
