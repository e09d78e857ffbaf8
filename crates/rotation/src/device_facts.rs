//! What the tenant says about each device of a plan beyond the device listing: its last rotation
//! and any action still pending (from `deviceActionResults`), FileVault's escrow state (the
//! encryption report), BitLocker recovery keys and Windows LAPS backups. Read before the plan is
//! written, in listings or `$batch`es paced by a reads gate: never a plain GET per device.

use crate::Permission;
use crate::device_id::{NO_ENTRA_DEVICE, parse_id};
use crate::facts::DeviceFacts;
use crate::ledger::parse_ms;
use crate::reads::{Read, read_all};
use crate::results_read::{ResultsRead, ResultsReason, ResultsSource, SendTimeRules};
use crate::skip_reason::SkipReason;
use crate::{
    Action, DeviceList, Policy, RateGate, Recognised, ResultMatcher, RotationError, VerifiedState,
};
use futures::StreamExt;
use graph_batch::Request;
use graph_client::GraphClient;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// What a run asks to know before planning.
#[derive(Debug, Clone, Default)]
pub struct FactsWanted {
    /// `--skip-rotated-within`: how recent the last rotation is.
    pub rotated_within: Option<Duration>,
    /// `--skip-pending`: whether one of our actions is still pending.
    pub skip_pending: bool,
    /// `--result-name`: further names of our results.
    pub result_names: Vec<String>,
    /// `--allow-partial-source`: a listing that fails part-way leaves its check undone, with a
    /// note, instead of stopping the run.
    pub allow_partial: bool,
    /// The read quota the plan's reads are paced under; `None`: the service's 2,000 per 20 s.
    pub read_rate: Option<graph_batch::Quota>,
    /// When the devices' action results are read where the listing leaves them out.
    pub timing: ResultsTiming,
    /// The last rotation is read whatever `rotated_within` says: a run over views compares it
    /// with each read.
    pub last_rotation: bool,
}

/// When devices' action results are read one by one, where the listing cannot be trusted with
/// them (graph-facts §11).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResultsTiming {
    /// Before the plan is written, so the plan shows every skip: what a dry run wants.
    #[default]
    BeforePlan,
    /// Just before each device is sent, beside the sending: what a run that sends wants, since
    /// the reads' quota is apart from the actions' and they then cost almost no time.
    BeforeSending,
}

/// Facts per planned device, and what the plan should say about how they were read.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub devices: HashMap<Uuid, DeviceFacts>,
    pub notes: Vec<String>,
    /// How devices' action results were read, where they were.
    pub results_read: Option<ResultsRead>,
}

/// Entra keeps at most 200 BitLocker recovery keys per device; warn before a run nears the cap.
pub const RECOVERY_KEY_WARNING: usize = 190;

/// Reads what `wanted` needs for the devices of `list` that `policy`'s rules of the source alone
/// leave to be sent.
pub async fn read_facts(
    client: &GraphClient,
    list: &DeviceList,
    policy: &Policy,
    wanted: &FactsWanted,
) -> Result<Facts, RotationError> {
    let action = policy.action;
    let mut facts = Facts::default();
    let mut entra: Vec<(Uuid, String)> = Vec::new();
    let wants_age = wanted.rotated_within.is_some() || wanted.last_rotation;
    let reads_second_source = wants_age && matches!(action, Action::BitLocker | Action::Laps);
    list.for_each(|d| {
        let on_platform =
            d.os.as_deref()
                .is_none_or(|os| os.eq_ignore_ascii_case(action.platform()));
        // A device the source alone rules out is skipped for that: none of its records is read.
        let id = parse_id(&d.raw_id).filter(|id| policy.listing_reason(id, &d).is_none());
        if let (Some(id), true) = (id, on_platform) {
            let known = match d.entra_id.as_deref().map(str::trim) {
                Some(e) if !e.is_empty() && !e.eq_ignore_ascii_case(NO_ENTRA_DEVICE) => {
                    entra.push((id, e.to_ascii_lowercase()));
                    true
                }
                _ => false,
            };
            // Without an Entra id, a key or backup cannot be looked up.
            let f = DeviceFacts {
                age_unknown: reads_second_source && !known,
                ..DeviceFacts::default()
            };
            facts.devices.insert(id, f);
        }
        Ok(())
    })?;
    if facts.devices.is_empty() {
        return Ok(facts);
    }
    let from_results = wanted.skip_pending
        || (wants_age && matches!(action, Action::FileVault | Action::RecoveryLock));
    // One gate for every read of the plan: they share the service's window.
    let gate = crate::reads::plan_reads_gate(wanted.read_rate);
    // The listings first, each page told to the gate, so the GETs after them fit the window
    // that the pages already took part of.
    if action == Action::FileVault {
        encryption_report(client, wanted.allow_partial, &gate, &mut facts).await?;
    }
    if from_results {
        action_results(client, policy, wanted, &gate, &mut facts).await?;
    }
    if reads_second_source {
        second_source(client, action, &entra, &gate, &mut facts).await?;
    }
    Ok(facts)
}

/// A listing page just read counts in the service's window as one request: the plan's read gate
/// is told, so its `$batch`es of GETs do not overfill the window the pages took part of.
fn counted(gate: &RateGate) {
    gate.assume_sent(vec![(std::time::Instant::now(), 1)]);
}

/// Devices read by GET to test whether the listing carries their results: one `$batch`.
pub const RESULTS_SAMPLE: usize = 20;

/// Devices' `deviceActionResults`: one listing of the platform, tested against a sample of
/// single-device GETs; where the listing leaves results out (or shows none at all), one GET per
/// device in paced `$batch`es (graph-facts §11).
async fn action_results(
    client: &GraphClient,
    policy: &Policy,
    wanted: &FactsWanted,
    gate: &Arc<RateGate>,
    facts: &mut Facts,
) -> Result<(), RotationError> {
    let action = policy.action;
    let matcher = ResultMatcher::new(action, &wanted.result_names);
    let Some(listed) = results_listing(client, action, wanted, &matcher, gate, facts).await? else {
        return Ok(());
    };
    // A Mac the encryption report rules out is skipped for that, whatever its results say.
    let mut ids: Vec<Uuid> = facts
        .devices
        .iter()
        .filter(|(_, f)| policy.escrow_reason(f).is_none())
        .map(|(id, _)| *id)
        .collect();
    // The sample: devices the listing showed nothing for first, since those are what a listing
    // that leaves results out gets wrong.
    ids.sort_by_cached_key(|id| (listed.get(id).copied().unwrap_or(0) > 0, *id));
    let sample: Vec<Uuid> = ids.iter().take(RESULTS_SAMPLE).copied().collect();
    let mut read = ResultsRead {
        source: ResultsSource::Listing,
        reason: ResultsReason::SampleAgreed,
        sampled: sample.len(),
        read: 0,
        unread: 0,
        before_sending: None,
    };
    let omitted = results_by_get(
        client, action, wanted, gate, &matcher, &sample, &listed, &mut read, facts,
    )
    .await?;
    let listing_empty = listed.values().all(|&n| n == 0);
    if omitted || listing_empty {
        read.source = ResultsSource::PerDevice;
        read.reason = if omitted {
            ResultsReason::ListingOmits
        } else {
            ResultsReason::ListingEmpty
        };
        // Where the sample was every device, there is nothing left to read.
        if wanted.timing == ResultsTiming::BeforeSending && ids.len() > RESULTS_SAMPLE {
            // The sample's skips stand in the plan; every device planned is read as it is sent.
            read.source = ResultsSource::BeforeSending;
            read.before_sending = Some(SendTimeRules {
                skip_pending: policy.skip_pending,
                rotated_within_secs: policy.rotated_within.map(|d| d.as_secs()),
                eligibility: policy.eligibility,
            });
        } else {
            let rest: Vec<Uuid> = ids.iter().skip(RESULTS_SAMPLE).copied().collect();
            results_by_get(
                client, action, wanted, gate, &matcher, &rest, &listed, &mut read, facts,
            )
            .await?;
        }
    }
    facts.notes.push(read.describe());
    facts.results_read = Some(read);
    Ok(())
}

/// One listing of the platform's devices with `deviceActionResults`, folded into `facts`; how
/// many results it showed per device. `None` when it could not be read and a note says so.
async fn results_listing(
    client: &GraphClient,
    action: Action,
    wanted: &FactsWanted,
    matcher: &ResultMatcher,
    gate: &RateGate,
    facts: &mut Facts,
) -> Result<Option<HashMap<Uuid, usize>>, RotationError> {
    let filtered = format!(
        "/deviceManagement/managedDevices?$filter={}&$select=id,deviceActionResults&$top=1000",
        crate::url::enc(&format!("operatingSystem eq '{}'", action.platform()))
    );
    let unfiltered = "/deviceManagement/managedDevices?$select=id,deviceActionResults&$top=1000";
    let mut listed = HashMap::new();
    let mut pages = std::pin::pin!(client.pages(filtered));
    let mut first = true;
    while let Some(page) = pages.next().await {
        counted(gate);
        let items = match page {
            // A service that refuses the platform filter lists every device; only those of the
            // plan are read.
            Err(graph_client::GraphClientError::Http { status: 400, .. }) if first => {
                facts.notes.push(
                    "the service refused the platform filter on devices' action results; every device was listed and those of the plan read".to_string(),
                );
                first = false;
                pages.set(client.pages(unfiltered.to_string()));
                continue;
            }
            Err(e) => return results_unreadable(e, wanted, facts).map(|()| None),
            Ok(items) => items,
        };
        first = false;
        for item in items {
            let Some(id) = item.get("id").and_then(Value::as_str).and_then(parse_id) else {
                continue;
            };
            let Some(f) = facts.devices.get_mut(&id) else {
                continue;
            };
            listed.insert(id, fold_results(f, &item, matcher));
        }
    }
    Ok(Some(listed))
}

/// What to do when devices' action results cannot be read: a note where only pending actions
/// were asked for, an error where key age was.
fn results_unreadable(
    e: graph_client::GraphClientError,
    wanted: &FactsWanted,
    facts: &mut Facts,
) -> Result<(), RotationError> {
    match e {
        e if e.is_auth() => results_refused(&e.to_string(), wanted, facts),
        e if wanted.allow_partial => {
            facts.notes.push(format!(
                "warning: reading devices' action results failed part-way ({e}); pending actions and key age were not checked for the rest"
            ));
            Ok(())
        }
        e => Err(RotationError::listing("devices' action results", e)),
    }
}

/// The token may not read devices' action results (`why`, Graph's words): pending actions are a
/// courtesy check, left with a note; key age asked for is not, and stops the run.
fn results_refused(
    why: &str,
    wanted: &FactsWanted,
    facts: &mut Facts,
) -> Result<(), RotationError> {
    if wanted.rotated_within.is_none() && !wanted.last_rotation {
        facts.notes.push(format!(
            "devices' action results could not be read ({why}); actions still pending were not checked ({} reads them)",
            Permission::ManagedDevicesRead
        ));
        return Ok(());
    }
    Err(RotationError::MissingPermission {
        permissions: vec![Permission::ManagedDevicesRead],
        what: format!("key age reads devices' action results ({why})"),
    })
}

/// Reads `ids` by GET and folds what each shows; whether any showed a result its listing entry
/// did not.
#[allow(clippy::too_many_arguments)]
async fn results_by_get(
    client: &GraphClient,
    action: Action,
    wanted: &FactsWanted,
    gate: &Arc<RateGate>,
    matcher: &ResultMatcher,
    ids: &[Uuid],
    listed: &HashMap<Uuid, usize>,
    read: &mut ResultsRead,
    facts: &mut Facts,
) -> Result<bool, RotationError> {
    let requests: Vec<(usize, Request)> = ids
        .iter()
        .enumerate()
        .map(|(n, id)| (n, results_request(id)))
        .collect();
    let mut answered = vec![false; ids.len()];
    let mut omitted = false;
    for (n, r) in read_all(client, gate, requests).await {
        answered[n] = true;
        let id = ids[n];
        let f = facts.devices.get_mut(&id).expect("planned");
        match r {
            Read::Body(body) => {
                read.read += 1;
                let shown = fold_results(f, &body, matcher);
                omitted |= shown > listed.get(&id).copied().unwrap_or(0);
            }
            // Gone since it was listed: the plan finds it gone too when it sends.
            Read::NotFound => read.read += 1,
            Read::Refused {
                status: 401 | 403,
                message,
            } => return results_refused(&message, wanted, facts).map(|()| false),
            Read::Refused { message, .. } => {
                tracing::warn!(device = %id, "the action results could not be read: {message}");
                unread(f, wanted.rotated_within, action);
                read.unread += 1;
            }
        }
    }
    for (n, done) in answered.iter().enumerate() {
        if !done {
            unread(
                facts.devices.get_mut(&ids[n]).expect("planned"),
                wanted.rotated_within,
                action,
            );
            read.unread += 1;
        }
    }
    Ok(omitted)
}

/// One device's action results, by GET: what a listing may leave out.
pub(crate) fn results_request(id: &Uuid) -> Request {
    Request::get(format!(
        "/deviceManagement/managedDevices/{id}?$select=id,deviceActionResults"
    ))
}

/// A device whose results could not be read: its key age is unknown where it was asked for
/// (`rotated_within`) and the results are where it is read from.
fn unread(f: &mut DeviceFacts, rotated_within: Option<Duration>, action: Action) {
    if rotated_within.is_some() && matches!(action, Action::FileVault | Action::RecoveryLock) {
        f.age_unknown = true;
    }
}

/// What a device's action results, read just before it is sent, make of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AtSending {
    Send,
    /// Skipped, for this reason (the plan's words for it).
    Skip(SkipReason),
    /// The token may not read them (Graph's words): nothing more is sent on it.
    Refused(String),
}

impl SendTimeRules {
    /// The plan's policy for these rules: only its rules of the tenant's records apply.
    fn policy(&self, action: Action) -> Policy {
        Policy {
            skip_pending: self.skip_pending,
            rotated_within: self.rotated_within_secs.map(Duration::from_secs),
            eligibility: self.eligibility,
            ..Policy::for_action(action)
        }
    }

    /// Holds one device's read to the plan's rules, as the plan would have had it read first.
    pub(crate) fn judge(&self, action: Action, matcher: &ResultMatcher, read: &Read) -> AtSending {
        let mut f = DeviceFacts::default();
        match read {
            Read::Body(body) => {
                fold_results(&mut f, body, matcher);
            }
            // Gone since it was listed: sending finds it gone and records so.
            Read::NotFound => return AtSending::Send,
            Read::Refused {
                status: 401 | 403,
                message,
            } => return AtSending::Refused(message.clone()),
            Read::Refused { message, .. } => {
                tracing::warn!("a device's action results could not be read: {message}");
                unread(
                    &mut f,
                    self.rotated_within_secs.map(Duration::from_secs),
                    action,
                );
            }
        }
        self.policy(action)
            .by_facts(&f)
            .map_or(AtSending::Send, AtSending::Skip)
    }
}

/// Folds one device's `deviceActionResults` into its facts; how many results it showed (ours or
/// not), which is what a listing that leaves them out gets wrong.
fn fold_results(f: &mut DeviceFacts, device: &Value, matcher: &ResultMatcher) -> usize {
    let results = device
        .get("deviceActionResults")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    for r in results {
        let text = |k: &str| r.get(k).and_then(Value::as_str);
        if !matches!(
            matcher.recognise(text("actionName"), text("@odata.type")),
            Recognised::Ours(_)
        ) {
            continue;
        }
        let Some(started) = text("startDateTime") else {
            continue;
        };
        let state = text("actionState").map_or(VerifiedState::Unknown, VerifiedState::from_graph);
        let at = text("lastUpdatedDateTime").unwrap_or(started);
        match state {
            VerifiedState::Done => newest(&mut f.last_rotated, at),
            VerifiedState::Pending | VerifiedState::Active => newest(&mut f.pending_since, started),
            _ => {}
        }
    }
    results.len()
}

/// The encryption report, where the token may read it; otherwise a note and no check.
async fn encryption_report(
    client: &GraphClient,
    allow_partial: bool,
    gate: &RateGate,
    facts: &mut Facts,
) -> Result<(), RotationError> {
    let url =
        "/deviceManagement/managedDeviceEncryptionStates?$select=id,fileVaultStates".to_string();
    let mut pages = std::pin::pin!(client.pages(url));
    let (mut rows, mut matched) = (0usize, 0usize);
    while let Some(page) = pages.next().await {
        counted(gate);
        match page {
            Ok(items) => {
                for item in items {
                    rows += 1;
                    // The report's `id` is documented only as its key: it is joined to the
                    // managed device's id, and a join that finds nobody is said (graph-facts §11).
                    let id = item.get("id").and_then(Value::as_str).and_then(parse_id);
                    let Some(f) = id.and_then(|id| facts.devices.get_mut(&id)) else {
                        continue;
                    };
                    matched += 1;
                    if let Some(states) = item.get("fileVaultStates").and_then(Value::as_str) {
                        f.filevault_states = Some(states.to_string());
                    }
                }
            }
            Err(e) if e.is_auth() => {
                facts.notes.push(format!(
                    "the encryption report could not be read ({e}); FileVault escrow states were not checked ({} reads them)",
                    Permission::ConfigurationRead
                ));
                return Ok(());
            }
            Err(e) if allow_partial => {
                facts.notes.push(format!(
                    "warning: the encryption report failed part-way ({e}); FileVault escrow states were not checked for the rest (a partial source was allowed)"
                ));
                return Ok(());
            }
            Err(e) => return Err(RotationError::listing("the encryption report", e)),
        }
    }
    if rows > 0 && matched == 0 {
        facts.notes.push(format!(
            "warning: the encryption report could not be matched: none of its {rows} row(s) has the id of a planned device, so FileVault escrow checks are off"
        ));
    }
    Ok(())
}

/// BitLocker recovery keys or LAPS backups per device, in `$batch`es under the read limit.
async fn second_source(
    client: &GraphClient,
    action: Action,
    entra: &[(Uuid, String)],
    gate: &Arc<RateGate>,
    facts: &mut Facts,
) -> Result<(), RotationError> {
    let requests: Vec<(usize, Request)> = entra
        .iter()
        .enumerate()
        .map(|(n, (_, e))| (n, second_source_request(action, e)))
        .collect();
    let mut near_cap = Vec::new();
    for (n, read) in read_all(client, gate, requests).await {
        let (id, _) = &entra[n];
        let f = facts.devices.get_mut(id).expect("planned");
        match read {
            Read::Body(body) => {
                let (last, keys) = second_source_of(action, &body);
                if let Some(at) = last {
                    newest(&mut f.last_rotated, &at);
                }
                if let Some(k) = keys {
                    f.recovery_keys = Some(k);
                    if k >= RECOVERY_KEY_WARNING {
                        near_cap.push(format!("{id} ({k} keys)"));
                    }
                }
            }
            Read::NotFound => {}
            Read::Refused {
                status: 401 | 403,
                message,
            } => {
                let (permission, what) = match action {
                    Action::BitLocker => {
                        (Permission::BitLockerKeyReadBasic, "BitLocker recovery keys")
                    }
                    _ => (Permission::LocalCredentialReadBasic, "Windows LAPS backups"),
                };
                return Err(RotationError::MissingPermission {
                    permissions: vec![permission],
                    what: format!(
                        "the key-age rule reads {what} to know when a device last rotated ({message})"
                    ),
                });
            }
            Read::Refused { message, .. } => {
                tracing::warn!(device = %id, "the key age could not be read: {message}");
                f.age_unknown = true;
            }
        }
    }
    if !near_cap.is_empty() {
        facts.notes.push(format!(
            "warning: {} device(s) hold {RECOVERY_KEY_WARNING} or more BitLocker recovery keys; Entra keeps at most 200 and never deletes old ones, and silent encryption fails past the cap: {}",
            near_cap.len(),
            near_cap.join(", ")
        ));
    }
    Ok(())
}

/// The read that tells when `action` last changed the device's secret, by its Entra id.
pub(crate) fn second_source_request(action: Action, entra_id: &str) -> Request {
    match action {
        Action::BitLocker => {
            let filter = format!("deviceId eq '{entra_id}'");
            with_user_agent(Request::get(format!(
                "/informationProtection/bitlocker/recoveryKeys?$filter={}&$select=id,createdDateTime,deviceId",
                crate::url::enc(&filter)
            )))
        }
        _ => with_user_agent(Request::get(format!(
            "/directory/deviceLocalCredentials/{entra_id}?$select=id,deviceName,lastBackupDateTime"
        ))),
    }
}

/// Both reads document `User-Agent` as required (graph-facts §11): a `$batch` item carries only
/// the headers it is given, so each item names the tool.
fn with_user_agent(mut r: Request) -> Request {
    r.headers.insert(
        "User-Agent".into(),
        concat!("intune-rotate/", env!("CARGO_PKG_VERSION")).into(),
    );
    r
}

/// The newest key's creation (and the key count), or the last LAPS backup.
pub(crate) fn second_source_of(action: Action, body: &Value) -> (Option<String>, Option<usize>) {
    match action {
        Action::BitLocker => {
            let keys = body.get("value").and_then(Value::as_array);
            let mut newest_key: Option<String> = None;
            for k in keys.into_iter().flatten() {
                if let Some(at) = k.get("createdDateTime").and_then(Value::as_str) {
                    newest(&mut newest_key, at);
                }
            }
            (newest_key, Some(keys.map_or(0, Vec::len)))
        }
        _ => (
            body.get("lastBackupDateTime")
                .and_then(Value::as_str)
                .map(str::to_string),
            None,
        ),
    }
}

/// Keeps the later of `slot` and `at` (ISO 8601).
fn newest(slot: &mut Option<String>, at: &str) {
    let later = match slot.as_deref() {
        None => true,
        Some(cur) => parse_ms(at).unwrap_or(0) > parse_ms(cur).unwrap_or(0),
    };
    if later {
        *slot = Some(at.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SkipKind;
    use serde_json::json;

    fn rules() -> SendTimeRules {
        SendTimeRules {
            skip_pending: true,
            rotated_within_secs: None,
            eligibility: crate::Eligibility::Strict,
        }
    }

    fn judged(rules: SendTimeRules, read: Read) -> AtSending {
        let matcher = ResultMatcher::new(Action::FileVault, &[]);
        rules.judge(Action::FileVault, &matcher, &read)
    }

    fn device_with(state: &str, started: &str) -> Read {
        Read::Body(json!({
            "id": "6d1f0000-0000-4000-8000-00000000000a",
            "deviceActionResults": [{
                "actionName": "rotateFileVaultKey",
                "actionState": state,
                "startDateTime": started,
                "lastUpdatedDateTime": started,
            }]
        }))
    }

    fn hours_ago(h: u64) -> String {
        let t = std::time::SystemTime::now() - Duration::from_secs(h * 3600);
        humantime::format_rfc3339_seconds(t).to_string()
    }

    #[test]
    fn a_device_with_our_action_pending_is_skipped_at_sending() {
        let verdict = judged(rules(), device_with("pending", &hours_ago(2)));
        assert!(
            matches!(&verdict, AtSending::Skip(why) if why.kind == SkipKind::Pending),
            "{verdict:?}"
        );
    }

    #[test]
    fn a_device_with_nothing_pending_is_sent() {
        assert_eq!(
            judged(rules(), device_with("done", &hours_ago(2))),
            AtSending::Send
        );
        assert_eq!(
            judged(rules(), Read::Body(json!({"deviceActionResults": []}))),
            AtSending::Send
        );
    }

    #[test]
    fn pending_is_not_checked_when_the_plan_did_not_ask() {
        let off = SendTimeRules {
            skip_pending: false,
            ..rules()
        };
        assert_eq!(
            judged(off, device_with("pending", &hours_ago(2))),
            AtSending::Send
        );
    }

    #[test]
    fn a_rotation_within_the_window_skips_the_device() {
        let within = SendTimeRules {
            rotated_within_secs: Some(86_400),
            ..rules()
        };
        let verdict = judged(within, device_with("done", &hours_ago(2)));
        assert!(
            matches!(&verdict, AtSending::Skip(why) if why.kind == SkipKind::RotatedRecently),
            "{verdict:?}"
        );
        assert_eq!(
            judged(within, device_with("done", &hours_ago(48))),
            AtSending::Send
        );
    }

    #[test]
    fn a_device_gone_since_the_plan_is_sent_and_found_gone_by_the_send() {
        assert_eq!(judged(rules(), Read::NotFound), AtSending::Send);
    }

    #[test]
    fn a_refused_token_stops_the_sending() {
        let read = Read::Refused {
            status: 403,
            message: "Forbidden".into(),
        };
        assert_eq!(
            judged(rules(), read),
            AtSending::Refused("Forbidden".into())
        );
    }

    #[test]
    fn an_unreadable_device_is_skipped_under_strict_key_age_and_sent_for_pending_alone() {
        let read = || Read::Refused {
            status: 400,
            message: "BadRequest".into(),
        };
        let within = SendTimeRules {
            rotated_within_secs: Some(86_400),
            ..rules()
        };
        let verdict = judged(within, read());
        assert!(
            matches!(&verdict, AtSending::Skip(why) if why.kind == SkipKind::UnknownKeyAge),
            "{verdict:?}"
        );
        assert_eq!(judged(rules(), read()), AtSending::Send);
    }
}
