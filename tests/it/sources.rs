//! Every way of finding devices, compared with the simulator's own truth, and every action on its
//! platform.

use crate::util::*;
use graph_sim::SimConfig;
use std::collections::BTreeSet;

fn ids_of_csv(text: &str) -> BTreeSet<String> {
    text.lines()
        .skip(1)
        .filter_map(|l| l.split(',').next())
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

async fn devices(env: &Env, args: &[&str]) -> BTreeSet<String> {
    let mut all = vec!["devices"];
    all.extend_from_slice(args);
    eprintln!("devices {args:?}");
    let o = env.run(&all).await;
    assert_eq!(code(&o), 0, "{args:?}: {}", stderr(&o));
    ids_of_csv(&String::from_utf8_lossy(&o.stdout))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_source_lists_exactly_the_simulators_devices() {
    let env = Env::new(fast(2500)).await;
    let t = env.sim.tenant();
    let set = |it: &mut dyn Iterator<Item = &graph_sim::Device>| {
        it.map(|d| d.id.clone()).collect::<BTreeSet<_>>()
    };
    let macs = set(&mut t.devices.iter().filter(|d| d.os == "macOS"));
    assert_eq!(
        devices(&env, &["--query"]).await,
        macs,
        "default filter, over three pages"
    );
    let windows = set(&mut t.devices.iter().filter(|d| d.os == "Windows"));
    assert_eq!(
        devices(&env, &["--query", "--action", "bitlocker"]).await,
        windows
    );
    let clear = set(&mut t.devices.iter().filter(|d| d.os == "macOS" && !d.encrypted));
    assert_eq!(
        devices(
            &env,
            &[
                "--query",
                "operatingSystem eq 'macOS' and isEncrypted eq false"
            ]
        )
        .await,
        clear
    );
    let co = set(&mut t
        .devices
        .iter()
        .filter(|d| d.comanaged() && d.os == "Windows"));
    assert_eq!(
        devices(
            &env,
            &[
                "--query",
                "--collection",
                "comanagedDevices",
                "--action",
                "laps"
            ]
        )
        .await,
        co
    );
    let script = &t.scripts[0];
    // A health script runs PowerShell: its run states hold Windows devices only (graph-facts §11).
    let failed: BTreeSet<String> = script
        .run_states
        .iter()
        .filter(|r| t.devices[r.device].runs(script.kind, &t.shapes))
        .filter(|r| r.state == "fail" || r.state == "scriptError")
        .map(|r| t.devices[r.device].id.clone())
        .collect();
    assert_eq!(
        devices(
            &env,
            &[
                "--health-script",
                &script.id,
                "--run-state",
                "fail",
                "scriptError"
            ]
        )
        .await,
        failed
    );
    let mscript = t
        .scripts
        .iter()
        .find(|s| s.kind.collection() == "deviceManagementScripts")
        .unwrap();
    let all_runs: BTreeSet<String> = mscript
        .run_states
        .iter()
        .filter(|r| t.devices[r.device].runs(mscript.kind, &t.shapes))
        .map(|r| t.devices[r.device].id.clone())
        .collect();
    assert_eq!(
        devices(&env, &["--management-script", &mscript.id]).await,
        all_runs
    );
    // Mac scripts are shell scripts: their run states hold Macs, and --shell-script lists them.
    let shell = t
        .scripts
        .iter()
        .find(|s| s.kind.collection() == "deviceShellScripts")
        .unwrap();
    let macs_run: BTreeSet<String> = shell
        .run_states
        .iter()
        .map(|r| t.devices[r.device].id.clone())
        .collect();
    assert!(!macs_run.is_empty());
    assert!(
        macs_run
            .iter()
            .all(|id| t.device(id).unwrap().os == "macOS")
    );
    assert_eq!(
        devices(&env, &["--shell-script", "FileVault escrow check"]).await,
        macs_run
    );
    let (u1, u2) = (t.devices[0].upn.clone(), t.devices[1].user_id.clone());
    let theirs = set(&mut t.devices.iter().filter(|d| d.upn == u1 || d.user_id == u2));
    let users_file = env.path("users.txt");
    std::fs::write(&users_file, format!("# departing\n{u2}\n")).unwrap();
    assert_eq!(
        devices(&env, &["--user", &u1, "--users-file", &s(&users_file)]).await,
        {
            let mut both = devices(&env, &["--user", &u1]).await;
            both.extend(devices(&env, &["--user", &u2]).await);
            both
        }
    );
    assert_eq!(
        devices(&env, &["--user", &u1, "--users-file", &s(&users_file)]).await,
        theirs
    );
    let app = &t.apps[1];
    let with_app: BTreeSet<String> = app
        .devices
        .iter()
        .map(|&i| t.devices[i].id.clone())
        .collect();
    assert_eq!(devices(&env, &["--detected-app", &app.id]).await, with_app);
    let o = env.run(&["devices", "--query", "--format", "json"]).await;
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc.as_array().unwrap().len(), macs.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_from_each_source_rotates_exactly_its_eligible_devices() {
    let t0 = Env::new(fast(400)).await;
    let t = t0.sim.tenant();
    drop(t0);
    let app = t.apps[0].id.clone();
    let script = t.scripts[0].id.clone();
    let user = t
        .devices
        .iter()
        .find(|d| d.os == "macOS")
        .unwrap()
        .upn
        .clone();
    let sources: Vec<Vec<String>> = vec![
        vec!["--query".into()],
        vec![
            "--health-script".into(),
            script,
            "--run-state".into(),
            "fail".into(),
        ],
        vec!["--user".into(), user],
        vec!["--detected-app".into(), app],
    ];
    for src in sources {
        let env = Env::new(fast(400)).await;
        let ledger = env.path("l.jsonl");
        let listed = devices(&env, &src.iter().map(String::as_str).collect::<Vec<_>>()).await;
        let truth = env.sim.tenant();
        let eligible: BTreeSet<String> = truth
            .devices
            .iter()
            .filter(|d| listed.contains(&d.id) && sendable(d, "filevault"))
            .map(|d| d.id.clone())
            .collect();
        let mut args = vec![
            "rotate",
            "--ledger",
            ledger.to_str().unwrap(),
            "--yes",
            "--rate",
            "4000/1s",
        ];
        args.extend(src.iter().map(String::as_str));
        let o = env.run(&args).await;
        assert_eq!(code(&o), 0, "{src:?}: {}", stderr(&o));
        let stats = env.sim.stats();
        let rotated: BTreeSet<String> = stats
            .actions
            .get("rotateFileVaultKey")
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        assert_eq!(rotated, eligible, "{src:?}");
        assert_eq!(stats.devices_accepted_twice("rotateFileVaultKey"), 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_action_rotates_on_its_platform_and_skips_the_others_without_sending() {
    let env = Env::new(fast(300)).await;
    let csv = env.devices_csv();
    let t = env.sim.tenant();
    for (action, graph) in [
        ("filevault", "rotateFileVaultKey"),
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
                "--input",
                &s(&csv),
                "--ledger",
                &s(&ledger),
                "--yes",
                "--rate",
                "4000/1s",
            ])
            .await;
        assert_eq!(code(&o), 0, "{action}: {}", stderr(&o));
        let expected = t.devices.iter().filter(|d| sendable(d, action)).count();
        assert_eq!(
            env.sim.stats().devices_accepted(graph),
            expected,
            "{action}"
        );
        assert!(
            String::from_utf8_lossy(&o.stdout).contains("skipped"),
            "{action}: the other platforms are skipped with a reason"
        );
    }
    let stats = env.sim.stats();
    assert_eq!(
        stats.statuses.get(&400),
        None,
        "no action was sent to a device of the wrong platform"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_that_fails_part_way_sends_nothing_unless_partial_is_allowed() {
    let env = Env::new(SimConfig {
        list_fail_after_pages: Some(1),
        ..fast(2500)
    })
    .await;
    let ledger = env.path("l.jsonl");
    // Page one is the pre-flight call; the listing's own first page then fails.
    let o = env
        .run(&[
            "rotate",
            "--query",
            "--ledger",
            &s(&ledger),
            "--yes",
            "--rate",
            "4000/1s",
        ])
        .await;
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("listing devices failed"),
        "{}",
        stderr(&o)
    );
    assert_eq!(env.sim.stats().devices_accepted("rotateFileVaultKey"), 0);
    assert!(
        !ledger.exists(),
        "no ledger is started for a run that cannot be planned"
    );

    let env = Env::new(SimConfig {
        list_fail_after_pages: Some(2),
        ..fast(2500)
    })
    .await;
    let ledger = env.path("l.jsonl");
    let o = env
        .run(&[
            "rotate",
            "--query",
            "--ledger",
            &s(&ledger),
            "--yes",
            "--rate",
            "4000/1s",
            "--allow-partial-source",
        ])
        .await;
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stderr(&o).contains("stopped part-way"), "{}", stderr(&o));
    let rotated = env.sim.stats().devices_accepted("rotateFileVaultKey");
    assert!(
        rotated > 0 && rotated < eligible_macs(&env).len(),
        "only the first page: {rotated}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serial_numbers_are_matched_through_one_listing_and_misses_are_named() {
    let env = Env::new(fast(300)).await;
    let t = env.sim.tenant();
    let macs: Vec<&graph_sim::Device> = t
        .devices
        .iter()
        .filter(|d| sendable(d, "filevault"))
        .take(5)
        .collect();
    let mut text = String::from("Serial number\n");
    for d in &macs {
        text.push_str(&format!("{}\n", d.serial.to_lowercase()));
    }
    text.push_str("NOSUCHSERIAL\n");
    let input = env.path("serials.csv");
    std::fs::write(&input, &text).unwrap();
    let strict = env
        .run(&[
            "rotate",
            "--input",
            &s(&input),
            "--match-by",
            "serial",
            "--strict",
            "--ledger",
            &s(&env.path("a.jsonl")),
            "--yes",
        ])
        .await;
    assert_eq!(code(&strict), 2, "{}", stderr(&strict));
    assert!(
        stderr(&strict).contains("line 7") && stderr(&strict).contains("nosuchserial"),
        "{}",
        stderr(&strict)
    );
    assert_eq!(env.sim.stats().devices_accepted("rotateFileVaultKey"), 0);
    let before = env.sim.stats().requests;
    let o = env
        .run(&[
            "rotate",
            "--input",
            &s(&input),
            "--match-by",
            "serial",
            "--ledger",
            &s(&env.path("b.jsonl")),
            "--yes",
            "--rate",
            "4000/1s",
        ])
        .await;
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("line 7"),
        "the miss is reported: {}",
        stderr(&o)
    );
    let stats = env.sim.stats();
    for d in &macs {
        assert_eq!(stats.accepted("rotateFileVaultKey", &d.id), 1);
    }
    assert_eq!(stats.devices_accepted("rotateFileVaultKey"), 5);
    // pre-flight + one listing page to match, one of action results, one of the encryption
    // report + one batch, and a GET of each planned Mac's action results (the listing leaves
    // them out): not one request per row
    assert!(
        stats.requests - before <= 4 + 5 + 5,
        "{} requests",
        stats.requests - before
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_lines_exclusions_and_stale_devices_are_planned_with_reasons() {
    let env = Env::new(fast(200)).await;
    let t = env.sim.tenant();
    let macs: Vec<&graph_sim::Device> = t
        .devices
        .iter()
        .filter(|d| sendable(d, "filevault"))
        .collect();
    let stale: Vec<&&graph_sim::Device> = macs
        .iter()
        .filter(|d| {
            std::time::SystemTime::now()
                .duration_since(d.last_sync)
                .unwrap()
                .as_secs()
                > 30 * 86_400
        })
        .collect();
    assert!(!stale.is_empty(), "the seed has stale Macs");
    let mut lines = String::new();
    for d in &macs {
        lines.push_str(&serde_json::json!({"id": d.id, "operatingSystem": "macOS", "managedDeviceOwnerType": d.owner, "lastSyncDateTime": humantime::format_rfc3339_seconds(d.last_sync).to_string()}).to_string());
        lines.push('\n');
    }
    let input = env.path("devices.jsonl");
    std::fs::write(&input, lines).unwrap();
    let exclude = env.path("exclude.txt");
    std::fs::write(&exclude, format!("{}\n", macs[0].id)).unwrap();
    let ledger = env.path("l.jsonl");
    let o = env
        .run(&[
            "rotate",
            "--input",
            &s(&input),
            "--ledger",
            &s(&ledger),
            "--yes",
            "--rate",
            "4000/1s",
            "--stale-after",
            "30d",
            "--exclude",
            &s(&exclude),
        ])
        .await;
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let stats = env.sim.stats();
    assert_eq!(
        stats.accepted("rotateFileVaultKey", &macs[0].id),
        0,
        "excluded"
    );
    for d in &stale {
        assert_eq!(stats.accepted("rotateFileVaultKey", &d.id), 0, "stale");
    }
    let excluded_stale = usize::from(stale.iter().any(|d| d.id == macs[0].id));
    assert_eq!(
        stats.devices_accepted("rotateFileVaultKey"),
        macs.len() - 1 - stale.len() + excluded_stale
    );
    let out = env.path("export.csv");
    env.run(&["export", "--ledger", &s(&ledger), "--out", &s(&out)])
        .await;
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(
        text.contains("excluded: listed in the run's exclusions")
            && text.contains("stale: last check-in"),
        "reasons are kept"
    );
}

/// Every example in `inputs/` reads as its README says, through the same code the commands use.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_example_input_reads_as_documented() {
    let inputs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("inputs");
    let dir = tempfile::tempdir().unwrap();
    let planned = |file: &'static str, extra: Vec<String>, n: usize| {
        let ledger = dir.path().join(format!("{file}.jsonl"));
        let input = inputs.join(file);
        async move { plan_dry(&input, &ledger, extra, n, file).await }
    };
    let exclude = s(&inputs.join("exclude.txt"));
    let out = planned(
        "intune-admin-center-export.csv",
        vec!["--exclude".into(), exclude],
        1,
    )
    .await;
    for reason in ["excluded", "not-encrypted", "platform"] {
        assert!(out.contains(reason), "{reason}: {out}");
    }
    planned("powershell-export-semicolon.csv", Vec::new(), 2).await;
    planned("devices.jsonl", Vec::new(), 2).await;
    for (file, key) in [
        ("serial-numbers.csv", rotation::KeyColumn::Serial),
        ("device-names.csv", rotation::KeyColumn::Name),
        ("entra-device-ids.csv", rotation::KeyColumn::EntraId),
    ] {
        let list = rotation::DeviceList::open(&s(&inputs.join(file))).unwrap();
        let mut keys = Vec::new();
        list.for_each_keyed(key, |d| {
            keys.push(d.raw_id);
            Ok(())
        })
        .unwrap();
        assert_eq!(keys.len(), 2, "{file}: {keys:?}");
    }
    let excluded = rotation::read_exclusions(&inputs.join("exclude.txt")).unwrap();
    assert_eq!(excluded.len(), 1);
}

/// `rotate --dry-run` of `input` (no connection: a file source), then the ledger's pending count.
async fn plan_dry(
    input: &std::path::Path,
    ledger: &std::path::Path,
    extra: Vec<String>,
    n: usize,
    file: &str,
) -> String {
    let mut args = vec![
        "rotate".to_string(),
        "--dry-run".into(),
        "--input".into(),
        s(input),
        "--ledger".into(),
        s(ledger),
    ];
    args.extend(extra);
    let o = run_plain(args, None, Vec::new()).await;
    assert_eq!(code(&o), 0, "{file}: {}", stderr(&o));
    let (state, _) = rotation::ledger_replay(ledger).unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout).to_string();
    assert_eq!(
        state.count(rotation::DeviceState::Pending),
        n,
        "{file}: {stdout}"
    );
    stdout
}
