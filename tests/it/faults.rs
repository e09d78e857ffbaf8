//! The fault matrix: each of the simulator's faults alone at a high rate, then all together. Every
//! device ends rotated exactly once (lost answers are looked up before anything is re-sent).

use crate::util::*;
use graph_sim::SimConfig;

const ACTION: &str = "rotateFileVaultKey";

/// How many times the fault-free run (measured first, on the same machine under the same load) a
/// run under faults may take: retries and look-ups cost a few backoff rounds, never a hang.
const BOUND_FACTOR: u32 = 40;

/// The reference is floored here so a very quick fault-free run does not make the bound smaller
/// than one backoff round trip of the retry schedule.
const REFERENCE_FLOOR: std::time::Duration = std::time::Duration::from_secs(1);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fault_alone_and_all_together_end_with_each_device_rotated_once() {
    let cases: Vec<(&str, SimConfig)> = vec![
        ("no fault", fast(150)),
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
    let mut fault_free = None;
    for (name, config) in cases {
        let env = Env::new(config).await;
        let (csv, ledger) = (env.devices_csv(), env.path("run.jsonl"));
        let started = std::time::Instant::now();
        let o = env
            .rotate(
                &csv,
                &ledger,
                &["--rate", "4000/1s", "--max-attempts", "20"],
            )
            .await;
        let took = started.elapsed();
        assert_eq!(code(&o), 0, "{name}: {}", stderr(&o));
        // The stated bound (docs/RELIABILITY.md): retries and look-ups cost seconds, never a hang.
        let base = *fault_free.get_or_insert(took);
        eprintln!("fault matrix: {name}: {took:.1?} (fault-free {base:.1?})");
        let bound = base.max(REFERENCE_FLOOR) * BOUND_FACTOR;
        assert!(
            took <= bound,
            "{name}: {took:?}, more than {BOUND_FACTOR}x the fault-free {base:?}"
        );
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

/// Permanent errors among transient ones: devices the tenant does not know end failed with Graph's
/// code after one attempt, every other device rotated once, and the run exits 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_errors_end_failed_with_their_code_among_transient_faults() {
    let config = SimConfig {
        p429: 0.1,
        p503: 0.1,
        drop: 0.05,
        ..fast(150)
    };
    let env = Env::new(config).await;
    let macs = eligible_macs(&env);
    let unknown: Vec<String> = (1..=7)
        .map(|n| format!("6d1f0000-0000-4000-8000-{n:012x}"))
        .collect();
    let mut text = String::from("Device ID,OS,Ownership\n");
    for id in macs.iter().chain(&unknown) {
        text.push_str(&format!("{id},macOS,Corporate\n"));
    }
    let (csv, ledger, out) = (
        env.path("mixed.csv"),
        env.path("run.jsonl"),
        env.path("result.csv"),
    );
    std::fs::write(&csv, text).unwrap();
    let o = env
        .rotate(
            &csv,
            &ledger,
            &["--rate", "4000/1s", "--max-attempts", "20"],
        )
        .await;
    assert_eq!(code(&o), 1, "some devices failed: {}", stderr(&o));
    let stats = env.sim.stats();
    for id in &macs {
        assert_eq!(stats.accepted(ACTION, id), 1, "{id}");
    }
    let e = env
        .run(&[
            "export",
            "--ledger",
            &s(&ledger),
            "--format",
            "json",
            "--out",
            &s(&out),
        ])
        .await;
    assert_eq!(code(&e), 0, "{}", stderr(&e));
    let text = std::fs::read_to_string(&out).unwrap();
    let rows: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    for id in &unknown {
        let row = rows.iter().find(|r| r["device_id"] == id.as_str()).unwrap();
        assert_eq!(row["state"], "failed", "{row}");
        assert_eq!(row["last_status"], 404, "{row}");
        assert_eq!(row["error_code"], "ResourceNotFound", "{row}");
    }
    assert_eq!(
        rows.iter().filter(|r| r["state"] == "rotated").count(),
        macs.len()
    );
}
