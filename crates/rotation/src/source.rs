//! Device lists from CSV (a file or stdin): Intune's export shape, PowerShell's `;` exports, BOMs,
//! quoted headers; or JSON lines. The managed-device id column is found by name, never confused
//! with Entra's. Graph sources are spooled to this same CSV shape, so one plan serves them all.

use crate::RotationError;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

/// One row of the input, with its line number for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceDevice {
    pub line: u64,
    pub raw_id: String,
    pub name: Option<String>,
    pub serial: Option<String>,
    pub user: Option<String>,
    pub os: Option<String>,
    pub encrypted: Option<bool>,
    /// Last check-in as written in the source (ISO 8601 or Intune's "2026-11-27 08:15:00").
    pub last_sync: Option<String>,
    pub entra_id: Option<String>,
}

/// Which column identifies a row: the Intune id, or what `--match-by` resolves from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyColumn {
    #[default]
    IntuneId,
    Serial,
    Name,
    EntraId,
}

/// Column names (lower case, without spaces and underscores) that hold the Intune managed device id.
const ID_COLUMNS: &[&str] = &["id", "manageddeviceid", "deviceid", "intunedeviceid"];
/// Columns holding the Entra (Azure AD) device id: a different id that must never be posted.
const ENTRA_COLUMNS: &[&str] = &[
    "azureaddeviceid",
    "aaddeviceid",
    "entradeviceid",
    "entraid",
    "azureadid",
    "objectid",
];
const NAME_COLUMNS: &[&str] = &["devicename", "name", "managementname"];
const SERIAL_COLUMNS: &[&str] = &["serialnumber", "serial"];
const USER_COLUMNS: &[&str] = &[
    "userprincipalname",
    "primaryuserupn",
    "upn",
    "user",
    "primaryuseremailaddress",
];
const OS_COLUMNS: &[&str] = &["operatingsystem", "os", "platform"];
const ENCRYPTED_COLUMNS: &[&str] = &["isencrypted", "encrypted"];
const LAST_SYNC_COLUMNS: &[&str] = &[
    "lastsyncdatetime",
    "lastcheckin",
    "lastcheckindatetime",
    "lastsync",
];

/// The column names this tool writes (`devices`, Graph sources): readable back as `--input`.
pub const DEVICE_COLUMNS: [&str; 8] = [
    "id",
    "deviceName",
    "serialNumber",
    "userPrincipalName",
    "operatingSystem",
    "isEncrypted",
    "lastSyncDateTime",
    "azureADDeviceId",
];

/// Writes device rows in [`DEVICE_COLUMNS`] order as they come, after a header.
pub struct DeviceCsvWriter<W: std::io::Write> {
    w: csv::Writer<W>,
    rows: usize,
}

impl<W: std::io::Write> std::fmt::Debug for DeviceCsvWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceCsvWriter")
            .field("rows", &self.rows)
            .finish_non_exhaustive()
    }
}

fn write_err(e: csv::Error) -> RotationError {
    RotationError::Output {
        what: "the device list".into(),
        message: e.to_string(),
    }
}

impl<W: std::io::Write> DeviceCsvWriter<W> {
    pub fn new(out: W) -> Result<Self, RotationError> {
        let mut w = csv::Writer::from_writer(out);
        w.write_record(DEVICE_COLUMNS).map_err(write_err)?;
        Ok(DeviceCsvWriter { w, rows: 0 })
    }

    pub fn write(&mut self, d: SourceDevice) -> Result<(), RotationError> {
        let enc = d
            .encrypted
            .map(|e| if e { "true" } else { "false" }.to_string());
        let fields = [
            Some(d.raw_id),
            d.name,
            d.serial,
            d.user,
            d.os,
            enc,
            d.last_sync,
            d.entra_id,
        ];
        self.w
            .write_record(fields.iter().map(|f| f.as_deref().unwrap_or("")))
            .map_err(write_err)?;
        self.rows += 1;
        Ok(())
    }

    /// Flushes and returns how many rows were written.
    pub fn finish(mut self) -> Result<usize, RotationError> {
        self.w
            .flush()
            .map_err(|e| RotationError::io("devices output", e))?;
        Ok(self.rows)
    }
}

/// Writes a device list in [`DEVICE_COLUMNS`] order, with a header, row by row as it is read.
pub fn write_devices_csv<W: std::io::Write>(
    out: W,
    devices: &CsvSource,
) -> Result<usize, RotationError> {
    let mut w = DeviceCsvWriter::new(out)?;
    devices.for_each(|d| w.write(d))?;
    w.finish()
}

/// Writes a device list as a JSON array of objects with [`DEVICE_COLUMNS`] keys, element by
/// element as it is read (a fleet's list is never held in memory whole).
pub fn write_devices_json<W: std::io::Write>(
    mut out: W,
    devices: &CsvSource,
) -> Result<usize, RotationError> {
    use serde::ser::{SerializeSeq, Serializer};
    let io = |e: serde_json::Error| RotationError::io("devices output", e.into());
    let mut rows = 0;
    let mut ser = serde_json::Serializer::pretty(&mut out);
    let mut seq = ser.serialize_seq(None).map_err(io)?;
    devices.for_each(|d| {
        rows += 1;
        seq.serialize_element(&serde_json::json!({
            "id": d.raw_id, "deviceName": d.name, "serialNumber": d.serial, "userPrincipalName": d.user,
            "operatingSystem": d.os, "isEncrypted": d.encrypted, "lastSyncDateTime": d.last_sync, "azureADDeviceId": d.entra_id,
        }))
        .map_err(io)
    })?;
    seq.end().map_err(io)?;
    out.write_all(b"\n")
        .map_err(|e| RotationError::io("devices output", e))?;
    Ok(rows)
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "yes" | "true" | "1" | "encrypted" => Some(true),
        "no" | "false" | "0" | "notencrypted" => Some(false),
        _ => None,
    }
}

fn key_columns(key: KeyColumn) -> &'static [&'static str] {
    match key {
        KeyColumn::IntuneId => ID_COLUMNS,
        KeyColumn::Serial => SERIAL_COLUMNS,
        KeyColumn::Name => NAME_COLUMNS,
        KeyColumn::EntraId => ENTRA_COLUMNS,
    }
}

fn norm(h: &str) -> String {
    h.trim()
        .trim_start_matches('\u{feff}')
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '_' && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

/// A CSV device list; read twice (validate, then plan) without holding it in memory.
#[derive(Debug)]
pub struct CsvSource {
    path: PathBuf,
    /// Where stdin was spooled, removed on drop.
    _spool: Option<tempfile::TempPath>,
    display: String,
}

impl CsvSource {
    /// `-` reads stdin (spooled to a temporary file so it can be read twice).
    pub fn open(path: &str) -> Result<Self, RotationError> {
        if path == "-" {
            let mut tmp =
                tempfile::NamedTempFile::new().map_err(|e| RotationError::io("stdin spool", e))?;
            std::io::copy(&mut std::io::stdin().lock(), &mut tmp)
                .map_err(|e| RotationError::io("stdin", e))?;
            let spool = tmp.into_temp_path();
            return Ok(CsvSource {
                path: spool.to_path_buf(),
                _spool: Some(spool),
                display: "stdin".into(),
            });
        }
        let p = Path::new(path);
        if !p.is_file() {
            return Err(RotationError::NoSuchInput(path.to_string()));
        }
        Ok(CsvSource {
            path: p.to_path_buf(),
            _spool: None,
            display: path.to_string(),
        })
    }

    /// A device list written to a temporary file (Graph sources, `--match-by`), removed on drop.
    pub fn spooled(spool: tempfile::TempPath, display: impl Into<String>) -> Self {
        CsvSource {
            path: spool.to_path_buf(),
            _spool: Some(spool),
            display: display.into(),
        }
    }

    pub fn display(&self) -> &str {
        &self.display
    }

    /// JSON lines when the first non-blank byte opens an object; CSV otherwise.
    fn is_json_lines(&self) -> Result<bool, RotationError> {
        let mut head = [0u8; 512];
        let mut f = File::open(&self.path).map_err(|e| RotationError::io(&self.path, e))?;
        let n = f
            .read(&mut head)
            .map_err(|e| RotationError::io(&self.path, e))?;
        let first = head[..n]
            .iter()
            .find(|b| !b.is_ascii_whitespace() && **b != 0xef && **b != 0xbb && **b != 0xbf);
        Ok(first == Some(&b'{'))
    }

    /// JSON lines: one device object a line, keys named like the CSV columns.
    fn for_each_json_line(
        &self,
        key: KeyColumn,
        f: &mut dyn FnMut(SourceDevice) -> Result<(), RotationError>,
    ) -> Result<(), RotationError> {
        use std::io::BufRead;
        let file = File::open(&self.path).map_err(|e| RotationError::io(&self.path, e))?;
        for (n, line) in BufReader::new(file).lines().enumerate() {
            let line_no = n as u64 + 1;
            let line = line.map_err(|e| RotationError::io(&self.path, e))?;
            let text = line.trim().trim_start_matches('\u{feff}');
            if text.is_empty() {
                continue;
            }
            let v: serde_json::Value = serde_json::from_str(text).map_err(|e| {
                RotationError::bad_input(
                    &self.display,
                    Some(line_no),
                    format!("not a JSON object: {e}"),
                )
            })?;
            let Some(obj) = v.as_object() else {
                return Err(RotationError::bad_input(
                    &self.display,
                    Some(line_no),
                    "expected a JSON object",
                ));
            };
            let get = |names: &[&str]| {
                obj.iter()
                    .find(|(k, _)| names.contains(&norm(k).as_str()))
                    .and_then(|(_, v)| match v {
                        serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
                        serde_json::Value::Bool(b) => Some(b.to_string()),
                        serde_json::Value::Number(n) => Some(n.to_string()),
                        _ => None,
                    })
            };
            let raw_id = get(key_columns(key)).unwrap_or_default();
            if key == KeyColumn::IntuneId && raw_id.is_empty() && get(ENTRA_COLUMNS).is_some() {
                return Err(RotationError::bad_input(
                    &self.display,
                    Some(line_no),
                    "only an Entra (Azure AD) device id; the rotate actions need the Intune managed device id (`id`). Use --match-by entra-id",
                ));
            }
            f(SourceDevice {
                line: line_no,
                raw_id,
                name: get(NAME_COLUMNS),
                serial: get(SERIAL_COLUMNS),
                user: get(USER_COLUMNS),
                os: get(OS_COLUMNS),
                encrypted: get(ENCRYPTED_COLUMNS).and_then(|v| parse_bool(&v)),
                last_sync: get(LAST_SYNC_COLUMNS),
                entra_id: get(ENTRA_COLUMNS),
            })?;
        }
        Ok(())
    }

    fn delimiter(&self) -> Result<u8, RotationError> {
        let mut head = [0u8; 4096];
        let mut f = File::open(&self.path).map_err(|e| RotationError::io(&self.path, e))?;
        let n = f
            .read(&mut head)
            .map_err(|e| RotationError::io(&self.path, e))?;
        let first = head[..n].split(|&b| b == b'\n').next().unwrap_or(&[]);
        let count = |d: u8| first.iter().filter(|&&b| b == d).count();
        Ok([b',', b';', b'\t']
            .into_iter()
            .max_by_key(|&d| count(d))
            .filter(|&d| count(d) > 0)
            .unwrap_or(b','))
    }

    /// Calls `f` for every data row, in order. Header problems are errors naming the file.
    pub fn for_each(
        &self,
        f: impl FnMut(SourceDevice) -> Result<(), RotationError>,
    ) -> Result<(), RotationError> {
        self.for_each_keyed(KeyColumn::IntuneId, f)
    }

    /// As [`CsvSource::for_each`], with `raw_id` taken from the `key` column.
    pub fn for_each_keyed(
        &self,
        key: KeyColumn,
        mut f: impl FnMut(SourceDevice) -> Result<(), RotationError>,
    ) -> Result<(), RotationError> {
        if self.is_json_lines()? {
            return self.for_each_json_line(key, &mut f);
        }
        let file = File::open(&self.path).map_err(|e| RotationError::io(&self.path, e))?;
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(self.delimiter()?)
            .flexible(true)
            .trim(csv::Trim::All)
            .from_reader(BufReader::with_capacity(1 << 16, file));
        let headers = reader.headers().map_err(|e| self.csv_error(e))?.clone();
        let names: Vec<String> = headers.iter().map(norm).collect();
        if names.iter().all(String::is_empty) {
            return Err(RotationError::bad_input(
                &self.display,
                None,
                "empty file or no header line; the first line must name the columns (e.g. `id`)",
            ));
        }
        let find = |wanted: &[&str]| {
            wanted
                .iter()
                .find_map(|w| names.iter().position(|n| n == w))
        };
        let Some(id_col) = find(key_columns(key)) else {
            if key != KeyColumn::IntuneId {
                return Err(RotationError::bad_input(
                    &self.display,
                    Some(1),
                    format!(
                        "no {} column to match by (found: {})",
                        key_columns(key).join(" / "),
                        headers.iter().collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
            if let Some(entra) = find(ENTRA_COLUMNS) {
                return Err(RotationError::bad_input(
                    &self.display,
                    Some(1),
                    format!(
                        "found column {:?}, which holds Entra (Azure AD) device ids, not Intune managed device ids; the rotate actions need the Intune id (column `id`, `Device ID` or `managedDeviceId` in Intune's export). Use --match-by entra-id when only Entra ids are at hand",
                        headers.get(entra).unwrap_or("")
                    ),
                ));
            }
            return Err(RotationError::bad_input(
                &self.display,
                Some(1),
                format!(
                    "no managed device id column; expected one named id, managedDeviceId, Device ID or device_id (found: {})",
                    headers.iter().collect::<Vec<_>>().join(", ")
                ),
            ));
        };
        let (name, serial, user, os, enc) = (
            find(NAME_COLUMNS),
            find(SERIAL_COLUMNS),
            find(USER_COLUMNS),
            find(OS_COLUMNS),
            find(ENCRYPTED_COLUMNS),
        );
        let (last_sync, entra) = (find(LAST_SYNC_COLUMNS), find(ENTRA_COLUMNS));
        let mut record = csv::StringRecord::new();
        let mut lines = LineCounter {
            reader: BufReader::with_capacity(
                1 << 16,
                File::open(&self.path).map_err(|e| RotationError::io(&self.path, e))?,
            ),
            pos: 0,
            line: 1,
        };
        loop {
            match reader.read_record(&mut record) {
                Ok(false) => return Ok(()),
                Ok(true) => {}
                Err(e) => return Err(self.csv_error(e)),
            }
            // csv's own line count skips blank CRLF lines; count newlines up to the record instead.
            let line = record
                .position()
                .map_or(Ok(0), |p| lines.line_at(p.byte()))
                .map_err(|e| RotationError::io(&self.path, e))?;
            if record.iter().all(str::is_empty) {
                continue;
            }
            let get = |c: Option<usize>| {
                c.and_then(|c| record.get(c))
                    .filter(|v| !v.is_empty())
                    .map(str::to_string)
            };
            f(SourceDevice {
                line,
                raw_id: record.get(id_col).unwrap_or("").to_string(),
                name: get(name),
                serial: get(serial),
                user: get(user),
                os: get(os),
                encrypted: get(enc).and_then(|v| parse_bool(&v)),
                last_sync: get(last_sync),
                entra_id: get(entra),
            })?;
        }
    }

    fn csv_error(&self, e: csv::Error) -> RotationError {
        let line = e.position().map(csv::Position::line);
        RotationError::bad_input(&self.display, line, e.to_string())
    }
}

/// Maps byte offsets (increasing) to 1-based line numbers by reading the file alongside the parser.
struct LineCounter {
    reader: BufReader<File>,
    pos: u64,
    line: u64,
}

impl LineCounter {
    fn line_at(&mut self, byte: u64) -> std::io::Result<u64> {
        use std::io::BufRead;
        while self.pos < byte {
            let buf = self.reader.fill_buf()?;
            if buf.is_empty() {
                break;
            }
            let take = buf.len().min((byte - self.pos) as usize);
            self.line += buf[..take].iter().filter(|&&b| b == b'\n').count() as u64;
            self.reader.consume(take);
            self.pos += take as u64;
        }
        // csv reports where it began reading, which can be the end of the previous line or blank
        // lines before the record: step over line breaks to the record's first character.
        loop {
            let buf = self.reader.fill_buf()?;
            let breaks = buf
                .iter()
                .take_while(|&&b| b == b'\r' || b == b'\n')
                .count();
            if breaks == 0 {
                break;
            }
            self.line += buf[..breaks].iter().filter(|&&b| b == b'\n').count() as u64;
            self.reader.consume(breaks);
            self.pos += breaks as u64;
        }
        Ok(self.line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn source(text: &str) -> (tempfile::NamedTempFile, CsvSource) {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        let s = CsvSource::open(f.path().to_str().unwrap()).unwrap();
        (f, s)
    }

    fn rows(text: &str) -> Result<Vec<SourceDevice>, RotationError> {
        let (_f, s) = source(text);
        let mut out = Vec::new();
        s.for_each(|d| {
            out.push(d);
            Ok(())
        })?;
        Ok(out)
    }

    #[test]
    fn id_column_is_found_ignoring_case_spaces_and_underscores() {
        for header in [
            "id",
            "ID",
            "managedDeviceId",
            "Device ID",
            "device_id",
            "\u{feff}\"Device ID\"",
        ] {
            let r = rows(&format!("{header},Device name\nabc,MAC-1\n")).unwrap();
            assert_eq!(r[0].raw_id, "abc", "{header}");
            assert_eq!(r[0].name.as_deref(), Some("MAC-1"));
            assert_eq!(r[0].line, 2);
        }
    }

    #[test]
    fn semicolons_tabs_crlf_and_blank_lines_are_read() {
        let r = rows("id;serialNumber\r\n\r\nx;S1\r\ny;S2\r\n").unwrap();
        assert_eq!(
            r.iter().map(|d| d.raw_id.as_str()).collect::<Vec<_>>(),
            ["x", "y"]
        );
        assert_eq!(r[1].serial.as_deref(), Some("S2"));
        assert_eq!(r[1].line, 4);
        let r = rows("deviceName\tid\nM\tz\n").unwrap();
        assert_eq!(r[0].raw_id, "z");
    }

    #[test]
    fn an_entra_id_column_alone_is_refused_with_a_reason() {
        let err = rows("Azure AD Device ID,Device name\nx,y\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("Azure AD Device ID") && err.contains("Entra"),
            "{err}"
        );
    }

    #[test]
    fn intune_export_prefers_device_id_over_azure_ad_device_id() {
        let r =
            rows("Device ID,Azure AD Device ID,OS,Encrypted\nintune,entra,macOS,Yes\n").unwrap();
        assert_eq!(r[0].raw_id, "intune");
        assert_eq!(r[0].os.as_deref(), Some("macOS"));
        assert_eq!(r[0].encrypted, Some(true));
    }

    #[test]
    fn empty_files_and_missing_id_columns_are_errors() {
        assert!(rows("").unwrap_err().to_string().contains("header"));
        assert!(
            rows("name,serial\na,b\n")
                .unwrap_err()
                .to_string()
                .contains("no managed device id column")
        );
    }
}

#[cfg(test)]
mod arbitrary_input {
    use super::*;
    use proptest::prelude::*;
    use std::io::Write;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// Any bytes as an input file: rows or an error naming the place, never a panic.
        #[test]
        fn reading_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600), header in "(id|Device ID|serial)[,;\t](os|name)\n") {
            for content in [bytes.clone(), [header.as_bytes(), &bytes].concat()] {
                let mut f = tempfile::NamedTempFile::new().unwrap();
                f.write_all(&content).unwrap();
                let s = CsvSource::open(f.path().to_str().unwrap()).unwrap();
                let _ = s.for_each(|_| Ok(()));
                let _ = s.for_each_keyed(KeyColumn::Serial, |_| Ok(()));
            }
        }
    }
}
