//! Disk trouble under the ledger: a write that fails (a full disk, a file-size limit) stops the run
//! with exit 4 and a message saying what to do; every row written before stands, no request left
//! without its `sent` row on disk, and the run goes on once space is back.

use crate::util::*;
use std::collections::HashSet;
use std::path::Path;

const ACTION: &str = "rotateFileVaultKey";

/// Bytes of the ledger once the plan is written: a dry run plans the same devices.
async fn plan_bytes(env: &Env, csv: &Path) -> u64 {
    let dry = env.path("dry.jsonl");
    let o = env.rotate(csv, &dry, &["--dry-run"]).await;
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    std::fs::metadata(&dry).unwrap().len()
}

/// Devices with a complete `sent` row in the ledger.
fn sent_ids(ledger: &Path) -> HashSet<String> {
    let text = std::fs::read_to_string(ledger).unwrap();
    text.split_inclusive('\n')
        .filter(|l| l.ends_with('\n'))
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|row| row["type"] == "sent")
        .map(|row| row["id"].as_str().unwrap().to_string())
        .collect()
}

fn rotate_args<'a>(csv: &'a str, ledger: &'a str) -> Vec<&'a str> {
    vec![
        "rotate", "--input", csv, "--ledger", ledger, "--yes", "--rate", "4000/1s",
    ]
}

/// What must hold after the stop: exit 4 naming the ledger and the next step, nothing accepted
/// twice, and nothing accepted that has no `sent` row.
fn assert_clean_stop(env: &Env, o: &std::process::Output, ledger: &Path, next: &str) {
    assert_eq!(code(o), 4, "{}", stderr(o));
    let err = stderr(o);
    assert!(
        err.contains("cannot write the ledger") && err.contains(&s(ledger)),
        "{err}"
    );
    assert!(err.contains(next), "expected {next:?} in {err}");
    let stats = env.sim.stats();
    assert_eq!(stats.devices_accepted_twice(ACTION), 0);
    let sent = sent_ids(ledger);
    for id in eligible_macs(env) {
        if stats.accepted(ACTION, &id) > 0 {
            assert!(sent.contains(&id), "{id} was rotated without a `sent` row");
        }
    }
}

fn assert_each_mac_rotated_once(env: &Env) {
    let stats = env.sim.stats();
    for id in eligible_macs(env) {
        assert_eq!(stats.accepted(ACTION, &id), 1, "{id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ledger_that_cannot_grow_mid_run_stops_with_4_and_resume_finishes() {
    let env = Env::new(fast(800)).await;
    let (csv, ledger) = (env.devices_csv(), env.path("run.jsonl"));
    let plan = plan_bytes(&env, &csv).await;
    let (c, l) = (s(&csv), s(&ledger));
    // Room for the plan and part of the sending: the write fails part-way through the run.
    let o = env
        .run_with_file_limit(&rotate_args(&c, &l), plan + 30_000)
        .await;
    assert_clean_stop(&env, &o, &ledger, "resume --ledger");
    let stats = env.sim.stats();
    let macs = eligible_macs(&env);
    let done = stats.devices_accepted(ACTION);
    assert!(
        done > 0 && done < macs.len(),
        "stopped part-way ({done} of {})",
        macs.len()
    );
    let st = env.run(&["status", "--ledger", &l, "--json"]).await;
    assert_eq!(code(&st), 0, "the ledger parses: {}", stderr(&st));
    // Space is back: resume looks up the devices in doubt and sends the rest.
    let r = env
        .run(&["resume", "--ledger", &l, "--rate", "4000/1s", "--yes"])
        .await;
    assert_eq!(code(&r), 0, "{}", stderr(&r));
    assert_each_mac_rotated_once(&env);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ledger_that_fills_while_planning_sends_nothing_and_rotate_plans_it_afresh() {
    let env = Env::new(fast(800)).await;
    let (csv, ledger) = (env.devices_csv(), env.path("run.jsonl"));
    let plan = plan_bytes(&env, &csv).await;
    let (c, l) = (s(&csv), s(&ledger));
    let o = env
        .run_with_file_limit(&rotate_args(&c, &l), plan / 2)
        .await;
    assert_clean_stop(&env, &o, &ledger, "same `intune-rotate rotate` command");
    assert_eq!(env.sim.stats().devices_accepted(ACTION), 0, "nothing sent");
    let r = env.run(&["resume", "--ledger", &l, "--yes"]).await;
    assert_eq!(code(&r), 2, "{}", stderr(&r));
    assert!(stderr(&r).contains("never finished"), "{}", stderr(&r));
    let again = env.run(&rotate_args(&c, &l)).await;
    assert_eq!(code(&again), 0, "{}", stderr(&again));
    assert_each_mac_rotated_once(&env);
}

/// A real full file system: a small tmpfs where this machine lets us mount one (root), grown
/// afterwards as an admin would free space. Elsewhere the file-size trials above cover the path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_file_system_stops_the_run_and_resume_finishes_once_space_is_freed() {
    let env = Env::new(fast(800)).await;
    let csv = env.devices_csv();
    let plan = plan_bytes(&env, &csv).await;
    let mnt = env.path("small-disk");
    std::fs::create_dir(&mnt).unwrap();
    let kib = (plan + 40_000).div_ceil(4096) * 4;
    let Some(_mount) = Tmpfs::mount(&mnt, kib) else {
        eprintln!("skipped: cannot mount a tmpfs here (not root); the file-size trials cover this");
        return;
    };
    let ledger = mnt.join("run.jsonl");
    let (c, l) = (s(&csv), s(&ledger));
    let o = env.run(&rotate_args(&c, &l)).await;
    assert_clean_stop(&env, &o, &ledger, "resume --ledger");
    assert!(
        stderr(&o).contains("No space left on device"),
        "{}",
        stderr(&o)
    );
    assert!(Tmpfs::grow(&mnt, 16 * 1024), "remount with more space");
    let r = env
        .run(&["resume", "--ledger", &l, "--rate", "4000/1s", "--yes"])
        .await;
    assert_eq!(code(&r), 0, "{}", stderr(&r));
    assert_each_mac_rotated_once(&env);
}

/// A mounted tmpfs, unmounted when dropped.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, kib: u64) -> Option<Tmpfs> {
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={kib}k"), "tmpfs"])
            .arg(dir)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(dir.to_path_buf()))
    }

    fn grow(dir: &Path, kib: u64) -> bool {
        std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={kib}k")])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}
