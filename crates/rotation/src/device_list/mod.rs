//! Device lists from CSV (a file or stdin): Intune's export shape, PowerShell's `;` exports, BOMs,
//! quoted headers; or JSON lines. The managed-device id column is found by name, never confused
//! with Entra's. Graph sources are spooled to this same CSV shape, so one plan serves them all.

mod columns;
mod device;
mod writer;

pub use columns::{DEVICE_COLUMNS, KeyColumn, device_select};
pub use device::SourceDevice;
pub use writer::{DeviceCsvWriter, write_devices_csv, write_devices_json};

use crate::RotationError;
use columns::*;
use device::parse_bool;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

/// How a list's rows are written, found once when it is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    /// One JSON object a line.
    JsonLines,
    /// CSV with this delimiter (`,`, `;` or tab).
    Csv(u8),
}

/// A device list; read twice (validate, then plan) without holding it in memory.
#[derive(Debug)]
pub struct DeviceList {
    path: PathBuf,
    format: Format,
    /// Where stdin was spooled, removed on drop.
    _spool: Option<tempfile::TempPath>,
    display: String,
}

impl DeviceList {
    /// `-` reads stdin (spooled to a temporary file so it can be read twice).
    pub fn open(path: &str) -> Result<Self, RotationError> {
        if path == "-" {
            return DeviceList::spool(&mut std::io::stdin().lock(), "stdin");
        }
        let p = Path::new(path);
        if !p.exists() || p.is_dir() {
            return Err(RotationError::NoSuchInput(path.to_string()));
        }
        // A pipe (`--input <(…)`, a FIFO) can be read once: it is spooled like stdin, and every
        // later pass reads the spool.
        if !p.is_file() {
            let mut pipe = std::fs::File::open(p).map_err(|e| RotationError::io(p, e))?;
            return DeviceList::spool(&mut pipe, path);
        }
        if let Some(encoding) = utf16(p)? {
            return DeviceList::spooled(transcoded(p, encoding)?, path);
        }
        Ok(DeviceList {
            path: p.to_path_buf(),
            format: detect(p)?,
            _spool: None,
            display: path.to_string(),
        })
    }

    /// Copies a stream that can be read once into a temporary file, and reads that.
    fn spool(from: &mut dyn std::io::Read, display: &str) -> Result<Self, RotationError> {
        let mut tmp =
            tempfile::NamedTempFile::new().map_err(|e| RotationError::io("a spool file", e))?;
        std::io::copy(from, &mut tmp).map_err(|e| RotationError::io(display, e))?;
        let list = DeviceList::spooled(tmp.into_temp_path(), display)?;
        // A UTF-16 stream is decoded as a UTF-16 file is.
        match utf16(&list.path)? {
            Some(encoding) => {
                let path = list.path.display().to_string();
                DeviceList::spooled(transcoded(Path::new(&path), encoding)?, display)
            }
            None => Ok(list),
        }
    }

    /// A device list written to a temporary file (Graph sources, `--match-by`), removed on drop.
    pub fn spooled(
        spool: tempfile::TempPath,
        display: impl Into<String>,
    ) -> Result<Self, RotationError> {
        Ok(DeviceList {
            path: spool.to_path_buf(),
            format: detect(&spool)?,
            _spool: Some(spool),
            display: display.into(),
        })
    }

    pub fn display(&self) -> &str {
        &self.display
    }

    /// The file read: the given one, or its spool (a pipe, stdin, a UTF-16 file decoded).
    pub(crate) fn file(&self) -> &Path {
        &self.path
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
                return Err(RotationError::EntraIdsOnly {
                    source_name: self.display.clone(),
                    line: line_no,
                    column: None,
                });
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
                os_version: get(OS_VERSION_COLUMNS),
                owner: get(OWNER_COLUMNS),
                join_type: get(JOIN_COLUMNS),
                supervised: get(SUPERVISED_COLUMNS).and_then(|v| parse_bool(&v)),
                architecture: get(ARCHITECTURE_COLUMNS),
            })?;
        }
        Ok(())
    }

    /// Calls `f` for every data row, in order. Header problems are errors naming the file.
    pub fn for_each(
        &self,
        f: impl FnMut(SourceDevice) -> Result<(), RotationError>,
    ) -> Result<(), RotationError> {
        self.for_each_keyed(KeyColumn::IntuneId, f)
    }

    /// As [`DeviceList::for_each`], with `raw_id` taken from the `key` column.
    pub fn for_each_keyed(
        &self,
        key: KeyColumn,
        mut f: impl FnMut(SourceDevice) -> Result<(), RotationError>,
    ) -> Result<(), RotationError> {
        let delimiter = match self.format {
            Format::JsonLines => return self.for_each_json_line(key, &mut f),
            Format::Csv(d) => d,
        };
        let file = File::open(&self.path).map_err(|e| RotationError::io(&self.path, e))?;
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(delimiter)
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
                return Err(RotationError::EntraIdsOnly {
                    source_name: self.display.clone(),
                    line: 1,
                    column: Some(headers.get(entra).unwrap_or("").to_string()),
                });
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
        let (os_version, owner, join, supervised, arch) = (
            find(OS_VERSION_COLUMNS),
            find(OWNER_COLUMNS),
            find(JOIN_COLUMNS),
            find(SUPERVISED_COLUMNS),
            find(ARCHITECTURE_COLUMNS),
        );
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
                os_version: get(os_version),
                owner: get(owner),
                join_type: get(join),
                supervised: get(supervised).and_then(|v| parse_bool(&v)),
                architecture: get(arch),
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

/// The UTF-16 a file is written in, by its byte-order mark: what Windows PowerShell 5.1's `>` and
/// `Out-File` write, and Excel's "Unicode Text". A file that looks like UTF-16 without a mark is
/// refused, naming it, since its byte order cannot be known for sure.
fn utf16(path: &Path) -> Result<Option<&'static encoding_rs::Encoding>, RotationError> {
    let mut head = [0u8; 512];
    let mut f = File::open(path).map_err(|e| RotationError::io(path, e))?;
    let n = f.read(&mut head).map_err(|e| RotationError::io(path, e))?;
    let head = &head[..n];
    if let Some((encoding, _)) = encoding_rs::Encoding::for_bom(head)
        && encoding != encoding_rs::UTF_8
    {
        return Ok(Some(encoding));
    }
    let zeros = head.iter().filter(|&&b| b == 0).count();
    if n >= 4 && zeros * 3 >= n {
        return Err(RotationError::bad_input(
            path.display().to_string(),
            Some(1),
            "the file looks like UTF-16 without a byte-order mark, so its byte order is unknown: save it as UTF-8 (Excel: \"CSV UTF-8\"; PowerShell: Export-Csv -Encoding utf8) or as UTF-16 with its mark (\"Unicode Text\")",
        ));
    }
    Ok(None)
}

/// The file decoded from `encoding` into a UTF-8 spool, line for line, so everything after reads
/// it as it reads any other list.
fn transcoded(
    path: &Path,
    encoding: &'static encoding_rs::Encoding,
) -> Result<tempfile::TempPath, RotationError> {
    let file = File::open(path).map_err(|e| RotationError::io(path, e))?;
    let mut decoded = encoding_rs_io::DecodeReaderBytesBuilder::new()
        .encoding(Some(encoding))
        .bom_override(true)
        .build(BufReader::with_capacity(1 << 16, file));
    let mut tmp =
        tempfile::NamedTempFile::new().map_err(|e| RotationError::io("device spool", e))?;
    std::io::copy(&mut decoded, &mut tmp).map_err(|e| {
        RotationError::bad_input(
            path.display().to_string(),
            None,
            format!("cannot be read as {}: {e}", encoding.name()),
        )
    })?;
    Ok(tmp.into_temp_path())
}

/// JSON lines when the first non-blank byte opens an object; CSV otherwise, delimited by whichever
/// of `,` `;` tab the header line holds most of.
fn detect(path: &Path) -> Result<Format, RotationError> {
    let mut head = [0u8; 4096];
    let mut f = File::open(path).map_err(|e| RotationError::io(path, e))?;
    let mut n = 0;
    // One read may return less than is there: fill the head or reach the end.
    loop {
        let got = f
            .read(&mut head[n..])
            .map_err(|e| RotationError::io(path, e))?;
        n += got;
        if got == 0 || n == head.len() {
            break;
        }
    }
    let first = head[..n]
        .iter()
        .find(|b| !b.is_ascii_whitespace() && **b != 0xef && **b != 0xbb && **b != 0xbf);
    if first == Some(&b'{') {
        return Ok(Format::JsonLines);
    }
    let header = head[..n].split(|&b| b == b'\n').next().unwrap_or(&[]);
    let count = |d: u8| header.iter().filter(|&&b| b == d).count();
    Ok(Format::Csv(
        [b',', b';', b'\t']
            .into_iter()
            .max_by_key(|&d| count(d))
            .filter(|&d| count(d) > 0)
            .unwrap_or(b','),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn source(text: &str) -> (tempfile::NamedTempFile, DeviceList) {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        let s = DeviceList::open(f.path().to_str().unwrap()).unwrap();
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
                let s = DeviceList::open(f.path().to_str().unwrap()).unwrap();
                let _ = s.for_each(|_| Ok(()));
                let _ = s.for_each_keyed(KeyColumn::Serial, |_| Ok(()));
            }
        }
    }

    fn from_bytes(bytes: &[u8]) -> (tempfile::NamedTempFile, Result<DeviceList, RotationError>) {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(bytes).unwrap();
        let s = DeviceList::open(f.path().to_str().unwrap());
        (f, s)
    }

    fn rows(list: &DeviceList) -> Vec<SourceDevice> {
        let mut out = Vec::new();
        list.for_each(|d| {
            out.push(d);
            Ok(())
        })
        .unwrap();
        out
    }

    fn utf16le(text: &str) -> Vec<u8> {
        let mut b = vec![0xff, 0xfe];
        b.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
        b
    }

    const POWERSHELL: &str = "\"id\",\"deviceName\",\"operatingSystem\"\r\n\"6f1c2a3b-0000-4000-8000-00000000a001\",\"MAC-Zoë\",\"macOS\"\r\n\"6f1c2a3b-0000-4000-8000-00000000a002\",\"MAC-2\",\"macOS\"\r\n";

    #[test]
    fn a_utf16_export_from_windows_powershell_reads_as_its_utf8_twin() {
        let (_a, utf8) = from_bytes(POWERSHELL.as_bytes());
        let (_b, utf16) = from_bytes(&utf16le(POWERSHELL));
        let (utf8, utf16) = (rows(&utf8.unwrap()), rows(&utf16.unwrap()));
        assert_eq!(utf16.len(), 2);
        assert_eq!(utf16, utf8);
        assert_eq!(utf16[0].name.as_deref(), Some("MAC-Zoë"));
    }

    #[test]
    fn excels_unicode_text_is_utf16_and_tab_separated() {
        let text = POWERSHELL.replace("\",\"", "\t").replace('"', "");
        let (_a, utf8) = from_bytes(text.as_bytes());
        let mut be = vec![0xfe, 0xff];
        be.extend(text.encode_utf16().flat_map(u16::to_be_bytes));
        let (_b, utf16) = from_bytes(&be);
        assert_eq!(rows(&utf16.unwrap()), rows(&utf8.unwrap()));
    }

    #[test]
    fn utf16_without_its_mark_is_refused_naming_the_encoding_and_what_to_do() {
        let bare: Vec<u8> = POWERSHELL
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        let (_f, r) = from_bytes(&bare);
        let e = r.unwrap_err().to_string();
        assert!(e.contains("UTF-16") && e.contains("UTF-8"), "{e}");
    }
}
