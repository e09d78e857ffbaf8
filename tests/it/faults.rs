//! The fault matrix: each of the simulator's faults alone at a high rate, then all together. Every
//! device ends rotated exactly once (lost answers are looked up before anything is re-sent).

use crate::util::*;
use graph_sim::SimConfig;

const ACTION: &str = "rotateFileVaultKey";

/// How many times the fault-free run (measured first, on the same machine under the same load) a
/// run under faults may take: retries and look-ups cost a few backoff rounds, never a hang.
const BOUND_FACTOR: u32 = 40;

/// Exactly once under every fault: a throttled device is looked up before it is sent again, and a
/// lost answer is looked up a second time past the simulator's latest late action (3 s here).
const ONCE: [&str; 3] = ["--strict-once", "--lost-answer-recheck", "5s"];

/// The reference is floored here so a very quick fault-free run does not make the bound smaller
/// than one backoff round trip of the retry schedule.
const REFERENCE_FLOOR: std::time::Duration = std::time::Duration::from_secs(1);

/// Each case is a test of its own, so the cases run side by side; each measures its own fault-free
/// reference first, under the same load as itself.
macro_rules! fault_case {
    ($($test:ident: $name:literal => $config:expr;)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $test() {
            rotated_once_within_the_bound($name, $config).await;
        }
    )*};
}

fault_case! {
    each_device_is_rotated_once_under_429s: "429" => SimConfig { p429: 0.2, ..fast(150) };
    each_device_is_rotated_once_under_503s: "503" => SimConfig { p503: 0.2, ..fast(150) };
    each_device_is_rotated_once_under_500s: "500" => SimConfig { p500: 0.2, ..fast(150) };
    each_device_is_rotated_once_under_504s: "504" => SimConfig { p504: 0.2, ..fast(150) };
    each_device_is_rotated_once_under_dropped_connections: "dropped connection" =>
        SimConfig { drop: 0.15, ..fast(150) };
    each_device_is_rotated_once_under_truncated_bodies: "truncated body" =>
        SimConfig { truncate: 0.15, ..fast(150) };
    each_device_is_rotated_once_under_whole_batch_429s: "whole batch 429" =>
        SimConfig { batch_p429: 0.2, ..fast(150) };
    each_device_is_rotated_once_under_whole_batch_503s: "whole batch 503" =>
        SimConfig { batch_p503: 0.2, ..fast(150) };
    each_device_is_rotated_once_when_answers_are_lost_and_actions_run_seconds_later:
        "answer lost, action carried out seconds later" => SimConfig {
            late: 0.15,
            late_max: std::time::Duration::from_secs(3),
            ..fast(150)
        };
    each_device_is_rotated_once_under_429s_for_actions_carried_out:
        "429 for an action carried out" => SimConfig { ghost_429: 0.2, ..fast(150) };
    each_device_is_rotated_once_under_every_fault_together: "all together" => all_together();
    // The same mix under the simulator's other throttling models (docs/graph-sim.md): what the
    // engine does must not rest on the model.
    each_device_is_rotated_once_under_every_fault_together_in_the_block_model:
        "all together, block model" => SimConfig {
            throttle_model: graph_sim::ThrottleModel::Block,
            ..all_together()
        };
    each_device_is_rotated_once_under_every_fault_together_with_no_penalty:
        "all together, no penalty model" => SimConfig {
            throttle_model: graph_sim::ThrottleModel::None,
            ..all_together()
        };
}

/// Every fault of the simulator at once, each at a low rate.
fn all_together() -> SimConfig {
    SimConfig {
        p429: 0.05,
        p503: 0.05,
        p500: 0.05,
        p504: 0.05,
        drop: 0.05,
        truncate: 0.05,
        batch_p429: 0.05,
        batch_p503: 0.05,
        late: 0.05,
        late_max: std::time::Duration::from_secs(3),
        ghost_429: 0.05,
        latency: std::time::Duration::from_millis(10),
        ..fast(150)
    }
}

/// A fault-free run, then the run under `config`: each rotates every device exactly once, and the
/// second takes no more than the stated bound (docs/RELIABILITY.md) over the first: retries and
/// look-ups cost seconds, never a hang.
async fn rotated_once_within_the_bound(name: &str, config: SimConfig) {
    let (base, _) = rotated_once("no fault", fast(150)).await;
    let (took, most) = rotated_once(name, config).await;
    let allowance = backoff_allowance(most);
    eprintln!(
        "fault matrix: {name}: {took:.1?} (fault-free {base:.1?}, at most {most} attempts, \
         backoff allowance {allowance:.1?})"
    );
    let bound = base.max(REFERENCE_FLOOR) * BOUND_FACTOR + allowance;
    assert!(
        took <= bound,
        "{name}: {took:?}, more than {BOUND_FACTOR}x the fault-free {base:?} plus the \
         backoff of a device tried {most} times ({allowance:?})"
    );
}

/// One run under `config`, which must rotate every eligible device exactly once and leave none in
/// doubt, pending or failed; how long it took, and the most attempts any device took.
async fn rotated_once(name: &str, config: SimConfig) -> (std::time::Duration, u32) {
    let env = Env::new(config).await;
    let (csv, ledger) = (env.devices_csv(), env.path("run.jsonl"));
    let started = std::time::Instant::now();
    let o = env
        .rotate(
            &csv,
            &ledger,
            &["--rate", "4000/1s", "--max-attempts", "20"]
                .into_iter()
                .chain(ONCE)
                .collect::<Vec<_>>(),
        )
        .await;
    let took = started.elapsed();
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
    (took, most_attempts(&ledger))
}

/// The most attempts any device of the ledger took.
fn most_attempts(ledger: &std::path::Path) -> u32 {
    let mut most = 0;
    rotation::ledger_rows(ledger, |row| {
        if let rotation::Row::Sent { attempt, .. } = row {
            most = most.max(attempt);
        }
    })
    .unwrap();
    most
}

/// The longest the retry schedule (`rotation/src/retry.rs`: 0.5 s doubling to 60 s, jitter up to
/// the delay again) may wait between the attempts of a device tried `attempts` times. Faults are
/// drawn at random, so a device may meet several in a row; its backoff is the schedule's, not a
/// hang, and the bound grows by exactly that.
fn backoff_allowance(attempts: u32) -> std::time::Duration {
    (1..attempts)
        .map(|k| {
            let base = std::time::Duration::from_millis(500) * 2u32.saturating_pow((k - 1).min(16));
            2 * base.min(std::time::Duration::from_secs(60))
        })
        .sum()
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

/// A request carried out seconds after its answer was lost: one look-up soon after would see
/// nothing and send again; the second look-up, past the delay, sees it. Checked both ways on the
/// same seeded faults, so the test fails if the second look-up stops mattering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_action_is_found_by_the_second_look_up_and_never_sent_twice() {
    let config = || SimConfig {
        late: 0.3,
        // Carried out 4 to 8 s late: after the first look-up (2 s after sending) even on a
        // loaded machine, before the second (10 s).
        late_max: std::time::Duration::from_secs(8),
        ..fast(120)
    };
    let mut twice = Vec::new();
    for recheck in ["0s", "10s"] {
        let env = Env::new(config()).await;
        let (csv, ledger) = (env.devices_csv(), env.path("run.jsonl"));
        let args = ["--rate", "4000/1s", "--lost-answer-recheck", recheck];
        let o = env.rotate(&csv, &ledger, &args).await;
        assert_eq!(code(&o), 0, "{recheck}: {}", stderr(&o));
        let stats = env.sim.stats();
        assert!(stats.late_requests > 0, "{recheck}: the fault happened");
        // Wait out the late actions still to come, then count.
        tokio::time::sleep(std::time::Duration::from_secs(8)).await;
        let ids = eligible_macs(&env);
        let stats = env.sim.stats();
        assert!(
            ids.iter().all(|id| stats.accepted(ACTION, id) >= 1),
            "{recheck}: everyone rotated"
        );
        twice.push(stats.devices_accepted_twice(ACTION));
        if recheck == "10s" {
            let text = std::fs::read_to_string(&ledger).unwrap();
            assert!(
                text.contains("seen at the second look-up"),
                "the evidence names the second look"
            );
        }
    }
    assert!(
        twice[0] > 0,
        "without a second look-up a late action is sent again: {twice:?}"
    );
    assert_eq!(twice[1], 0, "with it, nobody twice: {twice:?}");
}

/// A 429 for a BitLocker rotation that ran: the device is looked up before it is sent again, by
/// default, because each needless rotation adds a key toward Entra's 200. FileVault does the same
/// under --strict-once, and by default sends again without reading (one key, replaced).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_action_that_ran_is_looked_up_before_a_resend() {
    let config = || SimConfig {
        ghost_429: 0.25,
        ..fast(300)
    };
    for (action, result, extra) in [
        ("bitlocker", "rotateBitLockerKeys", &[][..]),
        ("filevault", ACTION, &["--strict-once"][..]),
    ] {
        let env = Env::new(config()).await;
        let ledger = s(&env.path("run.jsonl"));
        let mut args = vec![
            "rotate", "--action", action, "--query", "--ledger", &ledger, "--yes", "--rate",
            "4000/1s",
        ];
        args.extend_from_slice(extra);
        let o = env.run(&args).await;
        assert_eq!(code(&o), 0, "{action}: {}", stderr(&o));
        let stats = env.sim.stats();
        assert!(stats.ghost_429 > 0, "{action}: the fault happened");
        let t = env.sim.tenant();
        let sent: Vec<_> = t.devices.iter().filter(|d| sendable(d, action)).collect();
        assert!(!sent.is_empty());
        for d in sent {
            assert_eq!(stats.accepted(result, &d.id), 1, "{action}: {}", d.id);
        }
        let text = std::fs::read_to_string(&*ledger).unwrap();
        assert!(
            text.contains("verified-after-429"),
            "{action}: the evidence is recorded"
        );
    }
    // By default FileVault does not read before a resend: some devices rotate twice.
    let env = Env::new(config()).await;
    let ledger = env.path("run.jsonl");
    let o = env
        .run(&[
            "rotate",
            "--action",
            "filevault",
            "--query",
            "--ledger",
            &s(&ledger),
            "--yes",
            "--rate",
            "4000/1s",
        ])
        .await;
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(env.sim.stats().devices_accepted_twice(ACTION) > 0);
}

/// A ledger left by a run that crashed with `ids` in doubt: planned, and their requests sent an
/// hour ago with no answer recorded.
fn crashed_ledger(env: &Env, path: &std::path::Path, ids: &[String]) {
    use rotation::{Action, Quota, Row, RunHeader};
    let c = env.sim.config();
    let header = RunHeader {
        client_id: Some(c.client_id.clone()),
        ..RunHeader::new(
            c.tenant.clone(),
            Action::FileVault,
            "crashed run",
            Quota::new(4000, std::time::Duration::from_secs(1)),
        )
    };
    let mut l = rotation::Ledger::create(path, &header).unwrap();
    let ids: Vec<uuid::Uuid> = ids.iter().map(|id| id.parse().unwrap()).collect();
    for &id in &ids {
        l.append(&Row::Planned {
            id,
            name: None,
            serial: None,
            user: None,
            os: Some("macOS".into()),
            line: None,
            viewed_at: None,
            viewed_by: None,
        })
        .unwrap();
    }
    l.append(&Row::PlanDone {
        planned: ids.len() as u64,
        skipped: 0,
        skip_reasons: Default::default(),
        at: rotation::now_iso(),
    })
    .unwrap();
    let an_hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    let at = humantime::format_rfc3339_millis(an_hour_ago).to_string();
    for &id in &ids {
        l.append(&Row::Sent {
            id,
            attempt: 1,
            at: at.clone(),
        })
        .unwrap();
    }
    l.sync().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_never_sends_a_device_in_doubt_whose_look_up_cannot_be_read() {
    // Every single-device read fails; listings, sign-in and actions work.
    let env = Env::new(SimConfig {
        read_p500: 1.0,
        ..fast(60)
    })
    .await;
    let doubtful: Vec<String> = eligible_macs(&env).into_iter().take(3).collect();
    let ledger = env.path("crashed.jsonl");
    crashed_ledger(&env, &ledger, &doubtful);
    let o = env.run(&["resume", "--ledger", &s(&ledger), "--yes"]).await;
    assert_eq!(code(&o), 1, "left in doubt: {}", stderr(&o));
    let stats = env.sim.stats();
    for id in &doubtful {
        assert_eq!(stats.accepted(ACTION, id), 0, "{id} was not sent unread");
    }
    let st = env
        .run(&["status", "--ledger", &s(&ledger), "--json"])
        .await;
    let doc: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    assert_eq!(doc["in_doubt"], 3, "{doc}");
}
