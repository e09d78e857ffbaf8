//! GETs packed 20 to a `$batch` and paced by a reads gate: `verify`'s look-ups and the plan's
//! key-age reads. Items that can be read later (throttled, server errors, a lost batch) are asked
//! again under backoff, never sooner than the service's Retry-After.

use crate::RateGate;
use backon::{ExponentialBuilder, Retryable};
use futures::StreamExt;
use graph_batch::{BatchBuilder, ItemClass, Request};
use graph_client::GraphClient;
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// What one GET answered.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Read {
    Body(Value),
    NotFound,
    /// Refused for good (400, 403, …), with Graph's error.
    Refused {
        status: u16,
        message: String,
    },
}

/// Reads by default: under half of Intune's "any request" limit (2,000 per 20 s), which the
/// actions count in.
pub const READ_RATE: graph_batch::Quota =
    graph_batch::Quota::new(1000, std::time::Duration::from_secs(20));

/// The gate of a run's reads (look-ups of devices in doubt, action results read before sending)
/// at `quota`, or by default under half of Intune's "any request" limit, which the actions count in.
pub(crate) fn reads_gate_at(quota: Option<graph_batch::Quota>) -> Arc<RateGate> {
    let quota = quota.unwrap_or(READ_RATE);
    Arc::new(RateGate::new(quota, 0.02, 20))
}

/// The gate of the plan's reads (action results, recovery keys, LAPS backups), which go before
/// anything is sent: by default the service's whole read quota, 2,000 per 20 s per app
/// (graph-facts §3), less the gate's headroom.
pub(crate) fn plan_reads_gate(quota: Option<graph_batch::Quota>) -> Arc<RateGate> {
    let quota = quota.unwrap_or(graph_batch::Quota::new(2000, Duration::from_secs(20)));
    Arc::new(RateGate::new(quota, 0.02, 20))
}

/// Reads every `(key, request)`; keys whose read still failed after the retries are left out.
pub(crate) async fn read_all<K: Copy + Send + Sync>(
    client: &GraphClient,
    gate: &Arc<RateGate>,
    items: Vec<(K, Request)>,
) -> Vec<(K, Read)> {
    let chunks: Vec<Vec<(K, Request)>> = items
        .chunks(graph_batch::MAX_BATCH_SIZE)
        .map(<[_]>::to_vec)
        .collect();
    // As many in flight as the gate's rate needs through a slow round trip, as sends are.
    let in_flight = crate::rate_gate::batches_in_flight(gate.quota(), graph_batch::MAX_BATCH_SIZE);
    futures::stream::iter(chunks)
        .map(|chunk| read_chunk(client, gate, chunk))
        .buffer_unordered(in_flight)
        .flat_map(futures::stream::iter)
        .collect()
        .await
}

/// Items still to read after a pass, and the longest wait the service asked for.
#[derive(Debug)]
struct Unread(Option<Duration>);

async fn read_chunk<K: Copy>(
    client: &GraphClient,
    gate: &Arc<RateGate>,
    chunk: Vec<(K, Request)>,
) -> Vec<(K, Read)> {
    let pending = Mutex::new(chunk);
    let done = Mutex::new(Vec::new());
    let pass = || async {
        let now: Vec<(K, Request)> = pending.lock().expect("not poisoned").clone();
        let (read, again, wait) = read_once(client, gate, now).await;
        done.lock().expect("not poisoned").extend(read);
        let finished = again.is_empty();
        *pending.lock().expect("not poisoned") = again;
        if finished { Ok(()) } else { Err(Unread(wait)) }
    };
    let _ = pass
        .retry(
            ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(500))
                .with_max_delay(Duration::from_secs(8))
                .with_jitter()
                .with_max_times(4),
        )
        .adjust(|Unread(wait), backoff| graph_batch::retry_wait(*wait, backoff))
        .await;
    done.into_inner().expect("not poisoned")
}

/// A single entity as Graph's documentation shows some of them, `{"value": {…}}`, is read as the
/// entity itself (graph-facts §11); a collection's `value` array is left as it is.
pub(crate) fn unwrapped(body: Value) -> Value {
    match body {
        Value::Object(mut map) if map.get("value").is_some_and(Value::is_object) => {
            map.remove("value").expect("checked")
        }
        other => other,
    }
}

type Pass<K> = (Vec<(K, Read)>, Vec<(K, Request)>, Option<Duration>);

async fn read_once<K: Copy>(
    client: &GraphClient,
    gate: &Arc<RateGate>,
    pending: Vec<(K, Request)>,
) -> Pass<K> {
    gate.acquire_batch().await;
    let mut b = BatchBuilder::new(graph_batch::MAX_BATCH_SIZE).expect("the largest batch is valid");
    for (n, (_, request)) in pending.iter().enumerate() {
        b.push(n, request.clone());
    }
    let b = b.finish().pop().expect("at most one batch of reads");
    let (mut read, mut again, mut wait) = (Vec::new(), Vec::new(), None);
    let mut reply = match client.send_batch(&b.body).await {
        Ok(reply) => reply,
        Err(e) => {
            if let Some(ItemClass::Throttled { retry_after }) = e.class() {
                gate.brake(retry_after);
            }
            if e.is_transient() {
                return (read, pending, e.retry_after());
            }
            let status = match &e {
                graph_client::GraphClientError::Http { status, .. } => *status,
                _ => 0,
            };
            let message = e.to_string();
            let refused = pending
                .into_iter()
                .map(|(k, _)| {
                    (
                        k,
                        Read::Refused {
                            status,
                            message: message.clone(),
                        },
                    )
                })
                .collect();
            return (refused, Vec::new(), None);
        }
    };
    for (item_id, &n) in b.entries() {
        let (key, request) = &pending[n];
        let Some(r) = reply.response.item_mut(item_id) else {
            again.push((*key, request.clone()));
            continue;
        };
        match (r.status, r.classify(SystemTime::now())) {
            (404, _) => read.push((*key, Read::NotFound)),
            (_, ItemClass::Success) => {
                let body = r.body.take().unwrap_or(Value::Null);
                read.push((*key, Read::Body(unwrapped(body))));
            }
            // A 401 on one item is a token turning over: read it again with the next one.
            (401, class @ ItemClass::Auth)
            | (_, class @ (ItemClass::Throttled { .. } | ItemClass::Retryable { .. })) => {
                if let ItemClass::Throttled { retry_after } = class {
                    gate.brake(retry_after);
                }
                wait = wait.max(class.retry_after());
                again.push((*key, request.clone()));
            }
            (status, ItemClass::Auth | ItemClass::Permanent) => {
                let message = r
                    .error()
                    .map(|e| format!("{} {}", e.code, e.display_message()))
                    .unwrap_or_else(|| format!("HTTP {status}"));
                read.push((*key, Read::Refused { status, message }));
            }
        }
    }
    (read, again, wait)
}

#[cfg(test)]
mod tests {
    use super::unwrapped;
    use serde_json::json;

    #[test]
    fn a_wrapped_single_entity_is_read_as_the_entity() {
        let wrapped =
            json!({"@odata.context": "x", "value": {"id": "a", "lastBackupDateTime": "t"}});
        assert_eq!(
            unwrapped(wrapped),
            json!({"id": "a", "lastBackupDateTime": "t"})
        );
    }

    #[test]
    fn an_entity_at_the_top_level_and_a_collection_stay_as_they_are() {
        let top = json!({"id": "a", "lastBackupDateTime": "t"});
        assert_eq!(unwrapped(top.clone()), top);
        let list = json!({"value": [{"id": "a"}]});
        assert_eq!(unwrapped(list.clone()), list);
    }
}
