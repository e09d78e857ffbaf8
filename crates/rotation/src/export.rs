//! Folding the ledger into one row per device, for reports and other tools.

use crate::RotationError;
use crate::ledger::{
    DeviceState, DeviceTable, Devices, Evidence, Folded, Row, RowKind, Sending, Step, VerifiedState,
};
use serde::Serialize;
use std::borrow::Cow;
use std::io::Write;
use std::path::Path;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Csv,
    Json,
}

/// One device's history, folded: its export row, borrowing its text from the ledger lines read
/// for it (written out at once, so no row outlives its device's turn).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ExportRow<'a> {
    /// The tenant, in a run directory's export (absent from a single ledger's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant_name: Option<&'a str>,
    pub device_id: Uuid,
    pub state: DeviceState,
    pub attempts: u32,
    pub last_status: Option<u16>,
    pub error_code: Option<&'a str>,
    pub error_message: Option<&'a str>,
    pub request_id: Option<&'a str>,
    pub client_request_id: Option<&'a str>,
    pub response_date: Option<&'a str>,
    pub first_sent_at: Option<&'a str>,
    pub last_event_at: Option<&'a str>,
    pub skip_reason: Option<&'a str>,
    /// What `verify` last found in `deviceActionResults`.
    pub verified_state: Option<VerifiedState>,
    pub verified_at: Option<&'a str>,
    pub action_started_at: Option<&'a str>,
    pub device_name: Option<&'a str>,
    pub serial_number: Option<&'a str>,
    pub user_principal_name: Option<&'a str>,
    pub operating_system: Option<&'a str>,
    /// What proved `verified_state` (`action-result`, `recovery-key`, `laps-backup`).
    pub evidence: Option<Evidence>,
    /// In a run over views: when the device's secret was read, and by whom; the rotation that
    /// answered the read is this row's.
    pub viewed_at: Option<&'a str>,
    pub viewed_by: Option<&'a str>,
}

/// A line's byte offset in five bytes (ledgers up to a terabyte): a million devices' places take
/// 60 MB, not 96.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct At([u8; 5]);

impl At {
    /// No line: the field was never set.
    const NONE: At = At([0xff; 5]);
    /// One past the last offset a place holds.
    const LIMIT: u64 = (1 << 40) - 1;

    fn new(offset: u64) -> At {
        debug_assert!(offset < At::LIMIT, "checked by the first pass");
        let b = offset.to_le_bytes();
        At([b[0], b[1], b[2], b[3], b[4]])
    }

    fn get(self) -> Option<u64> {
        (self != At::NONE).then(|| {
            let [a, b, c, d, e] = self.0;
            u64::from_le_bytes([a, b, c, d, e, 0, 0, 0])
        })
    }
}

/// Where one device's export row comes from: the byte offset of the ledger line that last set each
/// field. 55 bytes a device, where a whole row would be 800; its state and attempts are the
/// ledger's one fold's ([`Devices`]).
#[derive(Debug, Clone)]
struct Places {
    planned: At,
    skipped: At,
    first_sent: At,
    last_event: At,
    last_outcome: At,
    status: At,
    request_id: At,
    client_request_id: At,
    date: At,
    verified: At,
    started: At,
}

// The size the memory bound was measured with (docs/BENCHMARKS.md).
const _: () = assert!(std::mem::size_of::<Places>() == 55);

impl Places {
    fn new(planned: At) -> Self {
        Places {
            planned,
            skipped: At::NONE,
            first_sent: At::NONE,
            last_event: At::NONE,
            last_outcome: At::NONE,
            status: At::NONE,
            request_id: At::NONE,
            client_request_id: At::NONE,
            date: At::NONE,
            verified: At::NONE,
            started: At::NONE,
        }
    }

    /// Notes the row at `offset`, as folding the whole row into the device's row would.
    fn note(&mut self, offset: At, row: &Presence) {
        let set = |place: &mut At, present: bool| {
            if present {
                *place = offset;
            }
        };
        match row.step {
            Step::Planned => {}
            Step::Skipped => self.skipped = offset,
            Step::Sent => {
                let first = self.first_sent == At::NONE;
                set(&mut self.first_sent, first);
                self.last_event = offset;
            }
            Step::Outcome(_) => {
                self.last_outcome = offset;
                self.last_event = offset;
                set(&mut self.status, row.status);
                set(&mut self.request_id, row.request_id);
                set(&mut self.client_request_id, row.client_request_id);
                set(&mut self.date, row.date);
            }
            Step::Noted if row.verified => {
                self.verified = offset;
                set(&mut self.started, row.started);
            }
            Step::Noted => {}
        }
    }

    /// The lines to read, each once, in file order: `n` offsets at the front of the array.
    fn lines(&self) -> ([u64; PLACES], usize) {
        let mut v = [
            self.planned,
            self.skipped,
            self.first_sent,
            self.last_event,
            self.last_outcome,
            self.status,
            self.request_id,
            self.client_request_id,
            self.date,
            self.verified,
            self.started,
        ]
        .map(|at| at.get().unwrap_or(u64::MAX));
        v.sort_unstable();
        let mut n = 0;
        for k in 0..PLACES {
            if v[k] != u64::MAX && (n == 0 || v[n - 1] != v[k]) {
                v[n] = v[k];
                n += 1;
            }
        }
        (v, n)
    }
}

/// The lines a device's row can come from.
const PLACES: usize = 11;

/// The devices' [`Places`] in plan order, in fixed chunks: growing never copies them all, so the
/// peak is the places themselves, not twice them.
#[derive(Debug, Default)]
struct Chunked {
    chunks: Vec<Vec<Places>>,
    len: u32,
}

/// Devices a chunk holds (a multiple of [`EXPORT_SLICE`], so slices never straddle chunks).
const CHUNK: usize = 1 << 16;

impl Chunked {
    fn len(&self) -> u32 {
        self.len
    }

    fn push(&mut self, p: Places) {
        match self.chunks.last_mut() {
            Some(c) if c.len() < CHUNK => c.push(p),
            _ => {
                let mut c = Vec::with_capacity(CHUNK);
                c.push(p);
                self.chunks.push(c);
            }
        }
        self.len += 1;
    }

    fn get_mut(&mut self, i: u32) -> &mut Places {
        let i = i as usize;
        &mut self.chunks[i / CHUNK][i % CHUNK]
    }

    /// The places in order, `n` at a time.
    fn slices(&self, n: usize) -> impl Iterator<Item = &[Places]> {
        self.chunks.iter().flat_map(move |c| c.chunks(n))
    }
}

/// What the first pass needs of a row: its device, its step, and which fields it carries.
#[derive(Debug, Default)]
struct Presence {
    id: Option<Uuid>,
    step: Step,
    sent: Option<Sending>,
    verified: bool,
    status: bool,
    request_id: bool,
    client_request_id: bool,
    date: bool,
    started: bool,
}

fn presence(line: &[u8]) -> Result<Presence, String> {
    let fast = serde_json::from_slice::<crate::ledger::Fields>(line)
        .ok()
        .and_then(|f| {
            let step = f.kind.step(f.result)?;
            let id = match f.id {
                Some(text) => Some(crate::parse_id(text)?),
                None if !f.kind.has_device() => None,
                None => return None,
            };
            let sent = match (step, f.attempt, f.at) {
                (Step::Sent, Some(attempt), Some(at)) => Some(Sending::read(attempt, at)),
                (Step::Sent, _, _) => return None,
                _ => None,
            };
            Some(Presence {
                id,
                step,
                sent,
                verified: f.kind == RowKind::Verified,
                status: f.status.is_some(),
                request_id: f.request_id.is_some(),
                client_request_id: f.client_request_id.is_some(),
                date: f.date.is_some(),
                started: f.action_started_at.is_some(),
            })
        });
    if let Some(p) = fast {
        return Ok(p);
    }
    // Escapes, an unknown shape: the whole row, whose errors read as everywhere else.
    let row: Row = serde_json::from_slice(line).map_err(|e| e.to_string())?;
    let mut p = Presence {
        id: row.device(),
        step: row.step(),
        sent: row.sending(),
        ..Presence::default()
    };
    match &row {
        Row::Outcome {
            status,
            request_id,
            client_request_id,
            date,
            ..
        } => {
            p.status = status.is_some();
            p.request_id = request_id.is_some();
            p.client_request_id = client_request_id.is_some();
            p.date = date.is_some();
        }
        Row::Verified {
            action_started_at, ..
        } => {
            p.verified = true;
            p.started = action_started_at.is_some();
        }
        _ => {}
    }
    Ok(p)
}

/// Writes one row per device in plan order, in bounded memory: a first pass keeps only where each
/// device's fields are ([`Places`]); the second reads those lines again as each row is written.
pub fn export(
    ledger: &Path,
    format: ExportFormat,
    out: &mut dyn Write,
) -> Result<usize, RotationError> {
    export_all([(ledger.to_path_buf(), None)], format, out)
}

/// Several ledgers as one export, the tenants of a run directory: each ledger's rows tagged with
/// its tenant, the CSV header once, one JSON array. Each ledger is streamed straight into `out`,
/// so memory is one ledger's export whatever their number; how many rows were written.
pub fn export_all(
    ledgers: impl IntoIterator<Item = (std::path::PathBuf, Option<Tag>)>,
    format: ExportFormat,
    out: &mut dyn Write,
) -> Result<usize, RotationError> {
    let output = |e: std::io::Error| RotationError::Output {
        what: "the export".into(),
        message: e.to_string(),
    };
    if format == ExportFormat::Json {
        out.write_all(b"[").map_err(output)?;
    }
    let mut n = 0;
    for (ledger, tag) in ledgers {
        let part = ExportPart { tag, first: n == 0 };
        n += export_part(&ledger, format, out, &part)?;
    }
    if format == ExportFormat::Json {
        out.write_all(if n == 0 { b"]\n" } else { b"\n]\n" })
            .map_err(output)?;
    }
    Ok(n)
}

/// The tenant a run directory's export tags each row with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    pub tenant_id: String,
    pub tenant_name: String,
}

/// One ledger's rows as a part of an export: each row tagged with its tenant where there is one,
/// the CSV header only in the first part, JSON elements without the array's brackets (with `,`
/// before them unless `first`).
#[derive(Debug, Clone)]
struct ExportPart {
    tag: Option<Tag>,
    /// No row has been written before this part: it writes the CSV header, and no `,` first.
    first: bool,
}

/// Writes one ledger's rows as `part` of an export; how many were written.
fn export_part(
    ledger: &Path,
    format: ExportFormat,
    out: &mut dyn Write,
    part: &ExportPart,
) -> Result<usize, RotationError> {
    let threads = crate::ledger::reading_threads();
    let mut places = Chunked::default();
    let mut devices = Devices::default();
    let mut header = false;
    crate::ledger::for_each_line(ledger, threads, presence, |offset, p| {
        header = true;
        let Some(id) = p.id else { return Ok(()) };
        if offset >= At::LIMIT {
            return Err("the ledger is longer than export reads (1 TiB)".into());
        }
        let offset = At::new(offset);
        match devices.fold(id, p.step, p.sent) {
            Folded::New(i) => {
                debug_assert_eq!(i, places.len());
                let planned = if p.step == Step::Planned {
                    offset
                } else {
                    At::NONE
                };
                let mut pl = Places::new(planned);
                pl.note(offset, &p);
                places.push(pl);
            }
            Folded::Moved { slot, .. } => places.get_mut(slot).note(offset, &p),
            // A device planned twice keeps its first place and what it was planned with; a row
            // about a device never planned is not one of the ledger's devices.
            Folded::Replanned(_) | Folded::Unplanned => {}
        }
        Ok(())
    })?;
    if !header {
        return Err(RotationError::ledger(
            ledger,
            None,
            "empty ledger: no run header",
        ));
    }
    let table = devices.into_table();
    let io = |e: std::io::Error| RotationError::io(ledger, e);
    // Slices of devices rendered on every core, each to its own buffer, written in order as they
    // come: never more than a few slices in memory.
    let mut first = true;
    let tag = part.tag.as_ref();
    crate::ordered::in_order(
        threads,
        places
            .slices(EXPORT_SLICE)
            .enumerate()
            .map(Ok::<_, RotationError>),
        |(k, slice)| {
            let from = k * EXPORT_SLICE;
            let rows = Slice {
                table: &table,
                from,
                places: slice,
            };
            render(ledger, rows, format, part.first && k == 0, tag)
        },
        |text| {
            let text = text?;
            if format == ExportFormat::Json {
                out.write_all(match (first, part.first) {
                    (true, true) => b"\n",
                    _ => b",\n",
                })
                .map_err(io)?;
            }
            out.write_all(&text).map_err(io)?;
            first = false;
            Ok(())
        },
    )?;
    Ok(places.len() as usize)
}

/// Devices one export thread renders at a time.
const EXPORT_SLICE: usize = 4096;

/// Devices `from..` in plan order: their places, beside the fold's table.
#[derive(Clone, Copy)]
struct Slice<'t> {
    table: &'t DeviceTable,
    from: usize,
    places: &'t [Places],
}

impl<'t> Slice<'t> {
    fn len(self) -> usize {
        self.places.len()
    }

    /// Each device's slot and places.
    fn devices(self) -> impl Iterator<Item = (Device, &'t Places)> {
        let table = self.table;
        (self.from..).zip(self.places).map(move |(i, p)| {
            let device = Device {
                id: table.ids[i],
                state: table.states[i],
                attempts: table.attempts[i],
            };
            (device, p)
        })
    }
}

/// What the fold keeps of a device, for its row.
#[derive(Clone, Copy)]
struct Device {
    id: Uuid,
    state: DeviceState,
    attempts: u32,
}

/// The export rows of `slice`, as they stand in the output: CSV lines (with the header line when
/// asked), or pretty JSON array elements indented as in the whole array, joined by `,\n`.
fn render(
    ledger: &Path,
    slice: Slice<'_>,
    format: ExportFormat,
    header: bool,
    tag: Option<&Tag>,
) -> Result<Vec<u8>, RotationError> {
    let mut lines = DeviceLines {
        lines: crate::ledger::LineAt::open(ledger)?,
        scratch: Vec::with_capacity(4096),
        ledger,
    };
    let output = |e: String| RotationError::Output {
        what: "the export".into(),
        message: e,
    };
    let mut text = Vec::with_capacity(slice.len() * 300);
    match format {
        ExportFormat::Csv => {
            let mut w = csv::WriterBuilder::new()
                .has_headers(header)
                .from_writer(&mut text);
            for (d, p) in slice.devices() {
                let flats = lines.read(p)?;
                w.serialize(assemble(d, p, &flats, tag))
                    .map_err(|e| output(e.to_string()))?;
            }
            w.flush().map_err(|e| output(e.to_string()))?;
        }
        ExportFormat::Json => {
            // The slice as a pretty array, streamed element by element, without its brackets:
            // its elements come out indented as inside the whole array, joined by `,\n`.
            use serde::ser::{SerializeSeq, Serializer};
            let formatter = serde_json::ser::PrettyFormatter::with_indent(b"  ");
            let mut ser = serde_json::Serializer::with_formatter(&mut text, formatter);
            let mut seq = ser
                .serialize_seq(Some(slice.len()))
                .map_err(|e| output(e.to_string()))?;
            for (d, p) in slice.devices() {
                let flats = lines.read(p)?;
                seq.serialize_element(&assemble(d, p, &flats, tag))
                    .map_err(|e| output(e.to_string()))?;
            }
            seq.end().map_err(|e| output(e.to_string()))?;
            if text.starts_with(b"[\n") && text.ends_with(b"\n]") {
                text.truncate(text.len() - 2);
                text.drain(..2);
            } else {
                text.clear();
            }
        }
    }
    Ok(text)
}

/// Reads a device's lines for its row.
struct DeviceLines<'p> {
    lines: crate::ledger::LineAt,
    /// The device's lines side by side, so its row can borrow from all of them at once.
    scratch: Vec<u8>,
    ledger: &'p Path,
}

impl DeviceLines<'_> {
    /// Each line `p` points at, read flat, with its offset.
    fn read(&mut self, p: &Places) -> Result<Vec<(u64, Flat<'_>)>, RotationError> {
        let (offsets, n) = p.lines();
        let mut spans = [(0u64, 0usize, 0usize); PLACES];
        self.scratch.clear();
        for (span, &offset) in spans.iter_mut().zip(&offsets[..n]) {
            let start = self.scratch.len();
            self.scratch.extend_from_slice(self.lines.line(offset)?);
            *span = (offset, start, self.scratch.len());
        }
        let (scratch, ledger) = (&self.scratch, self.ledger);
        let mut flats = Vec::with_capacity(n);
        for &(offset, start, end) in &spans[..n] {
            let flat = serde_json::from_slice::<Flat>(&scratch[start..end]).map_err(|e| {
                RotationError::ledger(ledger, None, format!("at byte {offset}: {e}"))
            })?;
            flats.push((offset, flat));
        }
        Ok(flats)
    }
}

/// The columns of a ledger line, whatever its type: the first pass knows which line sets what, so
/// the second reads each flat, without the tagged enum's buffering, borrowing its text.
#[derive(Debug, Default, serde::Deserialize)]
struct Flat<'a> {
    #[serde(default, borrow)]
    name: Option<Text<'a>>,
    #[serde(default, borrow)]
    serial: Option<Text<'a>>,
    #[serde(default, borrow)]
    user: Option<Text<'a>>,
    #[serde(default, borrow)]
    os: Option<Text<'a>>,
    #[serde(default, borrow)]
    reason: Option<Text<'a>>,
    #[serde(default, borrow)]
    at: Option<Text<'a>>,
    #[serde(default)]
    status: Option<u16>,
    #[serde(default, borrow)]
    code: Option<Text<'a>>,
    #[serde(default, borrow)]
    message: Option<Text<'a>>,
    #[serde(default, borrow)]
    request_id: Option<Text<'a>>,
    #[serde(default, borrow)]
    client_request_id: Option<Text<'a>>,
    #[serde(default, borrow)]
    date: Option<Text<'a>>,
    #[serde(default)]
    state: Option<VerifiedState>,
    #[serde(default, borrow)]
    action_started_at: Option<Text<'a>>,
    #[serde(default)]
    evidence: Option<Evidence>,
    #[serde(default, borrow)]
    viewed_at: Option<Text<'a>>,
    #[serde(default, borrow)]
    viewed_by: Option<Text<'a>>,
}

/// A string of a ledger line: borrowed from it, owned only when it had escapes to undo.
#[derive(Debug, serde::Deserialize)]
#[serde(transparent)]
struct Text<'a>(#[serde(borrow)] Cow<'a, str>);

/// The text of a field, if the line had it.
fn text<'a>(field: &'a Option<Text<'_>>) -> Option<&'a str> {
    field.as_ref().map(|t| &*t.0)
}

/// One device's export row from the lines its [`Places`] point at.
fn assemble<'a>(
    d: Device,
    p: &Places,
    rows: &'a [(u64, Flat<'_>)],
    tag: Option<&'a Tag>,
) -> ExportRow<'a> {
    static NONE_READ: Flat<'static> = Flat {
        name: None,
        serial: None,
        user: None,
        os: None,
        reason: None,
        at: None,
        status: None,
        code: None,
        message: None,
        request_id: None,
        client_request_id: None,
        date: None,
        state: None,
        action_started_at: None,
        evidence: None,
        viewed_at: None,
        viewed_by: None,
    };
    let at = |o: At| -> &'a Flat<'_> {
        let o = o.get();
        rows.iter()
            .find(|(offset, _)| Some(*offset) == o)
            .map_or(&NONE_READ, |(_, flat)| flat)
    };
    let planned = at(p.planned);
    let last = at(p.last_outcome);
    let verified = at(p.verified);
    ExportRow {
        tenant_id: tag.map(|t| t.tenant_id.as_str()),
        tenant_name: tag.map(|t| t.tenant_name.as_str()),
        device_id: d.id,
        state: d.state,
        attempts: d.attempts,
        last_status: at(p.status).status,
        error_code: text(&last.code),
        error_message: text(&last.message),
        request_id: text(&at(p.request_id).request_id),
        client_request_id: text(&at(p.client_request_id).client_request_id),
        response_date: text(&at(p.date).date),
        first_sent_at: text(&at(p.first_sent).at),
        last_event_at: text(&at(p.last_event).at),
        skip_reason: text(&at(p.skipped).reason),
        verified_state: verified.state,
        verified_at: text(&verified.at),
        action_started_at: text(&at(p.started).action_started_at),
        device_name: text(&planned.name),
        serial_number: text(&planned.serial),
        user_principal_name: text(&planned.user),
        operating_system: text(&planned.os),
        evidence: verified.evidence,
        viewed_at: text(&planned.viewed_at),
        viewed_by: text(&planned.viewed_by),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{Ledger, Outcome, RunHeader, VerifiedState};
    use crate::{Action, MatchRule};
    use rand::{Rng, SeedableRng};
    use std::collections::HashMap;

    /// A device's row as the earlier release folded it, whole and in memory: the reference.
    #[derive(Debug, Clone, Serialize, PartialEq)]
    struct InMemoryRow {
        pub device_id: String,
        pub state: DeviceState,
        pub attempts: u32,
        pub last_status: Option<u16>,
        pub error_code: Option<String>,
        pub error_message: Option<String>,
        pub request_id: Option<String>,
        pub client_request_id: Option<String>,
        pub response_date: Option<String>,
        pub first_sent_at: Option<String>,
        pub last_event_at: Option<String>,
        pub skip_reason: Option<String>,
        /// What `verify` last found in `deviceActionResults`.
        pub verified_state: Option<VerifiedState>,
        pub verified_at: Option<String>,
        pub action_started_at: Option<String>,
        pub device_name: Option<String>,
        pub serial_number: Option<String>,
        pub user_principal_name: Option<String>,
        pub operating_system: Option<String>,
        /// What proved `verified_state` (`action-result`, `recovery-key`, `laps-backup`).
        pub evidence: Option<Evidence>,
        pub viewed_at: Option<String>,
        pub viewed_by: Option<String>,
    }

    impl InMemoryRow {
        fn planned(id: Uuid) -> Self {
            InMemoryRow {
                device_id: id.hyphenated().to_string(),
                state: DeviceState::Pending,
                attempts: 0,
                last_status: None,
                error_code: None,
                error_message: None,
                request_id: None,
                client_request_id: None,
                response_date: None,
                first_sent_at: None,
                last_event_at: None,
                skip_reason: None,
                verified_state: None,
                verified_at: None,
                action_started_at: None,
                device_name: None,
                serial_number: None,
                user_principal_name: None,
                operating_system: None,
                evidence: None,
                viewed_at: None,
                viewed_by: None,
            }
        }

        /// Folds one row about this device in: the state through [`DeviceState::after`], the rest
        /// as the latest word on each column.
        fn fold(&mut self, row: Row) {
            self.state = self.state.after(row.step());
            match row {
                Row::Planned {
                    name,
                    serial,
                    user,
                    os,
                    viewed_at,
                    viewed_by,
                    ..
                } => {
                    self.device_name = name;
                    self.serial_number = serial;
                    self.user_principal_name = user;
                    self.operating_system = os;
                    self.viewed_at = viewed_at;
                    self.viewed_by = viewed_by;
                }
                Row::Skipped { reason, .. } => self.skip_reason = Some(reason),
                Row::Sent { attempt, at, .. } => {
                    self.attempts = self.attempts.max(attempt);
                    self.first_sent_at.get_or_insert(at.clone());
                    self.last_event_at = Some(at);
                }
                Row::Outcome {
                    status,
                    code,
                    message,
                    request_id,
                    client_request_id,
                    date,
                    at,
                    ..
                } => {
                    self.last_status = status.or(self.last_status);
                    self.error_code = code;
                    self.error_message = message;
                    self.request_id = request_id.or(self.request_id.take());
                    self.client_request_id = client_request_id.or(self.client_request_id.take());
                    self.response_date = date.or(self.response_date.take());
                    self.last_event_at = Some(at);
                }
                Row::Verified {
                    state,
                    action_started_at,
                    evidence,
                    at,
                    ..
                } => {
                    self.verified_state = Some(state);
                    self.evidence = evidence;
                    self.verified_at = Some(at);
                    self.action_started_at = action_started_at.or(self.action_started_at.take());
                }
                Row::Run(_) | Row::PlanDone { .. } | Row::Session { .. } => {}
            }
        }
    }

    /// The export as the earlier release wrote it: every row folded in memory, then written.
    fn export_in_memory(ledger: &Path, format: ExportFormat) -> Vec<u8> {
        let mut rows: Vec<InMemoryRow> = Vec::new();
        let mut index: HashMap<Uuid, usize> = HashMap::new();
        crate::ledger::for_each_row(ledger, |row| {
            let Some(id) = row.device() else { return };
            match (index.get(&id), &row) {
                (Some(_), Row::Planned { .. }) => {}
                (Some(&i), _) => rows[i].fold(row),
                (None, Row::Planned { .. }) => {
                    index.insert(id, rows.len());
                    let mut r = InMemoryRow::planned(id);
                    r.fold(row);
                    rows.push(r);
                }
                (None, _) => {}
            }
        })
        .unwrap();
        let mut out = Vec::new();
        match format {
            ExportFormat::Csv => {
                let mut w = csv::Writer::from_writer(&mut out);
                for r in &rows {
                    w.serialize(r).unwrap();
                }
                w.flush().unwrap();
            }
            ExportFormat::Json => {
                serde_json::to_writer_pretty(&mut out, &rows).unwrap();
                out.push(b'\n');
            }
        }
        out
    }

    /// A ledger of `n` devices with every kind of history a run leaves: skips, duplicates,
    /// retries, failures with Graph's words, lost answers, sessions, verify passes, odd text.
    fn varied_ledger(path: &Path, n: usize) {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let header = RunHeader::new("t", Action::FileVault, "test", "200/20s".parse().unwrap());
        let mut l = Ledger::create(path, &header).unwrap();
        let id = |i: usize| Uuid::from_u128(0x6d1f_0000_0000_4000_8000_0000_0000_0000 | i as u128);
        let at = |s: u64| {
            humantime::format_rfc3339_millis(
                std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_795_000_000_000 + s),
            )
            .to_string()
        };
        for i in 0..n {
            l.append(&Row::Planned {
                id: id(i),
                name: rng
                    .random_bool(0.9)
                    .then(|| format!("MAC-{i} \"studio\", ü")),
                serial: Some(format!("C02{i:08}")),
                user: rng
                    .random_bool(0.5)
                    .then(|| format!("user{i}@example.test")),
                os: Some("macOS".into()),
                line: Some(i as u64 + 2),
                viewed_at: (i % 7 == 0).then(|| "2026-12-01T10:00:00.000Z".into()),
                viewed_by: (i % 7 == 0).then(|| "user op@example.test".into()),
            })
            .unwrap();
            if i % 97 == 0 {
                l.append(&Row::Planned {
                    id: id(i),
                    name: Some("again".into()),
                    serial: None,
                    user: None,
                    os: None,
                    line: None,
                    viewed_at: None,
                    viewed_by: None,
                })
                .unwrap();
            }
            if i % 13 == 0 {
                l.append(&Row::Skipped {
                    id: id(i),
                    reason: "not-encrypted: FileVault off".into(),
                })
                .unwrap();
            }
        }
        l.append(&Row::PlanDone {
            planned: n as u64,
            skipped: 0,
            skip_reasons: Default::default(),
            at: at(0),
        })
        .unwrap();
        let mut clock = 1u64;
        for round in 0..3u32 {
            for i in (0..n).filter(|i| i % 13 != 0) {
                if round > 0 && !rng.random_bool(0.3) {
                    continue;
                }
                clock += 1;
                l.append(&Row::Sent {
                    id: id(i),
                    attempt: round + 1,
                    at: at(clock),
                })
                .unwrap();
                let result = match rng.random_range(0..10) {
                    0 => Outcome::Retry,
                    1 => Outcome::Failed,
                    2 => continue, // the answer was lost
                    _ => Outcome::Rotated,
                };
                let with_ids = rng.random_bool(0.8);
                l.append(&Row::Outcome {
                    id: id(i),
                    result,
                    cause: None,
                    status: rng
                        .random_bool(0.9)
                        .then_some(if result == Outcome::Rotated { 204 } else { 429 }),
                    code: (result != Outcome::Rotated).then(|| "TooManyRequests".into()),
                    message: (result != Outcome::Rotated)
                        .then(|| format!("throttled \"{i}\"\nagain")),
                    request_id: with_ids.then(|| Uuid::from_u128(clock as u128).to_string()),
                    client_request_id: rng
                        .random_bool(0.7)
                        .then(|| Uuid::from_u128(!(clock as u128)).to_string()),
                    date: rng
                        .random_bool(0.5)
                        .then(|| "Sat, 28 Nov 2026 08:00:00 GMT".into()),
                    at: at(clock),
                })
                .unwrap();
            }
            l.append(&Row::Session {
                at: at(clock),
                command: "resume".into(),
                in_doubt: 3,
                in_doubt_policy: "verify".into(),
            })
            .unwrap();
        }
        for i in (0..n).filter(|i| i % 3 == 0) {
            clock += 1;
            l.append(&Row::Verified {
                id: id(i),
                state: [
                    VerifiedState::Done,
                    VerifiedState::Pending,
                    VerifiedState::NotFound,
                ][i % 3 % 3],
                action_started_at: rng.random_bool(0.6).then(|| "2026-11-28T08:00:00Z".into()),
                matched_by: rng.random_bool(0.5).then_some(MatchRule::Keyword),
                evidence: rng
                    .random_bool(0.5)
                    .then_some(crate::ledger::Evidence::RecoveryKey),
                error_code: None,
                at: at(clock),
            })
            .unwrap();
        }
        l.sync().unwrap();
    }

    #[test]
    fn a_place_holds_every_offset_below_a_terabyte_and_none_apart() {
        for offset in [0, 1, 255, 256, 1 << 32, (1 << 39) + 7, At::LIMIT - 1] {
            assert_eq!(At::new(offset).get(), Some(offset));
        }
        assert_eq!(At::NONE.get(), None);
    }

    #[test]
    fn the_bounded_export_writes_byte_for_byte_what_the_in_memory_one_did() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.jsonl");
        varied_ledger(&path, 50_000);
        for format in [ExportFormat::Csv, ExportFormat::Json] {
            let mut out = Vec::new();
            let n = export(&path, format, &mut out).unwrap();
            assert_eq!(n, 50_000);
            let reference = export_in_memory(&path, format);
            assert!(out == reference, "{format:?}: the outputs differ");
        }
    }

    #[test]
    fn an_empty_plan_exports_no_rows_and_a_ledger_without_header_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.jsonl");
        drop(
            Ledger::create(
                &path,
                &RunHeader::new("t", Action::Laps, "s", "200/20s".parse().unwrap()),
            )
            .unwrap(),
        );
        for format in [ExportFormat::Csv, ExportFormat::Json] {
            let mut out = Vec::new();
            assert_eq!(export(&path, format, &mut out).unwrap(), 0);
            assert_eq!(out, export_in_memory(&path, format));
        }
        std::fs::write(&path, b"").unwrap();
        assert!(export(&path, ExportFormat::Csv, &mut Vec::new()).is_err());
    }
}
