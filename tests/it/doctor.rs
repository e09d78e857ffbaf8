//! `doctor` against the simulator's real shapes and its simple ones: each belief's row says what
//! the tenant answered, and the exit code says whether a run would miss something.

use crate::util::{Env, code, fast, stderr};
use graph_sim::SimConfig;
use serde_json::Value;

async fn findings(env: &Env) -> (i32, Vec<Value>) {
    let o = env.run(&["doctor", "--format", "json"]).await;
    let doc: Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", stderr(&o)));
    assert!(doc["identity"]["tenant"].is_string(), "{doc}");
    (code(&o), doc["findings"].as_array().unwrap().clone())
}

fn verdict<'a>(rows: &'a [Value], belief: &str) -> &'a str {
    rows.iter()
        .find(|r| r["belief"] == belief)
        .and_then(|r| r["verdict"].as_str())
        .unwrap_or_else(|| panic!("no row for {belief}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_real_shapes_every_belief_is_held_or_adapted_to() {
    let env = Env::new(fast(300)).await;
    let (exit, rows) = findings(&env).await;
    assert_eq!(exit, 0, "{rows:?}");
    assert_eq!(rows.len(), 10);
    assert_eq!(verdict(&rows, "listed-action-results"), "adapted");
    assert_eq!(verdict(&rows, "audit-logs"), "holds");
    assert_eq!(verdict(&rows, "view-activities"), "adapted");
    assert_eq!(verdict(&rows, "group-member-casts"), "adapted");
    assert_eq!(verdict(&rows, "os-version-forms"), "adapted");
    assert_eq!(verdict(&rows, "device-filters"), "adapted");
    assert_eq!(verdict(&rows, "encryption-report-join"), "holds");
    let scripts = rows.iter().find(|r| r["belief"] == "mac-scripts").unwrap();
    let answered = scripts["answered"].as_str().unwrap();
    assert!(
        answered.contains("deviceHealthScripts: 3 script(s), 0 Mac run(s)"),
        "{answered}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_simple_shapes_the_listing_and_the_casts_hold() {
    let env = Env::new(SimConfig {
        shapes: graph_sim::Shapes::simple(),
        ..fast(300)
    })
    .await;
    let (exit, rows) = findings(&env).await;
    assert_eq!(exit, 0, "{rows:?}");
    assert_eq!(verdict(&rows, "group-member-casts"), "holds");
    assert_eq!(verdict(&rows, "os-version-forms"), "holds");
    assert_eq!(verdict(&rows, "device-filters"), "holds");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_source_the_token_cannot_read_is_a_miss_and_exits_1() {
    let mut config = fast(200);
    config.roles.retain(|r| r != "BitLockerKey.ReadBasic.All");
    let env = Env::new(config).await;
    let (exit, rows) = findings(&env).await;
    assert_eq!(verdict(&rows, "second-source-shapes"), "misses");
    assert_eq!(exit, 1);
}

fn own_report_ids() -> SimConfig {
    SimConfig {
        shapes: graph_sim::Shapes {
            report_ids: graph_sim::ReportIds::Own,
            ..Default::default()
        },
        ..fast(200)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encryption_report_that_joins_no_device_is_a_miss() {
    let env = Env::new(own_report_ids()).await;
    let (exit, rows) = findings(&env).await;
    assert_eq!(verdict(&rows, "encryption-report-join"), "misses");
    assert_eq!(exit, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_says_when_the_encryption_report_matches_no_device() {
    let env = Env::new(own_report_ids()).await;
    let ledger = env.path("run.jsonl");
    let o = env
        .run(&[
            "rotate",
            "--query",
            "--ledger",
            &crate::util::s(&ledger),
            "--dry-run",
        ])
        .await;
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("the encryption report could not be matched")
            && stderr(&o).contains("escrow checks are off"),
        "{}",
        stderr(&o)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_logs_retention_and_a_view_name_it_cannot_recognise_are_shown() {
    let mut config = SimConfig {
        entra_license: graph_sim::EntraLicense::P2,
        audit: graph_sim::AuditShape {
            recovery_lock_view: "Reveal Secret ManagedDevice".into(),
            ..graph_sim::AuditShape::default()
        },
        ..fast(200)
    };
    config
        .roles
        .retain(|r| r != "DeviceManagementApps.Read.All");
    let env = Env::new(config.clone()).await;
    let (_, rows) = findings(&env).await;
    let logs = rows.iter().find(|r| r["belief"] == "audit-logs").unwrap();
    let answered = logs["answered"].as_str().unwrap();
    assert!(
        answered.contains("directory audit log: readable, keeps 30 days"),
        "{answered}"
    );
    assert!(
        answered.contains("DeviceManagementApps.Read.All"),
        "{answered}"
    );
    assert_eq!(logs["verdict"], "untested");

    config.roles.push("DeviceManagementApps.Read.All".into());
    let env = Env::new(config).await;
    let (_, rows) = findings(&env).await;
    let names = rows
        .iter()
        .find(|r| r["belief"] == "view-activities")
        .unwrap();
    let answered = names["answered"].as_str().unwrap();
    assert!(
        answered.contains("FileVault key views: getFileVaultKey ManagedDevice"),
        "{answered}"
    );
    assert!(
        answered.contains("Recovery Lock passcode views: none"),
        "{answered}"
    );
    assert_eq!(names["verdict"], "untested");
}
