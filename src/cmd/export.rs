//! `intune-rotate export`: one row per device, CSV or JSON.

use super::{Failure, failed, usage};
use crate::cli::{ExportArgs, FormatArg};
use crate::exit_status::ExitStatus;
use rotation::ExportFormat;
use std::io::Write;

pub fn run(a: ExportArgs) -> Result<ExitStatus, Failure> {
    let format = match a.format {
        FormatArg::Csv => ExportFormat::Csv,
        FormatArg::Json => ExportFormat::Json,
    };
    let mut out: Box<dyn Write> = match &a.out {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).map_err(|e| usage(anyhow::anyhow!("{}: {e}", p.display())))?,
        )),
        None => Box::new(std::io::stdout().lock()),
    };
    let n = rotation::export(&a.ledger, format, &mut out)?;
    out.flush().map_err(failed)?;
    if let Some(p) = &a.out {
        eprintln!("wrote {n} device(s) to {}", p.display());
    }
    Ok(ExitStatus::Success)
}
