//! `report`: what a run did, for people who will not read a ledger. The figures are gathered from
//! the ledger in two streaming passes and compact per-device arrays (a few bytes a device), never
//! one full row per device; `html.rs` renders them as one self-contained page.

mod html;
mod notice;

pub use html::{Page, render};
pub use notice::{CARD_LIMIT, Card, Notice, Tone};

use crate::ledger::{DeviceState, Devices, Folded, Outcome, Row, VerifiedState, parse_ms};
use crate::{RetryCause, RotationError, RunHeader, ledger_rows};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use uuid::Uuid;

/// The width of the timeline's windows when the ledger does not say: Intune's own 20 s.
pub const WINDOW_MS: u64 = 20_000;
/// The device table shows every device up to this many; above, the failures and a sample.
pub const TABLE_LIMIT: usize = 10_000;
/// Devices of the sample shown beside the failures of a large run.
const SAMPLE: usize = 1_000;

/// One 20 s window of the timeline.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Window {
    /// Start, Unix milliseconds.
    pub start_ms: u64,
    pub sent: u64,
    pub throttled: u64,
    pub server_errors: u64,
    pub network_errors: u64,
    /// Round trips of answers received in the window (milliseconds): count, sum and max.
    pub rtt_count: u64,
    pub rtt_sum_ms: u64,
    pub rtt_max_ms: u64,
}

/// Final failures of one kind.
#[derive(Debug, Clone, Serialize)]
pub struct FailureGroup {
    pub code: String,
    pub count: u64,
    pub sample_message: String,
    pub request_ids: Vec<String>,
    pub advice: String,
}

/// A read of a device's secret and what the run made of it: the "views → rotations" table.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ViewRow {
    pub id: Uuid,
    pub name: String,
    pub viewed_at: String,
    pub viewed_by: String,
    /// The device's state in the run (rotated, skipped, …), with the verified state where known.
    pub answer: String,
}

/// A row of the device table.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceRow {
    pub id: Uuid,
    pub name: String,
    pub serial: String,
    pub outcome: String,
    pub verified: String,
    pub attempts: u32,
    pub last_error: String,
}

/// A `resume` (or other session) that continued the run.
#[derive(Debug, Clone, Serialize)]
pub struct ResumePoint {
    pub at: String,
    pub command: String,
    pub in_doubt: u64,
    pub policy: String,
}

/// Everything the page shows of one ledger.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub ledger: PathBuf,
    pub rows: u64,
    pub header: RunHeader,
    /// The tenant's name where a run directory gives one.
    pub tenant_name: Option<String>,
    pub started: Option<String>,
    pub finished: Option<String>,
    pub devices: u64,
    /// Final states: rotated, failed, skipped, pending, in_doubt.
    pub states: BTreeMap<String, u64>,
    pub skip_reasons: BTreeMap<String, u64>,
    /// The latest verified state of each verified device, by state.
    pub verified: BTreeMap<String, u64>,
    pub windows: Vec<Window>,
    /// The width of a window: the window of the run's quota (20 s at Intune's 200/20s).
    pub window_ms: u64,
    /// The quota per window.
    pub quota_per_window: f64,
    pub resumes: Vec<ResumePoint>,
    pub failures: Vec<FailureGroup>,
    /// Retries by what caused them (429, 503, network …): where the errors came from.
    pub retry_causes: BTreeMap<RetryCause, u64>,
    /// Devices whose action Graph accepted but which reported it failed, by the device's error
    /// code (or "no code given"): the failures an admin must go to the device for.
    pub on_device_failures: BTreeMap<String, u64>,
    pub table: Vec<DeviceRow>,
    /// Reads of the devices' secrets, in a run over views (the first [`TABLE_LIMIT`]), and how
    /// many there were.
    pub views: Vec<ViewRow>,
    pub views_total: u64,
    /// The table holds every device (else: the failures and a sample).
    pub table_complete: bool,
}

/// What to do about a failure, by Graph's code.
fn advice(code: &str, message: &str) -> String {
    let m = message.to_ascii_lowercase();
    match code {
        "ResourceNotFound" | "NotFound" => "the device is no longer in Intune (retired or deleted): remove it from the source".into(),
        "Forbidden" | "Authorization_RequestDenied" => "the app lacks the action's permission in this tenant: grant it and admin consent, then `resume`".into(),
        "RetriesExhausted" => "transient errors outlasted the attempts: `resume` once the service recovers".into(),
        "BadRequest" if m.contains("not supported") => "the device's platform does not support this action: leave it out (the plan's eligibility rules skip such devices)".into(),
        _ => "see the message; Microsoft support asks for the request id and the date".into(),
    }
}

fn verified_name(v: VerifiedState) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{v:?}"))
}

/// What the report keeps of the devices beside the ledger's fold, by the same slot: each one's
/// last verified state (a byte), and the few error codes Graph gave with them.
#[derive(Default)]
struct Seen {
    verified: Vec<Option<VerifiedState>>,
    codes: HashMap<u32, i64>,
}

impl Seen {
    fn verified(&self, i: u32) -> Option<VerifiedState> {
        self.verified[i as usize]
    }

    fn code(&self, i: u32) -> Option<i64> {
        self.codes.get(&i).copied()
    }
}

/// Accepted by Graph, then reported failed by the device.
fn failed_on_device(state: DeviceState, verified: Option<VerifiedState>) -> bool {
    state == DeviceState::Rotated && verified == Some(VerifiedState::Failed)
}

/// An error code as Graph gives it, with its HRESULT form for a negative one.
fn device_code(code: Option<i64>) -> String {
    match code {
        Some(c) if c < 0 => format!("{c} (0x{:08X})", c as i32 as u32),
        Some(c) => c.to_string(),
        None => NO_CODE.to_string(),
    }
}

/// The bucket of on-device failures whose result carries no error code (all but BitLocker's).
pub const NO_CODE: &str = "no code given";

/// Reads `ledger` into a report, in bounded memory.
pub fn build(ledger: &Path) -> Result<Report, RotationError> {
    let mut header: Option<RunHeader> = None;
    let mut devices = Devices::default();
    let mut seen = Seen::default();
    let mut first_at: Option<String> = None;
    let mut last_at: Option<String> = None;
    let mut windows: BTreeMap<u64, Window> = BTreeMap::new();
    let mut skip_reasons: BTreeMap<String, u64> = BTreeMap::new();
    let mut failures: BTreeMap<String, FailureGroup> = BTreeMap::new();
    let mut retry_causes: BTreeMap<RetryCause, u64> = BTreeMap::new();
    let mut resumes = Vec::new();
    let mut views: Vec<(u32, ViewRow)> = Vec::new();
    let mut views_total = 0u64;
    let mut rows = 0u64;
    let mut window_ms = WINDOW_MS;
    ledger_rows(ledger, |row| {
        let window_of = |ms: u64| ms - ms % window_ms;
        rows += 1;
        let at = row_at(&row).map(str::to_string);
        if let Some(at) = &at {
            first_at.get_or_insert_with(|| at.clone());
            last_at = Some(at.clone());
        }
        // The one fold first: what the row did to its device, if it is one of the ledger's.
        let sending = row.sending();
        let folded = row.device().map_or(Folded::Unplanned, |id| {
            devices.fold(id, row.step(), sending)
        });
        if let Folded::New(_) = folded {
            seen.verified.push(None);
        }
        match &row {
            Row::Run(h) => {
                header.get_or_insert_with(|| h.clone());
                window_ms = (h.rate.window.as_millis() as u64).max(1000);
            }
            Row::Planned {
                id,
                name,
                viewed_at,
                viewed_by,
                ..
            } => {
                if let (Folded::New(i), Some(at)) = (folded, viewed_at) {
                    views_total += 1;
                    if views.len() < TABLE_LIMIT {
                        views.push((
                            i,
                            ViewRow {
                                id: *id,
                                name: name.clone().unwrap_or_default(),
                                viewed_at: at.clone(),
                                viewed_by: viewed_by.clone().unwrap_or_default(),
                                answer: String::new(),
                            },
                        ));
                    }
                }
            }
            Row::Skipped { reason, .. } => {
                // A device counts once under its reason, however often it was skipped.
                let first = match folded {
                    Folded::New(_) => true,
                    Folded::Moved { before, .. } => before != DeviceState::Skipped,
                    Folded::Replanned(_) | Folded::Unplanned => false,
                };
                if first {
                    let kind = crate::SkipReason::code_of(reason);
                    *skip_reasons.entry(kind).or_default() += 1;
                }
            }
            Row::Sent { .. } => {
                let ms = sending.map_or(0, |s| s.at_ms);
                let w = windows.entry(window_of(ms)).or_default();
                w.start_ms = window_of(ms);
                w.sent += 1;
            }
            Row::Outcome {
                result,
                status,
                cause,
                code,
                message,
                request_id,
                at,
                ..
            } => {
                let ms = parse_ms(at).unwrap_or(0);
                let w = windows.entry(window_of(ms)).or_default();
                w.start_ms = window_of(ms);
                // The answer to a request that left and was not answered yet: its round trip.
                if let Folded::Moved {
                    slot,
                    before: DeviceState::InDoubt,
                } = folded
                    && let sent_ms = devices.sent_at_ms(slot)
                    && sent_ms > 0
                    && status.is_some()
                {
                    let rtt = ms.saturating_sub(sent_ms);
                    w.rtt_count += 1;
                    w.rtt_sum_ms += rtt;
                    w.rtt_max_ms = w.rtt_max_ms.max(rtt);
                }
                // Rows of earlier releases carry no cause: their status, or their words, say it.
                let why = cause.or_else(|| RetryCause::of_earlier_row(*status, message.as_deref()));
                match why {
                    Some(RetryCause::Throttled) => w.throttled += 1,
                    Some(RetryCause::ServerError) => w.server_errors += 1,
                    Some(RetryCause::AnswerLost) => w.network_errors += 1,
                    _ => {}
                }
                if *result == Outcome::Retry {
                    *retry_causes
                        .entry(why.unwrap_or(RetryCause::Other))
                        .or_default() += 1;
                }
                if matches!(result, Outcome::Failed | Outcome::Abandoned) {
                    let code = code
                        .clone()
                        .filter(|c| !c.is_empty())
                        .or_else(|| status.map(|s| format!("HTTP {s}")))
                        .unwrap_or_else(|| "no code".into());
                    let message = message.clone().unwrap_or_default();
                    let g = failures
                        .entry(code.clone())
                        .or_insert_with(|| FailureGroup {
                            advice: advice(&code, &message),
                            code: code.clone(),
                            count: 0,
                            sample_message: message.clone(),
                            request_ids: Vec::new(),
                        });
                    g.count += 1;
                    if let Some(r) = request_id
                        && g.request_ids.len() < 3
                    {
                        g.request_ids.push(r.clone());
                    }
                }
            }
            Row::Verified {
                state, error_code, ..
            } => {
                if let Some(i) = folded.slot() {
                    seen.verified[i as usize] = Some(*state);
                    match error_code {
                        Some(c) => seen.codes.insert(i, *c),
                        None => seen.codes.remove(&i),
                    };
                }
            }
            Row::Session {
                at,
                command,
                in_doubt,
                in_doubt_policy,
            } => resumes.push(ResumePoint {
                at: at.clone(),
                command: command.clone(),
                in_doubt: *in_doubt,
                policy: in_doubt_policy.clone(),
            }),
            Row::PlanDone {
                skip_reasons: reasons,
                ..
            } => {
                if !reasons.is_empty() {
                    skip_reasons = reasons.clone();
                }
            }
        }
    })?;
    let header = header.ok_or_else(|| RotationError::ledger(ledger, None, "no run header"))?;
    let mut states: BTreeMap<String, u64> = BTreeMap::new();
    let mut verified: BTreeMap<String, u64> = BTreeMap::new();
    let mut on_device: BTreeMap<String, u64> = BTreeMap::new();
    for (i, state) in (0u32..).zip(devices.states()) {
        if failed_on_device(state, seen.verified(i)) {
            *on_device.entry(device_code(seen.code(i))).or_default() += 1;
        }
        *states.entry(state.name().to_string()).or_default() += 1;
        if let Some(v) = seen.verified(i) {
            *verified.entry(verified_name(v)).or_default() += 1;
        }
    }
    for name in ["rotated", "failed", "skipped", "pending", "in_doubt"] {
        states.entry(name.to_string()).or_default();
    }
    // The windows in between, empty ones included, so the chart's time axis is even.
    let mut timeline = Vec::new();
    if let (Some(&first), Some(&last)) = (windows.keys().next(), windows.keys().next_back()) {
        let mut t = first;
        while t <= last {
            let mut w = windows.remove(&t).unwrap_or_default();
            w.start_ms = t;
            timeline.push(w);
            t += window_ms;
        }
    }
    let table_complete = devices.len() <= TABLE_LIMIT;
    let shown: Vec<bool> = if table_complete {
        vec![true; devices.len()]
    } else {
        let mut sample = 0;
        devices
            .states()
            .zip(&seen.verified)
            .map(|(state, &verified)| {
                if state == DeviceState::Failed || failed_on_device(state, verified) {
                    true
                } else if sample < SAMPLE {
                    sample += 1;
                    true
                } else {
                    false
                }
            })
            .collect()
    };
    let table = table_rows(ledger, &devices, &seen, &shown)?;
    let views = views
        .into_iter()
        .map(|(i, mut v)| {
            let state = devices.state(i);
            v.answer = match seen.verified(i) {
                Some(verified) => {
                    format!("{} (verified {})", state.name(), verified_name(verified))
                }
                None => state.name().to_string(),
            };
            v
        })
        .collect();
    let q = header.rate;
    let quota_per_window =
        f64::from(q.count) * window_ms as f64 / q.window.as_millis().max(1) as f64;
    Ok(Report {
        ledger: ledger.to_path_buf(),
        rows,
        header,
        tenant_name: None,
        started: first_at,
        finished: last_at,
        devices: devices.len() as u64,
        states,
        skip_reasons,
        verified,
        windows: timeline,
        window_ms,
        quota_per_window,
        resumes,
        failures: {
            let mut f: Vec<FailureGroup> = failures.into_values().collect();
            f.sort_by_key(|g| std::cmp::Reverse(g.count));
            f
        },
        retry_causes,
        on_device_failures: on_device,
        table,
        table_complete,
        views,
        views_total,
    })
}

/// The second pass: names, serials and last errors of the devices the table shows, up to
/// `TABLE_LIMIT` + `SAMPLE` of them at most, failures first.
fn table_rows(
    ledger: &Path,
    devices: &Devices,
    seen: &Seen,
    shown: &[bool],
) -> Result<Vec<DeviceRow>, RotationError> {
    let mut rows: BTreeMap<u32, DeviceRow> = BTreeMap::new();
    let cap = TABLE_LIMIT + SAMPLE;
    ledger_rows(ledger, |row| {
        let (id, name, serial, error) = match &row {
            Row::Planned {
                id, name, serial, ..
            } => (id, name.clone(), serial.clone(), None),
            Row::Skipped { id, reason } => (id, None, None, Some(reason.clone())),
            Row::Outcome {
                id,
                result,
                code,
                message,
                status,
                ..
            } if *result != Outcome::Rotated => {
                let what = [
                    status.map(|s| s.to_string()),
                    code.clone().filter(|c| !c.is_empty()),
                    message.clone(),
                ]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" ");
                (id, None, None, Some(what))
            }
            _ => return,
        };
        let Some(i) = devices.slot(id) else { return };
        if !shown[i as usize] || (!rows.contains_key(&i) && rows.len() >= cap) {
            return;
        }
        let r = rows.entry(i).or_insert_with(|| DeviceRow {
            id: *id,
            name: String::new(),
            serial: String::new(),
            outcome: devices.state(i).name().to_string(),
            verified: seen.verified(i).map(verified_name).unwrap_or_default(),
            attempts: devices.attempts(i),
            last_error: String::new(),
        });
        if let Some(n) = name {
            r.name = n;
        }
        if let Some(n) = serial {
            r.serial = n;
        }
        if let Some(e) = error {
            r.last_error = e;
        }
    })?;
    let mut out: Vec<DeviceRow> = rows.into_values().collect();
    // Failures on the device first, then the others, then in plan order.
    out.sort_by_key(|r| match (r.outcome.as_str(), r.verified.as_str()) {
        ("rotated", "failed") => 0,
        ("failed", _) => 1,
        _ => 2,
    });
    Ok(out)
}

fn row_at(row: &Row) -> Option<&str> {
    match row {
        Row::Run(h) => Some(&h.created_at),
        Row::PlanDone { at, .. }
        | Row::Sent { at, .. }
        | Row::Outcome { at, .. }
        | Row::Verified { at, .. }
        | Row::Session { at, .. } => Some(at),
        _ => None,
    }
}

/// A run directory's report: one report per tenant ledger, and the tenants that have none.
#[derive(Debug, Clone)]
pub struct FleetReport {
    pub dir: PathBuf,
    pub tenants: Vec<(crate::TenantRecord, Option<Report>)>,
}

/// Reads every tenant's ledger of a run directory.
pub fn build_fleet(dir: &Path) -> Result<FleetReport, RotationError> {
    let run = crate::RunDir::open(dir)?;
    let mut tenants = Vec::new();
    for t in &run.manifest().tenants {
        let ledger = run.ledger(t.tenant.tenant_id);
        let report = if ledger.exists() {
            let mut r = build(&ledger)?;
            r.tenant_name = Some(t.tenant.name.clone());
            Some(r)
        } else {
            None
        };
        tenants.push((t.clone(), report));
    }
    Ok(FleetReport {
        dir: dir.to_path_buf(),
        tenants,
    })
}

/// The figures `report --format json` prints: the page's numbers without its tables.
pub fn summary_json(r: &Report) -> serde_json::Value {
    serde_json::json!({
        "ledger": r.ledger,
        "rows": r.rows,
        "tenant": r.header.tenant,
        "tenant_name": r.tenant_name,
        "action": r.header.action.to_string(),
        "source": r.header.source,
        "signed_in_as": r.header.signed_in_as,
        "started": r.started,
        "finished": r.finished,
        "devices": r.devices,
        "states": r.states,
        "skip_reasons": r.skip_reasons,
        "verified": r.verified,
        "failures": r.failures,
        "retry_causes": r.retry_causes.iter().map(|(c, n)| (c.label(), n)).collect::<BTreeMap<_, _>>(),
        "on_device_failures": r.on_device_failures,
        "resumes": r.resumes,
        "windows": r.windows.len(),
        "window_seconds": r.window_ms as f64 / 1000.0,
        "quota_per_window": r.quota_per_window,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Action, Ledger};

    fn row(json: serde_json::Value) -> Row {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn retries_are_counted_by_their_recorded_cause_and_earlier_rows_by_their_words() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.jsonl");
        let header = RunHeader::new("t", Action::FileVault, "test", "200/20s".parse().unwrap());
        let mut l = Ledger::create(&path, &header).unwrap();
        let id = "6d1f0000-0000-4000-8000-000000000001";
        let at = "2026-12-03T07:00:00Z";
        for r in [
            serde_json::json!({"type": "planned", "id": id}),
            serde_json::json!({"type": "sent", "id": id, "attempt": 1, "at": at}),
            // Today's row says why.
            serde_json::json!({"type": "outcome", "id": id, "result": "retry", "cause": "answer-lost", "message": "sending again", "at": at}),
            serde_json::json!({"type": "sent", "id": id, "attempt": 2, "at": at}),
            // An earlier release's row says it in words only.
            serde_json::json!({"type": "outcome", "id": id, "result": "retry", "message": "the answer was lost; sending again", "at": at}),
            serde_json::json!({"type": "sent", "id": id, "attempt": 3, "at": at}),
            serde_json::json!({"type": "outcome", "id": id, "result": "retry", "status": 429, "at": at}),
            serde_json::json!({"type": "sent", "id": id, "attempt": 4, "at": at}),
            serde_json::json!({"type": "outcome", "id": id, "result": "rotated", "status": 204, "at": at}),
        ] {
            l.append(&row(r)).unwrap();
        }
        l.sync().unwrap();
        drop(l);
        let r = build(&path).unwrap();
        assert_eq!(r.retry_causes.get(&RetryCause::AnswerLost), Some(&2));
        assert_eq!(r.retry_causes.get(&RetryCause::Throttled), Some(&1));
        let network: u64 = r.windows.iter().map(|w| w.network_errors).sum();
        assert_eq!(network, 2);
    }
}
