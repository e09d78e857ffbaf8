//! The fault matrix: each of the simulator's faults alone at a high rate, then all together. Every
//! device ends rotated exactly once (lost answers are looked up before anything is re-sent).

use crate::util::*;
use graph_sim::SimConfig;

const ACTION: &str = "rotateFileVaultKey";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fault_alone_and_all_together_end_with_each_device_rotated_once() {
    let cases: Vec<(&str, SimConfig)> = vec![
        (
            "429",
            SimConfig {
                p429: 0.2,
                ..fast(150)
            },
        ),
        (
            "503",
            SimConfig {
                p503: 0.2,
                ..fast(150)
            },
        ),
        (
            "500",
            SimConfig {
                p500: 0.2,
                ..fast(150)
            },
        ),
        (
            "504",
            SimConfig {
                p504: 0.2,
                ..fast(150)
            },
        ),
        (
            "dropped connection",
            SimConfig {
                drop: 0.15,
                ..fast(150)
            },
        ),
        (
            "truncated body",
            SimConfig {
                truncate: 0.15,
                ..fast(150)
            },
        ),
        (
            "whole batch 429",
            SimConfig {
                batch_p429: 0.2,
                ..fast(150)
            },
        ),
        (
            "whole batch 503",
            SimConfig {
                batch_p503: 0.2,
                ..fast(150)
            },
        ),
        (
            "all together",
            SimConfig {
                p429: 0.05,
                p503: 0.05,
                p500: 0.05,
                p504: 0.05,
                drop: 0.05,
                truncate: 0.05,
                batch_p429: 0.05,
                batch_p503: 0.05,
                latency: std::time::Duration::from_millis(10),
                ..fast(150)
            },
        ),
    ];
    for (name, config) in cases {
        let env = Env::new(config).await;
        let (csv, ledger) = (env.devices_csv(), env.path("run.jsonl"));
        let o = env
            .rotate(
                &csv,
                &ledger,
                &["--rate", "4000/1s", "--max-attempts", "20"],
            )
            .await;
        assert_eq!(code(&o), 0, "{name}: {}", stderr(&o));
        let stats = env.sim.stats();
        for id in eligible_macs(&env) {
            assert_eq!(stats.accepted(ACTION, &id), 1, "{name}: {id}");
        }
        let st = env
            .run(&["status", "--ledger", &s(&ledger), "--json"])
            .await;
        let doc: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
        assert_eq!(
            (
                doc["in_doubt"].as_u64(),
                doc["pending"].as_u64(),
                doc["failed"].as_u64()
            ),
            (Some(0), Some(0), Some(0)),
            "{name}: {doc}"
        );
    }
}
