//! The write-ahead ledger: JSON Lines, append-only, one event per line.
//!
//! A `sent` row is durable (fsync, group-committed per batch) before its request leaves, and the
//! outcome row follows. After a crash the worst case is a torn last line (ignored) and some `sent`
//! rows without an outcome: the in-doubt devices that `resume` deals with. One process per ledger,
//! enforced with an OS file lock. Format: docs/ledger.md.

use crate::device_id::as_guid;
use crate::{Action, MatchRule, ResultMatcher, RotationError};
use graph_batch::Quota;
use graph_client::Cloud;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Seek, Write};
use std::path::{Path, PathBuf};
use uuid::Uuid;

/// Bumped when a row changes meaning; readers refuse newer versions. Version 2 added `plan_done`.
pub const LEDGER_VERSION: u32 = 2;

/// The run's parameters, first row of every ledger: `resume` needs nothing else (no secrets).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunHeader {
    pub version: u32,
    pub tenant: String,
    pub client_id: Option<String>,
    #[serde(with = "as_text")]
    pub cloud: Cloud,
    #[serde(with = "as_text")]
    pub action: Action,
    pub api_version: String,
    /// The navigation collection the action is posted to.
    pub via: String,
    /// Where the devices came from, for the audit trail.
    pub source: String,
    #[serde(with = "as_text")]
    pub rate: Quota,
    pub created_at: String,
    /// Names of our action's results given at `rotate` (`--result-name`); `resume` and `verify`
    /// use them beside their own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub result_names: Vec<String>,
    /// Who the run signed in as: the app (its id) or the person (their user name), for reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_in_as: Option<String>,
    /// How the plan read devices' action results (pending actions, key age), where it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action_results: Option<crate::ResultsRead>,
}

impl RunHeader {
    /// A header of this release for a run of `action` on `tenant`'s devices from `source`, in the
    /// global cloud through `managedDevices`; callers change what differs.
    pub fn new(
        tenant: impl Into<String>,
        action: Action,
        source: impl Into<String>,
        rate: Quota,
    ) -> Self {
        RunHeader {
            version: LEDGER_VERSION,
            tenant: tenant.into(),
            client_id: None,
            cloud: Cloud::Global,
            action,
            api_version: "beta".into(),
            via: "managedDevices".into(),
            source: source.into(),
            rate,
            created_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            result_names: Vec::new(),
            signed_in_as: None,
            action_results: None,
        }
    }
}

impl RunHeader {
    /// Recognises this run's results: the names the ledger keeps and those given now (`extra`).
    pub fn result_matcher(&self, extra: &[String]) -> ResultMatcher {
        let names: Vec<String> = self.result_names.iter().chain(extra).cloned().collect();
        ResultMatcher::new(self.action, &names)
    }
}

/// serde through `Display` and `FromStr`: the header's typed fields keep their text form on disk.
mod checkpoint;
mod device_state;
mod devices;
mod replay;

pub use device_state::{DeviceState, RowKind, Step};
pub use devices::{DeviceTable, Devices, Folded, Sending};

use replay::Event;
pub(crate) use replay::Fields;
pub use replay::IdHasher;

pub(crate) mod as_text {
    use serde::de::Error;
    use serde::{Deserialize, Deserializer, Serializer};
    use std::fmt::Display;
    use std::str::FromStr;

    pub fn serialize<T: Display, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }

    pub fn deserialize<'de, T, D>(d: D) -> Result<T, D::Error>
    where
        T: FromStr<Err: Display>,
        D: Deserializer<'de>,
    {
        let text = std::borrow::Cow::<str>::deserialize(d)?;
        text.parse().map_err(D::Error::custom)
    }
}

/// One line of the ledger.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Row {
    Run(RunHeader),
    Planned {
        #[serde(with = "as_guid")]
        id: Uuid,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        serial: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        os: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        line: Option<u64>,
        /// When the device's secret was last read before this run, in a run over views.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        viewed_at: Option<String>,
        /// Who read it: `user <upn>` or `app <id>`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        viewed_by: Option<String>,
    },
    Skipped {
        #[serde(with = "as_guid")]
        id: Uuid,
        reason: String,
    },
    /// The whole source is planned: without this row a ledger is an unfinished plan (the run
    /// stopped while planning) from which nothing was sent, and `rotate` may start it afresh.
    PlanDone {
        planned: u64,
        skipped: u64,
        /// Skipped devices per reason kind, so `status` can say why without reading every row.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        skip_reasons: BTreeMap<String, u64>,
        at: String,
    },
    Sent {
        #[serde(with = "as_guid")]
        id: Uuid,
        attempt: u32,
        at: String,
    },
    Outcome {
        #[serde(with = "as_guid")]
        id: Uuid,
        result: Outcome,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        status: Option<u16>,
        /// Why the device was not answered at once (absent in rows of earlier releases).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cause: Option<crate::RetryCause>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_request_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        date: Option<String>,
        at: String,
    },
    /// What Graph's `deviceActionResults` said of the device's rotation: pending, active, done,
    /// failed, notSupported, or not-found (no result for our action since we sent it).
    Verified {
        #[serde(with = "as_guid")]
        id: Uuid,
        state: VerifiedState,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        action_started_at: Option<String>,
        /// Which rule recognised the result as ours (absent before the matcher, and when none did).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        matched_by: Option<MatchRule>,
        /// Which source proved the state (absent in ledgers written before there were several).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        evidence: Option<Evidence>,
        /// The device's error code for a failed action, where Graph gives one (absent before).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error_code: Option<i64>,
        at: String,
    },
    /// A `resume` (or `rotate` continuing) began here; in-doubt devices and how they were treated.
    Session {
        at: String,
        command: String,
        in_doubt: u64,
        in_doubt_policy: String,
    },
}

/// What one attempt came to.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Rotated,
    Failed,
    /// Will be sent again (throttled, server error, network).
    Retry,
    /// Left alone by `--in-doubt skip`.
    Abandoned,
}

/// What proved a verified state: the device's action result, or the secret's own record in Entra
/// (a BitLocker recovery key created, a Windows LAPS backup made, after our request).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Evidence {
    ActionResult,
    RecoveryKey,
    LapsBackup,
}

impl Evidence {
    pub fn key(self) -> &'static str {
        match self {
            Evidence::ActionResult => "action-result",
            Evidence::RecoveryKey => "recovery-key",
            Evidence::LapsBackup => "laps-backup",
        }
    }
}

/// What Graph's `deviceActionResults` says of our action on a device (its `actionState`), or that
/// there is no result of ours at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum VerifiedState {
    None,
    Pending,
    Canceled,
    Active,
    Done,
    Failed,
    NotSupported,
    /// No result of our action since our request left.
    #[serde(rename = "not-found")]
    NotFound,
    /// The action says done, but the secret's record in Entra did not change after our request.
    #[serde(rename = "done-unconfirmed")]
    DoneUnconfirmed,
    /// A state this tool does not know.
    #[serde(other)]
    Unknown,
}

impl VerifiedState {
    /// Graph's `actionState`, case ignored.
    pub fn from_graph(s: &str) -> Self {
        match s.to_ascii_lowercase().as_str() {
            "none" => VerifiedState::None,
            "pending" => VerifiedState::Pending,
            "canceled" => VerifiedState::Canceled,
            "active" => VerifiedState::Active,
            "done" => VerifiedState::Done,
            "failed" => VerifiedState::Failed,
            "notsupported" => VerifiedState::NotSupported,
            "not-found" => VerifiedState::NotFound,
            "done-unconfirmed" => VerifiedState::DoneUnconfirmed,
            _ => VerifiedState::Unknown,
        }
    }

    /// The name in `verify`'s counts (lower case, as printed since the first release).
    pub fn key(self) -> &'static str {
        match self {
            VerifiedState::None => "none",
            VerifiedState::Pending => "pending",
            VerifiedState::Canceled => "canceled",
            VerifiedState::Active => "active",
            VerifiedState::Done => "done",
            VerifiedState::Failed => "failed",
            VerifiedState::NotSupported => "notsupported",
            VerifiedState::NotFound => "not-found",
            VerifiedState::DoneUnconfirmed => "done-unconfirmed",
            VerifiedState::Unknown => "unknown",
        }
    }

    /// The device will not change this answer: it is not looked at again.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            VerifiedState::Done
                | VerifiedState::DoneUnconfirmed
                | VerifiedState::Failed
                | VerifiedState::NotSupported
        )
    }

    /// Our action reached the device's queue or beyond: the request was carried out.
    pub fn shows_our_action(self) -> bool {
        self != VerifiedState::NotFound
    }
}

impl fmt::Display for VerifiedState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

impl Row {
    /// What the row does to its device.
    pub fn step(&self) -> Step {
        let result = match self {
            Row::Outcome { result, .. } => Some(*result),
            _ => None,
        };
        self.kind()
            .step(result)
            .expect("an outcome row has its result")
    }

    /// The row's `type`.
    pub fn kind(&self) -> RowKind {
        match self {
            Row::Run(_) => RowKind::Run,
            Row::Planned { .. } => RowKind::Planned,
            Row::Skipped { .. } => RowKind::Skipped,
            Row::PlanDone { .. } => RowKind::PlanDone,
            Row::Sent { .. } => RowKind::Sent,
            Row::Outcome { .. } => RowKind::Outcome,
            Row::Verified { .. } => RowKind::Verified,
            Row::Session { .. } => RowKind::Session,
        }
    }

    /// The request's leaving a `sent` row records; a time in no layout reads as never.
    pub fn sending(&self) -> Option<Sending> {
        match self {
            Row::Sent { attempt, at, .. } => Some(Sending::read(*attempt, at)),
            _ => None,
        }
    }

    /// The device a row is about, if any.
    pub fn device(&self) -> Option<Uuid> {
        match self {
            Row::Planned { id, .. }
            | Row::Skipped { id, .. }
            | Row::Sent { id, .. }
            | Row::Outcome { id, .. }
            | Row::Verified { id, .. } => Some(*id),
            Row::Run(_) | Row::PlanDone { .. } | Row::Session { .. } => None,
        }
    }
}

/// The compact state of a whole ledger: its devices in plan order, 29 bytes each.
#[derive(Debug, Clone)]
pub struct LedgerState {
    pub header: RunHeader,
    /// Changed only by replay and [`LedgerState::record`]: the one fold.
    devices: Devices,
    /// Rows read, and whether a torn last line was dropped.
    pub rows: u64,
    pub torn_tail: bool,
    /// The plan is complete (a `plan_done` row, or a version-1 ledger, which had none).
    pub plan_done: bool,
    /// Skipped devices per reason kind, from the `plan_done` row (empty in older ledgers).
    pub skip_reasons: BTreeMap<String, u64>,
}

impl LedgerState {
    pub(super) fn new(header: RunHeader, devices: Devices, plan_done: bool) -> Self {
        LedgerState {
            header,
            devices,
            rows: 0,
            torn_tail: false,
            plan_done,
            skip_reasons: BTreeMap::new(),
        }
    }

    /// The devices and where each stands.
    pub fn devices(&self) -> &Devices {
        &self.devices
    }

    /// The devices' ids in plan order.
    pub fn ids(&self) -> &[Uuid] {
        self.devices.ids()
    }

    /// How many devices stand in `state`.
    pub fn count(&self, state: DeviceState) -> usize {
        self.devices.count(state)
    }

    /// Device `i`'s state.
    pub fn state(&self, i: u32) -> DeviceState {
        self.devices.state(i)
    }

    /// Requests sent for device `i` so far.
    pub fn attempts(&self, i: u32) -> u32 {
        self.devices.attempts(i)
    }

    /// When device `i`'s last request left (Unix milliseconds; 0: never).
    pub fn sent_at_ms(&self, i: u32) -> u64 {
        self.devices.sent_at_ms(i)
    }

    /// Applies `row`, written for device `i`, as replay applies it: the only way a run changes a
    /// device's slot, so the state in memory is always the ledger's.
    pub fn record(&mut self, i: u32, row: &Row) {
        self.devices.record(i, row.step(), row.sending());
    }

    fn apply(&mut self, event: Event, line: u64, path: &Path) -> Result<(), RotationError> {
        let (id, step, sent, skip_kind) = match event {
            Event::Header(_) => {
                return Err(RotationError::ledger(
                    path,
                    Some(line),
                    "a second run header",
                ));
            }
            Event::PlanDone(reasons) => {
                self.plan_done = true;
                self.skip_reasons = reasons;
                return Ok(());
            }
            Event::Other => return Ok(()),
            Event::Device {
                id,
                step,
                sent,
                skip_kind,
            } => (id, step, sent, skip_kind),
        };
        match self.devices.fold(id, step, sent) {
            Folded::Unplanned => Err(RotationError::ledger(
                path,
                Some(line),
                format!("device {id} was never planned"),
            )),
            // Skipped after the plan's end (its action results read just before sending): the
            // plan's figures per reason grow by it.
            Folded::Moved { before, .. } if before != DeviceState::Skipped => {
                if let (true, Some(kind)) = (self.plan_done, skip_kind) {
                    *self
                        .skip_reasons
                        .entry(kind.code().to_string())
                        .or_default() += 1;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

/// An open, locked ledger for appending.
#[derive(Debug)]
pub struct Ledger {
    path: PathBuf,
    out: BufWriter<File>,
    /// Whether the plan is complete: decides what a write error tells the admin to do next.
    plan_done: bool,
}

/// Unix milliseconds of a ledger timestamp (our own layout read directly, any RFC 3339 otherwise).
pub(crate) fn parse_ms(at: &str) -> Option<u64> {
    if let Some(ms) = replay::fast_ms(at) {
        return Some(ms);
    }
    graph_time_ms(at)
}

/// Unix milliseconds of any timestamp Graph or an export writes: `Z` or an offset
/// (`2016-12-31T23:58:46.7156189-08:00`), up to nine fraction digits, or no zone at all (taken as
/// UTC), with `T` or a space between date and time.
pub(crate) fn graph_time_ms(at: &str) -> Option<u64> {
    use time::format_description::well_known::Rfc3339;
    let at = at.trim();
    let mut text = at.to_string();
    if text.len() > 10 && text.as_bytes()[10] == b' ' {
        text.replace_range(10..11, "T");
    }
    let zoned = text.len() > 19 && {
        let tail = &text[19..];
        tail.ends_with(['Z', 'z']) || tail.contains(['+', '-'])
    };
    if !zoned {
        text.push('Z');
    }
    let t = time::OffsetDateTime::parse(&text, &Rfc3339).ok()?;
    u64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

pub fn now_iso() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

/// The writer's buffer: a batch's rows (about 6 KB for 20 devices) go in one write. Every tenant
/// in flight holds one, so it is kept small.
const WRITE_BUFFER: usize = 16 << 10;

impl Ledger {
    /// Creates a new ledger. An existing one is never overwritten, except an unfinished plan from
    /// which nothing was sent (a run stopped while planning, by a crash or a full disk): that holds
    /// nothing worth keeping, and starting it afresh is what the admin means by running again.
    pub fn create(path: &Path, header: &RunHeader) -> Result<Self, RotationError> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(path)
            .map_err(|e| RotationError::io(path, e))?;
        lock(&file, path)?;
        let len = file
            .metadata()
            .map_err(|e| RotationError::io(path, e))?
            .len();
        if len > 0 {
            if !unfinished_plan(path) {
                return Err(RotationError::LedgerExists(path.to_path_buf()));
            }
            tracing::warn!(
                ledger = %path.display(),
                "the ledger holds an unfinished plan from which nothing was sent; planning it afresh"
            );
            file.set_len(0)
                .map_err(|e| RotationError::write(path, e, false))?;
        }
        // A checkpoint left by an earlier ledger of this name covers nothing of this one.
        let _ = std::fs::remove_file(checkpoint::path_of(path));
        let mut ledger = Ledger {
            path: path.to_path_buf(),
            out: BufWriter::with_capacity(WRITE_BUFFER, file),
            plan_done: false,
        };
        ledger.append(&Row::Run(header.clone()))?;
        ledger.sync()?;
        Ok(ledger)
    }

    /// Opens an existing ledger for appending after replaying it; a torn last line is cut off first.
    pub fn open(path: &Path) -> Result<(Self, LedgerState), RotationError> {
        let file = OpenOptions::new()
            .append(true)
            .read(true)
            .open(path)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => RotationError::NoLedger(path.to_path_buf()),
                _ => RotationError::io(path, e),
            })?;
        lock(&file, path)?;
        let (state, good_len) = replay_file(path)?;
        if !state.plan_done {
            return Err(RotationError::UnfinishedPlan(path.to_path_buf()));
        }
        if state.torn_tail {
            // Later rows must start on a line of their own.
            file.set_len(good_len)
                .map_err(|e| RotationError::write(path, e, true))?;
        }
        Ok((
            Ledger {
                path: path.to_path_buf(),
                out: BufWriter::with_capacity(WRITE_BUFFER, file),
                plan_done: true,
            },
            state,
        ))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one row to the buffer (not yet durable: see [`Ledger::sync`]).
    pub fn append(&mut self, row: &Row) -> Result<(), RotationError> {
        serde_json::to_writer(&mut self.out, row).map_err(|e| self.write_error(e.into()))?;
        self.out.write_all(b"\n").map_err(|e| self.write_error(e))?;
        if matches!(row, Row::PlanDone { .. }) {
            self.plan_done = true;
        }
        Ok(())
    }

    /// Hands buffered rows to the OS: they survive the process being killed.
    pub fn flush(&mut self) -> Result<(), RotationError> {
        self.out.flush().map_err(|e| self.write_error(e))
    }

    /// Removes a ledger this process just made, from which nothing was sent, and its checkpoint:
    /// the same command run again starts over.
    pub fn discard(self) {
        let path = self.path.clone();
        drop(self);
        let _ = std::fs::remove_file(checkpoint::path_of(&path));
        let _ = std::fs::remove_file(&path);
    }

    /// Makes every row durable and writes the checkpoint that lets the next open skip them all
    /// (a million-device ledger opens in a fraction of a second). A failed checkpoint is harmless.
    /// Returns the state it holds.
    pub fn checkpoint(&mut self) -> Result<LedgerState, RotationError> {
        self.sync()?;
        let (state, covered) = replay_file(&self.path)?;
        checkpoint::write(&self.path, &state, covered);
        Ok(state)
    }

    /// Makes every row so far durable and returns the state they replay to, writing no
    /// checkpoint: for a ledger so small that replaying it costs less than a file beside it.
    pub fn synced_state(&mut self) -> Result<LedgerState, RotationError> {
        self.sync()?;
        Ok(replay_file(&self.path)?.0)
    }

    /// Makes every row so far durable on disk: they survive power loss.
    pub fn sync(&mut self) -> Result<(), RotationError> {
        self.flush()?;
        let file = self.out.get_ref();
        // An fsync waits for the disk: on a many-threaded runtime the worker hands its other tasks
        // on meanwhile, so hundreds of tenants' ledgers sync side by side instead of in turn.
        let synced = match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(|| file.sync_data())
            }
            _ => file.sync_data(),
        };
        synced.map_err(|e| self.write_error(e))
    }

    fn write_error(&self, e: std::io::Error) -> RotationError {
        RotationError::write(&self.path, e, self.plan_done)
    }
}

fn lock(file: &File, path: &Path) -> Result<(), RotationError> {
    match file.try_lock() {
        Ok(()) => Ok(()),
        Err(std::fs::TryLockError::WouldBlock) => {
            Err(RotationError::LedgerLocked(path.to_path_buf()))
        }
        Err(std::fs::TryLockError::Error(e)) => Err(RotationError::io(path, e)),
    }
}

/// A ledger whose plan was never finished and from which nothing was sent: no complete row at
/// all (the header itself was cut), or a header and plan rows without `plan_done` or `sent`.
fn unfinished_plan(path: &Path) -> bool {
    match replay_file(path) {
        Ok((state, _)) => {
            !state.plan_done && (0..state.devices().len() as u32).all(|i| state.attempts(i) == 0)
        }
        // Only a cut header line of our own, never some other file given by mistake.
        // Its size is asked first: a large unreadable file is never read whole for this.
        Err(_) => {
            std::fs::metadata(path).is_ok_and(|m| m.len() < 1 << 16)
                && std::fs::read(path).is_ok_and(|bytes| {
                    !bytes.contains(&b'\n') && bytes.starts_with(br#"{"type":"run""#)
                })
        }
    }
}

/// Reads a ledger without locking it (status, export). Returns the state and the length of its
/// complete lines. A checkpoint of this very ledger saves reading what it covers.
pub fn replay_file(path: &Path) -> Result<(LedgerState, u64), RotationError> {
    let file = File::open(path).map_err(|e| RotationError::io(path, e))?;
    let mut reader = BufReader::with_capacity(1 << 16, file);
    let (from, covered) =
        match read_header(&mut reader, path)?.and_then(|header| checkpoint::read(path, &header)) {
            Some((state, covered)) => (Some(state), covered),
            None => (None, 0),
        };
    replay(reader.into_inner(), path, from, covered)
}

/// The run header, from the first line; `None` when it is not one (replay then says why).
fn read_header(reader: &mut impl BufRead, path: &Path) -> Result<Option<RunHeader>, RotationError> {
    let mut first = Vec::new();
    reader
        .read_until(b'\n', &mut first)
        .map_err(|e| RotationError::io(path, e))?;
    Ok(match full_row(&first) {
        Ok(Row::Run(h)) => Some(h),
        _ => None,
    })
}

/// Calls `f` with every complete row of the ledger in order (the report folds rows this way);
/// rows are parsed on every core (see [`for_each_line`]).
pub fn for_each_row(path: &Path, mut f: impl FnMut(Row)) -> Result<RunHeader, RotationError> {
    let mut header = None;
    for_each_line(path, reading_threads(), full_row, |_, row| {
        if let Row::Run(h) = &row {
            header.get_or_insert_with(|| h.clone());
        }
        f(row);
        Ok(())
    })?;
    header.ok_or_else(|| RotationError::ledger(path, None, "empty ledger: no run header"))
}

/// Threads the ledger readers parse on: the cores, up to four (past that, reading and the
/// in-order fold are the limit).
pub(crate) fn reading_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 4)
}

/// Calls `parse` on every complete, non-blank line and `f` with its byte offset and what `parse`
/// made of it, in file order (export's first pass, the report). Parsing, the costly part, runs on
/// up to `threads` threads, a block of the file each, while the file is read and `f` runs on the
/// caller's thread. An error from either names the line. A torn last line is ignored, as replay
/// ignores it.
pub(crate) fn for_each_line<T: Send>(
    path: &Path,
    threads: usize,
    parse: impl Fn(&[u8]) -> Result<T, String> + Sync,
    mut f: impl FnMut(u64, T) -> Result<(), String>,
) -> Result<(), RotationError> {
    let file = File::open(path).map_err(|e| RotationError::io(path, e))?;
    read_blocks(
        path,
        file,
        0,
        threads,
        PARSE_BLOCK,
        parse,
        |offset, line, item| {
            f(offset, item).map_err(|e| {
                RotationError::ledger(path, Some(line), format!("not a ledger row: {e}"))
            })
        },
    )?;
    Ok(())
}

/// What reading a ledger's lines found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct LinesRead {
    /// Bytes of complete lines, blank ones included.
    good: u64,
    /// A torn last line was left unread.
    torn: bool,
    /// Non-blank lines passed on.
    rows: u64,
}

/// Reads `file` from `start` in blocks of whole lines, parses each block on one of `threads`
/// threads, and calls `f` with each non-blank line's offset, line number (from `start`) and
/// parse, in file order. A parse error names its line, after `f` saw every line before it.
fn read_blocks<T: Send>(
    path: &Path,
    mut file: File,
    start: u64,
    threads: usize,
    block: usize,
    parse: impl Fn(&[u8]) -> Result<T, String> + Sync,
    mut f: impl FnMut(u64, u64, T) -> Result<(), RotationError>,
) -> Result<LinesRead, RotationError> {
    file.seek(std::io::SeekFrom::Start(start))
        .map_err(|e| RotationError::io(path, e))?;
    let torn = std::sync::atomic::AtomicBool::new(false);
    let blocks = Blocks {
        file,
        path,
        size: block,
        carry: Vec::new(),
        at: start,
        ended: false,
        torn: &torn,
    };
    let (mut base, mut lines_before, mut rows) = (0u64, 0u64, 0u64);
    crate::ordered::in_order(
        threads,
        blocks,
        |b| parse_block(&b, &parse),
        |parsed| {
            for (offset, k, item) in parsed.items {
                f(start + base + offset, lines_before + k + 1, item)?;
                rows += 1;
            }
            if let Some((k, e)) = parsed.error {
                return Err(RotationError::ledger(
                    path,
                    Some(lines_before + k + 1),
                    format!("not a ledger row: {e}"),
                ));
            }
            base += parsed.bytes;
            lines_before += parsed.lines;
            Ok(())
        },
    )?;
    Ok(LinesRead {
        good: base,
        torn: torn.into_inner(),
        rows,
    })
}

/// Bytes of the ledger a reading thread parses at a time.
const PARSE_BLOCK: usize = 1 << 20;

/// One block's lines: (offset in the block, line in the block, parsed), the first error, and the
/// count of lines (blank ones too, so line numbers stay right).
struct Parsed<T> {
    items: Vec<(u64, u64, T)>,
    error: Option<(u64, String)>,
    lines: u64,
    bytes: u64,
}

fn parse_block<T>(block: &[u8], parse: &impl Fn(&[u8]) -> Result<T, String>) -> Parsed<T> {
    let mut parsed = Parsed {
        items: Vec::with_capacity(block.len() / 128),
        error: None,
        lines: 0,
        bytes: block.len() as u64,
    };
    let mut start = 0;
    for end in memchr::memchr_iter(b'\n', block) {
        let line = &block[start..=end];
        let k = parsed.lines;
        parsed.lines += 1;
        if !line.iter().all(u8::is_ascii_whitespace) {
            match parse(line) {
                Ok(item) => parsed.items.push((start as u64, k, item)),
                Err(e) => {
                    parsed.error = Some((k, e));
                    return parsed;
                }
            }
        }
        start = end + 1;
    }
    parsed
}

/// The ledger in blocks of whole lines, read in order. A line longer than a block makes its block
/// longer; a torn last line is left out, with a warning.
struct Blocks<'p> {
    file: File,
    path: &'p Path,
    size: usize,
    /// The part line the last block left.
    carry: Vec<u8>,
    /// The offset of `carry`.
    at: u64,
    ended: bool,
    /// Set when the file ends in a torn line.
    torn: &'p std::sync::atomic::AtomicBool,
}

impl Iterator for Blocks<'_> {
    type Item = Result<Vec<u8>, RotationError>;

    fn next(&mut self) -> Option<Self::Item> {
        use std::io::Read;
        let mut buf = std::mem::take(&mut self.carry);
        let mut want = self.size.max(buf.len() + 1);
        while !self.ended {
            let had = buf.len();
            buf.resize(want, 0);
            let mut got = had;
            while got < want {
                match self.file.read(&mut buf[got..]) {
                    Ok(0) => break,
                    Ok(n) => got += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        self.ended = true;
                        return Some(Err(RotationError::io(self.path, e)));
                    }
                }
            }
            buf.truncate(got);
            self.ended = got < want;
            if let Some(last) = memchr::memrchr(b'\n', &buf) {
                self.carry = buf[last + 1..].to_vec();
                buf.truncate(last + 1);
                self.at += buf.len() as u64;
                return Some(Ok(buf));
            }
            want *= 4;
        }
        if !buf.is_empty() {
            // A torn last line: the write that was cut by the crash. Nothing after it.
            tracing::warn!(offset = self.at, "ledger ends in a torn line; ignoring it");
            self.torn.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        None
    }
}

/// Reads single ledger lines by offset (export's second pass). A device's lines sit in a few
/// regions of the file (the plan, its sends and outcomes, its verify passes), each read forward as
/// devices follow each other, so a few cached blocks, one per region, serve nearly every line.
pub(crate) struct LineAt {
    file: File,
    path: PathBuf,
    blocks: Vec<Block>,
    tick: u64,
}

/// A cached stretch of the file.
struct Block {
    at: u64,
    bytes: Vec<u8>,
    used: u64,
}

/// Cached blocks; the least recently used is refilled.
const BLOCKS: usize = 6;
const BLOCK_BYTES: usize = 64 << 10;

impl LineAt {
    pub(crate) fn open(path: &Path) -> Result<Self, RotationError> {
        Ok(LineAt {
            file: File::open(path).map_err(|e| RotationError::io(path, e))?,
            path: path.to_path_buf(),
            blocks: Vec::new(),
            tick: 0,
        })
    }

    /// The line that starts at `offset`, newline included.
    pub(crate) fn line(&mut self, offset: u64) -> Result<&[u8], RotationError> {
        self.tick += 1;
        // The block holding the whole line, and where the line starts and ends in it.
        let find = |blocks: &[Block]| {
            blocks.iter().enumerate().find_map(|(k, b)| {
                let start = usize::try_from(offset.checked_sub(b.at)?).ok()?;
                let rest = b.bytes.get(start..)?;
                memchr::memchr(b'\n', rest).map(|n| (k, start, start + n + 1))
            })
        };
        let (k, start, end) = match find(&self.blocks) {
            Some(hit) => hit,
            None => {
                let k = if self.blocks.len() < BLOCKS {
                    self.blocks.push(Block {
                        at: 0,
                        bytes: Vec::new(),
                        used: 0,
                    });
                    self.blocks.len() - 1
                } else {
                    (0..BLOCKS)
                        .min_by_key(|&k| self.blocks[k].used)
                        .expect("blocks")
                };
                let mut size = BLOCK_BYTES;
                loop {
                    self.fill(k, offset, size)?;
                    let b = &self.blocks[k];
                    match memchr::memchr(b'\n', &b.bytes) {
                        Some(n) => break (k, 0, n + 1),
                        // A line longer than the block: read more until its end is in.
                        None if b.bytes.len() == size => size *= 4,
                        None => {
                            return Err(RotationError::ledger(
                                &self.path,
                                None,
                                format!("no line at byte {offset}"),
                            ));
                        }
                    }
                }
            }
        };
        self.blocks[k].used = self.tick;
        Ok(&self.blocks[k].bytes[start..end])
    }

    fn fill(&mut self, k: usize, offset: u64, size: usize) -> Result<(), RotationError> {
        use std::io::Read;
        let path = &self.path;
        self.file
            .seek(std::io::SeekFrom::Start(offset))
            .map_err(|e| RotationError::io(path, e))?;
        let b = &mut self.blocks[k];
        b.bytes.resize(size, 0);
        let mut got = 0;
        while got < size {
            let n = self
                .file
                .read(&mut b.bytes[got..])
                .map_err(|e| RotationError::io(path, e))?;
            if n == 0 {
                break;
            }
            got += n;
        }
        b.bytes.truncate(got);
        b.at = offset;
        Ok(())
    }
}

/// An error naming a line counted from `offset` (after a checkpoint), made to name its line in
/// the whole file: the lines before are counted only on this path.
fn whole_file_line(e: RotationError, path: &Path, offset: u64) -> RotationError {
    match e {
        RotationError::Ledger {
            path: p,
            line: Some(line),
            message,
        } if offset > 0 => {
            let before = File::open(path).and_then(|f| {
                let mut r = BufReader::with_capacity(1 << 20, std::io::Read::take(f, offset));
                let mut n = 0u64;
                loop {
                    let buf = r.fill_buf()?;
                    if buf.is_empty() {
                        return Ok(n);
                    }
                    n += memchr::memchr_iter(b'\n', buf).count() as u64;
                    let len = buf.len();
                    r.consume(len);
                }
            });
            RotationError::Ledger {
                path: p,
                line: before.ok().map(|n| n + line),
                message,
            }
        }
        e => e,
    }
}

/// A whole row.
fn full_row(line: &[u8]) -> Result<Row, String> {
    serde_json::from_slice(line).map_err(|e| e.to_string())
}

/// Replays `file` from `offset` onto the state `from` a checkpoint, or from nothing; lines are
/// parsed on every core and applied in order.
fn replay(
    file: File,
    path: &Path,
    from: Option<LedgerState>,
    offset: u64,
) -> Result<(LedgerState, u64), RotationError> {
    let before = from.as_ref().map_or(0, |s| s.rows);
    let mut state = from;
    let read = read_blocks(
        path,
        file,
        offset,
        reading_threads(),
        PARSE_BLOCK,
        replay::event,
        |_, line, row| match (&mut state, row) {
            (None, Event::Header(header)) => {
                let header = *header;
                let plan_done = header.version < 2;
                if header.version > LEDGER_VERSION {
                    return Err(RotationError::ledger(
                        path,
                        Some(line),
                        format!(
                            "ledger format version {} is newer than this intune-rotate understands ({LEDGER_VERSION})",
                            header.version
                        ),
                    ));
                }
                state = Some(LedgerState::new(header, Devices::default(), plan_done));
                Ok(())
            }
            (None, _) => Err(RotationError::ledger(
                path,
                Some(line),
                "the first row must be the run header",
            )),
            (Some(s), row) => s.apply(row, line, path),
        },
    )
    .map_err(|e| whole_file_line(e, path, offset))?;
    let mut state =
        state.ok_or_else(|| RotationError::ledger(path, None, "empty ledger: no run header"))?;
    state.rows = before + read.rows;
    state.torn_tail = read.torn;
    Ok((state, offset + read.good))
}

#[cfg(test)]
mod tests {

    #[test]
    fn graph_times_with_an_offset_and_seven_fraction_digits_are_read_as_the_instant_they_name() {
        let utc = parse_ms("2017-01-01T07:58:46.715Z").unwrap();
        assert_eq!(parse_ms("2016-12-31T23:58:46.7156189-08:00"), Some(utc));
        assert_eq!(parse_ms("2017-01-01T07:58:46.7156189Z"), Some(utc));
        assert_eq!(parse_ms("2017-01-01T07:58:46.7156189"), Some(utc));
        assert_eq!(parse_ms("2017-01-01 07:58:46.715"), Some(utc));
        assert_eq!(parse_ms("2017-01-01T09:58:46.715+02:00"), Some(utc));
        assert_eq!(parse_ms("yesterday"), None);
    }
    use super::*;

    fn header() -> RunHeader {
        RunHeader::new("t", Action::FileVault, "test", "200/20s".parse().unwrap())
    }

    const A: Uuid = Uuid::from_u128(0x0000_0000_0000_4000_8000_0000_0000_000a);
    const B: Uuid = Uuid::from_u128(0x0000_0000_0000_4000_8000_0000_0000_000b);

    fn planned(id: Uuid) -> Row {
        Row::Planned {
            id,
            name: None,
            serial: None,
            user: None,
            os: None,
            line: None,
            viewed_at: None,
            viewed_by: None,
        }
    }

    /// One row of every type.
    fn one_of_each() -> Vec<Row> {
        let at = || "2026-11-20T10:00:00.000Z".to_string();
        vec![
            Row::Run(header()),
            planned(A),
            Row::Skipped {
                id: B,
                reason: "not encrypted".into(),
            },
            Row::PlanDone {
                planned: 1,
                skipped: 1,
                skip_reasons: BTreeMap::new(),
                at: at(),
            },
            Row::Sent {
                id: A,
                attempt: 1,
                at: at(),
            },
            outcome(A, Outcome::Retry),
            Row::Verified {
                id: A,
                state: VerifiedState::Done,
                action_started_at: None,
                matched_by: None,
                evidence: None,
                error_code: None,
                at: at(),
            },
            Row::Session {
                at: at(),
                command: "resume".into(),
                in_doubt: 0,
                in_doubt_policy: "verify".into(),
            },
        ]
    }

    #[test]
    fn every_row_type_as_written_reads_back_as_its_kind_with_the_same_step_and_device() {
        for row in one_of_each() {
            let line = serde_json::to_vec(&row).unwrap();
            let fields: Fields = serde_json::from_slice(&line).unwrap();
            assert_eq!(fields.kind, row.kind(), "{row:?}");
            assert_eq!(fields.kind.step(fields.result), Some(row.step()), "{row:?}");
            assert_eq!(fields.kind.has_device(), row.device().is_some(), "{row:?}");
        }
    }

    fn plan_done() -> Row {
        Row::PlanDone {
            planned: 1,
            skipped: 0,
            skip_reasons: BTreeMap::new(),
            at: now_iso(),
        }
    }

    fn outcome(id: Uuid, result: Outcome) -> Row {
        Row::Outcome {
            id,
            result,
            status: None,
            cause: None,
            code: None,
            message: None,
            request_id: None,
            client_request_id: None,
            date: None,
            at: now_iso(),
        }
    }

    #[test]
    fn a_state_recorded_row_by_row_is_the_state_replay_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.jsonl");
        let mut l = Ledger::create(&path, &header()).unwrap();
        for row in [planned(A), planned(B), plan_done()] {
            l.append(&row).unwrap();
        }
        l.sync().unwrap();
        drop(l);
        let (mut l, mut live) = Ledger::open(&path).unwrap();
        let sent = |id, attempt| Row::Sent {
            id,
            attempt,
            at: now_iso(),
        };
        for (i, row) in [
            (0, sent(A, 1)),
            (0, outcome(A, Outcome::Retry)),
            (0, sent(A, 2)),
            (0, outcome(A, Outcome::Rotated)),
            (1, sent(B, 1)),
        ] {
            live.record(i, &row);
            l.append(&row).unwrap();
        }
        l.sync().unwrap();
        drop(l);
        let (_, read) = Ledger::open(&path).unwrap();
        assert_eq!(
            live.devices().states().collect::<Vec<_>>(),
            read.devices().states().collect::<Vec<_>>()
        );
        assert_eq!(
            live.devices().sent_times().collect::<Vec<_>>(),
            read.devices().sent_times().collect::<Vec<_>>()
        );
        assert_eq!(
            (live.attempts(0), live.attempts(1)),
            (read.attempts(0), read.attempts(1))
        );
        assert_eq!(live.state(0), DeviceState::Rotated);
        assert_eq!(live.state(1), DeviceState::InDoubt);
    }

    #[test]
    fn replay_rebuilds_each_device_state() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.jsonl");
        let mut l = Ledger::create(&path, &header()).unwrap();
        for row in [
            planned(A),
            planned(B),
            Row::Sent {
                id: A,
                attempt: 1,
                at: now_iso(),
            },
            outcome(A, Outcome::Rotated),
            Row::Sent {
                id: B,
                attempt: 1,
                at: now_iso(),
            },
        ] {
            l.append(&row).unwrap();
        }
        l.sync().unwrap();
        drop(l);
        let (s, _) = replay_file(&path).unwrap();
        assert_eq!(
            s.devices().states().collect::<Vec<_>>(),
            vec![DeviceState::Rotated, DeviceState::InDoubt]
        );
        assert_eq!(s.rows, 6);
        assert!(!s.torn_tail);
    }

    #[test]
    fn a_torn_last_line_is_ignored_and_cut_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.jsonl");
        let mut l = Ledger::create(&path, &header()).unwrap();
        l.append(&planned(A)).unwrap();
        l.append(&plan_done()).unwrap();
        l.sync().unwrap();
        drop(l);
        append_raw(&path, br#"{"type":"sent","id":"00000000-0000-4000-80"#);
        let (mut l, s) = Ledger::open(&path).unwrap();
        assert!(s.torn_tail);
        assert_eq!(
            s.devices().states().collect::<Vec<_>>(),
            vec![DeviceState::Pending]
        );
        l.append(&outcome(A, Outcome::Rotated)).unwrap();
        l.sync().unwrap();
        drop(l);
        let (s, _) = replay_file(&path).unwrap();
        assert_eq!(
            s.devices().states().collect::<Vec<_>>(),
            vec![DeviceState::Rotated]
        );
        assert!(!s.torn_tail);
    }

    /// Bytes written after the ledger's own rows, as a crash or a hand edit leaves them.
    fn append_raw(path: &Path, bytes: &[u8]) {
        let mut f = OpenOptions::new().append(true).open(path).unwrap();
        f.write_all(bytes).unwrap();
    }

    #[test]
    fn a_bad_line_in_the_middle_is_an_error_naming_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.jsonl");
        let mut l = Ledger::create(&path, &header()).unwrap();
        l.sync().unwrap();
        drop(l);
        append_raw(&path, b"garbage\n");
        let err = replay_file(&path).unwrap_err().to_string();
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn a_bad_line_after_a_checkpoint_is_named_by_its_line_in_the_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.jsonl");
        let mut l = Ledger::create(&path, &header()).unwrap();
        for row in [planned(A), planned(B), plan_done()] {
            l.append(&row).unwrap();
        }
        l.checkpoint().unwrap();
        l.append(&outcome(A, Outcome::Rotated)).unwrap();
        l.sync().unwrap();
        drop(l);
        append_raw(&path, b"\ngarbage\n");
        // header, two planned, plan_done, outcome, a blank line: the garbage is line 7.
        let err = replay_file(&path).unwrap_err().to_string();
        assert!(err.contains("line 7"), "{err}");
    }

    #[test]
    fn a_second_process_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.jsonl");
        let _first = Ledger::create(&path, &header()).unwrap();
        assert!(matches!(
            Ledger::open(&path),
            Err(RotationError::LedgerLocked(_))
        ));
    }

    #[test]
    fn an_existing_ledger_is_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.jsonl");
        let mut l = Ledger::create(&path, &header()).unwrap();
        l.append(&planned(A)).unwrap();
        l.append(&plan_done()).unwrap();
        drop(l);
        assert!(matches!(
            Ledger::create(&path, &header()),
            Err(RotationError::LedgerExists(_))
        ));
        assert_eq!(replay_file(&path).unwrap().0.ids().len(), 1);
    }

    #[test]
    fn an_unfinished_plan_is_refused_by_resume_and_planned_afresh_by_rotate() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.jsonl");
        let mut l = Ledger::create(&path, &header()).unwrap();
        l.append(&planned(A)).unwrap();
        drop(l);
        assert!(!replay_file(&path).unwrap().0.plan_done);
        assert!(matches!(
            Ledger::open(&path),
            Err(RotationError::UnfinishedPlan(_))
        ));
        drop(Ledger::create(&path, &header()).unwrap());
        let (s, _) = replay_file(&path).unwrap();
        assert_eq!((s.rows, s.ids().len()), (1, 0));
    }

    #[test]
    fn a_plan_that_sent_anything_is_never_planned_afresh() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.jsonl");
        let mut l = Ledger::create(&path, &header()).unwrap();
        l.append(&planned(A)).unwrap();
        l.append(&Row::Sent {
            id: A,
            attempt: 1,
            at: now_iso(),
        })
        .unwrap();
        drop(l);
        assert!(Ledger::create(&path, &header()).is_err());
        assert_eq!(
            replay_file(&path)
                .unwrap()
                .0
                .devices()
                .states()
                .collect::<Vec<_>>(),
            [DeviceState::InDoubt]
        );
    }

    #[test]
    fn a_cut_header_is_planned_afresh_but_another_file_is_not_touched() {
        let dir = tempfile::tempdir().unwrap();
        let cut = dir.path().join("cut.jsonl");
        std::fs::write(&cut, br#"{"type":"run","version":2,"ten"#).unwrap();
        drop(Ledger::create(&cut, &header()).unwrap());
        assert_eq!(replay_file(&cut).unwrap().0.rows, 1);
        let other = dir.path().join("devices.csv");
        std::fs::write(&other, b"id").unwrap();
        assert!(Ledger::create(&other, &header()).is_err());
        assert_eq!(std::fs::read(&other).unwrap(), b"id");
    }

    /// A ledger as the release before the typed rows wrote it (text header fields, string ids).
    const EARLIER_RELEASE: &str = concat!(
        r#"{"type":"run","version":2,"tenant":"contoso-sample","client_id":"11111111-2222-4333-8444-555555555555","cloud":"public","action":"filevault","api_version":"beta","via":"managedDevices","source":"macs.csv","rate":"200/20s","created_at":"2026-11-20T10:00:00Z"}"#,
        "\n",
        r#"{"type":"planned","id":"00000000-0000-4000-8000-00000000000a","name":"MAC-0001","line":2}"#,
        "\n",
        r#"{"type":"skipped","id":"00000000-0000-4000-8000-00000000000b","reason":"not encrypted"}"#,
        "\n",
        r#"{"type":"plan_done","planned":1,"skipped":1,"at":"2026-11-20T10:00:01.000Z"}"#,
        "\n",
        r#"{"type":"sent","id":"00000000-0000-4000-8000-00000000000a","attempt":1,"at":"2026-11-20T10:00:02.000Z"}"#,
        "\n",
        r#"{"type":"outcome","id":"00000000-0000-4000-8000-00000000000a","result":"rotated","status":204,"at":"2026-11-20T10:00:03.000Z"}"#,
        "\n",
        r#"{"type":"verified","id":"00000000-0000-4000-8000-00000000000a","state":"notSupported","at":"2026-11-20T10:10:00.000Z"}"#,
        "\n",
    );

    #[test]
    fn a_ledger_of_the_earlier_release_reads_into_typed_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.jsonl");
        std::fs::write(&path, EARLIER_RELEASE).unwrap();
        let (s, _) = replay_file(&path).unwrap();
        assert_eq!(s.header.action, Action::FileVault);
        assert_eq!(s.header.cloud, Cloud::Global);
        assert_eq!(s.header.rate, "200/20s".parse::<Quota>().unwrap());
        assert_eq!(s.ids(), [A, B]);
        assert_eq!(
            s.devices().states().collect::<Vec<_>>(),
            [DeviceState::Rotated, DeviceState::Skipped]
        );
        let mut verified = None;
        for_each_row(&path, |row| {
            if let Row::Verified { state, .. } = row {
                verified = Some(state);
            }
        })
        .unwrap();
        assert_eq!(verified, Some(VerifiedState::NotSupported));
        // Written again, every row but the header is byte for byte what was read.
        let mut again = String::new();
        for_each_row(&path, |row| {
            again.push_str(&serde_json::to_string(&row).unwrap());
            again.push('\n');
        })
        .unwrap();
        let skip_header = |s: &str| s.split_once('\n').unwrap().1.to_string();
        assert_eq!(skip_header(&again), skip_header(EARLIER_RELEASE));
    }

    fn full_replay(path: &Path) -> LedgerState {
        let _ = std::fs::remove_file(checkpoint::path_of(path));
        replay_file(path).unwrap().0
    }

    fn same(a: &LedgerState, b: &LedgerState) {
        assert_eq!(
            (a.devices(), a.rows, a.plan_done),
            (b.devices(), b.rows, b.plan_done)
        );
    }

    #[test]
    fn a_checkpoint_gives_the_state_of_a_full_replay_and_rows_after_it_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.jsonl");
        let mut l = Ledger::create(&path, &header()).unwrap();
        for row in [planned(A), planned(B), plan_done()] {
            l.append(&row).unwrap();
        }
        l.append(&Row::Sent {
            id: A,
            attempt: 1,
            at: now_iso(),
        })
        .unwrap();
        let at_checkpoint = l.checkpoint().unwrap();
        assert!(checkpoint::path_of(&path).exists());
        l.append(&outcome(A, Outcome::Rotated)).unwrap();
        l.append(&Row::Sent {
            id: B,
            attempt: 2,
            at: now_iso(),
        })
        .unwrap();
        l.sync().unwrap();
        drop(l);
        assert_eq!(
            at_checkpoint.devices().states().collect::<Vec<_>>(),
            [DeviceState::InDoubt, DeviceState::Pending]
        );
        let (fast, len) = replay_file(&path).unwrap();
        assert_eq!(len, std::fs::metadata(&path).unwrap().len());
        assert_eq!(
            fast.devices().states().collect::<Vec<_>>(),
            [DeviceState::Rotated, DeviceState::InDoubt]
        );
        assert_eq!([fast.attempts(0), fast.attempts(1)], [1, 2]);
        same(&fast, &full_replay(&path));
    }

    #[test]
    fn a_checkpoint_that_does_not_match_its_ledger_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.jsonl");
        let mut l = Ledger::create(&path, &header()).unwrap();
        for row in [
            planned(A),
            planned(B),
            plan_done(),
            outcome(A, Outcome::Failed),
        ] {
            l.append(&row).unwrap();
        }
        l.checkpoint().unwrap();
        drop(l);
        let state = checkpoint::path_of(&path);
        let good = std::fs::read(&state).unwrap();
        // The ledger rewritten with other rows of the same length: the bytes before the covered
        // length differ, so the checkpoint is not used.
        let text = std::fs::read_to_string(&path).unwrap();
        let rewritten = text.replace(r#""result":"failed""#, r#""result":"retry" "#);
        assert_eq!(rewritten.len(), text.len());
        std::fs::write(&path, rewritten).unwrap();
        let (s, _) = replay_file(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            s.devices().states().collect::<Vec<_>>()[0],
            DeviceState::Pending,
            "read from the ledger, not the checkpoint"
        );
        // A damaged checkpoint is ignored too.
        std::fs::write(&state, &good[..good.len() - 3]).unwrap();
        same(&replay_file(&path).unwrap().0, &full_replay(&path));
        // A new ledger of the same name drops the old checkpoint.
        std::fs::write(&state, &good).unwrap();
        std::fs::remove_file(&path).unwrap();
        drop(Ledger::create(&path, &header()).unwrap());
        assert!(!state.exists());
    }

    #[test]
    fn a_discarded_ledger_leaves_neither_itself_nor_its_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.jsonl");
        let mut l = Ledger::create(&path, &header()).unwrap();
        l.append(&planned(A)).unwrap();
        l.append(&plan_done()).unwrap();
        l.checkpoint().unwrap();
        assert!(checkpoint::path_of(&path).exists());
        l.discard();
        assert!(!path.exists());
        assert!(!checkpoint::path_of(&path).exists());
    }

    #[test]
    fn a_version_1_ledger_has_no_plan_done_row_and_counts_as_planned() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.jsonl");
        let mut l = Ledger::create(
            &path,
            &RunHeader {
                version: 1,
                ..header()
            },
        )
        .unwrap();
        l.append(&planned(A)).unwrap();
        drop(l);
        let (_, s) = Ledger::open(&path).unwrap();
        assert!(s.plan_done);
        assert_eq!(
            s.devices().states().collect::<Vec<_>>(),
            [DeviceState::Pending]
        );
    }
}

#[cfg(test)]
mod arbitrary_ledgers {
    use super::*;
    use proptest::prelude::*;
    use std::io::Write;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// Any bytes after a valid header: a state or an error naming the line, never a panic.
        #[test]
        fn replaying_arbitrary_bytes_never_panics(tail in proptest::collection::vec(any::<u8>(), 0..600), rows in proptest::collection::vec("\\{\"type\":\"(planned|sent|outcome|skipped|verified)\",\"id\":\"[0-9a-f-]{0,40}\"(,\"attempt\":[0-9]{1,3})?(,\"at\":\"[ -~]{0,30}\")?(,\"result\":\"(rotated|failed|retry)\")?\\}\n", 0..6)) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("l.jsonl");
            let header = RunHeader::new("t", Action::FileVault, "p", "200/20s".parse().unwrap());
            drop(Ledger::create(&path, &header).unwrap());
            let mut f = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
            for r in &rows {
                f.write_all(r.as_bytes()).unwrap();
            }
            f.write_all(&tail).unwrap();
            drop(f);
            let _ = replay_file(&path);
            let _ = for_each_row(&path, |_| {});
        }
    }

    /// The reference: reads complete, non-blank lines in order, one at a time, each through
    /// `parse` (with its byte offset), and calls `f` with the result and the line number.
    /// Returns (complete length, torn tail?, rows).
    fn read_lines<T>(
        mut reader: impl BufRead,
        path: &Path,
        mut parse: impl FnMut(u64, &[u8]) -> Result<T, String>,
        mut f: impl FnMut(T, u64) -> Result<(), RotationError>,
    ) -> Result<(u64, bool, u64), RotationError> {
        let mut buf = Vec::with_capacity(256);
        let (mut line, mut good, mut rows) = (0u64, 0u64, 0u64);
        loop {
            buf.clear();
            let n = reader
                .read_until(b'\n', &mut buf)
                .map_err(|e| RotationError::io(path, e))?;
            if n == 0 {
                return Ok((good, false, rows));
            }
            line += 1;
            if buf.last() != Some(&b'\n') {
                // A torn last line: the write that was cut by the crash. Nothing after it.
                tracing::warn!(line, "ledger ends in a torn line; ignoring it");
                return Ok((good, true, rows));
            }
            if buf.iter().all(u8::is_ascii_whitespace) {
                good += n as u64;
                continue;
            }
            match parse(good, &buf) {
                Ok(row) => {
                    f(row, line)?;
                    good += n as u64;
                    rows += 1;
                }
                Err(e) => {
                    return Err(RotationError::ledger(
                        path,
                        Some(line),
                        format!("not a ledger row: {e}"),
                    ));
                }
            }
        }
    }

    /// Lines passed on, with their offsets.
    type Lines = Vec<(u64, Vec<u8>)>;

    /// What the serial line reader makes of the file from `start`: (offset, line) of each row it
    /// passes on and what it read, or the line its error names.
    fn serial_lines(path: &Path, start: u64) -> Result<(Lines, LinesRead), Option<u64>> {
        let mut file = File::open(path).unwrap();
        file.seek(std::io::SeekFrom::Start(start)).unwrap();
        let mut seen = Vec::new();
        let (good, torn, rows) = read_lines(
            BufReader::new(file),
            path,
            |offset, line| {
                if line.starts_with(b"!") {
                    Err("bad".to_string())
                } else {
                    Ok((start + offset, line.to_vec()))
                }
            },
            |row, _| {
                seen.push(row);
                Ok(())
            },
        )
        .map_err(|e| match e {
            RotationError::Ledger { line, .. } => line,
            other => panic!("{other}"),
        })?;
        Ok((seen, LinesRead { good, torn, rows }))
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

        /// The parallel reader, over blocks of any size (lines longer than a block included) and
        /// any number of threads, passes on the same lines at the same offsets as the serial one,
        /// skips blank lines and a torn tail alike, and names the same line in an error.
        #[test]
        fn the_block_reader_reads_what_the_line_reader_reads(
            lines in proptest::collection::vec("(!?[a-z]{0,40}|[ \t]{0,3})", 0..60),
            torn in "[a-z]{0,12}",
            skip in 0usize..60,
            block in 1usize..64,
            threads in 1usize..5,
        ) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("l.jsonl");
            let mut bytes = String::new();
            let mut start = 0;
            for (k, l) in lines.iter().enumerate() {
                if k == skip {
                    start = bytes.len() as u64;
                }
                bytes.push_str(l);
                bytes.push('\n');
            }
            if skip >= lines.len() {
                start = bytes.len() as u64;
            }
            bytes.push_str(&torn);
            std::fs::write(&path, &bytes).unwrap();
            let mut seen = Vec::new();
            let parallel = read_blocks(
                &path,
                File::open(&path).unwrap(),
                start,
                threads,
                block,
                |line| if line.starts_with(b"!") { Err("bad".to_string()) } else { Ok(line.to_vec()) },
                |offset, _, line| {
                    seen.push((offset, line));
                    Ok(())
                },
            )
            .map(|read| (seen, read))
            .map_err(|e| match e {
                RotationError::Ledger { line, .. } => line,
                other => panic!("{other}"),
            });
            prop_assert_eq!(parallel, serial_lines(&path, start));
        }
    }
}
