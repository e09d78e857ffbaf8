//! Targeting the fleet the way admins pick it: Entra groups, display names, and filters the
//! service only partly applies. The simulator's directory is the truth each result is held to.

use crate::util::*;
use graph_sim::{Member, SimConfig, Tenant, ZERO_ID};
use std::collections::BTreeSet;

fn ids(o: &std::process::Output) -> BTreeSet<String> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').next())
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

async fn devices(env: &Env, args: &[&str]) -> std::process::Output {
    let mut all = vec!["devices"];
    all.extend_from_slice(args);
    env.run(&all).await
}

/// The managed devices a group's transitive members stand for, from the simulator's directory.
fn expected(t: &Tenant, group: &str, with_devices: bool, with_users: bool) -> BTreeSet<String> {
    let dir = &t.directory;
    let g = dir.groups.iter().position(|g| g.name == group).unwrap();
    let mut out = BTreeSet::new();
    for m in dir.members(g, true) {
        match m {
            Member::Device(i) if with_devices => {
                let entra = &dir.devices[i].device_id;
                out.extend(
                    t.devices
                        .iter()
                        .filter(|d| entra != ZERO_ID && &d.azure_ad_device_id == entra)
                        .map(|d| d.id.clone()),
                );
            }
            Member::User(u) if with_users => out.extend(
                t.devices
                    .iter()
                    .filter(|d| d.user_id == dir.users[u].id)
                    .map(|d| d.id.clone()),
            ),
            _ => {}
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_brings_the_managed_devices_of_its_nested_device_and_user_members() {
    let env = Env::new(fast(400)).await;
    let t = env.sim.tenant();
    let want = expected(&t, "FIN-Macs", true, true);
    let by_name = devices(&env, &["--group", "FIN-Macs"]).await;
    assert_eq!(code(&by_name), 0, "{}", stderr(&by_name));
    assert_eq!(ids(&by_name), want);
    let fin = t
        .directory
        .groups
        .iter()
        .find(|g| g.name == "FIN-Macs")
        .unwrap();
    let by_id = devices(&env, &["--group", &fin.id]).await;
    assert_eq!(ids(&by_id), want, "{}", stderr(&by_id));

    // The fixture's traps: a re-enrolled Mac shares its Entra id (both included, and named), an
    // Entra object with the all-zero id matches none of the managed devices without one.
    let err = stderr(&by_name);
    let shared: Vec<_> = t
        .devices
        .iter()
        .filter(|d| want.contains(&d.id))
        .map(|d| d.azure_ad_device_id.clone())
        .collect();
    let twice = shared
        .iter()
        .find(|id| shared.iter().filter(|x| x == id).count() == 2)
        .expect("a shared Entra id is in the group");
    assert!(
        err.contains(twice.as_str()) && err.contains("shared"),
        "{err}"
    );
    assert!(t.devices.iter().any(|d| d.azure_ad_device_id == ZERO_ID));
    assert!(
        t.devices
            .iter()
            .filter(|d| d.azure_ad_device_id == ZERO_ID)
            .all(|d| !want.contains(&d.id) || expected(&t, "FIN-Macs", false, true).contains(&d.id))
    );
    assert!(err.contains("all-zero"), "{err}");
    assert!(
        err.contains("device member(s)") && err.contains("user member(s)"),
        "the plan says where devices came from: {err}"
    );

    let only_devices = devices(&env, &["--group", "FIN-Macs", "--group-members", "devices"]).await;
    assert_eq!(ids(&only_devices), expected(&t, "FIN-Macs", true, false));
    let only_users = devices(&env, &["--group", "FIN-Macs", "--group-members", "users"]).await;
    assert_eq!(ids(&only_users), expected(&t, "FIN-Macs", false, true));
    assert!(!expected(&t, "FIN-Macs", false, true).is_empty());

    let two = devices(
        &env,
        &["--group", "FIN-Macs-Loaners", "--group", "FIN-Staff"],
    )
    .await;
    let mut union = expected(&t, "FIN-Macs-Loaners", true, true);
    union.extend(expected(&t, "FIN-Staff", true, true));
    assert_eq!(ids(&two), union, "repeated --group is the union");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_run_rotates_only_the_groups_macs_and_the_cap_holds() {
    let env = Env::new(fast(400)).await;
    let t = env.sim.tenant();
    let ledger = env.path("fin.jsonl");
    let capped = env
        .run(&[
            "rotate",
            "--group",
            "FIN-Macs",
            "--ledger",
            &ledger.display().to_string(),
            "--yes",
            "--max-devices",
            "3",
        ])
        .await;
    assert_eq!(code(&capped), 2, "{}", stderr(&capped));
    assert_eq!(env.sim.stats().devices_accepted("rotateFileVaultKey"), 0);

    let o = env
        .run(&[
            "rotate",
            "--group",
            "FIN-Macs",
            "--ledger",
            &ledger.display().to_string(),
            "--yes",
        ])
        .await;
    assert!(matches!(code(&o), 0 | 1), "{}", stderr(&o));
    let want: BTreeSet<String> = expected(&t, "FIN-Macs", true, true)
        .into_iter()
        .filter(|id| sendable(t.device(id).unwrap(), "filevault"))
        .collect();
    let stats = env.sim.stats();
    let rotated: BTreeSet<String> = stats.actions["rotateFileVaultKey"]
        .keys()
        .cloned()
        .collect();
    assert_eq!(rotated, want);
    assert_eq!(stats.devices_accepted_twice("rotateFileVaultKey"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_that_match_none_or_several_stop_with_the_candidates() {
    let env = Env::new(fast(300)).await;
    let t = env.sim.tenant();
    let pilots: Vec<_> = t
        .directory
        .groups
        .iter()
        .filter(|g| g.name == "Pilot Macs")
        .collect();
    let o = devices(&env, &["--group", "Pilot Macs"]).await;
    assert_eq!(code(&o), 2);
    assert!(
        pilots.iter().all(|g| stderr(&o).contains(&g.id)),
        "{}",
        stderr(&o)
    );
    let o = devices(&env, &["--group", "No Such Group"]).await;
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("no group is named"), "{}", stderr(&o));

    let battery = devices(&env, &["--health-script", "Battery report"]).await;
    assert_eq!(code(&battery), 2);
    assert!(
        stderr(&battery).contains("2 device health scripts"),
        "{}",
        stderr(&battery)
    );
    let vpn = devices(&env, &["--detected-app", "legacy vpn client"]).await;
    assert_eq!(code(&vpn), 2);
    assert!(
        stderr(&vpn).contains("4.1") && stderr(&vpn).contains("3.9"),
        "{}",
        stderr(&vpn)
    );

    let script = t
        .scripts
        .iter()
        .find(|s| s.name == "FileVault escrow check")
        .unwrap();
    let by_name = devices(&env, &["--health-script", "filevault ESCROW check"]).await;
    assert_eq!(code(&by_name), 0, "{}", stderr(&by_name));
    let by_id = devices(&env, &["--health-script", &script.id]).await;
    assert_eq!(ids(&by_name), ids(&by_id));
    assert!(!ids(&by_id).is_empty());
    let office = t.apps.iter().find(|a| a.name == "Office").unwrap();
    let app = devices(&env, &["--detected-app", "Office"]).await;
    let want: BTreeSet<String> = office
        .devices
        .iter()
        .map(|&i| t.devices[i].id.clone())
        .collect();
    assert_eq!(ids(&app), want, "{}", stderr(&app));
    assert_eq!(env.sim.stats().devices_accepted("rotateFileVaultKey"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_directory_permissions_exit_3_naming_them() {
    let roles = |r: &[&str]| SimConfig {
        roles: r.iter().map(|s| s.to_string()).collect(),
        ..fast(300)
    };
    let no_device_read = Env::new(roles(&[
        "DeviceManagementManagedDevices.PrivilegedOperations.All",
        "DeviceManagementManagedDevices.Read.All",
        "GroupMember.Read.All",
    ]))
    .await;
    let ledger = no_device_read.path("l.jsonl").display().to_string();
    let o = no_device_read
        .run(&[
            "rotate", "--group", "FIN-Macs", "--ledger", &ledger, "--yes",
        ])
        .await;
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    assert!(stderr(&o).contains("Device.Read.All"), "{}", stderr(&o));
    assert_eq!(
        no_device_read
            .sim
            .stats()
            .devices_accepted("rotateFileVaultKey"),
        0
    );
    // Users need no device ids: their devices join by userId.
    let users = devices(
        &no_device_read,
        &["--group", "FIN-Macs", "--group-members", "users"],
    )
    .await;
    assert_eq!(code(&users), 0, "{}", stderr(&users));

    let no_groups = Env::new(roles(&[
        "DeviceManagementManagedDevices.PrivilegedOperations.All",
        "DeviceManagementManagedDevices.Read.All",
    ]))
    .await;
    let o = devices(&no_groups, &["--group", "FIN-Macs"]).await;
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("GroupMember.Read.All"),
        "{}",
        stderr(&o)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filter_the_service_ignores_never_widens_the_run() {
    let env = Env::new(fast(600)).await;
    let t = env.sim.tenant();
    let filter = "operatingSystem eq 'macOS' and deviceEnrollmentType eq 'userEnrollment'";
    let want: BTreeSet<String> = t
        .devices
        .iter()
        .filter(|d| d.os == "macOS" && d.enrollment_type == "userEnrollment")
        .map(|d| d.id.clone())
        .collect();
    let macs = t.devices.iter().filter(|d| d.os == "macOS").count();
    assert!(!want.is_empty() && want.len() < macs);
    // Of the two clauses the service applies only what the SDK documents: neither of these.
    let listed = t.devices.len();
    let o = devices(&env, &["--query", filter]).await;
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(ids(&o), want);
    assert!(
        stderr(&o).contains(&format!(
            "the service ignored part of the filter: {listed} listed, {} match",
            want.len()
        )),
        "{}",
        stderr(&o)
    );
    assert!(
        env.sim.stats().filter_clauses_ignored >= 1,
        "the simulator did drop the clause"
    );

    // An `or` the service answers with every device.
    let names = "deviceName eq 'MAC-000010' or startswith(deviceName,'IPHONE-00001')";
    let o = devices(&env, &["--query", names]).await;
    let want: BTreeSet<String> = t
        .devices
        .iter()
        .filter(|d| d.name == "MAC-000010" || d.name.starts_with("IPHONE-00001"))
        .map(|d| d.id.clone())
        .collect();
    assert_eq!(ids(&o), want, "{}", stderr(&o));

    // The rotate plan holds only the matching devices too.
    let ledger = env.path("q.jsonl");
    let o = env
        .run(&[
            "rotate",
            "--query",
            filter,
            "--ledger",
            &ledger.display().to_string(),
            "--yes",
        ])
        .await;
    assert!(matches!(code(&o), 0 | 1), "{}", stderr(&o));
    let rotated: BTreeSet<String> = env.sim.stats().actions["rotateFileVaultKey"]
        .keys()
        .cloned()
        .collect();
    let enc: BTreeSet<String> = t
        .devices
        .iter()
        .filter(|d| sendable(d, "filevault") && d.enrollment_type == "userEnrollment")
        .map(|d| d.id.clone())
        .collect();
    assert_eq!(rotated, enc);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filter_the_service_refuses_is_applied_on_a_full_listing() {
    let env = Env::new(SimConfig {
        filter_mode: graph_sim::FilterMode::Refuse,
        ..fast(300)
    })
    .await;
    let t = env.sim.tenant();
    let o = devices(
        &env,
        &[
            "--query",
            "deviceEnrollmentType eq 'userEnrollment' and isEncrypted eq true",
        ],
    )
    .await;
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let want: BTreeSet<String> = t
        .devices
        .iter()
        .filter(|d| d.enrollment_type == "userEnrollment" && d.encrypted)
        .map(|d| d.id.clone())
        .collect();
    assert_eq!(ids(&o), want);
    assert!(stderr(&o).contains("refused the filter"), "{}", stderr(&o));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filter_the_client_cannot_read_stops_before_any_request() {
    let env = Env::new(fast(100)).await;
    let ledger = env.path("bad.jsonl").display().to_string();
    for (filter, column) in [
        (
            "operatingSystem eq 'macOS' and deviceEnrolmentType eq 'x'",
            "column 32",
        ),
        (
            "operatingSystem eq 'macOS' and (isEncrypted eq true",
            "column 32",
        ),
        ("lastSyncDateTime lt '2026-01-01'", "column 21"),
    ] {
        let o = env
            .run(&["rotate", "--query", filter, "--ledger", &ledger, "--yes"])
            .await;
        assert_eq!(code(&o), 2, "{filter}: {}", stderr(&o));
        assert!(stderr(&o).contains(column), "{filter}: {}", stderr(&o));
    }
    let stats = env.sim.stats();
    assert_eq!(
        (stats.http_requests, stats.token_requests),
        (0, 0),
        "{stats:?}"
    );
    assert!(!std::path::Path::new(&ledger).exists());
}
