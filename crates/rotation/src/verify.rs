//! Did the devices really rotate? A 204 means Intune queued the action; `deviceActionResults` says
//! whether the device did it. Reads are packed in `$batch`, paced under the "any request" limit.
//!
//! Clock skew: an action counts as ours when it started no earlier than `SKEW` before our request
//! left (by our clock), so a service clock a little behind ours does not hide our own action.

use crate::device_facts::{second_source_of, second_source_request};
use crate::ledger::Evidence;
use crate::ledger::{DeviceState, Ledger, Row, VerifiedState, now_iso, parse_ms};
use crate::reads::{Read, read_all};
use crate::{Action, MatchRule, RateGate, Recognised, ResultMatcher, RotationError};
use graph_batch::{Quota, Request};
use graph_client::GraphClient;
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// How far the service's clock may be behind ours.
pub const SKEW: Duration = Duration::from_secs(120);

#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// Pace of the reads (Intune's "any request" limit is 2000/20s per app).
    pub rate: Quota,
    pub watch: bool,
    pub interval: Duration,
    pub timeout: Option<Duration>,
    /// Names of our action's results given for this run (`--result-name`), beside the ledger's.
    pub result_names: Vec<String>,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            rate: crate::reads::READ_RATE,
            watch: false,
            interval: Duration::from_secs(300),
            timeout: None,
            result_names: Vec::new(),
        }
    }
}

/// What a pass of `verify` counts a device under: the state Graph showed, or that it could not be
/// read this pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum VerifyBucket {
    State(VerifiedState),
    Unreadable,
}

impl VerifyBucket {
    /// The bucket's name in summaries and JSON: the state's key, or `unreadable`.
    pub fn key(self) -> &'static str {
        match self {
            VerifyBucket::State(s) => s.key(),
            VerifyBucket::Unreadable => "unreadable",
        }
    }

    /// Whether the device is known rotated: the only bucket a `verify` that succeeds holds.
    pub fn is_done(self) -> bool {
        self == VerifyBucket::State(VerifiedState::Done)
    }
}

impl std::fmt::Display for VerifyBucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.key())
    }
}

impl Serialize for VerifyBucket {
    /// As its key, so a map of counts is a JSON object keyed by the states' names.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.key())
    }
}

/// Devices per bucket.
pub type VerifyCounts = BTreeMap<VerifyBucket, usize>;

/// The names a result carried, where no rule knew them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ResultName {
    pub action_name: Option<String>,
    pub odata_type: Option<String>,
}

/// What one lookup found for a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub state: VerifiedState,
    pub started: Option<String>,
    /// The rule that recognised our result.
    pub rule: Option<MatchRule>,
    /// Results after our request that no rule knew, neither ours nor another known action.
    pub unknown: Vec<ResultName>,
    /// The device's Entra id, where the read returned one: the key to the second source.
    pub entra_id: Option<String>,
    /// What proved `state`.
    pub evidence: Option<Evidence>,
    /// The device's error code for a failed action, where the result has one (BitLocker's).
    pub error_code: Option<i64>,
}

impl Found {
    const NOT_FOUND: Found = Found {
        state: VerifiedState::NotFound,
        started: None,
        rule: None,
        unknown: Vec::new(),
        entra_id: None,
        evidence: None,
        error_code: None,
    };
}

/// The result of our action in a device's `deviceActionResults`: the latest one `matcher` takes
/// for ours that started after `sent_ms` less the skew margin. Results of that time that no rule
/// knows are kept, for the admin to see.
pub fn our_result(device: &Value, matcher: &ResultMatcher, sent_ms: u64) -> Found {
    let since = sent_ms.saturating_sub(SKEW.as_millis() as u64);
    let mut best: Option<(u64, &Value, MatchRule)> = None;
    let mut unknown: Vec<ResultName> = Vec::new();
    let results = device
        .get("deviceActionResults")
        .and_then(Value::as_array)
        .into_iter()
        .flatten();
    for r in results {
        let text = |k: &str| r.get(k).and_then(Value::as_str);
        let Some(ms) = text("startDateTime").and_then(parse_ms) else {
            continue;
        };
        if ms < since {
            continue;
        }
        let (name, odata_type) = (text("actionName"), text("@odata.type"));
        match matcher.recognise(name, odata_type) {
            Recognised::Ours(rule) => {
                if best.is_none_or(|(b, ..)| ms >= b) {
                    best = Some((ms, r, rule));
                }
            }
            Recognised::Other => {}
            Recognised::Unknown => {
                let n = ResultName {
                    action_name: name.map(str::to_string),
                    odata_type: odata_type.map(str::to_string),
                };
                if !unknown.contains(&n) {
                    unknown.push(n);
                }
            }
        }
    }
    match best {
        Some((_, r, rule)) => Found {
            entra_id: None,
            evidence: Some(Evidence::ActionResult),
            state: r
                .get("actionState")
                .and_then(Value::as_str)
                .map_or(VerifiedState::Unknown, VerifiedState::from_graph),
            started: r
                .get("startDateTime")
                .and_then(Value::as_str)
                .map(str::to_string),
            rule: Some(rule),
            unknown,
            error_code: r
                .get("errorCode")
                .and_then(Value::as_i64)
                .filter(|&c| c != 0),
        },
        None => Found {
            unknown,
            ..Found::NOT_FOUND
        },
    }
}

/// A name no rule knew, and on how many devices it was seen after our request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnrecognisedName {
    pub action_name: Option<String>,
    pub odata_type: Option<String>,
    pub devices: usize,
}

/// What `verify` found: devices per state, and the result names it could not place.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    pub counts: VerifyCounts,
    pub unrecognised: Vec<UnrecognisedName>,
    /// What could not be checked, once each (a second source the token may not read).
    pub notes: Vec<String>,
}

/// Looks up each `(device, sent_ms)`; devices whose read failed after retries, or was refused for
/// good (logged with Graph's error), are left out.
pub(crate) async fn lookup(
    client: &GraphClient,
    gate: &Arc<RateGate>,
    matcher: &ResultMatcher,
    items: &[(Uuid, u64)],
) -> Vec<(Uuid, Found)> {
    let requests = items
        .iter()
        .map(|&(id, sent)| {
            let url = format!(
                "/deviceManagement/managedDevices/{id}?$select=id,deviceActionResults,azureADDeviceId"
            );
            ((id, sent), Request::get(url))
        })
        .collect();
    read_all(client, gate, requests)
        .await
        .into_iter()
        .filter_map(|((id, sent), read)| match read {
            Read::Body(body) => {
                let mut found = our_result(&body, matcher, sent);
                found.entra_id = body
                    .get("azureADDeviceId")
                    .and_then(Value::as_str)
                    .filter(|e| !e.is_empty() && *e != crate::device_id::NO_ENTRA_DEVICE)
                    .map(str::to_string);
                Some((id, found))
            }
            Read::NotFound => Some((id, Found::NOT_FOUND)),
            Read::Refused { status, message } => {
                tracing::warn!(device = %id, status, error = %message, "verify: the device could not be read");
                None
            }
        })
        .collect()
}

/// `verify`: records each rotated device's action state, repeating with `watch` until every device
/// is done or failed, or the timeout passes. Returns the final counts and the names it could not
/// place.
pub async fn verify(
    client: &GraphClient,
    ledger_path: &Path,
    o: &VerifyOptions,
    progress: &(dyn Fn(&VerifyCounts) + Send + Sync),
) -> Result<VerifyReport, RotationError> {
    let (mut ledger, state) = Ledger::open(ledger_path)?;
    let matcher = state.header.result_matcher(&o.result_names);
    let action = state.header.action;
    let mut notes: Vec<String> = Vec::new();
    let gate = Arc::new(RateGate::new(o.rate, 0.02, 20));
    // Compact per device, by plan slot: a million devices cost a few MB beside the ledger state.
    let mut latest: Vec<Option<VerifiedState>> = vec![None; state.ids().len()];
    let mut unknown: HashMap<u32, Vec<ResultName>> = HashMap::new();
    let mut open: Vec<u32> = (0..state.ids().len() as u32)
        .filter(|&i| state.state(i) == DeviceState::Rotated)
        .collect();
    let started = Instant::now();
    loop {
        // A chunk at a time, so the answers held at once stay bounded.
        for chunk in open.chunks(VERIFY_CHUNK) {
            let items: Vec<(Uuid, u64)> = chunk
                .iter()
                .map(|&i| (state.ids()[i as usize], state.sent_at_ms(i)))
                .collect();
            let mut found = lookup(client, &gate, &matcher, &items).await;
            confirm(client, &gate, action, &items, &mut found, &mut notes).await;
            for (id, f) in found {
                let slot = state.devices().slot(&id).expect("a device of this ledger");
                ledger.append(&Row::Verified {
                    id,
                    state: f.state,
                    action_started_at: f.started,
                    matched_by: f.rule,
                    evidence: f.evidence,
                    error_code: f.error_code,
                    at: now_iso(),
                })?;
                latest[slot as usize] = Some(f.state);
                if f.unknown.is_empty() {
                    unknown.remove(&slot);
                } else {
                    unknown.insert(slot, f.unknown);
                }
            }
            ledger.flush()?;
        }
        ledger.sync()?;
        let mut counts: VerifyCounts = BTreeMap::new();
        for s in latest.iter().flatten() {
            *counts.entry(VerifyBucket::State(*s)).or_default() += 1;
        }
        let unread = open
            .iter()
            .filter(|&&i| latest[i as usize].is_none())
            .count();
        if unread > 0 {
            counts.insert(VerifyBucket::Unreadable, unread);
        }
        progress(&counts);
        open.retain(|&i| !latest[i as usize].is_some_and(|s| s.is_final()));
        let out_of_time = o
            .timeout
            .is_some_and(|t| started.elapsed() + o.interval > t);
        if !o.watch || open.is_empty() || out_of_time {
            // Synced already: a checkpoint that cannot be made costs only a slower next open.
            let _ = ledger.checkpoint();
            return Ok(VerifyReport {
                counts,
                unrecognised: tally(&unknown),
                notes,
            });
        }
        tokio::time::sleep(o.interval).await;
    }
}

/// BitLocker and LAPS: a `done` is confirmed by the secret's own record in Entra (a recovery key
/// created, a backup made, after our request), or reported `done-unconfirmed` when that record did
/// not move. Where the record cannot be read, `done` stands on the action result, with a note.
async fn confirm(
    client: &GraphClient,
    gate: &Arc<RateGate>,
    action: Action,
    items: &[(Uuid, u64)],
    found: &mut [(Uuid, Found)],
    notes: &mut Vec<String>,
) {
    let evidence = match action {
        Action::BitLocker => Evidence::RecoveryKey,
        Action::Laps => Evidence::LapsBackup,
        _ => return,
    };
    let sent: HashMap<Uuid, u64> = items.iter().copied().collect();
    let requests: Vec<(usize, Request)> = found
        .iter()
        .enumerate()
        .filter(|(_, (_, f))| f.state == VerifiedState::Done)
        .filter_map(|(n, (_, f))| {
            f.entra_id
                .as_deref()
                .map(|e| (n, second_source_request(action, e)))
        })
        .collect();
    for (n, read) in read_all(client, gate, requests).await {
        let (id, f) = &mut found[n];
        let since = sent[id].saturating_sub(SKEW.as_millis() as u64);
        let changed = match read {
            Read::Body(body) => second_source_of(action, &body)
                .0
                .and_then(|at| parse_ms(&at))
                .is_some_and(|ms| ms >= since),
            Read::NotFound => false,
            Read::Refused { status, message } => {
                let note = format!(
                    "the {} could not be read (HTTP {status}: {message}); done is taken from deviceActionResults alone ({} reads them)",
                    evidence.key(),
                    if action == Action::BitLocker {
                        crate::Permission::BitLockerKeyReadBasic
                    } else {
                        crate::Permission::LocalCredentialReadBasic
                    }
                );
                if !notes.contains(&note) {
                    notes.push(note);
                }
                continue;
            }
        };
        if changed {
            f.evidence = Some(evidence);
        } else {
            f.state = VerifiedState::DoneUnconfirmed;
        }
    }
}

/// Devices looked up per round of `verify`: what is held in memory at once.
const VERIFY_CHUNK: usize = 10_000;

/// Devices per unrecognised name, most seen first.
fn tally(unknown: &HashMap<u32, Vec<ResultName>>) -> Vec<UnrecognisedName> {
    let mut per: BTreeMap<&ResultName, usize> = BTreeMap::new();
    for n in unknown.values().flatten() {
        *per.entry(n).or_default() += 1;
    }
    let mut out: Vec<UnrecognisedName> = per
        .into_iter()
        .map(|(n, devices)| UnrecognisedName {
            action_name: n.action_name.clone(),
            odata_type: n.odata_type.clone(),
            devices,
        })
        .collect();
    out.sort_by_key(|n| std::cmp::Reverse(n.devices));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Action;
    use serde_json::json;

    fn device(results: Value) -> Value {
        json!({"id": "x", "deviceActionResults": results})
    }

    #[test]
    fn counts_are_a_json_object_keyed_by_the_states_names() {
        let counts: VerifyCounts = [
            (VerifyBucket::State(VerifiedState::Done), 3),
            (VerifyBucket::Unreadable, 1),
        ]
        .into();
        assert_eq!(
            serde_json::to_value(&counts).unwrap(),
            json!({"done": 3, "unreadable": 1})
        );
    }

    #[test]
    fn only_done_is_done() {
        assert!(VerifyBucket::State(VerifiedState::Done).is_done());
        assert!(!VerifyBucket::Unreadable.is_done());
        assert!(!VerifyBucket::State(VerifiedState::DoneUnconfirmed).is_done());
    }

    fn matcher(action: Action) -> ResultMatcher {
        ResultMatcher::new(action, &[])
    }

    fn sent() -> u64 {
        parse_ms("2026-11-27T10:00:00Z").unwrap()
    }

    #[test]
    fn the_latest_result_of_our_action_after_our_request_counts() {
        let d = device(json!([
            {"actionName": "rotateFileVaultKey", "actionState": "done", "startDateTime": "2026-11-20T10:00:00Z"},
            {"actionName": "ROTATEFILEVAULTKEY", "actionState": "pending", "startDateTime": "2026-11-27T09:59:30Z"},
            {"actionName": "rotateBitLockerKeys", "actionState": "done", "startDateTime": "2026-11-27T10:05:00Z"},
        ]));
        assert_eq!(
            our_result(&d, &matcher(Action::FileVault), sent()),
            Found {
                state: VerifiedState::Pending,
                started: Some("2026-11-27T09:59:30Z".into()),
                rule: Some(MatchRule::GraphName),
                unknown: Vec::new(),
                entra_id: None,
                evidence: Some(Evidence::ActionResult),
                error_code: None,
            },
            "within the skew margin, case ignored"
        );
        assert_eq!(
            our_result(&d, &matcher(Action::RecoveryLock), sent()).state,
            VerifiedState::NotFound
        );
        assert_eq!(
            our_result(&device(json!([])), &matcher(Action::FileVault), sent()).state,
            VerifiedState::NotFound
        );
        let old_only = device(
            json!([{"actionName": "rotateFileVaultKey", "actionState": "done", "startDateTime": "2026-11-20T10:00:00Z"}]),
        );
        assert_eq!(
            our_result(&old_only, &matcher(Action::FileVault), sent()).state,
            VerifiedState::NotFound,
            "an earlier rotation is not ours"
        );
    }

    #[test]
    fn each_naming_style_is_recognised_by_its_rule() {
        let at = "2026-11-27T10:00:05Z";
        for (result, rule) in [
            (
                json!({"actionName": "RotateFileVaultKey"}),
                MatchRule::GraphName,
            ),
            (
                json!({"actionName": "FileVaultKeyRotation"}),
                MatchRule::Keyword,
            ),
            (
                json!({"actionName": "rotateFileVaultKeys"}),
                MatchRule::Alias,
            ),
            (
                json!({"@odata.type": "#microsoft.graph.rotateFileVaultKeyDeviceActionResult", "actionName": "deviceAction"}),
                MatchRule::ODataType,
            ),
        ] {
            let mut r = result.clone();
            r["actionState"] = json!("done");
            r["startDateTime"] = json!(at);
            let f = our_result(&device(json!([r])), &matcher(Action::FileVault), sent());
            assert_eq!(
                (f.state, f.rule),
                (VerifiedState::Done, Some(rule)),
                "{result}"
            );
        }
    }

    #[test]
    fn unrelated_results_are_never_ours_and_only_unknown_names_are_reported() {
        let d = device(json!([
            {"actionName": "locateDevice", "actionState": "done", "startDateTime": "2026-11-27T10:00:05Z"},
            {"actionName": "getFileVaultKey", "actionState": "done", "startDateTime": "2026-11-27T10:00:05Z"},
            {"actionName": "deviceAction", "@odata.type": "#microsoft.graph.locateDeviceActionResult", "actionState": "done", "startDateTime": "2026-11-27T10:00:05Z"},
            {"actionName": "FVKR-42", "actionState": "done", "startDateTime": "2026-11-27T10:00:06Z"},
        ]));
        let f = our_result(&d, &matcher(Action::FileVault), sent());
        assert_eq!(f.state, VerifiedState::NotFound);
        assert_eq!(
            f.unknown,
            [ResultName {
                action_name: Some("FVKR-42".into()),
                odata_type: None
            }]
        );
        let with_alias = ResultMatcher::new(Action::FileVault, &["fvkr-42".into()]);
        let f = our_result(&d, &with_alias, sent());
        assert_eq!(
            (f.state, f.rule),
            (VerifiedState::Done, Some(MatchRule::Alias))
        );
    }
}
