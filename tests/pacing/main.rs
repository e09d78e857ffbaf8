//! Pacing against the service's window, end to end: these runs compare timings, rates and 429
//! counts, so they run one at a time, in a test binary of their own. `make test` runs it beside
//! `it`, whose tests wait on windows and kill points, not on the processor; each pacing test
//! compares its run with a reference run of its own under the same load.

#[path = "../it/util.rs"]
#[allow(dead_code)]
mod util;

use graph_sim::{Quota, SimConfig};
use std::time::Duration;
use util::*;

const ACTION: &str = "rotateFileVaultKey";

/// One pacing run at a time, whatever `--test-threads` says.
static ALONE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A short batch pays for a full one: the service counts a batch's items at one instant, so ten
/// full batches and a short eleventh paid item by item would overfill the window (429s at the end of
/// every run at Intune's 200/20s, here at the same shape scaled to 2 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_last_batch_never_overfills_the_window() {
    let _alone = ALONE.lock().await;
    // Ten full batches are the reference: whatever this machine's load does to their timing, it
    // does to the run with a short eleventh too. Only the short batch may not add a 429.
    let mut throttled = Vec::new();
    for limit in ["200", "209"] {
        let config = graph_sim::SimConfig {
            post_limit: graph_sim::Quota::new(200, std::time::Duration::from_secs(2)),
            ..fast(600)
        };
        let env = Env::new(config).await;
        let (csv, ledger) = (env.devices_csv(), env.path("run.jsonl"));
        let o = env
            .rotate(&csv, &ledger, &["--rate", "200/2s", "--limit", limit])
            .await;
        assert_eq!(code(&o), 1, "devices left pending: {}", stderr(&o));
        let stats = env.sim.stats();
        assert_eq!(stats.devices_accepted(ACTION).to_string(), limit);
        throttled.push(stats.throttled);
    }
    assert!(
        throttled[1] <= throttled[0],
        "items answered 429 with the short batch, against ten full ones: {throttled:?}"
    );
}

/// An empty window's credit goes at once: 200 devices at Intune's 200/20s finish in about a round
/// trip, with no 429, where the same run paced evenly (`--no-cold-start`) takes about a window. The
/// two are compared with each other, not with a clock, so a loaded machine slows both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_window_is_spent_at_once_without_a_429() {
    let _alone = ALONE.lock().await;
    let mut took = Vec::new();
    for pacing in ["--cold-start", "--no-cold-start"] {
        let config = graph_sim::SimConfig {
            post_limit: graph_sim::Quota::new(200, std::time::Duration::from_secs(20)),
            tenant_post_limit: graph_sim::Quota::new(400, std::time::Duration::from_secs(20)),
            latency: std::time::Duration::from_millis(50),
            ..fast(600)
        };
        let env = Env::new(config).await;
        let (csv, ledger) = (env.devices_csv(), env.path("run.jsonl"));
        let started = std::time::Instant::now();
        let o = env
            .rotate(
                &csv,
                &ledger,
                &["--rate", "200/20s", "--limit", "200", pacing],
            )
            .await;
        took.push(started.elapsed());
        assert_eq!(
            code(&o),
            1,
            "{pacing}: the rest left pending: {}",
            stderr(&o)
        );
        let stats = env.sim.stats();
        assert_eq!(stats.devices_accepted(ACTION), 200, "{pacing}");
        assert_eq!(stats.throttled, 0, "{pacing}: no item answered 429");
    }
    let (cold, even) = (took[0], took[1]);
    assert!(
        cold * 4 < even,
        "cold {cold:?} against evenly paced {even:?}: the window's credit was not spent at once"
    );
}

/// The send rate of a ledger, items per second, between its first and last `sent` rows.
fn send_rate(ledger: &std::path::Path) -> f64 {
    let mut sent: Vec<u64> = Vec::new();
    rotation::ledger_rows(ledger, |row| {
        if let rotation::Row::Sent { at, .. } = row {
            sent.push(
                humantime::parse_rfc3339(&at)
                    .unwrap()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_millis() as u64,
            );
        }
    })
    .unwrap();
    sent.sort_unstable();
    let span = (sent[sent.len() - 1] - sent[0]) as f64 / 1000.0;
    (sent.len() - 1) as f64 / span.max(1e-3)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_throttled_tenant_does_not_slow_another() {
    let _alone = ALONE.lock().await;
    // The quiet tenant paced by its own ceiling: 40/s, warm (paced evenly from the start), so the
    // rate is the ceiling's whatever the run's length. Measured alone, then beside a tenant with
    // ten times the latency and a 429 storm; the second must keep 0.95 of the first. The window
    // is 10 s, as long beside the round trips as the service's 20 s: the gate leaves the spread of
    // round trips unused in each window, and in a 1 s window the storm's load on the same client
    // would alone take a tenth of it.
    let quiet = |i| {
        tenant(
            i,
            SimConfig {
                post_limit: Quota::new(400, Duration::from_secs(10)),
                tenant_post_limit: Quota::new(800, Duration::from_secs(10)),
                latency: Duration::from_millis(20),
                ..fast(300)
            },
        )
    };
    let stormy = tenant(
        9,
        SimConfig {
            post_limit: Quota::new(400, Duration::from_secs(10)),
            tenant_post_limit: Quota::new(800, Duration::from_secs(10)),
            latency: Duration::from_millis(200),
            p429: 0.5,
            ..fast(300)
        },
    );
    // Both runs at once, each against its own simulator: whatever load the machine is under falls
    // on both alike (one after the other, the second once met a busier machine than the first).
    let (alone, beside) = tokio::join!(
        quiet_tenant_rate(vec![quiet(1)]),
        quiet_tenant_rate(vec![quiet(1), stormy])
    );
    let rates = [alone, beside];
    eprintln!(
        "quiet tenant: alone {:.1}/s, beside the storm {:.1}/s",
        rates[0], rates[1]
    );
    assert!(
        rates[1] >= 0.95 * rates[0],
        "the quiet tenant alone {:.1}/s, beside the storm {:.1}/s",
        rates[0],
        rates[1]
    );
}

/// The send rate of the first tenant of `configs` in one run over all of them.
async fn quiet_tenant_rate(configs: Vec<SimConfig>) -> f64 {
    let env = Env::fleet(configs).await;
    let (tenants, run_dir) = (env.tenants_csv(), env.path("run"));
    let o = env
        .rotate_tenants(
            &tenants,
            &run_dir,
            &[
                "--rate",
                "400/10s",
                "--no-cold-start",
                "--max-attempts",
                "50",
            ],
        )
        .await;
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let (id, ..) = &env.sim.tenants()[0];
    send_rate(&run_dir.join("tenants").join(format!("{id}.jsonl")))
}
