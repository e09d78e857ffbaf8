//! End-to-end behaviour of the binaries against the simulated tenant.

mod auth;
mod cli;
mod credentials;
mod disk;
mod doctor;
mod eligibility;
mod faults;
mod notify;
mod read_ahead;
mod report;
mod result_names;
mod scheduled;
mod sources;
mod targeting;
mod tenants;
mod util;
mod viewed;

use graph_sim::RetryAfterStyle;

use util::*;

const ACTION: &str = "rotateFileVaultKey";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_mac_is_rotated_exactly_once() {
    let env = Env::new(fast(2000)).await;
    let (csv, ledger, out) = (
        env.devices_csv(),
        env.path("run.jsonl"),
        env.path("result.csv"),
    );
    let o = env.rotate(&csv, &ledger, &["--rate", "4000/1s"]).await;
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let stats = env.sim.stats();
    let macs = eligible_macs(&env);
    assert!(macs.len() > 700, "{}", macs.len());
    for id in &macs {
        assert_eq!(stats.accepted(ACTION, id), 1, "{id}");
    }
    assert_eq!(
        stats.devices_accepted(ACTION),
        macs.len(),
        "nothing but the eligible Macs was rotated"
    );
    let e = env
        .run(&["export", "--ledger", &s(&ledger), "--out", &s(&out)])
        .await;
    assert_eq!(code(&e), 0, "{}", stderr(&e));
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.starts_with("device_id,state,"));
    assert_eq!(
        text.lines().filter(|l| l.contains(",rotated,")).count(),
        macs.len()
    );
    assert_eq!(
        text.lines().count(),
        2001,
        "one row per device plus the header"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_and_server_errors_are_retried_without_rotating_anyone_twice() {
    let config = graph_sim::SimConfig {
        p429: 0.05,
        p503: 0.05,
        latency: std::time::Duration::from_millis(5),
        ..fast(800)
    };
    let env = Env::new(config).await;
    let (csv, ledger) = (env.devices_csv(), env.path("run.jsonl"));
    let o = env.rotate(&csv, &ledger, &["--rate", "4000/1s"]).await;
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let stats = env.sim.stats();
    assert!(stats.throttled > 0, "the fault injection produced 429s");
    for id in eligible_macs(&env) {
        assert_eq!(stats.accepted(ACTION, &id), 1, "{id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_retry_after_style_is_honoured_and_nothing_comes_back_early() {
    for style in [
        RetryAfterStyle::Int,
        RetryAfterStyle::Fraction,
        RetryAfterStyle::Date,
        RetryAfterStyle::Comma,
        RetryAfterStyle::None,
    ] {
        // A tight limit and a client configured above it: throttling is certain.
        let config = graph_sim::SimConfig {
            post_limit: graph_sim::Quota::new(40, std::time::Duration::from_secs(1)),
            retry_after_style: style,
            ..fast(150)
        };
        let env = Env::new(config).await;
        let (csv, ledger) = (env.devices_csv(), env.path("run.jsonl"));
        let o = env
            .rotate(&csv, &ledger, &["--rate", "120/1s", "--concurrency", "1"])
            .await;
        assert_eq!(code(&o), 0, "{style:?}: {}", stderr(&o));
        let stats = env.sim.stats();
        assert!(stats.throttled > 0, "{style:?}: throttled at all");
        if style != RetryAfterStyle::None {
            assert_eq!(
                stats.penalised, 0,
                "{style:?}: an item came back before its Retry-After"
            );
        }
        for id in eligible_macs(&env) {
            assert_eq!(stats.accepted(ACTION, &id), 1, "{style:?}: {id}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_stops_cleanly_with_130_and_resume_finishes() {
    let config = graph_sim::SimConfig {
        post_limit: graph_sim::Quota::new(100, std::time::Duration::from_secs(1)),
        ..fast(600)
    };
    let env = Env::new(config).await;
    let (csv, ledger) = (env.devices_csv(), env.path("run.jsonl"));
    let o = env
        .rotate_interrupted(&csv, &ledger, &["--rate", "100/1s"], KillAt::SentRows(1))
        .await;
    assert_eq!(code(&o), 130, "{}", stderr(&o));
    let st = env
        .run(&["status", "--ledger", &s(&ledger), "--json"])
        .await;
    let doc: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    assert_eq!(
        doc["in_doubt"], 0,
        "requests in flight were waited for: {doc}"
    );
    assert!(doc["pending"].as_u64().unwrap() > 0, "{doc}");
    let r = env
        .run(&[
            "resume",
            "--ledger",
            &s(&ledger),
            "--rate",
            "1000/1s",
            "--yes",
        ])
        .await;
    assert_eq!(code(&r), 0, "{}", stderr(&r));
    let stats = env.sim.stats();
    assert_eq!(stats.devices_accepted(ACTION), eligible_macs(&env).len());
    assert_eq!(stats.devices_accepted_twice(ACTION), 0);
}

/// SIGTERM, as a scheduler stops a job, is handled as the first Ctrl-C: sending stops, the answers
/// in flight are awaited, and the command exits 130. A kill -9 at the same point (the first `sent`
/// row, each answer 0.8 s away) leaves those devices in doubt; SIGTERM leaves none. After `resume`
/// every Mac is rotated once either way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_leaves_fewer_devices_in_doubt_than_kill_9_at_the_same_point() {
    let mut in_doubt = Vec::new();
    for signal in ["TERM", "KILL"] {
        let config = graph_sim::SimConfig {
            latency: std::time::Duration::from_millis(800),
            ..fast(60)
        };
        let env = Env::new(config).await;
        let (csv, ledger) = (env.devices_csv(), env.path("run.jsonl"));
        let args = ["--rate", "1000/1s"];
        let at = KillAt::SentRows(1);
        if signal == "KILL" {
            assert!(env.rotate_killed(&csv, &ledger, &args, at).await);
        } else {
            let o = env.rotate_signalled(&csv, &ledger, &args, at, signal).await;
            assert_eq!(code(&o), 130, "{signal}: {}", stderr(&o));
            assert!(stderr(&o).contains("SIGTERM"), "{}", stderr(&o));
        }
        in_doubt.push(env.status_json(&ledger).await["in_doubt"].as_u64().unwrap());
        let r = env.resume(&ledger, &RESUME_QUICKLY).await;
        assert_eq!(code(&r), 0, "{signal}: {}", stderr(&r));
        assert_each_eligible_mac_rotated_once(&env);
    }
    assert_eq!(in_doubt[0], 0, "SIGTERM awaited the answers in flight");
    assert!(in_doubt[1] > 0, "kill -9 left requests on the wire");
}

/// The grace period bounds the wait: answers slower than `--grace` are not awaited, the command
/// exits 130 after it, and the devices left in doubt are looked up by `resume`, never sent twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_grace_period_a_stopped_run_exits_130_leaving_the_unanswered_in_doubt() {
    let config = graph_sim::SimConfig {
        latency: std::time::Duration::from_secs(2),
        ..fast(40)
    };
    let env = Env::new(config).await;
    let (csv, ledger) = (env.devices_csv(), env.path("run.jsonl"));
    let args = ["--rate", "1000/1s", "--grace", "300ms"];
    let o = env
        .rotate_signalled(&csv, &ledger, &args, KillAt::SentRows(1), "TERM")
        .await;
    assert_eq!(code(&o), 130, "{}", stderr(&o));
    assert!(stderr(&o).contains("stay in doubt"), "{}", stderr(&o));
    let doc = env.status_json(&ledger).await;
    assert!(doc["in_doubt"].as_u64().unwrap() > 0, "{doc}");
    let r = env.resume(&ledger, &RESUME_QUICKLY).await;
    assert_eq!(code(&r), 0, "{}", stderr(&r));
    assert_each_eligible_mac_rotated_once(&env);
}

/// A resume that looks lost answers up again after 2 s, not the default 70 s.
const RESUME_QUICKLY: [&str; 4] = ["--rate", "1000/1s", "--lost-answer-recheck", "2s"];

fn assert_each_eligible_mac_rotated_once(env: &Env) {
    let stats = env.sim.stats();
    for id in eligible_macs(env) {
        assert_eq!(stats.accepted(ACTION, &id), 1, "{id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_exits_2_naming_the_line_and_sends_nothing() {
    let env = Env::new(fast(10)).await;
    let cases: &[(&str, &str)] = &[
        ("", "header"),
        ("name,serial\nx,y\n", "no managed device id column"),
        (
            "Azure AD Device ID\n3f0c5d8e-1a2b-4c3d-8e4f-5a6b7c8d9e0f\n",
            "Entra",
        ),
        (
            "\u{feff}id\r\n3f0c5d8e-1a2b-4c3d-8e4f-5a6b7c8d9e0f\r\n\r\n../x\r\n",
            "line 4",
        ),
        ("id\na?b\n", "line 2"),
        (
            "id\n3f0c5d8e-1a2b-4c3d-8e4f-5a6b7c8d9e0f/../../x\n",
            "line 2",
        ),
    ];
    for (n, (text, expect)) in cases.iter().enumerate() {
        let csv = env.path(&format!("bad{n}.csv"));
        std::fs::write(&csv, text).unwrap();
        let o = env
            .rotate(&csv, &env.path(&format!("l{n}.jsonl")), &[])
            .await;
        assert_eq!(code(&o), 2, "case {n}: {}", stderr(&o));
        assert!(
            stderr(&o).contains(expect),
            "case {n}: expected {expect:?} in {}",
            stderr(&o)
        );
    }
    assert_eq!(
        env.sim.stats().http_requests,
        0,
        "nothing reached the service"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_permission_exits_3_naming_it_with_no_action_sent() {
    let config = graph_sim::SimConfig {
        roles: vec!["DeviceManagementManagedDevices.Read.All".into()],
        ..fast(50)
    };
    let env = Env::new(config).await;
    let (csv, ledger) = (env.devices_csv(), env.path("run.jsonl"));
    let o = env.rotate(&csv, &ledger, &[]).await;
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("DeviceManagementManagedDevices.PrivilegedOperations.All"),
        "{}",
        stderr(&o)
    );
    assert_eq!(env.sim.stats().requests, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_exits_3_with_the_entra_advice() {
    let env = Env::new(fast(10)).await;
    let csv = env.devices_csv();
    let ledger = s(&env.path("l.jsonl"));
    let args = ["rotate", "--input", &s(&csv), "--ledger", &ledger, "--yes"];
    let o = env
        .run_with(&args, Some("not-the-secret".into()), &[])
        .await;
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    assert!(stderr(&o).contains("7000215"), "{}", stderr(&o));
    assert!(
        !stderr(&o).contains("not-the-secret"),
        "the secret never appears in output"
    );
    assert_eq!(env.sim.stats().requests, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_then_resume_rotates_the_rest_and_status_counts_them() {
    let env = Env::new(fast(300)).await;
    let (csv, ledger) = (env.devices_csv(), env.path("run.jsonl"));
    let o = env
        .rotate(&csv, &ledger, &["--rate", "4000/1s", "--limit", "10"])
        .await;
    assert_eq!(code(&o), 1, "devices left pending: exit 1; {}", stderr(&o));
    assert_eq!(env.sim.stats().devices_accepted(ACTION), 10);
    let st = env
        .run(&["status", "--ledger", &s(&ledger), "--json"])
        .await;
    let doc: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    assert_eq!(doc["rotated"], 10);
    let r = env
        .run(&[
            "resume",
            "--ledger",
            &s(&ledger),
            "--rate",
            "4000/1s",
            "--yes",
        ])
        .await;
    assert_eq!(code(&r), 0, "{}", stderr(&r));
    let stats = env.sim.stats();
    let macs = eligible_macs(&env);
    assert_eq!(stats.devices_accepted(ACTION), macs.len());
    assert_eq!(stats.devices_accepted_twice(ACTION), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_refuses_another_tenant_and_a_second_process() {
    let env = Env::new(fast(30)).await;
    let (csv, ledger) = (env.devices_csv(), env.path("run.jsonl"));
    let o = env.rotate(&csv, &ledger, &["--dry-run"]).await;
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let other = run_plain(
        [
            "resume",
            "--ledger",
            &s(&ledger),
            "--tenant",
            "00000000-0000-4000-8000-000000000000",
            "--yes",
        ]
        .iter()
        .map(|a| a.to_string())
        .collect(),
        Some("x".into()),
        Vec::new(),
    )
    .await;
    assert_eq!(code(&other), 2, "{}", stderr(&other));
    assert!(
        stderr(&other).contains("another tenant"),
        "{}",
        stderr(&other)
    );
    let held = rotation::Ledger::open(&ledger).expect("first opener gets the lock");
    let second = env.run(&["resume", "--ledger", &s(&ledger), "--yes"]).await;
    assert_eq!(code(&second), 2, "{}", stderr(&second));
    assert!(
        stderr(&second).contains("in use by another"),
        "{}",
        stderr(&second)
    );
    drop(held);
    assert_eq!(env.sim.stats().requests, 0);
}

/// Kill -9 at seeded points of a run, then follow the product's own advice for what the kill left:
/// an unfinished plan is planned afresh by the same `rotate`, anything else is `resume`d with the
/// default (verify in-doubt devices). Either way nobody is lost, nobody rotated twice, and the ledger
/// always parses.
///
/// Odd trials kill at a seeded time (pre-flight, planning or sending: whatever the machine reached);
/// even trials kill once a seeded number of `sent` rows is on disk. Trial 0 answers slowly and is
/// killed at its first `sent` row, so it always leaves devices in doubt, on any machine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_run_resumes_with_nobody_lost_and_nobody_rotated_twice() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    // `make soak` raises the count; `make test` keeps to twenty.
    let trials: u64 = std::env::var("INTUNE_ROTATE_CRASH_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    for trial in 0..trials {
        let slow = trial == 0;
        // Each naming style of action results in turn, with unrelated results beside ours: the
        // look-up after the crash must find our rotations, and only ours, whatever their name.
        let names = [
            graph_sim::ResultNames::Graph,
            graph_sim::ResultNames::Pascal,
            graph_sim::ResultNames::Keyword,
            graph_sim::ResultNames::Typed,
        ][trial as usize % 4]
            .clone();
        // Every third trial the service also acts late on lost answers, or answers 429 for
        // actions it carried out.
        let (late, ghost_429) = match trial % 3 {
            1 => (0.05, 0.0),
            2 => (0.0, 0.05),
            _ => (0.0, 0.0),
        };
        let config = graph_sim::SimConfig {
            action_result_names: names,
            decoy_results: true,
            late,
            late_max: std::time::Duration::from_secs(2),
            ghost_429,
            post_limit: graph_sim::Quota::new(300, std::time::Duration::from_secs(1)),
            tenant_post_limit: graph_sim::Quota::new(600, std::time::Duration::from_secs(1)),
            latency: std::time::Duration::from_millis(if slow { 1500 } else { 20 }),
            seed: trial,
            ..fast(500)
        };
        let env = Env::new(config).await;
        let (csv, ledger) = (env.devices_csv(), env.path("run.jsonl"));
        let kill_at = if slow {
            KillAt::SentRows(1)
        } else if trial % 2 == 1 {
            KillAt::After(std::time::Duration::from_millis(
                rng.random_range(100..1100),
            ))
        } else {
            KillAt::SentRows(rng.random_range(1..=400))
        };
        let args = [
            "--rate",
            "300/1s",
            "--strict-once",
            "--lost-answer-recheck",
            "3s",
        ];
        let killed = env.rotate_killed(&csv, &ledger, &args, kill_at).await;
        let st = env
            .run(&["status", "--ledger", &s(&ledger), "--json"])
            .await;
        let before: serde_json::Value = if ledger.exists() {
            assert_eq!(
                code(&st),
                0,
                "trial {trial}: the ledger parses after kill -9: {}",
                stderr(&st)
            );
            serde_json::from_slice(&st.stdout).unwrap()
        } else {
            // Killed before the ledger was made: nothing can have been sent.
            assert_eq!(env.sim.stats().devices_accepted(ACTION), 0, "trial {trial}");
            serde_json::json!({"plan_done": false})
        };
        if slow {
            assert!(
                before["in_doubt"].as_u64() > Some(0),
                "trial {trial}: killed with a request on the wire: {before}"
            );
        }
        let r = if before["plan_done"] == true {
            env.run(&[
                "resume",
                "--ledger",
                &s(&ledger),
                "--rate",
                "300/1s",
                "--strict-once",
                "--lost-answer-recheck",
                "3s",
                "--yes",
            ])
            .await
        } else {
            assert_eq!(env.sim.stats().devices_accepted(ACTION), 0, "trial {trial}");
            env.rotate(&csv, &ledger, &args).await
        };
        assert_eq!(
            code(&r),
            0,
            "trial {trial} (killed: {killed} at {kill_at:?}, {before}): {}",
            stderr(&r)
        );
        let stats = env.sim.stats();
        for id in eligible_macs(&env) {
            assert_eq!(
                stats.accepted(ACTION, &id),
                1,
                "trial {trial} (killed at {kill_at:?}, {before}): {id}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_watches_until_every_device_is_done_or_failed() {
    let config = graph_sim::SimConfig {
        complete_after: std::time::Duration::from_secs(1),
        fail_share: 0.1,
        ..fast(300)
    };
    let env = Env::new(config).await;
    let (csv, ledger, out) = (
        env.devices_csv(),
        env.path("run.jsonl"),
        env.path("export.csv"),
    );
    let o = env.rotate(&csv, &ledger, &["--rate", "4000/1s"]).await;
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v = env
        .run(&[
            "verify",
            "--ledger",
            &s(&ledger),
            "--watch",
            "--interval",
            "1s",
            "--timeout",
            "60s",
        ])
        .await;
    let t = env.sim.tenant();
    let failed = t
        .devices
        .iter()
        .filter(|d| d.action_results.iter().any(|r| r.fails))
        .count();
    let done = eligible_macs(&env).len() - failed;
    assert!(failed > 0, "the seed fails some actions");
    assert_eq!(code(&v), 1, "some devices failed: {}", stderr(&v));
    let text = String::from_utf8_lossy(&v.stdout);
    assert!(
        text.contains(&format!("done        {done:>8}"))
            && text.contains(&format!("failed      {failed:>8}")),
        "{text}"
    );
    env.run(&["export", "--ledger", &s(&ledger), "--out", &s(&out)])
        .await;
    let export = std::fs::read_to_string(&out).unwrap();
    assert!(
        export
            .lines()
            .next()
            .unwrap()
            .contains("verified_state,verified_at,action_started_at")
    );
    assert_eq!(
        export
            .lines()
            .filter(|l| l.contains(",rotated,") && l.contains(",done,"))
            .count(),
        done
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotate_can_verify_at_the_end() {
    let config = graph_sim::SimConfig {
        complete_after: std::time::Duration::from_millis(500),
        ..fast(100)
    };
    let env = Env::new(config).await;
    let (csv, ledger) = (env.devices_csv(), env.path("run.jsonl"));
    let o = env
        .rotate(
            &csv,
            &ledger,
            &["--rate", "4000/1s", "--verify-after", "30s"],
        )
        .await;
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout)
            .contains(&format!("verified: done {}", eligible_macs(&env).len())),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
}

/// `demo` rotates every Mac of its own simulated tenant once, writes the ledger and the export,
/// and exits 0; its summary says no Mac was rotated twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_rotates_every_mac_of_its_tenant_once() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("demo-out");
    let args = ["demo", "--devices", "300", "--out-dir", &s(&out)];
    let o = run_plain(args.map(String::from).to_vec(), None, Vec::new()).await;
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let stdout = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(stdout.contains("(0 more than once)"), "{stdout}");
    let args = [
        "status",
        "--ledger",
        &s(&out.join("ledger.jsonl")),
        "--json",
    ];
    let st = run_plain(args.map(String::from).to_vec(), None, Vec::new()).await;
    let doc: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    let rotated = doc["rotated"].as_u64().unwrap();
    assert!(rotated > 0, "{doc}");
    assert_eq!(
        (
            doc["failed"].as_u64(),
            doc["pending"].as_u64(),
            doc["in_doubt"].as_u64()
        ),
        (Some(0), Some(0), Some(0)),
        "{doc}"
    );
    assert!(
        stdout.contains(&format!("{rotated} Macs accepted the rotation")),
        "every Mac the ledger counts as rotated was accepted by the simulator: {stdout}"
    );
    let export = std::fs::read_to_string(out.join("result.csv")).unwrap();
    assert_eq!(
        export.lines().count() as u64,
        doc["devices"].as_u64().unwrap() + 1
    );
}

/// `--max-devices` caps the blast radius of a scheduled run: a plan larger than the cap is refused
/// with exit 2 and the count, nothing is sent and no ledger is left; a cap the plan fits runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_larger_than_max_devices_is_refused_and_nothing_is_sent() {
    let env = Env::new(fast(300)).await;
    let (csv, ledger) = (env.devices_csv(), env.path("run.jsonl"));
    let macs = eligible_macs(&env).len();
    let cap = (macs - 1).to_string();
    let o = env.rotate(&csv, &ledger, &["--max-devices", &cap]).await;
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!(
            "would send {macs} device(s), more than the cap of {cap}"
        )) && stderr(&o).contains("raise --max-devices"),
        "{}",
        stderr(&o)
    );
    assert_eq!(env.sim.stats().devices_accepted(ACTION), 0, "nothing sent");
    assert!(!ledger.exists(), "no ledger left behind");
    let o = env
        .rotate(
            &csv,
            &ledger,
            &["--max-devices", &macs.to_string(), "--rate", "4000/1s"],
        )
        .await;
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(env.sim.stats().devices_accepted(ACTION), macs);
}
