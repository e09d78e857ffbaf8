//! `intune-rotate export`: one row per device, CSV or JSON (or CSV for Excel).

use super::{Failure, failed, open_output, usage};
use crate::cli::{ExportArgs, FormatArg};
use crate::exit_status::ExitStatus;
use rotation::ExportFormat;
use std::io::Write;

pub fn run(a: ExportArgs) -> Result<ExitStatus, Failure> {
    let format = match a.format {
        FormatArg::Csv => ExportFormat::Csv,
        FormatArg::Json => ExportFormat::Json,
    };
    if a.excel && format != ExportFormat::Csv {
        return Err(usage(anyhow::anyhow!(
            "--excel writes CSV: drop --format json"
        )));
    }
    if let Some(dir) = &a.run_dir {
        return run_dir(dir, format, a.out.as_deref(), a.excel);
    }
    let ledger = a.ledger.clone().expect("clap: --ledger without --run-dir");
    let out = open_output(a.out.as_deref())?;
    let mut out = ForExcel::wrap(out, a.excel).map_err(failed)?;
    let n = rotation::export(&ledger, format, &mut out)?;
    out.flush().map_err(failed)?;
    if let Some(p) = &a.out {
        eprintln!("wrote {n} device(s) to {}", p.display());
    }
    Ok(ExitStatus::Success)
}

/// `export --run-dir`: every tenant's rows in one file, `tenant_id` and `tenant_name` first, each
/// tenant's ledger streamed straight into the output (memory stays that of one ledger's export).
fn run_dir(
    dir: &std::path::Path,
    format: ExportFormat,
    out: Option<&std::path::Path>,
    excel: bool,
) -> Result<ExitStatus, Failure> {
    let run = rotation::RunDir::open(dir)?;
    let mut w = ForExcel::wrap(open_output(out)?, excel).map_err(failed)?;
    let ledgers = run
        .manifest()
        .tenants
        .iter()
        .map(|t| {
            let tag = rotation::Tag {
                tenant_id: t.tenant.tenant_id.to_string(),
                tenant_name: t.tenant.name.clone(),
            };
            (run.ledger(t.tenant.tenant_id), Some(tag))
        })
        .filter(|(ledger, _)| ledger.exists());
    let n = rotation::export_all(ledgers, format, &mut w)?;
    w.flush().map_err(failed)?;
    if let Some(p) = out {
        let tenants = run.manifest().tenants.len();
        eprintln!(
            "wrote {n} device(s) of {tenants} tenant(s) to {}",
            p.display()
        );
    }
    Ok(ExitStatus::Success)
}

/// A writer that, for Excel, starts with a UTF-8 byte order mark and ends lines with CRLF (a line
/// feed inside a quoted field becomes CRLF too, which Excel reads the same); otherwise passes
/// bytes through.
pub struct ForExcel<W: Write> {
    inner: W,
    excel: bool,
    last_cr: bool,
}

impl<W: Write> ForExcel<W> {
    pub fn wrap(mut inner: W, excel: bool) -> std::io::Result<Self> {
        if excel {
            inner.write_all("\u{feff}".as_bytes())?;
        }
        Ok(ForExcel {
            inner,
            excel,
            last_cr: false,
        })
    }
}

impl<W: Write> Write for ForExcel<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if !self.excel {
            return self.inner.write(buf);
        }
        let mut start = 0;
        for (i, &b) in buf.iter().enumerate() {
            if b == b'\n' && !(i == 0 && self.last_cr) && !(i > 0 && buf[i - 1] == b'\r') {
                self.inner.write_all(&buf[start..i])?;
                self.inner.write_all(b"\r")?;
                start = i;
            }
        }
        self.inner.write_all(&buf[start..])?;
        self.last_cr = buf.last() == Some(&b'\r');
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn for_excel_a_bom_first_and_every_line_ends_crlf_once() {
        let mut out = ForExcel::wrap(Vec::new(), true).unwrap();
        out.write_all(b"a,b\n\"Ren\xc3\xa9e\nM\xc3\xbcller\",2\r\n")
            .unwrap();
        out.write_all(b"\nx\n").unwrap();
        assert_eq!(
            out.inner,
            "\u{feff}a,b\r\n\"Renée\r\nMüller\",2\r\n\r\nx\r\n".as_bytes()
        );
        let mut plain = ForExcel::wrap(Vec::new(), false).unwrap();
        plain.write_all(b"a\nb\n").unwrap();
        assert_eq!(plain.inner, b"a\nb\n");
    }
}
