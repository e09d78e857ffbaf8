//! Devices that cannot carry the action out are skipped with a reason, from the listing's fields.

use crate::util::*;
use std::collections::BTreeSet;

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
        out.contains(&format!("skipped {unencrypted} device(s): not encrypted")),
        "{out}"
    );
    let stats = env.sim.stats();
    let sent: BTreeSet<String> = stats.actions["rotateFileVaultKey"]
        .keys()
        .cloned()
        .collect();
    assert_eq!(sent, want, "no ineligible Mac received the action");

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
        let o = env
            .run(&[
                "rotate",
                "--action",
                action,
                "--query",
                "--ledger",
                &s(&ledger),
                "--yes",
            ])
            .await;
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
