//! Devices that cannot carry the action out are skipped with a reason, from the listing's fields;
//! key age and pending actions from the tenant's own records; verification from a second source.

use crate::util::*;
use graph_sim::SimConfig;
use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

/// Waits (bounded) until every action the simulator accepted has completed.
async fn settle(env: &Env) {
    for _ in 0..200 {
        let now = SystemTime::now();
        let open = env
            .sim
            .tenant()
            .devices
            .iter()
            .flat_map(|d| d.action_results.iter())
            .any(|r| r.completes > now && r.completes < now + Duration::from_secs(3600));
        if !open {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the simulator's actions did not complete");
}

/// `rotate --action ACTION --query --ledger LEDGER --yes EXTRA...` against the simulator.
async fn rotate_query(
    env: &Env,
    action: &str,
    ledger: &std::path::Path,
    extra: &[&str],
) -> std::process::Output {
    let ledger = s(ledger);
    let mut args = vec![
        "rotate", "--action", action, "--query", "--ledger", &ledger, "--yes",
    ];
    args.extend_from_slice(extra);
    env.run(&args).await
}

fn ids_where(t: &graph_sim::Tenant, f: impl Fn(&graph_sim::Device) -> bool) -> BTreeSet<String> {
    t.devices
        .iter()
        .filter(|d| f(d))
        .map(|d| d.id.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filevault_run_sends_to_exactly_the_eligible_macs_and_counts_each_skip() {
    let env = Env::new(fast(600)).await;
    let t = env.sim.tenant();
    let macs: Vec<&graph_sim::Device> = t.devices.iter().filter(|d| d.os == "macOS").collect();
    let want: BTreeSet<String> = macs
        .iter()
        .filter(|d| sendable(d, "filevault"))
        .map(|d| d.id.clone())
        .collect();
    let unencrypted = macs.iter().filter(|d| !d.encrypted).count();
    let personal = macs
        .iter()
        .filter(|d| d.encrypted && d.owner == "personal")
        .count();
    assert!(personal > 0 && unencrypted > 0, "the tenant is mixed");
    let ledger = env.path("fv.jsonl");
    let o = env
        .run(&["rotate", "--query", "--ledger", &s(&ledger), "--yes"])
        .await;
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains(&format!("skipped {personal} device(s): personal")),
        "{out}"
    );
    assert!(
        out.contains(&format!("skipped {unencrypted} device(s): not-encrypted")),
        "{out}"
    );
    let passes = |d: &&&graph_sim::Device| d.encrypted && d.owner == "company";
    let escrow = macs
        .iter()
        .filter(passes)
        .filter(|d| d.filevault_state == "escrowNotEnabled")
        .count();
    assert!(escrow > 0);
    assert!(
        out.contains(&format!("skipped {escrow} device(s): escrow-not-enabled")),
        "{out}"
    );
    let now = SystemTime::now();
    let pending = macs
        .iter()
        .filter(passes)
        .filter(|d| d.filevault_state == "success")
        .filter(|d| d.action_results.iter().any(|r| r.completes > now))
        .count();
    assert!(pending > 0);
    assert!(
        out.contains(&format!("skipped {pending} device(s): pending")),
        "{out}"
    );
    let stats = env.sim.stats();
    let sent: BTreeSet<String> = stats.actions["rotateFileVaultKey"]
        .keys()
        .cloned()
        .collect();
    assert_eq!(sent, want, "no ineligible Mac received the action");
    let status = env
        .run(&["status", "--ledger", &s(&ledger), "--json"])
        .await;
    let doc: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(
        doc["skip_reasons"]["personal"], personal,
        "status counts each reason: {doc}"
    );
    assert_eq!(doc["skip_reasons"]["escrow-not-enabled"], escrow, "{doc}");

    // Lenient and off: the same rules where the listing reports ownership, none when off.
    let off = env.path("off.jsonl");
    let o = env
        .run(&[
            "rotate",
            "--query",
            "--ledger",
            &s(&off),
            "--yes",
            "--eligibility",
            "off",
            "--dry-run",
        ])
        .await;
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(!text.contains("personal"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_lock_and_bitlocker_skip_by_version_supervision_architecture_and_join() {
    let env = Env::new(fast(600)).await;
    let t = env.sim.tenant();
    for (action, graph) in [
        ("recovery-lock", "rotateRecoveryLockPasscode"),
        ("bitlocker", "rotateBitLockerKeys"),
        ("laps", "rotateLocalAdminPassword"),
    ] {
        let ledger = env.path(&format!("{action}.jsonl"));
        let o = rotate_query(&env, action, &ledger, &[]).await;
        assert_eq!(code(&o), 0, "{action}: {}", stderr(&o));
        let want: BTreeSet<String> = t
            .devices
            .iter()
            .filter(|d| sendable(d, action))
            .map(|d| d.id.clone())
            .collect();
        let sent: BTreeSet<String> = env.sim.stats().actions[graph].keys().cloned().collect();
        assert_eq!(sent, want, "{action}");
        let out = String::from_utf8_lossy(&o.stdout);
        let reasons: &[&str] = match action {
            "recovery-lock" => &["os-version", "not-supervised", "architecture"],
            _ => &["join-type"],
        };
        for r in reasons {
            assert!(
                out.contains(&format!("): {r}")) || out.contains(&format!(" {r}")),
                "{action} {r}: {out}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_scheduled_run_skips_what_was_rotated_within_the_window() {
    let env = Env::new(SimConfig {
        complete_after: Duration::from_millis(300),
        fail_share: 0.15,
        ..fast(500)
    })
    .await;
    let start = SystemTime::now();
    let first = env.path("first.jsonl");
    let o = env
        .run(&[
            "rotate",
            "--query",
            "--ledger",
            &s(&first),
            "--yes",
            "--limit",
            "80",
        ])
        .await;
    assert!(matches!(code(&o), 0 | 1), "{}", stderr(&o));
    settle(&env).await;
    let t = env.sim.tenant();
    let ours = |d: &graph_sim::Device, failed: bool| {
        d.action_results
            .iter()
            .any(|r| r.started >= start && r.fails == failed)
    };
    let done_first = ids_where(&t, |d| ours(d, false));
    let failed_first = ids_where(&t, |d| ours(d, true));
    assert!(!done_first.is_empty() && !failed_first.is_empty());
    // Seeded rotations: 45 days ago is within 90 days, 120 days ago is not.
    let day = Duration::from_secs(86_400);
    let recent_seed = ids_where(&t, |d| {
        d.action_results.iter().any(|r| {
            r.started < start && !r.fails && r.completes + day * 90 > start && r.completes <= start
        })
    });
    assert!(!recent_seed.is_empty());

    let second = env.path("second.jsonl");
    let o = env
        .run(&[
            "rotate",
            "--query",
            "--ledger",
            &s(&second),
            "--yes",
            "--skip-rotated-within",
            "90d",
        ])
        .await;
    assert!(matches!(code(&o), 0 | 1), "{}", stderr(&o));
    let want: BTreeSet<String> = ids_where(&t, |d| sendable(d, "filevault"))
        .into_iter()
        .filter(|id| !done_first.contains(id) && !recent_seed.contains(id))
        .collect();
    let stats = env.sim.stats();
    let sent_second: BTreeSet<String> = stats.actions["rotateFileVaultKey"]
        .iter()
        .filter(|(id, n)| **n == 2 || !done_first.contains(*id) && !failed_first.contains(*id))
        .map(|(id, _)| id.clone())
        .collect();
    assert_eq!(sent_second, want);
    for id in failed_first.iter().filter(|id| !recent_seed.contains(*id)) {
        assert_eq!(
            stats.accepted("rotateFileVaultKey", id),
            2,
            "a device that failed is sent again (unless rotated within the window before): {id}"
        );
    }
    assert!(
        done_first
            .iter()
            .all(|id| stats.accepted("rotateFileVaultKey", id) == 1),
        "done devices are not"
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("rotated-recently"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bitlocker_key_age_comes_from_recovery_keys_and_devices_near_the_cap_are_named() {
    let env = Env::new(fast(600)).await;
    let t = env.sim.tenant();
    let start = SystemTime::now();
    let old = |d: &graph_sim::Device| {
        d.recovery_keys.iter().max().is_none_or(|k| {
            start.duration_since(*k).unwrap_or_default() > Duration::from_secs(90 * 86_400)
        })
    };
    let want = ids_where(&t, |d| sendable(d, "bitlocker") && old(d));
    let near_cap: Vec<_> = t
        .devices
        .iter()
        .filter(|d| d.recovery_keys.len() >= 190)
        .collect();
    assert!(!near_cap.is_empty() && want.len() < ids_where(&t, |d| sendable(d, "bitlocker")).len());
    let ledger = env.path("bl.jsonl");
    let o = env
        .run(&[
            "rotate",
            "--action",
            "bitlocker",
            "--query",
            "--ledger",
            &s(&ledger),
            "--yes",
            "--skip-rotated-within",
            "90d",
        ])
        .await;
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let sent: BTreeSet<String> = env.sim.stats().actions["rotateBitLockerKeys"]
        .keys()
        .cloned()
        .collect();
    assert_eq!(sent, want);
    let err = stderr(&o);
    assert!(err.contains("190 or more BitLocker recovery keys"), "{err}");
    assert!(near_cap.iter().all(|d| err.contains(&d.id)), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bitlocker_and_laps_are_verified_through_keys_and_backups() {
    let env = Env::new(SimConfig {
        complete_after: Duration::from_millis(300),
        ..fast(400)
    })
    .await;
    let t = env.sim.tenant();
    let now = SystemTime::now();
    let offline = |d: &graph_sim::Device| {
        now.duration_since(d.last_sync).unwrap_or_default() > Duration::from_secs(30 * 86_400)
    };
    for (action, evidence) in [("bitlocker", "recovery-key"), ("laps", "laps-backup")] {
        let ledger = env.path(&format!("{action}.jsonl"));
        let o = rotate_query(&env, action, &ledger, &[]).await;
        assert_eq!(code(&o), 0, "{action}: {}", stderr(&o));
        settle(&env).await;
        let o = env
            .run(&["verify", "--ledger", &s(&ledger), "--format", "json"])
            .await;
        let doc: serde_json::Value =
            serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", stderr(&o)));
        let sent = ids_where(&t, |d| sendable(d, action));
        let laps_offline = |d: &graph_sim::Device| action == "laps" && offline(d);
        let done = ids_where(&t, |d| {
            sent.contains(&d.id) && !d.escrow_broken && !laps_offline(d)
        })
        .len();
        let unconfirmed = ids_where(&t, |d| {
            sent.contains(&d.id) && d.escrow_broken && !laps_offline(d)
        })
        .len();
        let failed = ids_where(&t, |d| sent.contains(&d.id) && laps_offline(d)).len();
        assert!(unconfirmed > 0, "{action}");
        let count = |k: &str| doc["counts"][k].as_u64().unwrap_or(0) as usize;
        assert_eq!(
            (count("done"), count("done-unconfirmed"), count("failed")),
            (done, unconfirmed, failed),
            "{action}: {doc}"
        );
        assert_eq!(code(&o), 1, "done-unconfirmed is not success");
        let out = env.path(&format!("{action}.csv"));
        env.run(&["export", "--ledger", &s(&ledger), "--out", &s(&out)])
            .await;
        let text = std::fs::read_to_string(&out).unwrap();
        assert_eq!(
            text.matches(&format!(",{evidence}")).count(),
            done,
            "{action}: the export names the evidence"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_age_without_its_read_permission_exits_3_and_sends_nothing() {
    for (action, missing) in [
        ("bitlocker", "BitLockerKey.ReadBasic.All"),
        ("laps", "DeviceLocalCredential.ReadBasic.All"),
    ] {
        let env = Env::new(SimConfig {
            roles: graph_sim::ALL_ROLES
                .iter()
                .filter(|r| **r != missing)
                .map(|r| r.to_string())
                .collect(),
            ..fast(200)
        })
        .await;
        let ledger = env.path("l.jsonl");
        let o = env
            .run(&[
                "rotate",
                "--action",
                action,
                "--query",
                "--ledger",
                &s(&ledger),
                "--yes",
                "--skip-rotated-within",
                "30d",
            ])
            .await;
        assert_eq!(code(&o), 3, "{action}: {}", stderr(&o));
        assert!(stderr(&o).contains(missing), "{action}: {}", stderr(&o));
        assert!(env.sim.stats().actions.is_empty(), "{action}: nothing sent");
    }
}
