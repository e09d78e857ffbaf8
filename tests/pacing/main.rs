//! Pacing against the service's window, end to end: these runs compare timings and 429 counts, so
//! they run one at a time, in a test binary of their own that cargo runs after `it` (whose tests
//! run many at once: they wait on windows and kill points, not on the processor).

#[path = "../it/util.rs"]
#[allow(dead_code)]
mod util;

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
