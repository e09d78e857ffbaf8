//! A scheduled run's shape: a dated ledger per run in `--ledger-dir`, and a run that finds another
//! going in that directory exits 5 with nothing sent.

use crate::util::*;
use std::path::Path;

fn ledgers(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|r| {
            r.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.ends_with(".jsonl"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// `rotate --input CSV --ledger-dir DIR --yes`.
async fn rotate_in(env: &Env, csv: &Path, dir: &Path) -> std::process::Output {
    env.run(&[
        "rotate",
        "--input",
        &s(csv),
        "--ledger-dir",
        &s(dir),
        "--yes",
    ])
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_run_in_a_ledger_dir_gets_a_ledger_of_its_own_named_by_its_second() {
    let env = Env::new(fast(50)).await;
    let (csv, dir) = (env.devices_csv(), env.path("ledgers"));
    for _ in 0..2 {
        let o = rotate_in(&env, &csv, &dir).await;
        assert_eq!(code(&o), 0, "{}", stderr(&o));
    }
    let names = ledgers(&dir);
    assert_eq!(names.len(), 2, "{names:?}");
    for n in &names {
        // 2026-12-01T020000Z-filevault.jsonl, or -2 for a second run of the same second.
        let (stamp, rest) = n.split_at(18);
        assert!(
            stamp.ends_with('Z') && stamp.as_bytes()[10] == b'T' && !stamp.contains(':'),
            "{n}"
        );
        assert!(rest.starts_with("-filevault"), "{n}");
        let doc = env.status_json(&dir.join(n)).await;
        assert_eq!(doc["pending"], 0, "{n}: {doc}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_finds_another_going_in_its_ledger_dir_exits_5_and_sends_nothing() {
    let env = Env::new(fast(50)).await;
    let (csv, dir) = (env.devices_csv(), env.path("ledgers"));
    let going = rotation::ClaimedDir::claim(
        &dir,
        rotation::Action::FileVault,
        std::time::SystemTime::now(),
    )
    .unwrap();
    let o = rotate_in(&env, &csv, &dir).await;
    assert_eq!(code(&o), 5, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("another intune-rotate run"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        env.sim.stats().requests,
        0,
        "nothing sent, not even a sign-in"
    );
    assert!(ledgers(&dir).is_empty());
    drop(going);
    let o = rotate_in(&env, &csv, &dir).await;
    assert_eq!(code(&o), 0, "once the other run ends: {}", stderr(&o));
}
