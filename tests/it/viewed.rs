//! `--viewed-since`: the devices whose secret someone read after their last rotation, from the
//! audit logs, rotated once per read (docs/viewed-secrets.md).

use crate::util::*;
use graph_sim::{Device, SimConfig};
use serde_json::{Value, json};
use std::process::Output;
use std::time::{Duration, SystemTime};

/// A fast tenant whose actions complete in a second, whose directory reads are all logged twice,
/// and whose audit limit leaves room for several runs in a row.
fn tenant() -> SimConfig {
    SimConfig {
        complete_after: Duration::from_secs(1),
        audit: graph_sim::AuditShape {
            duplicates: 1.0,
            ..graph_sim::AuditShape::default()
        },
        audit_limit: graph_sim::Quota::new(1000, Duration::from_secs(1)),
        ..fast(300)
    }
}

fn ago(d: Duration) -> String {
    humantime::format_rfc3339_seconds(SystemTime::now() - d).to_string()
}

const HOUR: Duration = Duration::from_secs(3600);

/// A read of `secret` on `device`, recorded as a person's or app's read would be.
async fn view(env: &Env, device: &str, secret: &str, more: Value) {
    let mut body = json!({"device_id": device, "secret": secret});
    body.as_object_mut()
        .unwrap()
        .extend(more.as_object().cloned().unwrap_or_default());
    let r = http()
        .post(format!("{}/_sim/views", env.sim.base_url))
        .json(&body)
        .send()
        .await
        .expect("simulator answers");
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
}

/// One client for the tests' calls to the simulator's own endpoints.
fn http() -> &'static reqwest::Client {
    static HTTP: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    HTTP.get_or_init(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
        reqwest::Client::new()
    })
}

/// Devices a plan for `action` sends to whose secret the simulator can show as read.
fn viewable(env: &Env, action: &str) -> Vec<String> {
    let t = env.sim.tenant();
    t.devices
        .iter()
        .filter(|d: &&Device| sendable(d, action))
        .filter(|d| d.azure_ad_device_id != graph_sim::ZERO_ID)
        .filter(|d| action != "bitlocker" || !d.recovery_keys.is_empty())
        .filter(|d| action != "laps" || !offline(d))
        .map(|d| d.id.clone())
        .collect()
}

/// An offline PC fails a LAPS rotation at once, which is not what these tests are about.
fn offline(d: &Device) -> bool {
    SystemTime::now()
        .duration_since(d.last_sync)
        .is_ok_and(|age| age > Duration::from_secs(30 * 86_400))
}

fn secret_of(action: &str) -> &'static str {
    match action {
        "filevault" => "filevault",
        "recovery-lock" => "recovery-lock",
        "bitlocker" => "bitlocker",
        _ => "laps",
    }
}

fn graph_name(action: &str) -> &'static str {
    match action {
        "filevault" => "rotateFileVaultKey",
        "recovery-lock" => "rotateRecoveryLockPasscode",
        "bitlocker" => "rotateBitLockerKeys",
        _ => "rotateLocalAdminPassword",
    }
}

async fn viewed_run(env: &Env, action: &str, ledger: &str, extra: &[&str]) -> Output {
    viewed_run_within(env, action, "24h", ledger, extra).await
}

/// `rotate --action ACTION --viewed-since WITHIN --ledger LEDGER --yes EXTRA…`.
async fn viewed_run_within(
    env: &Env,
    action: &str,
    within: &str,
    ledger: &str,
    extra: &[&str],
) -> Output {
    let ledger = s(&env.path(ledger));
    let mut args = vec![
        "rotate",
        "--action",
        action,
        "--viewed-since",
        within,
        "--ledger",
        &ledger,
        "--yes",
    ];
    args.extend_from_slice(extra);
    env.run(&args).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewed_since_run_rotates_the_devices_read_after_their_last_rotation_once_each() {
    let env = Env::new(tenant()).await;
    let own = env.sim.config().client_id.clone();
    for action in ["filevault", "recovery-lock", "bitlocker", "laps"] {
        let d = viewable(&env, action);
        assert!(d.len() >= 6, "{action}: {}", d.len());
        let secret = secret_of(action);
        // Read by a person an hour ago (logged twice where the log does), and by another app.
        view(&env, &d[0], secret, json!({"at": ago(HOUR)})).await;
        view(
            &env,
            &d[5],
            secret,
            json!({"at": ago(HOUR / 2), "app_id": "a1b2c3d4-0000-4000-8000-00000000abcd"}),
        )
        .await;
        // Read by this tool's own app: never a person's view.
        view(&env, &d[1], secret, json!({"at": ago(HOUR), "app_id": own})).await;
        // Read, but not in the log yet.
        view(&env, &d[2], secret, json!({"at": ago(HOUR), "delay": 7200})).await;
        // Read eight days ago: outside the window, and past the directory log's week.
        view(&env, &d[3], secret, json!({"at": ago(HOUR * 24 * 8)})).await;
        // Read two hours ago, and rotated since.
        view(&env, &d[4], secret, json!({"at": ago(HOUR * 2)})).await;
        let early = env.path(&format!("{action}-early.csv"));
        std::fs::write(&early, format!("id\n{}\n", d[4])).unwrap();
        let ledger = s(&env.path(&format!("{action}-early.jsonl")));
        // A bare id says nothing the eligibility rules read: this device is known to be eligible.
        let args = [
            "rotate",
            "--action",
            action,
            "--input",
            &s(&early),
            "--eligibility",
            "off",
            "--ledger",
            &ledger,
            "--yes",
        ];
        let o = env.run(&args).await;
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        assert_eq!(env.sim.stats().accepted(graph_name(action), &d[4]), 1);
        tokio::time::sleep(Duration::from_millis(1500)).await;

        let o = viewed_run(&env, action, &format!("{action}-1.jsonl"), &[]).await;
        assert_eq!(code(&o), 0, "{action}: {}", stderr(&o));
        let stats = env.sim.stats();
        let times = |id: &str| stats.accepted(graph_name(action), id);
        assert_eq!(
            d[..6].iter().map(|id| times(id)).collect::<Vec<_>>(),
            vec![1, 0, 0, 0, 1, 1],
            "{action}: {}",
            stderr(&o)
        );
        let err = stderr(&o);
        // Our own read, logged twice where the log duplicates reads.
        assert!(
            !err.contains(" 0 read(s) by this app dropped"),
            "{action}: {err}"
        );
        assert!(err.contains("1 already rotated since"), "{action}: {err}");
        if matches!(action, "bitlocker" | "laps") {
            assert!(!err.contains(" 0 duplicate(s)"), "{action}: {err}");
        }

        // Right after: every read is answered, so nothing is sent.
        let o = viewed_run(&env, action, &format!("{action}-2.jsonl"), &[]).await;
        assert_eq!(code(&o), 0, "{action}: {}", stderr(&o));
        assert_eq!(
            env.sim.stats().devices_accepted(graph_name(action)),
            3,
            "{action}"
        );

        // A read after the rotation brings the device back, once.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        view(&env, &d[0], secret, json!({"delay": 0})).await;
        let o = viewed_run(&env, action, &format!("{action}-3.jsonl"), &[]).await;
        assert_eq!(code(&o), 0, "{action}: {}", stderr(&o));
        let stats = env.sim.stats();
        assert_eq!(stats.accepted(graph_name(action), &d[0]), 2, "{action}");
        assert_eq!(stats.devices_accepted(graph_name(action)), 3, "{action}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_export_and_the_report_say_when_each_device_was_read_by_whom_and_what_answered_it() {
    let env = Env::new(tenant()).await;
    let d = viewable(&env, "filevault");
    view(
        &env,
        &d[0],
        "filevault",
        json!({"at": ago(HOUR), "by": "tier1@contoso-sim.example"}),
    )
    .await;
    let o = viewed_run(&env, "filevault", "run.jsonl", &[]).await;
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let out = env.path("run.csv");
    let o = env
        .run(&[
            "export",
            "--ledger",
            &s(&env.path("run.jsonl")),
            "--out",
            &s(&out),
        ])
        .await;
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let text = std::fs::read_to_string(&out).unwrap();
    let header = text.lines().next().unwrap();
    assert!(
        header.contains("viewed_at") && header.contains("viewed_by"),
        "{header}"
    );
    let row = text
        .lines()
        .find(|l| l.contains(&d[0]))
        .expect("the device's row");
    assert!(row.contains("user tier1@contoso-sim.example"), "{row}");
    let page = env.path("report.html");
    let ledger = s(&env.path("run.jsonl"));
    let o = env
        .run(&["report", "--ledger", &ledger, "--out", &s(&page)])
        .await;
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains("Views → rotations"));
    let view = html
        .lines()
        .find(|l| l.contains("data-view"))
        .expect("a view's row");
    assert!(
        view.contains(&d[0])
            && view.contains("tier1@contoso-sim.example")
            && view.contains("rotated"),
        "{view}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_with_no_device_read_plans_none_and_exits_0() {
    let env = Env::new(tenant()).await;
    let o = viewed_run(&env, "bitlocker", "run.jsonl", &[]).await;
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(env.sim.stats().devices_accepted("rotateBitLockerKeys"), 0);
    assert!(
        stderr(&o).contains("0 device(s) whose secret was read"),
        "{}",
        stderr(&o)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_gate_pages_a_long_log_without_a_429() {
    // The service's own limit, 5 requests per 10 s: eight pages take two windows.
    let env = Env::new(SimConfig {
        audit: graph_sim::AuditShape {
            duplicates: 0.0,
            ..graph_sim::AuditShape::default()
        },
        ..fast(300)
    })
    .await;
    let d = viewable(&env, "bitlocker");
    for n in 0..720 {
        let by = format!("operator{n}@contoso-sim.example");
        view(
            &env,
            &d[n % 40],
            "bitlocker",
            json!({"at": ago(HOUR), "by": by}),
        )
        .await;
    }
    let o = viewed_run(&env, "bitlocker", "run.jsonl", &[]).await;
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let stats = env.sim.stats();
    assert!(stats.audit_requests >= 8, "{}", stats.audit_requests);
    assert_eq!(stats.audit_throttled, 0);
    assert_eq!(
        stats.devices_accepted("rotateBitLockerKeys"),
        40.min(d.len())
    );
    assert!(stderr(&o).contains("720 event(s)"), "{}", stderr(&o));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_audit_permission_the_run_exits_3_naming_it_and_sends_nothing() {
    let roles = graph_sim::ALL_ROLES
        .iter()
        .filter(|r| **r != "AuditLog.Read.All")
        .map(|r| r.to_string())
        .collect();
    let env = Env::new(SimConfig { roles, ..tenant() }).await;
    let d = viewable(&env, "bitlocker");
    view(&env, &d[0], "bitlocker", json!({"at": ago(HOUR)})).await;
    let o = viewed_run(&env, "bitlocker", "run.jsonl", &[]).await;
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    assert!(stderr(&o).contains("AuditLog.Read.All"), "{}", stderr(&o));
    assert_eq!(env.sim.stats().devices_accepted("rotateBitLockerKeys"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_longer_than_the_directory_log_keeps_is_refused_before_anything_is_sent() {
    let env = Env::new(tenant()).await;
    let o = viewed_run_within(&env, "bitlocker", "10d", "run.jsonl", &[]).await;
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains("keeps 7 days"), "{}", stderr(&o));
    assert!(!env.path("run.jsonl").exists());
    let stats = env.sim.stats();
    assert_eq!(stats.devices_accepted("rotateBitLockerKeys"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_premium_tenant_keeps_thirty_days_of_reads() {
    let env = Env::new(SimConfig {
        entra_license: graph_sim::EntraLicense::P1,
        ..tenant()
    })
    .await;
    let d = viewable(&env, "bitlocker");
    view(&env, &d[0], "bitlocker", json!({"at": ago(HOUR * 24 * 9)})).await;
    let o = viewed_run_within(&env, "bitlocker", "10d", "run.jsonl", &[]).await;
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(env.sim.stats().accepted("rotateBitLockerKeys", &d[0]), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_activity_name_the_tool_cannot_recognise_is_refused_until_the_admin_names_it() {
    let env = Env::new(SimConfig {
        audit: graph_sim::AuditShape {
            filevault_view: "Reveal Secret ManagedDevice".into(),
            ..graph_sim::AuditShape::default()
        },
        ..tenant()
    })
    .await;
    let d = viewable(&env, "filevault");
    view(&env, &d[0], "filevault", json!({"at": ago(HOUR)})).await;
    let o = viewed_run(&env, "filevault", "a.jsonl", &[]).await;
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains("FileVault key view"), "{}", stderr(&o));
    assert_eq!(env.sim.stats().devices_accepted("rotateFileVaultKey"), 0);
    let o = viewed_run(
        &env,
        "filevault",
        "b.jsonl",
        &["--audit-activity", "Reveal Secret ManagedDevice"],
    )
    .await;
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(env.sim.stats().accepted("rotateFileVaultKey", &d[0]), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beside_another_source_the_views_narrow_it() {
    let env = Env::new(tenant()).await;
    let d = viewable(&env, "filevault");
    for id in &d[..2] {
        view(&env, id, "filevault", json!({"at": ago(HOUR)})).await;
    }
    let input = env.path("one.csv");
    std::fs::write(&input, format!("id\n{}\n{}\n", d[0], d[2])).unwrap();
    let ledger = s(&env.path("run.jsonl"));
    let args = [
        "rotate",
        "--viewed-since",
        "24h",
        "--input",
        &s(&input),
        "--eligibility",
        "off",
        "--ledger",
        &ledger,
        "--yes",
    ];
    let o = env.run(&args).await;
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let stats = env.sim.stats();
    assert_eq!(stats.devices_accepted("rotateFileVaultKey"), 1);
    assert_eq!(stats.accepted("rotateFileVaultKey", &d[0]), 1);
    assert!(stderr(&o).contains("1 not in the source"), "{}", stderr(&o));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_laps_recovery_naming_the_device_by_either_entra_id_is_found() {
    for target in [
        graph_sim::LapsTarget::ObjectId,
        graph_sim::LapsTarget::DeviceId,
    ] {
        let env = Env::new(SimConfig {
            audit: graph_sim::AuditShape {
                laps_target: target,
                ..graph_sim::AuditShape::default()
            },
            ..tenant()
        })
        .await;
        let d = viewable(&env, "laps");
        view(&env, &d[0], "laps", json!({"at": ago(HOUR)})).await;
        let o = viewed_run(&env, "laps", "run.jsonl", &["--max-devices", "5"]).await;
        assert_eq!(code(&o), 0, "{target:?}: {}", stderr(&o));
        let stats = env.sim.stats();
        assert_eq!(
            stats.devices_accepted("rotateLocalAdminPassword"),
            1,
            "{target:?}"
        );
        assert_eq!(
            stats.accepted("rotateLocalAdminPassword", &d[0]),
            1,
            "{target:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_over_a_file_reads_the_views_and_sends_nothing() {
    let env = Env::new(tenant()).await;
    let d = viewable(&env, "filevault");
    view(&env, &d[0], "filevault", json!({"at": ago(HOUR)})).await;
    let input = env.path("macs.csv");
    std::fs::write(&input, format!("id\n{}\n{}\n", d[0], d[1])).unwrap();
    let extra = ["--input", &s(&input), "--eligibility", "off", "--dry-run"];
    let o = viewed_run(&env, "filevault", "plan.jsonl", &extra).await;
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("1 device(s) whose secret was read"),
        "{}",
        stderr(&o)
    );
    assert_eq!(env.sim.stats().devices_accepted("rotateFileVaultKey"), 0);
}
