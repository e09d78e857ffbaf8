//! `intune-rotate export`: one row per device, CSV or JSON.

use super::{Failure, failed, open_output};
use crate::cli::{ExportArgs, FormatArg};
use crate::exit_status::ExitStatus;
use rotation::ExportFormat;
use std::io::Write;

pub fn run(a: ExportArgs) -> Result<ExitStatus, Failure> {
    let format = match a.format {
        FormatArg::Csv => ExportFormat::Csv,
        FormatArg::Json => ExportFormat::Json,
    };
    if let Some(dir) = &a.run_dir {
        return super::fleet::export(dir, format, a.out.as_deref());
    }
    let ledger = a.ledger.clone().expect("clap: --ledger without --run-dir");
    let mut out = open_output(a.out.as_deref())?;
    let n = rotation::export(&ledger, format, &mut out)?;
    out.flush().map_err(failed)?;
    if let Some(p) = &a.out {
        eprintln!("wrote {n} device(s) to {}", p.display());
    }
    Ok(ExitStatus::Success)
}
