//! Did the devices really rotate? A 204 means Intune queued the action; `deviceActionResults` says
//! whether the device did it. Reads are packed in `$batch`, paced under the "any request" limit.
//!
//! Clock skew: an action counts as ours when it started no earlier than `SKEW` before our request
//! left (by our clock), so a service clock a little behind ours does not hide our own action.

use crate::ledger::{DeviceState, Ledger, Row, now_iso, parse_ms};
use crate::{Action, RateGate, RotationError};
use futures::StreamExt;
use graph_batch::{BatchBuilder, ItemClass, Quota, Request};
use graph_client::GraphClient;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// How far the service's clock may be behind ours.
pub const SKEW: Duration = Duration::from_secs(120);

/// States after which a device is not looked at again.
const FINAL: [&str; 3] = ["done", "failed", "notsupported"];

#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// Pace of the reads (Intune's "any request" limit is 2000/20s per app).
    pub rate: Quota,
    pub watch: bool,
    pub interval: Duration,
    pub timeout: Option<Duration>,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            rate: Quota::new(1000, Duration::from_secs(20)),
            watch: false,
            interval: Duration::from_secs(300),
            timeout: None,
        }
    }
}

/// Devices per verified state (state names as Graph writes them, lower-cased; `not-found`,
/// `unreadable` for answers that could not be read this pass).
pub type VerifyCounts = BTreeMap<String, usize>;

/// What one lookup found for a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub state: String,
    pub started: Option<String>,
}

/// The result of our action in a device's `deviceActionResults`: the latest one named like `action`
/// (ignoring case) that started after `sent_ms` less the skew margin.
pub fn our_result(device: &Value, action: Action, sent_ms: u64) -> Found {
    let since = sent_ms.saturating_sub(SKEW.as_millis() as u64);
    let best = device
        .get("deviceActionResults")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|r| {
            r.get("actionName")
                .and_then(Value::as_str)
                .is_some_and(|n| n.eq_ignore_ascii_case(action.graph_name()))
        })
        .filter_map(|r| {
            let started = r.get("startDateTime").and_then(Value::as_str)?;
            let ms = parse_ms(started)
                .or_else(|| parse_ms(&format!("{}Z", started.trim_end_matches('Z'))))?;
            (ms >= since).then_some((ms, r))
        })
        .max_by_key(|(ms, _)| *ms);
    match best {
        Some((_, r)) => Found {
            state: r
                .get("actionState")
                .and_then(Value::as_str)
                .unwrap_or("unknown")
                .to_string(),
            started: r
                .get("startDateTime")
                .and_then(Value::as_str)
                .map(str::to_string),
        },
        None => Found {
            state: "not-found".into(),
            started: None,
        },
    }
}

/// Looks up each `(device, sent_ms)`; devices whose read failed after retries are left out.
pub(crate) async fn lookup(
    client: &GraphClient,
    gate: &Arc<RateGate>,
    action: Action,
    items: &[(uuid::Uuid, u64)],
) -> Vec<(uuid::Uuid, Found)> {
    let chunks: Vec<Vec<(uuid::Uuid, u64)>> = items.chunks(20).map(<[_]>::to_vec).collect();
    let results = futures::stream::iter(chunks)
        .map(|chunk| {
            let (gate, client) = (gate.clone(), client.clone());
            async move {
                let mut out = Vec::new();
                let mut pending: Vec<(uuid::Uuid, u64)> = chunk;
                for attempt in 0..5u32 {
                    if pending.is_empty() {
                        break;
                    }
                    gate.acquire_batch().await;
                    let mut b = BatchBuilder::new(20).expect("valid");
                    for &(id, sent) in &pending {
                        b.push((id, sent), Request::get(format!("/deviceManagement/managedDevices/{id}?$select=id,deviceActionResults")));
                    }
                    let b = b.finish().pop().expect("one batch");
                    let mut again = Vec::new();
                    let mut wait: Option<Duration> = None;
                    match client.send_batch(&b.body).await {
                        Ok(reply) => {
                            for (item_id, &(id, sent)) in b.entries() {
                                match reply.response.item(item_id) {
                                    Some(r) if r.status == 200 => {
                                        out.push((id, our_result(r.body.as_ref().unwrap_or(&Value::Null), action, sent)));
                                    }
                                    Some(r) if r.status == 404 => out.push((id, Found { state: "not-found".into(), started: None })),
                                    Some(r) => {
                                        if let ItemClass::Throttled { retry_after } | ItemClass::Retryable { retry_after } = r.classify(SystemTime::now()) {
                                            wait = wait.max(retry_after);
                                            if r.status == 429 {
                                                gate.brake(retry_after);
                                            }
                                        }
                                        again.push((id, sent));
                                    }
                                    None => again.push((id, sent)),
                                }
                            }
                        }
                        Err(e) => {
                            tracing::debug!("verify batch failed: {e}");
                            again = pending.clone();
                        }
                    }
                    pending = again;
                    if !pending.is_empty() {
                        tokio::time::sleep(wait.unwrap_or(Duration::from_millis(500 << attempt))).await;
                    }
                }
                out
            }
        })
        .buffer_unordered(4)
        .collect::<Vec<_>>()
        .await;
    results.into_iter().flatten().collect()
}

/// `verify`: records each rotated device's action state, repeating with `watch` until every device
/// is done or failed, or the timeout passes. Returns the final counts.
pub async fn verify(
    client: &GraphClient,
    ledger_path: &Path,
    o: &VerifyOptions,
    progress: &(dyn Fn(&VerifyCounts) + Send + Sync),
) -> Result<VerifyCounts, RotationError> {
    let (mut ledger, state) = Ledger::open(ledger_path)?;
    let action = state.header.action()?;
    let gate = Arc::new(RateGate::new(o.rate, 0.02, 20));
    let mut open: Vec<(uuid::Uuid, u64)> = (0..state.ids.len())
        .filter(|&i| state.states[i] == DeviceState::Rotated)
        .map(|i| (state.ids[i], state.sent_at_ms[i]))
        .collect();
    let mut latest: BTreeMap<uuid::Uuid, String> = BTreeMap::new();
    let started = Instant::now();
    loop {
        let found = lookup(client, &gate, action, &open).await;
        for (id, f) in &found {
            ledger.append(&Row::Verified {
                id: id.hyphenated().to_string(),
                state: f.state.clone(),
                action_started_at: f.started.clone(),
                at: now_iso(),
            })?;
            latest.insert(*id, f.state.to_ascii_lowercase());
        }
        ledger.sync()?;
        let mut counts: VerifyCounts = BTreeMap::new();
        for s in latest.values() {
            *counts.entry(s.clone()).or_default() += 1;
        }
        let unread = open
            .iter()
            .filter(|(id, _)| !latest.contains_key(id))
            .count();
        if unread > 0 {
            counts.insert("unreadable".into(), unread);
        }
        progress(&counts);
        open.retain(|(id, _)| !latest.get(id).is_some_and(|s| FINAL.contains(&s.as_str())));
        let out_of_time = o
            .timeout
            .is_some_and(|t| started.elapsed() + o.interval > t);
        if !o.watch || open.is_empty() || out_of_time {
            return Ok(counts);
        }
        tokio::time::sleep(o.interval).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn device(results: Value) -> Value {
        json!({"id": "x", "deviceActionResults": results})
    }

    #[test]
    fn the_latest_result_of_our_action_after_our_request_counts() {
        let sent = parse_ms("2026-11-27T10:00:00Z").unwrap();
        let d = device(json!([
            {"actionName": "rotateFileVaultKey", "actionState": "done", "startDateTime": "2026-11-20T10:00:00Z"},
            {"actionName": "ROTATEFILEVAULTKEY", "actionState": "pending", "startDateTime": "2026-11-27T09:59:30Z"},
            {"actionName": "rotateBitLockerKeys", "actionState": "done", "startDateTime": "2026-11-27T10:05:00Z"},
        ]));
        assert_eq!(
            our_result(&d, Action::FileVault, sent),
            Found {
                state: "pending".into(),
                started: Some("2026-11-27T09:59:30Z".into())
            },
            "within the skew margin, case ignored"
        );
        assert_eq!(
            our_result(&d, Action::RecoveryLock, sent).state,
            "not-found"
        );
        assert_eq!(
            our_result(&device(json!([])), Action::FileVault, sent).state,
            "not-found"
        );
        let old_only = device(
            json!([{"actionName": "rotateFileVaultKey", "actionState": "done", "startDateTime": "2026-11-20T10:00:00Z"}]),
        );
        assert_eq!(
            our_result(&old_only, Action::FileVault, sent).state,
            "not-found",
            "an earlier rotation is not ours"
        );
    }
}
