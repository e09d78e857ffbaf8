//! Many tenants in one run (`--tenants FILE --run-dir DIR`): every consented tenant rotated once,
//! the others blocked with Entra's reason and advice, a crash resumed across tenants, and one
//! tenant's storm leaving the others' pace alone.

use crate::util::*;
use graph_sim::{Quota, SimConfig};
use std::time::Duration;

const ACTION: &str = "rotateFileVaultKey";

/// Every device of a consented tenant rotated exactly once.
fn assert_each_rotated_once(env: &Env, what: &str) {
    for (id, _, consented) in env.sim.tenants() {
        let t = env.sim.tenant_of(&id).unwrap();
        let stats = env.sim.stats_of(&id).unwrap();
        for d in t.devices.iter().filter(|d| sendable(d, "filevault")) {
            let want = u64::from(consented);
            assert_eq!(
                stats.accepted(ACTION, &d.id),
                want,
                "{what}: tenant {id}, device {}",
                d.id
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_tenants_two_unconsented_all_others_rotated_once_and_the_two_blocked() {
    let configs: Vec<SimConfig> = (0..20)
        .map(|i| {
            tenant(
                i,
                SimConfig {
                    consented: i < 18,
                    p429: 0.03,
                    p503: 0.03,
                    drop: 0.03,
                    ..fast(40)
                },
            )
        })
        .collect();
    let env = Env::fleet(configs).await;
    let (tenants, run_dir, summary) =
        (env.tenants_csv(), env.path("run"), env.path("summary.json"));
    let o = env
        .rotate_tenants(
            &tenants,
            &run_dir,
            &[
                "--rate",
                "4000/1s",
                "--max-attempts",
                "20",
                "--summary-json",
                &s(&summary),
            ],
        )
        .await;
    assert_eq!(code(&o), 1, "two tenants blocked is exit 1: {}", stderr(&o));
    assert_each_rotated_once(&env, "rotate");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("AADSTS7000229"), "{out}");
    assert!(
        out.contains("/adminconsent?client_id=sim-client"),
        "the advice names the consent URL: {out}"
    );
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap();
    let tenants_doc = doc["tenants"].as_array().unwrap();
    assert_eq!(tenants_doc.len(), 20);
    let blocked: Vec<_> = tenants_doc
        .iter()
        .filter(|t| t["state"] == "blocked")
        .collect();
    assert_eq!(blocked.len(), 2, "{doc}");
    assert!(
        blocked
            .iter()
            .all(|t| t["advice"].as_str().unwrap().contains("adminconsent"))
    );
    let st = env
        .run(&["status", "--run-dir", &s(&run_dir), "--json"])
        .await;
    let st: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    let rotated = st["rotated"].as_u64().unwrap();
    assert_eq!(
        rotated,
        env.sim.stats().devices_accepted(ACTION) as u64,
        "{st}"
    );
    // `verify --run-dir`: each tenant with a ledger looked up; the two blocked ones have none.
    let v = env.run(&["verify", "--run-dir", &s(&run_dir)]).await;
    assert_eq!(code(&v), 1, "two tenants have no ledger: {}", stderr(&v));
    let text = String::from_utf8_lossy(&v.stdout);
    assert_eq!(text.matches("no ledger").count(), 2, "{text}");
    assert!(text.lines().any(|l| l.starts_with("total: ")), "{text}");
    let csv = env.path("all.csv");
    let e = env
        .run(&["export", "--run-dir", &s(&run_dir), "--out", &s(&csv)])
        .await;
    assert_eq!(code(&e), 0, "{}", stderr(&e));
    let text = std::fs::read_to_string(&csv).unwrap();
    assert!(
        text.starts_with("tenant_id,tenant_name,device_id,"),
        "{}",
        &text[..80]
    );
    let rows = text.lines().count() - 1;
    assert_eq!(
        rows as u64,
        st["devices"].as_u64().unwrap(),
        "every planned device of every tenant"
    );
    assert_eq!(text.matches(",rotated,").count() as u64, rotated);
    // The report of the run directory: a row per tenant, the blocked ones with their reason.
    let page = env.path("report.html");
    let r = env
        .run(&["report", "--run-dir", &s(&run_dir), "--out", &s(&page)])
        .await;
    assert_eq!(code(&r), 0, "{}", stderr(&r));
    let html = std::fs::read_to_string(&page).unwrap();
    assert_eq!(html.matches("<tr data-tenant=").count(), 20);
    assert_eq!(
        html.matches("AADSTS7000229").count(),
        2,
        "the two blocked tenants' reasons"
    );
    // `devices --tenants`: every readable tenant's devices, tenant columns first; exit 1 for the two.
    let lists = env.path("lists");
    let d = env
        .run(&[
            "devices",
            "--query",
            "--tenants",
            &s(&tenants),
            "--run-dir",
            &s(&lists),
        ])
        .await;
    assert_eq!(code(&d), 1, "{}", stderr(&d));
    let listed = String::from_utf8_lossy(&d.stdout);
    assert!(
        listed.starts_with("tenant_id,tenant_name,"),
        "{}",
        &listed[..60.min(listed.len())]
    );
    assert_eq!(
        stderr(&d).matches("AADSTS7000229").count(),
        2,
        "{}",
        stderr(&d)
    );
    assert_eq!(
        std::fs::read_dir(lists.join("devices")).unwrap().count(),
        18,
        "a list per readable tenant"
    );
    // Each tenant's ledger stands on its own.
    let (id, ..) = &env.sim.tenants()[0];
    let one = env
        .run(&[
            "status",
            "--ledger",
            &s(&run_dir.join("tenants").join(format!("{id}.jsonl"))),
            "--json",
        ])
        .await;
    assert_eq!(code(&one), 0, "{}", stderr(&one));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_ten_tenant_run_resumes_with_nobody_lost_and_nobody_rotated_twice() {
    let configs: Vec<SimConfig> = (0..10)
        .map(|i| {
            tenant(
                i,
                SimConfig {
                    post_limit: Quota::new(60, Duration::from_secs(1)),
                    tenant_post_limit: Quota::new(120, Duration::from_secs(1)),
                    latency: Duration::from_millis(30),
                    ..fast(200)
                },
            )
        })
        .collect();
    let env = Env::fleet(configs).await;
    let (tenants, run_dir) = (env.tenants_csv(), env.path("run"));
    let dir = run_dir.join("tenants");
    // Killed once a few hundred requests have left, across tenants: some tenants part-way.
    let args = rotate_tenants_args(&tenants, &run_dir, &["--rate", "60/1s"]);
    let killed = env
        .run_killed(
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
            move |_| {
                let sent: usize = std::fs::read_dir(&dir)
                    .into_iter()
                    .flatten()
                    .flatten()
                    .filter_map(|f| std::fs::read(f.path()).ok())
                    .map(|b| {
                        b.split(|&c| c == b'\n')
                            .filter(|l| l.starts_with(br#"{"type":"sent""#))
                            .count()
                    })
                    .sum();
                sent >= 300
            },
        )
        .await;
    assert!(killed, "the run was killed part-way");
    let before = env
        .run(&["status", "--run-dir", &s(&run_dir), "--json"])
        .await;
    assert_eq!(
        code(&before),
        0,
        "every ledger parses after kill -9: {}",
        stderr(&before)
    );
    let r = env
        .run(&[
            "resume",
            "--run-dir",
            &s(&run_dir),
            "--yes",
            "--rate",
            "60/1s",
            // No late actions here: a short second look-up keeps the test short.
            "--lost-answer-recheck",
            "3s",
        ])
        .await;
    assert_eq!(
        code(&r),
        0,
        "{}\n{}",
        String::from_utf8_lossy(&r.stdout),
        stderr(&r)
    );
    assert_each_rotated_once(&env, "after resume");
    let st = env
        .run(&["status", "--run-dir", &s(&run_dir), "--json"])
        .await;
    let st: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    assert_eq!(
        (st["pending"].as_u64(), st["in_doubt"].as_u64()),
        (Some(0), Some(0)),
        "{st}"
    );
    assert!(
        st["tenants"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["state"] == "done"),
        "{st}"
    );
}

/// A tenants file with a `cloud` column: the first tenant in another national cloud.
fn tenants_with_cloud(env: &Env) -> std::path::PathBuf {
    let p = env.path("tenants-cloud.csv");
    let mut text = String::from("tenant_id,name,cloud\n");
    for (k, (id, name, _)) in env.sim.tenants().iter().enumerate() {
        let cloud = if k == 0 { "usgov" } else { "" };
        text.push_str(&format!("{id},{name},{cloud}\n"));
    }
    std::fs::write(&p, text).unwrap();
    p
}

fn header_of(ledger: &std::path::Path) -> serde_json::Value {
    let text = std::fs::read_to_string(ledger).unwrap();
    serde_json::from_str(text.lines().next().unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_tenants_ledger_header_records_its_own_cloud() {
    let env = Env::fleet((0..2).map(|i| tenant(i, fast(20))).collect()).await;
    let (tenants, run_dir) = (tenants_with_cloud(&env), env.path("run"));
    let o = env
        .rotate_tenants(&tenants, &run_dir, &["--rate", "4000/1s"])
        .await;
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let ids: Vec<String> = env.sim.tenants().into_iter().map(|(id, ..)| id).collect();
    let ledger = |id: &str| run_dir.join("tenants").join(format!("{id}.jsonl"));
    assert_eq!(header_of(&ledger(&ids[0]))["cloud"], "usgov");
    assert_eq!(
        header_of(&ledger(&ids[1]))["cloud"],
        "global",
        "a tenant without one is in the run's cloud"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_exclude_list_is_read_once_for_every_tenant() {
    let env = Env::fleet((0..3).map(|i| tenant(i, fast(20))).collect()).await;
    // One Mac of each tenant left alone; the list comes through a pipe, which can be read once.
    let excluded: Vec<String> = env
        .sim
        .tenants()
        .iter()
        .map(|(id, ..)| {
            let t = env.sim.tenant_of(id).unwrap();
            t.devices
                .iter()
                .find(|d| sendable(d, "filevault"))
                .unwrap()
                .id
                .clone()
        })
        .collect();
    let fifo = env.path("exclude.fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let (path, text) = (fifo.clone(), excluded.join("\n") + "\n");
    let writer = std::thread::spawn(move || std::fs::write(&path, text).unwrap());
    let (tenants, run_dir, fifo) = (env.tenants_csv(), env.path("run"), s(&fifo));
    let extra = ["--rate", "4000/1s", "--exclude", &fifo];
    let o = tokio::time::timeout(
        Duration::from_secs(120),
        env.rotate_tenants(&tenants, &run_dir, &extra),
    )
    .await
    .expect("the run does not wait on a second read of the list");
    writer.join().unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    for (k, (id, ..)) in env.sim.tenants().iter().enumerate() {
        let stats = env.sim.stats_of(id).unwrap();
        assert_eq!(
            stats.accepted(ACTION, &excluded[k]),
            0,
            "tenant {id} left its excluded Mac alone"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_manifest_keeps_what_the_run_was_asked_and_an_earlier_releases_argv_still_resumes() {
    let env = Env::fleet((0..3).map(|i| tenant(i, fast(20))).collect()).await;
    let (tenants, run_dir) = (s(&env.tenants_csv()), s(&env.path("run")));
    let args = [
        "rotate",
        "--query",
        "--tenants",
        &tenants,
        "--run-dir",
        &run_dir,
        "--yes",
        "--rate",
        "4000/1s",
        // A policy that is not the default, so the resumed plan shows it came through.
        "--no-skip-pending",
    ];
    let o = env.run(&args).await;
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let manifest_path = env.path("run").join("manifest.json");
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
    assert!(manifest["options"].get("argv").is_none(), "{manifest}");
    assert_eq!(manifest["spec"]["source"]["kind"], "query", "{manifest}");
    assert_eq!(
        manifest["spec"]["policy"]["skip_pending"], false,
        "{manifest}"
    );

    // The same directory as the earlier release wrote it: the command line in its options, and
    // the last tenant never planned.
    let last = manifest["tenants"].as_array().unwrap().len() - 1;
    let id = manifest["tenants"][last]["tenant_id"]
        .as_str()
        .unwrap()
        .to_string();
    manifest["tenants"][last]["state"] = "waiting".into();
    let obj = manifest.as_object_mut().unwrap();
    obj.remove("spec");
    obj.insert("version".into(), 1.into());
    let mut argv = vec!["intune-rotate".to_string()];
    argv.extend(args.iter().map(|a| a.to_string()));
    obj["options"]["argv"] = serde_json::json!(argv);
    std::fs::write(
        &manifest_path,
        serde_json::to_vec_pretty(&manifest).unwrap(),
    )
    .unwrap();
    let ledger = env.path("run").join("tenants").join(format!("{id}.jsonl"));
    std::fs::remove_file(&ledger).unwrap();
    let _ = std::fs::remove_file(ledger.with_extension("jsonl.state"));
    let stats = env.sim.stats_of(&id).unwrap();
    let before = stats.devices_accepted(ACTION);
    assert!(before > 0);

    let r = env
        .run(&[
            "resume",
            "--run-dir",
            &run_dir,
            "--yes",
            "--rate",
            "4000/1s",
        ])
        .await;
    assert_eq!(code(&r), 0, "{}", stderr(&r));
    assert!(
        ledger.exists(),
        "the tenant was planned from the earlier release's argv"
    );
    let t = env.sim.tenant_of(&id).unwrap();
    let stats = env.sim.stats_of(&id).unwrap();
    for d in t.devices.iter().filter(|d| sendable(d, "filevault")) {
        assert_eq!(
            stats.accepted(ACTION, &d.id),
            2,
            "planned again from the old manifest (its ledger was gone): {}",
            d.id
        );
    }
}
