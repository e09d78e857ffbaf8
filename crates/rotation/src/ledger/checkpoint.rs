//! A checkpoint of a ledger's replayed state, beside it (`run.jsonl.state`), so a finished
//! million-device ledger opens in a fraction of a second: replay loads the state as of the
//! checkpoint and reads only the rows written after it.
//!
//! The ledger stays the only truth. A checkpoint is used only when the ledger still starts with
//! the same header line and holds, at the length it covers, the very bytes it ended with; anything else (no checkpoint, a torn or older
//! format one, a ledger rewritten or cut) means a full replay. It is written to a temporary file,
//! synced and renamed over the old one, so a crash leaves the old checkpoint or none. Versions that
//! do not know it never look at it.

use super::{DeviceState, Devices, LedgerState, RunHeader};
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use uuid::Uuid;

const MAGIC: &[u8; 8] = b"IRSTATE1";
/// The ledger bytes before the covered length that a checkpoint keeps, to know its ledger again.
const TAIL: usize = 64;
/// The longest header line a checkpoint keeps (a header is a few hundred bytes).
const FIRST_LINE_MAX: usize = 1 << 16;
/// A device: id, state, attempts, last sent time.
const DEVICE_BYTES: usize = 16 + 1 + 4 + 8;

/// A buffer for `bytes` of checkpoint: no larger than them, so the thousands of small ledgers of a
/// many-tenant run that checkpoint at once do not each take a megabyte.
fn buffer_for(bytes: usize) -> usize {
    bytes.saturating_add(4096).min(1 << 20)
}

/// Where a ledger's checkpoint lives.
pub(super) fn path_of(ledger: &Path) -> PathBuf {
    let mut name = ledger.as_os_str().to_owned();
    name.push(".state");
    PathBuf::from(name)
}

/// Writes the checkpoint of `state`, which covers the first `covered` bytes of `ledger`.
/// Failing is harmless (the next open replays in full), so errors are only logged.
pub(super) fn write(ledger: &Path, state: &LedgerState, covered: u64) {
    if let Err(e) = try_write(ledger, state, covered) {
        tracing::debug!(ledger = %ledger.display(), "no checkpoint written: {e}");
    }
}

fn try_write(ledger: &Path, state: &LedgerState, covered: u64) -> std::io::Result<()> {
    let tail = read_tail(ledger, covered)?;
    let first = first_line(ledger)?;
    let target = path_of(ledger);
    let dir = target.parent().unwrap_or(Path::new("."));
    let tmp = tempfile::NamedTempFile::new_in(dir)?;
    {
        let devices = state.devices();
        let mut w =
            BufWriter::with_capacity(buffer_for(devices.len() * DEVICE_BYTES), tmp.as_file());
        w.write_all(MAGIC)?;
        w.write_all(&covered.to_le_bytes())?;
        w.write_all(&(tail.len() as u32).to_le_bytes())?;
        w.write_all(&tail)?;
        w.write_all(&(first.len() as u32).to_le_bytes())?;
        w.write_all(&first)?;
        w.write_all(&state.rows.to_le_bytes())?;
        w.write_all(&[u8::from(state.plan_done)])?;
        w.write_all(&(devices.len() as u64).to_le_bytes())?;
        for (i, id) in (0u32..).zip(devices.ids()) {
            w.write_all(id.as_bytes())?;
            w.write_all(&[state_code(devices.state(i))])?;
            w.write_all(&devices.attempts(i).to_le_bytes())?;
            w.write_all(&devices.sent_at_ms(i).to_le_bytes())?;
        }
        let reasons = serde_json::to_vec(&state.skip_reasons).map_err(std::io::Error::other)?;
        w.write_all(&(reasons.len() as u32).to_le_bytes())?;
        w.write_all(&reasons)?;
        w.flush()?;
    }
    tmp.as_file().sync_data()?;
    tmp.persist(&target).map_err(|e| e.error)?;
    Ok(())
}

/// The state as of the checkpoint and the ledger length it covers, when the checkpoint belongs to
/// this ledger as it is now; `None` otherwise.
pub(super) fn read(ledger: &Path, header: &RunHeader) -> Option<(LedgerState, u64)> {
    let file = File::open(path_of(ledger)).ok()?;
    let len = file.metadata().ok()?.len();
    let mut r =
        BufReader::with_capacity(buffer_for(usize::try_from(len).unwrap_or(usize::MAX)), file);
    let mut magic = [0u8; 8];
    r.read_exact(&mut magic).ok()?;
    if &magic != MAGIC {
        return None;
    }
    let covered = u64::from_le_bytes(array(&mut r)?);
    let tail_len = u32::from_le_bytes(array(&mut r)?) as usize;
    if tail_len > TAIL {
        return None;
    }
    let mut tail = vec![0u8; tail_len];
    r.read_exact(&mut tail).ok()?;
    if read_tail(ledger, covered).ok()? != tail {
        return None;
    }
    let first_len = u32::from_le_bytes(array(&mut r)?) as usize;
    if first_len > FIRST_LINE_MAX {
        return None;
    }
    let mut first = vec![0u8; first_len];
    r.read_exact(&mut first).ok()?;
    if first_line(ledger).ok()? != first {
        return None;
    }
    let rows = u64::from_le_bytes(array(&mut r)?);
    let plan_done = array::<1>(&mut r)?[0] != 0;
    let n = usize::try_from(u64::from_le_bytes(array(&mut r)?)).ok()?;
    // A length no ledger of this size could hold is a damaged checkpoint, not an allocation.
    if n as u64 > covered / 16 {
        return None;
    }
    let mut devices = Devices::with_capacity(n);
    let mut device = [0u8; DEVICE_BYTES];
    for _ in 0..n {
        r.read_exact(&mut device).ok()?;
        let id = Uuid::from_slice(&device[..16]).ok()?;
        let state = state_of(device[16])?;
        let attempts = u32::from_le_bytes(device[17..21].try_into().ok()?);
        let sent_at_ms = u64::from_le_bytes(device[21..29].try_into().ok()?);
        // A device kept twice is a damaged checkpoint.
        devices.restore(id, state, attempts, sent_at_ms)?;
    }
    let mut state = LedgerState::new(header.clone(), devices, plan_done);
    state.rows = rows;
    // The skip reasons (absent in checkpoints of the earlier release), then nothing.
    let mut rest = Vec::new();
    r.take(FIRST_LINE_MAX as u64 + 5)
        .read_to_end(&mut rest)
        .ok()?;
    if !rest.is_empty() {
        let (len, json) = rest.split_at_checked(4)?;
        if u32::from_le_bytes(len.try_into().ok()?) as usize != json.len() {
            return None;
        }
        state.skip_reasons = serde_json::from_slice(json).ok()?;
    }
    Some((state, covered))
}

fn array<const N: usize>(r: &mut impl Read) -> Option<[u8; N]> {
    let mut b = [0u8; N];
    r.read_exact(&mut b).ok()?;
    Some(b)
}

/// The last bytes (up to `TAIL`) before `covered` in the ledger.
fn read_tail(ledger: &Path, covered: u64) -> std::io::Result<Vec<u8>> {
    let mut f = File::open(ledger)?;
    if f.metadata()?.len() < covered {
        return Err(std::io::Error::other(
            "the ledger is shorter than the checkpoint",
        ));
    }
    let from = covered.saturating_sub(TAIL as u64);
    f.seek(SeekFrom::Start(from))?;
    let mut tail = vec![0u8; (covered - from) as usize];
    f.read_exact(&mut tail)?;
    Ok(tail)
}

/// The ledger's first line (its header), newline included.
fn first_line(ledger: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::BufRead;
    let mut line = Vec::new();
    BufReader::new(File::open(ledger)?)
        .take(FIRST_LINE_MAX as u64)
        .read_until(b'\n', &mut line)?;
    Ok(line)
}

fn state_code(s: DeviceState) -> u8 {
    match s {
        DeviceState::Pending => 0,
        DeviceState::InDoubt => 1,
        DeviceState::Rotated => 2,
        DeviceState::Failed => 3,
        DeviceState::Skipped => 4,
    }
}

fn state_of(code: u8) -> Option<DeviceState> {
    Some(match code {
        0 => DeviceState::Pending,
        1 => DeviceState::InDoubt,
        2 => DeviceState::Rotated,
        3 => DeviceState::Failed,
        4 => DeviceState::Skipped,
        _ => return None,
    })
}
